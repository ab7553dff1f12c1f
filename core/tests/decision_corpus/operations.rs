//! Operations against the default `policy.operations` table.

use super::*;

/// `Patient/{id}/$everything` returns the compartment plus what it
/// references, and servers have returned other patients through it (HAPI
/// #4691): under patient/ scopes every resource of the response is checked,
/// as for `Patient/{id}/*`. user/ scopes reach every patient anyway.
#[test]
fn everything_is_response_checked_under_patient_scopes() {
    let config = cfg();
    let everything = || {
        op(
            Level::Instance,
            Some("Patient"),
            Some("123"),
            "$everything",
            "",
        )
    };
    let patient = AuthContext::from_scopes("patient/*.rs", Some("123"));
    let d = authorize(&config, everything(), Some(&patient));
    assert!(d.is_allow(), "{}", d.message);
    assert_eq!(
        d.obligations,
        vec![Obligation::CheckResponseCompartment {
            resource_type: "*".into(),
            patient: "123".into(),
        }]
    );
    let user = AuthContext::from_scopes("user/*.rs", None);
    let d = authorize(&config, everything(), Some(&user));
    assert!(
        d.is_allow() && d.obligations.is_empty(),
        "{:?}",
        d.obligations
    );
}
