//! Issue 17: requests certified clients send (US Core, SMART) that the
//! filter must not refuse, each beside the refusal that stays next to it.
//! `Prefer: respond-async` on a search and the granular broader form are
//! rewrites: `rewrite_engine.rs`.

use super::*;

fn op_search(t: &str, name: &str, q: &str) -> Interaction {
    op(Level::Type, Some(t), None, name, q)
}

fn obligations(scopes: &str, it: Interaction) -> Vec<Obligation> {
    let ctx = AuthContext::from_scopes(scopes, Some("123"));
    let d = authorize(&cfg(), it, Some(&ctx));
    assert!(d.is_allow(), "{}", d.message);
    d.obligations
}

fn compartment(t: &str) -> Obligation {
    Obligation::CheckResponseCompartment {
        resource_type: t.into(),
        patient: "123".into(),
    }
}

#[test]
#[rustfmt::skip]
fn certified_requests_are_allowed() {
    let lab_scope = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
    check(vec![
        // US Core Implantable Device: Device.patient links it to the patient.
        row("patient/*.rs", Some("123"), search("Device", "patient=123"), ALLOW, &[]),
        row("patient/Device.rs", Some("123"), search("Device", "patient=Patient/123&type=x"), ALLOW, &[]),
        row("patient/Device.rs", Some("123"), search("Device", "type=x"), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("patient/Device.rs", Some("123"), read("Device", "d1"), ALLOW, &[]),
        row("patient/Device.rs", Some("123"), search("Device", "patient=456"), COMPART, &["patient/Device.s"]),
        row("patient/Device.rs", Some("123"), create("Device", Some(json!({"resourceType":"Device","patient":{"reference":"Patient/456"}}))), INSUFF, &["patient/Device.c"]),
        row("patient/Device.c", Some("123"), create("Device", Some(json!({"resourceType":"Device","patient":{"reference":"Patient/456"}}))), COMPART, &["patient/Device.c"]),
        // Chains and `_has` inside a search the request pins: they only narrow the patient's results.
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&subject:Patient.name=smith"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Observation", "subject=Patient/123&encounter.status=finished"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Patient", "_id=123&_has:Observation:patient:code=1234-5"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), comp_search("123", "Observation"), ALLOW, &[]),
        //   ... not in one narrowing pins (the knobs allow_chained / allow_has decide) ...
        row("patient/*.rs", Some("123"), search("Observation", "code=x&subject:Patient.name=smith"), CHAIN, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), search("Patient", "name=x&_has:Observation:patient:code=1"), CHAIN, &["patient/Patient.s"]),
        //   ... nor from a shared type, which is pinned to no one (a `_has` would ask about any patient) ...
        row("patient/*.rs", Some("123"), search("Organization", "_has:Patient:organization:name=smith"), CHAIN, &["patient/Organization.s"]),
        row("patient/*.rs", Some("123"), search("Organization", "name=x&_has:Patient:organization:name=smith"), CHAIN, &["patient/Organization.s"]),
        //   ... and never to a type the token cannot read.
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&subject:Patient.name=smith"), INSUFF, &["patient/Observation.s", "patient/Patient.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&device:DeviceMetric.type=x"), COMPART, &["patient/Observation.s", "patient/DeviceMetric.s"]),
        // R4's functional lists on a pinned search; a List resource stays refused.
        row("patient/*.rs", Some("123"), search("AllergyIntolerance", "patient=123&_list=$current-allergies"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Condition", "patient=123&_list=$current-problems"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("MedicationStatement", "patient=123&_list=$current-medications"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Condition", "patient=123&_list=L1"), COMPART, &["patient/Condition.s", "user/List.r"]),
        row("patient/*.rs", Some("123"), search("Condition", "patient=123&_list=$current-problems,L1"), COMPART, &["patient/Condition.s", "user/List.r"]),
        // US Core DocumentReference/$docref, pinned by `patient`.
        row("patient/DocumentReference.rs", Some("123"), op_search("DocumentReference", "$docref", "patient=123"), ALLOW, &[]),
        row("patient/DocumentReference.rs", Some("123"), op_search("DocumentReference", "$docref", "patient=456"), COMPART, &["patient/DocumentReference.rs"]),
        row("patient/DocumentReference.rs", Some("123"), op_search("DocumentReference", "$docref", "start=2020"), COMPART, &["patient/DocumentReference.rs"]),
        row("user/DocumentReference.rs", None, op_search("DocumentReference", "$docref", "patient=456"), ALLOW, &[]),
        // A paging offset on a search the request pins (answer checked); not on one narrowing pins.
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&_count=10&_getpagesoffset=10"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "code=x&_getpagesoffset=10"), INVALID, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&_getpages=abc"), INVALID, &[]),
        // A granular parameter in a broader form: the scope's value is added beside it.
        row(lab_scope, Some("123"), search("Observation", "patient=123&category=laboratory"), ALLOW, &[])
            .narrowed("category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),
        row(lab_scope, Some("123"), search("Observation", "patient=123&category=vital-signs"), GRAN, &["patient/Observation.s"]),
    ]);
    assert_eq!(obligations("patient/Device.rs", read("Device", "d1")), vec![compartment("Device")]);
    assert_eq!(
        obligations("patient/Observation.rs", search("Observation", "patient=123&_getpagesoffset=10")),
        vec![compartment("*")]
    );
}

/// `Patient/[id]/$everything` answers with the patient's Device; a Device
/// of another patient, or of none, is still refused. A Provenance read by
/// id whose targets are not the Patient stays refused: its targets are not
/// in the answer to check it by (read it through
/// `_revinclude=Provenance:target` on the patient's search).
#[test]
fn answers_with_devices_and_provenance() {
    let c = cfg();
    let check = |o: &Obligation, v: Value| {
        policy::check_response(&c.policy, Some("https://ehr.example.org/fhir"), o, &v)
    };
    let device = |p: Option<&str>| match p {
        Some(p) => json!({"resourceType":"Device","id":"d","patient":{"reference":p}}),
        None => json!({"resourceType":"Device","id":"d"}),
    };
    let everything = |r: Value| {
        json!({"resourceType":"Bundle","type":"searchset","entry":[
        {"resource":{"resourceType":"Patient","id":"123"}}, {"resource": r}]})
    };
    assert_eq!(
        check(&compartment("*"), everything(device(Some("Patient/123")))),
        Ok(())
    );
    assert!(check(&compartment("*"), everything(device(Some("Patient/456")))).is_err());
    assert!(check(&compartment("*"), everything(device(None))).is_err());
    let provenance =
        json!({"resourceType":"Provenance","id":"pv","target":[{"reference":"Observation/o1"}]});
    assert!(check(&compartment("Provenance"), provenance).is_err());
}
