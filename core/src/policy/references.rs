//! The references a written resource carries: what each `reference` string
//! names, read the way the servers behind the gateway read it (HAPI resolves
//! a `Type?criteria` in any reference field by a search on its type, sekmet
//! resolves any `…/Patient/{id}` by its suffix and counts a reference in any
//! field as compartment membership), and the rule for resources written
//! under patient/ scopes.

use super::compartment;
use super::need::{fail, Fail};
use crate::decision::Reason;
use crate::fhir::resource_types::is_resource_type;
use crate::fhir::{is_valid_id, literal};
use serde_json::Value;

/// What one `Reference.reference` string names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target<'r> {
    /// A contained resource (`#id`), a URN, a resource of another type, or
    /// an external URL that names no Patient.
    Other,
    /// `Patient/{id}` (optionally `/_history/{v}`), relative or on `fhir_base_url`.
    Patient(&'r str),
    /// A Patient named in a form servers read differently: another base or
    /// host (`http://` of the base, host case, ports), or a path prefix.
    ForeignPatient(&'r str),
    /// `Type?criteria`: the server resolves it by a search on `Type`.
    Conditional(&'r str, &'r str),
    /// Not a reference every server reads the same way.
    Odd,
}

/// A `PUT Patient/{id}` entry of a Bundle: its `fullUrl` and the id it
/// writes. (A Patient another entry creates or matches by criteria is not
/// the context patient: a reference to it is not one to the patient.)
pub(crate) type PatientEntry = (String, String);

/// Where references are read: the configured base URL and the Patient
/// entries of the Bundle being decided (empty outside Bundles).
#[derive(Clone, Copy, Default)]
pub(crate) struct RefContext<'a> {
    pub(crate) base_url: Option<&'a str>,
    pub(crate) bundle: &'a [PatientEntry],
}

impl<'a> RefContext<'a> {
    /// What `r` names (a Bundle entry's `fullUrl` first).
    pub(crate) fn target<'r>(&self, r: &'r str) -> Target<'r>
    where
        'a: 'r,
    {
        match self.bundle.iter().find(|(url, _)| url == r) {
            Some((_, id)) => Target::Patient(id),
            None => target(r, self.base_url),
        }
    }
}

/// What a reference string names (see [`Target`]): a literal reference by
/// the one grammar ([`literal`]), else what servers that read it otherwise
/// might take it for.
pub(crate) fn target<'r>(r: &'r str, base_url: Option<&str>) -> Target<'r> {
    if let Some((ty, criteria)) = r.split_once('?') {
        // HAPI reads `+` in match URLs literally; the gateway's query parser
        // as a space: refuse it rather than guess.
        return if is_resource_type(ty) && !criteria.contains(['+', ' ']) {
            Target::Conditional(ty, criteria)
        } else {
            Target::Odd
        };
    }
    if r.is_empty()
        || r.bytes()
            .any(|b| !b.is_ascii_graphic() || b == b'%' || b == b'\\')
    {
        return Target::Odd;
    }
    if r.starts_with('#') || r.starts_with("urn:") {
        return Target::Other;
    }
    if let Some(l) = literal(r, base_url) {
        return if l.resource_type == "Patient" {
            Target::Patient(l.id)
        } else {
            Target::Other
        };
    }
    let on_base = base_url
        .and_then(|b| r.strip_prefix(b))
        .and_then(|rest| rest.strip_prefix('/'));
    let absolute = on_base.is_none() && (r.contains(':') || r.starts_with('/'));
    let segments: Vec<&str> = on_base.unwrap_or(r).split('/').collect();
    // Another base, a path prefix or an odd form: a Patient by its suffix
    // (as sekmet reads it), else by any `patient` segment.
    let tail = match segments.as_slice() {
        [.., ty, id, "_history", _] | [.., ty, id] => Some((*ty, *id)),
        _ => None,
    };
    match tail {
        Some((ty, id)) if ty.eq_ignore_ascii_case("Patient") && is_valid_id(id) => {
            Target::ForeignPatient(id)
        }
        _ if segments.iter().any(|s| s.eq_ignore_ascii_case("Patient")) || !absolute => Target::Odd,
        _ => Target::Other,
    }
}

/// Every `reference` string in a JSON value (contained resources,
/// extensions and backbone elements included), in document order.
pub(crate) fn references<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::String(s) if k == "reference" => out.push(s),
                    _ => references(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

/// Values reached by a dotted element path (arrays are flattened).
pub(crate) fn walk<'v>(v: &'v Value, path: &str, out: &mut Vec<&'v Value>) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let Some(child) = v.get(head) else { return };
    let items: Vec<&Value> = match child {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    for it in items {
        match rest {
            Some(r) => walk(it, r, out),
            None => out.push(it),
        }
    }
}

/// The elements at the compartment paths of the resource's type (the
/// References that may name its patient).
fn compartment_elements(resource: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let rtype = resource.get("resourceType").and_then(Value::as_str);
    for p in rtype.and_then(compartment::params).unwrap_or_default() {
        for path in p.paths {
            walk(resource, path, &mut out);
        }
    }
    out
}

/// The `reference` strings at the compartment paths of the resource's type.
pub(crate) fn compartment_references(resource: &Value) -> Vec<&str> {
    compartment_elements(resource)
        .into_iter()
        .filter_map(|v| v.get("reference")?.as_str())
        .collect()
}

/// A compartment element of a resource written under a patient/ scope that
/// may name a patient the filter cannot see: a reference to a contained
/// resource (`#p1`) of a type in the Patient compartment (a contained
/// Patient is not the patient, whatever it says), or a reference with an
/// `identifier` and no `reference` (a logical reference a server may resolve
/// to any patient), unless its `type` names a type outside the compartment.
fn unshowable(resource: &Value, element: &Value, p: &str) -> Result<(), Fail> {
    let refuse = |what: String| {
        Err(fail(
            Reason::PatientCompartmentViolation,
            format!("{what} cannot be shown to be Patient/{p}: send `\"reference\": \"Patient/{p}\"` there"),
        ))
    };
    match element.get("reference") {
        Some(Value::String(r)) => {
            let Some(id) = r.strip_prefix('#') else {
                return Ok(());
            };
            let contained_type = resource
                .get("contained")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
                })
                .and_then(|c| c.get("resourceType")?.as_str());
            match contained_type {
                Some(t) if !compartment::in_compartment(t) => Ok(()),
                _ => refuse(format!(
                    "a patient reference to a contained resource (`{}`)",
                    r.chars().take(80).collect::<String>()
                )),
            }
        }
        None | Some(Value::Null) if element.get("identifier").is_some() => {
            match element.get("type").and_then(Value::as_str) {
                Some(t) if !compartment::in_compartment(t) => Ok(()),
                _ => refuse("a patient reference with only an `identifier`".into()),
            }
        }
        _ => Ok(()),
    }
}

/// Why a reference in a resource written under a patient/ scope is refused
/// (`in_compartment`: it lies at a compartment path of the type), or
/// whether it names the context patient `p`.
pub(crate) fn check_reference(
    refs: &RefContext<'_>,
    r: &str,
    in_compartment: bool,
    p: &str,
) -> Result<bool, Fail> {
    let short: String = r.chars().take(80).collect();
    match refs.target(r) {
        Target::Patient(id) if id == p => Ok(true),
        Target::Patient(id) | Target::ForeignPatient(id) if id != p => Err(fail(
            Reason::PatientCompartmentViolation,
            format!("the resource refers to another patient (`{short}`): patient/ scopes write only Patient/{p}'s data"),
        )),
        Target::Conditional(..) if in_compartment => Err(fail(
            Reason::PatientCompartmentViolation,
            format!("a conditional reference (`{short}`) cannot be shown to be Patient/{p}: send Patient/{p}"),
        )),
        Target::Odd | Target::ForeignPatient(_) => Err(fail(
            Reason::InvalidRequest,
            format!("servers read `{short}` differently: send Type/id or a URL under the server's base URL (fhir_base_url)"),
        )),
        _ => Ok(false),
    }
}

/// A resource written under a patient/ scope: no reference anywhere names
/// another patient (or is unreadable), and unless it is the patient's own
/// Patient, a compartment path of its type names the context patient.
pub(crate) fn check_written(
    refs: &RefContext<'_>,
    resource: &Value,
    rtype: &str,
    p: &str,
) -> Result<(), Fail> {
    let violation = |m: String| Err(fail(Reason::PatientCompartmentViolation, m));
    let found = resource.get("resourceType").and_then(Value::as_str);
    if found != Some(rtype) {
        return violation(format!(
            "the body is not a {rtype} resource (resourceType {:?})",
            found.unwrap_or("missing")
        ));
    }
    let own_patient = rtype == "Patient";
    if own_patient && resource.get("id").and_then(Value::as_str) != Some(p) {
        return violation(format!(
            "a Patient written under a patient/ scope must have id {p}"
        ));
    }
    for element in compartment_elements(resource) {
        unshowable(resource, element, p)?;
    }
    let at_compartment = compartment_references(resource);
    let mut all = Vec::new();
    references(resource, &mut all);
    let mut own = false;
    for r in all {
        let in_compartment = at_compartment.iter().any(|c| std::ptr::eq(*c, r));
        own |= check_reference(refs, r, in_compartment, p)? && in_compartment;
    }
    if own || own_patient {
        return Ok(());
    }
    violation(format!(
        "the {rtype} must refer to Patient/{p} (e.g. in {})",
        compartment::params(rtype)
            .and_then(|ps| ps.first())
            .and_then(|p| p.paths.first())
            .map(|p| format!("{rtype}.{p}"))
            .unwrap_or_else(|| "its patient reference".into())
    ))
}

/// The first reference in `resource` that names a patient other than `p`
/// (in any form), if any: a stored resource that names another patient is
/// in that patient's compartment on some servers.
pub(crate) fn other_patient<'v>(
    refs: &RefContext<'_>,
    resource: &'v Value,
    p: &str,
) -> Option<&'v str> {
    let mut all = Vec::new();
    references(resource, &mut all);
    all.into_iter().find(
        |r| matches!(refs.target(r), Target::Patient(id) | Target::ForeignPatient(id) if id != p),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let base = Some("https://h/fhir");
        for (r, want) in [
            ("Patient/1", Target::Patient("1")),
            ("Patient/1/_history/2", Target::Patient("1")),
            ("https://h/fhir/Patient/1", Target::Patient("1")),
            ("https://h/fhir/Patient/1/_history/2", Target::Patient("1")),
            ("Observation/1", Target::Other),
            ("#p1", Target::Other),
            ("urn:uuid:0c3e", Target::Other),
            ("https://terminology.example/Organization/o", Target::Other),
            ("http://h/fhir/Patient/1", Target::ForeignPatient("1")),
            ("HTTPS://H/fhir/Patient/1", Target::ForeignPatient("1")),
            ("https://h:443/fhir/Patient/1", Target::ForeignPatient("1")),
            ("https://evil/Patient/2", Target::ForeignPatient("2")),
            ("https://evil/PATIENT/2", Target::ForeignPatient("2")),
            ("foo/bar/Patient/2", Target::ForeignPatient("2")),
            (
                "https://h/fhir/x/Patient/2/_history/1",
                Target::ForeignPatient("2"),
            ),
            (
                "Patient?identifier=urn:mrn|2",
                Target::Conditional("Patient", "identifier=urn:mrn|2"),
            ),
            ("Patient?_id=1", Target::Conditional("Patient", "_id=1")),
            ("patient?identifier=x", Target::Odd),
            ("Patient/?identifier=x", Target::Odd),
            ("https://h/fhir/Patient?identifier=x", Target::Odd),
            ("Patient/1?x", Target::Odd),
            ("Patient?name=a+b", Target::Odd),
            ("Patient/2/", Target::Odd),
            ("patient/1", Target::ForeignPatient("1")),
            (" Patient/1", Target::Odd),
            ("Patient/1 ", Target::Odd),
            ("Patient/1%32", Target::Odd),
            ("Patient/a_b", Target::Odd),
            ("Patient/1/_history/", Target::ForeignPatient("1")),
            ("Foo/1", Target::Odd),
            ("Observation/1/", Target::Odd),
            ("", Target::Odd),
            ("https://h/fhir/Patient/", Target::Odd),
        ] {
            assert_eq!(target(r, base), want, "{r:?}");
        }
        assert_eq!(
            target("https://h/fhir/Patient/1", None),
            Target::ForeignPatient("1")
        );
    }

    #[test]
    fn bundle_entries_resolve_first() {
        let bundle = vec![("urn:uuid:a".to_string(), "123".to_string())];
        let refs = RefContext {
            base_url: None,
            bundle: &bundle,
        };
        assert_eq!(refs.target("urn:uuid:a"), Target::Patient("123"));
        assert_eq!(refs.target("urn:uuid:c"), Target::Other);
    }
}
