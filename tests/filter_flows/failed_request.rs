//! A request the shell failed on (a panic the native module caught): refused
//! 500 `internal_error` with an OperationOutcome, counted as that denial,
//! and its audit record written where the stream's would be, in every
//! encoding (the real-Envoy side is tests/e2e/test_native_faults.py).

use super::*;
use fhir_smart_authz::failed_request::Failed;

fn shared(audit: AuditEncoding) -> Rc<Shared> {
    let config = Rc::new(Config::from_json(b"{}").unwrap());
    let t: Box<dyn TokenPort> = Box::new(tokens());
    let e: Box<dyn Engine> = Box::new(scripted_engine(false, false));
    Shared::new(config, t, e, audit)
}

#[test]
fn refused_500_counted_and_audited_in_every_encoding() {
    for encoding in [
        AuditEncoding::Json,
        AuditEncoding::Fields,
        AuditEncoding::Line,
    ] {
        let h = host("POST", "/fhir/Patient?name=x", Some("Bearer good"), &[]);
        let sh = shared(encoding);
        let (mut failed, reply) = Failed::refuse(&h, &sh);
        assert_eq!(reply.status, 500, "{encoding:?}");
        let outcome: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            outcome["issue"][0]["details"]["coding"][0]["code"],
            "internal_error"
        );
        assert_eq!(
            h.counter("fhir_smart_authz.decision.deny.internal_error"),
            1,
            "{encoding:?}"
        );
        let written = h
            .state
            .borrow()
            .properties
            .contains_key("fhir_smart_authz_audit");
        assert_eq!(written, encoding != AuditEncoding::Line, "{encoding:?}");
        {
            let mut st = h.state.borrow_mut();
            st.host_properties
                .insert("response.code".into(), 500u64.to_le_bytes().to_vec());
        }
        failed.on_log(&h);
        let text = h.state.borrow().properties["fhir_smart_authz_audit"].clone();
        let record: Value = if encoding == AuditEncoding::Fields {
            let mut whole = b"{".to_vec();
            whole.extend_from_slice(&text);
            whole.push(b'}');
            serde_json::from_slice(&whole).unwrap()
        } else {
            serde_json::from_slice(&text).unwrap()
        };
        let expected = [
            ("decision", json!("deny")),
            ("reason", json!("internal_error")),
            ("status", json!(500)),
            ("enforced", json!(true)),
            ("action", json!("C")),
            ("request_id", json!("rid-7")),
        ];
        for (key, value) in expected {
            assert_eq!(record[key], value, "{encoding:?} {key}");
        }
        let request_line = match encoding {
            AuditEncoding::Json => None,
            _ => Some((json!("POST"), json!("/fhir/Patient"))),
        };
        assert_eq!(
            request_line,
            record
                .get("method")
                .map(|m| (m.clone(), record["path"].clone())),
            "{encoding:?}"
        );
        if encoding == AuditEncoding::Line {
            assert_eq!(record["response_code"], 500);
        }
    }
}
