//! The URLs of a complete export's manifest (Bulk Data IG: `output[].url`,
//! `error[].url`, `deleted[].url`, and the `link[].url` of a partial
//! manifest's next page) that lie under the gateway.

use super::settings::BulkConfig;
use super::urls::url_key;
use crate::fhir::FhirBase;
use serde_json::Value;

/// The job URLs (keys) a manifest lists under the gateway's status or file
/// paths; other URLs (object storage, other hosts) are left alone.
pub fn manifest_urls(
    cfg: &BulkConfig,
    base: &FhirBase,
    body: &[u8],
) -> Result<Vec<String>, String> {
    let doc: Value = crate::json::from_slice_strict(body)
        .map_err(|e| format!("the manifest is not JSON: {e}"))?;
    let Value::Object(m) = doc else {
        return Err("the manifest is not a JSON object".into());
    };
    let mut out: Vec<String> = Vec::new();
    for list in ["output", "error", "deleted", "link"] {
        let Some(items) = m.get(list).and_then(Value::as_array) else {
            continue;
        };
        for url in items
            .iter()
            .filter_map(|i| i.get("url"))
            .filter_map(Value::as_str)
        {
            let Some(key) = url_key(base, url) else {
                continue;
            };
            let path = key.split('?').next().unwrap_or("");
            if (cfg.is_file_path(path) || cfg.is_status_path(path)) && !out.contains(&key) {
                out.push(key);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_under_the_gateway() {
        let base =
            FhirBase::new("/fhir", Some("http://gw/fhir")).unwrap_or_else(|e| panic!("{e:?}"));
        let body = br#"{"transactionTime":"2026-01-01T00:00:00Z","requiresAccessToken":true,
            "output":[{"type":"Patient","url":"http://gw/fhir/bulk-files/j1/Patient.ndjson"},
                      {"type":"Observation","url":"https://storage.example.net/j1/Observation.ndjson"},
                      {"type":"Binary","url":"http://gw/fhir/Binary/b1"}],
            "error":[{"type":"OperationOutcome","url":"http://gw/fhir/bulk-files/j1/errors.ndjson"}],
            "link":[{"relation":"next","url":"http://gw/fhir/bulk-status/j1?page=2"}]}"#;
        assert_eq!(
            manifest_urls(&BulkConfig::default(), &base, body),
            Ok(vec![
                "bulk-files/j1/Patient.ndjson".to_string(),
                "bulk-files/j1/errors.ndjson".to_string(),
                "bulk-status/j1?page=2".to_string(),
            ])
        );
        assert!(manifest_urls(&BulkConfig::default(), &base, b"[]").is_err());
        assert!(manifest_urls(&BulkConfig::default(), &base, b"{").is_err());
    }
}
