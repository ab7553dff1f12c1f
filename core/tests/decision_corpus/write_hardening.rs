//! Issue 8, the write side: references in written resources (conditional,
//! foreign and odd forms, another patient anywhere), transactions that
//! refer to their own Patient entry, PATCH documents, letters split across
//! scope contexts, and the write pre-check obligation.

use super::*;

const INVALID: Expect = expect(false, 400, Reason::InvalidRequest);
const BASE: &str = "https://ehr.example.org/fhir";

/// Letters split across contexts: every split of an interaction's letters
/// over patient/, user/ and system/ scopes. The letters are met all by
/// patient/ scopes (then the patient rule holds for all of them: pinned
/// criteria, own compartment) or all by user/ and system/ scopes; a
/// patient/ letter never combines with a user/ or system/ one.
#[test]
fn letters_split_across_contexts() {
    let body = || obs("Patient/123");
    // (name, type the letters are on, letters, the interaction pinned to the
    // patient or not); a search that is not pinned is narrowed (allowed).
    type Build = Box<dyn Fn(bool) -> Interaction>;
    let crit = |pinned: bool| {
        if pinned {
            "patient=Patient/123&code=x"
        } else {
            "code=x"
        }
    };
    let cases: Vec<(&str, &str, &str, Build)> = vec![
        (
            "conditional create",
            "Observation",
            "cs",
            Box::new(move |p| cond_create("Observation", body(), crit(p))),
        ),
        (
            "conditional update",
            "Observation",
            "us",
            Box::new(move |p| cond_update("Observation", crit(p), body())),
        ),
        (
            "conditional patch",
            "Observation",
            "us",
            Box::new(move |p| {
                let mut i = with_doc(
                    it(K::Patch, Level::Type, Some("Observation"), None),
                    json!([]),
                );
                i.conditional = true;
                i.search = params(crit(p));
                i
            }),
        ),
        (
            "conditional delete",
            "Observation",
            "ds",
            Box::new(move |p| cond_delete("Observation", crit(p))),
        ),
        (
            "search",
            "Observation",
            "s",
            Box::new(move |p| search("Observation", crit(p))),
        ),
        (
            "$everything",
            "*",
            "rs",
            Box::new(|p| {
                let id = if p { "123" } else { "456" };
                let mut i = op(
                    Level::Instance,
                    Some("Patient"),
                    Some(id),
                    "$everything",
                    "",
                );
                i.compartment = Some(Compartment {
                    resource_type: "Patient".into(),
                    id: id.into(),
                });
                i
            }),
        ),
    ];
    let contexts = ["patient", "user", "system"];
    let mut failures = Vec::new();
    let mut n = 0;
    let config = cfg();
    for (name, rtype, letters, build) in &cases {
        let letters: Vec<char> = letters.chars().collect();
        for split in 0..contexts.len().pow(letters.len() as u32) {
            // Letter i goes to context (split / 3^i) % 3.
            let assigned: Vec<&str> = (0..letters.len())
                .map(|i| contexts[(split / 3usize.pow(i as u32)) % 3])
                .collect();
            let scopes: Vec<String> = letters
                .iter()
                .zip(&assigned)
                .map(|(l, c)| format!("{c}/{rtype}.{l}"))
                .collect();
            let all_patient = assigned.iter().all(|c| *c == "patient");
            let no_patient = assigned.iter().all(|c| *c != "patient");
            for pinned in [true, false] {
                n += 1;
                let ctx = AuthContext::from_scopes(&scopes.join(" "), Some("123"));
                let d = authorize(&config, build(pinned), Some(&ctx));
                let narrowed = *name == "search";
                let want = if no_patient || (all_patient && (pinned || narrowed)) {
                    ALLOW
                } else if all_patient {
                    COMPART
                } else {
                    INSUFF
                };
                let letters: String = letters.iter().collect();
                let want_required = vec![format!("patient/{rtype}.{letters}")];
                if d.is_allow() != want.allow
                    || (d.status, d.reason) != (want.status, want.reason)
                    || (!want.allow && d.required_scopes != want_required)
                {
                    failures.push(format!(
                        "{name} pinned={pinned} with {scopes:?}: want {} {:?} {want_required:?}, got {} {:?} {:?}: {}",
                        want.status, want.reason, d.status, d.reason, d.required_scopes, d.message
                    ));
                }
            }
        }
    }
    assert_eq!(n, 2 * (9 * 5 + 3));
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The issue's example: `PUT Observation?_id=o456` with the body rule met
    // by patient/ and the criteria by user/.
    let ctx = AuthContext::from_scopes("patient/Observation.u user/Observation.s", Some("123"));
    let d = authorize(
        &config,
        cond_update("Observation", "_id=o456", obs("Patient/123")),
        Some(&ctx),
    );
    assert_eq!(
        (d.status, d.reason),
        (403, Reason::InsufficientScope),
        "{}",
        d.message
    );
    assert!(d.message.contains("one interaction"), "{}", d.message);
    assert_eq!(d.required_scopes, vec!["patient/Observation.us"]);
}

fn stored(t: &str, id: &str, kind: K, entry: Option<usize>) -> Obligation {
    Obligation::CheckStored {
        resource_type: t.into(),
        id: id.into(),
        patient: "123".into(),
        interaction: kind,
        entry,
    }
}

/// Writes by id of compartment resources under patient/ scopes carry the
/// write pre-check (`policy.patient_update_by_id`, default `check_stored`);
/// the patient's own Patient needs none; `check_body` and `deny` keep the
/// old rules.
#[test]
#[rustfmt::skip]
fn write_pre_check_obligations() {
    const TP: &str = "patient/Observation.cruds patient/Patient.uds";
    let modes = |mode: &str| Config::from_json(format!(r#"{{"fhir_base_url":"{BASE}","policy":{{"patient_update_by_id":"{mode}"}}}}"#).as_bytes()).unwrap();
    let upd = || update("Observation", "o1", Some(json!({"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/123"}})));
    let pat = || with_doc(patch("Observation", "o1"), json!([{"op":"replace","path":"/status","value":"final"}]));
    // (mode, interaction, allowed, obligations)
    let rows: Vec<(&str, Interaction, Expect, Vec<Obligation>)> = vec![
        ("check_stored", upd(), ALLOW, vec![stored("Observation", "o1", K::Update, None)]),
        ("check_stored", pat(), ALLOW, vec![stored("Observation", "o1", K::Patch, None)]),
        ("check_stored", delete("Observation", "o1"), ALLOW, vec![stored("Observation", "o1", K::Delete, None)]),
        ("check_stored", update("Patient", "123", Some(json!({"resourceType":"Patient","id":"123"}))), ALLOW, vec![]),
        ("check_stored", delete("Patient", "123"), ALLOW, vec![]),
        ("check_stored", delete("Patient", "456"), COMPART, vec![]),
        // The body rule still holds for an update by id.
        ("check_stored", update("Observation", "o1", Some(json!({"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/456"}}))), COMPART, vec![]),
        ("check_stored", update("Medication", "m1", Some(json!({"resourceType":"Medication","id":"m1"}))), INSUFF, vec![]),
        ("check_body", upd(), ALLOW, vec![]),
        ("check_body", pat(), COMPART, vec![]),
        ("check_body", delete("Observation", "o1"), COMPART, vec![]),
        ("deny", upd(), COMPART, vec![]),
        ("deny", delete("Observation", "o1"), COMPART, vec![]),
        ("deny", update("Patient", "123", Some(json!({"resourceType":"Patient","id":"123"}))), ALLOW, vec![]),
        // Conditional writes are pinned by their criteria, never pre-checked.
        ("check_stored", cond_update("Observation", "patient=123&code=x", obs("Patient/123")), ALLOW, vec![]),
        ("check_stored", cond_delete("Observation", "patient=123&code=x"), ALLOW, vec![]),
        // A bare id may name a Group too: not pinned enough for a write.
        ("check_stored", cond_delete("Observation", "subject=123&code=x"), COMPART, vec![]),
        // A body id on a conditional update: some servers write to that id when nothing matches.
        ("check_stored", cond_update("Observation", "patient=123&code=x", json!({"resourceType":"Observation","id":"o456","subject":{"reference":"Patient/123"}})), INVALID, vec![]),
        ("check_stored", cond_update("Patient", "_id=123", json!({"resourceType":"Patient","id":"123"})), ALLOW, vec![]),
    ];
    let ctx = AuthContext::from_scopes(TP, Some("123"));
    for (i, (mode, req, want, obligations)) in rows.into_iter().enumerate() {
        let d = authorize(&modes(mode), req, Some(&ctx));
        assert_eq!((d.is_allow(), d.status, d.reason), (want.allow, want.status, want.reason), "row {i} ({mode}): {}", d.message);
        assert_eq!(d.obligations, obligations, "row {i} ({mode})");
    }
    // user/ scopes: no pre-check.
    let user = AuthContext::from_scopes("user/Observation.ud", None);
    for req in [upd(), pat(), delete("Observation", "o1")] {
        let d = authorize(&cfg(), req, Some(&user));
        assert!(d.is_allow() && d.obligations.is_empty(), "{}", d.message);
    }
    // In a Bundle: one pre-check per entry, naming it; at most 16.
    let entries: Vec<Interaction> = (0..3).map(|i| delete("Observation", &format!("o{i}"))).collect();
    let d = authorize(&cfg(), bundle(K::Transaction, entries), Some(&ctx));
    assert!(d.is_allow(), "{}", d.message);
    assert_eq!(d.obligations, (0..3).map(|i| stored("Observation", &format!("o{i}"), K::Delete, Some(i))).collect::<Vec<_>>());
    let many: Vec<Interaction> = (0..17).map(|i| delete("Observation", &format!("o{i}"))).collect();
    let d = authorize(&cfg(), bundle(K::Transaction, many.clone()), Some(&ctx));
    assert_eq!((d.status, d.reason), (403, Reason::BundleEntryDenied));
    assert_eq!(d.denied_entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![16]);
    // a batch: the 17th entry answered in place
    let d = authorize(&cfg(), bundle(K::Batch, many), Some(&ctx));
    assert!(d.is_partial_batch(), "{}", d.message);
    assert_eq!(d.denied_entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![16]);
    assert!(d.denied_entries[0].message.contains("more than 16"), "{}", d.denied_entries[0].message);
}

/// (interaction, Bundle entry, status, headers, body, expected answer)
type AnswerRow<'a> = (
    K,
    Option<usize>,
    u16,
    Vec<(String, String)>,
    &'a str,
    fhir_smart_authz_core::policy::Stored,
);

/// The pre-check's answer (`policy::check_stored`): the stored resource
/// must be the patient's; a missing one is a create (update) or the
/// server's own 404/410 (patch, delete); anything unusable fails closed.
#[test]
#[rustfmt::skip]
fn write_pre_check_answers() {
    use fhir_smart_authz_core::policy::{check_stored, Stored};
    let own = r#"{"resourceType":"Observation","id":"o1","meta":{"versionId":"3"},"subject":{"reference":"Patient/123"}}"#;
    let abs = r#"{"resourceType":"Observation","id":"o1","subject":{"reference":"https://ehr.example.org/fhir/Patient/123"}}"#;
    let other = r#"{"resourceType":"Observation","id":"o1","meta":{"versionId":"3"},"subject":{"reference":"Patient/456"}}"#;
    let performer = r#"{"resourceType":"Observation","id":"o1","subject":{"reference":"Group/g"},"performer":[{"reference":"Patient/123"}]}"#;
    let mixed = r#"{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/123"},"basedOn":[{"reference":"https://x.example/Patient/456"}]}"#;
    let none = r#"{"resourceType":"Observation","id":"o1"}"#;
    let wrong = r#"{"resourceType":"Observation","id":"o2","subject":{"reference":"Patient/123"}}"#;
    let h = |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    let allow = |v: Option<&str>| Stored::Allow { if_match: v.map(String::from) };
    let refuse = Stored::Refuse(String::new());
    let unavailable = Stored::Unavailable(String::new());
    let (u, p, d) = (K::Update, K::Patch, K::Delete);
    let rows: Vec<AnswerRow<'_>> = vec![
        // The version is the stored resource's meta.versionId, whatever the ETag says.
        (u, None, 200, h(&[("etag", "W/\"7\"")]), own, allow(Some("W/\"3\""))),
        (u, None, 200, h(&[]), own, allow(Some("W/\"3\""))),
        (u, None, 200, h(&[("etag", "W/\"a b\"")]), own, allow(Some("W/\"3\""))),
        (u, None, 200, h(&[("content-encoding", "identity")]), abs, allow(None)),
        (p, None, 200, h(&[]), performer, allow(None)),
        (d, None, 200, h(&[]), own, allow(None)),
        (u, Some(1), 200, h(&[]), own, allow(None)),
        (u, None, 200, h(&[]), other, refuse.clone()),
        (p, None, 200, h(&[]), mixed, refuse.clone()),
        (d, None, 200, h(&[]), none, refuse.clone()),
        (u, None, 404, h(&[]), "", allow(None)),
        (u, None, 410, h(&[]), "", refuse.clone()),
        (p, None, 404, h(&[]), "", allow(None)),
        (d, None, 410, h(&[]), "", allow(None)),
        (d, Some(0), 404, h(&[]), "", allow(None)),
        (u, None, 500, h(&[]), own, unavailable.clone()),
        (u, None, 401, h(&[]), own, unavailable.clone()),
        (u, None, 304, h(&[]), own, unavailable.clone()),
        (u, None, 200, h(&[("content-encoding", "gzip")]), own, unavailable.clone()),
        (u, None, 200, h(&[]), "<Observation/>", unavailable.clone()),
        (u, None, 200, h(&[]), r#"{"resourceType":"Observation","id":"o1","id":"o1"}"#, unavailable.clone()),
        (u, None, 200, h(&[]), wrong, unavailable.clone()),
    ];
    for (i, (kind, entry, status, headers, body, want)) in rows.into_iter().enumerate() {
        let o = Obligation::CheckStored { resource_type: "Observation".into(), id: "o1".into(), patient: "123".into(), interaction: kind, entry };
        let got = check_stored(&o, status, &headers, body.as_bytes(), Some(BASE));
        let same = match (&got, &want) {
            (Stored::Refuse(m), Stored::Refuse(_)) | (Stored::Unavailable(m), Stored::Unavailable(_)) => !m.is_empty(),
            _ => got == want,
        };
        assert!(same, "row {i}: got {got:?}, want {want:?}");
    }
}
