//! Creates, updates, patches and deletes, plain and conditional, and `policy.patient_update_by_id`.

use super::*;

#[test]
#[rustfmt::skip]
fn writes() {
    check(vec![
        row("patient/Observation.c", Some("123"), create("Observation", Some(obs("Patient/123"))), ALLOW, &[]),
        row("patient/Observation.cruds", Some("123"), create("Observation", Some(obs("https://ehr.example.org/fhir/Patient/123"))), ALLOW, &[]),
        row("patient/Observation.write", Some("123"), create("Observation", Some(obs("Patient/123"))), ALLOW, &[]),
        row("patient/Observation.c", Some("123"), create("Observation", Some(obs("Patient/456"))), COMPART, &["patient/Observation.c"]),
        row("patient/Observation.c", Some("123"), create("Observation", Some(json!({"resourceType":"Observation"}))), COMPART, &["patient/Observation.c"]),
        row("patient/Observation.c", Some("123"), create("Observation", None), COMPART, &["patient/Observation.c"]),
        row("patient/Observation.rs", Some("123"), create("Observation", Some(obs("Patient/123"))), INSUFF, &["patient/Observation.c"]),
        row("patient/Observation.c", None, create("Observation", Some(obs("Patient/123"))), NOCTX, &["patient/Observation.c"]),
        row("patient/*.c", Some("123"), create("Medication", Some(json!({"resourceType":"Medication"}))), COMPART, &["patient/Medication.c"]),
        // patient/ scopes never write shared reference types, conditional deletes included.
        row("patient/Medication.cruds", Some("123"), cond_delete("Medication", "code=x"), COMPART, &["patient/Medication.ds"]),
        row("patient/Medication.cruds", Some("123"), delete("Medication", "m1"), COMPART, &["patient/Medication.d"]),
        row("user/Medication.ds", None, cond_delete("Medication", "code=x"), ALLOW, &[]),
        row("patient/Observation.cs", Some("123"), cond_create("Observation", obs("Patient/123"), "identifier=x&patient=123"), ALLOW, &[]),
        row("patient/Observation.cs", Some("123"), cond_create("Observation", obs("Patient/123"), "identifier=x"), COMPART, &["patient/Observation.cs"]),
        row("patient/Observation.c", Some("123"), cond_create("Observation", obs("Patient/123"), "identifier=x&patient=123"), INSUFF, &["patient/Observation.cs"]),
        row("patient/Observation.u", Some("123"), update("Observation", "1", Some(obs("Patient/123"))), ALLOW, &[]),
        row("patient/Observation.u", Some("123"), update("Observation", "1", Some(obs("Patient/9"))), COMPART, &["patient/Observation.u"]),
        row("patient/Observation.u", Some("123"), update("Observation", "1", None), COMPART, &["patient/Observation.u"]),
        row("patient/Patient.u", Some("123"), update("Patient", "123", Some(json!({"resourceType":"Patient","id":"123"}))), ALLOW, &[]),
        row("patient/Patient.u", Some("123"), update("Patient", "9", Some(json!({"resourceType":"Patient","id":"9"}))), COMPART, &["patient/Patient.u"]),
        row("patient/Patient.u", Some("123"), update("Patient", "123", Some(json!({"resourceType":"Patient","id":"9"}))), COMPART, &["patient/Patient.u"]),
        row("patient/Observation.us", Some("123"), cond_update("Observation", "identifier=a&patient=123", obs("Patient/123")), ALLOW, &[]),
        row("patient/Observation.u", Some("123"), cond_update("Observation", "identifier=a&patient=123", obs("Patient/123")), INSUFF, &["patient/Observation.us"]),
        row("patient/Patient.u", Some("123"), with_doc(patch("Patient", "123"), json!([{"op":"replace","path":"/active","value":true}])), ALLOW, &[]),
        row("patient/Patient.u", Some("123"), with_doc(patch("Patient", "9"), json!([])), COMPART, &["patient/Patient.u"]),
        // No readable patch document (an XML patch): refused under patient/ scopes.
        row("patient/Observation.u", Some("123"), patch("Observation", "1"), COMPART, &["patient/Observation.u"]),
        // By id: allowed with the write pre-check (see write_hardening.rs).
        row("patient/Observation.d", Some("123"), delete("Observation", "1"), ALLOW, &[]),
        row("patient/Patient.d", Some("123"), delete("Patient", "123"), ALLOW, &[]),
        row("patient/Observation.ds", Some("123"), cond_delete("Observation", "patient=123&code=x"), ALLOW, &[]),
        row("patient/Observation.ds", Some("123"), cond_delete("Observation", "code=x"), COMPART, &["patient/Observation.ds"]),
        row("patient/Observation.d", Some("123"), cond_delete("Observation", "patient=123"), INSUFF, &["patient/Observation.ds"]),
        row("user/Observation.c", None, create("Observation", Some(obs("Patient/1"))), ALLOW, &[]),
        row("user/Observation.c", None, create("Observation", None), ALLOW, &[]),
        row("user/Observation.u", None, update("Observation", "1", Some(obs("Patient/1"))), ALLOW, &[]),
        row("user/Observation.u", None, patch("Observation", "1"), ALLOW, &[]),
        row("user/Observation.d", None, delete("Observation", "1"), ALLOW, &[]),
        row("user/Observation.rs", None, delete("Observation", "1"), INSUFF, &["user/Observation.d"]),
        row("user/Observation.read", None, update("Observation", "1", None), INSUFF, &["user/Observation.u"]),
        row("user/Observation.write", None, update("Observation", "1", None), ALLOW, &[]),
        row("user/Observation.u", None, cond_update("Observation", "identifier=a", obs("Patient/1")), INSUFF, &["user/Observation.us"]),
        row("user/Observation.us", None, cond_update("Observation", "identifier=a", obs("Patient/1")), ALLOW, &[]),
        row("system/*.cud", None, cond_delete("Observation", "identifier=a"), INSUFF, &["system/Observation.ds"]),
        row("system/*.cruds", None, cond_delete("Observation", "identifier=a"), ALLOW, &[]),
    ]);
}

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
