//! Refinements that close ways around the rules.

use super::*;

#[test]
#[rustfmt::skip]
fn safety_refinements() {
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
