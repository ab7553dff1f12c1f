//! The committed tables are what the generators write; the API agrees with the spec.

use super::*;

/// Writes (with `UPDATE_R4_TABLES`) or compares one generated file.
pub(crate) fn agree(file: &str, generated: &str) {
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
pub(crate) fn committed_tables_equal_generated() {
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
pub(crate) fn api_matches_spec_for_every_parameter() {
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

/// The committed extract is exactly the full definitions' SearchParameters
/// reduced to [`EXTRACT_FIELDS`] (checked where the full file is present;
/// regenerate it with `UPDATE_R4_TABLES=1` like the tables).
#[test]
pub(crate) fn extract_is_the_definitions_projection() {
    let Some(full) = search_parameters_full() else {
        eprintln!(
            "r4_tables: the full search-parameters.json is not here (set FHIR_R4_DIR); \
             the tables were checked against the committed extract"
        );
        return;
    };
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(full).unwrap()).unwrap();
    let lines: Vec<String> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let r = e["resource"].as_object().unwrap();
            let kept: serde_json::Map<String, Value> = EXTRACT_FIELDS
                .iter()
                .filter_map(|k| r.get(*k).map(|v| (k.to_string(), v.clone())))
                .collect();
            serde_json::to_string(&serde_json::json!({ "resource": kept })).unwrap()
        })
        .collect();
    let generated = format!(
        "{{\"resourceType\":\"Bundle\",\"entry\":[\n{}\n]}}\n",
        lines.join(",\n")
    );
    let path = search_parameters_extract();
    if std::env::var_os("UPDATE_R4_TABLES").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let committed: Value = serde_json::from_str(&committed).unwrap_or(Value::Null);
    let generated: Value = serde_json::from_str(&generated).unwrap();
    assert!(
        committed == generated,
        "{} is not the projection of the R4 definitions; regenerate with UPDATE_R4_TABLES=1",
        path.display()
    );
}
