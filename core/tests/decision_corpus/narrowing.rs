//! Narrowing (`policy.patient_search = narrow`, the default): an unpinned
//! search under a patient/ scope gets the type's pin, a search without a
//! granular scope's parameter gets that parameter; only ever AND
//! constraints in the search's own URL.

use super::*;

fn comp_query(pid: &str, t: &str, q: &str) -> Interaction {
    let mut i = comp_search(pid, t);
    i.search = params(q);
    i
}

#[test]
#[rustfmt::skip]
fn patient_pins_are_added() {
    check(vec![
        row("patient/Observation.rs", Some("123"), search("Observation", "code=1234-5"), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("patient/Observation.rs", Some("123"), search("Observation", ""), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("patient/Observation.rs", Some("123"), search("Observation", "encounter=Encounter/1"), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=https://evil.example/fhir/Patient/123"), INVALID, &["patient/Observation.s"]),
        row("patient/Observation.rs", Some("123"), search("Observation", "focus=Patient/456"), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("patient/Patient.rs", Some("123"), search("Patient", "name=smith"), ALLOW, &[]).narrowed("_id=123"),
        row("patient/Patient.rs", Some("123"), search("Patient", "identifier=urn:mrn|a&birthdate=1980-01-01"), ALLOW, &[]).narrowed("_id=123"),
        row("patient/Patient.rs", Some("123"), search("Patient", "gender=female"), ALLOW, &[]).narrowed("_id=123"),
        row("patient/Condition.rs", Some("123"), search("Condition", "clinical-status=active"), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("patient/AdverseEvent.rs", Some("123"), search("AdverseEvent", "seriousness=x"), ALLOW, &[]).narrowed("subject=Patient/123"),
        row("patient/AdverseEvent.rs", Some("123"), search("AdverseEvent", "patient=123"), ALLOW, &[]).narrowed("subject=Patient/123"),
        row("patient/Group.rs", Some("123"), search("Group", "code=x"), ALLOW, &[]).narrowed("member=Patient/123"),
        row("patient/Schedule.rs", Some("123"), search("Schedule", "active=true"), ALLOW, &[]).narrowed("actor=Patient/123"),
        row("patient/Immunization.rs", Some("123"), search("Immunization", "date=gt2020"), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("patient/*.rs", Some("123"), sys_search(&["Observation", "Condition"], "code=x"), ALLOW, &[]).narrowed("patient=Patient/123"),
        // already pinned: nothing added
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=123&code=x"), ALLOW, &[]),
        row("patient/Patient.rs", Some("123"), search("Patient", "_id=123&name=smith"), ALLOW, &[]),
        // a loose pin is checked on the response instead
        row("patient/Observation.rs", Some("123"), search("Observation", "subject=123"), ALLOW, &[]),
        // shared reference types need no pin
        row("patient/*.rs", Some("123"), search("Medication", "code=x"), ALLOW, &[]),
        // still refused: other patients, types outside the compartment, unpinnable searches
        row("patient/Observation.rs", Some("123"), search("Observation", "patient=456&code=x"), COMPART, &["patient/Observation.s"]),
        row("patient/Patient.rs", Some("123"), search("Patient", "_id=456"), COMPART, &["patient/Patient.s"]),
        row("patient/*.rs", Some("123"), search("Device", "type=x"), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("patient/*.rs", Some("123"), search("DeviceMetric", "type=x"), COMPART, &["patient/DeviceMetric.s"]),
        row("patient/*.rs", Some("123"), sys_search(&[], "_lastUpdated=gt2020"), COMPART, &["patient/*.s"]),
        row("patient/*.rs", Some("123"), sys_search(&["Observation", "Patient"], "_lastUpdated=gt2020"), COMPART, &["patient/Observation.s", "patient/Patient.s"]),
        row("patient/*.rs", Some("123"), sys_search(&["Observation", "AdverseEvent"], "code=x"), COMPART, &["patient/Observation.s", "patient/AdverseEvent.s"]),
        row("patient/*.rs", Some("123"), history(Level::Type, Some("Observation"), None), COMPART, &["patient/Observation.s"]),
        // a user/ scope that allows it as sent wins over narrowing
        row("user/Observation.rs patient/Observation.rs", Some("123"), search("Observation", "code=x"), ALLOW, &[]),
        row("user/Observation.r patient/Observation.s", Some("123"), search("Observation", "code=x"), ALLOW, &[]).narrowed("patient=Patient/123"),
    ]);
}

#[test]
#[rustfmt::skip]
fn granular_parameters_are_added() {
    let lab: &'static str = Box::leak(format!("patient/Observation.rs?category={LAB}").into_boxed_str());
    let lab_and_vital: &'static str = Box::leak(format!("patient/Observation.rs?category={LAB} patient/Observation.rs?category={VITAL}").into_boxed_str());
    let user_lab: &'static str = Box::leak(format!("user/Observation.rs?category={LAB}").into_boxed_str());
    let narrowed_lab: &'static str = Box::leak(format!("category={LAB}").into_boxed_str());
    let narrowed_both: &'static str = Box::leak(format!("category={LAB},{VITAL}").into_boxed_str());
    let pin_and_lab: &'static str = Box::leak(format!("patient=Patient/123&category={LAB}").into_boxed_str());
    let q = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    check(vec![
        row(lab, Some("123"), search("Observation", "patient=123"), ALLOW, &[]).narrowed(narrowed_lab),
        row(lab, Some("123"), search("Observation", "code=x"), ALLOW, &[]).narrowed(pin_and_lab),
        row(lab, Some("123"), search("Observation", q(format!("patient=123&category={LAB}"))), ALLOW, &[]),
        row(lab, Some("123"), search("Observation", q(format!("patient=123&category:not={LAB}"))), ALLOW, &[]).narrowed(narrowed_lab),
        row(lab, Some("123"), search("Observation", q(format!("patient=123&category={VITAL}"))), GRAN, &["patient/Observation.s"]),
        row(lab, Some("123"), search("Observation", q(format!("patient=123&category={LAB},{VITAL}"))), GRAN, &["patient/Observation.s"]),
        row(lab, Some("123"), search("Observation", "patient=456"), COMPART, &["patient/Observation.s"]),
        row(lab_and_vital, Some("123"), search("Observation", "patient=123"), ALLOW, &[]).narrowed(narrowed_both),
        row(lab_and_vital, Some("123"), search("Observation", q(format!("patient=123&category={VITAL}"))), ALLOW, &[]),
        row(user_lab, None, search("Observation", "code=x"), ALLOW, &[]).narrowed(narrowed_lab),
        row("user/Observation.rs?category=laboratory&status=final", None, search("Observation", "category=laboratory"), ALLOW, &[]).narrowed("status=final"),
        row("user/Observation.rs?category=laboratory&status=final", None, search("Observation", "code=x"), ALLOW, &[]).narrowed("category=laboratory&status=final"),
        // scopes on different parameters: no AND of parameters is their union
        row("user/Observation.rs?category=laboratory user/Observation.rs?status=final", None, search("Observation", "code=x"), GRAN, &["user/Observation.s"]),
        // a parameter R4 does not define on the type is never added
        row("user/Observation.rs?colour=blue", None, search("Observation", "code=x"), GRAN, &["user/Observation.s"]),
        // compartment searches: the scope's parameter allows (issue 8.10), or is added
        row(lab, Some("123"), comp_query("123", "Observation", q(format!("category={LAB}"))), ALLOW, &[]),
        row(lab, Some("123"), comp_query("123", "Observation", ""), ALLOW, &[]).narrowed(narrowed_lab),
        row(lab, Some("123"), comp_query("123", "Observation", q(format!("category={VITAL}"))), GRAN, &["patient/Observation.s"]),
    ]);
}

/// What is never narrowed: `policy.patient_search = deny`, Bundle entries,
/// conditional criteria, operations.
#[test]
#[rustfmt::skip]
fn never_narrowed() {
    let lab: &'static str = Box::leak(format!("patient/Observation.rs?category={LAB}").into_boxed_str());
    check_with(&deny_cfg(), vec![
        row("patient/Observation.rs", Some("123"), search("Observation", "code=x"), COMPART, &["patient/Observation.s"]),
        row(lab, Some("123"), search("Observation", "patient=123"), GRAN, &["patient/Observation.s"]),
        row(lab, Some("123"), comp_query("123", "Observation", ""), GRAN, &["patient/Observation.s"]),
        row(lab, Some("123"), comp_query("123", "Observation", &format!("category={LAB}")), ALLOW, &[]),
    ]);
    check(vec![
        row("patient/Observation.rs", Some("123"), bundle(K::Batch, vec![search("Observation", "code=x")]), BUNDLE, &["patient/Observation.s"]),
        row("patient/Observation.ds", Some("123"), cond_delete("Observation", "code=x"), COMPART, &["patient/Observation.ds"]),
        row("patient/Observation.rs", Some("123"), op(Level::Type, Some("Observation"), None, "$lastn", "category=vital-signs"), COMPART, &["patient/Observation.s"]),
    ]);
}

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
