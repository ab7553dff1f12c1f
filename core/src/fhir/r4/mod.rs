//! FHIR R4 (4.0.1) search parameters and the Patient compartment, generated
//! from the specification's own definitions (no typed-in lists).
//!
//! * [`search_param`]: does `Type?code=` exist, what [`ParamType`] is it, and
//!   for a reference parameter every type it can point at ([`Targets`]).
//!   The parameters of `Resource`/`DomainResource` (`_id`, `_lastUpdated`,
//!   `_tag`, ...) apply to every type.
//! * [`control_param`]: the search names R4 defines only in prose (`_has`,
//!   `_type`, `_list`, `_filter`, `_include`, `_count`, ...), which are not
//!   SearchParameter resources and so not in the generated table.
//! * [`patient_reference_params`]: the reference parameters of a type that
//!   can point at a Patient (the candidates for compartment parameters).
//! * [`patient_compartment`] / [`PATIENT_COMPARTMENT`]: the R4
//!   CompartmentDefinition `patient`, each parameter with the element paths
//!   its search expression follows; [`PATIENT_PIN_ALIASES`]: other parameters
//!   that follow only compartment paths and can point at a Patient.
//!
//! The tables live in `search_params.rs` and `patient_compartment.rs`,
//! written by `core/tests/r4_tables/` (the generator, and the test that the
//! committed files equal what it generates) from
//! `search-parameters.json` (the R4 definitions, `/work/shared/fhir-r4/`, or
//! the committed extract in `core/tests/r4_tables/` where they are absent)
//! and `compartmentdefinition-patient.json` (next to this file). Regenerate
//! with `UPDATE_R4_TABLES=1 cargo test --test r4_tables`.
//!
//! Only the core parameters are used (`url` under
//! `http://hl7.org/fhir/SearchParameter/`, version 4.0.1): the shared file
//! also carries seven profile parameters of other publishers (`codex-age`,
//! `mii-provision-*`) that a plain R4 server does not know.
//!
//! `compartmentdefinition-patient.json` is the R4 (4.0.1) CompartmentDefinition
//! `patient` (HL7, CC0) as published in the build of the 4.0.1 specification
//! at github.com/fhir-ru/fhir-ru.github.io (commit 73deef62), without its
//! generated narrative (`text`); its resource/param list is identical to the
//! 4.0.0 and 3.6.0 builds and to the hand-written table it replaces.
//!
//! Layout, chosen for a small `.wasm` and no start-up work: types are indexes
//! into [`RESOURCE_TYPES`]; each type's parameters are one sorted run of
//! 3-byte entries (code id, type, target set) in one array; codes are one
//! string with offsets; reference targets are deduplicated sets of type
//! indexes. Every lookup is a binary search, without allocation.

use super::resource_types::RESOURCE_TYPES;
use std::cmp::Ordering;
use std::ops::Range;

#[rustfmt::skip]
mod patient_compartment;
#[rustfmt::skip]
mod search_params;

pub use patient_compartment::{PATIENT_COMPARTMENT, PATIENT_PIN_ALIASES};

/// The value type of a search parameter (R4 `SearchParamType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ParamType {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

impl ParamType {
    /// The inverse of `as u8` (for the packed table; never out of range there).
    const fn from_bits(bits: u8) -> ParamType {
        match bits {
            0 => ParamType::Number,
            1 => ParamType::Date,
            2 => ParamType::String,
            3 => ParamType::Token,
            4 => ParamType::Reference,
            5 => ParamType::Composite,
            6 => ParamType::Quantity,
            7 => ParamType::Uri,
            _ => ParamType::Special,
        }
    }

    /// The R4 code (`reference`, `token`, ...).
    pub fn code(self) -> &'static str {
        match self {
            ParamType::Number => "number",
            ParamType::Date => "date",
            ParamType::String => "string",
            ParamType::Token => "token",
            ParamType::Reference => "reference",
            ParamType::Composite => "composite",
            ParamType::Quantity => "quantity",
            ParamType::Uri => "uri",
            ParamType::Special => "special",
        }
    }
}

/// Where a parameter is defined: on the type itself, or on `Resource` /
/// `DomainResource` (and so on every type / every type but `Binary`,
/// `Bundle` and `Parameters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamBase {
    Type,
    Resource,
    DomainResource,
}

/// One R4 search parameter as it applies to a resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamDef {
    /// The name used in a query (`subject`, `_id`, `code-value-quantity`).
    pub code: &'static str,
    pub kind: ParamType,
    pub base: ParamBase,
    targets: u8,
}

impl ParamDef {
    /// Every type a reference parameter can point at (sorted by name); empty
    /// for other parameter types. The R4 `target` list of the parameter,
    /// narrowed for this type when its expression keeps only references that
    /// `resolve() is` a given type (the `patient` parameters, e.g.
    /// `Observation.subject.where(resolve() is Patient)`). Empty for a
    /// reference parameter means R4 names no target (a canonical reference,
    /// e.g. `RequestGroup:instantiates-canonical`): treat it as unknown.
    pub fn targets(&self) -> Targets {
        Targets(target_set(self.targets))
    }
}

/// The target types of a reference parameter (indexes into
/// [`RESOURCE_TYPES`], ascending, so also sorted by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets(&'static [u8]);

impl Targets {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `resource_type` (exact, case-sensitive) is a target.
    pub fn contains(&self, resource_type: &str) -> bool {
        type_index(resource_type).is_some_and(|i| self.0.binary_search(&i).is_ok())
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'static str> {
        self.0.iter().map(|&i| type_name(i))
    }
}

/// The search parameter `code` of `resource_type`: the type's own (R4
/// SearchParameter with that base), else one of `Resource` /
/// `DomainResource`. `None` when R4 defines no such parameter on the type,
/// when the type is not an R4 resource type, and for the prose-only names of
/// [`control_param`]. Case-sensitive; `code` carries no modifier or chain.
pub fn search_param(resource_type: &str, code: &str) -> Option<ParamDef> {
    let t = type_index(resource_type)?;
    let id = code_id(code)?;
    let own = type_params(t).binary_search_by_key(&id, |p| p.code()).ok();
    if let Some(p) = own.and_then(|i| type_params(t).get(i)) {
        return Some(def(p, ParamBase::Type));
    }
    let c = search_params::COMMON.iter().find(|c| c.code == id)?;
    if c.domain_resource_only && !is_domain_resource(resource_type) {
        return None;
    }
    Some(common_def(c))
}

/// The targets of the reference parameter `code` of `resource_type`; `None`
/// when it is not a reference parameter of that type.
pub fn reference_targets(resource_type: &str, code: &str) -> Option<Targets> {
    search_param(resource_type, code)
        .filter(|p| p.kind == ParamType::Reference)
        .map(|p| p.targets())
}

/// The parameters of `Resource` and `DomainResource` in R4 (`_content`,
/// `_id`, `_lastUpdated`, `_profile`, `_query`, `_security`, `_source`,
/// `_tag`, `_text`), for searches across types (`GET [base]?...`).
pub fn common_param(code: &str) -> Option<ParamDef> {
    let id = code_id(code)?;
    search_params::COMMON
        .iter()
        .find(|c| c.code == id)
        .map(common_def)
}

/// The type's own parameters (not the common ones), sorted by code.
pub fn type_params_of(resource_type: &str) -> impl Iterator<Item = ParamDef> {
    type_index(resource_type)
        .map(type_params)
        .unwrap_or(&[])
        .iter()
        .map(|p| def(p, ParamBase::Type))
}

/// The type's reference parameters that can point at a Patient: the
/// candidates for Patient-compartment parameters (a compartment parameter
/// must be one of them), and the parameters through which a search or an
/// `_include` can reach a patient.
pub fn patient_reference_params(resource_type: &str) -> impl Iterator<Item = ParamDef> {
    type_params_of(resource_type)
        .filter(|p| p.kind == ParamType::Reference && p.targets().contains("Patient"))
}

/// Whether R4 defines search parameters of its own for the type (133 of the
/// 146 types; `Binary`, `Parameters`, `OperationOutcome`, the `Substance*`
/// structure types and a few others have none, only the common ones).
pub fn has_type_params(resource_type: &str) -> bool {
    type_params_of(resource_type).next().is_some()
}

/// The types with parameters of their own, sorted.
pub fn types_with_params() -> impl Iterator<Item = &'static str> {
    RESOURCE_TYPES
        .iter()
        .copied()
        .filter(|t| has_type_params(t))
}

/// Whether the type specialises `DomainResource` (all but `Binary`, `Bundle`
/// and `Parameters` in R4), i.e. whether `_text` applies to it.
pub fn is_domain_resource(resource_type: &str) -> bool {
    !matches!(resource_type, "Binary" | "Bundle" | "Parameters")
}

/// Search names R4 defines in the prose of search.html, search_filter.html
/// and http.html rather than as SearchParameter resources, so they are not
/// in `search-parameters.json`. Each changes what a search matches or
/// returns, so a policy must decide on each explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlParam {
    /// `_has:Type:param:param2=` reverse chaining (filter).
    Has,
    /// `_list=` members of a List (filter).
    List,
    /// `_type=` types of a search across types (filter).
    Type,
    /// `_filter=` filter expression (filter).
    Filter,
    Sort,
    Count,
    Include,
    Revinclude,
    Summary,
    Total,
    Elements,
    Contained,
    ContainedType,
    /// `_format` (http.html): the response format.
    Format,
    /// `_pretty` (http.html): whitespace in the response.
    Pretty,
}

/// The [`ControlParam`] named `name` (exact), if any.
pub fn control_param(name: &str) -> Option<ControlParam> {
    Some(match name {
        "_has" => ControlParam::Has,
        "_list" => ControlParam::List,
        "_type" => ControlParam::Type,
        "_filter" => ControlParam::Filter,
        "_sort" => ControlParam::Sort,
        "_count" => ControlParam::Count,
        "_include" => ControlParam::Include,
        "_revinclude" => ControlParam::Revinclude,
        "_summary" => ControlParam::Summary,
        "_total" => ControlParam::Total,
        "_elements" => ControlParam::Elements,
        "_contained" => ControlParam::Contained,
        "_containedType" => ControlParam::ContainedType,
        "_format" => ControlParam::Format,
        "_pretty" => ControlParam::Pretty,
        _ => return None,
    })
}

/// One Patient-compartment parameter of a type: its search code and the
/// element paths (below the resource, `.`-separated) its R4 expression
/// follows, e.g. `AuditEvent` `patient` → `agent.who`, `entity.what`.
#[derive(Debug, PartialEq, Eq)]
pub struct CompartmentParam {
    pub name: &'static str,
    pub paths: &'static [&'static str],
}

/// The Patient-compartment parameters of a type (in the order of the
/// CompartmentDefinition); `None` when the type is never in the compartment.
pub fn patient_compartment(resource_type: &str) -> Option<&'static [CompartmentParam]> {
    PATIENT_COMPARTMENT
        .binary_search_by(|(t, _)| (*t).cmp(resource_type))
        .ok()
        .and_then(|i| PATIENT_COMPARTMENT.get(i))
        .map(|(_, ps)| *ps)
}

// ---- table access (the generated data is trusted to be in range: the
// generator and `tables_are_consistent` check it; out of range reads yield
// empty results, never a panic) ----

/// One parameter of a type in the generated table, packed in 3 bytes (the
/// table has ~1,700 of them): code id (10 bits), [`ParamType`] (4 bits),
/// target set id (8 bits, 0: none).
#[derive(Debug, Clone, Copy)]
struct Param([u8; 3]);

impl Param {
    fn code(self) -> u16 {
        let [lo, hi, _] = self.0;
        u16::from(lo) | u16::from(hi & 0b11) << 8
    }

    fn kind(self) -> ParamType {
        let [_, hi, _] = self.0;
        ParamType::from_bits(hi >> 2)
    }

    fn targets(self) -> u8 {
        self.0[2]
    }
}

/// One `Resource`/`DomainResource` parameter in the generated table.
#[derive(Debug, Clone, Copy)]
struct Common {
    code: u16,
    kind: ParamType,
    domain_resource_only: bool,
}

/// Packs a [`Param`]; the generator keeps `code` below 1024.
const fn p(code: u16, kind: ParamType, targets: u8) -> Param {
    Param([
        code as u8,
        (code >> 8) as u8 & 0b11 | (kind as u8) << 2,
        targets,
    ])
}

// Short names for the generated table.
const NUM: ParamType = ParamType::Number;
const DATE: ParamType = ParamType::Date;
const STR: ParamType = ParamType::String;
const TOK: ParamType = ParamType::Token;
const REF: ParamType = ParamType::Reference;
const COMP: ParamType = ParamType::Composite;
const QTY: ParamType = ParamType::Quantity;
const URI: ParamType = ParamType::Uri;
const SPEC: ParamType = ParamType::Special;

fn def(p: &Param, base: ParamBase) -> ParamDef {
    ParamDef {
        code: code_str(p.code()),
        kind: p.kind(),
        base,
        targets: p.targets(),
    }
}

fn common_def(c: &Common) -> ParamDef {
    ParamDef {
        code: code_str(c.code),
        kind: c.kind,
        base: if c.domain_resource_only {
            ParamBase::DomainResource
        } else {
            ParamBase::Resource
        },
        targets: 0,
    }
}

fn type_index(name: &str) -> Option<u8> {
    RESOURCE_TYPES
        .binary_search(&name)
        .ok()
        .and_then(|i| u8::try_from(i).ok())
}

fn type_name(i: u8) -> &'static str {
    RESOURCE_TYPES.get(usize::from(i)).copied().unwrap_or("")
}

/// The range of run `i` in a table of run starts.
fn run(starts: &[u16], i: usize) -> Option<Range<usize>> {
    Some(usize::from(*starts.get(i)?)..usize::from(*starts.get(i + 1)?))
}

fn type_params(t: u8) -> &'static [Param] {
    run(&search_params::TYPE_PARAM_STARTS, usize::from(t))
        .and_then(|r| search_params::PARAMS.get(r))
        .unwrap_or(&[])
}

fn target_set(s: u8) -> &'static [u8] {
    run(&search_params::TARGET_SET_STARTS, usize::from(s))
        .and_then(|r| search_params::TARGETS.get(r))
        .unwrap_or(&[])
}

fn code_str(id: u16) -> &'static str {
    run(&search_params::CODE_STARTS, usize::from(id))
        .and_then(|r| search_params::CODES.get(r))
        .unwrap_or("")
}

/// Binary search of the sorted code list.
fn code_id(code: &str) -> Option<u16> {
    let (mut lo, mut hi) = (0usize, search_params::CODE_STARTS.len().saturating_sub(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let id = u16::try_from(mid).ok()?;
        match code_str(id).cmp(code) {
            Ordering::Less => lo = mid + 1,
            Ordering::Greater => hi = mid,
            Ordering::Equal => return Some(id),
        }
    }
    None
}

#[cfg(test)]
mod tests;
