use super::*;
use crate::config::Config;
use serde_json::json;
use std::collections::BTreeMap;

/// A source with the environment and files a test gives it.
#[derive(Default)]
struct FakeSource {
    env: BTreeMap<&'static str, OsString>,
    files: BTreeMap<&'static str, Result<Vec<u8>, String>>,
}

impl SecretSource for FakeSource {
    fn env_var(&self, name: &str) -> Option<OsString> {
        self.env.get(name).cloned()
    }
    fn read_file(&self, path: &str) -> Result<Vec<u8>, String> {
        self.files
            .get(path)
            .cloned()
            .unwrap_or_else(|| Err("No such file or directory (os error 2)".into()))
    }
}

/// The secret every test hides; no error or `Debug` output may contain it.
const VALUE: &str = "s3cr3t-value";

fn source() -> FakeSource {
    let mut s = FakeSource::default();
    s.env.insert("CLIENT_SECRET", VALUE.into());
    s.env.insert("EMPTY", "".into());
    s.files.insert("/run/secret", Ok(VALUE.as_bytes().to_vec()));
    s.files
        .insert("/run/secret-lf", Ok(format!("{VALUE}\n").into_bytes()));
    s.files
        .insert("/run/secret-crlf", Ok(format!("{VALUE}\r\n").into_bytes()));
    s.files
        .insert("/run/secret-2lf", Ok(format!("{VALUE}\n\n").into_bytes()));
    s.files.insert("/run/empty", Ok(b"\n".to_vec()));
    s.files.insert("/run/binary", Ok(vec![0xff, 0xfe]));
    s.files
        .insert("/run/denied", Err("Permission denied (os error 13)".into()));
    s
}

const BAD_ENV: &str =
    "`env` must name an environment variable: a non-empty string without `=` or NUL";
const BAD_FILE: &str = "`file` must be an absolute path (a string starting with `/`)";
const EXPECTED_GRAMMAR: &str =
    r#"must be {"env": "NAME"} (an environment variable) or {"file": "/absolute/path"} (a file)"#;

#[test]
fn parse_table() {
    #[rustfmt::skip]
    let rows: Vec<(Value, Result<SecretRef, String>)> = vec![
        (json!({"env": "CLIENT_SECRET"}), Ok(SecretRef::Env("CLIENT_SECRET".into()))),
        (json!({"env": "lower.case-ok"}), Ok(SecretRef::Env("lower.case-ok".into()))),
        (json!({"file": "/run/secrets/x"}), Ok(SecretRef::File("/run/secrets/x".into()))),
        (json!(VALUE), Ok(SecretRef::Inline(Secret(VALUE.into())))),
        (json!(""), Ok(SecretRef::Inline(Secret(String::new())))),
        (json!({"env": ""}), Err(BAD_ENV.into())),
        (json!({"env": "A=B"}), Err(BAD_ENV.into())),
        (json!({"env": "A\u{0}"}), Err(BAD_ENV.into())),
        (json!({"env": 5}), Err(BAD_ENV.into())),
        (json!({"file": "run/secret"}), Err(BAD_FILE.into())),
        (json!({"file": ""}), Err(BAD_FILE.into())),
        (json!({"file": "/x\u{0}"}), Err(BAD_FILE.into())),
        (json!({"file": {"path": "/x"}}), Err(BAD_FILE.into())),
        (json!({"value": VALUE}), Err(format!("{EXPECTED_GRAMMAR}; found key `value`"))),
        (json!({}), Err(format!("{EXPECTED_GRAMMAR}: one key, `env` or `file`"))),
        (json!({"env": "A", "file": "/b"}), Err(format!("{EXPECTED_GRAMMAR}: one key, `env` or `file`"))),
        (json!(123456), Err(EXPECTED_GRAMMAR.into())),
        (json!(true), Err(EXPECTED_GRAMMAR.into())),
        (json!(null), Err(EXPECTED_GRAMMAR.into())),
        (json!([VALUE]), Err(EXPECTED_GRAMMAR.into())),
    ];
    for (value, expected) in rows {
        let got = SecretRef::from_value(&value);
        assert_eq!(got, expected, "{value}");
        if let Err(e) = got {
            assert!(!e.contains(VALUE), "{e}");
        }
    }
}

#[test]
fn resolve_table() {
    let env = |n: &str| SecretRef::Env(n.into());
    let file = |p: &str| SecretRef::File(p.into());
    let inline = |v: &str| SecretRef::Inline(Secret(v.into()));
    let not_set = "the environment variable is not set (the .wasm in Envoy: vm_config.environment_variables.host_env_keys; Istio: WasmPlugin vmConfig.env with valueFrom: HOST; the native module: Envoy's own environment; CLI: its own environment)";
    let refused_inline = "is a secret written in the configuration, which Envoy's /config_dump and the Istio WasmPlugin show to everyone who can read them; give a reference instead ({\"env\": \"NAME\"} or {\"file\": \"/path\"}), or set allow_insecure_inline_secrets: true";
    // (reference, allow_inline, expected value or error message)
    let rows: Vec<(SecretRef, bool, Result<&str, String>)> = vec![
        (env("CLIENT_SECRET"), false, Ok(VALUE)),
        (env("MISSING"), false, Err(format!(r#"{{"env": "MISSING"}}: {not_set}"#))),
        (env("EMPTY"), false, Err(r#"{"env": "EMPTY"}: the value is empty"#.into())),
        (file("/run/secret"), false, Ok(VALUE)),
        (file("/run/secret-lf"), false, Ok(VALUE)),
        (file("/run/secret-crlf"), false, Ok(VALUE)),
        (file("/run/secret-2lf"), false, Ok("s3cr3t-value\n")),
        (file("/run/empty"), false, Err(r#"{"file": "/run/empty"}: the value is empty"#.into())),
        (file("/run/binary"), false, Err(r#"{"file": "/run/binary"}: the content is not valid UTF-8"#.into())),
        (file("/run/denied"), false, Err(r#"{"file": "/run/denied"}: the file cannot be read: Permission denied (os error 13)"#.into())),
        (file("/run/absent"), false, Err(r#"{"file": "/run/absent"}: the file cannot be read: No such file or directory (os error 2)"#.into())),
        (inline(VALUE), false, Err(refused_inline.into())),
        (inline(VALUE), true, Ok(VALUE)),
        (inline(""), true, Err("an inline value: the value is empty".into())),
    ];
    let src = source();
    for (reference, allow_inline, expected) in rows {
        let got = reference.resolve("a.b", &src, allow_inline);
        match (&got, &expected) {
            (Ok(secret), Ok(value)) => assert_eq!(secret.expose(), *value, "{reference}"),
            (Err(e), Err(message)) => {
                assert_eq!(e.field, "a.b");
                assert_eq!(&e.message, message, "{reference}");
                assert!(!e.to_string().contains(VALUE), "{e}");
            }
            _ => panic!("{reference}: got {got:?}, expected {expected:?}"),
        }
    }
}

#[cfg(unix)]
#[test]
fn env_value_that_is_not_utf8_is_refused() {
    use std::os::unix::ffi::OsStringExt;
    let mut src = FakeSource::default();
    src.env.insert("BYTES", OsString::from_vec(vec![0xff]));
    let e = SecretRef::Env("BYTES".into())
        .resolve("x", &src, false)
        .unwrap_err();
    assert_eq!(
        e.message,
        r#"{"env": "BYTES"}: the value is not valid UTF-8"#
    );
}

#[test]
fn no_secrets_source_finds_nothing() {
    let e = SecretRef::Env("CLIENT_SECRET".into())
        .resolve("x", &NoSecrets, false)
        .unwrap_err();
    assert!(
        e.message.contains("the environment variable is not set"),
        "{e}"
    );
    let e = SecretRef::File("/run/secret".into())
        .resolve("x", &NoSecrets, false)
        .unwrap_err();
    assert_eq!(
        e.message,
        r#"{"file": "/run/secret"}: the file cannot be read: this host reads no files"#
    );
}

#[test]
fn loader_records_inline_fields() {
    let src = source();
    let mut loader = SecretLoader::new(&src, true);
    let mut a = SecretSetting::new(SecretRef::Env("CLIENT_SECRET".into()));
    let mut b = SecretSetting::new(SecretRef::Inline(Secret(VALUE.into())));
    assert_eq!(a.value(), None);
    a.load("a", &mut loader).unwrap();
    b.load("b", &mut loader).unwrap();
    assert_eq!(a.value().map(Secret::expose), Some(VALUE));
    assert_eq!(b.value().map(Secret::expose), Some(VALUE));
    assert_eq!(loader.into_inline_fields(), vec!["b".to_string()]);
}

#[test]
fn debug_and_display_never_show_the_value() {
    let src = source();
    let mut setting = SecretSetting::new(SecretRef::Inline(Secret(VALUE.into())));
    setting
        .load("x", &mut SecretLoader::new(&src, true))
        .unwrap();
    let reference = SecretRef::Inline(Secret(VALUE.into()));
    let shown = [
        format!("{:?}", Secret(VALUE.into())),
        format!("{reference:?}"),
        format!("{reference}"),
        format!("{setting:?}"),
        format!("{setting:#?}"),
    ];
    assert_eq!(shown[0], "Secret(<redacted>)");
    assert_eq!(shown[1], "Inline(Secret(<redacted>))");
    assert_eq!(shown[2], "an inline value");
    assert_eq!(
        shown[3],
        "SecretSetting { reference: Some(Inline(Secret(<redacted>))), loaded: true }"
    );
    for s in &shown {
        assert!(!s.contains(VALUE), "{s}");
    }
    assert_eq!(
        format!("{:?}", SecretRef::Env("CLIENT_SECRET".into())),
        r#"Env("CLIENT_SECRET")"#
    );
}

/// An introspection issuer whose `client_secret` is `secret`.
fn introspection_config(secret: Value, allow_inline: Option<bool>) -> Vec<u8> {
    let mut config = json!({
        "fhir_base_url": "https://fhir.example.org/fhir",
        "issuers": [{"issuer": "https://as.example.org", "introspection": {
            "cluster": "as", "path": "/introspect", "client_id": "gateway", "client_secret": secret}}]
    });
    if let Some(allow) = allow_inline {
        config["allow_insecure_inline_secrets"] = json!(allow);
    }
    serde_json::to_vec(&config).unwrap()
}

fn loaded_secret(config: &Config) -> Option<&str> {
    config.issuers[0]
        .introspection
        .as_ref()
        .and_then(|i| i.client_secret.value())
        .map(Secret::expose)
}

#[test]
fn configuration_loads_the_introspection_secret_by_reference() {
    let src = source();
    let rows = [
        json!({"env": "CLIENT_SECRET"}),
        json!({"file": "/run/secret-lf"}),
    ];
    for reference in rows {
        let config =
            Config::from_json_with_secrets(&introspection_config(reference.clone(), None), &src)
                .unwrap();
        assert_eq!(loaded_secret(&config), Some(VALUE), "{reference}");
        assert!(config.inline_secrets.is_empty());
        let debug = format!("{config:?}");
        assert!(!debug.contains(VALUE), "{debug}");
    }
}

#[test]
fn configuration_secret_errors_name_the_field_and_never_the_value() {
    let src = source();
    let field = "issuers[0].introspection.client_secret";
    let see = "; see the configuration reference (docs/configuration.md)";
    let rows: Vec<(Value, Option<bool>, String)> = vec![
        (json!(VALUE), None, "is a secret written in the configuration, which Envoy's /config_dump and the Istio WasmPlugin show to everyone who can read them; give a reference instead ({\"env\": \"NAME\"} or {\"file\": \"/path\"}), or set allow_insecure_inline_secrets: true".into()),
        (json!(VALUE), Some(false), "is a secret written in the configuration, which Envoy's /config_dump and the Istio WasmPlugin show to everyone who can read them; give a reference instead ({\"env\": \"NAME\"} or {\"file\": \"/path\"}), or set allow_insecure_inline_secrets: true".into()),
        (json!({"env": "MISSING"}), None, r#"{"env": "MISSING"}: the environment variable is not set (the .wasm in Envoy: vm_config.environment_variables.host_env_keys; Istio: WasmPlugin vmConfig.env with valueFrom: HOST; the native module: Envoy's own environment; CLI: its own environment)"#.into()),
        (json!({"file": "/run/denied"}), None, r#"{"file": "/run/denied"}: the file cannot be read: Permission denied (os error 13)"#.into()),
        (json!(123456), None, format!("{EXPECTED_GRAMMAR}{see}")),
        (json!({"value": VALUE}), None, format!("{EXPECTED_GRAMMAR}; found key `value`{see}")),
        (json!({"env": ""}), None, format!("{BAD_ENV}{see}")),
    ];
    for (secret, allow, message) in rows {
        let e = Config::from_json_with_secrets(&introspection_config(secret.clone(), allow), &src)
            .unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            (field, message.as_str()),
            "{secret}"
        );
        assert!(!e.to_string().contains(VALUE), "{e}");
    }
}

#[test]
fn configuration_without_secret_or_with_inline_opt_in() {
    let src = source();
    let mut config = json!({"issuers": [{"issuer": "https://as", "audiences": ["a"], "introspection": {
        "cluster": "as", "path": "/i", "client_id": "gateway"}}]});
    let e =
        Config::from_json_with_secrets(&serde_json::to_vec(&config).unwrap(), &src).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.message.as_str()),
        (
            "issuers[0].introspection.client_secret",
            r#"is required (the filter authenticates to the introspection endpoint with HTTP Basic), e.g. {"env": "INTROSPECTION_CLIENT_SECRET"}"#
        )
    );
    config["issuers"][0]["introspection"]["client_secret"] = json!(VALUE);
    config["allow_insecure_inline_secrets"] = json!(true);
    let loaded =
        Config::from_json_with_secrets(&serde_json::to_vec(&config).unwrap(), &src).unwrap();
    assert_eq!(loaded_secret(&loaded), Some(VALUE));
    assert_eq!(
        loaded.inline_secrets,
        vec!["issuers[0].introspection.client_secret".to_string()]
    );
    // `from_json` has no source: a reference is missing there.
    let e = Config::from_json(&introspection_config(json!({"env": "CLIENT_SECRET"}), None))
        .unwrap_err();
    assert!(
        e.message
            .starts_with(r#"{"env": "CLIENT_SECRET"}: the environment variable is not set"#),
        "{e}"
    );
}
