//! Answers of a checked request that carry no resource to check (issue 17):
//! `HEAD`, `304 Not Modified` to `If-None-Match`/`If-Modified-Since`, `412`
//! to `If-Match`, redirects, empty bodies. Each would tell the client that a
//! resource exists (and its version) where the full `GET` is refused. The
//! rule: the filter fetches the full answer of a `GET` (a `HEAD` fetched as
//! `GET`, conditional and range headers dropped, so the server answers the
//! body the response check reads), relays a `HEAD`'s answer without its body,
//! and refuses any answer whose resource it could not check.

/// The request headers whose answer would carry no resource (or part of
/// one): dropped from the filter's own fetch of a checked `GET` or `HEAD`.
const CONDITIONAL_HEADERS: [&str; 6] = [
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

/// The filter's fetch of a checked request's answer, from the request's
/// headers (lower-case names, as the filter reads them; `:method` among
/// them): a `HEAD` becomes a
/// `GET`, and a `GET`'s conditional and range headers are dropped. The
/// client gets the full answer instead of a `304` (which HTTP allows: a
/// cache takes a `200`). Returns whether the client asked `HEAD` (its
/// answer is relayed without the body). Other methods are left as they
/// are (a precondition of a write is the write's own).
pub fn full_answer_request(headers: &mut Vec<(String, String)>) -> bool {
    let method = headers
        .iter()
        .find(|(n, _)| n == ":method")
        .map(|(_, v)| v.as_str());
    let head = method == Some("HEAD");
    if !(head || method == Some("GET")) {
        return false;
    }
    // Names are lower-case (as the filter reads them).
    headers.retain(|(n, _)| !CONDITIONAL_HEADERS.contains(&n.as_str()));
    if head {
        for (n, v) in headers.iter_mut() {
            if n == ":method" {
                *v = "GET".into();
            }
        }
    }
    head
}

/// What to do with the answer to a checked request, before its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerGate {
    /// Read the body and check it (a success, or an error that carries one:
    /// an `OperationOutcome` passes, any other resource is checked).
    CheckBody,
    /// An error without a body: nothing to check, relayed as it is.
    Relay,
    /// No resource the check could read (a `1xx`/`3xx`, `304`, a success
    /// without a body): refused, as the full `GET` would have to be decided.
    Refuse(String),
}

/// The gate for an answer of `status` with a body of `body_size` bytes.
pub fn answer_gate(status: u16, body_size: usize) -> AnswerGate {
    match status {
        200..=299 if body_size > 0 => AnswerGate::CheckBody,
        400..=599 if body_size > 0 => AnswerGate::CheckBody,
        400..=599 => AnswerGate::Relay,
        200..=299 => AnswerGate::Refuse(format!(
            "the FHIR server answered HTTP {status} without a body: the answer cannot be checked against the token's patient/granular scopes"
        )),
        _ => AnswerGate::Refuse(format!(
            "the FHIR server answered HTTP {status}, which carries no resource to check against the token's patient/granular scopes (a HEAD, conditional or redirected answer is decided as the full GET would be)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_fetch_asks_for_the_full_answer() {
        let conditional = [
            ("if-none-match", "W/\"1\""),
            ("if-modified-since", "Mon, 07 Dec 2026 00:00:00 GMT"),
            ("if-match", "W/\"1\""),
            ("if-unmodified-since", "x"),
            ("if-range", "x"),
            ("range", "bytes=0-1"),
            ("accept", "application/fhir+json"),
        ];
        for (method, head, kept) in [
            ("HEAD", true, 1),
            ("GET", false, 1),
            ("POST", false, 7),
            ("PUT", false, 7),
        ] {
            let mut h = hs(&[(":method", method), (":path", "/fhir/Observation/1")]);
            h.extend(hs(&conditional));
            assert_eq!(full_answer_request(&mut h), head, "{method}");
            assert_eq!(h.len(), 2 + kept, "{method}: {h:?}");
            let sent = h
                .iter()
                .find(|(n, _)| n == ":method")
                .map(|(_, v)| v.as_str());
            assert_eq!(sent, Some(if head { "GET" } else { method }));
        }
    }

    #[test]
    fn answers_without_a_resource_are_refused() {
        for (status, size, want) in [
            (200, 10, Some(AnswerGate::CheckBody)),
            (201, 10, Some(AnswerGate::CheckBody)),
            (404, 10, Some(AnswerGate::CheckBody)),
            (410, 10, Some(AnswerGate::CheckBody)),
            (500, 10, Some(AnswerGate::CheckBody)),
            (404, 0, Some(AnswerGate::Relay)),
            (401, 0, Some(AnswerGate::Relay)),
            (200, 0, None),
            (204, 0, None),
            (304, 0, None),
            (412, 0, Some(AnswerGate::Relay)),
            (301, 0, None),
            (302, 100, None),
            (307, 0, None),
            (100, 0, None),
        ] {
            let got = answer_gate(status, size);
            match want {
                Some(w) => assert_eq!(got, w, "{status} {size}"),
                None => assert!(matches!(got, AnswerGate::Refuse(_)), "{status} {size}"),
            }
        }
    }
}
