//! Metrics an SRE can alert on: every counter exported at zero from the
//! start, the key-set age and refresh-failure gauges, the decision latency.

use super::*;
use fhir_smart_authz::host::HttpCall;
use fhir_smart_authz::metrics::COUNTERS;

fn configured(config: &'static [u8], due: bool) -> (FakeHost, Root) {
    let factory = move |_c: Rc<Config>| -> (Box<dyn TokenPort>, Box<dyn Engine>) {
        let mut t = tokens();
        t.fetched = vec![0];
        if due {
            t.due = vec![(
                0,
                HttpCall {
                    cluster: "issuer".into(),
                    headers: vec![(":path".into(), "/jwks".into())],
                    body: None,
                    timeout_ms: 5000,
                },
            )];
        }
        (Box::new(t), Box::new(scripted_engine(false, false)))
    };
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
    let mut root = Root::default();
    assert!(root.configure(&h, Some(config), &factory, AuditEncoding::Json));
    (h, root)
}

#[test]
fn every_counter_is_exported_at_zero_from_the_start() {
    let (h, _root) = configured(ROT_CFG, false);
    let st = h.state.borrow();
    for suffix in COUNTERS {
        assert_eq!(
            st.counters.get(&format!("fhir_smart_authz.{suffix}")),
            Some(&0),
            "{suffix}"
        );
    }
    for reason in Reason::ALL {
        let verdict = if reason.is_allow() { "allow" } else { "deny" };
        let name = format!("fhir_smart_authz.decision.{verdict}.{}", reason.as_str());
        assert_eq!(st.counters.get(&name), Some(&0), "{name}");
    }
    assert_eq!(st.counters.len(), COUNTERS.len() + Reason::ALL.len());
}

#[test]
fn key_set_age_and_refresh_failure_gauges() {
    let age = "fhir_smart_authz.jwks.key_set_age_seconds.issuer_0";
    let failing = "fhir_smart_authz.jwks.refresh_failing.issuer_0";
    // No key set yet: the age counts from the configuration's load.
    let (h, mut root) = configured(ROT_CFG, true);
    h.state.borrow_mut().now_ms = NOW_MS + 5_000;
    root.tick(&h);
    assert_eq!(h.counter(age), 5);
    // The root's fetch fails: failing; then succeeds: not failing, age 0, then growing.
    {
        let mut st = h.state.borrow_mut();
        st.call_response_headers = vec![(":status".into(), "503".into())];
    }
    root.on_call_response(&h, 1, 0);
    assert_eq!(h.counter(failing), 1);
    let (h, mut root) = configured(ROT_CFG, true);
    h.state.borrow_mut().now_ms = NOW_MS + 1_000;
    root.tick(&h);
    {
        let mut st = h.state.borrow_mut();
        st.call_response_headers = vec![(":status".into(), "200".into())];
        st.call_response_body = b"{\"keys\":[\"new\"]}".to_vec();
    }
    root.on_call_response(&h, 1, 16);
    assert_eq!(h.counter(failing), 0);
    h.state.borrow_mut().now_ms = NOW_MS + 8_000;
    root.tick(&h);
    assert_eq!(h.counter(age), 7);
}

#[test]
fn decision_latency_only_when_configured() {
    let latency = "fhir_smart_authz.decision.latency_us";
    for (config, recorded) in [
        ("{}", false),
        (r#"{"metrics":{"decision_latency":true}}"#, true),
    ] {
        let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
        let mut s = stream(Setup {
            config,
            ..Setup::default()
        });
        s.on_request_headers(&h, true);
        assert_eq!(
            h.state.borrow().counters.contains_key(latency),
            recorded,
            "{config}"
        );
    }
}

/// A host that defines every metric up front (the native module: Envoy
/// freezes stat creation once the configuration is loaded) defines
/// `all_names`: every metric the shell defines as it goes is among them
/// (but the wasm VM's memory gauge), and there is one counter per reason.
#[test]
fn all_names_holds_every_metric_the_shell_defines() {
    const CFG: &[u8] = br#"{"fhir_base_url":"https://fhir.example/fhir","issuers":[{"issuer":"https://as","jwks_uri":"https://as/jwks","jwks_cluster":"issuer","jwks_min_refetch_seconds":30}],"metrics":{"phase_timing":true,"decision_latency":true}}"#;
    let config = Config::from_json(CFG).unwrap();
    let names = fhir_smart_authz::metrics::all_names(&config);
    assert_eq!(names.counters.len(), COUNTERS.len() + Reason::ALL.len());
    let (h, mut root) = configured(CFG, true);
    h.state.borrow_mut().now_ms = NOW_MS + 1_000;
    root.tick(&h);
    {
        let mut st = h.state.borrow_mut();
        st.call_response_headers = vec![(":status".into(), "503".into())];
    }
    root.on_call_response(&h, 1, 0);
    let mut s = Stream::new(root.shared.clone().unwrap());
    s.on_request_headers(&h, true);
    let defined = h.state.borrow().counter_names.clone();
    let all: Vec<&String> = names
        .counters
        .iter()
        .chain(&names.histograms)
        .chain(&names.gauges)
        .collect();
    let mut kinds = 0;
    for name in defined.iter().filter(|n| !n.ends_with("vm.memory_bytes")) {
        assert!(all.contains(&name), "{name} is not in all_names");
        kinds |= [
            ".decision.",
            ".phase.",
            ".jwks.key_set_age",
            ".jwks.refresh_failing",
            ".latency_us",
        ]
        .iter()
        .enumerate()
        .filter(|(_, k)| name.contains(*k))
        .fold(0, |acc, (i, _)| acc | 1 << i);
    }
    assert_eq!(
        kinds, 0b11111,
        "every kind of metric was defined: {defined:?}"
    );
}
