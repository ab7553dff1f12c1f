//! The generator of `core/src/fhir/r4/patient_compartment.rs`.

use super::*;

/// The element path a compartment expression part follows, `None` when the
/// part is not a plain path (optionally restricted to Patient references).
pub(crate) fn patient_path(part: &str, rtype: &str) -> Option<String> {
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

pub(crate) struct CompartmentEntry {
    pub(crate) rtype: String,
    pub(crate) params: Vec<(String, Vec<String>)>,
    pub(crate) aliases: Vec<String>,
}

pub(crate) fn load_compartment() -> Value {
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

pub(crate) fn compartment_entries(m: &Model, cd: &Value) -> Vec<CompartmentEntry> {
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

pub(crate) fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn generate_patient_compartment(entries: &[CompartmentEntry]) -> String {
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
