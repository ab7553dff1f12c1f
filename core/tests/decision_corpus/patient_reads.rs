//! Reads by id under patient/ scopes: the patient's own Patient, and response checks for the rest of the compartment.

use super::*;

#[test]
fn read_by_id_obligation() {
    let config = cfg();
    let ctx = AuthContext::from_scopes("patient/Observation.rs", Some("123"));
    let d = authorize(&config, read("Observation", "1"), Some(&ctx));
    assert!(d.is_allow());
    assert_eq!(
        d.obligations,
        vec![Obligation::CheckResponseCompartment {
            resource_type: "Observation".into(),
            patient: "123".into()
        }]
    );
    assert_eq!(d.required_scopes, vec!["patient/Observation.r"]);
    let deny_cfg = Config::from_json(br#"{"policy":{"read_outside_request":"deny"}}"#).unwrap();
    let d = authorize(&deny_cfg, read("Observation", "1"), Some(&ctx));
    assert_eq!(
        (d.status, d.reason),
        (403, Reason::PatientCompartmentViolation)
    );
    assert!(
        d.message.contains("Observation?patient=123"),
        "{}",
        d.message
    );
    // user/ scope: no obligation
    let u = AuthContext::from_scopes("user/Observation.rs", None);
    let d = authorize(&config, read("Observation", "1"), Some(&u));
    assert!(d.is_allow() && d.obligations.is_empty());
    assert_eq!(d.required_scopes, vec!["user/Observation.r"]);
    // both user/ and patient/: the unrestricted grant wins
    let both = AuthContext::from_scopes("patient/Observation.rs user/Observation.r", Some("123"));
    let d = authorize(&config, read("Observation", "1"), Some(&both));
    assert!(d.is_allow() && d.obligations.is_empty());
}
