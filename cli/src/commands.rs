//! The CLI: `check-config`, `decide`, `explain`, `token inspect`; arguments,
//! help and exit codes. Native only (bin crate); each command is a module.

use crate::secrets::ProcessSecrets;
use crate::{check, decide, inspect};
use fhir_smart_authz_core::config::Config;
use std::io::{BufRead, Write};

/// Exit codes (docs/cli.md): the same for every command.
pub mod exit {
    /// Done; the configuration is valid, the token accepted, every decision as expected.
    pub const OK: i32 = 0;
    /// Invalid configuration (or, with `--strict`, one with warnings); a token
    /// `token inspect` would not accept; a file that cannot be read.
    pub const INVALID: i32 = 1;
    /// Usage error: unknown command or option, missing argument.
    pub const USAGE: i32 = 2;
    /// `check-config`: valid, with warnings.
    pub const WARNINGS: i32 = 3;
    /// `decide`/`explain`: a decision differed from its `expect`.
    pub const CHANGED: i32 = 4;
}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const HELP: &str =
    "fhir-smart-authz: SMART on FHIR authorization decisions (the engine inside the Envoy filter)

USAGE:
    fhir-smart-authz check-config [--strict] [--print-effective] [--fetch-keys] FILE
    fhir-smart-authz decide --config FILE [--now SECONDS] [--expect FILE] [--fetch-keys]
    fhir-smart-authz explain --config FILE [--now SECONDS] [--expect FILE] [--fetch-keys]
    fhir-smart-authz token inspect [--config FILE] [--now SECONDS] [--json] [--fetch-keys] [TOKEN]
    fhir-smart-authz --version
    fhir-smart-authz COMMAND --help     (the command's own help)

EXIT CODES:
    0 ok   1 invalid (configuration, token, unreadable file; warnings with --strict)
    2 usage error   3 check-config: valid with warnings   4 decide/explain: a decision
    differed from its expectation

    Secret references in the configuration ({\"env\": \"NAME\"},
    {\"file\": \"/path\"}) are read from this process's environment and
    files: set the variable when you run a command, e.g.
    INTROSPECTION_CLIENT_SECRET=... fhir-smart-authz check-config FILE
";

const CHECK_HELP: &str =
    "fhir-smart-authz check-config [--strict] [--print-effective] [--fetch-keys] FILE

Validate the plugin configuration in FILE:
  - bare plugin configuration (JSON, or YAML);
  - an Envoy bootstrap (YAML or JSON): every instance of the filter in it, plus
    the deployment checks: every cluster the configuration calls exists, has TLS
    when its URL is https, and a route sends the FHIR base path to the filter;
  - an Istio WasmPlugin (YAML; other documents in the file are skipped): its
    pluginConfig, plus Istio cluster-name checks.
Prints `ok` (one line per instance, named by its location, for Envoy/Istio
files) on stdout; errors and warnings on stderr:
  error: invalid configuration at `field`: message
  warning: at `field`: what is wrong; the fix

  --strict           warnings are errors (exit 1 instead of 3)
  --print-effective  print each configuration with every default filled in (JSON)
  --fetch-keys       fetch every issuers[].jwks_uri now (HTTP(S) from this
                     machine) and check it serves usable signing keys

Exit: 0 ok, 1 invalid, 2 usage, 3 valid with warnings.
";

const DECIDE_HELP: &str =
    "fhir-smart-authz decide|explain --config FILE [--now SECONDS] [--expect FILE] [--fetch-keys]

Read requests as JSON Lines on stdin; `decide` writes one JSON decision per
line, `explain` the same for a person.

INPUT LINE:
    {\"id\":\"a-name\",                 (optional: names the line in differences)
     \"method\":\"GET\",\"path\":\"/fhir/Observation?patient=123\",
     \"headers\":{\"name\":\"value\" | [\"v1\",\"v2\"]},      (optional)
     \"body\": JSON value or string,                     (optional)
     \"claims\":{\"scope\":\"patient/*.rs\",\"patient\":\"123\"},  (optional, already verified)
     \"token\":\"...\",       (optional, raw JWT, verified against issuers[].jwks)
     \"client_certificate\":\"-----BEGIN CERTIFICATE-----...\" or \"<sha256 hex>\",
                                                   (optional: the TLS client certificate)
     \"source_address\":\"10.0.0.5:4000\",            (optional: the hop it came from)
     \"response\": JSON,     (optional, the FHIR server's 200 answer: the output
                           line gains \"response\", the filter's check of it)
     \"expect\": \"allow\" | {\"status\":403,\"reason\":\"...\"}}   (optional)
    A DPoP request carries its token as \"authorization\": \"DPoP ...\" and its
    proof as \"dpop\" in \"headers\"; a proof replayed within one run is
    refused, as the filter refuses it across its workers.
    A bearer token in the request itself (\"headers\": {\"authorization\":
    \"Bearer ...\"}, or access_token with token.allow_query_parameter) is taken
    exactly as the filter takes it and verified against issuers[].jwks.
    Give the credential once: \"claims\"/\"token\" together with a token in the
    request is an error line. No credential = a request without a token.

  --now SECONDS   verify tokens at this Unix time instead of the clock's
  --expect FILE   JSON Lines of expected decisions (e.g. an earlier `decide`
                  output), one per input line; each member given must equal the
                  decision's (like a line's own \"expect\")
  --fetch-keys    fetch the issuers' jwks_uri now (HTTP(S) from this machine) so
                  tokens of those issuers are verified as the filter would

Exit: 0 ok, 1 invalid configuration, 2 usage, 4 a decision differed from its
expectation (each difference is named on stderr; every line is still decided).
";

const INSPECT_HELP: &str =
    "fhir-smart-authz token inspect [--config FILE] [--now SECONDS] [--json] [--fetch-keys] [TOKEN]

Show a token's header and claims (never its signature) and whether the
configuration's keys accept it, and if not, why. TOKEN is read from stdin when
omitted (keeps it out of shell history). Without --config no issuer is trusted.

  --json         one compact JSON line instead of indented JSON
  --now SECONDS  verify at this Unix time
  --fetch-keys   fetch the issuers' jwks_uri now (HTTP(S) from this machine)

Exit: 0 the token is accepted, 1 it is not (the report says why), 2 usage.
";

/// Run the CLI; returns the exit code.
pub fn run(args: &[String], input: &mut dyn BufRead, out: &mut dyn Write) -> i32 {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (help, command, rest) = match argv.as_slice() {
        [] | ["--help" | "-h" | "help"] => (HELP, None, &[][..]),
        ["--version" | "-V"] => {
            let _ = writeln!(out, "fhir-smart-authz {VERSION}");
            return exit::OK;
        }
        ["help", "check-config"] => (CHECK_HELP, None, &[][..]),
        ["help", "decide" | "explain"] => (DECIDE_HELP, None, &[][..]),
        ["help", "token", ..] => (INSPECT_HELP, None, &[][..]),
        ["check-config", rest @ ..] => (CHECK_HELP, Some("check-config"), rest),
        [cmd @ ("decide" | "explain"), rest @ ..] => (DECIDE_HELP, Some(*cmd), rest),
        ["token", "inspect", rest @ ..] => (INSPECT_HELP, Some("token inspect"), rest),
        _ => return usage(&format!("unknown command {args:?}"), HELP),
    };
    let Some(command) = command else {
        let _ = write!(out, "{help}");
        return exit::OK;
    };
    let options = match Options::parse(rest) {
        Ok(o) if o.help => {
            let _ = write!(out, "{help}");
            return exit::OK;
        }
        Ok(o) => o,
        Err(e) => return usage(&e, help),
    };
    let allowed: &[&str] = match command {
        "check-config" => &["--strict", "--print-effective", "--fetch-keys"],
        "decide" | "explain" => &["--config", "--now", "--expect", "--fetch-keys"],
        _ => &["--config", "--now", "--json", "--fetch-keys"],
    };
    if let Some(flag) = options.given.iter().find(|f| !allowed.contains(f)) {
        return usage(&format!("{command} takes no {flag}"), help);
    }
    match command {
        "check-config" => match options.positional.as_slice() {
            [file] => check::run(file, &options, out),
            _ => usage("check-config takes one FILE", help),
        },
        "decide" | "explain" => {
            let (Some(config_file), []) = (options.config, options.positional.as_slice()) else {
                return usage(
                    &format!("{command} needs --config FILE and no other argument"),
                    help,
                );
            };
            let config = match load_for_decisions(config_file, options.fetch_keys) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            let expected = match options.expect.map(decide::read_expectations).transpose() {
                Ok(e) => e,
                Err(e) => return fail(&e),
            };
            let now = options.now.unwrap_or_else(unix_now);
            decide::process(
                &config,
                command == "explain",
                now,
                expected.as_deref(),
                input,
                out,
            )
        }
        _ => inspect::run(&options, input, out, help),
    }
}

pub fn usage(why: &str, help: &str) -> i32 {
    eprintln!("error: {why}\n\n{help}");
    exit::USAGE
}

/// An invalid configuration or an unreadable file: the error on stderr, exit 1.
pub fn fail(why: &str) -> i32 {
    eprintln!("error: {why}");
    exit::INVALID
}

/// The options every command may take (each command allows some of them).
#[derive(Default)]
pub struct Options<'a> {
    pub config: Option<&'a str>,
    pub now: Option<u64>,
    pub expect: Option<&'a str>,
    pub strict: bool,
    pub print_effective: bool,
    pub json: bool,
    pub fetch_keys: bool,
    pub help: bool,
    /// The options given, to check them against what the command takes.
    pub given: Vec<&'a str>,
    pub positional: Vec<&'a str>,
}

impl<'a> Options<'a> {
    fn parse(mut args: &'a [&'a str]) -> Result<Options<'a>, String> {
        let mut o = Options::default();
        while let [arg, more @ ..] = args {
            args = more;
            let mut value = |name: &str| -> Result<&'a str, String> {
                let [v, more @ ..] = args else {
                    return Err(format!("{name} needs a value"));
                };
                args = more;
                Ok(v)
            };
            let repeated = o.given.contains(arg);
            match *arg {
                "--help" | "-h" => o.help = true,
                "--config" => o.config = Some(value("--config")?),
                "--expect" => o.expect = Some(value("--expect")?),
                "--now" => {
                    let v = value("--now")?;
                    o.now = Some(
                        v.parse()
                            .map_err(|_| format!("--now takes Unix seconds (got {v:?})"))?,
                    );
                }
                "--strict" => o.strict = true,
                "--print-effective" => o.print_effective = true,
                "--json" => o.json = true,
                "--fetch-keys" => o.fetch_keys = true,
                flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
                positional => {
                    o.positional.push(positional);
                    continue;
                }
            }
            if repeated {
                return Err(format!("{arg} given twice"));
            }
            if arg.starts_with("--") {
                o.given.push(arg);
            }
        }
        Ok(o)
    }
}

/// The configuration `decide`, `explain` and `token inspect` decide with;
/// with `--fetch-keys` the issuers' `jwks_uri` key sets are fetched now and
/// used as if inline.
pub fn load_for_decisions(file: &str, fetch_keys: bool) -> Result<Config, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let config =
        Config::from_json_with_secrets(&bytes, &ProcessSecrets).map_err(|e| e.to_string())?;
    if fetch_keys {
        crate::fetch::inline_fetched_keys(config)
    } else {
        Ok(config)
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
