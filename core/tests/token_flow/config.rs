//! Issuer and token configuration errors name their field.

use super::*;

#[test]
fn config_validation_names_fields() {
    let jwks: Value = serde_json::from_str(JWKS).unwrap();
    for (cfg, field, text) in [
        (
            json!({"issuers": [{"issuer": ISS, "jwks": jwks}]}),
            "issuers[0].audiences",
            "fhir_base_url",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS}]}),
            "issuers[0]",
            "set exactly one of jwks, jwks_uri or introspection",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks": jwks, "jwks_uri": "https://x/j", "jwks_cluster": "c"}]}),
            "issuers[0]",
            "exactly one",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": "", "jwks": jwks}]}),
            "issuers[0].issuer",
            "exact `iss`",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks_uri": "https://x/j"}]}),
            "issuers[0].jwks_cluster",
            "required",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks_uri": "x/j", "jwks_cluster": "c"}]}),
            "issuers[0].jwks_uri",
            "absolute",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks": {"keys": []}}]}),
            "issuers[0].jwks",
            "no usable signing key",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks": jwks, "algorithms": ["none"]}]}),
            "issuers[0].algorithms[0]",
            "never accepted",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks": jwks, "algorithms": ["RS256", "HS256"]}]}),
            "issuers[0].algorithms[1]",
            "symmetric",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks": jwks}, {"issuer": ISS, "jwks": jwks}]}),
            "issuers[1].issuer",
            "duplicates issuers[0]",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "introspection": {"cluster": "as", "path": "introspect", "client_id": "a", "client_secret": {"env": "B"}}}]}),
            "issuers[0].introspection.path",
            "starting with `/`",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "introspection": {"cluster": "as", "path": "/i", "client_secret": {"env": "B"}}}]}),
            "issuers[0].introspection.client_id",
            "required",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [
            {"issuer": "a", "introspection": {"cluster": "as", "path": "/i", "client_id": "a", "client_secret": {"env": "B"}}},
            {"issuer": "b", "introspection": {"cluster": "as", "path": "/i", "client_id": "a", "client_secret": {"env": "B"}}}]}),
            "issuers[1].introspection",
            "at most one",
        ),
        (
            json!({"token": {"max_bytes": 10}}),
            "token.max_bytes",
            "at least 64",
        ),
        (
            json!({"token": {"leeway_seconds": 3600}}),
            "token.leeway_seconds",
            "at most 600",
        ),
        (
            json!({"token": {"leway_seconds": 5}}),
            "token.leway_seconds",
            "unknown field",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks": jwks, "audience": "x"}]}),
            "issuers[0].audience",
            "unknown field",
        ),
    ] {
        let e = Config::from_json(cfg.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field, field, "{cfg}: {e}");
        assert!(e.message.contains(text), "{cfg}: {e}");
    }
    // Defaults.
    let c = Config::default_config().unwrap();
    assert_eq!(
        c.token,
        TokenSettings {
            leeway_seconds: 60,
            max_bytes: 16384,
            allow_query_parameter: false,
            cache_max_entries: 10000,
            host_crypto: true,
        }
    );
    let c = Config::from_json(br#"{"token": {"host_crypto": false}}"#).unwrap();
    assert!(!c.token.host_crypto);
    let c = remote_config(json!({}));
    assert_eq!(
        (
            c.issuers[0].jwks_refresh_seconds,
            c.issuers[0].jwks_min_refetch_seconds
        ),
        (300, 30)
    );
    assert_eq!(
        c.issuers[0].effective_audiences(c.base.url.as_deref()),
        vec![AUD.to_string()]
    );
    assert_eq!(c.issuers[0].effective_algorithms().len(), 9);
}
