//! The job registry and the Bulk Data steps against an in-memory store
//! with compare-and-swap (as proxy-wasm shared data).

use super::*;
use crate::decision::Verdict;
use std::cell::RefCell;
use std::collections::HashMap;

/// Shared data: value and version per key; a CAS write must name the version.
#[derive(Default)]
struct Memory {
    data: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    /// Fail the next n CAS writes (another worker wrote first).
    races: RefCell<usize>,
}

impl JobStore for Memory {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.data.borrow().get(key) {
            Some((v, c)) => (Some(v.clone()), Some(*c)),
            None => (None, None),
        }
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut races = self.races.borrow_mut();
        if *races > 0 && cas.is_some() {
            *races -= 1;
            return Err(StoreError::CasMismatch);
        }
        let mut data = self.data.borrow_mut();
        let current = data.get(key).map(|(_, c)| *c);
        if cas.is_some() && cas != current {
            return Err(StoreError::CasMismatch);
        }
        data.insert(key.to_string(), (value.to_vec(), current.unwrap_or(0) + 1));
        Ok(())
    }
}

impl Memory {
    fn keys(&self) -> usize {
        self.data.borrow().len()
    }
}

fn ctx(client: &str, sub: &str, scopes: &str) -> AuthContext {
    let mut c = AuthContext::from_scopes(scopes, None);
    c.iss = Some("https://issuer".into());
    c.client_id = Some(client.into());
    c.sub = Some(sub.into());
    c
}

fn base() -> FhirBase {
    FhirBase::new("/fhir", Some("http://gw/fhir")).unwrap_or_else(|e| panic!("{e:?}"))
}

fn kickoff(needs: &[&str]) -> Decision {
    let mut it = Interaction::new(InteractionKind::Operation, Level::System);
    it.operation = Some("$export".into());
    let mut d = Decision::allow(Reason::Allowed, it);
    d.required_scopes = needs.iter().map(|s| s.to_string()).collect();
    mark_kickoff(&mut d);
    d
}

/// Kick off as `who` and record the server's 202 with this status URL.
fn start(
    cfg: &BulkConfig,
    store: &Memory,
    who: &AuthContext,
    needs: &[&str],
    location: &str,
    now: u64,
) -> Decision {
    let (mut d, why) = settle(cfg, store, kickoff(needs), Some(who), now);
    assert!(d.is_allow(), "{} {why:?}", d.message);
    let key = kickoff_answered(cfg, &base(), store, &mut d, who, (202, Some(location)), now);
    assert!(matches!(key, Ok(Some(_))), "{key:?}");
    d
}

/// The decision on a request to a job URL, settled.
fn job(
    cfg: &BulkConfig,
    store: &Memory,
    method: &str,
    path: &str,
    who: &AuthContext,
    now: u64,
) -> Decision {
    let d = decide_job_request(cfg, &base(), method, path, Some(who))
        .unwrap_or_else(|| panic!("{path} is no job URL"));
    settle(cfg, store, d, Some(who), now).0
}

/// [`start`] with the needs of a `system/*.rs` kick-off.
fn start_all(cfg: &BulkConfig, store: &Memory, who: &AuthContext, location: &str, now: u64) {
    start(cfg, store, who, &["system/*.rs"], location, now);
}

const OWNER_SCOPES: &str = "system/Observation.rs system/Patient.rs";

#[test]
#[rustfmt::skip]
fn only_the_owner_with_its_scopes_reaches_the_job() {
    let cfg = BulkConfig::default();
    let store = Memory::default();
    let owner = ctx("app", "svc", OWNER_SCOPES);
    let d = start(
        &cfg,
        &store,
        &owner,
        &["system/Observation.rs", "system/Patient.rs"],
        "http://gw/fhir/bulk-status/j1",
        100,
    );
    assert_eq!(
        d.bulk.as_ref().and_then(|b| b.job.as_deref()),
        Some("bulk-status/j1")
    );
    // The manifest lists two files under the gateway and one elsewhere.
    let poll = job(&cfg, &store, "GET", "/fhir/bulk-status/j1", &owner, 101);
    let step = poll.bulk.clone().unwrap_or_else(|| panic!("no step"));
    let manifest =
        br#"{"output":[{"type":"Patient","url":"http://gw/fhir/bulk-files/j1/Patient.ndjson"},
        {"type":"Observation","url":"http://gw/fhir/bulk-files/j1/Observation.ndjson"},
        {"type":"Observation","url":"https://s3.example.net/j1/more.ndjson"}]}"#;
    assert_eq!(
        status_answered(&cfg, &base(), &store, &step, 200, Some(manifest)),
        Ok(2)
    );

    let other_client = ctx("other", "svc", OWNER_SCOPES);
    let other_sub = ctx("app", "someone-else", OWNER_SCOPES);
    let narrower = ctx("app", "svc", "system/Observation.rs");
    let file = "/fhir/bulk-files/j1/Patient.ndjson";
    for (who, name, allowed) in [
        (&owner, "owner", true),
        (&other_client, "another client", false),
        (&other_sub, "another subject", false),
        (&narrower, "the owner with narrower scopes", false),
    ] {
        for (method, path) in [
            ("GET", "/fhir/bulk-status/j1"),
            ("GET", file),
            ("GET", "/fhir/bulk-files/j1/Observation.ndjson"),
            ("DELETE", "/fhir/bulk-status/j1"),
        ] {
            let d = job(&cfg, &store, method, path, who, 102);
            if allowed {
                assert!(d.is_allow(), "{name}: {method} {path}: {}", d.message);
                assert_eq!(
                    d.bulk.as_ref().and_then(|b| b.job.as_deref()),
                    Some("bulk-status/j1")
                );
            } else {
                assert_eq!(
                    (d.status, d.reason, d.message.as_str()),
                    (404, Reason::BulkJobNotFound, NOT_FOUND),
                    "{name}: {method} {path}"
                );
            }
        }
    }
    // A file the manifest did not list, and a job that never existed, answer the same.
    for path in [
        "/fhir/bulk-files/j1/Secret.ndjson",
        "/fhir/bulk-status/nope",
        "/fhir/bulk-files/zz/Patient.ndjson",
    ] {
        let d = job(&cfg, &store, "GET", path, &owner, 102);
        assert_eq!(
            (d.status, d.reason, d.message.as_str()),
            (404, Reason::BulkJobNotFound, NOT_FOUND),
            "{path}"
        );
    }
    // The owner cancels: the job is forgotten, its status URL and files with it.
    let cancel = job(&cfg, &store, "DELETE", "/fhir/bulk-status/j1", &owner, 103);
    let step = cancel.bulk.clone().unwrap_or_else(|| panic!("no step"));
    assert_eq!(cancel_answered(&store, &step, 202), Ok(()));
    for (method, path) in [
        ("GET", "/fhir/bulk-status/j1"),
        ("GET", file),
        ("DELETE", "/fhir/bulk-status/j1"),
    ] {
        assert_eq!(
            job(&cfg, &store, method, path, &owner, 104).reason,
            Reason::BulkJobNotFound,
            "{path}"
        );
    }
}

#[test]
#[rustfmt::skip]
fn a_failed_cancel_keeps_the_job() {
    let cfg = BulkConfig::default();
    let store = Memory::default();
    let owner = ctx("app", "svc", "system/*.rs");
    start_all(&cfg, &store, &owner, "/fhir/bulk-status/j1", 0);
    let cancel = job(&cfg, &store, "DELETE", "/fhir/bulk-status/j1", &owner, 1);
    let step = cancel.bulk.clone().unwrap_or_else(|| panic!("no step"));
    assert_eq!(cancel_answered(&store, &step, 500), Ok(()));
    assert!(job(&cfg, &store, "GET", "/fhir/bulk-status/j1", &owner, 2).is_allow());
}

#[test]
#[rustfmt::skip]
fn requests_without_a_token_or_with_other_methods() {
    let cfg = BulkConfig::default();
    let d = decide_job_request(&cfg, &base(), "GET", "/fhir/bulk-status/j1", None);
    assert_eq!(
        d.map(|d| (d.status, d.reason)),
        Some((401, Reason::MissingToken))
    );
    let d = decide_job_request(
        &cfg,
        &base(),
        "PUT",
        "/fhir/bulk-status/j1",
        Some(&ctx("a", "b", "system/*.rs")),
    );
    assert_eq!(
        d.map(|d| (d.status, d.reason)),
        Some((400, Reason::InvalidRequest))
    );
    assert!(decide_job_request(&cfg, &base(), "GET", "/fhir/Patient/1", None).is_none());
}

#[test]
#[rustfmt::skip]
fn kickoffs_per_client_are_limited_until_one_completes_or_is_cancelled() {
    let cfg = BulkConfig {
        max_active_per_client: 2,
        ..BulkConfig::default()
    };
    let store = Memory::default();
    let a = ctx("app", "svc", "system/*.rs");
    let b = ctx("other", "svc", "system/*.rs");
    start_all(&cfg, &store, &a, "/fhir/bulk-status/j1", 10);
    start_all(&cfg, &store, &a, "/fhir/bulk-status/j2", 11);
    let (d, _) = settle(&cfg, &store, kickoff(&["system/*.rs"]), Some(&a), 12);
    assert_eq!(
        (d.decision, d.status, d.reason, d.retry_after),
        (Verdict::Deny, 429, Reason::ExportLimitReached, Some(120))
    );
    assert_eq!(d.bulk.as_ref().map(|b| b.action), Some(BulkAction::KickOff));
    // Another client is not limited by it.
    assert!(
        settle(&cfg, &store, kickoff(&["system/*.rs"]), Some(&b), 12)
            .0
            .is_allow()
    );
    // j1 completes (its manifest is read): room for one more.
    let poll = job(&cfg, &store, "GET", "/fhir/bulk-status/j1", &a, 13);
    let step = poll.bulk.clone().unwrap_or_else(|| panic!("no step"));
    assert_eq!(
        status_answered(&cfg, &base(), &store, &step, 200, Some(br#"{"output":[]}"#)),
        Ok(0)
    );
    assert!(
        settle(&cfg, &store, kickoff(&["system/*.rs"]), Some(&a), 14)
            .0
            .is_allow()
    );
    // A job still in progress (202) stays counted; a failed one (5xx) does not.
    let poll = job(&cfg, &store, "GET", "/fhir/bulk-status/j2", &a, 15);
    let step = poll.bulk.clone().unwrap_or_else(|| panic!("no step"));
    assert_eq!(
        status_answered(&cfg, &base(), &store, &step, 202, None),
        Ok(0)
    );
    start_all(&cfg, &store, &a, "/fhir/bulk-status/j3", 16);
    assert_eq!(
        settle(&cfg, &store, kickoff(&["system/*.rs"]), Some(&a), 17)
            .0
            .status,
        429
    );
    assert_eq!(
        status_answered(&cfg, &base(), &store, &step, 500, None),
        Ok(0)
    );
    assert!(
        settle(&cfg, &store, kickoff(&["system/*.rs"]), Some(&a), 18)
            .0
            .is_allow()
    );
    // Jobs older than job_ttl_seconds no longer count (nor exist).
    let later = 16 + cfg.job_ttl_seconds;
    assert!(
        settle(&cfg, &store, kickoff(&["system/*.rs"]), Some(&a), later)
            .0
            .is_allow()
    );
    assert_eq!(
        job(&cfg, &store, "GET", "/fhir/bulk-status/j3", &a, later).reason,
        Reason::BulkJobNotFound
    );
}

#[test]
#[rustfmt::skip]
fn a_kickoff_needs_a_client_to_bind_the_job_to() {
    let cfg = BulkConfig::default();
    let store = Memory::default();
    let nobody = AuthContext::from_scopes("system/*.rs", None);
    let (d, _) = settle(&cfg, &store, kickoff(&["system/*.rs"]), Some(&nobody), 0);
    assert_eq!((d.status, d.reason), (403, Reason::InsufficientScope));
}

#[test]
#[rustfmt::skip]
fn kickoff_answers_that_record_nothing() {
    let cfg = BulkConfig::default();
    let store = Memory::default();
    let a = ctx("app", "svc", "system/*.rs");
    let mut d = kickoff(&["system/*.rs"]);
    for (answer, expected) in [
        ((200, Some("/fhir/bulk-status/x")), Ok(None)),
        ((400, None), Ok(None)),
        (
            (202, Some("https://elsewhere.example.net/status/1")),
            Ok(None),
        ),
    ] {
        assert_eq!(
            kickoff_answered(&cfg, &base(), &store, &mut d, &a, answer, 0),
            expected
        );
    }
    assert!(kickoff_answered(&cfg, &base(), &store, &mut d, &a, (202, None), 0).is_err());
    let e = kickoff_answered(
        &cfg,
        &base(),
        &store,
        &mut d,
        &a,
        (202, Some("/fhir/jobs/1")),
        0,
    );
    assert!(e.is_err_and(|e| e.contains("bulk.status_paths")));
    assert_eq!(store.keys(), 0);
}

#[test]
#[rustfmt::skip]
fn the_registry_is_bounded_and_evicts_the_oldest() {
    let cfg = BulkConfig {
        max_jobs: 3,
        max_active_per_client: 3,
        ..BulkConfig::default()
    };
    let store = Memory::default();
    let a = ctx("app", "svc", "system/*.rs");
    for i in 0..10u64 {
        let (mut d, _) = settle(
            &cfg,
            &store,
            kickoff(&["system/*.rs"]),
            Some(&ctx(&format!("c{i}"), "s", "system/*.rs")),
            i,
        );
        assert!(d.is_allow());
        let who = ctx(&format!("c{i}"), "s", "system/*.rs");
        let r = kickoff_answered(
            &cfg,
            &base(),
            &store,
            &mut d,
            &who,
            (202, Some(&format!("/fhir/bulk-status/j{i}"))),
            i,
        );
        assert!(matches!(r, Ok(Some(_))));
    }
    // The index and three slots: the keys never grow past max_jobs + 1.
    assert_eq!(store.keys(), 4);
    for i in 0..10u64 {
        let who = ctx(&format!("c{i}"), "s", "system/*.rs");
        let d = job(
            &cfg,
            &store,
            "GET",
            &format!("/fhir/bulk-status/j{i}"),
            &who,
            20,
        );
        assert_eq!(d.is_allow(), i >= 7, "j{i}");
    }
    let _ = a;
}

#[test]
#[rustfmt::skip]
fn writes_retry_when_another_worker_wrote_first() {
    let cfg = BulkConfig::default();
    let store = Memory::default();
    let a = ctx("app", "svc", "system/*.rs");
    *store.races.borrow_mut() = 3;
    start_all(&cfg, &store, &a, "/fhir/bulk-status/j1", 0);
    assert!(job(&cfg, &store, "GET", "/fhir/bulk-status/j1", &a, 1).is_allow());
    // A store that always loses gives up, and the job is not recorded.
    *store.races.borrow_mut() = 1000;
    let mut d = kickoff(&["system/*.rs"]);
    assert!(kickoff_answered(
        &cfg,
        &base(),
        &store,
        &mut d,
        &a,
        (202, Some("/fhir/bulk-status/j2")),
        0
    )
    .is_err());
    *store.races.borrow_mut() = 0;
    assert_eq!(
        job(&cfg, &store, "GET", "/fhir/bulk-status/j2", &a, 1).reason,
        Reason::BulkJobNotFound
    );
}

#[test]
#[rustfmt::skip]
fn files_per_job_are_bounded() {
    let cfg = BulkConfig {
        max_files_per_job: 2,
        ..BulkConfig::default()
    };
    let store = Memory::default();
    let a = ctx("app", "svc", "system/*.rs");
    start_all(&cfg, &store, &a, "/fhir/bulk-status/j1", 0);
    let poll = job(&cfg, &store, "GET", "/fhir/bulk-status/j1", &a, 1);
    let step = poll.bulk.clone().unwrap_or_else(|| panic!("no step"));
    let manifest = br#"{"output":[{"url":"/fhir/bulk-files/j1/1.ndjson"},{"url":"/fhir/bulk-files/j1/2.ndjson"},{"url":"/fhir/bulk-files/j1/3.ndjson"}]}"#;
    assert_eq!(
        status_answered(&cfg, &base(), &store, &step, 200, Some(manifest)),
        Ok(3)
    );
    for (n, allowed) in [(1, true), (2, true), (3, false)] {
        let d = job(
            &cfg,
            &store,
            "GET",
            &format!("/fhir/bulk-files/j1/{n}.ndjson"),
            &a,
            2,
        );
        assert_eq!(d.is_allow(), allowed, "{n}");
    }
}

/// The scopes a kick-off used are what its job needs later: the types as
/// sent, or those a narrowed kick-off was given.
#[test]
fn a_kickoffs_needs_are_the_scopes_it_used() {
    use crate::config::Config;
    use crate::fhir::RequestParts;
    let config = Config::from_json(br#"{"fhir_base_url": "http://gw/fhir"}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    let who = ctx(
        "app",
        "svc",
        "system/Observation.rs system/Patient.rs system/Condition.r",
    );
    for (path, needs) in [
        (
            "/fhir/$export?_type=Observation",
            vec!["system/Observation.rs"],
        ),
        (
            "/fhir/$export",
            vec!["system/Observation.rs", "system/Patient.rs"],
        ),
    ] {
        let req = RequestParts {
            method: "GET",
            path,
            ..RequestParts::default()
        };
        let d = crate::engine::decide_context(&config, &req, Some(&who));
        assert!(d.is_allow(), "{path}: {}", d.message);
        assert_eq!(d.required_scopes, needs, "{path}");
        assert_eq!(
            d.bulk.as_ref().map(|b| b.action),
            Some(BulkAction::KickOff),
            "{path}"
        );
    }
}
