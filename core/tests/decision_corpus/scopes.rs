//! Scope grammar at work: user/ and system/ scopes, granular scopes, invalid scopes, claim shapes, and the letter matrix.

use super::*;

#[test]
#[rustfmt::skip]
fn granular_scopes() {
    // Without narrowing (narrowed searches: narrowing.rs).
    let config = cfg();
    let ctx = AuthContext::from_scopes(
        &format!("patient/Observation.rs?category={LAB}"),
        Some("123"),
    );
    let d = authorize(&config, read("Observation", "1"), Some(&ctx));
    assert!(d.is_allow());
    assert_eq!(
        d.obligations,
        vec![
            Obligation::CheckResponseCompartment {
                resource_type: "Observation".into(),
                patient: "123".into()
            },
            Obligation::CheckResponseGranular {
                resource_type: "Observation".into(),
                queries: vec![format!("category={LAB}")]
            },
        ]
    );
}

#[test]
fn invalid_scopes_are_ignored_with_diagnostics() {
    let config = cfg();
    let ctx = AuthContext::from_scopes(
        "patient/Observation.sr patient/observation.rs patient/Observation.rs?x patient/Patient.rs",
        Some("123"),
    );
    let d = authorize(&config, search("Observation", "patient=123"), Some(&ctx));
    assert_eq!((d.status, d.reason), (403, Reason::InsufficientScope));
    assert_eq!(d.diagnostics.len(), 3, "{:?}", d.diagnostics);
    assert!(
        d.diagnostics[0].contains("patient/Observation.sr"),
        "{:?}",
        d.diagnostics
    );
    let d = authorize(&config, read("Patient", "123"), Some(&ctx));
    assert!(d.is_allow());
    assert_eq!(d.diagnostics.len(), 3);
}

#[test]
fn claims_shapes_through_context() {
    let config = cfg();
    let scp = Config::from_json(br#"{"claims":{"scope":"scp"}}"#).unwrap();
    for (c, claims, allow) in [
        (
            &config,
            json!({"scope": "patient/Patient.rs", "patient": "123"}),
            true,
        ),
        (
            &config,
            json!({"scope": ["patient/Patient.rs", "openid"], "patient": "123"}),
            true,
        ),
        (
            &config,
            json!({"scope": ["patient/Patient.rs launch/patient"], "patient": "123"}),
            true,
        ),
        (
            &scp,
            json!({"scp": ["patient/Patient.rs"], "patient": "123"}),
            true,
        ),
        (
            &scp,
            json!({"scope": "patient/Patient.rs", "patient": "123"}),
            false,
        ),
        (&config, json!({"scope": "patient/Patient.rs"}), false),
    ] {
        let ctx = AuthContext::from_claims(&c.claims, &c.base, &claims).unwrap();
        assert_eq!(
            authorize(c, read("Patient", "123"), Some(&ctx)).is_allow(),
            allow,
            "{claims}"
        );
    }
}
