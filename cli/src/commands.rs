//! The CLI: `check-config`, `decide`, `explain`, `token inspect`. Native only (bin crate).

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, Reason};
use fhir_smart_authz_core::engine;
use fhir_smart_authz_core::fhir::RequestParts;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};

const HELP: &str =
    "fhir-smart-authz: SMART on FHIR authorization decisions (the engine inside the Envoy filter)

USAGE:
    fhir-smart-authz check-config FILE
        Validate a plugin configuration (JSON). Prints `ok` (exit 0) or
        `error: invalid configuration at `field`: message` (exit 1).
    fhir-smart-authz decide --config FILE
        Read requests as JSON Lines on stdin, write one JSON decision per line.
    fhir-smart-authz explain --config FILE
        Same input; prints a human-readable explanation per request.
    fhir-smart-authz token inspect [--config FILE] [TOKEN]
        Show a token's header and claims (never its signature) and whether the
        config's inline keys accept it, and if not, why. TOKEN is read from
        stdin when omitted (keeps it out of shell history).
    fhir-smart-authz --help

INPUT LINE:
    {\"method\":\"GET\",\"path\":\"/fhir/Observation?patient=123\",
     \"headers\":{\"name\":\"value\" | [\"v1\",\"v2\"]},      (optional)
     \"body\": JSON value or string,                     (optional)
     \"claims\":{\"scope\":\"patient/*.rs\",\"patient\":\"123\"},  (optional, already verified)
     \"token\":\"...\"}       (optional, raw JWT, verified against issuers[].jwks)
    No claims and no token = a request without a token.
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
            Ok(_) => {
                let _ = writeln!(out, "ok");
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        [cmd @ ("decide" | "explain"), "--config", file] => {
            let config = match load(file) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 1;
                }
            };
            process(&config, *cmd == "explain", input, out);
            0
        }
        ["token", "inspect", rest @ ..] => token_inspect(rest, input, out),
        _ => {
            eprintln!("error: unrecognised arguments {:?}\n\n{HELP}", args);
            2
        }
    }
}

fn load(file: &str) -> Result<Config, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    Config::from_json(&bytes).map_err(|e| e.to_string())
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
}

#[derive(Deserialize)]
#[serde(untagged)]
enum HeaderValue {
    One(String),
    Many(Vec<String>),
}

fn process(config: &Config, explain: bool, input: &mut dyn BufRead, out: &mut dyn Write) {
    let mut line = String::new();
    let mut n = 0usize;
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: reading stdin: {e}");
                break;
            }
        }
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        let (label, d) = decide_line(config, line.trim(), n);
        let text = if explain {
            explain_text(n, &label, &d)
        } else {
            serde_json::to_string(&d).unwrap_or_else(|e| {
                format!("{{\"decision\":\"deny\",\"status\":500,\"reason\":\"invalid_request\",\"message\":\"cannot serialize decision: {e}\"}}")
            })
        };
        if writeln!(out, "{text}").is_err() {
            break;
        }
    }
}

fn decide_line(config: &Config, line: &str, n: usize) -> (String, Decision) {
    let parsed: InputLine = match serde_json::from_str(line) {
        Ok(p) => p,
        Err(e) => {
            return (
                format!("line {n}"),
                Decision::deny(
                    Reason::InvalidRequest,
                    format!("line {n}: not a request object ({e}); expected {{\"method\",\"path\",\"headers\"?,\"body\"?,\"claims\"?,\"token\"?}}"),
                ),
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
        headers,
        body: body.as_deref(),
    };
    if parsed.claims.is_some() && parsed.token.is_some() {
        return (
            label,
            Decision::deny(
                Reason::InvalidRequest,
                format!("line {n}: give either \"claims\" or \"token\", not both"),
            ),
        );
    }
    let claims = match (&parsed.claims, &parsed.token) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(t)) => match verify_token(config, t) {
            Ok(c) => Some(c),
            Err(d) => {
                // Name the interaction too when the request classifies.
                let it = engine::decide(config, &req, None).interaction;
                return (
                    label,
                    match it {
                        Some(it) => d.with_interaction(it),
                        None => d,
                    },
                );
            }
        },
        (None, None) => None,
    };
    (label, engine::decide(config, &req, claims.as_ref()))
}

/// `token inspect [--config FILE] [TOKEN]`. Without a config, the token is
/// checked against no issuer (it shows why: unknown issuer), which still lets
/// a person read its header and claims.
fn token_inspect(args: &[&str], input: &mut dyn BufRead, out: &mut dyn Write) -> i32 {
    let (config, token_arg) = match args {
        ["--config", file, rest @ ..] => match load(file) {
            Ok(c) => (c, rest),
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        },
        rest => match Config::default_config() {
            Ok(c) => (c, rest),
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        },
    };
    let token = match token_arg {
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
    let report = fhir_smart_authz_core::token::offline::inspect(config.trust(), &token, unix_now());
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

/// `"token"` input: verified against the issuers' inline JWKS (the CLI
/// cannot fetch keys) at the current time.
fn verify_token(config: &Config, token: &str) -> Result<Value, Decision> {
    fhir_smart_authz_core::token::offline::verify_claims(config.trust(), token, unix_now())
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
    for e in &d.denied_entries {
        s.push_str(&format!(
            "  entry #{}: {} — {}\n",
            e.index,
            e.reason.as_str(),
            e.message
        ));
    }
    for g in &d.diagnostics {
        s.push_str(&format!("  note: {g}\n"));
    }
    s
}
