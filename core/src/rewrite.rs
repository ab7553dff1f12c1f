//! The request the upstream receives when an allow holds only narrowed
//! ([`Narrowing`]): the added parameters go in front of the query as sent
//! (a server or container that stops reading after a number of parameters
//! still reads them), and `Prefer: handling=strict` replaces any client
//! `handling=` token, the other `Prefer` tokens kept. A search sent with
//! `Prefer: respond-async` is forwarded without it (`synchronous`): its
//! answer comes back synchronously, so the response checks apply (R4
//! async.html lets a server answer so).

use crate::decision::{Narrowing, Rewrite};
use crate::fhir::{form_encode, preference_is, RequestParts};

/// The [`Rewrite`] of `req` that `narrowing` asks for; `synchronous`: the
/// `respond-async` preference is dropped too (an empty `prefer` value
/// removes the header).
pub fn rewrite(req: &RequestParts<'_>, narrowing: &Narrowing, synchronous: bool) -> Rewrite {
    let path = if narrowing.added.is_empty() {
        req.path.to_string()
    } else {
        let (path, query) = req.path.split_once('?').unwrap_or((req.path, ""));
        let added: Vec<String> = narrowing
            .added
            .iter()
            .map(|a| form_encode(&a.name, &a.value))
            .collect();
        let mut target = format!("{path}?{}", added.join("&"));
        if !query.is_empty() {
            target.push('&');
            target.push_str(query);
        }
        target
    };
    let mut headers = Vec::new();
    let asks_async = synchronous
        && req
            .header_values("prefer")
            .flat_map(|v| v.split([',', ';']))
            .any(|t| preference_is(t, "respond-async"));
    if narrowing.strict || asks_async {
        headers.push((
            "prefer".to_string(),
            prefer_without(req, narrowing.strict, asks_async),
        ));
    }
    Rewrite {
        path,
        headers,
        added: narrowing.added.iter().map(|a| a.name.clone()).collect(),
    }
}

/// The request's `Prefer` tokens; `strict`: without `handling`, then
/// `handling=strict`; `sync`: without `respond-async`. A dropped preference
/// goes wherever it stands: as a preference of its own (with its
/// parameters) and as a `;`-parameter of another preference
/// (`return=minimal; handling=lenient`), which servers that split the header
/// on `;` as well as `,` read as a preference: one of them taking the first
/// `handling` it meets would otherwise stay lenient and could ignore a pin.
fn prefer_without(req: &RequestParts<'_>, strict: bool, sync: bool) -> String {
    let dropped = |part: &str| {
        strict && preference_is(part, "handling") || sync && preference_is(part, "respond-async")
    };
    let mut tokens: Vec<String> = req
        .header_values("prefer")
        .flat_map(|v| v.split(','))
        .filter_map(|token| {
            let mut parts = token.split(';').map(str::trim).filter(|p| !p.is_empty());
            let preference = parts.next()?;
            if dropped(preference) {
                return None;
            }
            let kept: Vec<&str> = std::iter::once(preference)
                .chain(parts.filter(|p| !dropped(p)))
                .collect();
            Some(kept.join("; "))
        })
        .collect();
    if strict {
        tokens.push("handling=strict".to_string());
    }
    tokens.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::AddedParam;

    fn req<'a>(path: &'a str, prefer: &[&str]) -> RequestParts<'a> {
        RequestParts {
            method: "GET",
            path,
            headers: prefer
                .iter()
                .map(|v| ("prefer".to_string(), v.to_string()))
                .collect(),
            body: None,
        }
    }

    #[test]
    fn added_parameters_come_first_and_prefer_is_strict() {
        let pin = Narrowing {
            added: vec![AddedParam::new("patient", "Patient/123")],
            strict: true,
        };
        let lab = Narrowing {
            added: vec![AddedParam::new(
                "category",
                "http://x|lab,http://x|vital signs",
            )],
            strict: true,
        };
        let strict = Narrowing {
            added: Vec::new(),
            strict: true,
        };
        for (path, prefer, n, want_path, want_prefer) in [
            ("/fhir/Observation?code=x", &[][..], &pin, "/fhir/Observation?patient=Patient%2F123&code=x", Some("handling=strict")),
            ("/fhir/Observation", &[], &pin, "/fhir/Observation?patient=Patient%2F123", Some("handling=strict")),
            ("/fhir/Observation?", &[], &pin, "/fhir/Observation?patient=Patient%2F123", Some("handling=strict")),
            ("/fhir/Observation/_search", &["return=minimal, handling=lenient"], &pin, "/fhir/Observation/_search?patient=Patient%2F123", Some("return=minimal, handling=strict")),
            ("/fhir/Observation?patient=1", &["handling=lenient", "respond-async"], &lab, "/fhir/Observation?category=http%3A%2F%2Fx%7Clab%2Chttp%3A%2F%2Fx%7Cvital+signs&patient=1", Some("respond-async, handling=strict")),
            ("/fhir/Observation?patient=1", &["Handling = lenient;x"], &strict, "/fhir/Observation?patient=1", Some("handling=strict")),
            // `handling` as a `;`-parameter of another preference is dropped too; other parameters stay.
            ("/fhir/Observation?patient=1", &["return=minimal; handling=lenient"], &strict, "/fhir/Observation?patient=1", Some("return=minimal, handling=strict")),
            ("/fhir/Observation?patient=1", &["return=minimal;HANDLING=lenient;x=1, wait=5"], &strict, "/fhir/Observation?patient=1", Some("return=minimal; x=1, wait=5, handling=strict")),
            ("/fhir/Observation?patient=1", &[], &Narrowing::default(), "/fhir/Observation?patient=1", None),
        ] {
            let r = rewrite(&req(path, prefer), n, false);
            assert_eq!(r.path, want_path, "{path}");
            assert_eq!(r.header("prefer"), want_prefer, "{path}");
            assert_eq!(r.added, n.added.iter().map(|a| a.name.clone()).collect::<Vec<_>>());
        }
    }
}
