//! Refinements that close ways around the rules.

use super::*;

#[test]
#[rustfmt::skip]
fn safety_refinements() {
    check(vec![
        row("patient/Patient.c", Some("123"), create("Patient", Some(json!({"resourceType":"Patient","id":"123"}))), COMPART, &["patient/Patient.c"]),
        row("user/Patient.c", None, create("Patient", Some(json!({"resourceType":"Patient"}))), ALLOW, &[]),
        // a named query's meaning is the server's: s on every type, never under patient/ scopes
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&_query=everything"), INSUFF, &["patient/Observation.s", "user/*.s"]),
        row("user/Observation.rs", None, search("Observation", "_query=everything"), INSUFF, &["user/Observation.s", "user/*.s"]),
        // `_has` is decided the same whether it comes before or after an include (allowed: the search is pinned)
        row("patient/*.rs", Some("123"), search("Patient", "_has:Observation:patient:code=1&_id=123&_include=Patient:organization"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Patient", "_id=123&_include=Patient:organization&_has:Observation:patient:code=1"), ALLOW, &[]),
    ]);
    let config = cfg();
    let ctx = AuthContext::from_scopes("patient/Observation.rs", Some("123"));
    let compartment_check = vec![Obligation::CheckResponseCompartment {
        resource_type: "Observation".into(),
        patient: "123".into(),
    }];
    for (q, obligations) in [
        ("subject=123", compartment_check.clone()),
        ("performer=123", compartment_check.clone()),
        ("subject=Patient/123", vec![]),
        ("subject:Patient=123", vec![]),
        ("patient=123", vec![]),
        ("subject=123&patient=Patient/123", vec![]),
    ] {
        let d = authorize(&config, search("Observation", q), Some(&ctx));
        assert!(d.is_allow(), "{q}: {}", d.message);
        assert_eq!(d.obligations, obligations, "{q}");
    }
    let open = Config::from_json(br#"{"policy":{"allow_wildcard_include":true}}"#).unwrap();
    let all = AuthContext::from_scopes("patient/*.rs", Some("123"));
    let d = authorize(
        &open,
        search("Observation", "patient=123&_include=*"),
        Some(&all),
    );
    assert!(d.is_allow(), "{}", d.message);
    assert_eq!(
        d.obligations,
        vec![Obligation::CheckResponseCompartment {
            resource_type: "*".into(),
            patient: "123".into()
        }]
    );
}
