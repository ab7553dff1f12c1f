//! The built `fhir-smart-authz` binary: check-config and decide.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(not(target_arch = "wasm32"))]

mod binary;

use binary::{run, run_bytes, run_env, WORKSPACE};
use serde_json::Value;
use std::io::Write;

/// `decide --config config` on `input`: exit 0, one JSON value per line.
fn decided(config: &str, input: &str) -> Vec<Value> {
    let (code, out, err) = run(&["decide", "--config", config], input);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An RS256 reference token (tests/fixtures/keys/generate.py) by case name.
fn reference_token(case: &str) -> String {
    let refs: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/keys/reference_tokens.json"
        ))
        .unwrap(),
    )
    .unwrap();
    refs.iter()
        .find(|r| r["alg"] == "RS256" && r["case"] == case)
        .and_then(|r| r["token"].as_str())
        .unwrap()
        .to_string()
}

#[test]
fn check_config() {
    for good in [
        "examples/configs/default.json",
        "examples/configs/strict.json",
    ] {
        assert_eq!(
            run(&["check-config", good], ""),
            (0, "ok\n".into(), String::new()),
            "{good}"
        );
    }
    let (code, out, err) = run(&["check-config", "examples/configs/bad_policy.json"], "");
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "error: invalid configuration at `policy.patient_scope_public_types[0]`: Observation is in the Patient compartment; patient/ scopes already reach the patient's own Observation resources, remove it\n"
    );
    let (code, _, err) = run(&["check-config", "examples/configs/missing.json"], "");
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: cannot read examples/configs/missing.json"),
        "{err}"
    );
    let (code, out, _) = run(&["--help"], "");
    assert_eq!(code, 0);
    assert!(out.contains("decide --config FILE"));
    assert_eq!(run(&["frobnicate"], "").0, 2);
}

/// `check-config` names the dotted path of a field serde refuses, at any depth.
#[test]
fn check_config_names_nested_fields() {
    let dir = std::env::temp_dir().join(format!("fhir-smart-authz-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, config, err) in [
        (
            "enum.json",
            r#"{"issuers":[{"issuer":"https://x","jwks_uri":"https://x/jwks"}],"fhir_base_url":"https://g/fhir","policy":{"patient_search":"narrowx"}}"#,
            "error: invalid configuration at `policy.patient_search`: unknown variant `narrowx`, expected `narrow` or `deny`; see the configuration reference (docs/configuration.md)\n",
        ),
        (
            "array.json",
            r#"{"issuers":[{"issuer":"https://x","jwks_uri":"https://x/jwks","algorithms":["RS256",256]}]}"#,
            "error: invalid configuration at `issuers[0].algorithms[1]`: invalid type: integer `256`, expected a string; see the configuration reference (docs/configuration.md)\n",
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, config).unwrap();
        let path = path.to_str().unwrap();
        assert_eq!(
            run(&["check-config", path], ""),
            (1, String::new(), err.to_string()),
            "{config}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn decide_json_lines() {
    let input = [
        r#"{"method":"GET","path":"/fhir/metadata"}"#,
        r#"{"method":"GET","path":"/fhir/Observation?patient=123","claims":{"scope":"patient/Observation.rs","patient":"123"}}"#,
        r#"this is not json"#,
        r#"{"method":"GET","path":"/fhir/Observation?patient=456","claims":{"scope":"patient/Observation.rs","patient":"123"}}"#,
        r#"{"method":"GET","path":"/fhir/Patient/123"}"#,
        r#"{"method":"GET","path":"/fhir/Observation?patient=123","claims":{"scope":"patient/Observation.rs bogus","patient":"123"}}"#,
        r#"{"method":"POST","path":"/fhir","headers":{"content-type":["application/fhir+json"]},"body":{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Patient/123"}},{"request":{"method":"DELETE","url":"Patient/123"}}]},"claims":{"scope":"user/*.rs"}}"#,
        r#"{"method":"GET","path":"/fhir/Patient/123","token":"eyJ..."}"#,
    ]
    .join("\n");
    let lines = decided("examples/configs/default.json", &input);
    assert_eq!(lines.len(), 8);
    let summary: Vec<(String, u64, String)> = lines
        .iter()
        .map(|v| {
            (
                v["decision"].as_str().unwrap().into(),
                v["status"].as_u64().unwrap(),
                v["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, u64, String)> = [
        ("allow", 200, "public_endpoint"),
        ("allow", 200, "allowed"),
        ("deny", 400, "invalid_request"),
        ("deny", 403, "patient_compartment_violation"),
        ("deny", 401, "missing_token"),
        ("allow", 200, "allowed"),
        ("deny", 403, "bundle_entry_denied"),
        ("deny", 401, "invalid_token"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), *b, c.to_string()))
    .collect();
    assert_eq!(summary, want);
    assert!(lines[2]["message"].as_str().unwrap().starts_with("line 3:"));
    assert_eq!(lines[1]["interaction"]["kind"], "search");
    assert_eq!(
        lines[3]["required_scopes"],
        serde_json::json!(["patient/Observation.s"])
    );
    assert!(lines[1].get("diagnostics").is_none());
    assert_eq!(lines[5]["diagnostics"].as_array().unwrap().len(), 1);
    assert_eq!(lines[6]["denied_entries"][0]["index"], 1);
    assert_eq!(
        lines[6]["required_scopes"],
        serde_json::json!(["user/Patient.d"])
    );
}

#[test]
fn explain_is_human_readable() {
    let input = r#"{"method":"GET","path":"/fhir/Observation?patient=456","claims":{"scope":"patient/Observation.rs","patient":"123"}}"#;
    let (code, out, _) = run(
        &["explain", "--config", "examples/configs/default.json"],
        input,
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("decision: DENY (HTTP 403, patient_compartment_violation)"),
        "{out}"
    );
    // Another patient's data: no scope would help, so none is suggested.
    assert!(!out.contains("would be allowed with"), "{out}");
    let input = r#"{"method":"GET","path":"/fhir/Observation?patient=123","claims":{"scope":"patient/Condition.rs","patient":"123"}}"#;
    let (_, out, _) = run(
        &["explain", "--config", "examples/configs/default.json"],
        input,
    );
    assert!(
        out.contains("would be allowed with: patient/Observation.s"),
        "{out}"
    );
}

/// A narrowed search: `decide` gives the request as the filter sends it.
#[test]
fn decide_and_explain_show_the_rewrite() {
    let input = r#"{"method":"GET","path":"/fhir/Observation?code=x","headers":{"prefer":"return=minimal, handling=lenient"},"claims":{"scope":"patient/Observation.rs","patient":"123"}}"#;
    let (code, out, _) = run(
        &["decide", "--config", "examples/configs/default.json"],
        input,
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(
        v["rewrite"],
        serde_json::json!({
            "path": "/fhir/Observation?patient=Patient%2F123&code=x",
            "headers": {"prefer": "return=minimal, handling=strict"},
            "added": ["patient"]
        })
    );
    let (code, out, _) = run(
        &["explain", "--config", "examples/configs/default.json"],
        input,
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("sent upstream as: /fhir/Observation?patient=Patient%2F123&code=x"),
        "{out}"
    );
    assert!(
        out.contains("with prefer: return=minimal, handling=strict"),
        "{out}"
    );
}

#[test]
fn decide_with_raw_tokens() {
    let token = reference_token;
    // The reference tokens carry `scope: patient/*.rs` and no patient claim.
    let input = [
        serde_json::json!({"method": "GET", "path": "/fhir/Observation?code=x", "token": token("valid")}),
        serde_json::json!({"method": "GET", "path": "/fhir/Observation?code=x", "token": token("tampered_signature")}),
        serde_json::json!({"method": "GET", "path": "/fhir/metadata", "token": token("valid")}),
        serde_json::json!({"method": "GET", "path": "/fhir/Patient/1", "token": token("valid"), "claims": {"scope": "user/*.rs"}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let (code, out, _) = run(
        &["decide", "--config", "examples/configs/cli_token.json"],
        &input,
    );
    assert_eq!(code, 0);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(u64, &str)> = lines
        .iter()
        .map(|v| (v["status"].as_u64().unwrap(), v["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (403, "no_patient_context"),
            (401, "invalid_token"),
            (200, "public_endpoint"),
            (400, "invalid_request")
        ]
    );
    assert_eq!(
        lines[0]["required_scopes"],
        serde_json::json!(["patient/Observation.s"])
    );
    assert_eq!(lines[1]["interaction"]["kind"], "search");
}

#[test]
fn token_inspect_shows_claims_and_verdict_never_the_signature() {
    let token = reference_token;
    let config = "examples/configs/cli_token.json";
    for (case, valid, reason) in [
        ("valid", true, "valid"),
        ("tampered_signature", false, "invalid_token"),
    ] {
        let t = token(case);
        // Token as an argument and on stdin give the same report.
        let (code, by_arg, _) = run(&["token", "inspect", "--config", config, &t], "");
        let (code2, by_stdin, _) = run(&["token", "inspect", "--config", config], &t);
        let exit = if valid { 0 } else { 1 };
        assert_eq!((code, code2), (exit, exit), "{case}");
        assert_eq!(by_arg, by_stdin, "{case}");
        let report: Value = serde_json::from_str(&by_arg).unwrap();
        assert_eq!(report["valid"], valid, "{case}");
        assert_eq!(report["reason"], reason, "{case}");
        assert_eq!(report["header"]["alg"], "RS256", "{case}");
        assert_eq!(
            report["claims"]["iss"], "https://issuer.example.org",
            "{case}"
        );
        let signature = t.rsplit('.').next().unwrap();
        assert!(!by_arg.contains(signature), "{case}: signature printed");
    }
    // Without a config no issuer is trusted: still readable, and says why.
    let (code, out, _) = run(&["token", "inspect", &token("valid")], "");
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["reason"], "invalid_token");
    assert_eq!(report["claims"]["sub"], "ref");
}

/// A line that is not UTF-8 gets an error line of its own; the lines after
/// it are still decided (`decide` and `explain`), and the exit status is 0.
#[test]
fn non_utf8_line_is_an_error_for_that_line_only() {
    let good = r#"{"method":"GET","path":"/fhir/Observation?patient=123","claims":{"scope":"patient/Observation.rs","patient":"123"}}"#;
    let mut input = Vec::new();
    input.extend_from_slice(good.as_bytes());
    input.extend_from_slice(b"\n{\"method\":\"GET\",\"path\":\"/fhir/Patient?name=\xff\xfe\"}\n");
    input.extend_from_slice(good.as_bytes());
    input.push(b'\n');
    let (code, out, err) = run_bytes(
        &["decide", "--config", "examples/configs/default.json"],
        &input,
    );
    assert_eq!((code, err.as_str()), (0, ""));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["reason"], "allowed");
    assert_eq!(lines[1]["reason"], "invalid_request");
    assert_eq!(lines[1]["status"], 400);
    let message = lines[1]["message"].as_str().unwrap();
    assert!(
        message.starts_with("line 2: not UTF-8 (invalid utf-8 sequence"),
        "{message}"
    );
    assert_eq!(lines[2]["reason"], "allowed");
    let (code, out, _) = run_bytes(
        &["explain", "--config", "examples/configs/default.json"],
        &input,
    );
    assert_eq!(code, 0);
    assert!(out.contains("line 2: not UTF-8"), "{out}");
    assert_eq!(out.matches("ALLOW").count(), 2, "{out}");
}

/// `examples/configs/cli_token.json` with some top-level fields replaced, as a
/// temporary file.
fn config_with(name: &str, patch: Value) -> std::path::PathBuf {
    let base: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{WORKSPACE}/examples/configs/cli_token.json")).unwrap(),
    )
    .unwrap();
    let mut cfg = base.as_object().unwrap().clone();
    for (k, v) in patch.as_object().unwrap() {
        cfg.insert(k.clone(), v.clone());
    }
    let path = std::env::temp_dir().join(format!(
        "fhir-smart-authz-cli-{}-{name}.json",
        std::process::id()
    ));
    std::fs::write(&path, Value::Object(cfg).to_string()).unwrap();
    path
}

/// (status, reason, interaction kind) per output line.
fn outcomes(out: &str) -> Vec<(u64, String, Option<String>)> {
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| {
            (
                v["status"].as_u64().unwrap(),
                v["reason"].as_str().unwrap().to_string(),
                v["interaction"]["kind"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// How `decide` takes a credential from its input line: a header name in any
/// case, a list of values, and the credential given twice. The request
/// rows (schemes, malformed and tampered tokens, `access_token`) are in the
/// decision corpus, `tests/corpus/default/tokens.jsonl` and
/// `tests/corpus/query-token/`, replayed in Envoy too.
#[test]
fn decide_reads_the_bearer_token_as_the_filter_does() {
    let token = reference_token;
    let bearer = |t: &str| format!("Bearer {t}");
    // (line, expected status, reason, interaction kind); the reference tokens
    // carry `scope: patient/*.rs` and no patient claim
    let rows: Vec<(Value, u64, &str, Option<&str>)> = vec![
        (
            serde_json::json!({"method": "GET", "path": "/fhir/Observation?code=x",
            "headers": {"Authorization": bearer(&token("valid"))}}),
            403,
            "no_patient_context",
            Some("search"),
        ),
        (
            serde_json::json!({"method": "GET", "path": "/fhir/Observation?code=x",
            "headers": {"authorization": [bearer(&token("valid")), bearer(&token("valid"))]}}),
            400,
            "multiple_credentials",
            None,
        ),
        (
            serde_json::json!({"method": "GET", "path": "/fhir/Observation?code=x",
            "headers": {"authorization": bearer(&token("valid"))}, "claims": {"scope": "user/*.rs"}}),
            400,
            "invalid_request",
            None,
        ),
        (
            serde_json::json!({"method": "GET", "path": "/fhir/Observation?code=x",
            "headers": {"authorization": bearer(&token("valid"))}, "token": token("valid")}),
            400,
            "invalid_request",
            None,
        ),
    ];
    let input: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
    let (code, out, _) = run(
        &[
            "decide",
            "--now",
            "1800000000",
            "--config",
            "examples/configs/cli_token.json",
        ],
        &input.join("\n"),
    );
    assert_eq!(code, 0);
    let want: Vec<(u64, String, Option<String>)> = rows
        .iter()
        .map(|r| (r.1, r.2.to_string(), r.3.map(str::to_string)))
        .collect();
    assert_eq!(outcomes(&out), want);
    assert!(out.contains("give the credential once"), "{out}");
}

#[test]
fn now_makes_token_checks_reproducible() {
    let line = serde_json::json!({"method": "GET", "path": "/fhir/Observation?code=x",
        "headers": {"authorization": format!("Bearer {}", reference_token("valid"))}})
    .to_string();
    let decide_at = |now: &str| {
        let (code, out, _) = run(
            &[
                "decide",
                "--config",
                "examples/configs/cli_token.json",
                "--now",
                now,
            ],
            &line,
        );
        assert_eq!(code, 0);
        outcomes(&out).remove(0)
    };
    // exp 4102444800, iat 1700000000, leeway 60 s
    assert_eq!(decide_at("4102444800").1, "no_patient_context");
    assert_eq!(decide_at("4102444861").1, "invalid_token");
    assert_eq!(decide_at("1699990000").1, "invalid_token");
    let (code, _, err) = run(
        &[
            "decide",
            "--config",
            "examples/configs/cli_token.json",
            "--now",
            "soon",
        ],
        "",
    );
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = run(
        &[
            "token",
            "inspect",
            "--now",
            "4102444861",
            "--config",
            "examples/configs/cli_token.json",
            &reference_token("valid"),
        ],
        "",
    );
    assert_eq!(code, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["reason"],
        "invalid_token"
    );
}

#[test]
fn fetched_and_introspected_issuers_answer_as_when_unreachable() {
    let fetched = config_with(
        "fetched",
        serde_json::json!({"issuers": [{"issuer": "https://issuer.example.org", "audiences": ["https://fhir.example.org/fhir"],
            "jwks_uri": "https://issuer.example.org/jwks", "jwks_cluster": "issuer"}]}),
    );
    let introspected = config_with(
        "introspected",
        serde_json::json!({"issuers": [{"issuer": "https://issuer.example.org", "audiences": ["https://fhir.example.org/fhir"],
            "introspection": {"cluster": "issuer", "path": "/introspect", "client_id": "gw", "client_secret": {"env": "INTROSPECTION_SECRET"}}}]}),
    );
    let line = |t: &str| {
        serde_json::json!({"method": "GET", "path": "/fhir/Patient/1", "headers": {"authorization": format!("Bearer {t}")}})
            .to_string()
    };
    let cases = [
        (
            &fetched,
            reference_token("valid"),
            "keys_unavailable",
            "uses jwks_uri",
        ),
        (
            &introspected,
            reference_token("valid"),
            "introspection_unavailable",
            "cannot introspect",
        ),
        (
            &introspected,
            "opaque-token-123".to_string(),
            "introspection_unavailable",
            "cannot introspect",
        ),
    ];
    for (cfg, token, reason, message) in cases {
        let (code, out, _) = run_env(
            &["decide", "--config", cfg.to_str().unwrap()],
            format!("{}\n{}", line(&token), line(&token)).as_bytes(),
            &[("INTROSPECTION_SECRET", "s")],
        );
        assert_eq!(code, 0);
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "the run goes on after such a line");
        assert_eq!(
            (lines[0]["status"].as_u64(), lines[0]["reason"].as_str()),
            (Some(401), Some(reason))
        );
        assert!(
            lines[0]["message"].as_str().unwrap().contains(message),
            "{out}"
        );
    }
}

#[test]
fn version_and_help_exit_0() {
    let (code, out, _) = run(&["--version"], "");
    assert_eq!(
        (code, out),
        (
            0,
            format!("fhir-smart-authz {}\n", env!("CARGO_PKG_VERSION"))
        )
    );
    for (args, starts) in [
        (vec!["--help"], "fhir-smart-authz: SMART on FHIR"),
        (
            vec!["check-config", "--help"],
            "fhir-smart-authz check-config",
        ),
        (
            vec!["check-config", "x.json", "-h"],
            "fhir-smart-authz check-config",
        ),
        (vec!["decide", "--help"], "fhir-smart-authz decide|explain"),
        (
            vec!["explain", "--config", "x", "--help"],
            "fhir-smart-authz decide|explain",
        ),
        (
            vec!["token", "inspect", "--help"],
            "fhir-smart-authz token inspect",
        ),
        (
            vec!["help", "check-config"],
            "fhir-smart-authz check-config",
        ),
    ] {
        let (code, out, err) = run(&args, "");
        assert_eq!((code, err.as_str()), (0, ""), "{args:?}");
        assert!(out.starts_with(starts), "{args:?}: {out}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["frobnicate"],
        vec!["check-config"],
        vec!["check-config", "a.json", "b.json"],
        vec!["check-config", "--now", "1", "a.json"],
        vec!["decide"],
        vec![
            "decide",
            "--config",
            "examples/configs/default.json",
            "--json",
        ],
        vec![
            "decide",
            "--config",
            "examples/configs/default.json",
            "--config",
            "x",
        ],
        vec!["token", "inspect", "--bogus"],
        vec!["token", "inspect", "a", "b"],
    ] {
        let (code, out, err) = run(&args, "");
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
}

#[test]
fn token_inspect_json_flag_is_one_line_and_bad_tokens_exit_1() {
    let (code, out, _) = run(&["token", "inspect", "--json", "not-a-token"], "");
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 1, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["valid"].as_bool(), report["reason"].as_str()),
        (Some(false), Some("invalid_token"))
    );
    let (code, out, _) = run(
        &[
            "token",
            "inspect",
            "--json",
            "--config",
            "examples/configs/cli_token.json",
            "--now",
            "4102444800",
            &reference_token("valid"),
        ],
        "",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 1);
}

fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "fhir-smart-authz-cli-{}-{name}",
        std::process::id()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn decide_expect_fails_the_run_on_a_changed_decision() {
    let allowed = r#"{"method":"GET","path":"/fhir/Observation?patient=123","claims":{"scope":"patient/Observation.rs","patient":"123"}"#;
    let other = r#"{"method":"GET","path":"/fhir/Observation?patient=456","claims":{"scope":"patient/Observation.rs","patient":"123"}"#;
    let cfg = "examples/configs/default.json";
    // (input, exit, stderr lines naming the difference)
    for (input, exit, diffs) in [
        (format!(r#"{allowed},"expect":"allow"}}"#), 0, 0),
        (format!(r#"{allowed},"expect":{{"status":200,"reason":"allowed"}}}}"#), 0, 0),
        (format!(r#"{other},"expect":"allow"}}"#), 4, 1),
        (format!("{other},\"expect\":{{\"status\":403,\"reason\":\"patient_compartment_violation\"}}}}\n{allowed},\"expect\":\"deny\"}}"), 4, 1),
    ] {
        for cmd in ["decide", "explain"] {
            let (code, out, err) = run(&[cmd, "--config", cfg], &input);
            assert_eq!(code, exit, "{cmd} {input}: {err}");
            assert!(!out.is_empty());
            let named = err.lines().filter(|l| l.starts_with("line ")).count();
            assert_eq!(named, diffs, "{err}");
        }
    }
    // --expect FILE: an earlier run's output is the expectation.
    let input = format!("{allowed}}}\n{other}}}");
    let (code, golden, _) = run(&["decide", "--config", cfg], &input);
    assert_eq!(code, 0);
    let file = write_temp("golden.jsonl", &golden);
    let expecting = |input: &str| {
        let (code, _, err) = run(
            &[
                "decide",
                "--config",
                cfg,
                "--expect",
                file.to_str().unwrap(),
            ],
            input,
        );
        (code, err)
    };
    assert_eq!(expecting(&input), (0, String::new()));
    let (code, err) = expecting(&format!("{other}}}\n{allowed}}}"));
    assert_eq!(code, 4);
    assert!(err.contains("line 1 (GET /fhir/Observation?patient=456): decision: expected \"allow\", got \"deny\""), "{err}");
    let (code, err) = expecting(allowed);
    assert_eq!(code, 4, "one line missing: {err}");
}

#[test]
fn check_config_warnings_strict_and_deployment_files() {
    let warned = write_temp(
        "warned.json",
        r#"{"fhir_base_url":"https://f/fhir","issuers":[{"issuer":"https://idp","audiences":["account"],"jwks_uri":"http://idp/jwks","jwks_cluster":"idp"}]}"#,
    );
    let (code, out, err) = run(&["check-config", warned.to_str().unwrap()], "");
    assert_eq!((code, out.as_str()), (3, "ok with 2 warnings\n"));
    let fields: Vec<&str> = err.lines().map(|l| l.split('`').nth(1).unwrap()).collect();
    assert_eq!(
        fields,
        ["issuers[0].jwks_uri", "issuers[0].audiences[0]"],
        "{err}"
    );
    let (code, _, _) = run(&["check-config", "--strict", warned.to_str().unwrap()], "");
    assert_eq!(code, 1);
    // Envoy bootstrap (YAML) and Istio WasmPlugin: every instance, by location.
    // The examples name the introspection secret by reference: given in the environment.
    let secret = [("INTROSPECTION_CLIENT_SECRET", "example-secret")];
    let check = |file: &str| run_env(&["check-config", file], b"", &secret);
    let (code, out, err) = check("envoy/envoy.yaml");
    assert_eq!(
        code, 3,
        "the compose rig's demo issuer is plain HTTP: {err}"
    );
    assert_eq!(out, "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[1]: ok with 2 warnings\n");
    let (code, out, err) = check("examples/istio/wasmplugin.yaml");
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "WasmPlugin fhir/fhir-smart-authz: ok\n", "")
    );
    let envoy = std::fs::read_to_string(format!("{WORKSPACE}/envoy/envoy.yaml")).unwrap();
    let broken = write_temp(
        "envoy-typo.yaml",
        &envoy.replace(
            "\"jwks_cluster\": \"issuer\"",
            "\"jwks_cluster\": \"isuer\"",
        ),
    );
    let (code, _, err) = check(broken.to_str().unwrap());
    assert_eq!(code, 1);
    assert!(err.contains("invalid configuration at `issuers[0].jwks_cluster`: names cluster \"isuer\", which the Envoy configuration does not define"), "{err}");
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let (code, out, _) = run(
        &[
            "check-config",
            "--print-effective",
            "examples/configs/default.json",
        ],
        "",
    );
    assert_eq!(code, 0);
    let effective: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(effective["fhir_base_url"], "https://ehr.example.org/fhir");
    assert_eq!(effective["audit"]["encoding"], "fields");
    assert_eq!(effective["policy"]["operations"][0]["name"], "$everything");
    let again = write_temp("effective.json", &out);
    let (code, out2, _) = run(
        &["check-config", "--print-effective", again.to_str().unwrap()],
        "",
    );
    assert_eq!(
        (code, out2),
        (0, out),
        "the effective configuration reads back the same"
    );
}

/// Serves `body` to every HTTP request on a local port (until the test ends).
fn serve(body: String) -> u16 {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok() && line != "\r\n" && !line.is_empty() {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn fetch_keys_verifies_tokens_of_jwks_uri_issuers() {
    let inline: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{WORKSPACE}/examples/configs/cli_token.json")).unwrap(),
    )
    .unwrap();
    let issuer = &inline["issuers"][0];
    let port = serve(issuer["jwks"].to_string());
    let mut fetched_issuer = issuer.clone();
    let obj = fetched_issuer.as_object_mut().unwrap();
    obj.remove("jwks");
    obj.insert(
        "jwks_uri".into(),
        format!("http://127.0.0.1:{port}/jwks").into(),
    );
    obj.insert("jwks_cluster".into(), "idp".into());
    let cfg = config_with(
        "fetch",
        serde_json::json!({"issuers": [fetched_issuer.clone()]}),
    );
    let line = serde_json::json!({"method": "GET", "path": "/fhir/Observation?code=x",
        "headers": {"authorization": format!("Bearer {}", reference_token("valid"))}})
    .to_string();
    let cfg = cfg.to_str().unwrap();
    let at = ["--now", "4102444800"];
    let (_, out, _) = run(&[&["decide", "--config", cfg][..], &at].concat(), &line);
    assert_eq!(outcomes(&out)[0].1, "keys_unavailable");
    let (code, out, err) = run(
        &[&["decide", "--fetch-keys", "--config", cfg][..], &at].concat(),
        &line,
    );
    assert_eq!(
        (code, outcomes(&out)[0].1.as_str()),
        (0, "no_patient_context"),
        "{err}"
    );
    let (code, _, _) = run(
        &[
            &["token", "inspect", "--fetch-keys", "--config", cfg][..],
            &at,
            &[&reference_token("valid")],
        ]
        .concat(),
        "",
    );
    assert_eq!(code, 0);
    let (code, _, err) = run(&["check-config", "--fetch-keys", cfg], "");
    assert_eq!(code, 3, "valid, with the plain-HTTP warning: {err}");
    // Nothing listens there: check-config names the field.
    fetched_issuer["jwks_uri"] = "http://127.0.0.1:9/jwks".into();
    let dead = config_with("dead", serde_json::json!({"issuers": [fetched_issuer]}));
    let (code, _, err) = run(
        &["check-config", "--fetch-keys", dead.to_str().unwrap()],
        "",
    );
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "invalid configuration at `issuers[0].jwks_uri`: cannot fetch http://127.0.0.1:9/jwks"
        ),
        "{err}"
    );
}

/// `decide` with a `"response"`: the filter's response check offline (the
/// label filter withholds an entry; a labelled read is refused; break-glass
/// relays it), and `explain` shows the label policy applied.
#[test]
fn decide_checks_a_response_and_explain_shows_the_label_policy() {
    let eth = r#"{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"ETH"}"#;
    let page = format!(
        r#"{{"resourceType":"Bundle","type":"searchset","total":2,"entry":[{{"resource":{{"resourceType":"Observation","id":"o1"}}}},{{"resource":{{"resourceType":"Observation","id":"o2","meta":{{"security":[{eth}]}}}}}}]}}"#
    );
    let labelled =
        format!(r#"{{"resourceType":"Observation","id":"o2","meta":{{"security":[{eth}]}}}}"#);
    let input = format!(
        "{}\n{}\n{}\n{}\n",
        format_args!(
            r#"{{"method":"GET","path":"/fhir/Observation?code=x","claims":{{"scope":"user/*.rs"}},"response":{page}}}"#
        ),
        format_args!(
            r#"{{"method":"GET","path":"/fhir/Observation/o2","claims":{{"scope":"user/*.rs"}},"response":{labelled}}}"#
        ),
        format_args!(
            r#"{{"method":"GET","path":"/fhir/Observation/o2","claims":{{"scope":"user/*.rs","purpose_of_use":"BTG"}},"response":{labelled}}}"#
        ),
        r#"{"method":"GET","path":"/fhir/Observation/o2","claims":{"scope":"user/*.rs"}}"#,
    );
    let lines = decided("examples/configs/labels.json", &input);
    let filtered = &lines[0]["response"];
    assert_eq!(
        (filtered["result"].as_str(), filtered["withheld"].as_u64()),
        (Some("filtered"), Some(1))
    );
    assert_eq!(
        filtered["body"]["entry"].as_array().unwrap().len(),
        2,
        "o1 and the outcome entry"
    );
    assert!(filtered["body"].get("total").is_none());
    assert_eq!(lines[0]["labels"]["withheld"], 1);
    let refused = &lines[1]["response"];
    assert_eq!(
        (refused["result"].as_str(), refused["status"].as_u64()),
        (Some("refused"), Some(403))
    );
    assert_eq!(
        refused["message"],
        "Observation/o2 carries a security label this token is not cleared for"
    );
    assert_eq!(lines[2]["response"]["result"], "relayed");
    assert_eq!(lines[2]["labels"]["break_glass"], true);
    assert!(
        lines[3].get("response").is_none(),
        "no response given, none checked"
    );
    let (_, text, _) = run(
        &["explain", "--config", "examples/configs/labels.json"],
        &input,
    );
    assert!(text.contains("  labels withheld from this token: http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R "), "{text}");
    assert!(
        text.contains("  response: filtered, 1 entries withheld; sent as "),
        "{text}"
    );
    assert!(
        text.contains("  response: refused (HTTP 403) — Observation/o2 carries a security label"),
        "{text}"
    );
    assert!(text.contains("  labels opened by break-glass: "), "{text}");
    assert!(
        text.contains("  purpose of use: http://terminology.hl7.org/CodeSystem/v3-ActReason|BTG"),
        "{text}"
    );
}

#[path = "../../core/tests/token_support/mod.rs"]
mod token_support;

/// A DPoP request decided offline as the filter decides it: allowed once,
/// its proof replayed on a later line refused, the token as a bearer token
/// refused; a certificate-bound token with its certificate (PEM or digest).
#[test]
fn decide_checks_dpop_proofs_and_client_certificates() {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    use serde_json::json;
    use sha2::{Digest, Sha256};
    use token_support::*;
    let path = format!("{WORKSPACE}/tests/cli-dpop-{}.json", std::process::id());
    let mut cfg: Value = serde_json::from_str(
        &config_json(json!({"dpop": {"mode": "accepted"}}), json!({})).to_string(),
    )
    .unwrap();
    cfg["fhir_base_path"] = json!("/fhir");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let jwk = public_jwk("p256");
    let jkt = jkt("p256");
    let mut c = claims();
    c["cnf"] = json!({"jkt": jkt});
    let token = token_with("ES256", &c);
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
    let proof = jws_raw(
        &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).to_string(),
        &json!({"jti": "cli-1", "htm": "GET", "htu": "https://fhir.example.org/fhir/Patient/123", "iat": NOW, "ath": ath}).to_string(),
        "ES256",
        "p256",
    );
    let dpop = json!({"method": "GET", "path": "/fhir/Patient/123", "headers": {"authorization": format!("DPoP {token}"), "dpop": proof}});
    let bearer = json!({"method": "GET", "path": "/fhir/Patient/123", "headers": {"authorization": format!("Bearer {token}"), "dpop": proof}});
    let der = b"a client certificate";
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        STANDARD.encode(der)
    );
    let hex: String = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut c = claims();
    c["cnf"] = json!({"x5t#S256": URL_SAFE_NO_PAD.encode(Sha256::digest(der))});
    let cert_bound_token = token_with("ES256", &c);
    let cert_bound = format!("Bearer {cert_bound_token}");
    let with_cert = |cert: Option<&str>| {
        let mut l = json!({"method": "GET", "path": "/fhir/Patient/123", "headers": {"authorization": cert_bound}});
        if let Some(cert) = cert {
            l["client_certificate"] = json!(cert);
        }
        l
    };
    // The same token given apart (`"token"`): the line's certificate is
    // still the connection's.
    let apart = |cert: Option<&str>| {
        let mut l =
            json!({"method": "GET", "path": "/fhir/Patient/123", "token": cert_bound_token});
        if let Some(cert) = cert {
            l["client_certificate"] = json!(cert);
        }
        l
    };
    let input = [
        dpop.clone(),
        dpop,
        bearer,
        with_cert(Some(&pem)),
        with_cert(Some(&hex)),
        with_cert(None),
        apart(Some(&hex)),
        apart(None),
    ]
    .iter()
    .map(|l| l.to_string())
    .collect::<Vec<_>>()
    .join("\n");
    let (code, out, err) = run(
        &["decide", "--config", &path, "--now", &NOW.to_string()],
        &input,
    );
    std::fs::remove_file(&path).unwrap();
    assert_eq!(code, 0, "{err}");
    let got: Vec<(u64, String)> = outcomes(&out).into_iter().map(|(s, r, _)| (s, r)).collect();
    assert_eq!(
        got,
        vec![
            (200, "allowed".into()),
            (401, "dpop_proof_replayed".into()),
            (401, "token_binding_mismatch".into()),
            (200, "allowed".into()),
            (200, "allowed".into()),
            (401, "token_binding_mismatch".into()),
            (200, "allowed".into()),
            (401, "token_binding_mismatch".into()),
        ]
    );
    // token inspect names the binding.
    let (_, out, _) = run(&["token", "inspect", &token], "");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["binding"], "dpop");
    assert_eq!(v["cnf"]["jkt"], json!(jkt));
}

/// `check-config` (and every command) reads secret references from its own
/// environment and files; a secret written in the configuration is refused
/// without the opt-in and warned about with it; no output holds the value.
#[test]
fn check_config_reads_secrets_from_the_environment_and_files() {
    const VALUE: &str = "cli-s3cret";
    let secret_file = std::env::temp_dir().join(format!(
        "fhir-smart-authz-cli-{}-secret",
        std::process::id()
    ));
    std::fs::write(&secret_file, format!("{VALUE}\n")).unwrap();
    let file_ref = serde_json::json!({"file": secret_file.to_str().unwrap()});
    let field = "`issuers[0].introspection.client_secret`";
    let not_set = "the environment variable is not set (the .wasm in Envoy: vm_config.environment_variables.host_env_keys; Istio: WasmPlugin vmConfig.env with valueFrom: HOST; the native module: Envoy's own environment; CLI: its own environment)";
    let inline_refused = format!("error: invalid configuration at {field}: is a secret written in the configuration, which Envoy's /config_dump and the Istio WasmPlugin show to everyone who can read them; give a reference instead ({{\"env\": \"NAME\"}} or {{\"file\": \"/path\"}}), or set allow_insecure_inline_secrets: true\n");
    let inline_warning = format!("warning: at {field}: is a secret written in the configuration (allow_insecure_inline_secrets: true), which Envoy's /config_dump and the Istio WasmPlugin show; give a reference such as {{\"env\": \"NAME\"}} instead (docs/secrets.md)\n");
    // (client_secret, allow_insecure_inline_secrets, exit code, stdout, stderr)
    let rows: Vec<(Value, Option<bool>, i32, &str, String)> = vec![
        (serde_json::json!({"env": "INTROSPECTION_SECRET"}), None, 0, "ok\n", String::new()),
        (file_ref, None, 0, "ok\n", String::new()),
        (
            serde_json::json!({"env": "MISSING_SECRET"}),
            None,
            1,
            "",
            format!("error: invalid configuration at {field}: {{\"env\": \"MISSING_SECRET\"}}: {not_set}\n"),
        ),
        (
            serde_json::json!({"file": "/nonexistent/secret"}),
            None,
            1,
            "",
            format!("error: invalid configuration at {field}: {{\"file\": \"/nonexistent/secret\"}}: the file cannot be read: No such file or directory (os error 2)\n"),
        ),
        (serde_json::json!(VALUE), None, 1, "", inline_refused),
        (serde_json::json!(VALUE), Some(true), 3, "ok with 1 warning\n", inline_warning),
    ];
    for (i, (secret, allow, code, out, err)) in rows.into_iter().enumerate() {
        let mut patch = serde_json::json!({"issuers": [{"issuer": "https://issuer.example.org",
            "audiences": ["https://fhir.example.org/fhir"],
            "introspection": {"cluster": "issuer", "path": "/introspect", "client_id": "gw", "client_secret": secret}}]});
        if let Some(allow) = allow {
            patch["allow_insecure_inline_secrets"] = Value::Bool(allow);
        }
        let cfg = config_with(&format!("secret-{i}"), patch);
        let got = run_env(
            &["check-config", cfg.to_str().unwrap()],
            b"",
            &[("INTROSPECTION_SECRET", VALUE)],
        );
        assert_eq!(got, (code, out.to_string(), err), "row {i}");
        assert!(!got.1.contains(VALUE) && !got.2.contains(VALUE), "row {i}");
    }
    std::fs::remove_file(&secret_file).unwrap();
}
