//! Batch/transaction Bundles (every entry decided alone) and paging links.

use super::*;

#[test]
#[rustfmt::skip]
fn bundles() {
    let config = cfg();
    let ctx = AuthContext::from_scopes("patient/Observation.rs patient/Patient.r", Some("123"));
    let ok = bundle(
        K::Batch,
        vec![
            read("Patient", "123"),
            search("Observation", "patient=123"),
            read("Observation", "5"),
        ],
    );
    let d = authorize(&config, ok, Some(&ctx));
    assert!(d.is_allow(), "{}", d.message);
    assert_eq!(d.obligations.len(), 1);
    let bad = bundle(
        K::Transaction,
        vec![
            read("Patient", "123"),
            read("Patient", "456"),
            search("Observation", "patient=123"),
            create("Observation", Some(obs("Patient/123"))),
        ],
    );
    let d = authorize(&config, bad, Some(&ctx));
    assert_eq!(
        (d.is_allow(), d.status, d.reason),
        (false, 403, Reason::BundleEntryDenied)
    );
    let idx: Vec<(usize, Reason)> = d
        .denied_entries
        .iter()
        .map(|e| (e.index, e.reason))
        .collect();
    assert_eq!(
        idx,
        vec![
            (1, Reason::PatientCompartmentViolation),
            (3, Reason::InsufficientScope)
        ]
    );
    assert_eq!(
        d.required_scopes,
        vec!["patient/Patient.r", "patient/Observation.c"]
    );
    assert!(d.message.contains("2 of 4"), "{}", d.message);
    // the partly allowed batch names what is answered in place
    let ctx = AuthContext::from_scopes("user/*.rs", None);
    let d = authorize(&cfg(), bundle(K::Batch, vec![read("Patient", "1"), delete("Patient", "1"), read("Patient", "2")]), Some(&ctx));
    assert!(d.is_partial_batch(), "{}", d.message);
    assert_eq!(d.denied_entries.iter().map(|e| (e.index, e.reason)).collect::<Vec<_>>(), vec![(1, Reason::InsufficientScope)]);
    assert_eq!(d.denied_entries[0].required_scopes, vec!["user/Patient.d"]);
    assert_eq!(d.message, "2 of 3 batch entries forwarded; answered in place: #1 insufficient_scope");
}

#[test]
#[rustfmt::skip]
fn paging() {
    let p = || it(K::Paging, Level::System, None, None);
    let compartment = |t: &str| Obligation::CheckResponseCompartment {
        resource_type: t.into(),
        patient: "123".into(),
    };
    let types = |s: &[&str], r: &[&str]| Obligation::CheckResponseTypes {
        search: s.iter().map(|x| x.to_string()).collect(),
        read: r.iter().map(|x| x.to_string()).collect(),
    };
    let deny = Config::from_json(br#"{"policy":{"patient_paging":"deny"}}"#).unwrap();
    for (config, scopes, patient, want) in [
        (cfg(), "user/*.rs", None, vec![]),
        (cfg(), "system/*.read", None, vec![]),
        (cfg(), "user/*.s", None, vec![types(&["*"], &[])]),
        (cfg(), "user/Observation.rs user/Patient.r", None, vec![types(&["Observation"], &["Observation", "Patient"])]),
        (cfg(), "user/Patient.rs", None, vec![types(&["Patient"], &["Patient"])]),
        (cfg(), "patient/Observation.rs", Some("123"), vec![compartment("*"), types(&["Observation"], &["Observation"])]),
        (cfg(), "patient/*.rs", Some("123"), vec![compartment("*")]),
        (cfg(), "user/Observation.rs patient/Condition.rs", Some("123"), vec![compartment("Condition"), types(&["Observation", "Condition"], &["Observation", "Condition"])]),
        (cfg(), "user/Observation.rs patient/*.rs", Some("123"), vec![compartment("*")]),
        (cfg(), "user/*.rs patient/Condition.rs", Some("123"), vec![]),
        (cfg(), "user/Observation.rs patient/Condition.rs", None, vec![types(&["Observation"], &["Observation"])]),
        (deny.clone(), "user/Observation.rs patient/Condition.rs", Some("123"), vec![types(&["Observation"], &["Observation"])]),
    ] {
        let ctx = AuthContext::from_scopes(scopes, patient);
        let d = authorize(&config, p(), Some(&ctx));
        assert!(d.is_allow(), "{scopes}: {}", d.message);
        assert_eq!(d.obligations, want, "{scopes}");
    }
    let ctx = AuthContext::from_scopes("patient/Observation.rs", Some("123"));
    let d = authorize(&deny, p(), Some(&ctx));
    assert_eq!((d.status, d.reason), (403, Reason::PatientCompartmentViolation));
    assert!(d.message.contains("policy.patient_paging = deny"), "{}", d.message);
}
