//! Creates, updates, patches and deletes, plain and conditional, and `policy.patient_update_by_id`.

use super::*;

#[test]
fn patient_update_by_id_knob() {
    let ctx = AuthContext::from_scopes("patient/Observation.us patient/Patient.u", Some("123"));
    let deny = Config::from_json(br#"{"policy":{"patient_update_by_id":"deny"}}"#).unwrap();
    let d = authorize(
        &deny,
        update("Observation", "1", Some(obs("Patient/123"))),
        Some(&ctx),
    );
    assert_eq!(
        (d.status, d.reason),
        (403, Reason::PatientCompartmentViolation)
    );
    assert!(d.message.contains("conditional update"), "{}", d.message);
    for ok in [
        cond_update(
            "Observation",
            "identifier=a&patient=123",
            obs("Patient/123"),
        ),
        update(
            "Patient",
            "123",
            Some(json!({"resourceType":"Patient","id":"123"})),
        ),
    ] {
        let d = authorize(&deny, ok, Some(&ctx));
        assert!(d.is_allow(), "{}", d.message);
    }
    assert!(authorize(
        &cfg(),
        update("Observation", "1", Some(obs("Patient/123"))),
        Some(&ctx)
    )
    .is_allow());
}
