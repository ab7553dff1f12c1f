//! A partly allowed `batch` (R4 http.html: a batch answers per entry): the
//! request the server receives holds only the allowed entries, and the
//! `batch-response` the client gets holds every entry in the order sent,
//! the denied ones answered in place with their status and an
//! OperationOutcome. Transactions stay all-or-nothing (`policy::bundle`).

use crate::decision::EntryDenial;
use serde_json::{Map, Value};

/// The request Bundle without the denied entries (`body`: the batch as
/// sent, already classified).
pub fn forwarded_request(body: &[u8], denied: &[EntryDenial]) -> Result<Vec<u8>, String> {
    let mut bundle: Value =
        serde_json::from_slice(body).map_err(|e| format!("the batch cannot be read again: {e}"))?;
    let entries = bundle
        .get_mut("entry")
        .and_then(Value::as_array_mut)
        .ok_or("the batch has no entries")?;
    let mut index = 0;
    entries.retain(|_| {
        let keep = !denied.iter().any(|d| d.index == index);
        index += 1;
        keep
    });
    Ok(bundle.to_string().into_bytes())
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
    let mut bundle: Value = serde_json::from_slice(response).unwrap_or(Value::Null);
    let is_batch_response = bundle.get("resourceType").and_then(Value::as_str) == Some("Bundle")
        && bundle.get("type").and_then(Value::as_str) == Some("batch-response");
    let served = match bundle.get_mut("entry") {
        Some(Value::Array(a)) => std::mem::take(a),
        _ => Vec::new(),
    };
    if !is_batch_response || served.len() + answered.len() != total {
        return Err("the FHIR server's answer to the batch is not a batch-response with one entry per entry sent".into());
    }
    let mut served = served.into_iter();
    let entries: Vec<Value> = (0..total)
        .filter_map(|index| match answered.iter().find(|a| a.index == index) {
            Some(a) => Some(answered_entry(a)),
            None => served.next(),
        })
        .collect();
    if let Some(map) = bundle.as_object_mut() {
        map.insert("entry".into(), Value::Array(entries));
    }
    Ok(bundle.to_string().into_bytes())
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
    let phrase = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "",
    };
    format!("{status} {phrase}").trim_end().to_string()
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
}
