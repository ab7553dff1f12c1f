//! The write pre-check (`Obligation::CheckStored`): before an update, patch
//! or delete by id under a patient/ scope is forwarded, the filter reads
//! the stored resource through `upstream.cluster` and this decides on the
//! answer. Pure: the shell hands in the read's status, headers and body.
//! Tested in `core/tests/decision_corpus/write_hardening.rs`.

use super::references::{other_patient, RefContext};
use super::resource::in_patient_compartment;
use crate::decision::Obligation;
use crate::fhir::{is_valid_id, InteractionKind};
use serde_json::Value;

/// What to do with the write after the read of the stored resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Forward it; `if_match` is the checked version (`W/"3"`, from
    /// `meta.versionId`), sent as
    /// `If-Match` where the filter still can, so that a resource changed
    /// since the read is not overwritten.
    Allow { if_match: Option<String> },
    /// Refuse it (403 `patient_compartment_violation`), saying why.
    Refuse(String),
    /// Answer with the server's own answer to the read (404/410 to a patch
    /// or delete: there is nothing to write).
    Relay,
    /// The server's answer cannot be used (502 `upstream_unavailable`):
    /// fail closed, saying why.
    Unavailable(String),
}

/// Decide a write on the read of its stored resource: `status`, the
/// response `headers` (lower-case names) and `body`.
pub fn check_stored(
    obligation: &Obligation,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    base_url: Option<&str>,
) -> Stored {
    let Obligation::CheckStored {
        resource_type: t,
        id,
        patient: p,
        interaction,
        entry,
    } = obligation
    else {
        return Stored::Unavailable("not a write pre-check".into());
    };
    let what = match entry {
        Some(i) => format!("Bundle.entry[{i}]: {t}/{id}"),
        None => format!("{t}/{id}"),
    };
    let update = *interaction == InteractionKind::Update;
    let unusable = || {
        Stored::Unavailable(format!("the FHIR server's answer ({status}) to the read of {what} before the write is unusable (not the resource as JSON without Content-Encoding)"))
    };
    match status {
        200 => {}
        404 if update => return Stored::Allow { if_match: None },
        404 | 410 if entry.is_none() && !update => return Stored::Relay,
        404 | 410 => {
            return Stored::Refuse(format!(
                "{what} does not exist or was deleted ({status}), so whose it was cannot be checked; create a new resource with POST instead"
            ))
        }
        _ => return unusable(),
    }
    let r = match crate::json::from_slice_strict(body) {
        Ok(r)
            if !headers
                .iter()
                .any(|(n, v)| n == "content-encoding" && v != "identity") =>
        {
            r
        }
        _ => return unusable(),
    };
    let field = |name: &str| r.get(name).and_then(Value::as_str);
    if field("resourceType") != Some(t) || field("id") != Some(id) {
        return unusable();
    }
    let refs = RefContext {
        base_url,
        bundle: &[],
    };
    if !in_patient_compartment(&r, p, base_url) || other_patient(&refs, &r, p).is_some() {
        return Stored::Refuse(format!(
            "{what} is in the record of another patient than Patient/{p}; patient/ scopes write only the patient's resources"
        ));
    }
    // The checked version (`meta.versionId`, which HAPI and sekmet-fhir
    // return and make the ETag of).
    let version = r
        .get("meta")
        .and_then(|m| m.get("versionId")?.as_str())
        .filter(|v| is_valid_id(v));
    Stored::Allow {
        if_match: version.map(|v| format!("W/\"{v}\"")),
    }
}
