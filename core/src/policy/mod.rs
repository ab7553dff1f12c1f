//! Policy: which SMART scope letters on which types an interaction needs, and
//! the patient-compartment rules. Pure; consumes [`crate::fhir::Interaction`].
//!
//! * [`AuthContext`] is built once per token from verified claims.
//! * [`authorize`] decides one classified interaction.
//! * [`check_response`] is the pure response check behind the obligations;
//!   [`check_obligations`] runs them all and the label filter.
//!
//! # Letters per interaction
//! r: read, vread, instance history · s: type/system/compartment search,
//! type/system history, paging · u: update, patch · c: create · d: delete.
//! Conditional create/update/patch/delete also need s on the type. Includes
//! need r on the target type, revincludes s on the source type.
//!
//! # Scope contexts
//! A need is met by a user/ or system/ scope (type and letters only), then a
//! user/ or system/ granular scope, then a patient/ scope (patient context and
//! compartment rules; granular ones also their query). The letters of one
//! interaction on a type (a conditional write's letter and `s`) come all from
//! user/ and system/ scopes or all from patient/ scopes. Scopes are a union; an
//! invalid scope string is ignored and reported in `Decision.diagnostics`.
//!
//! # Decisions where the specifications are silent
//! * **Types outside the Patient compartment under patient/ scopes**: readable
//!   and searchable only when listed in `policy.patient_scope_public_types`
//!   (default [`DEFAULT_PATIENT_SCOPE_PUBLIC_TYPES`]: shared reference data such
//!   as Medication, Organization, Practitioner, Location, terminology). Others
//!   (e.g. Device, which has a patient element but is not in the R4
//!   compartment) are denied. patient/ scopes never write these types.
//! * **Pinning a search**: a pin parameter of the type (its R4 compartment
//!   parameters and the R4 parameters that follow only compartment paths,
//!   `Observation?patient=`, `Encounter?subject=`; generated from the spec,
//!   see `compartment.rs`; on Patient only `_id`), whose every comma-OR value
//!   is the context patient (`123`, `Patient/123`,
//!   `{fhir_base_url}/Patient/123`), with no modifier other than `:Patient`
//!   and no chain. A bare id on a parameter that can point at other types
//!   (`subject=123` also matches `Group/123`) is allowed with a response
//!   compartment check. Values naming another patient are refused (403), pins
//!   naming several patients too (400, `pins.rs`).
//! * **Narrowing** (`policy.patient_search = narrow`): a search that is not
//!   allowed as sent may be allowed with the missing pin (or a granular
//!   scope's parameter) added in front of its query; `Decision::narrowing`,
//!   which the engine turns into `Decision::rewrite`. Every allow that rests
//!   on a search parameter also asks for `Prefer: handling=strict`.
//! * **Types a search reads** (`traversal.rs`, `include.rs`): chains, `_has`,
//!   `_include`/`_revinclude` follow the R4 reference targets; each type
//!   read needs its letter; what R4 cannot tell is refused.
//! * **Reads by id** of compartment resources: allowed with
//!   `CheckResponseCompartment` (or denied: `read_outside_request = "deny"`).
//! * **Writes by id** (update, patch, delete) of compartment resources other
//!   than the patient's own Patient: allowed with the write pre-check
//!   (`CheckStored`: the filter reads the stored resource first;
//!   `patient_update_by_id = "check_stored"`, default), or the body alone
//!   decides updates and only the own Patient is patched or deleted
//!   (`"check_body"`), or updates by id are refused too (`"deny"`).
//!   patient/ scopes never create Patient resources; a conditional update
//!   carries no body `id`; conditional update/patch/delete criteria pin
//!   exactly (a bare id, which may name a Group, is not enough).
//! * **References in written resources** (`references.rs`): under patient/
//!   scopes none names another patient in any form, unreadable forms are
//!   refused, conditional references in compartment elements are refused; a
//!   conditional reference elsewhere is a search on its type under every
//!   scope. A Bundle entry's `fullUrl` names what the entry writes (only `PUT
//!   Patient/{id}` names a known patient).
//! * **PATCH** (`patch.rs`): a JSON Patch operation touching a compartment
//!   element must set it to the context patient; a FHIRPath Patch (paths the
//!   gateway does not evaluate) is refused under patient/ scopes.
//! * **Letters of one interaction** are met all by user/ and system/ scopes
//!   or all by patient/ scopes, never mixed.
//! * **Paging** (`_getpages`): the paging link is the upstream's and names
//!   no type, so the page is checked on its response: a non-granular scope
//!   with s on some type lets the request through with
//!   `CheckResponseTypes` (every entry's type searchable, `include` entries
//!   readable; no check under `*.rs`), and under patient/ scopes with
//!   `CheckResponseCompartment` too (`patient_paging = "check_response"`,
//!   default) or not at all (`"deny"`). Granular-only tokens cannot page.
//!   Pages are not bound to the token of the first page (README).
//! * **`_include` without a target type** (`Observation:subject`): `r` on
//!   every R4 target the token can read; the others must be absent from the
//!   response (`Obligation::CheckResponseTypesAbsent`). `_query`, `_filter`
//!   and `_list` are refused under patient/ scopes, and so are `_has`,
//!   chained parameters and `*` includes by default.
//! * **Operations**: `policy.operations` (replaces the default table when
//!   given). `Patient/{id}/$everything` under patient/ scopes: every
//!   resource of the response is checked, as for `Patient/{id}/*`. `Patient/$export` is system/ only by default: under a patient/
//!   scope it would export every patient. `$validate`: c on the type (the
//!   body must belong to the patient under patient/ scopes), u at instance
//!   level. Unknown operations: `operation_not_permitted`. `_mdm` (linked
//!   MDM records) is refused under patient/ scopes. `$export-poll-status`
//!   needs a system/ scope with `rs` on some type (`OpTarget::AnyType`).
//! * **Security labels** (`policy.labels`, [`labels`]): for a token that
//!   may not see every restricted label, searches are narrowed with
//!   `_security:not` (or only filtered), search forms that could reveal
//!   labelled data are refused, and responses are filtered.
//! * **Bundles**: every entry decided as if sent alone; one denied entry
//!   denies the whole request (`bundle_entry_denied`). Entries' obligations
//!   apply to the whole response.

mod answer_gate;
mod authorize;
mod bundle;
pub mod compartment;
mod context;
mod evaluator;
mod export;
mod granular;
mod include;
mod interaction;
pub mod labels;
mod need;
mod operations;
mod patch;
mod patient_rule;
mod pins;
mod references;
mod resource;
mod response_check;
mod response_types;
mod response_verdict;
mod search;
mod settings;
mod stored;
mod traversal;

pub use answer_gate::{answer_gate, full_answer_request, AnswerGate};
pub use authorize::authorize;
pub use context::AuthContext;
pub use labels::{filter_labels, LabelClaims, LabelPolicy, LabelResponse, LabelsFiltered};
pub use resource::resource_matches_query;
pub use response_check::check_response;
pub use response_verdict::{check_obligations, check_obligations_with, ResponseVerdict};
pub use settings::{
    default_operations, OpLevel, OpPatientRule, OpTarget, OperationRule, PatientPaging,
    PatientSearch, PatientUpdateById, PolicyConfig, ReadOutsideRequest,
    DEFAULT_PATIENT_SCOPE_PUBLIC_TYPES,
};
pub use stored::{check_stored, Stored};
