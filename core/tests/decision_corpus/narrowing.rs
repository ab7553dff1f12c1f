//! Narrowing (`policy.patient_search = narrow`, the default): an unpinned
//! search under a patient/ scope gets the type's pin, a search without a
//! granular scope's parameter gets that parameter; only ever AND
//! constraints in the search's own URL.

use super::*;

/// `Prefer: handling=strict` whenever the allow rests on a search parameter.
#[test]
fn strict_handling_when_the_allow_rests_on_parameters() {
    let config = cfg();
    for (scopes, patient, it, strict) in [
        (
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "patient=123"),
            true,
        ),
        (
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "code=x"),
            true,
        ),
        (
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "subject=123"),
            true,
        ),
        (
            "user/Observation.rs?category=laboratory",
            None,
            search("Observation", "category=laboratory"),
            true,
        ),
        (
            "patient/*.rs",
            Some("123"),
            comp_search("123", "Observation"),
            false,
        ),
        (
            "user/Observation.rs",
            None,
            search("Observation", "code=x"),
            false,
        ),
        (
            "patient/Observation.rs",
            Some("123"),
            read("Observation", "1"),
            false,
        ),
        (
            "patient/*.rs",
            Some("123"),
            search("Medication", "code=x"),
            false,
        ),
        (
            "patient/Observation.rs",
            Some("123"),
            bundle(K::Batch, vec![search("Observation", "patient=123")]),
            true,
        ),
    ] {
        let ctx = AuthContext::from_scopes(scopes, patient);
        let d = authorize(&config, it, Some(&ctx));
        assert!(d.is_allow(), "{scopes}: {}", d.message);
        assert_eq!(
            d.narrowing.as_ref().is_some_and(|n| n.strict),
            strict,
            "{scopes} {:?}",
            d.interaction
        );
    }
}
