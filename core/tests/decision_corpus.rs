//! Table-driven decision corpus. The classifier is not on `main` yet, so the
//! interactions are built by hand and decided through `policy::authorize`
//! (the same function `engine::decide` calls after classifying).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, Obligation, Reason};
use fhir_smart_authz_core::fhir::{
    BundleEntry, Compartment, Interaction, InteractionKind as K, Level, SearchParam,
};
use fhir_smart_authz_core::policy::{self, AuthContext};
use serde_json::{json, Value};

const LAB: &str = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
const VITAL: &str = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs";

/// `policy::authorize` with the settings of `config`.
fn authorize(config: &Config, it: Interaction, ctx: Option<&AuthContext>) -> Decision {
    policy::authorize(&config.policy, &config.base, it, ctx)
}

fn cfg() -> Config {
    Config::from_json(br#"{"fhir_base_url":"https://ehr.example.org/fhir"}"#).unwrap()
}

/// `name[:modifier][.chain]=v1,v2&...` (test-only parser; values split on `,`).
fn params(q: &str) -> Vec<SearchParam> {
    if q.is_empty() {
        return Vec::new();
    }
    q.split('&')
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap();
            let (k, chain) = match k.split_once('.') {
                Some((a, b)) => (a, Some(b.to_string())),
                None => (k, None),
            };
            let (name, modifier) = match k.split_once(':') {
                Some((a, b)) if !a.starts_with("_has") => (a.to_string(), Some(b.to_string())),
                _ => (k.to_string(), None),
            };
            SearchParam {
                name,
                modifier,
                chain,
                values: v.split(',').map(String::from).collect(),
            }
        })
        .collect()
}

fn it(kind: K, level: Level, t: Option<&str>, id: Option<&str>) -> Interaction {
    let mut i = Interaction::new(kind, level);
    i.resource_type = t.map(String::from);
    i.id = id.map(String::from);
    i
}
fn read(t: &str, id: &str) -> Interaction {
    it(K::Read, Level::Instance, Some(t), Some(id))
}
fn vread(t: &str, id: &str) -> Interaction {
    let mut i = it(K::Vread, Level::Instance, Some(t), Some(id));
    i.version = Some("2".into());
    i
}
fn search(t: &str, q: &str) -> Interaction {
    let mut i = it(K::Search, Level::Type, Some(t), None);
    i.search = params(q);
    i
}
fn sys_search(types: &[&str], q: &str) -> Interaction {
    let mut i = it(K::Search, Level::System, None, None);
    i.types = types.iter().map(|s| s.to_string()).collect();
    i.search = params(q);
    i
}
fn comp_search(pid: &str, t: &str) -> Interaction {
    let mut i = it(
        K::Search,
        Level::Type,
        if t == "*" { None } else { Some(t) },
        None,
    );
    i.compartment = Some(Compartment {
        resource_type: "Patient".into(),
        id: pid.into(),
    });
    i
}
fn history(level: Level, t: Option<&str>, id: Option<&str>) -> Interaction {
    it(K::History, level, t, id)
}
fn create(t: &str, body: Option<Value>) -> Interaction {
    let mut i = it(K::Create, Level::Type, Some(t), None);
    i.resource = body;
    i
}
fn cond_create(t: &str, body: Value, q: &str) -> Interaction {
    let mut i = create(t, Some(body));
    i.conditional = true;
    i.search = params(q);
    i
}
fn update(t: &str, id: &str, body: Option<Value>) -> Interaction {
    let mut i = it(K::Update, Level::Instance, Some(t), Some(id));
    i.resource = body;
    i
}
fn cond_update(t: &str, q: &str, body: Value) -> Interaction {
    let mut i = it(K::Update, Level::Type, Some(t), None);
    i.conditional = true;
    i.search = params(q);
    i.resource = Some(body);
    i
}
fn patch(t: &str, id: &str) -> Interaction {
    it(K::Patch, Level::Instance, Some(t), Some(id))
}
fn delete(t: &str, id: &str) -> Interaction {
    it(K::Delete, Level::Instance, Some(t), Some(id))
}
fn cond_delete(t: &str, q: &str) -> Interaction {
    let mut i = it(K::Delete, Level::Type, Some(t), None);
    i.conditional = true;
    i.search = params(q);
    i
}
fn op(level: Level, t: Option<&str>, id: Option<&str>, name: &str, q: &str) -> Interaction {
    let mut i = it(K::Operation, level, t, id);
    i.operation = Some(name.into());
    i.search = params(q);
    i
}
fn bundle(kind: K, entries: Vec<Interaction>) -> Interaction {
    let mut b = it(kind, Level::System, None, None);
    b.entries = entries
        .into_iter()
        .enumerate()
        .map(|(index, i)| BundleEntry {
            index,
            method: "GET".into(),
            url: "x".into(),
            interaction: Box::new(i),
        })
        .collect();
    b
}
fn obs(pref: &str) -> Value {
    json!({"resourceType":"Observation","subject":{"reference":pref},"status":"final","code":{"text":"x"}})
}
fn obs_cat(pref: &str, cat: &str) -> Value {
    let (s, c) = cat.split_once('|').unwrap();
    json!({"resourceType":"Observation","subject":{"reference":pref},"category":[{"coding":[{"system":s,"code":c}]}]})
}

struct Row {
    scopes: &'static str,
    patient: Option<&'static str>,
    req: Interaction,
    allow: bool,
    status: u16,
    reason: Reason,
    required: &'static [&'static str],
}

fn row(
    scopes: &'static str,
    patient: Option<&'static str>,
    req: Interaction,
    expect: (bool, u16, Reason),
    required: &'static [&'static str],
) -> Row {
    Row {
        scopes,
        patient,
        req,
        allow: expect.0,
        status: expect.1,
        reason: expect.2,
        required,
    }
}

const ALLOW: (bool, u16, Reason) = (true, 200, Reason::Allowed);
const PUBLIC: (bool, u16, Reason) = (true, 200, Reason::PublicEndpoint);
const INSUFF: (bool, u16, Reason) = (false, 403, Reason::InsufficientScope);
const COMPART: (bool, u16, Reason) = (false, 403, Reason::PatientCompartmentViolation);
const NOCTX: (bool, u16, Reason) = (false, 403, Reason::NoPatientContext);
const GRAN: (bool, u16, Reason) = (false, 403, Reason::GranularScopeViolation);
const INCL: (bool, u16, Reason) = (false, 403, Reason::IncludeNotPermitted);
const CHAIN: (bool, u16, Reason) = (false, 403, Reason::ChainedSearchNotPermitted);
const OPNP: (bool, u16, Reason) = (false, 403, Reason::OperationNotPermitted);
const BUNDLE: (bool, u16, Reason) = (false, 403, Reason::BundleEntryDenied);
const MISSING: (bool, u16, Reason) = (false, 401, Reason::MissingToken);

fn decide_row(config: &Config, r: &Row) -> Decision {
    if r.scopes == "<none>" {
        authorize(config, r.req.clone(), None)
    } else {
        let ctx = AuthContext::from_scopes(r.scopes, r.patient);
        authorize(config, r.req.clone(), Some(&ctx))
    }
}

fn check(rows: Vec<Row>) {
    let config = cfg();
    let mut failures = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let d = decide_row(&config, r);
        let ok = d.is_allow() == r.allow
            && d.status == r.status
            && d.reason == r.reason
            && (r.allow || d.required_scopes == r.required);
        if !ok {
            failures.push(format!(
                "row {i}: scopes={:?} patient={:?} {:?} {:?} {:?}\n   want allow={} {} {:?} {:?}\n   got  allow={} {} {:?} {:?} — {}",
                r.scopes, r.patient, r.req.kind, r.req.resource_type, r.req.search.iter().map(|p| &p.name).collect::<Vec<_>>(),
                r.allow, r.status, r.reason, r.required,
                d.is_allow(), d.status, d.reason, d.required_scopes, d.message
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn public_endpoints_and_missing_token() {
    check(vec![
        row(
            "<none>",
            None,
            it(K::Capabilities, Level::System, None, None),
            PUBLIC,
            &[],
        ),
        row(
            "<none>",
            None,
            it(K::SmartConfiguration, Level::System, None, None),
            PUBLIC,
            &[],
        ),
        row(
            "",
            None,
            it(K::Capabilities, Level::System, None, None),
            PUBLIC,
            &[],
        ),
        row("<none>", None, read("Patient", "123"), MISSING, &[]),
        row(
            "<none>",
            None,
            search("Observation", "patient=123"),
            MISSING,
            &[],
        ),
        row("<none>", None, create("Observation", None), MISSING, &[]),
        row("<none>", None, bundle(K::Batch, vec![]), MISSING, &[]),
    ]);
    let private = Config::from_json(
        br#"{"policy":{"public_capabilities":false,"public_smart_configuration":false}}"#,
    )
    .unwrap();
    let d = authorize(
        &private,
        it(K::Capabilities, Level::System, None, None),
        None,
    );
    assert_eq!((d.status, d.reason), (401, Reason::MissingToken));
    let ctx = AuthContext::from_scopes("openid", None);
    let d = authorize(
        &private,
        it(K::SmartConfiguration, Level::System, None, None),
        Some(&ctx),
    );
    assert_eq!((d.status, d.reason), (200, Reason::Allowed));
}

#[test]
fn patient_scope_reads() {
    check(vec![
        row(
            "patient/Patient.rs",
            Some("123"),
            read("Patient", "123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Patient.read",
            Some("123"),
            read("Patient", "123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            read("Patient", "123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/*.read",
            Some("123"),
            vread("Patient", "123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Patient.rs",
            Some("123"),
            read("Patient", "456"),
            COMPART,
            &["patient/Patient.r"],
        ),
        row(
            "patient/Patient.rs",
            Some("123"),
            vread("Patient", "456"),
            COMPART,
            &["patient/Patient.r"],
        ),
        row(
            "patient/Patient.s",
            Some("123"),
            read("Patient", "123"),
            INSUFF,
            &["patient/Patient.r"],
        ),
        row(
            "patient/Patient.cud",
            Some("123"),
            read("Patient", "123"),
            INSUFF,
            &["patient/Patient.r"],
        ),
        row(
            "patient/Patient.write",
            Some("123"),
            read("Patient", "123"),
            INSUFF,
            &["patient/Patient.r"],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            read("Patient", "123"),
            INSUFF,
            &["patient/Patient.r"],
        ),
        row(
            "patient/Patient.rs",
            None,
            read("Patient", "123"),
            NOCTX,
            &["patient/Patient.r"],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            read("Observation", "1"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Medication.rs",
            Some("123"),
            read("Medication", "m1"),
            ALLOW,
            &[],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            read("Practitioner", "p1"),
            ALLOW,
            &[],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            read("Device", "d1"),
            COMPART,
            &["patient/Device.r"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            history(Level::Instance, Some("Patient"), Some("123")),
            ALLOW,
            &[],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            history(Level::Instance, Some("Patient"), Some("9")),
            COMPART,
            &["patient/Patient.r"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            history(Level::Type, Some("Observation"), None),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            history(Level::System, None, None),
            COMPART,
            &["patient/*.s"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            history(Level::Type, Some("Medication"), None),
            ALLOW,
            &[],
        ),
    ]);
}

#[test]
fn read_by_id_obligation() {
    let config = cfg();
    let ctx = AuthContext::from_scopes("patient/Observation.rs", Some("123"));
    let d = authorize(&config, read("Observation", "1"), Some(&ctx));
    assert!(d.is_allow());
    assert_eq!(
        d.obligations,
        vec![Obligation::CheckResponseCompartment {
            resource_type: "Observation".into(),
            patient: "123".into()
        }]
    );
    assert_eq!(d.required_scopes, vec!["patient/Observation.r"]);
    let deny_cfg = Config::from_json(br#"{"policy":{"read_outside_request":"deny"}}"#).unwrap();
    let d = authorize(&deny_cfg, read("Observation", "1"), Some(&ctx));
    assert_eq!(
        (d.status, d.reason),
        (403, Reason::PatientCompartmentViolation)
    );
    assert!(
        d.message.contains("Observation?subject=123"),
        "{}",
        d.message
    );
    // user/ scope: no obligation
    let u = AuthContext::from_scopes("user/Observation.rs", None);
    let d = authorize(&config, read("Observation", "1"), Some(&u));
    assert!(d.is_allow() && d.obligations.is_empty());
    assert_eq!(d.required_scopes, vec!["user/Observation.r"]);
    // both user/ and patient/: the unrestricted grant wins
    let both = AuthContext::from_scopes("patient/Observation.rs user/Observation.r", Some("123"));
    let d = authorize(&config, read("Observation", "1"), Some(&both));
    assert!(d.is_allow() && d.obligations.is_empty());
}

#[test]
fn patient_scope_search_pinning() {
    check(vec![
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "patient=123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "subject=123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "subject=Patient/123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search(
                "Observation",
                "subject=https://ehr.example.org/fhir/Patient/123",
            ),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "subject:Patient=123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "performer=Patient/123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "patient=123&code=1234-5"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "code=1234-5&subject=Patient/123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "patient=123,456"),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "patient=123,Patient/456"),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "patient=456"),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "code=1234-5"),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", ""),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search(
                "Observation",
                "subject=https://evil.example/fhir/Patient/123",
            ),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "subject:Group=123"),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "encounter=Encounter/1"),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "patient=456&patient=123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.r",
            Some("123"),
            search("Observation", "patient=123"),
            INSUFF,
            &["patient/Observation.s"],
        ),
        row(
            "patient/Observation.rs",
            None,
            search("Observation", "patient=123"),
            NOCTX,
            &["patient/Observation.s"],
        ),
        row(
            "patient/Encounter.rs",
            Some("123"),
            search("Encounter", "patient=123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Encounter.rs",
            Some("123"),
            search("Encounter", "subject=Patient/123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/AllergyIntolerance.rs",
            Some("123"),
            search("AllergyIntolerance", "asserter=Patient/123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/AllergyIntolerance.rs",
            Some("123"),
            search("AllergyIntolerance", "recorder=123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Condition.rs",
            Some("123"),
            search("Condition", "patient=123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/MedicationRequest.rs",
            Some("123"),
            search("MedicationRequest", "patient=123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Coverage.rs",
            Some("123"),
            search("Coverage", "beneficiary=Patient/123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/AdverseEvent.rs",
            Some("123"),
            search("AdverseEvent", "patient=123"),
            COMPART,
            &["patient/AdverseEvent.s"],
        ),
        row(
            "patient/Patient.rs",
            Some("123"),
            search("Patient", "_id=123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Patient.rs",
            Some("123"),
            search("Patient", "_id=123,456"),
            COMPART,
            &["patient/Patient.s"],
        ),
        row(
            "patient/Patient.rs",
            Some("123"),
            search("Patient", "name=smith"),
            COMPART,
            &["patient/Patient.s"],
        ),
        row(
            "patient/Patient.rs",
            Some("123"),
            search("Patient", "link=Patient/123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Medication.rs",
            Some("123"),
            search("Medication", "code=abc"),
            ALLOW,
            &[],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            search("Organization", "name=x"),
            ALLOW,
            &[],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            search("Device", "patient=123"),
            COMPART,
            &["patient/Device.s"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            sys_search(&["Observation", "Condition"], "patient=123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            sys_search(&["Observation"], "code=x"),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            sys_search(&[], "_lastUpdated=gt2020"),
            COMPART,
            &["patient/*.s"],
        ),
    ]);
}

#[test]
fn compartment_searches() {
    check(vec![
        row(
            "patient/*.rs",
            Some("123"),
            comp_search("123", "Observation"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            comp_search("123", "Observation"),
            ALLOW,
            &[],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            comp_search("123", "*"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            comp_search("123", "*"),
            INSUFF,
            &["patient/*.s"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            comp_search("456", "Observation"),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            comp_search("456", "*"),
            COMPART,
            &["patient/*.s"],
        ),
        row(
            "patient/*.rs",
            None,
            comp_search("123", "*"),
            NOCTX,
            &["patient/*.s"],
        ),
        row("user/*.rs", None, comp_search("456", "*"), ALLOW, &[]),
        row(
            "user/Observation.rs",
            None,
            comp_search("456", "Observation"),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.rs",
            None,
            comp_search("456", "Condition"),
            INSUFF,
            &["user/Condition.s"],
        ),
        row("system/*.rs", None, comp_search("456", "*"), ALLOW, &[]),
    ]);
}

#[test]
fn writes() {
    check(vec![
        row(
            "patient/Observation.c",
            Some("123"),
            create("Observation", Some(obs("Patient/123"))),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.cruds",
            Some("123"),
            create(
                "Observation",
                Some(obs("https://ehr.example.org/fhir/Patient/123")),
            ),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.write",
            Some("123"),
            create("Observation", Some(obs("Patient/123"))),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.c",
            Some("123"),
            create("Observation", Some(obs("Patient/456"))),
            COMPART,
            &["patient/Observation.c"],
        ),
        row(
            "patient/Observation.c",
            Some("123"),
            create("Observation", Some(json!({"resourceType":"Observation"}))),
            COMPART,
            &["patient/Observation.c"],
        ),
        row(
            "patient/Observation.c",
            Some("123"),
            create("Observation", None),
            COMPART,
            &["patient/Observation.c"],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            create("Observation", Some(obs("Patient/123"))),
            INSUFF,
            &["patient/Observation.c"],
        ),
        row(
            "patient/Observation.c",
            None,
            create("Observation", Some(obs("Patient/123"))),
            NOCTX,
            &["patient/Observation.c"],
        ),
        row(
            "patient/*.c",
            Some("123"),
            create("Medication", Some(json!({"resourceType":"Medication"}))),
            COMPART,
            &["patient/Medication.c"],
        ),
        row(
            "patient/Observation.cs",
            Some("123"),
            cond_create(
                "Observation",
                obs("Patient/123"),
                "identifier=x&patient=123",
            ),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.cs",
            Some("123"),
            cond_create("Observation", obs("Patient/123"), "identifier=x"),
            COMPART,
            &["patient/Observation.cs"],
        ),
        row(
            "patient/Observation.c",
            Some("123"),
            cond_create(
                "Observation",
                obs("Patient/123"),
                "identifier=x&patient=123",
            ),
            INSUFF,
            &["patient/Observation.cs"],
        ),
        row(
            "patient/Observation.u",
            Some("123"),
            update("Observation", "1", Some(obs("Patient/123"))),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.u",
            Some("123"),
            update("Observation", "1", Some(obs("Patient/9"))),
            COMPART,
            &["patient/Observation.u"],
        ),
        row(
            "patient/Observation.u",
            Some("123"),
            update("Observation", "1", None),
            COMPART,
            &["patient/Observation.u"],
        ),
        row(
            "patient/Patient.u",
            Some("123"),
            update(
                "Patient",
                "123",
                Some(json!({"resourceType":"Patient","id":"123"})),
            ),
            ALLOW,
            &[],
        ),
        row(
            "patient/Patient.u",
            Some("123"),
            update(
                "Patient",
                "9",
                Some(json!({"resourceType":"Patient","id":"9"})),
            ),
            COMPART,
            &["patient/Patient.u"],
        ),
        row(
            "patient/Patient.u",
            Some("123"),
            update(
                "Patient",
                "123",
                Some(json!({"resourceType":"Patient","id":"9"})),
            ),
            COMPART,
            &["patient/Patient.u"],
        ),
        row(
            "patient/Observation.us",
            Some("123"),
            cond_update(
                "Observation",
                "identifier=a&patient=123",
                obs("Patient/123"),
            ),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.u",
            Some("123"),
            cond_update(
                "Observation",
                "identifier=a&patient=123",
                obs("Patient/123"),
            ),
            INSUFF,
            &["patient/Observation.us"],
        ),
        row(
            "patient/Patient.u",
            Some("123"),
            patch("Patient", "123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Patient.u",
            Some("123"),
            patch("Patient", "9"),
            COMPART,
            &["patient/Patient.u"],
        ),
        row(
            "patient/Observation.u",
            Some("123"),
            patch("Observation", "1"),
            COMPART,
            &["patient/Observation.u"],
        ),
        row(
            "patient/Observation.d",
            Some("123"),
            delete("Observation", "1"),
            COMPART,
            &["patient/Observation.d"],
        ),
        row(
            "patient/Patient.d",
            Some("123"),
            delete("Patient", "123"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.ds",
            Some("123"),
            cond_delete("Observation", "patient=123&code=x"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.ds",
            Some("123"),
            cond_delete("Observation", "code=x"),
            COMPART,
            &["patient/Observation.ds"],
        ),
        row(
            "patient/Observation.d",
            Some("123"),
            cond_delete("Observation", "patient=123"),
            INSUFF,
            &["patient/Observation.ds"],
        ),
        row(
            "user/Observation.c",
            None,
            create("Observation", Some(obs("Patient/1"))),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.c",
            None,
            create("Observation", None),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.u",
            None,
            update("Observation", "1", Some(obs("Patient/1"))),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.u",
            None,
            patch("Observation", "1"),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.d",
            None,
            delete("Observation", "1"),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.rs",
            None,
            delete("Observation", "1"),
            INSUFF,
            &["user/Observation.d"],
        ),
        row(
            "user/Observation.read",
            None,
            update("Observation", "1", None),
            INSUFF,
            &["user/Observation.u"],
        ),
        row(
            "user/Observation.write",
            None,
            update("Observation", "1", None),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.u",
            None,
            cond_update("Observation", "identifier=a", obs("Patient/1")),
            INSUFF,
            &["user/Observation.us"],
        ),
        row(
            "user/Observation.us",
            None,
            cond_update("Observation", "identifier=a", obs("Patient/1")),
            ALLOW,
            &[],
        ),
        row(
            "system/*.cud",
            None,
            cond_delete("Observation", "identifier=a"),
            INSUFF,
            &["system/Observation.ds"],
        ),
        row(
            "system/*.cruds",
            None,
            cond_delete("Observation", "identifier=a"),
            ALLOW,
            &[],
        ),
    ]);
}

#[test]
fn user_and_system_scopes() {
    check(vec![
        row(
            "user/Observation.rs",
            None,
            read("Observation", "1"),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.rs",
            None,
            search("Observation", "code=x"),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.rs",
            None,
            search("Observation", ""),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.rs",
            None,
            read("Condition", "1"),
            INSUFF,
            &["user/Condition.r"],
        ),
        row("user/*.read", None, search("Patient", "name=x"), ALLOW, &[]),
        row("user/*.*", None, create("Patient", None), ALLOW, &[]),
        row(
            "system/Observation.rs",
            None,
            search("Observation", "code=x"),
            ALLOW,
            &[],
        ),
        row(
            "system/Observation.rs",
            None,
            read("Patient", "1"),
            INSUFF,
            &["system/Patient.r"],
        ),
        row(
            "system/*.rs",
            None,
            sys_search(&[], "_lastUpdated=gt2020"),
            ALLOW,
            &[],
        ),
        row(
            "system/Observation.rs",
            None,
            sys_search(&[], "_lastUpdated=gt2020"),
            INSUFF,
            &["system/*.s"],
        ),
        row(
            "user/Observation.rs user/Condition.rs",
            None,
            sys_search(&["Observation", "Condition"], "code=x"),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.rs",
            None,
            sys_search(&["Observation", "Condition"], "code=x"),
            INSUFF,
            &["user/Observation.s", "user/Condition.s"],
        ),
        row(
            "user/*.rs",
            None,
            history(Level::System, None, None),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.r",
            None,
            history(Level::Type, Some("Observation"), None),
            INSUFF,
            &["user/Observation.s"],
        ),
        row(
            "user/Observation.r",
            None,
            history(Level::Instance, Some("Observation"), Some("1")),
            ALLOW,
            &[],
        ),
        // a patient/ scope never widens a user/ scope and vice versa
        row(
            "user/Observation.r patient/Observation.s",
            Some("123"),
            search("Observation", "code=x"),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "user/Observation.r patient/Observation.s",
            Some("123"),
            search("Observation", "patient=123"),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.rs patient/Observation.rs",
            Some("123"),
            search("Observation", "code=x"),
            ALLOW,
            &[],
        ),
    ]);
}

#[test]
fn granular_scopes() {
    check(vec![
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
fn includes_chains_has() {
    check(vec![
        row(
            "patient/Observation.rs patient/Patient.rs",
            Some("123"),
            search(
                "Observation",
                "patient=123&_include=Observation:subject:Patient",
            ),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search(
                "Observation",
                "patient=123&_include=Observation:subject:Patient",
            ),
            INCL,
            &["patient/Observation.s", "patient/Patient.r"],
        ),
        row(
            "patient/Observation.rs patient/Patient.rs",
            Some("123"),
            search("Observation", "patient=123&_include=Observation:patient"),
            ALLOW,
            &[],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            search("Observation", "patient=123&_include=Observation:subject"),
            INCL,
            &["patient/Observation.s"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            search("Observation", "patient=123&_include=*"),
            INCL,
            &["patient/Observation.s"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            search(
                "MedicationRequest",
                "patient=123&_include=MedicationRequest:medication",
            ),
            ALLOW,
            &[],
        ),
        row(
            "patient/MedicationRequest.rs",
            Some("123"),
            search(
                "MedicationRequest",
                "patient=123&_include=MedicationRequest:medication",
            ),
            INCL,
            &["patient/MedicationRequest.s", "patient/Medication.r"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            search(
                "Observation",
                "patient=123&_include=Observation:device:Device",
            ),
            INCL,
            &["patient/Observation.s", "patient/Device.r"],
        ),
        row(
            "patient/Patient.rs patient/Provenance.rs",
            Some("123"),
            search("Patient", "_id=123&_revinclude=Provenance:target"),
            ALLOW,
            &[],
        ),
        row(
            "patient/Patient.rs",
            Some("123"),
            search("Patient", "_id=123&_revinclude=Provenance:target"),
            INCL,
            &["patient/Patient.s", "patient/Provenance.s"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            search("Patient", "_id=123&_revinclude=*"),
            INCL,
            &["patient/Patient.s"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            search("Observation", "patient=123&subject.name=smith"),
            CHAIN,
            &["patient/Observation.s"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            search("Observation", "patient=123&subject:Patient.name=smith"),
            CHAIN,
            &["patient/Observation.s"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            search("Patient", "_id=123&_has:Observation:patient:code=1234"),
            CHAIN,
            &["patient/Patient.s"],
        ),
        row(
            "user/*.rs",
            None,
            search("Observation", "subject.name=smith&_include=*"),
            ALLOW,
            &[],
        ),
        row(
            "user/*.rs",
            None,
            search("Patient", "_has:Observation:patient:code=1234"),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.rs",
            None,
            search("Observation", "_include=Observation:subject"),
            INCL,
            &["user/Observation.s", "user/*.r"],
        ),
        row(
            "user/Observation.rs user/Patient.r",
            None,
            search("Observation", "_include=Observation:subject:Patient"),
            ALLOW,
            &[],
        ),
    ]);
    let config = cfg();
    let ctx = AuthContext::from_scopes("patient/*.rs", Some("123"));
    let d = authorize(
        &config,
        search(
            "Observation",
            "patient=123&_include=Observation:performer:Patient",
        ),
        Some(&ctx),
    );
    assert!(d.is_allow());
    assert_eq!(
        d.obligations,
        vec![Obligation::CheckResponseCompartment {
            resource_type: "Patient".into(),
            patient: "123".into()
        }]
    );
    let open = Config::from_json(
        br#"{"policy":{"allow_chained":true,"allow_has":true,"allow_wildcard_include":true}}"#,
    )
    .unwrap();
    for q in [
        "patient=123&subject.name=smith",
        "patient=123&_has:Observation:patient:code=1",
    ] {
        assert!(
            authorize(&open, search("Observation", q), Some(&ctx)).is_allow(),
            "{q}"
        );
    }
}

#[test]
fn operations() {
    check(vec![
        row(
            "patient/*.rs",
            Some("123"),
            op(
                Level::Instance,
                Some("Patient"),
                Some("123"),
                "$everything",
                "",
            ),
            ALLOW,
            &[],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            op(
                Level::Instance,
                Some("Patient"),
                Some("456"),
                "$everything",
                "",
            ),
            COMPART,
            &["patient/*.rs"],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            op(
                Level::Instance,
                Some("Patient"),
                Some("123"),
                "$everything",
                "",
            ),
            INSUFF,
            &["patient/*.rs"],
        ),
        row(
            "user/*.rs",
            None,
            op(
                Level::Instance,
                Some("Patient"),
                Some("456"),
                "$everything",
                "",
            ),
            ALLOW,
            &[],
        ),
        row(
            "user/*.r",
            None,
            op(
                Level::Instance,
                Some("Patient"),
                Some("456"),
                "$everything",
                "",
            ),
            INSUFF,
            &["user/*.rs"],
        ),
        row(
            "system/*.rs",
            None,
            op(Level::System, None, None, "$export", ""),
            ALLOW,
            &[],
        ),
        row(
            "system/*.read",
            None,
            op(Level::Type, Some("Patient"), None, "$export", ""),
            ALLOW,
            &[],
        ),
        row(
            "system/*.rs",
            None,
            op(Level::Instance, Some("Group"), Some("g1"), "$export", ""),
            ALLOW,
            &[],
        ),
        row(
            "system/Observation.rs system/Patient.rs",
            None,
            op(
                Level::System,
                None,
                None,
                "$export",
                "_type=Observation,Patient",
            ),
            ALLOW,
            &[],
        ),
        row(
            "system/Observation.rs",
            None,
            op(
                Level::System,
                None,
                None,
                "$export",
                "_type=Observation,Patient",
            ),
            INSUFF,
            &["system/Observation.rs", "system/Patient.rs"],
        ),
        row(
            "system/Observation.rs",
            None,
            op(Level::System, None, None, "$export", ""),
            INSUFF,
            &["system/*.rs"],
        ),
        row(
            "user/*.rs",
            None,
            op(Level::System, None, None, "$export", ""),
            INSUFF,
            &["system/*.rs"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            op(Level::Type, Some("Patient"), None, "$export", ""),
            INSUFF,
            &["system/*.rs"],
        ),
        row(
            "user/*.rs",
            None,
            op(Level::System, None, None, "$frobnicate", ""),
            OPNP,
            &[],
        ),
        row(
            "user/*.rs",
            None,
            op(
                Level::Instance,
                Some("Observation"),
                Some("1"),
                "$everything",
                "",
            ),
            OPNP,
            &[],
        ),
        row(
            "user/Observation.c",
            None,
            op(Level::Type, Some("Observation"), None, "$validate", ""),
            ALLOW,
            &[],
        ),
        row(
            "user/Observation.rs",
            None,
            op(Level::Type, Some("Observation"), None, "$validate", ""),
            INSUFF,
            &["user/Observation.c"],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            op(
                Level::Type,
                Some("Observation"),
                None,
                "$lastn",
                "patient=123&category=vital-signs",
            ),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            op(
                Level::Type,
                Some("Observation"),
                None,
                "$lastn",
                "category=vital-signs",
            ),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "patient/ValueSet.rs",
            Some("123"),
            op(Level::Type, Some("ValueSet"), None, "$expand", "url=x"),
            ALLOW,
            &[],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            op(Level::Instance, Some("Patient"), Some("123"), "$meta", ""),
            ALLOW,
            &[],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            op(Level::Instance, Some("Observation"), Some("1"), "$meta", ""),
            COMPART,
            &["patient/Observation.r"],
        ),
    ]);
}

#[test]
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
    check(vec![
        row("user/*.rs", None, bundle(K::Batch, vec![]), ALLOW, &[]),
        row(
            "user/*.rs",
            None,
            bundle(K::Batch, vec![read("Patient", "1"), delete("Patient", "1")]),
            BUNDLE,
            &["user/Patient.d"],
        ),
        row(
            "user/*.cruds",
            None,
            bundle(
                K::Transaction,
                vec![read("Patient", "1"), delete("Patient", "1")],
            ),
            ALLOW,
            &[],
        ),
        row(
            "user/*.rs",
            None,
            bundle(K::Batch, vec![bundle(K::Batch, vec![])]),
            BUNDLE,
            &[],
        ),
    ]);
}

#[test]
fn paging() {
    let p = || it(K::Paging, Level::System, None, None);
    check(vec![
        row("user/Observation.s", None, p(), ALLOW, &[]),
        row("user/Observation.r", None, p(), INSUFF, &["user/*.s"]),
        row("patient/Observation.rs", Some("123"), p(), ALLOW, &[]),
        row("patient/Observation.rs", None, p(), NOCTX, &[]),
    ]);
    let ctx = AuthContext::from_scopes("patient/Observation.rs", Some("123"));
    let d = authorize(&cfg(), p(), Some(&ctx));
    assert_eq!(
        d.obligations,
        vec![Obligation::CheckResponseCompartment {
            resource_type: "*".into(),
            patient: "123".into()
        }]
    );
    let deny = Config::from_json(br#"{"policy":{"patient_paging":"deny"}}"#).unwrap();
    assert_eq!(
        authorize(&deny, p(), Some(&ctx)).reason,
        Reason::PatientCompartmentViolation
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

#[test]
fn safety_refinements() {
    check(vec![
        row(
            "patient/Patient.c",
            Some("123"),
            create(
                "Patient",
                Some(json!({"resourceType":"Patient","id":"123"})),
            ),
            COMPART,
            &["patient/Patient.c"],
        ),
        row(
            "user/Patient.c",
            None,
            create("Patient", Some(json!({"resourceType":"Patient"}))),
            ALLOW,
            &[],
        ),
        row(
            "patient/Observation.rs",
            Some("123"),
            search("Observation", "patient=123&_query=everything"),
            COMPART,
            &["patient/Observation.s"],
        ),
        row(
            "user/Observation.rs",
            None,
            search("Observation", "_query=everything"),
            ALLOW,
            &[],
        ),
        // `_has` is refused whether it comes before or after an include
        row(
            "patient/*.rs",
            Some("123"),
            search(
                "Patient",
                "_has:Observation:patient:code=1&_id=123&_include=Patient:organization",
            ),
            CHAIN,
            &["patient/Patient.s", "patient/Organization.r"],
        ),
        row(
            "patient/*.rs",
            Some("123"),
            search(
                "Patient",
                "_id=123&_include=Patient:organization&_has:Observation:patient:code=1",
            ),
            CHAIN,
            &["patient/Patient.s", "patient/Organization.r"],
        ),
    ]);
    let config = cfg();
    let ctx = AuthContext::from_scopes("patient/Observation.rs", Some("123"));
    let compartment_check = vec![Obligation::CheckResponseCompartment {
        resource_type: "Observation".into(),
        patient: "123".into(),
    }];
    for (q, obligations) in [
        ("subject=123", compartment_check.clone()),
        ("performer=123", compartment_check.clone()),
        ("subject=Patient/123", vec![]),
        ("subject:Patient=123", vec![]),
        ("patient=123", vec![]),
        ("subject=123&patient=Patient/123", vec![]),
    ] {
        let d = authorize(&config, search("Observation", q), Some(&ctx));
        assert!(d.is_allow(), "{q}: {}", d.message);
        assert_eq!(d.obligations, obligations, "{q}");
    }
    let open = Config::from_json(br#"{"policy":{"allow_wildcard_include":true}}"#).unwrap();
    let all = AuthContext::from_scopes("patient/*.rs", Some("123"));
    let d = authorize(
        &open,
        search("Observation", "patient=123&_include=*"),
        Some(&all),
    );
    assert!(d.is_allow(), "{}", d.message);
    assert_eq!(
        d.obligations,
        vec![Obligation::CheckResponseCompartment {
            resource_type: "*".into(),
            patient: "123".into()
        }]
    );
}

#[test]
fn patient_update_by_id_knob() {
    let ctx = AuthContext::from_scopes("patient/Observation.us patient/Patient.u", Some("123"));
    let deny = Config::from_json(br#"{"policy":{"patient_update_by_id":"deny"}}"#).unwrap();
    let d = authorize(
        &deny,
        update("Observation", "1", Some(obs("Patient/123"))),
        Some(&ctx),
    );
    assert_eq!(
        (d.status, d.reason),
        (403, Reason::PatientCompartmentViolation)
    );
    assert!(d.message.contains("conditional update"), "{}", d.message);
    for ok in [
        cond_update(
            "Observation",
            "identifier=a&patient=123",
            obs("Patient/123"),
        ),
        update(
            "Patient",
            "123",
            Some(json!({"resourceType":"Patient","id":"123"})),
        ),
    ] {
        let d = authorize(&deny, ok, Some(&ctx));
        assert!(d.is_allow(), "{}", d.message);
    }
    assert!(authorize(
        &cfg(),
        update("Observation", "1", Some(obs("Patient/123"))),
        Some(&ctx)
    )
    .is_allow());
}
