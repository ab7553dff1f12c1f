//! `bulk`: where a Bulk Data server puts its job URLs, and the bounds of
//! the job registry.

use crate::config_error::ConfigError;
use crate::fhir::resource_types::is_resource_type;
use serde::Deserialize;

/// Default `bulk.status_paths`: the status URLs (relative to the FHIR base)
/// of the rig's sekmet-fhir (`bulk-status/<id>`), HAPI FHIR and Smile
/// (`$export-poll-status?_jobId=<id>`), the Microsoft FHIR server
/// (`_operations/export/<id>`), the SMART reference server
/// (`bulkstatus/<id>`) and IBM LinuxForHealth (`$bulkdata-status?job=<id>`).
pub const DEFAULT_STATUS_PATHS: &[&str] = &[
    "bulk-status",
    "$export-poll-status",
    "_operations/export",
    "bulkstatus",
    "$bulkdata-status",
];

/// Default `bulk.file_paths`: output files served under the FHIR base by
/// sekmet-fhir (`bulk-files/<id>/<name>`) and the SMART reference server
/// (`bulkfiles/<name>`). HAPI serves files as `Binary/<id>` (decided as
/// Binary reads); the Microsoft and IBM servers put them in object storage
/// (not under the gateway).
pub const DEFAULT_FILE_PATHS: &[&str] = &["bulk-files", "bulkfiles"];

/// The `bulk` section of the plugin configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkConfig {
    /// Paths under the FHIR base where the server's status URLs live.
    pub status_paths: Vec<String>,
    /// Paths under the FHIR base where the server's output files live.
    pub file_paths: Vec<String>,
    /// Jobs the registry remembers at once (all worker VMs together); the
    /// oldest is forgotten first when a new one needs room.
    pub max_jobs: usize,
    /// Kick-offs one client may have running (not yet complete) at once;
    /// one more is answered 429 with `Retry-After`.
    pub max_active_per_client: usize,
    /// The `Retry-After` (seconds) of that 429.
    pub retry_after_seconds: u64,
    /// A job is forgotten this long after its kick-off.
    pub job_ttl_seconds: u64,
    /// Output-file URLs remembered per job (from its manifests).
    pub max_files_per_job: usize,
}

impl Default for BulkConfig {
    fn default() -> Self {
        BulkConfig {
            status_paths: DEFAULT_STATUS_PATHS.iter().map(|s| s.to_string()).collect(),
            file_paths: DEFAULT_FILE_PATHS.iter().map(|s| s.to_string()).collect(),
            max_jobs: 256,
            max_active_per_client: 2,
            retry_after_seconds: 120,
            job_ttl_seconds: 86_400,
            max_files_per_job: 1000,
        }
    }
}

impl BulkConfig {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        let mut seen: Vec<&str> = Vec::new();
        for (list, name) in [
            (&self.status_paths, "status_paths"),
            (&self.file_paths, "file_paths"),
        ] {
            for (i, p) in list.iter().enumerate() {
                let at = format!("{field}.{name}[{i}]");
                check_path(p).map_err(|why| ConfigError::new(&at, why))?;
                if let Some(other) = seen.iter().find(|o| overlaps(o, p)) {
                    return Err(ConfigError::new(
                        &at,
                        format!("overlaps `{other}`: each status or file path may be listed once and not under another"),
                    ));
                }
                seen.push(p);
            }
        }
        let bounded = |name: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::new(
                    format!("{field}.{name}"),
                    format!("must be between {lo} and {hi} (got {v})"),
                ))
            }
        };
        bounded("max_jobs", self.max_jobs as u64, 1, 4096)?;
        bounded(
            "max_active_per_client",
            self.max_active_per_client as u64,
            1,
            self.max_jobs as u64,
        )?;
        bounded("retry_after_seconds", self.retry_after_seconds, 1, 86_400)?;
        bounded("job_ttl_seconds", self.job_ttl_seconds, 60, 30 * 86_400)?;
        bounded(
            "max_files_per_job",
            self.max_files_per_job as u64,
            1,
            10_000,
        )?;
        Ok(())
    }

    /// Whether `rel` (a path relative to the base, no query) is a status URL.
    pub fn is_status_path(&self, rel: &str) -> bool {
        self.status_paths.iter().any(|p| under(rel, p))
    }

    /// Whether `rel` is an output-file URL.
    pub fn is_file_path(&self, rel: &str) -> bool {
        self.file_paths.iter().any(|p| under(rel, p))
    }
}

/// `rel` is `p` or lies under it.
fn under(rel: &str, p: &str) -> bool {
    rel == p || rel.strip_prefix(p).is_some_and(|r| r.starts_with('/'))
}

fn overlaps(a: &str, b: &str) -> bool {
    under(a, b) || under(b, a)
}

/// A plain relative path whose first segment is no FHIR route.
fn check_path(p: &str) -> Result<(), String> {
    let segments: Vec<&str> = p.split('/').collect();
    let plain = |s: &&str| {
        !s.is_empty()
            && *s != "."
            && *s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'$'))
    };
    if !segments.iter().all(plain) {
        return Err(format!(
            "must be a path relative to the FHIR base without leading or trailing `/`, empty or dot segments, of letters, digits and `-_.$`, e.g. \"bulk-status\" (got {p:?})"
        ));
    }
    let first = segments.first().copied().unwrap_or("");
    if is_resource_type(first)
        || matches!(first, "metadata" | ".well-known" | "_history" | "_search")
    {
        return Err(format!(
            "`{first}` is a FHIR route: a job path must not hide resources or the server's own endpoints"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[rustfmt::skip]
    fn defaults_are_valid() {
        assert!(BulkConfig::default().validate("bulk").is_ok());
    }

    #[test]
    #[rustfmt::skip]
    fn paths_are_checked() {
        for (paths, field) in [
            (vec!["/bulk-status"], "bulk.status_paths[0]"),
            (vec!["bulk-status/"], "bulk.status_paths[0]"),
            (vec!["a/../b"], "bulk.status_paths[0]"),
            (vec!["Patient"], "bulk.status_paths[0]"),
            (vec!["metadata"], "bulk.status_paths[0]"),
            (vec!["jobs", "jobs/x"], "bulk.status_paths[1]"),
            (vec!["a b"], "bulk.status_paths[0]"),
        ] {
            let c = BulkConfig {
                status_paths: paths.iter().map(|s| s.to_string()).collect(),
                ..BulkConfig::default()
            };
            let e = c.validate("bulk").err().map(|e| e.field);
            assert_eq!(e.as_deref(), Some(field), "{paths:?}");
        }
        let c = BulkConfig {
            file_paths: vec!["bulk-status/files".into()],
            ..BulkConfig::default()
        };
        assert_eq!(
            c.validate("bulk").err().map(|e| e.field).as_deref(),
            Some("bulk.file_paths[0]")
        );
    }

    #[test]
    #[rustfmt::skip]
    fn bounds_are_checked() {
        for (c, field) in [
            (BulkConfig { max_jobs: 0, ..BulkConfig::default() }, "bulk.max_jobs"),
            (BulkConfig { max_active_per_client: 0, ..BulkConfig::default() }, "bulk.max_active_per_client"),
            (BulkConfig { max_jobs: 2, max_active_per_client: 3, ..BulkConfig::default() }, "bulk.max_active_per_client"),
            (BulkConfig { job_ttl_seconds: 5, ..BulkConfig::default() }, "bulk.job_ttl_seconds"),
            (BulkConfig { retry_after_seconds: 0, ..BulkConfig::default() }, "bulk.retry_after_seconds"),
            (BulkConfig { max_files_per_job: 0, ..BulkConfig::default() }, "bulk.max_files_per_job"),
        ] {
            assert_eq!(
                c.validate("bulk").err().map(|e| e.field).as_deref(),
                Some(field)
            );
        }
    }

    #[test]
    #[rustfmt::skip]
    fn status_and_file_paths_match_on_segments() {
        let c = BulkConfig::default();
        assert!(c.is_status_path("bulk-status/abc"));
        assert!(c.is_status_path("$export-poll-status"));
        assert!(c.is_status_path("_operations/export/1"));
        assert!(!c.is_status_path("bulk-statusx/abc"));
        assert!(!c.is_status_path("_operations/exports"));
        assert!(c.is_file_path("bulk-files/abc/Patient.ndjson"));
        assert!(!c.is_file_path("Binary/abc"));
    }
}
