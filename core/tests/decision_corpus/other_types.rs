//! Parameters that reach other types than the searched one: `_include` /
//! `_revinclude` (targets from the R4 tables), chains, `_has`, chained
//! sort keys, `_list`, `_filter`, `_query`; in every scope context.

use super::*;

#[test]
#[rustfmt::skip]
fn includes() {
    check(vec![
        row("patient/Observation.rs patient/Patient.rs", Some("123"), search("Observation", "patient=123&_include=Observation:subject:Patient"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&_include=Observation:subject:Patient"), INCL, &["patient/Observation.s", "patient/Patient.r"]),
        row("patient/Observation.rs patient/Patient.rs", Some("123"), search("Observation", "patient=123&_include=Observation:patient"), ALLOW, &[]),
        // no target type: the readable targets, the others must be absent from the response
        row("patient/Observation.rs patient/Patient.rs", Some("123"), search("Observation", "patient=123&_include=Observation:subject"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_include=Observation:subject"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_include=Observation:performer"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&_include=Observation:performer"), INCL,
            &["patient/Observation.s", "patient/CareTeam.r", "patient/Organization.r", "patient/Patient.r", "patient/Practitioner.r", "patient/PractitionerRole.r", "patient/RelatedPerson.r"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_include=*"), INCL, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), search("MedicationRequest", "patient=123&_include=MedicationRequest:medication"), ALLOW, &[]),
        row("patient/MedicationRequest.rs", Some("123"), search("MedicationRequest", "patient=123&_include=MedicationRequest:medication"), INCL, &["patient/MedicationRequest.s", "patient/Medication.r"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_include=Observation:device:DeviceMetric"), INCL, &["patient/Observation.s", "patient/DeviceMetric.r"]),
        // `encounter` also points at EpisodeOfCare in R4 (the hand-written table said Encounter only)
        row("patient/DocumentReference.rs patient/Encounter.rs", Some("123"), search("DocumentReference", "patient=123&_include=DocumentReference:encounter"), ALLOW, &[]),
        row("patient/DocumentReference.rs patient/Encounter.rs", Some("123"), search("DocumentReference", "patient=123&_include=DocumentReference:encounter:EpisodeOfCare"), INCL, &["patient/DocumentReference.s", "patient/EpisodeOfCare.r"]),
        // not a target, not a reference, not a type, not the form
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_include=Observation:subject:Practitioner"), INVALID, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_include=Observation:code"), INVALID, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), search("DocumentReference", "patient=123&_include=DocumentReference:location"), INVALID, &["patient/DocumentReference.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_include=Foo:subject"), INVALID, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_include=Observation"), INVALID, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_include:weird=Observation:subject:Patient"), INVALID, &["patient/Observation.s"]),
        // a canonical reference: R4 names no targets
        row("user/*.rs", None, search("RequestGroup", "_include=RequestGroup:instantiates-canonical"), INCL, &["user/RequestGroup.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_include:iterate=Observation:has-member"), ALLOW, &[]),
        // _revinclude: the source must be able to point at the searched type
        row("patient/Patient.rs patient/Provenance.rs", Some("123"), search("Patient", "_id=123&_revinclude=Provenance:target"), ALLOW, &[]),
        row("patient/Observation.rs patient/Provenance.rs", Some("123"), search("Observation", "patient=123&_revinclude=Provenance:target"), ALLOW, &[]),
        row("patient/Patient.rs", Some("123"), search("Patient", "_id=123&_revinclude=Provenance:target"), INCL, &["patient/Patient.s", "patient/Provenance.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_revinclude=Encounter:diagnosis"), INVALID, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), search("Patient", "_id=123&_revinclude=*"), INCL, &["patient/Patient.s"]),
        row("user/Observation.rs", None, search("Observation", "_include=Observation:subject"), INCL,
            &["user/Observation.s", "user/Device.r", "user/Group.r", "user/Location.r", "user/Patient.r"]),
        row("user/Observation.rs user/Patient.r", None, search("Observation", "_include=Observation:subject:Patient"), ALLOW, &[]),
        row("user/Observation.rs user/Patient.r", None, search("Observation", "_include=Observation:subject"), ALLOW, &[]),
        row("user/*.rs", None, search("Observation", "_include=*"), ALLOW, &[]),
    ]);
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

#[test]
#[rustfmt::skip]
fn chains_and_has() {
    check(vec![
        // under patient/ scopes allowed inside a search the request pins (issue 17: they only
        // narrow the patient's results); otherwise refused by default (policy.allow_chained /
        // allow_has): certified.rs
        row("patient/*.rs", Some("123"), search("Observation", "code=x&subject.name=smith"), CHAIN, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "_sort=subject.name"), CHAIN, &["patient/Observation.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&subject.name=smith"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&subject:Patient.name=smith"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_sort=subject.name"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Patient", "_id=123&_has:Observation:patient:code=1234"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Patient", "_has:Observation:patient:code=1&_id=123&_include=Patient:organization"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Patient", "_id=123&_include=Patient:organization&_has:Observation:patient:code=1"), ALLOW, &[]),
        // user/ and system/ scopes: s on every type a chain or _has reads
        row("user/Observation.rs", None, search("Observation", "subject:Patient.name=Smith"), INSUFF, &["user/Observation.s", "user/Patient.s"]),
        row("user/Observation.rs user/Patient.rs", None, search("Observation", "subject:Patient.name=Smith"), ALLOW, &[]),
        row("user/Observation.rs user/Patient.rs", None, search("Observation", "subject.name=Smith"), INSUFF, &["user/Observation.s", "user/Location.s"]),
        row("user/Observation.rs user/Patient.rs user/Location.rs", None, search("Observation", "subject.name=Smith"), ALLOW, &[]),
        row("user/Observation.rs user/Patient.rs", None, search("Observation", "subject:Patient.organization.name=x"), INSUFF, &["user/Observation.s", "user/Patient.s", "user/Organization.s"]),
        row("user/Observation.rs user/Patient.rs user/Organization.rs", None, search("Observation", "subject:Patient.organization.name=x"), ALLOW, &[]),
        // Condition:subject cannot point at an Observation
        row("user/Observation.rs user/Condition.rs", None, search("Observation", "_has:Condition:subject:code=C50"), INVALID, &["user/Observation.s"]),
        row("user/Patient.rs", None, search("Patient", "_has:Condition:subject:code=C50"), INSUFF, &["user/Patient.s", "user/Condition.s"]),
        row("user/Patient.rs user/Condition.rs", None, search("Patient", "_has:Condition:subject:code=C50"), ALLOW, &[]),
        row("user/Patient.rs user/Observation.rs", None, search("Patient", "_has:Observation:patient:_has:AuditEvent:entity:type=x"), INSUFF, &["user/Patient.s", "user/Observation.s", "user/AuditEvent.s"]),
        row("user/Patient.rs user/Observation.rs user/AuditEvent.rs", None, search("Patient", "_has:Observation:patient:_has:AuditEvent:entity:type=x"), ALLOW, &[]),
        row("user/Patient.rs user/Observation.rs user/Practitioner.rs", None, search("Patient", "_has:Observation:patient:performer:Practitioner.name=x"), ALLOW, &[]),
        row("user/Patient.rs user/Observation.rs", None, search("Patient", "_has:Observation:patient:performer:Practitioner.name=x"), INSUFF, &["user/Patient.s", "user/Observation.s", "user/Practitioner.s"]),
        row("user/Observation.rs", None, search("Observation", "_sort=-subject.name"), INSUFF, &["user/Observation.s", "user/Location.s"]),
        row("user/*.rs", None, search("Observation", "subject.name=smith&_include=*"), ALLOW, &[]),
        row("user/*.rs", None, search("Patient", "_has:Observation:patient:code=1234"), ALLOW, &[]),
        row("system/*.rs", None, sys_search(&["Observation", "Condition"], "subject:Patient.name=x"), ALLOW, &[]),
        // what cannot be known is refused
        row("user/*.rs", None, search("Observation", "code.x=1"), INVALID, &["user/Observation.s"]),
        row("user/*.rs", None, search("Observation", "subject.foo=1"), INVALID, &["user/Observation.s"]),
        row("user/*.rs", None, search("Observation", "subject:Practitioner.name=1"), INVALID, &["user/Observation.s"]),
        row("user/*.rs", None, search("Observation", "subject:Foo.name=1"), INVALID, &["user/Observation.s"]),
        row("user/*.rs", None, search("Observation", "nope.name=1"), INVALID, &["user/Observation.s"]),
        row("user/*.rs", None, sys_search(&[], "subject.name=x"), INVALID, &["user/*.s"]),
        row("user/*.rs", None, search("Observation", "subject.organization.partof.partof.partof.name=x"), INVALID, &[]),
        row("user/*.rs", None, search("Patient", "_has=x"), INVALID, &[]),
        row("user/*.rs", None, search("Patient", "_has:Foo:patient:code=1"), INVALID, &[]),
        row("user/*.rs", None, search("Patient", "_has:Observation:code:code=1"), INVALID, &[]),
        row("user/*.rs", None, search("Patient", "_has:Observation:patient:nope=1"), INVALID, &[]),
        row("user/*.rs", None, search("Patient", "_has:Practitioner:patient:name=1"), INVALID, &[]),
    ]);
    let open = Config::from_json(br#"{"policy":{"allow_chained":true,"allow_has":true}}"#).unwrap();
    check_with(&open, vec![
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&subject:Patient.name=smith"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Patient", "_id=123&_has:Observation:patient:code=1"), ALLOW, &[]),
        // the types read must be reachable under patient/ scopes
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&device:DeviceMetric.type=x"), COMPART, &["patient/Observation.s", "patient/DeviceMetric.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&subject:Patient.name=smith"), INSUFF, &["patient/Observation.s", "patient/Patient.s"]),
    ]);
}

/// `_list`, `_filter`, `_query`: refused under patient/ scopes; `r` on List,
/// `s` on every type otherwise. Parameters R4 does not define are left to
/// the server (under `Prefer: handling=strict` when it matters).
#[test]
#[rustfmt::skip]
fn list_filter_query_and_unknown_parameters() {
    check(vec![
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&_query=everything"), INSUFF, &["patient/Observation.s", "user/*.s"]),
        row("user/Observation.rs", None, search("Observation", "_query=everything"), INSUFF, &["user/Observation.s", "user/*.s"]),
        row("user/*.rs", None, search("Observation", "_query=everything"), ALLOW, &[]),
        row("user/Observation.rs", None, search("Observation", "_filter=code eq x"), INSUFF, &["user/Observation.s", "user/*.s"]),
        row("system/*.rs", None, search("Observation", "_filter=subject.name eq x"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_filter=code eq x"), COMPART, &["patient/Observation.s", "user/*.s"]),
        row("user/Observation.rs", None, search("Observation", "_list=L1"), INSUFF, &["user/Observation.s", "user/List.r"]),
        row("user/Observation.rs user/List.r", None, search("Observation", "_list=L1"), ALLOW, &[]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_list=L1"), COMPART, &["patient/Observation.s", "user/List.r"]),
        row("user/Observation.rs", None, search("Observation", "_text=x&_content=y"), ALLOW, &[]),
    ]);
}

/// `_contained=true|both` and `_containedType` return the containers of the
/// matches, of any type and any patient (R4 search.html): `s` on every type,
/// refused under patient/ scopes; `_contained=false` is the plain search.
#[test]
#[rustfmt::skip]
fn contained_searches_return_containers_of_any_type() {
    check(vec![
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_contained=true"), COMPART, &["patient/Observation.s", "user/*.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_contained=both"), COMPART, &["patient/Observation.s", "user/*.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_containedType=container"), COMPART, &["patient/Observation.s", "user/*.s"]),
        row("patient/*.rs", Some("123"), search("Medication", "code=x&_contained=true"), COMPART, &["patient/Medication.s", "user/*.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_contained=false"), ALLOW, &[]),
        row("user/Observation.rs", None, search("Observation", "_contained=true"), INSUFF, &["user/Observation.s", "user/*.s"]),
        row("user/Observation.rs user/Patient.rs", None, search("Observation", "_containedType=contained&_contained=true"), INSUFF, &["user/Observation.s", "user/*.s"]),
        row("user/Observation.rs", None, search("Observation", "_contained=false"), ALLOW, &[]),
        row("user/*.rs", None, search("Observation", "_contained=true&_containedType=contained"), ALLOW, &[]),
        row("system/*.s", None, search("Observation", "_contained=both"), ALLOW, &[]),
    ]);
}

/// A refusal under patient/ scopes of what patient/ scopes can never
/// authorize (`_filter`, `_query`, `_list`) suggests the user/ form, never a
/// patient/ scope (which could not help); granted on top of the token's
/// scopes, the suggestion allows the request.
#[test]
#[rustfmt::skip]
fn refusals_suggest_only_scopes_that_would_allow() {
    check(vec![
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_filter=code eq x"), COMPART, &["patient/Observation.s", "user/*.s"]),
        row("patient/*.rs user/*.s", Some("123"), search("Observation", "patient=123&_filter=code eq x"), ALLOW, &["user/Observation.s", "user/*.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&_filter=code eq x"), INSUFF, &["patient/Observation.s", "user/*.s"]),
        row("patient/Observation.rs user/*.s", Some("123"), search("Observation", "patient=123&_filter=code eq x"), ALLOW, &["user/Observation.s", "user/*.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_query=everything"), COMPART, &["patient/Observation.s", "user/*.s"]),
        row("patient/*.rs user/*.s", Some("123"), search("Observation", "patient=123&_query=everything"), ALLOW, &["user/Observation.s", "user/*.s"]),
        row("patient/*.rs", Some("123"), search("Observation", "patient=123&_list=L1"), COMPART, &["patient/Observation.s", "user/List.r"]),
        row("patient/*.rs user/List.r", Some("123"), search("Observation", "patient=123&_list=L1"), ALLOW, &["patient/Observation.s", "user/List.r"]),
        // the token's user/ or system/ scopes pick the context suggested
        row("patient/*.rs system/Observation.rs", Some("123"), search("Observation", "patient=123&_filter=code eq x"), COMPART, &["system/Observation.s", "system/*.s"]),
        row("patient/*.rs system/Observation.rs system/*.s", Some("123"), search("Observation", "patient=123&_filter=code eq x"), ALLOW, &["system/Observation.s", "system/*.s"]),
        // a paging id inside a search: some servers answer with a page of another search
        row("patient/Observation.rs", Some("123"), search("Observation", "_getpages=abc"), INVALID, &[]),
        row("user/Observation.rs", None, search("Observation", "code=x&_pageId=abc"), INVALID, &[]),
        row("user/Observation.rs", None, search("Observation", "x-vendor=1&_offset=10"), ALLOW, &[]),
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&x-vendor=1&_offset=10&asserted-date=2020"), ALLOW, &[]),
    ]);
}
