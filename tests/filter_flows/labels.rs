//! Security labels (`policy.labels`) through the shell with the real
//! engine: a restricted token's search is fetched, filtered by the core
//! and relayed with the core's body; a labelled read is refused;
//! break-glass is counted; the audit record carries counts and labels.

use super::*;
use fhir_smart_authz::core_adapter::CoreEngine;

const ETH: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH";
const CONFIG: &str = r#"{"fhir_base_url":"https://fhir.example/fhir","policy":{"labels":{
  "restricted":["http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R","http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH"],
  "clearance_claim":"clearance","purpose_of_use_claim":"purpose_of_use",
  "break_glass":["http://terminology.hl7.org/CodeSystem/v3-ActReason|BTG"]}}}"#;

fn label_stream_with(config: &str) -> Stream {
    let mut t = FakeTokens::default();
    let clinician = json!({"iss": "https://as", "sub": "u1", "scope": "user/*.rs"});
    let mut btg = clinician.clone();
    btg["purpose_of_use"] = json!("BTG");
    t.tokens
        .insert("clinician".into(), FakeToken::Valid(clinician));
    t.tokens.insert("btg".into(), FakeToken::Valid(btg));
    let config = Rc::new(Config::from_json(config.as_bytes()).unwrap());
    Stream::new(Shared::new(
        config,
        Box::new(t),
        Box::new(CoreEngine),
        AuditEncoding::Json,
    ))
}

fn obs(id: &str, label: Option<&str>) -> Value {
    let mut r = json!({"resourceType": "Observation", "id": id, "status": "final"});
    if let Some((system, code)) = label.and_then(|l| l.split_once('|')) {
        r["meta"] = json!({"security": [{"system": system, "code": code}]});
    }
    r
}

/// The request under `token`, answered by the FHIR server with `body`.
fn run(path: &str, token: &str, body: &Value) -> (FakeHost, Flow) {
    run_with(CONFIG, path, token, body)
}

fn run_with(config: &str, path: &str, token: &str, body: &Value) -> (FakeHost, Flow) {
    let h = host("GET", path, Some(&format!("Bearer {token}")), &[]);
    let mut s = label_stream_with(config);
    let f = s.on_request_headers(&h, true);
    if f == Flow::Pause {
        let text = body.to_string();
        {
            let mut st = h.state.borrow_mut();
            st.call_response_headers = vec![
                (":status".into(), "200".into()),
                ("content-type".into(), "application/fhir+json".into()),
                ("content-length".into(), text.len().to_string()),
            ];
            st.call_response_body = text.into_bytes();
        }
        let n = h.state.borrow().call_response_body.len();
        s.on_call_response(&h, 1, n);
    }
    (h, f)
}

#[test]
fn a_search_is_filtered_by_the_core() {
    let page = json!({"resourceType": "Bundle", "type": "searchset", "total": 3, "entry": [
        {"resource": obs("o1", None)}, {"resource": obs("o2", Some(ETH))}, {"resource": obs("o3", None)}]});
    let (h, f) = run("/fhir/Observation?code=x", "clinician", &page);
    assert_eq!(f, Flow::Pause, "fetched to be filtered");
    let r = h.state.borrow().replies.last().cloned().unwrap();
    assert_eq!(r.status, 200);
    let got: Value = serde_json::from_slice(&r.body).unwrap();
    let ids: Vec<&str> = got["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap_or("outcome"))
        .collect();
    assert_eq!(ids, ["o1", "o3", "outcome"]);
    assert!(got.get("total").is_none());
    assert!(!String::from_utf8_lossy(&r.body).contains("o2"));
    let a = audit(&h);
    assert_eq!(a["obligation"], "passed");
    assert_eq!(a["labels"]["withheld"], 1);
    assert_eq!(a["labels"]["withheld_labels"], json!([ETH]));
    assert_eq!(h.counter("fhir_smart_authz.labels.withheld"), 1);
}

#[test]
fn a_labelled_read_is_refused_and_break_glass_counted() {
    let (h, _) = run("/fhir/Observation/o2", "clinician", &obs("o2", Some(ETH)));
    let r = h.state.borrow().replies.last().cloned().unwrap();
    assert_eq!(r.status, 403);
    assert!(!String::from_utf8_lossy(&r.body).contains("final"));
    let a = audit(&h);
    assert_eq!(
        (a["reason"].as_str(), a["obligation"].as_str()),
        (Some("response_not_permitted"), Some("failed"))
    );
    assert_eq!(
        a["message"],
        "Observation/o2 carries a security label this token is not cleared for"
    );
    assert_eq!(a["labels"]["withheld_labels"], json!([ETH]));
    // Break-glass: not fetched by the filter, counted, audited with the purpose.
    let (h, f) = run("/fhir/Observation/o2", "btg", &obs("o2", Some(ETH)));
    assert_eq!(f, Flow::Continue);
    assert_eq!(h.counter("fhir_smart_authz.labels.break_glass"), 1);
    let a = audit(&h);
    assert_eq!(a["labels"]["break_glass"], true);
    assert_eq!(
        a["labels"]["purpose_of_use"],
        json!(["http://terminology.hl7.org/CodeSystem/v3-ActReason|BTG"])
    );
}

/// Shadow mode: the server's answer is relayed unchanged; the audit record
/// says what the filter would have withheld.
#[test]
fn shadow_mode_relays_the_response_unchanged() {
    let shadow = CONFIG.replacen('{', r#"{"enforce":false,"#, 1);
    let page = json!({"resourceType": "Bundle", "type": "searchset", "total": 2, "entry": [
        {"resource": obs("o1", None)}, {"resource": obs("o2", Some(ETH))}]});
    let (h, _) = run_with(&shadow, "/fhir/Observation?code=x", "clinician", &page);
    let r = h.state.borrow().replies.last().cloned().unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap(), page);
    let a = audit(&h);
    assert_eq!(
        (a["enforced"].as_bool(), a["labels"]["withheld"].as_u64()),
        (Some(false), Some(1))
    );
}
