//! Operations against the default `policy.operations` table.

use super::*;

#[test]
#[rustfmt::skip]
fn operations() {
    check(vec![
        row("patient/*.rs", Some("123"), op(Level::Instance, Some("Patient"), Some("123"), "$everything", ""), ALLOW, &[]),
        row("patient/*.rs", Some("123"), op(Level::Instance, Some("Patient"), Some("456"), "$everything", ""), COMPART, &["patient/*.rs"]),
        row("patient/Observation.rs", Some("123"), op(Level::Instance, Some("Patient"), Some("123"), "$everything", ""), INSUFF, &["patient/*.rs"]),
        row("user/*.rs", None, op(Level::Instance, Some("Patient"), Some("456"), "$everything", ""), ALLOW, &[]),
        row("user/*.r", None, op(Level::Instance, Some("Patient"), Some("456"), "$everything", ""), INSUFF, &["user/*.rs"]),
        row("system/*.rs", None, op(Level::System, None, None, "$export", ""), ALLOW, &[]),
        row("system/*.read", None, op(Level::Type, Some("Patient"), None, "$export", ""), ALLOW, &[]),
        row("system/*.rs", None, op(Level::Instance, Some("Group"), Some("g1"), "$export", ""), ALLOW, &[]),
        row("system/Observation.rs system/Patient.rs", None, op(Level::System, None, None, "$export", "_type=Observation,Patient"), ALLOW, &[]),
        row("system/Observation.rs", None, op(Level::System, None, None, "$export", "_type=Observation,Patient"), INSUFF, &["system/Observation.rs", "system/Patient.rs"]),
        row("system/Observation.rs", None, op(Level::System, None, None, "$export", ""), INSUFF, &["system/*.rs"]),
        row("user/*.rs", None, op(Level::System, None, None, "$export", ""), INSUFF, &["system/*.rs"]),
        row("patient/*.rs", Some("123"), op(Level::Type, Some("Patient"), None, "$export", ""), INSUFF, &["system/*.rs"]),
        row("user/*.rs", None, op(Level::System, None, None, "$frobnicate", ""), OPNP, &[]),
        row("user/*.rs", None, op(Level::Instance, Some("Observation"), Some("1"), "$everything", ""), OPNP, &[]),
        row("user/Observation.c", None, op(Level::Type, Some("Observation"), None, "$validate", ""), ALLOW, &[]),
        row("user/Observation.rs", None, op(Level::Type, Some("Observation"), None, "$validate", ""), INSUFF, &["user/Observation.c"]),
        row("patient/Observation.rs", Some("123"), op(Level::Type, Some("Observation"), None, "$lastn", "patient=123&category=vital-signs"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), op(Level::Type, Some("Observation"), None, "$lastn", "category=vital-signs"), COMPART, &["patient/Observation.s"]),
        row("patient/ValueSet.rs", Some("123"), op(Level::Type, Some("ValueSet"), None, "$expand", "url=x"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), op(Level::Instance, Some("Patient"), Some("123"), "$meta", ""), ALLOW, &[]),
        row("patient/*.rs", Some("123"), op(Level::Instance, Some("Observation"), Some("1"), "$meta", ""), COMPART, &["patient/Observation.r"]),
        // An operation's parameters are not search parameters: `category` does
        // not restrict what `$everything` returns, so it meets no granular scope.
        row("user/*.rs?category=laboratory", None, op(Level::Instance, Some("Patient"), Some("1"), "$everything", "category=laboratory"), GRAN, &["user/*.rs"]),
    ]);
}

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
