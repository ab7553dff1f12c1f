//! Searches under patient/ scopes: pinning to the context patient (with
//! `policy.patient_search = deny`, so nothing is narrowed), pins that name
//! other or several patients, compartment searches.

use super::*;

#[test]
#[rustfmt::skip]
fn compartment_searches() {
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
