//! Job URLs: the status URL a kick-off answers with (`Content-Location`)
//! and the output-file URLs of its manifests, as keys relative to the FHIR
//! base (`bulk-status/abc`, `$export-poll-status?_jobId=abc`), and the
//! requests that reach them.

use super::settings::BulkConfig;
use crate::decision::BulkAction;
use crate::fhir::FhirBase;

/// A request to a job URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUrl {
    pub action: BulkAction,
    /// The URL relative to the base, with its query.
    pub key: String,
}

/// Whether the request goes to a status or file URL (`None`: it does not),
/// and which action it is (`Err`: a refusal for `400 invalid_request`).
pub fn job_request(
    cfg: &BulkConfig,
    base: &FhirBase,
    method: &str,
    target: &str,
) -> Option<Result<JobUrl, String>> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let rel = path.strip_prefix(base.path.as_str())?.strip_prefix('/')?;
    let status = cfg.is_status_path(rel);
    if !status && !cfg.is_file_path(rel) {
        return None;
    }
    Some(job_url(rel, query, status, method))
}

fn job_url(rel: &str, query: Option<&str>, status: bool, method: &str) -> Result<JobUrl, String> {
    let key = key_of(rel, query).ok_or_else(|| {
        "a Bulk Data job URL is used exactly as the server wrote it: plain path segments (letters, digits, `-_.~$`) and a plain query (`=` and `&`)".to_string()
    })?;
    let action = match (method, status) {
        ("GET" | "HEAD", true) => BulkAction::Status,
        ("DELETE", true) => BulkAction::Cancel,
        ("GET" | "HEAD", false) => BulkAction::File,
        (_, true) => {
            return Err(format!(
                "{method} is not a Bulk Data status request: poll with GET, cancel with DELETE"
            ))
        }
        (_, false) => {
            return Err(format!(
                "{method} is not a Bulk Data file request: download with GET"
            ))
        }
    };
    Ok(JobUrl { action, key })
}

/// The key of a URL the server wrote (`Content-Location`, a manifest
/// `url`): absolute under `fhir_base_url` (or, without it, any absolute URL
/// whose path lies under the base path), or an absolute path under the
/// base path. `None`: it points elsewhere (or is not plain).
pub fn url_key(base: &FhirBase, url: &str) -> Option<String> {
    let path_and_query = if url.starts_with('/') {
        url
    } else if let Some(b) = &base.url {
        let rest = url.strip_prefix(b.as_str())?;
        if !rest.starts_with('/') {
            return None;
        }
        return split_key(rest.strip_prefix('/')?);
    } else {
        let after_scheme = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))?;
        &after_scheme[after_scheme.find('/')?..]
    };
    let rest = path_and_query.strip_prefix(base.path.as_str())?;
    split_key(rest.strip_prefix('/')?)
}

fn split_key(rel_and_query: &str) -> Option<String> {
    match rel_and_query.split_once('?') {
        Some((rel, q)) => key_of(rel, Some(q)),
        None => key_of(rel_and_query, None),
    }
}

/// `rel[?query]` when both are plain (the one grammar of job URLs).
fn key_of(rel: &str, query: Option<&str>) -> Option<String> {
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'$'))
    };
    if !rel.split('/').all(segment_ok) {
        return None;
    }
    match query {
        None => Some(rel.to_string()),
        Some(q)
            if !q.is_empty()
                && q.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'-' | b'_' | b'.' | b'~' | b'$' | b'=' | b'&')
                }) =>
        {
            Some(format!("{rel}?{q}"))
        }
        Some(_) => None,
    }
}

/// The part of a key a file's siblings share (its path up to the last `/`).
pub(super) fn dir_of(key: &str) -> &str {
    let path = key.split('?').next().unwrap_or(key);
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(url: Option<&str>) -> FhirBase {
        FhirBase::new("/fhir", url).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    #[rustfmt::skip]
    fn requests_to_job_urls() {
        let c = BulkConfig::default();
        let b = base(None);
        let ok = |a: BulkAction, k: &str| {
            Some(Ok(JobUrl {
                action: a,
                key: k.into(),
            }))
        };
        for (method, target, expected) in [
            ("GET", "/fhir/bulk-status/abc", ok(BulkAction::Status, "bulk-status/abc")),
            ("HEAD", "/fhir/bulk-status/abc", ok(BulkAction::Status, "bulk-status/abc")),
            ("DELETE", "/fhir/bulk-status/abc", ok(BulkAction::Cancel, "bulk-status/abc")),
            ("GET", "/fhir/$export-poll-status?_jobId=j1", ok(BulkAction::Status, "$export-poll-status?_jobId=j1")),
            ("GET", "/fhir/bulk-files/abc/Patient.ndjson", ok(BulkAction::File, "bulk-files/abc/Patient.ndjson")),
            ("GET", "/fhir/Patient/1", None),
            ("GET", "/fhir/bulk-statusx/1", None),
            ("GET", "/other/bulk-status/1", None),
        ] {
            assert_eq!(
                job_request(&c, &b, method, target),
                expected,
                "{method} {target}"
            );
        }
        for (method, target) in [
            ("POST", "/fhir/bulk-status/abc"),
            ("DELETE", "/fhir/bulk-files/abc/x.ndjson"),
            ("GET", "/fhir/bulk-status/../Patient"),
            ("GET", "/fhir/bulk-status/a%2Fb"),
            ("GET", "/fhir/bulk-status//a"),
            ("GET", "/fhir/bulk-status/a?x=%41"),
            ("GET", "/fhir/bulk-status/a#f"),
        ] {
            assert!(
                matches!(job_request(&c, &b, method, target), Some(Err(_))),
                "{method} {target}"
            );
        }
    }

    #[test]
    #[rustfmt::skip]
    fn keys_of_server_urls() {
        let with = base(Some("https://gw.example.org/fhir"));
        let without = base(None);
        for (b, url, expected) in [
            (&with, "https://gw.example.org/fhir/bulk-status/abc", Some("bulk-status/abc")),
            (&with, "https://gw.example.org/fhir/$export-poll-status?_jobId=1", Some("$export-poll-status?_jobId=1")),
            (&with, "/fhir/bulk-status/abc", Some("bulk-status/abc")),
            (&with, "https://other.example.org/fhir/bulk-status/abc", None),
            (&with, "https://gw.example.org/fhirx/bulk-status/abc", None),
            (&with, "https://storage.example.net/exports/abc.ndjson", None),
            (&without, "http://127.0.0.1:1234/fhir/bulk-files/a/Patient.ndjson", Some("bulk-files/a/Patient.ndjson")),
            (&without, "http://127.0.0.1:1234/other/x", None),
            (&without, "ftp://x/fhir/a", None),
            (&with, "https://gw.example.org/fhir/bulk-status/a/../b", None),
        ] {
            assert_eq!(url_key(b, url).as_deref(), expected, "{url}");
        }
        assert_eq!(dir_of("bulk-files/a/Patient.ndjson"), "bulk-files/a");
        assert_eq!(dir_of("x"), "");
    }
}
