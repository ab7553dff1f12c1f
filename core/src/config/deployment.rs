//! Where the plugin configuration lives in a deployment, and the mistakes a
//! deployment file shows that the configuration alone cannot: every instance
//! of the filter in an Envoy bootstrap (with the clusters it calls and the
//! routes that reach it), and an Istio `WasmPlugin`. Pure: the CLI reads the
//! file (JSON or YAML) into a `serde_json::Value` and hands it here.

use super::{Config, ConfigError, ConfigWarning};
use serde_json::Value;

const WASM_FILTER_TYPE: &str = "envoy.extensions.filters.http.wasm.v3.Wasm";
const NATIVE_FILTER_TYPE: &str =
    "envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";
const HCM_TYPE: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const STRING_VALUE_TYPE: &str = "google.protobuf.StringValue";

/// What kind of document a deployment file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// An Envoy bootstrap (`static_resources` or `dynamic_resources`).
    EnvoyBootstrap,
    /// An Istio `WasmPlugin` resource.
    IstioWasmPlugin,
    /// Anything else: read as the plugin configuration itself.
    PluginConfiguration,
}

pub fn document_kind(doc: &Value) -> DocumentKind {
    if config_dump_sections(doc).is_some() {
        DocumentKind::EnvoyBootstrap
    } else if doc.get("kind").and_then(Value::as_str) == Some("WasmPlugin") {
        DocumentKind::IstioWasmPlugin
    } else if doc.get("static_resources").is_some() || doc.get("dynamic_resources").is_some() {
        DocumentKind::EnvoyBootstrap
    } else {
        DocumentKind::PluginConfiguration
    }
}

/// The `configs` of an Envoy admin `/config_dump` (what a running Envoy, an
/// Istio sidecar or an Envoy Gateway proxy really has), if `doc` is one.
fn config_dump_sections(doc: &Value) -> Option<&Vec<Value>> {
    let configs = doc.get("configs")?.as_array()?;
    configs
        .iter()
        .any(|c| type_is(c, "ConfigDump"))
        .then_some(configs)
}

/// A `/config_dump` as the bootstrap shape the checks read: its active
/// listeners and clusters as `static_resources` (routes from RDS are not
/// resolved: the routing check is skipped for them). Any other document is
/// returned as it is.
pub fn as_bootstrap(doc: &Value) -> Value {
    let Some(configs) = config_dump_sections(doc) else {
        return doc.clone();
    };
    let mut listeners = Vec::new();
    let mut clusters = Vec::new();
    for c in configs {
        for key in ["static_listeners", "dynamic_listeners"] {
            for l in c.get(key).and_then(Value::as_array).into_iter().flatten() {
                let listener = l
                    .get("listener")
                    .or_else(|| l.pointer("/active_state/listener"));
                listeners.extend(listener.cloned());
            }
        }
        for key in [
            "static_clusters",
            "dynamic_active_clusters",
            "dynamic_warming_clusters",
        ] {
            for cl in c.get(key).and_then(Value::as_array).into_iter().flatten() {
                clusters.extend(cl.get("cluster").cloned());
            }
        }
    }
    serde_json::json!({"static_resources": {"listeners": listeners, "clusters": clusters}})
}

/// One plugin configuration found in a deployment file.
#[derive(Debug, Clone)]
pub struct PluginInstance<'a> {
    /// Where it is, e.g. `static_resources.listeners[0]....http_filters[1]`
    /// or `WasmPlugin fhir/fhir-smart-authz`.
    pub location: String,
    /// The configuration as JSON text (`{}` when the filter has none).
    pub configuration: String,
    /// The filter's `name` in `http_filters` (what per-route
    /// `typed_per_filter_config` keys on); `None` for Istio.
    filter_name: Option<&'a str>,
    /// The HTTP connection manager holding the filter (Envoy only).
    hcm: Option<&'a Value>,
}

/// The plugin configuration of an Istio `WasmPlugin` (`spec.pluginConfig`).
pub fn istio_instance(doc: &Value) -> Result<PluginInstance<'_>, ConfigError> {
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let namespace = doc
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let configuration = match doc.pointer("/spec/pluginConfig") {
        None => "{}".to_string(),
        Some(v) => v.to_string(),
    };
    Ok(PluginInstance {
        location: format!("WasmPlugin {namespace}/{name}"),
        configuration,
        filter_name: None,
        hcm: None,
    })
}

/// Every instance of this filter in an Envoy bootstrap: the wasm HTTP
/// filters whose `root_id`, `vm_id` or code file names `fhir_smart_authz`
/// (every wasm HTTP filter when none does) and the dynamic-module filters of
/// the module `fhir_smart_authz`.
pub fn envoy_instances(bootstrap: &Value) -> Result<Vec<PluginInstance<'_>>, ConfigError> {
    let mut all = Vec::new();
    for (hcm_path, hcm) in find_typed(bootstrap, HCM_TYPE) {
        let Some(filters) = hcm.get("http_filters").and_then(Value::as_array) else {
            continue;
        };
        for (i, filter) in filters.iter().enumerate() {
            let Some(typed) = filter.get("typed_config") else {
                continue;
            };
            // (its configuration, where that is, whether it names this filter)
            let (configuration, field, ours) = if type_is(typed, WASM_FILTER_TYPE) {
                let settings = typed.get("config").unwrap_or(&Value::Null);
                let ours = settings.to_string().contains("fhir_smart_authz");
                (settings.get("configuration"), "config.configuration", ours)
            } else if type_is(typed, NATIVE_FILTER_TYPE) {
                // Another module's filter is another filter (its library
                // is `lib<name>.so`).
                let module = typed.pointer("/dynamic_module_config/name");
                if module.and_then(Value::as_str) != Some("fhir_smart_authz") {
                    continue;
                }
                (typed.get("filter_config"), "filter_config", true)
            } else {
                continue;
            };
            let location = format!("{hcm_path}.http_filters[{i}]");
            let at = format!("{location}.typed_config.{field}");
            let configuration = plugin_configuration(configuration, &at)?;
            all.push((
                ours,
                PluginInstance {
                    location,
                    configuration,
                    filter_name: filter.get("name").and_then(Value::as_str),
                    hcm: Some(hcm),
                },
            ));
        }
    }
    let any_ours = all.iter().any(|(ours, _)| *ours);
    Ok(all
        .into_iter()
        .filter(|(ours, _)| *ours || !any_ours)
        .map(|(_, p)| p)
        .collect())
}

/// The plugin configuration JSON a filter holds at `at`: a
/// `google.protobuf.StringValue`'s `value` (`{}` when there is none).
fn plugin_configuration(value: Option<&Value>, at: &str) -> Result<String, ConfigError> {
    match value {
        None => Ok("{}".to_string()),
        Some(c) if type_is(c, STRING_VALUE_TYPE) => match c.get("value") {
            Some(Value::String(s)) => Ok(s.clone()),
            None => Ok(String::new()),
            Some(_) => Err(ConfigError::new(
                format!("{at}.value"),
                "must be a string holding the plugin configuration JSON",
            )),
        },
        Some(_) => Err(ConfigError::new(
            at,
            "must be a google.protobuf.StringValue whose value is the plugin configuration JSON",
        )),
    }
}

/// The checks an Envoy bootstrap allows for one instance: every cluster the
/// configuration calls exists (an error), and has TLS when its URL is
/// `https` (an error: Envoy would speak plain HTTP to the TLS port) or when
/// it carries a client secret (a warning); the route table sends the FHIR
/// base path to the filter (a warning).
pub fn check_envoy_instance(
    config: &Config,
    instance: &PluginInstance<'_>,
    bootstrap: &Value,
) -> (Vec<ConfigError>, Vec<ConfigWarning>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let clusters: Vec<&Value> = bootstrap
        .pointer("/static_resources/clusters")
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let dynamic = bootstrap.pointer("/dynamic_resources/cds_config").is_some();
    let names: Vec<&str> = clusters
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    for used in used_clusters(config) {
        let Some(cluster) = clusters
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(used.name))
        else {
            if dynamic {
                warnings.push(ConfigWarning::new(
                    used.field,
                    format!("cluster {:?} is not a static cluster; it may come from CDS, which check-config cannot see", used.name),
                    "make sure CDS defines it, or define it in static_resources.clusters",
                ));
            } else {
                errors.push(ConfigError::new(
                    used.field,
                    format!(
                        "names cluster {:?}, which the Envoy configuration does not define (clusters: {}); every call through it would fail{}",
                        used.name,
                        names.join(", "),
                        used.consequence
                    ),
                ));
            }
            continue;
        };
        if has_tls(cluster) {
            continue;
        }
        match used.tls {
            TlsNeed::Required(url) => errors.push(ConfigError::new(
                used.field,
                format!("cluster {:?} has no TLS transport_socket, but {url} is https: Envoy would send plain HTTP to the TLS port", used.name),
            )),
            TlsNeed::Secret => warnings.push(ConfigWarning::new(
                used.field,
                format!("cluster {:?} has no TLS transport_socket: the introspection client secret and the tokens travel in clear", used.name),
                "give the cluster an envoy.transport_sockets.tls transport_socket (UpstreamTlsContext with sni)",
            )),
            TlsNeed::No => {}
        }
    }
    if let Some(w) = base_path_unrouted(config, instance) {
        warnings.push(w);
    }
    match audit_log_mismatch(config, instance) {
        Some(AuditLogFinding::Mismatch(e)) => errors.push(e),
        Some(AuditLogFinding::NotLogged(w)) => warnings.push(w),
        None => {}
    }
    (errors, warnings)
}

/// The filter state the audit record is written to.
const AUDIT_STATE: &str = "wasm.fhir_smart_authz_audit";

enum AuditLogFinding {
    /// An access log prints the record in another encoding's form: every
    /// line it writes would be broken JSON.
    Mismatch(ConfigError),
    /// No access log of the connection manager prints the record.
    NotLogged(ConfigWarning),
}

/// The encoding an access-log format expects of the audit record, if it
/// prints it: the whole line (`line`), the members inside the format's own
/// braces (`fields`), a `:TYPED` value in a `json_format` (`struct`), a
/// `:PLAIN` one (`json`).
fn expected_encoding(log: &Value) -> Option<&'static str> {
    let typed = log.get("typed_config")?;
    let format = typed.get("log_format").or_else(|| typed.get("format"))?;
    let plain = format!("%FILTER_STATE({AUDIT_STATE}:PLAIN)%");
    let typed_state = format!("%FILTER_STATE({AUDIT_STATE}:TYPED)%");
    if let Some(json) = format.get("json_format") {
        let text = json.to_string();
        if text.contains(&typed_state) {
            return Some("struct");
        }
        return text.contains(&plain).then_some("json");
    }
    let text = format
        .pointer("/text_format_source/inline_string")
        .or_else(|| format.get("text_format"))
        .and_then(Value::as_str)?;
    if !text.contains(&plain) {
        return None;
    }
    Some(if text.trim_end().starts_with(&plain) {
        "line"
    } else {
        "fields"
    })
}

fn audit_log_mismatch(config: &Config, instance: &PluginInstance<'_>) -> Option<AuditLogFinding> {
    if !config.audit.enabled {
        return None;
    }
    let hcm = instance.hcm?;
    let ours = serde_json::to_value(config.audit.encoding).ok()?;
    let ours = ours.as_str()?;
    let logs = hcm.get("access_log").and_then(Value::as_array);
    let printing: Vec<(usize, &'static str)> = logs
        .map(|l| {
            l.iter()
                .enumerate()
                .filter_map(|(i, log)| Some((i, expected_encoding(log)?)))
                .collect()
        })
        .unwrap_or_default();
    if printing.is_empty() {
        return Some(AuditLogFinding::NotLogged(ConfigWarning::new(
            "audit.encoding",
            format!("no access log of the connection manager holding {} prints the audit record (filter state {AUDIT_STATE})", instance.location),
            "add the access loggers of envoy/envoy.yaml (docs/audit-and-metrics.md), or set audit.enabled to false",
        )));
    }
    let (i, theirs) = printing.iter().find(|(_, e)| *e != ours)?;
    Some(AuditLogFinding::Mismatch(ConfigError::new(
        "audit.encoding",
        format!(
            "is {ours:?}, but access_log[{i}] of the connection manager holding {} prints the record as {theirs:?} writes it: every line would be broken JSON; set audit.encoding to {theirs:?} or change the log format (docs/audit-and-metrics.md)",
            instance.location
        ),
    )))
}

/// Whether a cluster's traffic needs TLS.
enum TlsNeed<'a> {
    /// Its URL is `https`.
    Required(&'a str),
    /// It carries a client secret.
    Secret,
    No,
}

struct UsedCluster<'a> {
    field: String,
    name: &'a str,
    tls: TlsNeed<'a>,
    /// What failing calls mean, for the error message.
    consequence: &'static str,
}

/// The clusters a configuration calls, with the field naming each.
fn used_clusters(config: &Config) -> Vec<UsedCluster<'_>> {
    let mut out = vec![UsedCluster {
        field: "upstream.cluster".into(),
        name: &config.upstream.cluster,
        tls: TlsNeed::No,
        consequence: " (reads that carry a response check, writes with a stored-resource check)",
    }];
    for (i, issuer) in config.issuers.iter().enumerate() {
        if let (Some(name), Some(uri)) = (&issuer.jwks_cluster, &issuer.jwks_uri) {
            let https = uri
                .get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
            out.push(UsedCluster {
                field: format!("issuers[{i}].jwks_cluster"),
                name,
                tls: if https {
                    TlsNeed::Required(uri)
                } else {
                    TlsNeed::No
                },
                consequence: " (no signing keys: every token of this issuer is refused with 401)",
            });
        }
        if let Some(intro) = &issuer.introspection {
            out.push(UsedCluster {
                field: format!("issuers[{i}].introspection.cluster"),
                name: &intro.cluster,
                tls: TlsNeed::Secret,
                consequence: " (every opaque token is refused with 401)",
            });
        }
    }
    out
}

fn has_tls(cluster: &Value) -> bool {
    let socket = cluster.get("transport_socket");
    let tls = |s: &Value| {
        s.get("name").and_then(Value::as_str) == Some("envoy.transport_sockets.tls")
            || s.get("typed_config")
                .is_some_and(|t| type_is(t, "UpstreamTlsContext"))
    };
    socket.is_some_and(tls)
        || cluster
            .get("transport_socket_matches")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().filter_map(|m| m.get("transport_socket")).any(tls))
}

/// A warning when no route of the connection manager holding the filter
/// sends a request under the FHIR base path through it (routes matching
/// elsewhere, or disabling the filter with `typed_per_filter_config`).
/// Routes from RDS are not seen: no warning then.
fn base_path_unrouted(config: &Config, instance: &PluginInstance<'_>) -> Option<ConfigWarning> {
    let hcm = instance.hcm?;
    let hosts = hcm.pointer("/route_config/virtual_hosts")?.as_array()?;
    let base = format!("{}/", config.base.path.trim_end_matches('/'));
    let disabled = |v: &Value| {
        instance.filter_name.is_some_and(|name| {
            v.pointer(&format!(
                "/typed_per_filter_config/{}",
                name.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(|c| c.get("disabled"))
            .and_then(Value::as_bool)
                == Some(true)
        })
    };
    let reaches = hosts.iter().any(|host| {
        let host_disabled = disabled(host);
        host.get("routes")
            .and_then(Value::as_array)
            .is_some_and(|routes| {
                routes.iter().any(|route| {
                    let off = match route.get("typed_per_filter_config") {
                        Some(_) => disabled(route),
                        None => host_disabled,
                    };
                    !off && route_matches_base(route.get("match"), &base)
                })
            })
    });
    (!reaches).then(|| {
        ConfigWarning::new(
            "fhir_base_path",
            format!(
                "no route of {} sends requests under {base} through the filter (none matches it, or the filter is disabled there)",
                instance.location
            ),
            "add a route for the FHIR base path without `disabled: true` for this filter, or set fhir_base_path to the path the routes serve",
        )
    })
}

/// Whether a route `match` can take some request under `base` (`/fhir/`).
fn route_matches_base(m: Option<&Value>, base: &str) -> bool {
    let Some(m) = m else { return false };
    let bare = base.trim_end_matches('/');
    let prefix_reaches = |p: &str| base.starts_with(p) || p.starts_with(base) || p == bare;
    if let Some(p) = m.get("prefix").and_then(Value::as_str) {
        return prefix_reaches(p);
    }
    if let Some(p) = m.get("path_separated_prefix").and_then(Value::as_str) {
        return prefix_reaches(p);
    }
    if let Some(p) = m.get("path").and_then(Value::as_str) {
        return p.starts_with(base) || p == bare;
    }
    // Regexes and path templates: assume they may.
    true
}

/// Every object whose `@type` names `type_name`, with its dotted path.
fn find_typed<'a>(root: &'a Value, type_name: &str) -> Vec<(String, &'a Value)> {
    let mut out = Vec::new();
    walk(root, String::new(), type_name, &mut out);
    out
}

fn walk<'a>(v: &'a Value, path: String, type_name: &str, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(map) => {
            if type_is(v, type_name) {
                out.push((path.clone(), v));
            }
            for (k, child) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(child, p, type_name, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, format!("{path}[{i}]"), type_name, out);
            }
        }
        _ => {}
    }
}

fn type_is(v: &Value, type_name: &str) -> bool {
    v.get("@type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with(type_name))
}

/// The checks an Istio `WasmPlugin` allows: every cluster the configuration
/// calls has the form Istio gives its clusters (`outbound|443||auth.example.org`,
/// `inbound|8080||`); any other name is no cluster of the mesh.
pub fn check_istio_instance(config: &Config) -> Vec<ConfigWarning> {
    used_clusters(config)
        .into_iter()
        .filter(|used| {
            let parts: Vec<&str> = used.name.split('|').collect();
            !(parts.len() == 4
                && matches!(parts.first(), Some(&"inbound") | Some(&"outbound"))
                && parts.get(1).is_some_and(|p| p.parse::<u16>().is_ok()))
        })
        .map(|used| {
            ConfigWarning::new(
                used.field,
                format!("{:?} is not an Istio cluster name; every call through it would fail{}", used.name, used.consequence),
                "name the mesh cluster: `outbound|<port>||<host>` for a ServiceEntry or service, `inbound|<port>||` for the FHIR server's own sidecar",
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A bootstrap with one listener holding the filter (`plugin` as its
    /// configuration), `routes` and `clusters`.
    fn bootstrap(plugin: Value, routes: Value, clusters: Value) -> Value {
        with_logs(plugin, routes, clusters, json!([text_log(FIELDS_FORMAT)]))
    }

    const FIELDS_FORMAT: &str =
        "{\"response_code\":%RESPONSE_CODE%,%FILTER_STATE(wasm.fhir_smart_authz_audit:PLAIN)%}\n";
    const LINE_FORMAT: &str = "%FILTER_STATE(wasm.fhir_smart_authz_audit:PLAIN)%\n";

    fn text_log(format: &str) -> Value {
        json!({"name": "envoy.access_loggers.stdout", "typed_config": {"log_format": {"text_format_source": {"inline_string": format}}}})
    }

    fn with_logs(plugin: Value, routes: Value, clusters: Value, logs: Value) -> Value {
        json!({"static_resources": {
            "listeners": [{"filter_chains": [{"filters": [{"typed_config": {
                "@type": format!("type.googleapis.com/{HCM_TYPE}"),
                "access_log": logs,
                "route_config": {"virtual_hosts": [{"name": "v", "routes": routes}]},
                "http_filters": [
                    {"name": "fhir_smart_authz", "typed_config": {"@type": format!("type.googleapis.com/{WASM_FILTER_TYPE}"),
                        "config": {"root_id": "fhir_smart_authz", "configuration": {
                            "@type": "type.googleapis.com/google.protobuf.StringValue", "value": plugin.to_string()}}}},
                    {"name": "envoy.filters.http.router"}]}}]}]}],
            "clusters": clusters}})
    }

    fn tls(name: &str) -> Value {
        json!({"name": name, "transport_socket": {"name": "envoy.transport_sockets.tls"}})
    }

    #[test]
    fn envoy_checks() {
        let jwks = |uri: &str| json!({"issuers": [{"issuer": "https://idp", "audiences": ["a"], "jwks_uri": uri, "jwks_cluster": "idp"}]});
        let introspect = json!({"allow_insecure_inline_secrets": true, "issuers": [{"issuer": "https://idp", "audiences": ["a"],
            "introspection": {"cluster": "idp", "path": "/i", "client_id": "gw", "client_secret": "s"}}]});
        let to_fhir = json!([{"match": {"prefix": "/"}, "route": {"cluster": "fhir"}}]);
        let off = json!({"fhir_smart_authz": {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": true}});
        // (plugin, routes, clusters, error fields, warning fields)
        type Row = (Value, Value, Value, Vec<&'static str>, Vec<&'static str>);
        let rows: Vec<Row> = vec![
            (
                jwks("https://idp/jwks"),
                to_fhir.clone(),
                json!([{"name": "fhir"}, tls("idp")]),
                vec![],
                vec![],
            ),
            (
                jwks("https://idp/jwks"),
                to_fhir.clone(),
                json!([{"name": "fhir"}, {"name": "idp"}]),
                vec!["issuers[0].jwks_cluster"],
                vec![],
            ),
            (
                jwks("http://idp/jwks"),
                to_fhir.clone(),
                json!([{"name": "fhir"}, {"name": "idp"}]),
                vec![],
                vec![],
            ),
            (
                jwks("https://idp/jwks"),
                to_fhir.clone(),
                json!([{"name": "fhir"}, tls("keycloak")]),
                vec!["issuers[0].jwks_cluster"],
                vec![],
            ),
            (
                json!({"upstream": {"cluster": "fhir-server"}}),
                to_fhir.clone(),
                json!([{"name": "fhir"}]),
                vec!["upstream.cluster"],
                vec![],
            ),
            (
                introspect.clone(),
                to_fhir.clone(),
                json!([{"name": "fhir"}, {"name": "idp"}]),
                vec![],
                vec!["issuers[0].introspection.cluster"],
            ),
            (
                introspect,
                to_fhir.clone(),
                json!([{"name": "fhir"}, tls("idp")]),
                vec![],
                vec![],
            ),
            (
                json!({}),
                json!([{"match": {"prefix": "/api"}, "route": {"cluster": "fhir"}}]),
                json!([{"name": "fhir"}]),
                vec![],
                vec!["fhir_base_path"],
            ),
            (
                json!({}),
                json!([{"match": {"prefix": "/fhir/"}, "route": {"cluster": "fhir"}}]),
                json!([{"name": "fhir"}]),
                vec![],
                vec![],
            ),
            (
                json!({}),
                json!([{"match": {"prefix": "/fhir"}, "route": {"cluster": "fhir"}, "typed_per_filter_config": off.clone()},
                               {"match": {"prefix": "/"}, "route": {"cluster": "fhir"}}]),
                json!([{"name": "fhir"}]),
                vec![],
                vec![],
            ),
            (
                json!({}),
                json!([{"match": {"prefix": "/"}, "route": {"cluster": "fhir"}, "typed_per_filter_config": off}]),
                json!([{"name": "fhir"}]),
                vec![],
                vec!["fhir_base_path"],
            ),
        ];
        for (plugin, routes, clusters, errors, warnings) in rows {
            let doc = bootstrap(plugin.clone(), routes, clusters);
            assert_eq!(document_kind(&doc), DocumentKind::EnvoyBootstrap);
            let instances = envoy_instances(&doc).unwrap();
            assert_eq!(instances.len(), 1);
            let instance = instances.first().unwrap();
            assert_eq!(instance.location, "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0]");
            let config = Config::from_json(instance.configuration.as_bytes()).unwrap();
            let (e, w) = check_envoy_instance(&config, instance, &doc);
            let e: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
            let w: Vec<&str> = w.iter().map(|w| w.field.as_str()).collect();
            assert_eq!((e, w), (errors, warnings), "{plugin}");
        }
    }

    /// The access log prints the record in the form the plugin writes it.
    #[test]
    fn audit_encoding_matches_the_access_log() {
        let routes = json!([{"match": {"prefix": "/"}, "route": {"cluster": "fhir"}}]);
        let json_log = json!({"typed_config": {"log_format": {"json_format": {"audit": "%FILTER_STATE(wasm.fhir_smart_authz_audit:PLAIN)%"}}}});
        let struct_log = json!({"typed_config": {"log_format": {"json_format": {"audit": "%FILTER_STATE(wasm.fhir_smart_authz_audit:TYPED)%"}}}});
        let other =
            json!({"typed_config": {"log_format": {"json_format": {"code": "%RESPONSE_CODE%"}}}});
        // (plugin, access logs, errors, warnings)
        let rows = [
            (
                json!({}),
                json!([text_log(FIELDS_FORMAT), other.clone()]),
                0,
                0,
            ),
            (
                json!({"audit": {"encoding": "line"}}),
                json!([text_log(FIELDS_FORMAT)]),
                1,
                0,
            ),
            (json!({}), json!([text_log(LINE_FORMAT)]), 1, 0),
            (
                json!({"audit": {"encoding": "line"}}),
                json!([text_log(LINE_FORMAT)]),
                0,
                0,
            ),
            (
                json!({"audit": {"encoding": "json"}}),
                json!([json_log.clone()]),
                0,
                0,
            ),
            (
                json!({"audit": {"encoding": "struct"}}),
                json!([json_log]),
                1,
                0,
            ),
            (
                json!({"audit": {"encoding": "struct"}}),
                json!([struct_log]),
                0,
                0,
            ),
            (json!({}), json!([other]), 0, 1),
            (json!({"audit": {"enabled": false}}), json!([]), 0, 0),
        ];
        for (plugin, logs, errors, warnings) in rows {
            let doc = with_logs(
                plugin.clone(),
                routes.clone(),
                json!([{"name": "fhir"}]),
                logs.clone(),
            );
            let instances = envoy_instances(&doc).unwrap();
            let instance = instances.first().unwrap();
            let config = Config::from_json(instance.configuration.as_bytes()).unwrap();
            let (e, w) = check_envoy_instance(&config, instance, &doc);
            assert_eq!(
                (e.len(), w.len()),
                (errors, warnings),
                "{plugin} {logs}: {e:?} {w:?}"
            );
            assert!(e
                .iter()
                .chain(w.iter().map(|_| &e[0]).take(0))
                .all(|e| e.field == "audit.encoding"));
        }
    }

    /// A running Envoy's `/config_dump` reads like a bootstrap: listeners
    /// and clusters from the dump's sections.
    #[test]
    fn config_dump_is_read_as_a_bootstrap() {
        let plugin = json!({"issuers": [{"issuer": "https://idp", "audiences": ["a"], "jwks_uri": "https://idp/jwks", "jwks_cluster": "outbound|443||idp"}],
            "upstream": {"cluster": "inbound|8080||"}});
        let boot = bootstrap(
            plugin,
            json!([{"match": {"prefix": "/"}, "route": {"cluster": "x"}}]),
            json!([]),
        );
        let listener = boot
            .pointer("/static_resources/listeners/0")
            .unwrap()
            .clone();
        let dump = json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
             "dynamic_listeners": [{"name": "l", "active_state": {"listener": listener}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
             "dynamic_active_clusters": [{"cluster": {"name": "inbound|8080||"}}, {"cluster": {"name": "outbound|443||idp"}}]}]});
        assert_eq!(document_kind(&dump), DocumentKind::EnvoyBootstrap);
        let doc = as_bootstrap(&dump);
        let instances = envoy_instances(&doc).unwrap();
        let instance = instances.first().unwrap();
        let config = Config::from_json(instance.configuration.as_bytes()).unwrap();
        let (e, _) = check_envoy_instance(&config, instance, &doc);
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["issuers[0].jwks_cluster"],
            "https without TLS on the dumped cluster"
        );
    }

    /// The native module's filter (a dynamic module named
    /// `fhir_smart_authz`) is an instance as the wasm filter is: its
    /// `filter_config`, the clusters it calls and the routes that disable it
    /// under its own name; another module's filter is not.
    #[test]
    fn dynamic_module_filters_are_instances() {
        let plugin = json!({"issuers": [{"issuer": "https://idp", "audiences": ["a"], "jwks_uri": "https://idp/jwks", "jwks_cluster": "idp"}]});
        let native = |module: &str, config: Value| {
            json!({"name": "envoy.filters.http.dynamic_modules", "typed_config": {
                "@type": format!("type.googleapis.com/{NATIVE_FILTER_TYPE}"),
                "dynamic_module_config": {"name": module, "do_not_close": true},
                "filter_name": module, "filter_config": config}})
        };
        let string_value = |v: &Value| json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": v.to_string()});
        let off = json!({"envoy.filters.http.dynamic_modules": {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": true}});
        let mut doc = bootstrap(
            plugin.clone(),
            json!([{"match": {"prefix": "/"}, "route": {"cluster": "fhir"}, "typed_per_filter_config": off}]),
            json!([{"name": "fhir"}]),
        );
        let filters = doc
            .pointer_mut(
                "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters",
            )
            .unwrap();
        *filters = json!([
            native("other_module", json!({})),
            native("fhir_smart_authz", string_value(&plugin))
        ]);
        let instances = envoy_instances(&doc).unwrap();
        assert_eq!(instances.len(), 1);
        let instance = instances.first().unwrap();
        assert!(
            instance.location.ends_with(".http_filters[1]"),
            "{}",
            instance.location
        );
        let config = Config::from_json(instance.configuration.as_bytes()).unwrap();
        let (e, w) = check_envoy_instance(&config, instance, &doc);
        let fields = |v: Vec<String>| v;
        assert_eq!(
            fields(e.iter().map(|e| e.field.clone()).collect()),
            ["issuers[0].jwks_cluster"],
            "the cluster it calls is missing"
        );
        assert_eq!(
            fields(w.iter().map(|w| w.field.clone()).collect()),
            ["fhir_base_path"],
            "every route disables it under its name"
        );
        *doc.pointer_mut("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters/1/typed_config/filter_config")
            .unwrap() = json!({"@type": "type.googleapis.com/google.protobuf.Struct", "value": {}});
        let e = envoy_instances(&doc).unwrap_err();
        assert!(
            e.field
                .ends_with(".http_filters[1].typed_config.filter_config"),
            "{}",
            e.field
        );
    }

    #[test]
    fn istio_cluster_names() {
        let doc = json!({"kind": "WasmPlugin", "metadata": {"name": "p", "namespace": "fhir"},
            "spec": {"pluginConfig": {"upstream": {"cluster": "inbound|8080||"},
                "issuers": [{"issuer": "https://idp", "audiences": ["a"], "jwks_uri": "https://idp/jwks", "jwks_cluster": "keycloak"}]}}});
        assert_eq!(document_kind(&doc), DocumentKind::IstioWasmPlugin);
        let instance = istio_instance(&doc).unwrap();
        assert_eq!(instance.location, "WasmPlugin fhir/p");
        let config = Config::from_json(instance.configuration.as_bytes()).unwrap();
        let fields: Vec<String> = check_istio_instance(&config)
            .into_iter()
            .map(|w| w.field)
            .collect();
        assert_eq!(fields, vec!["issuers[0].jwks_cluster"]);
    }
}
