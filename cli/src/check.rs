//! `check-config FILE`: the plugin configuration where it lives (bare JSON or
//! YAML, an Envoy bootstrap, an Istio `WasmPlugin`), its warnings, and the
//! deployment checks the file allows (core `config::deployment`).

use crate::commands::{exit, fail, Options};
use crate::fetch;
use crate::secrets::ProcessSecrets;
use fhir_smart_authz_core::config::deployment::{self, DocumentKind, PluginInstance};
use fhir_smart_authz_core::config::{Config, ConfigError, ConfigWarning};
use serde::Deserialize;
use serde_json::Value;
use std::io::Write;

/// What one plugin configuration of the file gave.
struct Checked {
    /// `None` for a bare configuration file.
    location: Option<String>,
    config: Option<Config>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
}

pub fn run(file: &str, options: &Options<'_>, out: &mut dyn Write) -> i32 {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => return fail(&format!("cannot read {file}: {e}")),
    };
    let mut results = match check_file(&bytes) {
        Ok(r) => r,
        Err(e) => return fail(&format!("{file}: {e}")),
    };
    if options.fetch_keys {
        for r in &mut results {
            let Some(config) = &r.config else { continue };
            for (i, fetched) in fetch::fetch_all(config) {
                if let Err(e) = fetched {
                    r.errors
                        .push(ConfigError::new(format!("issuers[{i}].jwks_uri"), e));
                }
            }
        }
    }
    let (mut errors, mut warnings) = (0, 0);
    for r in &results {
        let at = r
            .location
            .as_deref()
            .map(|l| format!("{l}: "))
            .unwrap_or_default();
        for e in &r.errors {
            eprintln!("error: {at}{e}");
        }
        for w in &r.warnings {
            eprintln!("warning: {at}{w}");
        }
        errors += r.errors.len();
        warnings += r.warnings.len();
        if !r.errors.is_empty() {
            continue;
        }
        if options.print_effective {
            if let Some(config) = &r.config {
                let _ = writeln!(out, "{}", effective_json(config));
            }
            continue;
        }
        let verdict = match r.warnings.len() {
            0 => "ok".to_string(),
            1 => "ok with 1 warning".to_string(),
            n => format!("ok with {n} warnings"),
        };
        let _ = writeln!(out, "{at}{verdict}");
    }
    match (errors, warnings) {
        (0, 0) => exit::OK,
        (0, _) if !options.strict => exit::WARNINGS,
        _ => exit::INVALID,
    }
}

/// The configuration with every default filled in, as indented JSON.
fn effective_json(config: &Config) -> String {
    serde_json::to_string_pretty(&config.effective()).unwrap_or_default()
}

/// Every plugin configuration in the file, checked.
fn check_file(bytes: &[u8]) -> Result<Vec<Checked>, String> {
    let documents = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) if deployment::document_kind(&v) == DocumentKind::PluginConfiguration => {
            // Bare JSON: read from the bytes themselves (repeated keys, positions).
            return Ok(vec![check_bare(bytes)]);
        }
        Ok(v) => vec![v],
        Err(_) => match yaml_documents(bytes) {
            Ok(docs) => docs,
            // Neither YAML nor JSON: the JSON reader names the position.
            Err(_) => return Ok(vec![check_bare(bytes)]),
        },
    };
    let mut results = Vec::new();
    for doc in &documents {
        match deployment::document_kind(doc) {
            DocumentKind::EnvoyBootstrap => {
                let doc = &deployment::as_bootstrap(doc);
                let instances = deployment::envoy_instances(doc).map_err(|e| e.to_string())?;
                if instances.is_empty() {
                    return Err(
                        "an Envoy configuration without the filter (no envoy.filters.http.wasm or dynamic_modules HTTP filter)".into(),
                    );
                }
                for instance in instances {
                    results.push(check_instance(&instance, |config| {
                        deployment::check_envoy_instance(config, &instance, doc)
                    }));
                }
            }
            DocumentKind::IstioWasmPlugin => {
                let instance = deployment::istio_instance(doc).map_err(|e| e.to_string())?;
                results.push(check_instance(&instance, |config| {
                    (Vec::new(), deployment::check_istio_instance(config))
                }));
            }
            DocumentKind::PluginConfiguration => {}
        }
    }
    if results.is_empty() {
        return match documents.as_slice() {
            // A YAML plugin configuration.
            [single] => Ok(vec![check_bare(single.to_string().as_bytes())]),
            _ => Err("no plugin configuration: no Envoy bootstrap and no Istio WasmPlugin among its documents".into()),
        };
    }
    Ok(results)
}

fn yaml_documents(bytes: &[u8]) -> Result<Vec<Value>, serde_yaml::Error> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_slice(bytes) {
        let v = Value::deserialize(doc)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

fn check_bare(bytes: &[u8]) -> Checked {
    match Config::from_json_with_secrets(bytes, &ProcessSecrets) {
        Ok(config) => Checked {
            location: None,
            warnings: config.warnings(),
            config: Some(config),
            errors: Vec::new(),
        },
        Err(e) => Checked {
            location: None,
            config: None,
            errors: vec![e],
            warnings: Vec::new(),
        },
    }
}

fn check_instance(
    instance: &PluginInstance<'_>,
    deployment_checks: impl Fn(&Config) -> (Vec<ConfigError>, Vec<ConfigWarning>),
) -> Checked {
    let mut checked = check_bare(instance.configuration.as_bytes());
    checked.location = Some(instance.location.clone());
    if let Some(config) = &checked.config {
        let (errors, warnings) = deployment_checks(config);
        checked.errors.extend(errors);
        checked.warnings.extend(warnings);
    }
    checked
}
