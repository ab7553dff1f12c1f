//! The audit record's shape, field by field.

use super::*;
use crate::config::Config;
use crate::decision::{Decision, Reason};
use crate::fhir::{Interaction, InteractionKind, Level, SearchParam};
use serde_json::{json, Value};

#[test]
fn rfc3339_known_instants() {
    for (ms, s) in [
        (0, "1970-01-01T00:00:00.000Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (1_795_614_593_123, "2026-11-25T13:49:53.123Z"),
        (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        (253_402_300_800_000, "10000-01-01T00:00:00.000Z"),
        (1_009_843_200_007, "2002-01-01T00:00:00.007Z"),
        (1_010_000_000_070, "2002-01-02T19:33:20.070Z"),
    ] {
        assert_eq!(rfc3339_ms(ms), s);
    }
}

#[test]
fn identity_from_claims() {
    let c = Config::from_json(br#"{"claims":{"patient_from_fhir_user":true}}"#).unwrap();
    let id = Identity::from_claims(
        &c.claims,
        None,
        &json!({"iss":"https://as","sub":"u1","azp":"app","fhirUser":"https://x/fhir/Patient/p9","scope":["a","b"],"jti":"j"}),
    );
    assert_eq!(id.client_id.as_deref(), Some("app"));
    assert_eq!(id.patient.as_deref(), Some("p9"));
    assert_eq!(id.scopes.as_deref(), Some("a b"));
    assert_eq!(id.user().as_deref(), Some("https://x/fhir/Patient/p9"));
    let id2 = Identity::from_claims(&c.claims, None, &json!({"iss":"https://as","sub":"u1"}));
    assert_eq!(id2.user().as_deref(), Some("https://as|u1"));
}

/// The audit record and the forwarded `x-smart-patient` header name the
/// patient the policy decided with, or none: one derivation.
#[test]
fn identity_patient_is_the_policy_patient() {
    use crate::policy::AuthContext;
    let c = Config::from_json(
        br#"{"fhir_base_url":"https://h/fhir","claims":{"patient_from_fhir_user":true}}"#,
    )
    .unwrap();
    for (claims, want) in [
        (json!({"fhirUser": "Patient/9"}), Some("9")),
        (json!({"fhirUser": "https://h/fhir/Patient/9"}), Some("9")),
        (json!({"fhirUser": "https://evil/fhir/Patient/9"}), None),
        (json!({"fhirUser": "https://h/fhirx/Patient/9"}), None),
        (json!({"fhirUser": "urn:x/Patient/9"}), None),
        (json!({"fhirUser": "Patient/9/_history/1"}), None),
        (json!({"fhirUser": "Patient/a b"}), None),
        (json!({"fhirUser": "Practitioner/9"}), None),
        (
            json!({"patient": "p1", "fhirUser": "Patient/9"}),
            Some("p1"),
        ),
        (json!({"patient": "a/b"}), None),
        (json!({"patient": ""}), None),
    ] {
        let id = Identity::from_claims(&c.claims, c.base.url.as_deref(), &claims);
        assert_eq!(id.patient.as_deref(), want, "{claims}");
        let policy = AuthContext::from_claims(&c.claims, &c.base, &claims)
            .ok()
            .and_then(|ctx| ctx.patient);
        assert_eq!(policy.as_deref(), want, "{claims}");
    }
}

#[test]
fn record_shape_search_allow() {
    let c = Config::default_config().unwrap();
    let mut it = Interaction::new(InteractionKind::Search, Level::Type);
    it.resource_type = Some("Observation".into());
    it.search = vec![SearchParam {
        name: "code".into(),
        modifier: Some("text".into()),
        chain: None,
        values: vec!["Jane Doe".into()],
    }];
    let mut d = Decision::allow(Reason::Allowed, it);
    d.required_scopes = vec!["patient/Observation.rs".into()];
    let id = Identity {
        client_id: Some("app".into()),
        sub: Some("u".into()),
        iss: Some("https://as".into()),
        jti: Some("abc".into()),
        patient: Some("p1".into()),
        ..Identity::default()
    };
    let r = record(
        &c.audit,
        &AuditInput {
            method: "GET",
            request_id: Some("rid-1"),
            decision: &d,
            identity: Some(&id),
            enforced: true,
            now_ms: 1_795_614_593_123,
            obligation_result: None,
            obligation_denied_status: c.responses.obligation_denied_status,
        },
    );
    assert_eq!(
        r,
        json!({
            "type": "rest", "subtype": "search", "interaction": "search", "action": "E", "outcome": "0",
            "recorded": "2026-11-25T13:49:53.123Z",
            "agent": {"client_id": "app", "user": "https://as|u", "requestor": true},
            "source": "fhir-smart-authz",
            "entity": {"resource_type": "Observation", "query": ["code:text"], "patient": "Patient/p1"},
            "policy": "urn:ietf:params:oauth:jti:abc",
            "request_id": "rid-1",
            "decision": "allow", "reason": "allowed", "message": "allowed", "status": 200,
            "required_scopes": ["patient/Observation.rs"],
            "enforced": true
        })
    );
    assert!(
        !r.to_string().contains("Jane"),
        "search values are not recorded"
    );
}

#[test]
fn record_unclassified_deny_and_obligation_failure() {
    let c = Config::from_json(br#"{"responses":{"obligation_denied_status":404}}"#).unwrap();
    let d = Decision::deny(Reason::MissingToken, "no token");
    let r = record(
        &c.audit,
        &AuditInput {
            method: "DELETE",
            request_id: None,
            decision: &d,
            identity: None,
            enforced: false,
            now_ms: 0,
            obligation_result: None,
            obligation_denied_status: c.responses.obligation_denied_status,
        },
    );
    assert_eq!(r["subtype"], "unknown");
    assert_eq!(r["action"], "D");
    assert_eq!(r["outcome"], "4");
    assert_eq!(r["status"], 401);
    assert_eq!(r["enforced"], false);
    assert_eq!(r["agent"], json!({"requestor": true}));
    assert!(r.get("policy").is_none());

    let mut it = Interaction::new(InteractionKind::Read, Level::Instance);
    it.resource_type = Some("Observation".into());
    it.id = Some("o1".into());
    let mut d = Decision::allow(Reason::Allowed, it);
    d.obligations = vec![crate::decision::Obligation::CheckResponseCompartment {
        resource_type: "Observation".into(),
        patient: "p1".into(),
    }];
    let r = record(
        &c.audit,
        &AuditInput {
            obligation_result: Some(Err(
                "Observation/o1 is not in Patient/p1's compartment".into()
            )),
            ..enforced_get(&c, &d)
        },
    );
    assert_eq!(r["decision"], "deny");
    assert_eq!(r["reason"], "response_not_permitted");
    assert_eq!(r["status"], 404);
    assert_eq!(r["obligation"], "failed");
    assert_eq!(r["action"], "R");
    assert_eq!(
        r["entity"],
        json!({"reference":"Observation/o1","resource_type":"Observation","id":"o1"})
    );
    assert_eq!(r["interaction"], "read");
    assert_eq!(r["subtype"], "read");
}

/// A `GET` without a token, decided `d`, as the log-fact tests record it.
fn anonymous_get<'a>(d: &'a Decision, request_id: &'a str) -> AuditInput<'a> {
    AuditInput {
        method: "GET",
        request_id: Some(request_id),
        decision: d,
        identity: None,
        enforced: true,
        now_ms: 1_795_614_593_123,
        obligation_result: None,
        obligation_denied_status: 403,
    }
}

#[test]
fn log_facts_complete_the_record_without_the_query() {
    let c = Config::default_config().unwrap();
    let d = Decision::deny(Reason::MissingToken, "no token");
    let input = anonymous_get(&d, "rid-2");
    let mut text = record_json(&c.audit, &input);
    add_log_facts(
        &mut text,
        &LogFacts {
            method: "GET",
            path: "/fhir/Patient?name=Jane%20Doe&birthdate=1970",
            response_code: 401,
            duration_ms: 3,
            start_ms: 1_795_614_593_120,
        },
    );
    let line: Value = serde_json::from_slice(&text).unwrap();
    let mut want = record(&c.audit, &input).as_object().unwrap().clone();
    for (k, v) in [
        ("method", json!("GET")),
        ("path", json!("/fhir/Patient")),
        ("response_code", json!(401)),
        ("duration_ms", json!(3)),
        ("start_time", json!("2026-11-25T13:49:53.120Z")),
    ] {
        assert!(want.insert(k.into(), v).is_none(), "{k} is a new field");
    }
    assert_eq!(line, Value::Object(want));
    let text = String::from_utf8(text).unwrap();
    assert!(!text.contains("Jane") && !text.contains("1970"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
}

#[test]
fn fields_are_the_line_record_without_braces_and_log_time_facts() {
    // `"fields"` + the access log's `{"response_code":…,"duration_ms":…,
    // "start_time":"…",<fields>}` is the object `"line"` writes at log time.
    let c = Config::default_config().unwrap();
    let d = Decision::deny(Reason::MissingToken, "no token");
    let input = anonymous_get(&d, "rid-3");
    let facts = LogFacts {
        method: "GET",
        path: "/fhir/Patient?name=Jane%20Doe&birthdate=1970",
        response_code: 401,
        duration_ms: 3,
        start_ms: 1_795_614_593_120,
    };
    let mut line = record_json(&c.audit, &input);
    add_log_facts(&mut line, &facts);
    let fields = record_fields(record_json(&c.audit, &input), facts.method, facts.path);
    let text = String::from_utf8(fields.clone()).unwrap();
    assert!(
        text.starts_with('"') && text.ends_with('"'),
        "members only: {text}"
    );
    assert!(
        !text.contains("Jane") && !text.contains("1970") && !text.contains('\n'),
        "{text}"
    );
    let mut completed =
        br#"{"response_code":401,"duration_ms":3,"start_time":"2026-11-25T13:49:53.120Z","#
            .to_vec();
    completed.extend_from_slice(&fields);
    completed.push(b'}');
    let completed: Value = serde_json::from_slice(&completed).unwrap();
    let line: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(completed, line);
    // Not a record object: passed through unchanged (never half a brace).
    assert_eq!(
        record_fields(b"null".to_vec(), "GET", "/"),
        b"null".to_vec()
    );
}

#[test]
fn record_text_is_what_serde_json_prints_for_the_record() {
    // Every optional member present, strings that need escaping.
    let c = Config::from_json(br#"{"audit":{"source":"gw \"eu\"\u0001"}}"#).unwrap();
    let mut it = Interaction::new(InteractionKind::Search, Level::Type);
    it.resource_type = Some("Observation".into());
    it.id = Some("o1".into());
    it.version = Some("2".into());
    it.operation = Some("$everything".into());
    it.compartment = Some(crate::fhir::Compartment {
        resource_type: "Patient".into(),
        id: "p1".into(),
    });
    it.types = vec!["Observation".into(), "Condition".into()];
    it.search = vec![SearchParam {
        name: "subject".into(),
        modifier: Some("Patient".into()),
        chain: Some("name".into()),
        values: vec!["x".into()],
    }];
    let entry = crate::fhir::BundleEntry {
        index: 0,
        method: "GET".into(),
        url: "Patient/p1".into(),
        full_url: None,
        interaction: Box::new(Interaction::new(InteractionKind::Read, Level::Instance)),
    };
    it.entries = vec![entry.clone(), entry];
    let mut d = Decision::allow(Reason::Allowed, it);
    d.required_scopes = vec!["patient/Observation.rs".into(), "a\tb".into()];
    d.obligations = vec![crate::decision::Obligation::CheckResponseCompartment {
        resource_type: "Observation".into(),
        patient: "p1".into(),
    }];
    d.rewrite = Some(crate::decision::Rewrite {
        path: "/fhir/Observation?patient=p1".into(),
        headers: vec![("prefer".to_string(), "handling=strict".to_string())],
        added: vec!["patient".into()],
    });
    d.denied_entries = vec![crate::decision::EntryDenial {
        index: 12,
        reason: Reason::InsufficientScope,
        message: "m".into(),
        required_scopes: vec![],
    }];
    d.labels = Some(crate::decision::LabelFacts {
        hidden: vec!["urn:x|R".into(), "urn:x|\"V\"".into()],
        purpose_of_use: vec!["urn:y|BTG".into()],
        break_glass: true,
        withheld: Some(3),
        withheld_labels: vec!["urn:x|R".into()],
    });
    let id = Identity {
        client_id: Some("app\u{7f}".into()),
        fhir_user: Some("Practitioner/pr1".into()),
        jti: Some("j\"1".into()),
        patient: Some("p1".into()),
        ..Identity::default()
    };
    for (identity, obligation, request_id) in [
        (Some(&id), None, Some("rid \\ 1")),
        (Some(&id), Some(Ok(())), None),
        (None, Some(Err("not \"theirs\"".to_string())), Some("r")),
    ] {
        let text = record_json(
            &c.audit,
            &AuditInput {
                method: "POST",
                request_id,
                decision: &d,
                identity,
                enforced: false,
                now_ms: 1_795_614_593_123,
                obligation_result: obligation,
                obligation_denied_status: 404,
            },
        );
        let parsed: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(String::from_utf8(text).unwrap(), parsed.to_string());
    }
}

#[test]
fn record_of_a_narrowed_search_names_parameters_never_values() {
    let c = Config::default_config().unwrap();
    let mut it = Interaction::new(InteractionKind::Search, Level::Type);
    it.resource_type = Some("Observation".into());
    it.search = vec![SearchParam {
        name: "code".into(),
        modifier: None,
        chain: None,
        values: vec!["8867-4".into()],
    }];
    let mut d = Decision::allow(Reason::Allowed, it);
    d.rewrite = Some(crate::decision::Rewrite {
        path: "/fhir/Observation?patient=Patient%2Fp1&category=lab&code=8867-4".into(),
        headers: vec![("prefer".to_string(), "handling=strict".to_string())],
        added: vec!["patient".into(), "category".into()],
    });
    let r = record(&c.audit, &enforced_get(&c, &d));
    assert_eq!(r["entity"]["query"], json!(["code"]));
    assert_eq!(
        r["rewrite"],
        json!({"added": ["patient", "category"], "headers": ["prefer"]})
    );
    let text = r.to_string();
    for value in ["p1", "lab", "8867-4", "strict"] {
        assert!(!text.contains(value), "{value} leaked into {text}");
    }
}

/// A GET decided `d`, enforced, at time 0, no identity, no response check.
fn enforced_get<'a>(c: &Config, d: &'a Decision) -> AuditInput<'a> {
    AuditInput {
        method: "GET",
        request_id: None,
        decision: d,
        identity: None,
        enforced: true,
        now_ms: 0,
        obligation_result: None,
        obligation_denied_status: c.responses.obligation_denied_status,
    }
}

/// `labels`: what the label policy hid, the purpose of use, break-glass,
/// and how many entries it withheld with which labels; never data.
#[test]
fn record_of_a_filtered_response_names_labels_and_counts() {
    let c = Config::default_config().unwrap();
    let mut it = Interaction::new(InteractionKind::Search, Level::Type);
    it.resource_type = Some("Observation".into());
    let mut d = Decision::allow(Reason::Allowed, it);
    let r = record(&c.audit, &enforced_get(&c, &d));
    assert!(r.get("labels").is_none(), "no label policy, no member");
    d.labels = Some(crate::decision::LabelFacts {
        hidden: vec!["urn:x|R".into()],
        purpose_of_use: vec!["urn:y|TREAT".into()],
        ..Default::default()
    });
    let r = record(&c.audit, &enforced_get(&c, &d));
    assert_eq!(
        r["labels"],
        json!({"hidden": ["urn:x|R"], "purpose_of_use": ["urn:y|TREAT"]})
    );
    let filtered = crate::policy::LabelsFiltered {
        body: Some(b"{}".to_vec()),
        withheld: 2,
        labels: vec!["urn:x|R".into()],
        refused: None,
    };
    filtered.record(&mut d);
    let r = record(&c.audit, &enforced_get(&c, &d));
    assert_eq!(
        r["labels"],
        json!({"hidden": ["urn:x|R"], "purpose_of_use": ["urn:y|TREAT"], "withheld": 2, "withheld_labels": ["urn:x|R"]})
    );
    d.labels = Some(crate::decision::LabelFacts {
        hidden: vec!["urn:x|R".into()],
        purpose_of_use: vec!["urn:y|BTG".into()],
        break_glass: true,
        ..Default::default()
    });
    let r = record(&c.audit, &enforced_get(&c, &d));
    assert_eq!(r["labels"]["break_glass"], json!(true));
}
