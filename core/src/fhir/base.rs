//! Where the FHIR server is: the base path on this listener and the absolute
//! base URL clients see. The classifier, the policy and the token audiences
//! read it; the configuration builds it once.

use crate::config_error::ConfigError;
use crate::url::{has_http_scheme, HttpUrl};

/// The FHIR base, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirBase {
    /// Starts with `/`, no trailing `/` (empty = the root).
    pub path: String,
    /// Absolute base URL without trailing `/` (`fhir_base_url`): recognises
    /// absolute references and is the default token audience.
    pub url: Option<String>,
}

impl FhirBase {
    /// Validate and normalise `fhir_base_path` and `fhir_base_url`.
    pub fn new(path: &str, url: Option<&str>) -> Result<FhirBase, ConfigError> {
        Ok(FhirBase {
            path: normalise_path(path)?,
            url: url.map(normalise_url).transpose()?,
        })
    }
}

fn normalise_path(p: &str) -> Result<String, ConfigError> {
    let field = "fhir_base_path";
    if !p.starts_with('/') {
        return Err(ConfigError::new(
            field,
            format!("must start with `/`, e.g. \"/fhir\" (got {p:?})"),
        ));
    }
    if p.contains(['?', '#', '%', ';', '\\']) || p.split('/').skip(1).any(|s| s == "." || s == "..")
    {
        return Err(ConfigError::new(
            field,
            "must be a plain path without `?`, `#`, `%`, `;`, `\\` or dot segments, e.g. \"/fhir/R4\"",
        ));
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.contains("//") {
        return Err(ConfigError::new(
            field,
            "must not contain empty segments (`//`)",
        ));
    }
    Ok(trimmed.to_string())
}

fn normalise_url(u: &str) -> Result<String, ConfigError> {
    let field = "fhir_base_url";
    if !has_http_scheme(u) {
        return Err(ConfigError::new(field, format!("must be an absolute http(s) URL such as \"https://fhir.example.org/fhir\" (got {u:?})")));
    }
    match HttpUrl::parse(u) {
        Some(url) if !url.has_query() => Ok(u.trim_end_matches('/').to_string()),
        _ => Err(ConfigError::new(
            field,
            "must be an absolute URL with a host and no query or fragment",
        )),
    }
}
