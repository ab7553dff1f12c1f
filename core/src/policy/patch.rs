//! PATCH documents: JSON Patch (RFC 6902) read into operations on element
//! paths, the references a patch writes, and the rule for patches under
//! patient/ scopes: an operation that touches a compartment element of the
//! type must set it to the context patient. A FHIRPath Patch (a FHIR
//! `Parameters`) is only searched for references: its paths are FHIRPath
//! expressions the gateway does not evaluate, so patient/ scopes refuse it.

use super::compartment;
use super::need::{fail, Fail};
use super::references::{check_reference, references, RefContext, Target};
use crate::decision::Reason;
use serde_json::Value;

/// One patch operation as the gateway reads it.
pub(super) struct PatchOp<'v> {
    op: &'v str,
    /// The element path it writes or removes, dotted (`performer.reference`;
    /// list indices dropped, the root is empty).
    path: String,
    /// Where `move`/`copy` take their value from (JSON Patch).
    from: Option<String>,
    value: Option<&'v Value>,
}

fn unreadable() -> Fail {
    fail(
        Reason::InvalidRequest,
        "the JSON Patch is not well formed: an array of {op, path, from?, value?}, op add, remove, replace, move, copy or test",
    )
}

/// The operations of a JSON Patch (`Err`: 400, not well formed); a
/// FHIRPath Patch (`Parameters`) is not read into operations: `None`.
pub(super) fn read_patch(doc: &Value) -> Result<Option<Vec<PatchOp<'_>>>, Fail> {
    let Value::Array(items) = doc else {
        return Ok(None);
    };
    let mut ops = Vec::with_capacity(items.len());
    for item in items {
        ops.push(json_patch_op(item).ok_or_else(unreadable)?);
    }
    Ok(Some(ops))
}

fn text<'v>(o: &'v Value, name: &str) -> Option<&'v str> {
    o.get(name)?.as_str()
}

/// Appends an element name to a dotted path.
fn push(path: &mut String, name: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(name);
}

/// A JSON Pointer as a dotted element path (list indices and `-` dropped).
/// FHIR element names hold no `~` or `/`, so a pointer with an escape names
/// nothing a FHIR server has: refused as unreadable.
fn pointer(p: &str) -> Option<String> {
    if !(p.is_empty() || p.starts_with('/')) || p.contains('~') {
        return None;
    }
    let mut out = String::new();
    for seg in p.split('/').skip(1) {
        if seg != "-" && (seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_digit())) {
            push(&mut out, seg);
        }
    }
    Some(out)
}

fn json_patch_op(o: &Value) -> Option<PatchOp<'_>> {
    let op = text(o, "op")?;
    let value = o.get("value");
    let from = match op {
        "move" | "copy" => Some(pointer(text(o, "from")?)?),
        "remove" => None,
        "add" | "replace" | "test" => {
            value?;
            None
        }
        _ => return None,
    };
    Some(PatchOp {
        op,
        path: pointer(text(o, "path")?)?,
        from,
        value,
    })
}

/// Whether a dotted path ends in the element `reference`.
fn is_reference(path: &str) -> bool {
    path == "reference" || path.ends_with(".reference")
}

/// The reference strings one operation writes: `reference` members of its
/// value, or the value itself when the path ends in `reference`.
fn written<'v>(o: &PatchOp<'v>, out: &mut Vec<&'v str>) {
    match (o.op, o.value) {
        ("test", _) | (_, None) => {}
        (_, Some(Value::String(s))) if is_reference(&o.path) => out.push(s),
        (_, Some(v)) => references(v, out),
    }
}

/// Every reference string a patch document writes (of a FHIRPath Patch:
/// every `reference` member in it).
pub(super) fn patch_references(doc: &Value) -> Result<Vec<&str>, Fail> {
    let mut out = Vec::new();
    match read_patch(doc)? {
        Some(ops) => ops.iter().for_each(|o| written(o, &mut out)),
        None => references(doc, &mut out),
    }
    Ok(out)
}

/// The compartment element of `rtype` a dotted path touches: the element,
/// a part of it, or a parent (the root touches them all).
fn touched(rtype: &str, path: &str) -> Option<&'static str> {
    let within = |outer: &str, inner: &str| {
        outer.is_empty()
            || inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('.'))
    };
    for c in compartment::params(rtype).unwrap_or_default() {
        for e in c.paths {
            if within(path, e) || within(e, path) {
                return Some(e);
            }
        }
    }
    None
}

/// Under a patient/ scope: no operation writes a reference to another
/// patient (or an unreadable one), and one that touches a compartment
/// element of `rtype` (the element, a part of it or a parent) sets it to
/// the context patient `p` (`add`/`replace`/`insert` of a Reference to
/// Patient/p, or of its `reference` string); removing, moving or copying
/// such an element is refused.
pub(super) fn check_patch(
    refs: &RefContext<'_>,
    ops: &[PatchOp<'_>],
    rtype: &str,
    p: &str,
) -> Result<(), Fail> {
    for o in ops {
        if o.op == "test" {
            continue;
        }
        let path = o.path.as_str();
        let at = touched(rtype, path);
        let mut written_refs = Vec::new();
        written(o, &mut written_refs);
        for r in written_refs {
            check_reference(refs, r, at.is_some(), p)?;
        }
        let from = o.from.as_deref().and_then(|f| touched(rtype, f));
        let Some(e) = at.or(from) else {
            continue;
        };
        let reference_of = path.strip_suffix(".reference") == Some(e);
        let sets_patient = from.is_none()
            && matches!(o.op, "add" | "replace" | "insert")
            && (path == e || reference_of)
            && o.value
                .is_some_and(|v| names_patient(refs, v, p, reference_of));
        if !sets_patient {
            return Err(fail(
                Reason::PatientCompartmentViolation,
                format!(
                    "the patch `{}` touches {rtype}.{e}: patient/ scopes may only set it to Patient/{p}",
                    o.op
                ),
            ));
        }
    }
    Ok(())
}

/// Whether a written value is a Reference to the context patient (or a
/// list of them), or with `bare` the `reference` string itself.
fn names_patient(refs: &RefContext<'_>, v: &Value, p: &str, bare: bool) -> bool {
    let r = match (v, bare) {
        (Value::String(s), true) => s.as_str(),
        (Value::Array(a), false) => {
            return !a.is_empty() && a.iter().all(|x| names_patient(refs, x, p, false))
        }
        (Value::Object(o), false) => match o.get("reference") {
            Some(Value::String(s)) => s,
            _ => return false,
        },
        _ => return false,
    };
    refs.target(r) == Target::Patient(p)
}
