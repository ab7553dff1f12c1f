//! Where the CLI looks the configuration's secret references up: its own
//! process environment and files, as the native module does (the core's
//! `ProcessSecrets`); so offline checks need no secret written in a file.

pub use fhir_smart_authz_core::secret::ProcessSecrets;
