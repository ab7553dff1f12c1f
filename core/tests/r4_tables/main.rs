//! The generator of the FHIR R4 tables in `core/src/fhir/r4/` and the test that
//! the committed tables are exactly what it generates.
//!
//! Inputs (FHIR 4.0.1, HL7, CC0):
//! * `search-parameters.json`: every R4 core SearchParameter. Looked up in
//!   `$FHIR_R4_DIR`, else `/work/shared/fhir-r4/`, else `../shared/fhir-r4/`
//!   next to the checkout; when absent (e.g. CI) the generator reads the
//!   committed extract `core/tests/r4_tables/search-parameters.extract.json`
//!   (the same entries reduced to the fields it reads), so the agreement test
//!   always runs; where the full file is present a test checks that the
//!   extract is its projection.
//! * `core/src/fhir/r4/compartmentdefinition-patient.json`: the R4
//!   CompartmentDefinition `patient` (in the project).
//!
//! `UPDATE_R4_TABLES=1 cargo test -p fhir-smart-authz-core --test r4_tables`
//! rewrites `core/src/fhir/r4/search_params.rs` and
//! `core/src/fhir/r4/patient_compartment.rs`.
//!
//! `policy_tables` checks what the policy derives from the tables (the
//! narrowing pin of every compartment type, which bare ids pin exactly) and
//! pins what the spec leaves open, so it changes only on purpose.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod agreement;
mod inputs;
mod model;
mod patient_compartment;
mod policy_tables;
mod search_params;

use fhir_smart_authz_core::fhir::r4;
use fhir_smart_authz_core::fhir::resource_types::RESOURCE_TYPES;
use fhir_smart_authz_core::policy::compartment as policy;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use inputs::*;
use model::*;
use patient_compartment::*;
use search_params::*;

pub(crate) const R4_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/fhir/r4");
pub(crate) const SEARCH_PARAMS_RS: &str = "search_params.rs";
pub(crate) const PATIENT_COMPARTMENT_RS: &str = "patient_compartment.rs";
pub(crate) const COMPARTMENT_JSON: &str = "compartmentdefinition-patient.json";
pub(crate) const CORE_URL: &str = "http://hl7.org/fhir/SearchParameter/";
pub(crate) const VERSION: &str = "4.0.1";
