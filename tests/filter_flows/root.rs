//! The root context: configuration, and JWKS fetches shared across worker VMs.

use super::*;

#[test]
fn root_configure_rejects_invalid_json_naming_the_field() {
    let factory = |c: Rc<Config>| -> (Box<dyn TokenPort>, Box<dyn Engine>) {
        let _ = c;
        (Box::new(tokens()), Box::new(scripted_engine(false, false)))
    };
    // on_configure logs the same line `check-config` prints: the dotted path
    // of the field, at any depth.
    for (config, log) in [
        (
            r#"{"metrics":{"prefx":"a"}}"#,
            "fhir-smart-authz: invalid configuration at `metrics.prefx`: unknown field `prefx`, expected one of `prefix`, `phase_timing`, `decision_latency`; see the configuration reference (docs/configuration.md)",
        ),
        (
            r#"{"policy":{"patient_search":"narrowx"}}"#,
            "fhir-smart-authz: invalid configuration at `policy.patient_search`: unknown variant `narrowx`, expected `narrow` or `deny`; see the configuration reference (docs/configuration.md)",
        ),
        (
            r#"{"issuers":[{"issuer":"https://x","algorithms":["RS256",256]}]}"#,
            "fhir-smart-authz: invalid configuration at `issuers[0].algorithms[1]`: invalid type: integer `256`, expected a string; see the configuration reference (docs/configuration.md)",
        ),
    ] {
        let h = FakeHost::new(NOW_MS);
        let mut root = Root::default();
        assert!(!root.configure(
            &h,
            Some(config.as_bytes()),
            &factory,
            AuditEncoding::Json
        ));
        let logs = h.state.borrow().logs.clone();
        assert_eq!(logs, vec![(LogLevel::Critical, log.to_string())], "{config}");
        assert!(root.shared.is_none());
        assert!(root.configure(&h, None, &factory, AuditEncoding::Json));
        assert_eq!(h.state.borrow().tick_ms, 1000);
    }
}

/// Ports whose issuer 0 has its keys fetched, a fetch being due.
fn due_fetch_ports(_c: Rc<Config>) -> (Box<dyn TokenPort>, Box<dyn Engine>) {
    let mut t = tokens();
    t.fetched = vec![0];
    t.due = vec![(0, fhir_smart_authz::fake::jwks_call())];
    (Box::new(t), Box::new(scripted_engine(false, false)))
}

const FETCHED_CFG: &[u8] = br#"{"fhir_base_url":"https://fhir.example/fhir","issuers":[{"issuer":"https://as","jwks_uri":"https://as/jwks","jwks_cluster":"issuer"}]}"#;

/// An introspection issuer whose `client_secret` is `secret` (JSON), with
/// `extra` top-level settings.
fn introspection_plugin(secret: &str, extra: &str) -> String {
    format!(
        r#"{{"fhir_base_url":"https://fhir.example/fhir",{extra}"issuers":[{{"issuer":"https://as","introspection":{{"cluster":"as","path":"/introspect","client_id":"gw","client_secret":{secret}}}}}]}}"#
    )
}

#[test]
fn root_configure_reads_secrets_from_the_vm_environment_only() {
    let factory = |_c: Rc<Config>| -> (Box<dyn TokenPort>, Box<dyn Engine>) {
        (Box::new(tokens()), Box::new(scripted_engine(false, false)))
    };
    const VALUE: &str = "vm-env-s3cret";
    let field =
        "fhir-smart-authz: invalid configuration at `issuers[0].introspection.client_secret`";
    // (client_secret, extra settings, accepted, the log lines)
    let rows: Vec<(&str, &str, bool, Vec<(LogLevel, String)>)> = vec![
        (r#"{"env":"INTROSPECTION_SECRET"}"#, "", true, vec![]),
        (
            r#"{"env":"OTHER"}"#,
            "",
            false,
            vec![(LogLevel::Critical, format!(r#"{field}: {{"env": "OTHER"}}: the environment variable is not set (the .wasm in Envoy: vm_config.environment_variables.host_env_keys; Istio: WasmPlugin vmConfig.env with valueFrom: HOST; the native module: Envoy's own environment; CLI: its own environment)"#))],
        ),
        (
            r#"{"file":"/run/secrets/introspection"}"#,
            "",
            false,
            vec![(LogLevel::Critical, format!(r#"{field}: {{"file": "/run/secrets/introspection"}}: the file cannot be read: a proxy-wasm VM has no file system; use {{"env": "NAME"}}"#))],
        ),
        (
            r#""vm-env-s3cret""#,
            "",
            false,
            vec![(LogLevel::Critical, format!("{field}: is a secret written in the configuration, which Envoy's /config_dump and the Istio WasmPlugin show to everyone who can read them; give a reference instead ({{\"env\": \"NAME\"}} or {{\"file\": \"/path\"}}), or set allow_insecure_inline_secrets: true"))],
        ),
        (
            r#""vm-env-s3cret""#,
            r#""allow_insecure_inline_secrets":true,"#,
            true,
            vec![(LogLevel::Warn, "fhir-smart-authz: `issuers[0].introspection.client_secret` is a secret written in the configuration (allow_insecure_inline_secrets): /config_dump shows it".to_string())],
        ),
    ];
    for (secret, extra, accepted, expected_logs) in rows {
        let config = introspection_plugin(secret, extra);
        let h = FakeHost::new(NOW_MS);
        h.state
            .borrow_mut()
            .env
            .insert("INTROSPECTION_SECRET".into(), VALUE.into());
        let mut root = Root::default();
        assert_eq!(
            root.configure(&h, Some(config.as_bytes()), &factory, AuditEncoding::Json),
            accepted,
            "{config}"
        );
        let logs: Vec<_> = h
            .state
            .borrow()
            .logs
            .iter()
            .filter(|(level, _)| *level != LogLevel::Info)
            .cloned()
            .collect();
        assert_eq!(logs, expected_logs, "{config}");
        for (_, line) in &h.state.borrow().logs {
            assert!(!line.contains(VALUE), "{line}");
        }
        let loaded = root.shared.as_ref().and_then(|s| {
            s.config.issuers[0]
                .introspection
                .as_ref()
                .and_then(|i| i.client_secret.value())
                .map(|v| v.expose().to_string())
        });
        assert_eq!(loaded.as_deref(), accepted.then_some(VALUE), "{config}");
    }
}

#[test]
fn root_shares_jwks_fetches_across_vms() {
    let factory = due_fetch_ports;
    let cfg = FETCHED_CFG;
    // VM A wins the lease and fetches.
    let a = FakeHost::new(NOW_MS);
    let mut root_a = Root::default();
    assert!(root_a.configure(&a, Some(cfg), &factory, AuditEncoding::Json));
    assert_eq!(
        a.state.borrow().calls.len(),
        0,
        "no calls during on_configure"
    );
    root_a.tick(&a);
    assert_eq!(a.state.borrow().calls.len(), 1);
    // VM B (same shared data) sees the lease and does not fetch.
    let b = FakeHost::new(NOW_MS);
    b.state.borrow_mut().shared = a.state.borrow().shared.clone();
    let mut root_b = Root::default();
    assert!(root_b.configure(&b, Some(cfg), &factory, AuditEncoding::Json));
    root_b.tick(&b);
    assert_eq!(b.state.borrow().calls.len(), 0);
    // A's fetch answers; the JWKS lands in shared data; B picks it up on tick.
    {
        let mut st = a.state.borrow_mut();
        st.call_response_headers = vec![(":status".into(), "200".into())];
        st.call_response_body = b"{\"keys\":[1]}".to_vec();
    }
    root_a.on_call_response(&a, 1, 12);
    assert_eq!(a.counter("fhir_smart_authz.jwks_fetch.success"), 1);
    b.state.borrow_mut().shared = a.state.borrow().shared.clone();
    root_b.tick(&b);
    // B's fake token port got the bytes (observable through a second tick: no refetch, no panic).
    let key = "fhir_smart_authz.jwks.0.https://as";
    let v = b.state.borrow().shared.get(key).cloned().unwrap().0;
    assert_eq!(&v[8..], b"{\"keys\":[1]}");
}

#[test]
fn refresh_picks_up_shared_key_sets_without_fetching() {
    // The native module's workers: another worker (the main thread) fetches;
    // `refresh` loads what it published and never dispatches a fetch itself,
    // even when one is due.
    let worker = FakeHost::new(NOW_MS);
    let mut root = Root::default();
    assert!(root.configure(
        &worker,
        Some(FETCHED_CFG),
        &due_fetch_ports,
        AuditEncoding::Json
    ));
    root.refresh(&worker);
    assert_eq!(worker.state.borrow().calls.len(), 0, "no fetch of its own");
    let seen = |root: &Root| {
        root.shared
            .as_ref()
            .unwrap()
            .jwks
            .seen
            .borrow()
            .get(&0)
            .copied()
    };
    assert_eq!(seen(&root), None);
    let config = root.shared.as_ref().unwrap().config.clone();
    fhir_smart_authz::jwks_sync::publish_jwks(&worker, &config, 0, b"{\"keys\":[1]}", NOW_MS - 5);
    root.refresh(&worker);
    assert_eq!(
        seen(&root),
        Some(NOW_MS - 5),
        "the published key set is loaded"
    );
    assert_eq!(worker.state.borrow().calls.len(), 0);
    // The full tick of the same root fetches what is due.
    root.tick(&worker);
    assert_eq!(worker.state.borrow().calls.len(), 1);
}
