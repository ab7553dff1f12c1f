//! Scope grammar at work: user/ and system/ scopes, granular scopes, invalid scopes, claim shapes, and the letter matrix.

use super::*;

#[test]
#[rustfmt::skip]
fn user_and_system_scopes() {
    check(vec![
        row("user/Observation.rs", None, read("Observation", "1"), ALLOW, &[]),
        row("user/Observation.rs", None, search("Observation", "code=x"), ALLOW, &[]),
        row("user/Observation.rs", None, search("Observation", ""), ALLOW, &[]),
        row("user/Observation.rs", None, read("Condition", "1"), INSUFF, &["user/Condition.r"]),
        row("user/*.read", None, search("Patient", "name=x"), ALLOW, &[]),
        row("user/*.*", None, create("Patient", None), ALLOW, &[]),
        row("system/Observation.rs", None, search("Observation", "code=x"), ALLOW, &[]),
        row("system/Observation.rs", None, read("Patient", "1"), INSUFF, &["system/Patient.r"]),
        row("system/*.rs", None, sys_search(&[], "_lastUpdated=gt2020"), ALLOW, &[]),
        row("system/Observation.rs", None, sys_search(&[], "_lastUpdated=gt2020"), INSUFF, &["system/*.s"]),
        row("user/Observation.rs user/Condition.rs", None, sys_search(&["Observation", "Condition"], "code=x"), ALLOW, &[]),
        row("user/Observation.rs", None, sys_search(&["Observation", "Condition"], "code=x"), INSUFF, &["user/Observation.s", "user/Condition.s"]),
        row("user/*.rs", None, history(Level::System, None, None), ALLOW, &[]),
        row("user/Observation.r", None, history(Level::Type, Some("Observation"), None), INSUFF, &["user/Observation.s"]),
        row("user/Observation.r", None, history(Level::Instance, Some("Observation"), Some("1")), ALLOW, &[]),
        // a patient/ scope never widens a user/ scope and vice versa
        row("user/Observation.r patient/Observation.s", Some("123"), search("Observation", "code=x"), ALLOW, &[]).narrowed("patient=Patient/123"),
        row("user/Observation.r patient/Observation.s", Some("123"), search("Observation", "patient=123"), ALLOW, &[]),
        row("user/Observation.rs patient/Observation.rs", Some("123"), search("Observation", "code=x"), ALLOW, &[]),
    ]);
}

#[test]
#[rustfmt::skip]
fn granular_scopes() {
    // Without narrowing (narrowed searches: narrowing.rs).
    check_with(&deny_cfg(), vec![
        row("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", Some("123"),
            search("Observation", &format!("patient=123&category={LAB}")), ALLOW, &[]),
        row("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", Some("123"),
            search("Observation", &format!("patient=123&category={VITAL}")), GRAN, &["patient/Observation.s"]),
        row("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", Some("123"),
            search("Observation", &format!("patient=123&category={LAB},{VITAL}")), GRAN, &["patient/Observation.s"]),
        row("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", Some("123"),
            search("Observation", "patient=123&category=laboratory"), GRAN, &["patient/Observation.s"]),
        row("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", Some("123"),
            search("Observation", "patient=123"), GRAN, &["patient/Observation.s"]),
        row("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", Some("123"),
            search("Observation", &format!("category={LAB}")), COMPART, &["patient/Observation.s"]),
        row("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", Some("123"),
            search("Observation", &format!("patient=123&category:not={LAB}")), GRAN, &["patient/Observation.s"]),
        row("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs", Some("123"),
            search("Observation", &format!("patient=123&category={LAB},{VITAL}")), ALLOW, &[]),
        row("user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", None,
            search("Observation", &format!("category={LAB}")), ALLOW, &[]),
        row("user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", None,
            search("Observation", "code=x"), GRAN, &["user/Observation.s"]),
        row("user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", None,
            read("Observation", "1"), ALLOW, &[]),
        row("user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", None,
            delete("Observation", "1"), INSUFF, &["user/Observation.d"]),
        row("user/Observation.cu?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", None,
            create("Observation", Some(obs_cat("Patient/1", LAB))), ALLOW, &[]),
        row("user/Observation.cu?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", None,
            create("Observation", Some(obs_cat("Patient/1", VITAL))), GRAN, &["user/Observation.c"]),
        // An update by id cannot show that the stored resource is inside the
        // scope (the body alone would let it overwrite a vital-signs record):
        // refused; a conditional update carrying the scope's parameter is not.
        row("user/Observation.cu?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", None,
            update("Observation", "o1", Some(obs_cat("Patient/1", LAB))), GRAN, &["user/Observation.u"]),
        row("user/Observation.rus?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", None,
            cond_update("Observation", &format!("_id=o1&category={LAB}"), obs_cat("Patient/1", LAB)), ALLOW, &[]),
        row("user/Observation.u?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory user/Observation.rs", None,
            update("Observation", "o1", Some(obs_cat("Patient/1", LAB))), GRAN, &["user/Observation.u"]),
        row("user/Observation.cu?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory user/Observation.u", None,
            update("Observation", "o1", Some(obs_cat("Patient/1", VITAL))), ALLOW, &[]),
        row("user/Observation.rs?category=laboratory", None, search("Observation", &format!("category={LAB}")), ALLOW, &[]),
        row("user/Observation.rs?category=laboratory", None, search("Observation", "category=|laboratory"), ALLOW, &[]),
        row("user/Observation.rs?category=laboratory", None, search("Observation", "category=laboratory"), ALLOW, &[]),
        row("user/Observation.rs?category=laboratory", None, search("Observation", &format!("category={VITAL}")), GRAN, &["user/Observation.s"]),
        row("user/Observation.rs?category=laboratory&status=final", None, search("Observation", "category=laboratory&status=final"), ALLOW, &[]),
        row("user/Observation.rs?category=laboratory&status=final", None, search("Observation", "category=laboratory"), GRAN, &["user/Observation.s"]),
        row("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory user/Observation.rs", Some("123"),
            search("Observation", "code=x"), ALLOW, &[]),
    ]);
    let config = cfg();
    let ctx = AuthContext::from_scopes(
        &format!("patient/Observation.rs?category={LAB}"),
        Some("123"),
    );
    let d = authorize(&config, read("Observation", "1"), Some(&ctx));
    assert!(d.is_allow());
    assert_eq!(
        d.obligations,
        vec![
            Obligation::CheckResponseCompartment {
                resource_type: "Observation".into(),
                patient: "123".into()
            },
            Obligation::CheckResponseGranular {
                resource_type: "Observation".into(),
                queries: vec![format!("category={LAB}")]
            },
        ]
    );
}

#[test]
fn invalid_scopes_are_ignored_with_diagnostics() {
    let config = cfg();
    let ctx = AuthContext::from_scopes(
        "patient/Observation.sr patient/observation.rs patient/Observation.rs?x patient/Patient.rs",
        Some("123"),
    );
    let d = authorize(&config, search("Observation", "patient=123"), Some(&ctx));
    assert_eq!((d.status, d.reason), (403, Reason::InsufficientScope));
    assert_eq!(d.diagnostics.len(), 3, "{:?}", d.diagnostics);
    assert!(
        d.diagnostics[0].contains("patient/Observation.sr"),
        "{:?}",
        d.diagnostics
    );
    let d = authorize(&config, read("Patient", "123"), Some(&ctx));
    assert!(d.is_allow());
    assert_eq!(d.diagnostics.len(), 3);
}

#[test]
fn claims_shapes_through_context() {
    let config = cfg();
    let scp = Config::from_json(br#"{"claims":{"scope":"scp"}}"#).unwrap();
    for (c, claims, allow) in [
        (
            &config,
            json!({"scope": "patient/Patient.rs", "patient": "123"}),
            true,
        ),
        (
            &config,
            json!({"scope": ["patient/Patient.rs", "openid"], "patient": "123"}),
            true,
        ),
        (
            &config,
            json!({"scope": ["patient/Patient.rs launch/patient"], "patient": "123"}),
            true,
        ),
        (
            &scp,
            json!({"scp": ["patient/Patient.rs"], "patient": "123"}),
            true,
        ),
        (
            &scp,
            json!({"scope": "patient/Patient.rs", "patient": "123"}),
            false,
        ),
        (&config, json!({"scope": "patient/Patient.rs"}), false),
    ] {
        let ctx = AuthContext::from_claims(&c.claims, &c.base, &claims).unwrap();
        assert_eq!(
            authorize(c, read("Patient", "123"), Some(&ctx)).is_allow(),
            allow,
            "{claims}"
        );
    }
}

/// Generated matrix: every simple interaction against every single-letter
/// user/ and system/ scope: allowed exactly when the letter matches.
#[test]
fn letter_matrix() {
    let cases: Vec<(Interaction, &str)> = vec![
        (read("Observation", "1"), "r"),
        (vread("Observation", "1"), "r"),
        (
            history(Level::Instance, Some("Observation"), Some("1")),
            "r",
        ),
        (history(Level::Type, Some("Observation"), None), "s"),
        (search("Observation", "code=x"), "s"),
        (create("Observation", Some(obs("Patient/1"))), "c"),
        (update("Observation", "1", Some(obs("Patient/1"))), "u"),
        (patch("Observation", "1"), "u"),
        (delete("Observation", "1"), "d"),
    ];
    let mut rows = Vec::new();
    for ctxname in ["user", "system"] {
        for letter in ["c", "r", "u", "d", "s"] {
            for (req, need) in &cases {
                let scope: &'static str =
                    Box::leak(format!("{ctxname}/Observation.{letter}").into_boxed_str());
                let required: &'static [&'static str] = Box::leak(
                    vec![&*Box::leak(
                        format!("{ctxname}/Observation.{need}").into_boxed_str(),
                    )]
                    .into_boxed_slice(),
                );
                let expect = if letter == *need { ALLOW } else { INSUFF };
                rows.push(row(scope, None, req.clone(), expect, required));
                let other: &'static str =
                    Box::leak(format!("{ctxname}/Condition.{letter}").into_boxed_str());
                rows.push(row(other, None, req.clone(), INSUFF, required));
                let wild: &'static str =
                    Box::leak(format!("{ctxname}/*.{letter}").into_boxed_str());
                rows.push(row(wild, None, req.clone(), expect, required));
            }
        }
    }
    assert!(rows.len() >= 270);
    check(rows);
}
