//! PATCH documents: JSON Patch (RFC 6902) and FHIRPath Patch (a FHIR
//! `Parameters`), read into operations on element paths, the references
//! they write, and the rule for patches under patient/ scopes: an operation
//! that touches a compartment element of the type must set it to the
//! context patient.

use super::compartment;
use super::need::{fail, Fail};
use super::references::{check_reference, references, RefContext, Target};
use crate::decision::Reason;
use serde_json::Value;

/// One patch operation as the gateway reads it.
pub(super) struct PatchOp<'v> {
    op: &'v str,
    /// The element path it writes or removes (element names, list indices
    /// dropped); `None`: a FHIRPath the gateway cannot read as a path.
    path: Option<Vec<&'v str>>,
    /// Where `move`/`copy` take their value from (JSON Patch).
    from: Option<Vec<&'v str>>,
    value: Option<&'v Value>,
}

fn unreadable() -> Fail {
    fail(
        Reason::InvalidRequest,
        "the patch is not a well-formed JSON Patch (an array of {op, path, from?, value?}; op add, remove, replace, move, copy, test) or FHIRPath Patch (Parameters of `operation` parts type, path, name, value)",
    )
}

/// The operations of a patch document (`Err`: 400, not a well-formed JSON
/// Patch or FHIRPath Patch).
pub(super) fn read_patch<'v>(doc: &'v Value, rtype: &str) -> Result<Vec<PatchOp<'v>>, Fail> {
    let (json_patch, items) = match doc {
        Value::Array(ops) => (true, ops),
        _ => (
            false,
            doc.get("parameter")
                .and_then(Value::as_array)
                .ok_or_else(unreadable)?,
        ),
    };
    let mut ops = Vec::with_capacity(items.len());
    for item in items {
        let op = if json_patch {
            json_patch_op(item)
        } else {
            fhirpath_op(item, rtype)
        };
        ops.push(op.ok_or_else(unreadable)?);
    }
    Ok(ops)
}

fn text<'v>(o: &'v Value, name: &str) -> Option<&'v str> {
    o.get(name)?.as_str()
}

/// A JSON Pointer as element names (list indices and `-` dropped). A `~`
/// must escape `0` or `1`; escaped names never equal FHIR element names,
/// so they are kept as written.
fn pointer(p: &str) -> Option<Vec<&str>> {
    if !(p.is_empty() || p.starts_with('/')) {
        return None;
    }
    let mut out = Vec::new();
    for seg in p.split('/').skip(1) {
        let mut escape = false;
        for c in seg.chars() {
            if escape && c != '0' && c != '1' {
                return None;
            }
            escape = c == '~';
        }
        if escape {
            return None;
        }
        if seg != "-" && (seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_digit())) {
            out.push(seg);
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
        path: Some(pointer(text(o, "path")?)?),
        from,
        value,
    })
}

/// A FHIRPath Patch path as element names, when it is a plain element path
/// `Type.element[.element]` (an `[n]` index allowed) on the patched type.
fn fhirpath<'v>(path: &'v str, rtype: &str) -> Option<Vec<&'v str>> {
    let mut segs = path.split('.');
    if segs.next() != Some(rtype) {
        return None;
    }
    let mut out = Vec::new();
    for s in segs {
        let name = match s.split_once('[') {
            Some((n, i)) => {
                let i = i.strip_suffix(']')?;
                if i.is_empty() || !i.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                n
            }
            None => s,
        };
        if !name.starts_with(|c: char| c.is_ascii_lowercase())
            || !name.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return None;
        }
        out.push(name);
    }
    Some(out)
}

fn fhirpath_op<'v>(o: &'v Value, rtype: &str) -> Option<PatchOp<'v>> {
    if text(o, "name") != Some("operation") {
        return None;
    }
    let (mut op, mut path, mut name, mut value) = ("", None, None, None);
    for part in o.get("part")?.as_array()? {
        match text(part, "name")? {
            "type" => op = text(part, "valueCode")?,
            "path" => path = Some(text(part, "valueString")?),
            "name" => name = Some(text(part, "valueString")?),
            // One `value[x]`, or parts building a complex value.
            "value" => {
                value = part
                    .as_object()?
                    .iter()
                    .find(|(k, _)| k.starts_with("value") || *k == "part")
                    .map(|(_, v)| v)
            }
            _ => {}
        }
    }
    let mut path = fhirpath(path?, rtype);
    match op {
        "add" => {
            let name = name?;
            if let Some(p) = path.as_mut() {
                p.push(name);
            }
        }
        "insert" | "replace" | "delete" | "move" => {}
        _ => return None,
    }
    if value.is_none() && !matches!(op, "delete" | "move") {
        return None;
    }
    Some(PatchOp {
        op,
        path,
        from: None,
        value,
    })
}

/// The reference strings one operation writes: `reference` members of its
/// value, or the value itself when the path ends in `reference`.
fn written<'v>(o: &PatchOp<'v>, out: &mut Vec<&'v str>) {
    match (o.op, o.value) {
        ("test", _) | (_, None) => {}
        (_, Some(Value::String(s)))
            if o.path.as_deref().and_then(<[&str]>::last) == Some(&"reference") =>
        {
            out.push(s)
        }
        (_, Some(v)) => references(v, out),
    }
}

/// Every reference string the patch writes.
pub(super) fn patch_references<'v>(ops: &[PatchOp<'v>]) -> Vec<&'v str> {
    let mut out = Vec::new();
    for o in ops {
        written(o, &mut out);
    }
    out
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
    let mut elements: Vec<Vec<&str>> = Vec::new();
    for c in compartment::params(rtype).unwrap_or_default() {
        for path in c.paths {
            elements.push(path.split('.').collect());
        }
    }
    let touched = |path: &[&str]| {
        elements
            .iter()
            .position(|e| e.starts_with(path) || path.starts_with(e))
    };
    for o in ops {
        if o.op == "test" {
            continue;
        }
        let Some(path) = o.path.as_deref() else {
            return Err(fail(
                Reason::InvalidRequest,
                "under patient/ scopes a FHIRPath Patch path must be a plain element path (Type.element.element, `[n]` allowed)",
            ));
        };
        let at = touched(path);
        let mut written_refs = Vec::new();
        written(o, &mut written_refs);
        for r in written_refs {
            check_reference(refs, r, at.is_some(), p)?;
        }
        let from = o.from.as_deref().and_then(touched);
        let Some(e) = at.or(from).and_then(|i| elements.get(i)) else {
            continue;
        };
        let reference_of = path.split_last() == Some((&"reference", e.as_slice()));
        let sets_patient = from.is_none()
            && matches!(o.op, "add" | "replace" | "insert")
            && (path == e.as_slice() || reference_of)
            && o.value
                .is_some_and(|v| names_patient(refs, v, p, reference_of));
        if !sets_patient {
            return Err(fail(
                Reason::PatientCompartmentViolation,
                format!(
                    "the patch `{}` touches {rtype}.{}, which ties the resource to its patient; under patient/ scopes a patch may only set it to Patient/{p}",
                    o.op,
                    e.join(".")
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
