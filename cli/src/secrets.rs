//! Where the CLI looks the configuration's secret references up: its own
//! process environment and files, as the native filter does; so offline
//! checks need no secret written in a file.

use fhir_smart_authz_core::secret::SecretSource;
use std::ffi::OsString;

pub struct ProcessSecrets;

impl SecretSource for ProcessSecrets {
    fn env_var(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }
    fn read_file(&self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| e.to_string())
    }
}
