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
        // No `_type` under per-type scopes: narrowed to the granted types.
        row("system/Observation.rs", None, op(Level::System, None, None, "$export", ""), ALLOW, &[]).narrowed("_type=Observation"),
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

/// Bulk Data kick-off (`$export`, IG 2.0/3.0): the types and every
/// parameter that widens the output, decided against the scopes.
#[test]
#[rustfmt::skip]
fn export_kickoff_parameters() {
    let s = |q: &str| op(Level::System, None, None, "$export", q);
    let patient = |q: &str| op(Level::Type, Some("Patient"), None, "$export", q);
    let group = |q: &str| op(Level::Instance, Some("Group"), Some("g1"), "$export", q);
    const OBS_PAT: &str = "system/Observation.rs system/Patient.rs";
    check(vec![
        // `_type` absent: every type, or the granted types added
        row(OBS_PAT, None, s(""), ALLOW, &[]).narrowed("_type=Observation,Patient"),
        row("system/Observation.rs system/Patient.r", None, s(""), ALLOW, &[]).narrowed("_type=Observation"),
        row("system/Observation.rs?category=laboratory", None, s(""), INSUFF, &["system/*.rs"]),
        row("user/Observation.rs", None, s(""), INSUFF, &["system/*.rs"]),
        row("system/*.rs", None, s(""), ALLOW, &[]),
        // levels: a Group export needs Group too
        row(OBS_PAT, None, patient("_type=Observation"), ALLOW, &[]),
        row(OBS_PAT, None, group("_type=Observation"), INSUFF, &["system/Group.rs"]),
        row("system/Observation.rs system/Group.rs", None, group("_type=Observation"), ALLOW, &[]),
        row("system/Observation.rs system/Group.rs", None, group(""), ALLOW, &[]).narrowed("_type=Observation,Group"),
        // includeAssociatedData adds Provenance
        row(OBS_PAT, None, s("_type=Observation&includeAssociatedData=LatestProvenanceResources"), INSUFF, &["system/Observation.rs", "system/Provenance.rs"]),
        row("system/Observation.rs system/Provenance.rs", None, s("_type=Observation&includeAssociatedData=RelevantProvenanceResources"), ALLOW, &[]),
        row("system/*.rs", None, s("includeAssociatedData=_myServerData"), OPNP, &[]),
        // _typeFilter: its type needs the scope; it may only filter
        row(OBS_PAT, None, s("_type=Observation&_typeFilter=Observation?status=final"), ALLOW, &[]),
        row(OBS_PAT, None, s("_type=Observation&_typeFilter=Condition?code=x"), INSUFF, &["system/Observation.rs", "system/Condition.rs"]),
        row("system/*.rs", None, s("_typeFilter=Observation?_include=Observation:subject"), OPNP, &[]),
        row("system/*.rs", None, s("_typeFilter=Observation?_revinclude=Provenance:target"), OPNP, &[]),
        row("system/*.rs", None, s("_typeFilter=status=final"), OPNP, &[]),
        // organizeOutputBy and type-qualified _elements name types
        row(OBS_PAT, None, s("_type=Observation&organizeOutputBy=Patient"), ALLOW, &[]),
        row(OBS_PAT, None, s("_type=Observation&organizeOutputBy=Encounter"), INSUFF, &["system/Observation.rs", "system/Encounter.rs"]),
        row(OBS_PAT, None, s("_type=Observation&_elements=Observation.code,id"), ALLOW, &[]),
        row(OBS_PAT, None, s("_type=Observation&_elements=Condition.code"), INSUFF, &["system/Observation.rs", "system/Condition.rs"]),
        // patient: Patient and Group level only, a literal Patient reference
        row(OBS_PAT, None, patient("_type=Observation&patient=Patient/123"), ALLOW, &[]),
        row(OBS_PAT, None, patient("_type=Observation&patient=123"), OPNP, &[]),
        row(OBS_PAT, None, patient("_type=Observation&patient=Patient/1/_history/2"), OPNP, &[]),
        row(OBS_PAT, None, s("_type=Observation&patient=Patient/123"), OPNP, &[]),
        // narrowing and shaping parameters; anything else is refused
        row(OBS_PAT, None, s("_type=Observation&_since=2020-01-01T00:00:00Z&_until=2026-01-01T00:00:00Z&_outputFormat=application/fhir+ndjson&allowPartialManifests=true"), ALLOW, &[]),
        row("system/*.rs", None, s("_mdm=true"), OPNP, &[]),
        row("system/*.rs", None, s("_type:not=Observation"), OPNP, &[]),
        row("system/*.rs", None, s("_count=10"), OPNP, &[]),
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
