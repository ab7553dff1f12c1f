//! Searches under patient/ scopes: pinning to the context patient (with
//! `policy.patient_search = deny`, so nothing is narrowed), pins that name
//! other or several patients, compartment searches.

use super::*;

#[test]
#[rustfmt::skip]
fn patient_scope_search_pinning() {
    check_with(&deny_cfg(), vec![
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=Patient/123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=https://ehr.example.org/fhir/Patient/123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject:Patient=123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "performer=Patient/123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&code=1234-5"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "code=1234-5&subject=Patient/123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&patient=Patient/123"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123,456"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123,Patient/456"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=456"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "code=1234-5"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", ""), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=https://evil.example/fhir/Patient/123"), INVALID, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject:Group=123"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "encounter=Encounter/1"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.r", Some("123"), search("Observation", "patient=123"), INSUFF, &["patient/Observation.s"]),
        row("patient/Observation.rs", None, search("Observation", "patient=123"), NOCTX, &["patient/Observation.s"]),
        row("patient/Encounter.rs", Some("123"), search("Encounter", "patient=123"), ALLOW, &[]),
        row("patient/Encounter.rs", Some("123"), search("Encounter", "subject=Patient/123"), ALLOW, &[]),
        row("patient/AllergyIntolerance.rs", Some("123"), search("AllergyIntolerance", "asserter=Patient/123"), ALLOW, &[]),
        row("patient/AllergyIntolerance.rs", Some("123"), search("AllergyIntolerance", "recorder=123"), ALLOW, &[]),
        row("patient/Condition.rs", Some("123"), search("Condition", "patient=123"), ALLOW, &[]),
        row("patient/MedicationRequest.rs", Some("123"), search("MedicationRequest", "patient=123"), ALLOW, &[]),
        row("patient/Coverage.rs", Some("123"), search("Coverage", "beneficiary=Patient/123"), ALLOW, &[]),
        // pins R4 has but the hand-written table missed
        row("patient/Coverage.rs", Some("123"), search("Coverage", "patient=Patient/123"), ALLOW, &[]),
        row("patient/Appointment.rs", Some("123"), search("Appointment", "patient=123"), ALLOW, &[]),
        row("patient/ResearchSubject.rs", Some("123"), search("ResearchSubject", "patient=123"), ALLOW, &[]),
        row("patient/AuditEvent.rs", Some("123"), search("AuditEvent", "agent=Patient/123"), ALLOW, &[]),
        row("patient/Provenance.rs", Some("123"), search("Provenance", "target=Patient/123"), ALLOW, &[]),
        row("patient/AdverseEvent.rs", Some("123"), search("AdverseEvent", "patient=123"), COMPART, &["patient/AdverseEvent.s"]),
        row("patient/AdverseEvent.rs", Some("123"), search("AdverseEvent", "subject=Patient/123"), ALLOW, &[]),
        row("patient/Patient.rs", Some("123"), search("Patient", "_id=123"), ALLOW, &[]),
        row("patient/Patient.rs", Some("123"), search("Patient", "_id=123,456"), COMPART, &["patient/Patient.s"]),
        row("patient/Patient.rs", Some("123"), search("Patient", "name=smith"), COMPART, &["patient/Patient.s"]),
        row("patient/Medication.rs", Some("123"), search("Medication", "code=abc"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Organization", "name=x"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("DeviceMetric", "_id=x"), COMPART, &["patient/DeviceMetric.s"]),
        row("patient/*.rs", Some("123"), sys_search(&["Observation", "Condition"], "patient=123"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), sys_search(&["Observation"], "code=x"), COMPART, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), sys_search(&[], "_lastUpdated=gt2020"), COMPART, &["patient/*.s"]),
    ]);
}

/// Pins that name another patient (403) or several (400), and pin
/// parameters under modifiers that widen: only a bare pin or `:Patient`
/// pins (the others are narrowed, or denied without narrowing).
#[test]
#[rustfmt::skip]
fn foreign_and_conflicting_pins() {
    let rows = || vec![
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&patient=456"), INVALID, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=456&patient=123"), INVALID, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=Patient/123&patient=456"), INVALID, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=Patient/123&performer=Patient/456"), INVALID, &["patient/Observation.s"]),
        row("patient/Patient.rs", Some("123"), search("Patient", "_id=123&_id=456"), INVALID, &["patient/Patient.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=456"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123,456"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=456"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=https://evil.example/fhir/Patient/456"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient:mdm=456"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject:Patient=456"), COMPART, &["patient/Observation.s"]),
        row("patient/Patient.rs", Some("123"), search("Patient", "_id=456"), COMPART, &["patient/Patient.s"]),
        // `link` lists the other patients whose records link to one
        row("patient/Patient.rs", Some("123"), search("Patient", "link=Patient/123"), COMPART, &["patient/Patient.s"]),
        row("patient/Patient.rs", Some("123"), search("Patient", "_id=123&link=Patient/123"), COMPART, &["patient/Patient.s"]),
        // the same patient in several forms is one pin
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&subject=Patient/123&subject=https://ehr.example.org/fhir/Patient/123"), ALLOW, &[]),
        // user/ scopes do not pin: the server answers
        row("user/Observation.rs", None, search("Observation", "patient=123&patient=456"), ALLOW, &[]),
        row("user/Patient.rs", None, search("Patient", "link=Patient/123"), ALLOW, &[]),
    ];
    check(rows());
    check_with(&deny_cfg(), rows());
    check_with(&deny_cfg(), vec![
        row("patient/Observation.rs", Some("123"), search("Observation", "patient:mdm=123"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient:not=123"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient:missing=false"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject:identifier=mrn|123"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject:above=Patient/123"), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient:Patient=123"), ALLOW, &[]),
    ]);
    check(vec![
        row("patient/Observation.rs", Some("123"), search("Observation", "patient:mdm=123"), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient:not=123"), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient:missing=false"), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject:identifier=mrn|123"), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject:Group=123"), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient:Patient=123"), ALLOW, &[]),
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
        // `Patient/123/Patient` lists the other patients linked to 123
        row("patient/*.rs", Some("123"), comp_search("123", "Patient"), COMPART, &["patient/Patient.s"]),
        row("patient/Patient.rs", Some("123"), comp_search("123", "Patient"), COMPART, &["patient/Patient.s"]),
        row("user/*.rs", None, comp_search("456", "*"), ALLOW, &[]),
        row("user/*.rs", None, comp_search("456", "Patient"), ALLOW, &[]),
        row("user/Observation.rs", None, comp_search("456", "Observation"), ALLOW, &[]),
        row("user/Observation.rs", None, comp_search("456", "Condition"), INSUFF, &["user/Condition.s"]),
        row("system/*.rs", None, comp_search("456", "*"), ALLOW, &[]),
    ]);
    // `Patient/123/*` is checked on the response (linked Patients come back too).
    let ctx = AuthContext::from_scopes("patient/*.rs", Some("123"));
    let d = authorize(&cfg(), comp_search("123", "*"), Some(&ctx));
    assert!(d.is_allow(), "{}", d.message);
    assert_eq!(
        d.obligations,
        vec![Obligation::CheckResponseCompartment {
            resource_type: "*".into(),
            patient: "123".into()
        }]
    );
    let d = authorize(&cfg(), comp_search("123", "Observation"), Some(&ctx));
    assert!(d.is_allow() && d.obligations.is_empty() && d.narrowing.is_none());
}
