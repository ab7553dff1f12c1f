//! A partly allowed `batch` (R4 http.html: a batch answers per entry): the
//! request the server receives holds only the allowed entries, and the
//! `batch-response` the client gets holds every entry in the order sent,
//! the denied ones answered in place with their status and an
//! OperationOutcome. Transactions stay all-or-nothing (`policy::bundle`).

use crate::decision::EntryDenial;
use serde_json::{Map, Value};

/// The request Bundle without the denied entries (`body`: the batch as
/// sent, already classified). The other bytes stay as the client wrote them
/// (a re-serialization would change decimals such as `1.10`).
pub fn forwarded_request(body: &[u8], denied: &[EntryDenial]) -> Result<Vec<u8>, String> {
    let entries = entry_array(body).ok_or("the batch's entry list cannot be read again")?;
    let kept = entries
        .items
        .iter()
        .enumerate()
        .filter(|(i, _)| !denied.iter().any(|d| d.index == *i))
        .filter_map(|(_, span)| body.get(span.clone()));
    Ok(entries.rebuilt(body, kept))
}

/// A denied entry as the client reads it: its status and OperationOutcome.
#[derive(Debug, Clone, PartialEq)]
pub struct AnsweredEntry {
    pub index: usize,
    pub status: u16,
    pub outcome: Value,
}

/// The `batch-response` for the client: the server's answer to the
/// forwarded entries (a `batch-response` with one entry each, in order)
/// with the answered entries put back at their places, `total` entries in
/// all. `Err`: the server's answer does not fit (then nothing is relayed).
pub fn merged_response(
    response: &[u8],
    total: usize,
    answered: &[AnsweredEntry],
) -> Result<Vec<u8>, String> {
    let bundle = crate::json::from_slice_strict(response).unwrap_or(Value::Null);
    let is_batch_response = bundle.get("resourceType").and_then(Value::as_str) == Some("Bundle")
        && bundle.get("type").and_then(Value::as_str) == Some("batch-response");
    let entries = entry_array(response).filter(|_| is_batch_response);
    let Some(entries) = entries.filter(|e| e.items.len() + answered.len() == total) else {
        return Err("the FHIR server's answer to the batch is not a batch-response with one entry per entry sent".into());
    };
    // The server's entries as it wrote them, the answered ones at their places.
    let answers: Vec<Vec<u8>> = answered
        .iter()
        .map(|a| answered_entry(a).to_string().into_bytes())
        .collect();
    let mut served = entries
        .items
        .iter()
        .filter_map(|span| response.get(span.clone()));
    let merged: Vec<&[u8]> = (0..total)
        .filter_map(
            |index| match answered.iter().position(|a| a.index == index) {
                Some(i) => answers.get(i).map(Vec::as_slice),
                None => served.next(),
            },
        )
        .collect();
    Ok(entries.rebuilt(response, merged.into_iter()))
}

/// Where the top-level `entry` array of a JSON object lies in its text.
struct EntryArray {
    /// The bytes between `[` and `]`.
    inside: std::ops::Range<usize>,
    /// Each element's bytes.
    items: Vec<std::ops::Range<usize>>,
}

impl EntryArray {
    /// `json` with the array's elements replaced by `items`.
    fn rebuilt<'a>(&self, json: &[u8], items: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
        let mut out = Vec::with_capacity(json.len());
        out.extend_from_slice(json.get(..self.inside.start).unwrap_or_default());
        for (i, item) in items.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(item);
        }
        out.extend_from_slice(json.get(self.inside.end..).unwrap_or_default());
        out
    }
}

/// The top-level `entry` array of a JSON object (already known to be valid
/// JSON): `None` if there is none, or a key is written with an escape
/// (then which key it is would need decoding: refused, not guessed).
fn entry_array(json: &[u8]) -> Option<EntryArray> {
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(json, i);
        if json.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = skip_value(json, i)?;
        let key = json.get(i + 1..key_end - 1)?;
        if key.contains(&b'\\') {
            return None;
        }
        i = skip_ws(json, key_end);
        if json.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(json, i + 1);
        let value_end = skip_value(json, i)?;
        if key == b"entry" {
            return array_items(json, i, value_end);
        }
        i = skip_ws(json, value_end);
        match json.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

/// The elements of the array `json[start..end]`.
fn array_items(json: &[u8], start: usize, end: usize) -> Option<EntryArray> {
    if json.get(start) != Some(&b'[') {
        return None;
    }
    let mut items = Vec::new();
    let mut i = skip_ws(json, start + 1);
    while json.get(i) != Some(&b']') {
        let item_end = skip_value(json, i)?;
        items.push(i..item_end);
        i = skip_ws(json, item_end);
        if json.get(i) == Some(&b',') {
            i = skip_ws(json, i + 1);
        }
    }
    Some(EntryArray {
        inside: start + 1..end - 1,
        items,
    })
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while json.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

/// The end (exclusive) of the JSON value starting at `i`.
fn skip_value(json: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    loop {
        let b = *json.get(i)?;
        i += 1;
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => {
                    in_string = false;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ if depth == 0 && matches!(json.get(i), None | Some(b',' | b'}' | b']')) => {
                return Some(i)
            }
            _ if depth == 0 && json.get(i).is_some_and(|c| c.is_ascii_whitespace()) => {
                return Some(i)
            }
            _ => {}
        }
    }
}

/// `{"response": {"status": "403 Forbidden", "outcome": {...}}}`.
fn answered_entry(a: &AnsweredEntry) -> Value {
    let mut response = Map::new();
    response.insert("status".into(), Value::from(status_line(a.status)));
    response.insert("outcome".into(), a.outcome.clone());
    let mut entry = Map::new();
    entry.insert("response".into(), Value::Object(response));
    Value::Object(entry)
}

/// A `Bundle.entry.response.status`: the code and its reason phrase.
fn status_line(status: u16) -> String {
    match status {
        400 => "400 Bad Request".into(),
        403 => "403 Forbidden".into(),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Reason;
    use serde_json::json;

    fn denial(index: usize) -> EntryDenial {
        EntryDenial {
            index,
            reason: Reason::InsufficientScope,
            message: "no".into(),
            required_scopes: Vec::new(),
        }
    }

    #[test]
    fn only_the_allowed_entries_are_forwarded() {
        let batch = json!({"resourceType":"Bundle","type":"batch","entry":[
            {"request":{"method":"GET","url":"Patient/1"}},
            {"request":{"method":"GET","url":"Patient/2"}},
            {"request":{"method":"GET","url":"Observation?patient=1"}}]});
        let sent = forwarded_request(batch.to_string().as_bytes(), &[denial(1)]).unwrap();
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        let urls: Vec<&str> = sent["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["request"]["url"].as_str().unwrap())
            .collect();
        assert_eq!(urls, ["Patient/1", "Observation?patient=1"]);
        assert_eq!(sent["type"], "batch");
    }

    #[test]
    fn denied_entries_are_answered_in_place() {
        let served = json!({"resourceType":"Bundle","type":"batch-response","entry":[
            {"response":{"status":"200 OK"},"resource":{"resourceType":"Patient","id":"1"}},
            {"response":{"status":"200 OK"}}]});
        let outcome = json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"forbidden"}]});
        let answered = [AnsweredEntry {
            index: 1,
            status: 403,
            outcome: outcome.clone(),
        }];
        let merged = merged_response(served.to_string().as_bytes(), 3, &answered).unwrap();
        let merged: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(merged["entry"][0]["resource"]["id"], "1");
        assert_eq!(
            merged["entry"][1],
            json!({"response":{"status":"403 Forbidden","outcome":outcome}})
        );
        assert_eq!(merged["entry"][2]["response"]["status"], "200 OK");
        // an answer that does not fit is not relayed
        for bad in [
            json!({"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"200 OK"}}]}),
            json!({"resourceType":"Bundle","type":"searchset","entry":[{},{}]}),
            json!({"resourceType":"OperationOutcome"}),
        ] {
            assert!(
                merged_response(bad.to_string().as_bytes(), 3, &answered).is_err(),
                "{bad}"
            );
        }
        assert!(merged_response(b"<html>", 3, &answered).is_err());
    }

    /// The bytes not removed or added stay as written (decimals, spacing,
    /// key order), in the request and in the answer.
    #[test]
    fn other_bytes_stay_as_written() {
        let batch = br#"{ "resourceType" : "Bundle", "entry" : [ {"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","valueQuantity":{"value":1.10}}} , {"request":{"method":"GET","url":"Patient/2"}} ], "type":"batch" }"#;
        let sent = forwarded_request(batch, &[denial(1)]).unwrap();
        assert_eq!(
            String::from_utf8(sent).unwrap(),
            r#"{ "resourceType" : "Bundle", "entry" : [{"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","valueQuantity":{"value":1.10}}}], "type":"batch" }"#
        );
        let served = br#"{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"201 Created"},"resource":{"value":1.10,"s":"a]\"}"}}]}"#;
        let outcome = json!({"resourceType":"OperationOutcome"});
        let answered = [AnsweredEntry {
            index: 0,
            status: 403,
            outcome,
        }];
        let merged = merged_response(served, 2, &answered).unwrap();
        assert_eq!(
            String::from_utf8(merged).unwrap(),
            r#"{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"outcome":{"resourceType":"OperationOutcome"},"status":"403 Forbidden"}},{"response":{"status":"201 Created"},"resource":{"value":1.10,"s":"a]\"}"}}]}"#
        );
        // a key written with an escape is not guessed at
        assert!(forwarded_request(br#"{"\u0065ntry":[{}],"type":"batch"}"#, &[denial(0)]).is_err());
    }
}
