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
    match status {
        200 => {}
        404 if update => return Stored::Allow { if_match: None },
        410 if update => {
            return Stored::Refuse(format!(
                "{what} was deleted, so whose it was cannot be checked; create a new resource with POST instead"
            ))
        }
        404 | 410 if entry.is_some() => {
            return Stored::Refuse(format!("{what} does not exist ({status})"))
        }
        404 | 410 => return Stored::Relay,
        _ => {
            return Stored::Unavailable(format!(
                "the FHIR server answered {status} to the pre-check read of {what}"
            ))
        }
    }
    if header("content-encoding").is_some_and(|e| !e.eq_ignore_ascii_case("identity")) {
        return Stored::Unavailable(format!(
            "the FHIR server answered the pre-check read of {what} with a Content-Encoding"
        ));
    }
    let Ok(r) = crate::json::from_slice_strict(body) else {
        return Stored::Unavailable(format!(
            "the FHIR server's answer to the pre-check read of {what} is not JSON"
        ));
    };
    let field = |name: &str| r.get(name).and_then(Value::as_str);
    if field("resourceType") != Some(t) || field("id") != Some(id) {
        return Stored::Unavailable(format!(
            "the pre-check read of {what} returned another resource"
        ));
    }
    let refs = RefContext {
        base_url,
        bundle: &[],
    };
    if !in_patient_compartment(&r, p, base_url) {
        return Stored::Refuse(format!(
            "{what} is not in the compartment of Patient/{p}: under patient/ scopes only the patient's own resources are written"
        ));
    }
    if let Some(other) = other_patient(&refs, &r, p) {
        return Stored::Refuse(format!(
            "{what} also refers to another patient (`{}`), so it is in that patient's record too",
            other.chars().take(80).collect::<String>()
        ));
    }
    let version = r
        .get("meta")
        .and_then(|m| m.get("versionId"))
        .and_then(Value::as_str)
        .filter(|v| is_valid_id(v));
    let etag = header("etag").filter(|e| {
        let tag = e.strip_prefix("W/").unwrap_or(e);
        tag.len() <= 70
            && tag.len() >= 3
            && tag.starts_with('"')
            && tag.ends_with('"')
            && tag.bytes().all(|b| b.is_ascii_graphic())
    });
    Stored::Allow {
        if_match: etag
            .map(str::to_string)
            .or_else(|| version.map(|v| format!("W/\"{v}\""))),
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
