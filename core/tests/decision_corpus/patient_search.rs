//! Searches under patient/ scopes: pinning to the context patient, compartment searches, includes, chains and `_has`.

use super::*;

#[test]
#[rustfmt::skip]
fn patient_scope_search_pinning() {
    check(vec![
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=Patient/123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=https://ehr.example.org/fhir/Patient/123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject:Patient=123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "performer=Patient/123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&code=1234-5"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "code=1234-5&subject=Patient/123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123,456"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123,Patient/456"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=456"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "code=1234-5"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", ""), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=https://evil.example/fhir/Patient/123"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject:Group=123"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "encounter=Encounter/1"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=456&patient=123"), ALLOW, &[]),
        row("patient/Observation.r", Some("123"), search("Observation", "patient=123"), INSUFF, &["patient/Observation.s"]),
        row("patient/Observation.rs", None, search("Observation", "patient=123"), NOCTX, &["patient/Observation.s"]),
        row("patient/Encounter.rs", Some("123"), search("Encounter", "patient=123"), ALLOW, &[]),
        row("patient/Encounter.rs", Some("123"), search("Encounter", "subject=Patient/123"), ALLOW, &[]),
        row("patient/AllergyIntolerance.rs", Some("123"), search("AllergyIntolerance", "asserter=Patient/123"), ALLOW, &[]),
        row("patient/AllergyIntolerance.rs", Some("123"), search("AllergyIntolerance", "recorder=123"), ALLOW, &[]),
        row("patient/Condition.rs", Some("123"), search("Condition", "patient=123"), ALLOW, &[]),
        row("patient/MedicationRequest.rs", Some("123"), search("MedicationRequest", "patient=123"), ALLOW, &[]),
        row("patient/Coverage.rs", Some("123"), search("Coverage", "beneficiary=Patient/123"), ALLOW, &[]),
        row("patient/AdverseEvent.rs", Some("123"), search("AdverseEvent", "patient=123"), COMPART, &["patient/AdverseEvent.s"]),
        row("patient/Patient.rs", Some("123"), search("Patient", "_id=123"), ALLOW, &[]),
        row("patient/Patient.rs", Some("123"), search("Patient", "_id=123,456"), COMPART, &["patient/Patient.s"]),
        row("patient/Patient.rs", Some("123"), search("Patient", "name=smith"), COMPART, &["patient/Patient.s"]),
        row("patient/Patient.rs", Some("123"), search("Patient", "link=Patient/123"), ALLOW, &[]),
        row("patient/Medication.rs", Some("123"), search("Medication", "code=abc"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Organization", "name=x"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Device", "patient=123"), COMPART, &["patient/Device.s"]),
        row("patient/*.rs", Some("123"), sys_search(&["Observation", "Condition"], "patient=123"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), sys_search(&["Observation"], "code=x"), COMPART, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), sys_search(&[], "_lastUpdated=gt2020"), COMPART, &["patient/*.s"]),
    ]);
}

#[test]
#[rustfmt::skip]
fn compartment_searches() {
    check(vec![
        row("patient/*.rs", Some("123"), comp_search("123", "Observation"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), comp_search("123", "Observation"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), comp_search("123", "*"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), comp_search("123", "*"), INSUFF, &["patient/*.s"]),
        row("patient/*.rs", Some("123"), comp_search("456", "Observation"), COMPART, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), comp_search("456", "*"), COMPART, &["patient/*.s"]),
        row("patient/*.rs", None, comp_search("123", "*"), NOCTX, &["patient/*.s"]),
        row("user/*.rs", None, comp_search("456", "*"), ALLOW, &[]),
        row("user/Observation.rs", None, comp_search("456", "Observation"), ALLOW, &[]),
        row("user/Observation.rs", None, comp_search("456", "Condition"), INSUFF, &["user/Condition.s"]),
        row("system/*.rs", None, comp_search("456", "*"), ALLOW, &[]),
    ]);
}

#[test]
#[rustfmt::skip]
fn includes_chains_has() {
    check(vec![
        row("patient/Observation.rs patient/Patient.rs", Some("123"), search("Observation", "patient=123&_include=Observation:subject:Patient"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&_include=Observation:subject:Patient"), INCL, &["patient/Observation.s", "patient/Patient.r"]),
        row("patient/Observation.rs patient/Patient.rs", Some("123"), search("Observation", "patient=123&_include=Observation:patient"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_include=Observation:subject"), INCL, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_include=*"), INCL, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), search("MedicationRequest", "patient=123&_include=MedicationRequest:medication"), ALLOW, &[]),
        row("patient/MedicationRequest.rs", Some("123"), search("MedicationRequest", "patient=123&_include=MedicationRequest:medication"), INCL, &["patient/MedicationRequest.s", "patient/Medication.r"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_include=Observation:device:Device"), INCL, &["patient/Observation.s", "patient/Device.r"]),
        row("patient/Patient.rs patient/Provenance.rs", Some("123"), search("Patient", "_id=123&_revinclude=Provenance:target"), ALLOW, &[]),
        row("patient/Patient.rs", Some("123"), search("Patient", "_id=123&_revinclude=Provenance:target"), INCL, &["patient/Patient.s", "patient/Provenance.s"]),
        row("patient/*.rs", Some("123"), search("Patient", "_id=123&_revinclude=*"), INCL, &["patient/Patient.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&subject.name=smith"), CHAIN, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&subject:Patient.name=smith"), CHAIN, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), search("Patient", "_id=123&_has:Observation:patient:code=1234"), CHAIN, &["patient/Patient.s"]),
        row("user/*.rs", None, search("Observation", "subject.name=smith&_include=*"), ALLOW, &[]),
        row("user/*.rs", None, search("Patient", "_has:Observation:patient:code=1234"), ALLOW, &[]),
        row("user/Observation.rs", None, search("Observation", "_include=Observation:subject"), INCL, &["user/Observation.s", "user/*.r"]),
        row("user/Observation.rs user/Patient.r", None, search("Observation", "_include=Observation:subject:Patient"), ALLOW, &[]),
    ]);
    let config = cfg();
    let ctx = AuthContext::from_scopes("patient/*.rs", Some("123"));
    let d = authorize(
        &config,
        search(
            "Observation",
            "patient=123&_include=Observation:performer:Patient",
        ),
        Some(&ctx),
    );
    assert!(d.is_allow());
    assert_eq!(
        d.obligations,
        vec![Obligation::CheckResponseCompartment {
            resource_type: "Patient".into(),
            patient: "123".into()
        }]
    );
    let open = Config::from_json(
        br#"{"policy":{"allow_chained":true,"allow_has":true,"allow_wildcard_include":true}}"#,
    )
    .unwrap();
    for q in [
        "patient=123&subject.name=smith",
        "patient=123&_has:Observation:patient:code=1",
    ] {
        assert!(
            authorize(&open, search("Observation", q), Some(&ctx)).is_allow(),
            "{q}"
        );
    }
}
