//! Issue 17: requests certified clients send (US Core, SMART) that the
//! filter must not refuse, each beside the refusal that stays next to it.
//! `Prefer: respond-async` on a search and the granular broader form are
//! rewrites: `rewrite_engine.rs`.

use super::*;

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
