//! The write pre-check (`Obligation::CheckStored`): before an update, patch
//! or delete by id under a patient/ scope is forwarded, the filter reads
//! the stored resource through `upstream.cluster` and this decides on the
//! answer. Pure: the shell hands in the read's status, headers and body.

use super::references::{other_patient, RefContext};
use super::resource::in_patient_compartment;
use crate::decision::Obligation;
use crate::fhir::{is_valid_id, InteractionKind};
use serde_json::Value;

/// What to do with the write after the read of the stored resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Forward it; `if_match` is the checked version (`W/"3"`), sent as
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
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let update = *interaction == InteractionKind::Update;
    let unusable = || {
        Stored::Unavailable(format!("the FHIR server's answer ({status}) to the read of {what} before the write cannot be used (not the resource as JSON without Content-Encoding)"))
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
        Ok(r) if header("content-encoding").map_or(true, |e| e == "identity") => r,
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
            "{what} is stored in the record of another patient than Patient/{p} (its compartment references say so); under patient/ scopes only the patient's own resources are written"
        ));
    }
    let version = r
        .get("meta")
        .and_then(|m| m.get("versionId"))
        .and_then(Value::as_str)
        .filter(|v| is_valid_id(v))
        .map(|v| format!("W/\"{v}\""));
    let etag = header("etag").filter(|e| {
        let tag = e.strip_prefix("W/").unwrap_or(e);
        (3..=70).contains(&tag.len())
            && tag.starts_with('"')
            && tag.ends_with('"')
            && tag.bytes().all(|b| b.is_ascii_graphic())
    });
    Stored::Allow {
        if_match: etag.map(str::to_string).or(version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre(kind: InteractionKind, entry: Option<usize>) -> Obligation {
        Obligation::CheckStored {
            resource_type: "Observation".into(),
            id: "o1".into(),
            patient: "123".into(),
            interaction: kind,
            entry,
        }
    }

    #[test]
    fn answers() {
        let own = br#"{"resourceType":"Observation","id":"o1","meta":{"versionId":"3"},"subject":{"reference":"Patient/123"}}"#;
        let other =
            br#"{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/456"}}"#;
        let mixed = br#"{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/123"},"basedOn":[{"reference":"https://x/Patient/456"}]}"#;
        let etag = vec![("etag".to_string(), "W/\"7\"".to_string())];
        let gz = vec![("content-encoding".to_string(), "gzip".to_string())];
        use InteractionKind::{Delete, Patch, Update};
        let allow = |v: Option<&str>| Stored::Allow {
            if_match: v.map(str::to_string),
        };
        for (o, status, headers, body, want) in [
            (
                pre(Update, None),
                200,
                &etag,
                &own[..],
                allow(Some("W/\"7\"")),
            ),
            (
                pre(Update, None),
                200,
                &vec![],
                &own[..],
                allow(Some("W/\"3\"")),
            ),
            (
                pre(Delete, None),
                200,
                &vec![],
                &own[..],
                allow(Some("W/\"3\"")),
            ),
            (pre(Update, None), 404, &vec![], &b""[..], allow(None)),
            (pre(Patch, None), 404, &vec![], &b""[..], Stored::Relay),
            (pre(Delete, None), 410, &vec![], &b""[..], Stored::Relay),
        ] {
            assert_eq!(
                check_stored(&o, status, headers, body, None),
                want,
                "{status}"
            );
        }
        for (o, status, headers, body) in [
            (pre(Update, None), 200, &vec![], &other[..]),
            (pre(Patch, None), 200, &vec![], &mixed[..]),
            (pre(Update, None), 410, &vec![], &b""[..]),
            (pre(Delete, Some(2)), 404, &vec![], &b""[..]),
        ] {
            assert!(
                matches!(
                    check_stored(&o, status, headers, body, None),
                    Stored::Refuse(_)
                ),
                "{status} {}",
                String::from_utf8_lossy(body)
            );
        }
        for (status, headers, body) in [
            (500, &vec![], &own[..]),
            (401, &vec![], &own[..]),
            (200, &gz, &own[..]),
            (200, &vec![], &b"<Observation/>"[..]),
            (
                200,
                &vec![],
                &br#"{"resourceType":"Observation","id":"o2"}"#[..],
            ),
        ] {
            assert!(
                matches!(
                    check_stored(&pre(Update, None), status, headers, body, None),
                    Stored::Unavailable(_)
                ),
                "{status}"
            );
        }
    }
}
