//! The generator of the FHIR R4 tables in `src/fhir/r4/` and the test that
//! the committed tables are exactly what it generates.
//!
//! Inputs (FHIR 4.0.1, HL7, CC0):
//! * `search-parameters.json`: every R4 core SearchParameter. Looked up in
//!   `$FHIR_R4_DIR`, else `/work/shared/fhir-r4/`, else `../shared/fhir-r4/`
//!   next to the checkout; when absent the agreement test is skipped (it
//!   says so) and the committed tables stand.
//! * `src/fhir/r4/compartmentdefinition-patient.json`: the R4
//!   CompartmentDefinition `patient` (in the project).
//!
//! `UPDATE_R4_TABLES=1 cargo test --test r4_tables` rewrites
//! `src/fhir/r4/search_params.rs` and `src/fhir/r4/patient_compartment.rs`.
//!
//! `hand_written_tables_vs_spec` lists every difference between the
//! hand-written policy tables and the generated ones (each a potential
//! security bug) and pins that list, so it changes only on purpose.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhir_smart_authz::fhir::r4;
use fhir_smart_authz::fhir::resource_types::RESOURCE_TYPES;
use fhir_smart_authz::policy::compartment as hand;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const R4_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/fhir/r4");
const SEARCH_PARAMS_RS: &str = "search_params.rs";
const PATIENT_COMPARTMENT_RS: &str = "patient_compartment.rs";
const COMPARTMENT_JSON: &str = "compartmentdefinition-patient.json";
const CORE_URL: &str = "http://hl7.org/fhir/SearchParameter/";
const VERSION: &str = "4.0.1";

// ---------------------------------------------------------------- inputs --

fn search_parameters_json() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("FHIR_R4_DIR") {
        dirs.push(d.into());
    }
    dirs.push("/work/shared/fhir-r4".into());
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fhir-r4"));
    dirs.into_iter()
        .map(|d| d.join("search-parameters.json"))
        .find(|f| f.is_file())
}

/// One R4 SearchParameter, as far as the tables need it.
struct SpecParam {
    id: String,
    code: String,
    base: Vec<String>,
    kind: String,
    expression: Option<String>,
    target: Vec<String>,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The core R4 parameters of the Bundle, and the entries left out (not core).
fn load_search_parameters(path: &Path) -> (Vec<SpecParam>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let bundle: Value = serde_json::from_str(&text).unwrap();
    let mut core = Vec::new();
    let mut skipped = Vec::new();
    for e in bundle["entry"].as_array().expect("Bundle.entry") {
        let r = &e["resource"];
        assert_eq!(r["resourceType"], "SearchParameter");
        let url = r["url"].as_str().unwrap_or("");
        let version = r["version"].as_str().unwrap_or("");
        // The file carries a few non-core parameters (other publishers'
        // profiles); a server does not know them, so they are not R4.
        if !url.starts_with(CORE_URL) || version != VERSION {
            skipped.push(format!("{url} (version {version})"));
            continue;
        }
        core.push(SpecParam {
            id: r["id"].as_str().unwrap().to_string(),
            code: r["code"].as_str().unwrap().to_string(),
            base: strings(r, "base"),
            kind: r["type"].as_str().unwrap().to_string(),
            expression: r["expression"].as_str().map(str::to_string),
            target: strings(r, "target"),
        });
    }
    (core, skipped)
}

// ----------------------------------------------------------------- model --

/// One (type, code) parameter after applying the R4 definitions.
#[derive(Clone)]
struct TypeParam {
    kind: String,
    /// Target types, sorted by name (narrowed by `resolve() is X`).
    targets: Vec<String>,
    /// The expression's parts rooted at this type (`Type.a.b...`).
    parts: Vec<String>,
}

struct Model {
    /// type → code → parameter.
    types: BTreeMap<String, BTreeMap<String, TypeParam>>,
    /// code → (type, DomainResource only).
    common: BTreeMap<String, (String, bool)>,
}

/// The parts of an expression that apply to `rtype`: `Type.x`, `(Type.x as T)`.
fn parts_for(expression: &str, rtype: &str) -> Vec<String> {
    expression
        .split('|')
        .map(str::trim)
        .filter(|p| {
            let p = p.trim_start_matches('(');
            p == rtype || p.strip_prefix(rtype).is_some_and(|r| r.starts_with('.'))
        })
        .map(str::to_string)
        .collect()
}

/// `X` of a part ending in `.where(resolve() is X)`.
fn resolve_is(part: &str) -> Option<&str> {
    let (_, rest) = part.rsplit_once(".where(resolve() is ")?;
    rest.strip_suffix(')')
}

fn build_model(params: &[SpecParam]) -> Model {
    let known: BTreeSet<&str> = RESOURCE_TYPES.iter().copied().collect();
    let mut types: BTreeMap<String, BTreeMap<String, TypeParam>> = BTreeMap::new();
    let mut common = BTreeMap::new();
    for sp in params {
        for t in &sp.target {
            assert!(
                known.contains(t.as_str()),
                "{}: target {t} is not in RESOURCE_TYPES",
                sp.id
            );
        }
        for base in &sp.base {
            if base == "Resource" || base == "DomainResource" {
                let prev =
                    common.insert(sp.code.clone(), (sp.kind.clone(), base == "DomainResource"));
                assert!(
                    prev.is_none(),
                    "{}: common parameter {} twice",
                    sp.id,
                    sp.code
                );
                continue;
            }
            assert!(
                known.contains(base.as_str()),
                "{}: base {base} is not in RESOURCE_TYPES",
                sp.id
            );
            let parts = sp
                .expression
                .as_deref()
                .map(|e| parts_for(e, base))
                .unwrap_or_default();
            let mut targets: BTreeSet<String> = sp.target.iter().cloned().collect();
            if !parts.is_empty() && sp.kind == "reference" {
                let only: Option<BTreeSet<String>> = parts
                    .iter()
                    .map(|p| resolve_is(p).map(str::to_string))
                    .collect();
                if let Some(only) = only {
                    for t in &only {
                        assert!(
                            targets.contains(t),
                            "{}: resolve() is {t} outside its targets",
                            sp.id
                        );
                    }
                    targets = only;
                }
            }
            let tp = TypeParam {
                kind: sp.kind.clone(),
                targets: targets.into_iter().collect(),
                parts,
            };
            let prev = types
                .entry(base.clone())
                .or_default()
                .insert(sp.code.clone(), tp);
            assert!(
                prev.is_none(),
                "{}: {base}.{} defined twice",
                sp.id,
                sp.code
            );
        }
    }
    for (t, ps) in &types {
        for c in ps.keys() {
            assert!(
                !common.contains_key(c),
                "{t}.{c} shadows a common parameter"
            );
        }
    }
    Model { types, common }
}

// ------------------------------------------------------- search_params.rs --

fn kind_const(kind: &str) -> &'static str {
    match kind {
        "number" => "NUM",
        "date" => "DATE",
        "string" => "STR",
        "token" => "TOK",
        "reference" => "REF",
        "composite" => "COMP",
        "quantity" => "QTY",
        "uri" => "URI",
        "special" => "SPEC",
        other => panic!("unknown SearchParamType {other}"),
    }
}

fn header(out: &mut String, from: &str) {
    writeln!(out, "// @generated by tests/r4_tables.rs from {from}.").unwrap();
    out.push_str(
        "// Do not edit: regenerate with `UPDATE_R4_TABLES=1 cargo test --test r4_tables`\n\
         // (the test fails while this file differs from what the generator makes).\n",
    );
}

/// A `[u16; n]` of run starts, 16 to a line.
fn write_starts(out: &mut String, doc: &str, name: &str, starts: &[usize]) {
    assert!(
        starts.iter().all(|&s| s <= usize::from(u16::MAX)),
        "{name} must fit in u16"
    );
    writeln!(out, "/// {doc}").unwrap();
    writeln!(out, "pub(super) static {name}: [u16; {}] = [", starts.len()).unwrap();
    for chunk in starts.chunks(16) {
        let line: Vec<String> = chunk.iter().map(usize::to_string).collect();
        writeln!(out, "    {},", line.join(", ")).unwrap();
    }
    out.push_str("];\n\n");
}

fn generate_search_params(m: &Model) -> String {
    let type_index: BTreeMap<&str, usize> = RESOURCE_TYPES
        .iter()
        .enumerate()
        .map(|(i, t)| (*t, i))
        .collect();
    let codes: BTreeSet<&str> = m
        .types
        .values()
        .flat_map(|ps| ps.keys())
        .chain(m.common.keys())
        .map(String::as_str)
        .collect();
    let code_id: BTreeMap<&str, usize> = codes.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    // Target sets, deduplicated; set 0 is the empty set.
    let mut sets: Vec<Vec<usize>> = vec![Vec::new()];
    let mut set_id: BTreeMap<Vec<usize>, usize> = BTreeMap::from([(Vec::new(), 0)]);
    for ps in m.types.values() {
        for p in ps.values() {
            let mut idx: Vec<usize> = p.targets.iter().map(|t| type_index[t.as_str()]).collect();
            idx.sort_unstable();
            if !set_id.contains_key(&idx) {
                set_id.insert(idx.clone(), sets.len());
                sets.push(idx);
            }
        }
    }
    assert!(sets.len() <= 256, "target set ids must fit in a u8");
    assert!(
        codes.len() <= 1024,
        "code ids must fit in 10 bits (see `Param` in mod.rs)"
    );
    assert!(RESOURCE_TYPES.len() < 256, "type indexes must fit in a u8");

    let mut out = String::new();
    header(
        &mut out,
        "search-parameters.json (FHIR 4.0.1 core SearchParameters)",
    );
    out.push_str(
        "// Types are indexes into `RESOURCE_TYPES`; see `mod.rs` for the layout.\n\n\
         use super::{p, Common, Param, COMP, DATE, NUM, QTY, REF, SPEC, STR, TOK, URI};\n\n",
    );
    out.push_str("/// Every parameter code, sorted, concatenated (see `CODE_STARTS`).\n");
    out.push_str("pub(super) static CODES: &str = concat!(\n");
    for (i, c) in codes.iter().enumerate() {
        writeln!(out, "    \"{c}\", // {i}").unwrap();
    }
    out.push_str(");\n\n");
    let mut starts = vec![0usize];
    for c in &codes {
        starts.push(starts.last().unwrap() + c.len());
    }
    write_starts(
        &mut out,
        "Code `i` is `CODES[CODE_STARTS[i]..CODE_STARTS[i + 1]]`.",
        "CODE_STARTS",
        &starts,
    );
    out.push_str("/// The parameters of `Resource` (and `DomainResource`: `true`).\n");
    writeln!(
        out,
        "pub(super) static COMMON: [Common; {}] = [",
        m.common.len()
    )
    .unwrap();
    for (c, (kind, domain)) in &m.common {
        writeln!(
            out,
            "    Common {{ code: {}, kind: {}, domain_resource_only: {domain} }}, // {c}",
            code_id[c.as_str()],
            kind_const(kind)
        )
        .unwrap();
    }
    out.push_str("];\n\n");

    let mut type_starts = Vec::new();
    let mut rows = String::new();
    let mut n = 0usize;
    for t in RESOURCE_TYPES {
        type_starts.push(n);
        let Some(ps) = m.types.get(*t) else { continue };
        writeln!(rows, "    // {t}").unwrap();
        // BTreeMap order = code order = code id order.
        for (c, p) in ps {
            let set = {
                let mut idx: Vec<usize> =
                    p.targets.iter().map(|t| type_index[t.as_str()]).collect();
                idx.sort_unstable();
                set_id[&idx]
            };
            writeln!(
                rows,
                "    p({}, {}, {set}), // {c}",
                code_id[c.as_str()],
                kind_const(&p.kind)
            )
            .unwrap();
            n += 1;
        }
    }
    type_starts.push(n);
    assert!(n <= usize::from(u16::MAX));
    writeln!(out, "/// The parameters of type `t` are `PARAMS[TYPE_PARAM_STARTS[t]..TYPE_PARAM_STARTS[t + 1]]`.").unwrap();
    writeln!(
        out,
        "pub(super) static TYPE_PARAM_STARTS: [u16; {}] = [",
        type_starts.len()
    )
    .unwrap();
    for (chunk_no, chunk) in type_starts.chunks(8).enumerate() {
        let line: Vec<String> = chunk.iter().map(usize::to_string).collect();
        let first = chunk_no * 8;
        let name = RESOURCE_TYPES.get(first).copied().unwrap_or("(end)");
        writeln!(out, "    {}, // {first}: {name}", line.join(", ")).unwrap();
    }
    out.push_str("];\n\n");
    out.push_str("/// p(code id, type, target set id), sorted by code within each type.\n");
    writeln!(out, "pub(super) static PARAMS: [Param; {n}] = [").unwrap();
    out.push_str(&rows);
    out.push_str("];\n\n");

    let mut set_starts = vec![0usize];
    let mut targets = String::new();
    for (i, s) in sets.iter().enumerate() {
        set_starts.push(set_starts.last().unwrap() + s.len());
        if s.is_empty() {
            continue;
        }
        let nums: Vec<String> = s.iter().map(usize::to_string).collect();
        let names: Vec<&str> = s.iter().map(|&t| RESOURCE_TYPES[t]).collect();
        let names = if names.len() > 12 {
            format!("{} types", names.len())
        } else {
            names.join(" ")
        };
        writeln!(targets, "    {}, // {i}: {names}", nums.join(", ")).unwrap();
    }
    write_starts(
        &mut out,
        "Target set `s` is `TARGETS[TARGET_SET_STARTS[s]..TARGET_SET_STARTS[s + 1]]`; set 0 is empty.",
        "TARGET_SET_STARTS",
        &set_starts,
    );
    out.push_str("/// Type indexes of the target sets.\n");
    writeln!(
        out,
        "pub(super) static TARGETS: [u8; {}] = [",
        set_starts.last().unwrap()
    )
    .unwrap();
    out.push_str(&targets);
    out.push_str("];\n");
    out
}

// -------------------------------------------------- patient_compartment.rs --

/// The element path a compartment expression part follows, `None` when the
/// part is not a plain path (optionally restricted to Patient references).
fn patient_path(part: &str, rtype: &str) -> Option<String> {
    let p = part.strip_prefix(rtype)?.strip_prefix('.')?;
    let p = match resolve_is(part) {
        Some("Patient") => p.strip_suffix(".where(resolve() is Patient)")?,
        Some(_) => return None,
        None => p,
    };
    p.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.')
        .then(|| p.to_string())
}

struct CompartmentEntry {
    rtype: String,
    params: Vec<(String, Vec<String>)>,
    aliases: Vec<String>,
}

fn load_compartment() -> Value {
    let text = std::fs::read_to_string(Path::new(R4_DIR).join(COMPARTMENT_JSON)).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["resourceType"], "CompartmentDefinition");
    assert_eq!(v["id"], "patient");
    assert_eq!(
        v["url"],
        "http://hl7.org/fhir/CompartmentDefinition/patient"
    );
    assert_eq!(v["version"], VERSION);
    assert_eq!(v["code"], "Patient");
    v
}

fn compartment_entries(m: &Model, cd: &Value) -> Vec<CompartmentEntry> {
    let mut out = Vec::new();
    for r in cd["resource"].as_array().unwrap() {
        let rtype = r["code"].as_str().unwrap();
        assert!(
            RESOURCE_TYPES.contains(&rtype),
            "compartment type {rtype} is not an R4 type"
        );
        let names = strings(r, "param");
        if names.is_empty() {
            continue;
        }
        let ps = &m.types[rtype];
        let mut params = Vec::new();
        for name in &names {
            let p = ps.get(name).unwrap_or_else(|| {
                panic!("compartment parameter {rtype}.{name} is not an R4 parameter")
            });
            assert_eq!(p.kind, "reference", "{rtype}.{name}");
            assert!(
                p.targets.iter().any(|t| t == "Patient"),
                "{rtype}.{name} cannot point at Patient"
            );
            let paths: Vec<String> = p
                .parts
                .iter()
                .map(|part| {
                    patient_path(part, rtype).unwrap_or_else(|| {
                        panic!("{rtype}.{name}: expression part `{part}` is not a plain path")
                    })
                })
                .collect();
            assert!(!paths.is_empty(), "{rtype}.{name} has no expression");
            params.push((name.clone(), paths));
        }
        // Aliases: reference parameters that can point at a Patient and
        // follow only compartment paths, so they pin a search equally well.
        let covered: BTreeSet<&str> = params
            .iter()
            .flat_map(|(_, ps)| ps.iter().map(String::as_str))
            .collect();
        let aliases = ps
            .iter()
            .filter(|(c, p)| {
                !names.contains(c)
                    && p.kind == "reference"
                    && p.targets.iter().any(|t| t == "Patient")
                    && !p.parts.is_empty()
                    && p.parts.iter().all(|part| {
                        patient_path(part, rtype)
                            .is_some_and(|path| covered.contains(path.as_str()))
                    })
            })
            .map(|(c, _)| c.clone())
            .collect();
        out.push(CompartmentEntry {
            rtype: rtype.to_string(),
            params,
            aliases,
        });
    }
    let types: Vec<&str> = out.iter().map(|e| e.rtype.as_str()).collect();
    assert!(
        types.windows(2).all(|w| w[0] < w[1]),
        "compartment types must be sorted"
    );
    out
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn generate_patient_compartment(entries: &[CompartmentEntry]) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "compartmentdefinition-patient.json (FHIR 4.0.1) and the parameters' expressions in\n\
         // search-parameters.json",
    );
    out.push_str(
        "\nuse super::CompartmentParam;\n\n\
         const fn p(name: &'static str, paths: &'static [&'static str]) -> CompartmentParam {\n    \
         CompartmentParam { name, paths }\n}\n\n\
         /// (type, its Patient-compartment parameters with the element paths they\n\
         /// follow), sorted by type. `Patient` is also in its own compartment by id.\n\
         pub static PATIENT_COMPARTMENT: &[(&str, &[CompartmentParam])] = &[\n",
    );
    for e in entries {
        let ps: Vec<String> = e
            .params
            .iter()
            .map(|(n, paths)| format!("p(\"{n}\", &[{}])", quoted(paths)))
            .collect();
        writeln!(out, "    (\"{}\", &[{}]),", e.rtype, ps.join(", ")).unwrap();
    }
    out.push_str(
        "];\n\n\
         /// Per compartment type, the other reference parameters that can point at\n\
         /// a Patient and follow only compartment paths (`Observation` `patient` =\n\
         /// `subject` restricted to Patient), so they pin a search as well as a\n\
         /// compartment parameter. Sorted by type; types without any are left out.\n\
         pub static PATIENT_PIN_ALIASES: &[(&str, &[&str])] = &[\n",
    );
    for e in entries.iter().filter(|e| !e.aliases.is_empty()) {
        writeln!(out, "    (\"{}\", &[{}]),", e.rtype, quoted(&e.aliases)).unwrap();
    }
    out.push_str("];\n");
    out
}

// ----------------------------------------------------------------- tests --

/// Writes (with `UPDATE_R4_TABLES`) or compares one generated file.
fn agree(file: &str, generated: &str) {
    let path = Path::new(R4_DIR).join(file);
    if std::env::var_os("UPDATE_R4_TABLES").is_some() {
        std::fs::write(&path, generated).unwrap();
        eprintln!("r4_tables: wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "(length)".to_string(), |i| format!("line {}", i + 1));
        panic!(
            "{} differs from what the generator makes (first difference at {line}); \
             regenerate with `UPDATE_R4_TABLES=1 cargo test --test r4_tables` and review the diff",
            path.display()
        );
    }
}

#[test]
fn committed_tables_equal_generated() {
    let Some(json) = search_parameters_json() else {
        eprintln!(
            "r4_tables: SKIPPED the agreement check: search-parameters.json not found \
             (set FHIR_R4_DIR to the directory holding the FHIR R4 definitions)"
        );
        return;
    };
    let (core, skipped) = load_search_parameters(&json);
    for s in &skipped {
        eprintln!("r4_tables: not an R4 core parameter, left out: {s}");
    }
    let model = build_model(&core);
    agree(SEARCH_PARAMS_RS, &generate_search_params(&model));
    let entries = compartment_entries(&model, &load_compartment());
    agree(
        PATIENT_COMPARTMENT_RS,
        &generate_patient_compartment(&entries),
    );
}

/// The generated API answers what the JSON says, for every (type, code).
#[test]
fn api_matches_spec_for_every_parameter() {
    let Some(json) = search_parameters_json() else {
        eprintln!("r4_tables: SKIPPED: search-parameters.json not found (set FHIR_R4_DIR)");
        return;
    };
    let (core, _) = load_search_parameters(&json);
    let model = build_model(&core);
    let mut n = 0;
    for (t, ps) in &model.types {
        for (c, p) in ps {
            let d = r4::search_param(t, c).unwrap_or_else(|| panic!("{t}.{c} missing"));
            assert_eq!(d.kind.code(), p.kind, "{t}.{c}");
            assert_eq!(d.base, r4::ParamBase::Type);
            let targets: Vec<&str> = d.targets().iter().collect();
            assert_eq!(targets, p.targets, "{t}.{c}");
            n += 1;
        }
        assert_eq!(r4::type_params_of(t).count(), ps.len(), "{t}");
    }
    assert_eq!(
        n,
        r4::types_with_params()
            .map(|t| r4::type_params_of(t).count())
            .sum::<usize>()
    );
    for (c, (kind, domain)) in &model.common {
        let d = r4::common_param(c).unwrap();
        assert_eq!(d.kind.code(), kind);
        assert_eq!(d.base == r4::ParamBase::DomainResource, *domain, "{c}");
    }
}

// ---------------------------------------------- hand-written vs the spec --

/// `include_target` in src/policy/decide.rs (private there, so restated):
/// the one type `_include=X:param` is assumed to reach without a target type.
const DECIDE_INCLUDE_TARGET: &[(&str, &str)] = &[
    ("patient", "Patient"),
    ("medication", "Medication"),
    ("encounter", "Encounter"),
    ("organization", "Organization"),
    ("location", "Location"),
    ("practitioner", "Practitioner"),
];

fn hand_written_differences() -> Vec<String> {
    let mut d = Vec::new();
    // 1. include_target: one target per parameter name, on every type.
    for (name, assumed) in DECIDE_INCLUDE_TARGET {
        for t in RESOURCE_TYPES {
            let Some(p) = r4::search_param(t, name) else {
                continue;
            };
            if p.kind != r4::ParamType::Reference {
                d.push(format!(
                    "include_target: {t}:{name} is a {} parameter, not a reference (assumed → {assumed})",
                    p.kind.code()
                ));
                continue;
            }
            let targets: Vec<&str> = p.targets().iter().collect();
            if targets != [*assumed] {
                d.push(format!(
                    "include_target: {t}:{name} → {} (assumed {assumed} only)",
                    targets.join(", ")
                ));
            }
        }
    }
    // 2. The compartment table: types, parameters, paths.
    let hand_types: BTreeSet<&str> = hand::types().collect();
    let gen_types: BTreeSet<&str> = r4::PATIENT_COMPARTMENT.iter().map(|(t, _)| *t).collect();
    for t in hand_types.difference(&gen_types) {
        d.push(format!(
            "compartment: {t} is in the hand-written table, not in R4"
        ));
    }
    for t in gen_types.difference(&hand_types) {
        d.push(format!(
            "compartment: {t} is in R4, missing from the hand-written table"
        ));
    }
    for t in hand_types.intersection(&gen_types) {
        let h = hand::params(t).unwrap_or(&[]);
        let g = r4::patient_compartment(t).unwrap_or(&[]);
        for hp in h {
            match g.iter().find(|gp| gp.name == hp.name) {
                None => d.push(format!(
                    "compartment: {t}.{} is hand-written, not an R4 compartment parameter",
                    hp.name
                )),
                Some(gp) if gp.paths != hp.paths => d.push(format!(
                    "compartment: {t}.{} paths hand-written {:?}, R4 expression {:?}",
                    hp.name, hp.paths, gp.paths
                )),
                Some(_) => {}
            }
        }
        for gp in g {
            if !h.iter().any(|hp| hp.name == gp.name) {
                d.push(format!(
                    "compartment: {t}.{} is an R4 compartment parameter, missing",
                    gp.name
                ));
            }
        }
        let hn: Vec<&str> = h.iter().map(|p| p.name).collect();
        let gn: Vec<&str> = g.iter().map(|p| p.name).collect();
        if hn.len() == gn.len() && hn != gn && hn.iter().all(|n| gn.contains(n)) {
            // `first_pin` and the body-check message use the first parameter.
            d.push(format!(
                "compartment: {t} parameter order hand-written {hn:?}, R4 {gn:?}"
            ));
        }
    }
    // 3. EXTRA_PIN_PARAMS against the generated aliases.
    let hand_alias: BTreeSet<(&str, &str)> = hand::EXTRA_PIN_PARAMS
        .iter()
        .flat_map(|(t, ns)| ns.iter().map(move |n| (*t, *n)))
        .collect();
    let gen_alias: BTreeSet<(&str, &str)> = r4::PATIENT_PIN_ALIASES
        .iter()
        .flat_map(|(t, ns)| ns.iter().map(move |n| (*t, *n)))
        .collect();
    for (t, n) in hand_alias.difference(&gen_alias) {
        let why = match r4::search_param(t, n) {
            None => "not an R4 parameter of the type".to_string(),
            Some(p) => format!(
                "R4 {} parameter → {}",
                p.kind.code(),
                p.targets().iter().collect::<Vec<_>>().join(", ")
            ),
        };
        d.push(format!(
            "EXTRA_PIN_PARAMS: {t}.{n} is not an alias of a compartment path ({why})"
        ));
    }
    for (t, n) in gen_alias.difference(&hand_alias) {
        d.push(format!(
            "EXTRA_PIN_PARAMS: {t}.{n} follows only compartment paths, missing"
        ));
    }
    // 4. `pinned` in decide.rs treats a bare id on a parameter named
    // `patient` as an exact pin (no response check): only sound when it
    // can point at nothing but a Patient.
    for (t, ps) in r4::PATIENT_COMPARTMENT {
        let pins = ps.iter().map(|p| p.name).chain(
            r4::PATIENT_PIN_ALIASES
                .iter()
                .filter(|(a, _)| a == t)
                .flat_map(|(_, ns)| ns.iter().copied()),
        );
        for name in pins.filter(|n| *n == "patient") {
            let targets: Vec<&str> = r4::reference_targets(t, name)
                .map(|ts| ts.iter().collect())
                .unwrap_or_default();
            if targets != ["Patient"] {
                d.push(format!(
                    "pinned: {t}?patient=<bare id> is taken as an exact pin but {t}:patient → {}",
                    targets.join(", ")
                ));
            }
        }
    }
    // 5. Types readable under patient/ scopes as shared reference data must
    // not be in the compartment, and should not point at patients.
    for t in fhir_smart_authz::policy::DEFAULT_PATIENT_SCOPE_PUBLIC_TYPES {
        if r4::patient_compartment(t).is_some() {
            d.push(format!("public types: {t} is in the Patient compartment"));
        }
        let to_patient: Vec<&str> = r4::patient_reference_params(t).map(|p| p.code).collect();
        if !to_patient.is_empty() {
            d.push(format!(
                "public types: {t} can point at a Patient through {}",
                to_patient.join(", ")
            ));
        }
    }
    // 6. The resource type list: every type the CompartmentDefinition lists
    // (in it or never in it) is an R4 type, and which R4 types it omits.
    let listed: BTreeSet<String> = load_compartment()["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect();
    for t in &listed {
        if !RESOURCE_TYPES.contains(&t.as_str()) {
            d.push(format!(
                "resource types: {t} is in the CompartmentDefinition, not in RESOURCE_TYPES"
            ));
        }
    }
    for t in RESOURCE_TYPES.iter().filter(|t| !listed.contains(**t)) {
        d.push(format!(
            "resource types: {t} is not listed in the CompartmentDefinition"
        ));
    }
    let with_params: BTreeSet<&str> = r4::types_with_params().collect();
    for t in RESOURCE_TYPES.iter().filter(|t| !with_params.contains(*t)) {
        d.push(format!(
            "resource types: {t} has no search parameters of its own in R4"
        ));
    }
    d
}

/// The differences known when the tables were generated, each explained in
/// the report of the `spec` branch. Fixing one (or rewiring the policy to the
/// generated tables) must update this list.
const KNOWN_DIFFERENCES: &[&str] = &[
    "include_target: AllergyIntolerance:patient → Group, Patient (assumed Patient only)",
    "include_target: Consent:patient → Group, Patient (assumed Patient only)",
    "include_target: DetectedIssue:patient → Group, Patient (assumed Patient only)",
    "include_target: DeviceUseStatement:patient → Group, Patient (assumed Patient only)",
    "include_target: EpisodeOfCare:patient → Group, Patient (assumed Patient only)",
    "include_target: FamilyMemberHistory:patient → Group, Patient (assumed Patient only)",
    "include_target: Immunization:patient → Group, Patient (assumed Patient only)",
    "include_target: NutritionOrder:patient → Group, Patient (assumed Patient only)",
    "include_target: SupplyDelivery:patient → Group, Patient (assumed Patient only)",
    "include_target: VisionPrescription:patient → Group, Patient (assumed Patient only)",
    "include_target: Composition:encounter → Encounter, EpisodeOfCare (assumed Encounter only)",
    "include_target: DeviceRequest:encounter → Encounter, EpisodeOfCare (assumed Encounter only)",
    "include_target: DiagnosticReport:encounter → Encounter, EpisodeOfCare (assumed Encounter only)",
    "include_target: DocumentReference:encounter → Encounter, EpisodeOfCare (assumed Encounter only)",
    "include_target: Flag:encounter → Encounter, EpisodeOfCare (assumed Encounter only)",
    "include_target: List:encounter → Encounter, EpisodeOfCare (assumed Encounter only)",
    "include_target: NutritionOrder:encounter → Encounter, EpisodeOfCare (assumed Encounter only)",
    "include_target: Observation:encounter → Encounter, EpisodeOfCare (assumed Encounter only)",
    "include_target: Procedure:encounter → Encounter, EpisodeOfCare (assumed Encounter only)",
    "include_target: RiskAssessment:encounter → Encounter, EpisodeOfCare (assumed Encounter only)",
    "include_target: ServiceRequest:encounter → Encounter, EpisodeOfCare (assumed Encounter only)",
    "include_target: VisionPrescription:encounter → Encounter, EpisodeOfCare (assumed Encounter only)",
    "include_target: BodyStructure:location is a token parameter, not a reference (assumed → Location)",
    "include_target: DocumentReference:location is a uri parameter, not a reference (assumed → Location)",
    "include_target: ResearchStudy:location is a token parameter, not a reference (assumed → Location)",
    "EXTRA_PIN_PARAMS: Appointment.patient follows only compartment paths, missing",
    "EXTRA_PIN_PARAMS: AppointmentResponse.patient follows only compartment paths, missing",
    "EXTRA_PIN_PARAMS: AuditEvent.agent follows only compartment paths, missing",
    "EXTRA_PIN_PARAMS: AuditEvent.entity follows only compartment paths, missing",
    "EXTRA_PIN_PARAMS: Coverage.patient follows only compartment paths, missing",
    "EXTRA_PIN_PARAMS: EnrollmentRequest.patient follows only compartment paths, missing",
    "EXTRA_PIN_PARAMS: Person.link follows only compartment paths, missing",
    "EXTRA_PIN_PARAMS: Provenance.target follows only compartment paths, missing",
    "EXTRA_PIN_PARAMS: RequestGroup.patient follows only compartment paths, missing",
    "EXTRA_PIN_PARAMS: ResearchSubject.patient follows only compartment paths, missing",
    "pinned: AllergyIntolerance?patient=<bare id> is taken as an exact pin but AllergyIntolerance:patient → Group, Patient",
    "pinned: Consent?patient=<bare id> is taken as an exact pin but Consent:patient → Group, Patient",
    "pinned: DetectedIssue?patient=<bare id> is taken as an exact pin but DetectedIssue:patient → Group, Patient",
    "pinned: DeviceUseStatement?patient=<bare id> is taken as an exact pin but DeviceUseStatement:patient → Group, Patient",
    "pinned: EpisodeOfCare?patient=<bare id> is taken as an exact pin but EpisodeOfCare:patient → Group, Patient",
    "pinned: FamilyMemberHistory?patient=<bare id> is taken as an exact pin but FamilyMemberHistory:patient → Group, Patient",
    "pinned: Immunization?patient=<bare id> is taken as an exact pin but Immunization:patient → Group, Patient",
    "pinned: NutritionOrder?patient=<bare id> is taken as an exact pin but NutritionOrder:patient → Group, Patient",
    "pinned: SupplyDelivery?patient=<bare id> is taken as an exact pin but SupplyDelivery:patient → Group, Patient",
    "pinned: VisionPrescription?patient=<bare id> is taken as an exact pin but VisionPrescription:patient → Group, Patient",
    "resource types: Parameters is not listed in the CompartmentDefinition",
    "resource types: Binary has no search parameters of its own in R4",
    "resource types: BiologicallyDerivedProduct has no search parameters of its own in R4",
    "resource types: CatalogEntry has no search parameters of its own in R4",
    "resource types: MedicinalProductIngredient has no search parameters of its own in R4",
    "resource types: MedicinalProductManufactured has no search parameters of its own in R4",
    "resource types: ObservationDefinition has no search parameters of its own in R4",
    "resource types: OperationOutcome has no search parameters of its own in R4",
    "resource types: Parameters has no search parameters of its own in R4",
    "resource types: SubstanceNucleicAcid has no search parameters of its own in R4",
    "resource types: SubstancePolymer has no search parameters of its own in R4",
    "resource types: SubstanceProtein has no search parameters of its own in R4",
    "resource types: SubstanceReferenceInformation has no search parameters of its own in R4",
    "resource types: SubstanceSourceMaterial has no search parameters of its own in R4",
];

#[test]
fn hand_written_tables_vs_spec() {
    let diffs = hand_written_differences();
    for line in &diffs {
        eprintln!("DIFF {line}");
    }
    let known: Vec<String> = KNOWN_DIFFERENCES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        diffs, known,
        "the differences between the hand-written tables and R4 changed"
    );
}
