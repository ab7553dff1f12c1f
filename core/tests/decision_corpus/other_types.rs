//! Parameters that reach other types than the searched one: `_include` /
//! `_revinclude` (targets from the R4 tables), chains, `_has`, chained
//! sort keys, `_list`, `_filter`, `_query`; in every scope context.

use super::*;

#[test]
#[rustfmt::skip]
fn includes() {
    let config = cfg();
    let obligations = |scopes: &str, q: &str| {
        let ctx = AuthContext::from_scopes(scopes, Some("123"));
        let d = authorize(&config, search("Observation", q), Some(&ctx));
        assert!(d.is_allow(), "{q}: {}", d.message);
        d.obligations
    };
    let compartment = |t: &str| Obligation::CheckResponseCompartment {
        resource_type: t.into(),
        patient: "123".into(),
    };
    let absent = |ts: &[&str]| Obligation::CheckResponseTypesAbsent {
        resource_types: ts.iter().map(|t| t.to_string()).collect(),
    };
    assert_eq!(obligations("patient/*.rs", "patient=123&_include=Observation:performer:Patient"), vec![compartment("Patient")]);
    assert_eq!(obligations("patient/Observation.rs patient/Patient.rs", "patient=123&_include=Observation:subject"),
               vec![compartment("Patient"), absent(&["Device", "Group", "Location"])]);
    assert_eq!(obligations("patient/*.rs", "patient=123&_include=Observation:subject"),
               vec![compartment("Device"), compartment("Group"), compartment("Patient")]);
    assert_eq!(obligations("patient/*.rs", "patient=123&_include=Observation:performer"),
               vec![compartment("CareTeam"), compartment("Patient"), compartment("RelatedPerson")]);
    let user = AuthContext::from_scopes("user/Observation.rs user/Patient.r", None);
    let d = authorize(&config, search("Observation", "_include=Observation:subject"), Some(&user));
    assert_eq!(d.obligations, vec![absent(&["Device", "Group", "Location"])]);
    let open = Config::from_json(br#"{"policy":{"allow_wildcard_include":true}}"#).unwrap();
    let all = AuthContext::from_scopes("patient/*.rs", Some("123"));
    let d = authorize(&open, search("Observation", "patient=123&_include=*"), Some(&all));
    assert!(d.is_allow(), "{}", d.message);
    assert_eq!(d.obligations, vec![compartment("*")]);
}
