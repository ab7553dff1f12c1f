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
    /// Forward it; `if_match` is the checked version of an update or patch
    /// sent alone (`W/"3"`, from `meta.versionId`), sent as
    /// `If-Match` where the filter still can, so that a resource changed
    /// since the read is not overwritten.
    Allow { if_match: Option<String> },
    /// Refuse it (403 `patient_compartment_violation`), saying why.
    Refuse(String),
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
    let what = format!("{t}/{id}");
    let unusable = || {
        Stored::Unavailable(format!("the FHIR server's answer ({status}) to the read of {what} is unusable (not its JSON, or encoded)"))
    };
    match status {
        200 => {}
        410 if *interaction == InteractionKind::Update => {
            return Stored::Refuse(format!(
                "{what} was deleted, so whose it was cannot be checked; create a new resource with POST instead"
            ))
        }
        // Nothing stored: an update is a create (the body rule decided);
        // a patch or delete is answered 404/410 by the server itself.
        404 | 410 => return Stored::Allow { if_match: None },
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
            "{what} is in another patient's record than Patient/{p}"
        ));
    }
    // The checked version (`meta.versionId`, which HAPI and sekmet-fhir
    // return and make the ETag of).
    let version = r
        .get("meta")
        .and_then(|m| m.get("versionId")?.as_str())
        .filter(|v| is_valid_id(v));
    // Not for deletes (servers differ on If-Match there), nor Bundle entries.
    let pinned = entry.is_none() && *interaction != InteractionKind::Delete;
    Stored::Allow {
        if_match: version.filter(|_| pinned).map(|v| format!("W/\"{v}\"")),
    }
}
