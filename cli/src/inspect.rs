//! `token inspect`: a token's header and claims (never its signature) and
//! whether the configuration's keys accept it.

use crate::commands::{exit, fail, load_for_decisions, unix_now, usage, Options};
use fhir_smart_authz_core::config::Config;
use std::io::{BufRead, Write};

/// Without `--config` no issuer is trusted (the report says so), which still
/// lets a person read the header and claims. Exit 0 only for an accepted token.
pub fn run(options: &Options<'_>, input: &mut dyn BufRead, out: &mut dyn Write, help: &str) -> i32 {
    let loaded = match options.config {
        Some(file) => load_for_decisions(file, options.fetch_keys),
        None => Config::default_config().map_err(|e| e.to_string()),
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let token = match options.positional.as_slice() {
        [t] => t.to_string(),
        [] => {
            let mut line = String::new();
            if input.read_line(&mut line).is_err() {
                return usage("could not read the token from stdin", help);
            }
            line.trim().to_string()
        }
        _ => return usage("token inspect takes one token", help),
    };
    if token.is_empty() {
        return usage("no token: give it as the argument or on stdin", help);
    }
    let now = options.now.unwrap_or_else(unix_now);
    let report = fhir_smart_authz_core::token::offline::inspect(config.trust(), &token, now);
    let text = if options.json {
        serde_json::to_string(&report)
    } else {
        serde_json::to_string_pretty(&report)
    };
    let _ = writeln!(out, "{}", text.unwrap_or_default());
    if report.get("valid") == Some(&serde_json::Value::Bool(true)) {
        exit::OK
    } else {
        exit::INVALID
    }
}
