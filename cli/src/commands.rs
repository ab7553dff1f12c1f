//! The CLI: `check-config`, `decide`, `explain`, `token inspect`. Native only (bin crate).

use crate::response::{check_line_response, explain_labels, explain_response};
use crate::secrets::ProcessSecrets;
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, Reason};
use fhir_smart_authz_core::engine;
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::token::binding::certificate::{hex_thumbprint, pem_sha256_hex};
use fhir_smart_authz_core::token::binding::{ConnectionFacts, MemoryReplayStore};
use fhir_smart_authz_core::token::extract_bearer;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};

const HELP: &str =
    "fhir-smart-authz: SMART on FHIR authorization decisions (the engine inside the Envoy filter)

USAGE:
    fhir-smart-authz check-config FILE
        Validate a plugin configuration (JSON). Prints `ok` (exit 0) or
        `error: invalid configuration at `field`: message` (exit 1); a secret
        written in the configuration adds a `warning:` line on stderr.
    fhir-smart-authz decide --config FILE [--now SECONDS]
        Read requests as JSON Lines on stdin, write one JSON decision per line.
    fhir-smart-authz explain --config FILE [--now SECONDS]
        Same input; prints a human-readable explanation per request.
    fhir-smart-authz token inspect [--config FILE] [--now SECONDS] [TOKEN]
        Show a token's header and claims (never its signature) and whether the
        config's inline keys accept it, and if not, why. TOKEN is read from
        stdin when omitted (keeps it out of shell history).
    fhir-smart-authz --help

    --now SECONDS: verify tokens at this Unix time instead of the clock's
    (reproducible runs of tokens that expire).

    Secret references in the configuration ({\"env\": \"NAME\"},
    {\"file\": \"/path\"}) are read from this process's environment and
    files: set the variable when you run a command, e.g.
    INTROSPECTION_CLIENT_SECRET=... fhir-smart-authz check-config FILE

INPUT LINE:
    {\"method\":\"GET\",\"path\":\"/fhir/Observation?patient=123\",
     \"headers\":{\"name\":\"value\" | [\"v1\",\"v2\"]},      (optional)
     \"body\": JSON value or string,                     (optional)
     \"claims\":{\"scope\":\"patient/*.rs\",\"patient\":\"123\"},  (optional, already verified)
     \"token\":\"...\",       (optional, raw JWT, verified against issuers[].jwks)
     \"client_certificate\":\"-----BEGIN CERTIFICATE-----...\" or \"<sha256 hex>\",
                                                   (optional: the TLS client certificate)
     \"source_address\":\"10.0.0.5:4000\",            (optional: the hop it came from)
     \"response\": JSON}    (optional, the FHIR server's 200 answer: the output
                          line gains \"response\", the filter's check of it)
    A DPoP request carries its token as \"authorization\": \"DPoP ...\" and its
    proof as \"dpop\" in \"headers\"; a proof replayed within one run is
    refused, as the filter refuses it across its workers.
    A bearer token in the request itself (\"headers\": {\"authorization\":
    \"Bearer ...\"}, or access_token with token.allow_query_parameter) is taken
    exactly as the filter takes it and verified against issuers[].jwks.
    Give the credential once: \"claims\"/\"token\" together with a token in the
    request is an error line. No credential = a request without a token.
";

/// Exit codes: 0 ok, 1 invalid configuration, 2 usage error.
pub fn run(args: &[String], input: &mut dyn BufRead, out: &mut dyn Write) -> i32 {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    match argv.as_slice() {
        [] | ["--help"] | ["-h"] | ["help"] => {
            let _ = write!(out, "{HELP}");
            0
        }
        ["check-config", file] => match load(file) {
            Ok(config) => {
                for field in &config.inline_secrets {
                    eprintln!("warning: `{field}` is a secret written in the configuration (allow_insecure_inline_secrets: true), which Envoy's /config_dump and the Istio WasmPlugin show; give a reference such as {{\"env\": \"NAME\"}} instead");
                }
                let _ = writeln!(out, "ok");
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        [cmd @ ("decide" | "explain"), rest @ ..] => {
            let options = match Options::parse(rest) {
                Ok(Options {
                    config: Some(file),
                    now,
                    rest: [],
                }) => (file, now),
                Ok(_) | Err(_) => return usage(args),
            };
            let config = match load(options.0) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 1;
                }
            };
            let now = options.1.unwrap_or_else(unix_now);
            process(&config, *cmd == "explain", now, input, out);
            0
        }
        ["token", "inspect", rest @ ..] => token_inspect(args, rest, input, out),
        _ => usage(args),
    }
}

fn usage(args: &[String]) -> i32 {
    eprintln!("error: unrecognised arguments {:?}\n\n{HELP}", args);
    2
}

/// `--config FILE`, `--now SECONDS` in any order, then the rest.
struct Options<'a> {
    config: Option<&'a str>,
    now: Option<u64>,
    rest: &'a [&'a str],
}

impl<'a> Options<'a> {
    fn parse(mut args: &'a [&'a str]) -> Result<Options<'a>, ()> {
        let mut o = Options {
            config: None,
            now: None,
            rest: &[],
        };
        loop {
            match args {
                ["--config", file, more @ ..] if o.config.is_none() => {
                    o.config = Some(file);
                    args = more;
                }
                ["--now", secs, more @ ..] if o.now.is_none() => {
                    o.now = Some(secs.parse().map_err(|_| ())?);
                    args = more;
                }
                rest => {
                    o.rest = rest;
                    return Ok(o);
                }
            }
        }
    }
}

fn load(file: &str) -> Result<Config, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    Config::from_json_with_secrets(&bytes, &ProcessSecrets).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputLine {
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, HeaderValue>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    claims: Option<Value>,
    #[serde(default)]
    token: Option<String>,
    /// The FHIR server's 200 answer, to test the response check offline.
    #[serde(default)]
    response: Option<Value>,
    #[serde(default)]
    client_certificate: Option<String>,
    #[serde(default)]
    source_address: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum HeaderValue {
    One(String),
    Many(Vec<String>),
}

fn process(config: &Config, explain: bool, now: u64, input: &mut dyn BufRead, out: &mut dyn Write) {
    let mut raw = Vec::new();
    let mut n = 0usize;
    // DPoP proofs are accepted once per run, as once per window by the filter.
    let mut replay = MemoryReplayStore::default();
    loop {
        raw.clear();
        match input.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: reading stdin: {e}");
                break;
            }
        }
        n += 1;
        // A line that is not UTF-8 is an error for that request only.
        let (label, d, response) = match std::str::from_utf8(&raw) {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => decide_line(config, line.trim(), n, now, &mut replay),
            Err(e) => (
                format!("line {n}"),
                Decision::deny(
                    Reason::InvalidRequest,
                    format!(
                        "line {n}: not UTF-8 ({e}); each line must be a UTF-8 JSON request object"
                    ),
                ),
                None,
            ),
        };
        let text = if explain {
            let mut t = explain_text(n, &label, &d);
            if let Some(r) = &response {
                t.push_str(&explain_response(r));
            }
            t
        } else {
            // With a response check, its member is added (the keys then sorted).
            let printed = match response {
                None => serde_json::to_string(&d),
                Some(r) => serde_json::to_value(&d).map(|mut v| {
                    if let Some(o) = v.as_object_mut() {
                        o.insert("response".into(), r);
                    }
                    v.to_string()
                }),
            };
            printed.unwrap_or_else(|e| {
                format!("{{\"decision\":\"deny\",\"status\":500,\"reason\":\"invalid_request\",\"message\":\"cannot serialize decision: {e}\"}}")
            })
        };
        if writeln!(out, "{text}").is_err() {
            break;
        }
    }
}

/// One input line's decision, and with a `"response"` the response check
/// (the output line's `response`).
fn decide_line(
    config: &Config,
    line: &str,
    n: usize,
    now: u64,
    replay: &mut MemoryReplayStore,
) -> (String, Decision, Option<Value>) {
    let parsed: InputLine = match serde_json::from_str(line) {
        Ok(p) => p,
        Err(e) => {
            return (
                format!("line {n}"),
                Decision::deny(
                    Reason::InvalidRequest,
                    format!("line {n}: not a request object ({e}); expected {{\"method\",\"path\",\"headers\"?,\"body\"?,\"claims\"?,\"token\"?,\"response\"?}}"),
                ),
                None,
            )
        }
    };
    let label = format!("{} {}", parsed.method, parsed.path);
    let mut headers = Vec::new();
    for (name, v) in &parsed.headers {
        match v {
            HeaderValue::One(s) => headers.push((name.to_ascii_lowercase(), s.clone())),
            HeaderValue::Many(vs) => {
                headers.extend(vs.iter().map(|s| (name.to_ascii_lowercase(), s.clone())))
            }
        }
    }
    let body: Option<Vec<u8>> = match &parsed.body {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone().into_bytes()),
        Some(v) => Some(v.to_string().into_bytes()),
    };
    let req = RequestParts {
        method: &parsed.method,
        path: &parsed.path,
        headers: headers.into(),
        body: body.as_deref(),
    };
    let refuse = |why: &str| {
        let d = Decision::deny(Reason::InvalidRequest, format!("line {n}: {why}"));
        (label.clone(), d, None)
    };
    let digest = match parsed.client_certificate.as_deref().map(str::trim) {
        None => None,
        Some(c) if c.starts_with("-----BEGIN") => match pem_sha256_hex(c) {
            Some(hex) => Some(hex),
            None => return refuse("\"client_certificate\" is not a PEM certificate"),
        },
        Some(c) if hex_thumbprint(c).is_some() => Some(c.to_string()),
        Some(_) => {
            return refuse("\"client_certificate\" must be a PEM certificate or its SHA-256 in hex")
        }
    };
    let connection = ConnectionFacts {
        peer_certificate_sha256_hex: digest.as_deref(),
        peer_address: parsed.source_address.as_deref(),
    };
    let in_request = !matches!(extract_bearer(&req, &config.token), Ok(None));
    let mut d = match (&parsed.claims, &parsed.token) {
        (Some(_), Some(_)) => return refuse("give either \"claims\" or \"token\", not both"),
        (Some(_), None) | (None, Some(_)) if in_request => {
            return refuse("the request carries a bearer token (Authorization header or access_token) and the line gives \"claims\"/\"token\" too; give the credential once")
        }
        (Some(c), None) => engine::decide_claims(config, &req, c, connection, now, replay),
        (None, Some(t)) => engine::decide_with_raw_token(config, &req, t, now),
        (None, None) => engine::decide_offline_with(config, &req, connection, now, replay),
    };
    let response = parsed
        .response
        .as_ref()
        .map(|r| check_line_response(config, &mut d, r));
    (label, d, response)
}

/// `token inspect [--config FILE] [--now SECONDS] [TOKEN]`. Without a
/// config, the token is checked against no issuer (it shows why: unknown
/// issuer), which still lets a person read its header and claims.
fn token_inspect(
    args: &[String],
    rest: &[&str],
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> i32 {
    let Ok(options) = Options::parse(rest) else {
        return usage(args);
    };
    let loaded = match options.config {
        Some(file) => load(file),
        None => Config::default_config().map_err(|e| e.to_string()),
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let token = match options.rest {
        [t] => t.to_string(),
        [] => {
            let mut line = String::new();
            if input.read_line(&mut line).is_err() {
                eprintln!("error: could not read the token from stdin");
                return 2;
            }
            line.trim().to_string()
        }
        _ => {
            eprintln!("error: token inspect takes one token\n\n{HELP}");
            return 2;
        }
    };
    let now = options.now.unwrap_or_else(unix_now);
    let report = fhir_smart_authz_core::token::offline::inspect(config.trust(), &token, now);
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    0
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn explain_text(n: usize, label: &str, d: &Decision) -> String {
    let mut s = format!("#{n} {label}\n");
    let verdict = if d.is_allow() { "ALLOW" } else { "DENY" };
    s.push_str(&format!(
        "  decision: {verdict} (HTTP {}, {})\n",
        d.status,
        d.reason.as_str()
    ));
    if let Some(it) = &d.interaction {
        let mut what = serde_json::to_value(it.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        what.push_str(&format!(
            " at {} level",
            format!("{:?}", it.level).to_lowercase()
        ));
        if let Some(t) = &it.resource_type {
            what.push_str(&format!(" on {t}"));
        }
        if let Some(id) = &it.id {
            what.push_str(&format!("/{id}"));
        }
        if let Some(op) = &it.operation {
            what.push_str(&format!(" operation {op}"));
        }
        if let Some(c) = &it.compartment {
            what.push_str(&format!(" in compartment {}/{}", c.resource_type, c.id));
        }
        s.push_str(&format!("  interaction: {what}\n"));
    }
    s.push_str(&format!("  why: {}\n", d.message));
    if !d.required_scopes.is_empty() {
        let label = if d.is_allow() {
            "scopes used"
        } else {
            "would be allowed with"
        };
        s.push_str(&format!("  {label}: {}\n", d.required_scopes.join(" ")));
    }
    if let Some(rw) = &d.rewrite {
        s.push_str(&format!("  sent upstream as: {}\n", rw.path));
        for (name, value) in &rw.headers {
            s.push_str(&format!("    with {name}: {value}\n"));
        }
    }
    for o in &d.obligations {
        s.push_str(&format!(
            "  then: {}\n",
            serde_json::to_string(o).unwrap_or_default()
        ));
    }
    if let Some(b) = &d.bulk {
        s.push_str(&format!(
            "  then: Bulk Data {} decided by the filter's job registry (not offline)\n",
            b.action.as_str()
        ));
    }
    for e in &d.denied_entries {
        s.push_str(&format!(
            "  entry #{}: {} — {}\n",
            e.index,
            e.reason.as_str(),
            e.message
        ));
    }
    if let Some(l) = &d.labels {
        s.push_str(&explain_labels(l));
    }
    for g in &d.diagnostics {
        s.push_str(&format!("  note: {g}\n"));
    }
    s
}
