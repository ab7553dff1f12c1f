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
    pub(super) op: &'v str,
    /// The element path it writes or removes (element names, list indices
    /// dropped); `None`: a FHIRPath the gateway cannot read as a path.
    path: Option<Vec<&'v str>>,
    /// Where `move`/`copy` take their value from (JSON Patch).
    from: Option<Vec<&'v str>>,
    value: Option<&'v Value>,
}

fn unreadable(message: String) -> Fail {
    fail(
        Reason::InvalidRequest,
        format!("the patch cannot be read: {message}"),
    )
}

/// The operations of a patch document (`Err`: 400, the patch is not a
/// well-formed JSON Patch or FHIRPath Patch).
pub(super) fn read_patch<'v>(doc: &'v Value, rtype: &str) -> Result<Vec<PatchOp<'v>>, Fail> {
    match doc {
        Value::Array(ops) => ops.iter().map(json_patch_op).collect(),
        _ => match doc.get("parameter").and_then(Value::as_array) {
            Some(ops) => ops.iter().map(|o| fhirpath_op(o, rtype)).collect(),
            None => Err(unreadable(
                "a FHIRPath Patch needs Parameters.parameter (one `operation` each)".into(),
            )),
        },
    }
}

fn str_field<'v>(o: &'v Value, name: &str) -> Option<&'v str> {
    o.get(name).and_then(Value::as_str)
}

/// A JSON Pointer as element names (indices and `-` dropped).
fn pointer(p: &str) -> Result<Vec<&str>, Fail> {
    if !(p.is_empty() || p.starts_with('/')) {
        return Err(unreadable(format!("`{p}` is not a JSON Pointer")));
    }
    let mut out = Vec::new();
    for seg in p.split('/').skip(1) {
        // `~` must escape `0` or `1`: escaped names never equal FHIR element
        // names, so they stay as they are.
        let mut chars = seg.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(unreadable(format!(
                    "`{p}` has a `~` that escapes neither 0 nor 1"
                )));
            }
        }
        if seg != "-" && !(!seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit())) {
            out.push(seg);
        }
    }
    Ok(out)
}

fn json_patch_op(o: &Value) -> Result<PatchOp<'_>, Fail> {
    let op = str_field(o, "op").unwrap_or("");
    let path = str_field(o, "path")
        .ok_or_else(|| unreadable("every JSON Patch operation needs `op` and `path`".into()))?;
    let from = match op {
        "move" | "copy" => {
            Some(pointer(str_field(o, "from").ok_or_else(|| {
                unreadable(format!("a `{op}` operation needs `from`"))
            })?)?)
        }
        "add" | "replace" | "test" | "remove" => None,
        _ => {
            return Err(unreadable(format!(
                "unknown JSON Patch op `{}` (add, remove, replace, move, copy, test)",
                op.chars().take(20).collect::<String>()
            )))
        }
    };
    let value = o.get("value");
    if value.is_none() && matches!(op, "add" | "replace" | "test") {
        return Err(unreadable(format!("an `{op}` operation needs `value`")));
    }
    Ok(PatchOp {
        op,
        path: Some(pointer(path)?),
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
    segs.map(|s| {
        let name = match s.split_once('[') {
            Some((n, i)) => i
                .strip_suffix(']')
                .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
                .map(|_| n)?,
            None => s,
        };
        let plain = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && name.bytes().all(|b| b.is_ascii_alphanumeric());
        plain.then_some(name)
    })
    .collect()
}

fn fhirpath_op<'v>(o: &'v Value, rtype: &str) -> Result<PatchOp<'v>, Fail> {
    let parts = match (
        str_field(o, "name"),
        o.get("part").and_then(Value::as_array),
    ) {
        (Some("operation"), Some(parts)) => parts,
        _ => {
            return Err(unreadable(
                "every FHIRPath Patch parameter is an `operation` with parts".into(),
            ))
        }
    };
    let part = |name: &str| parts.iter().find(|p| str_field(p, "name") == Some(name));
    let text = |name: &str| part(name).and_then(|p| str_field(p, "valueString"));
    let op = part("type")
        .and_then(|p| str_field(p, "valueCode"))
        .unwrap_or("");
    if !matches!(op, "add" | "insert" | "delete" | "replace" | "move") {
        return Err(unreadable(format!(
            "unknown FHIRPath Patch type `{}` (add, insert, delete, replace, move)",
            op.chars().take(20).collect::<String>()
        )));
    }
    let raw =
        text("path").ok_or_else(|| unreadable(format!("the `{op}` operation has no path")))?;
    let mut path = fhirpath(raw, rtype);
    if op == "add" {
        let name =
            text("name").ok_or_else(|| unreadable("an `add` operation needs a name".into()))?;
        if let Some(p) = path.as_mut() {
            p.push(name);
        }
    }
    // The value: one `value[x]`, or parts building a complex value.
    let value = part("value").and_then(|p| {
        p.as_object()?
            .iter()
            .find(|(k, _)| k.starts_with("value") || *k == "part")
            .map(|(_, v)| v)
    });
    if value.is_none() && matches!(op, "add" | "insert" | "replace") {
        return Err(unreadable(format!("an `{op}` operation needs a value")));
    }
    Ok(PatchOp {
        op,
        path,
        from: None,
        value,
    })
}

/// The reference strings an operation writes: `reference` members of its
/// value, or the value itself when the path ends in `reference`.
fn written<'v>(o: &PatchOp<'v>) -> Vec<&'v str> {
    let mut out = Vec::new();
    if o.op == "test" {
        return out;
    }
    if let Some(v) = o.value {
        match (v, o.path.as_deref().and_then(<[&str]>::last)) {
            (Value::String(s), Some(&"reference")) => out.push(s.as_str()),
            _ => references(v, &mut out),
        }
    }
    out
}

/// Every reference string the patch writes.
pub(super) fn patch_references<'v>(ops: &[PatchOp<'v>]) -> Vec<&'v str> {
    ops.iter().flat_map(written).collect()
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
    let elements: Vec<Vec<&str>> = compartment::params(rtype)
        .unwrap_or_default()
        .iter()
        .flat_map(|c| c.paths.iter().map(|path| path.split('.').collect()))
        .collect();
    let touched = |path: &[&str]| {
        elements
            .iter()
            .find(|e| e.starts_with(path) || path.starts_with(e))
    };
    for o in ops.iter().filter(|o| o.op != "test") {
        let Some(path) = o.path.as_deref() else {
            return Err(fail(
                Reason::InvalidRequest,
                format!("under patient/ scopes a FHIRPath Patch path must be a plain element path ({rtype}.element.element, `[n]` allowed), so the gateway can see what it changes"),
            ));
        };
        let element = touched(path);
        for r in written(o) {
            check_reference(refs, r, element.is_some(), p)?;
        }
        let from_touches = o.from.as_deref().and_then(touched);
        let Some(e) = element.or(from_touches) else {
            continue;
        };
        let sets_patient = from_touches.is_none()
            && matches!(o.op, "add" | "replace" | "insert")
            && o.value.is_some_and(|v| {
                (path == e.as_slice() && names_patient(refs, v, p, false))
                    || (path.split_last() == Some((&"reference", e.as_slice()))
                        && names_patient(refs, v, p, true))
            });
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
    let is_patient = |r: Option<&str>| r.is_some_and(|r| refs.target(r) == Target::Patient(p));
    match v {
        Value::String(s) if bare => is_patient(Some(s)),
        Value::Object(o) if !bare => is_patient(o.get("reference").and_then(Value::as_str)),
        Value::Array(a) if !bare => {
            !a.is_empty() && a.iter().all(|x| names_patient(refs, x, p, false))
        }
        _ => false,
    }
}
