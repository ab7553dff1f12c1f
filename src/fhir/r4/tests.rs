use super::*;

fn targets(rtype: &str, code: &str) -> Vec<&'static str> {
    reference_targets(rtype, code)
        .map(|t| t.iter().collect())
        .unwrap_or_default()
}

fn codes(it: impl Iterator<Item = ParamDef>) -> Vec<&'static str> {
    it.map(|p| p.code).collect()
}

#[test]
fn reference_targets_are_the_full_r4_lists() {
    // Issue 9: `encounter` also reaches EpisodeOfCare.
    assert_eq!(
        targets("DocumentReference", "encounter"),
        ["Encounter", "EpisodeOfCare"]
    );
    assert_eq!(
        targets("Observation", "performer"),
        [
            "CareTeam",
            "Organization",
            "Patient",
            "Practitioner",
            "PractitionerRole",
            "RelatedPerson"
        ]
    );
    assert_eq!(
        targets("Observation", "subject"),
        ["Device", "Group", "Location", "Patient"]
    );
    assert_eq!(targets("MedicationRequest", "medication"), ["Medication"]);
    // `Any` references list every type but Parameters.
    let any = reference_targets("Observation", "focus").unwrap();
    assert_eq!(any.len(), RESOURCE_TYPES.len() - 1);
    assert!(any.contains("Patient") && any.contains("Observation"));
    assert!(!any.contains("Parameters"));
}

#[test]
fn resolve_is_narrows_a_shared_parameter_per_type() {
    // `clinical-patient` targets Patient and Group; most types' expressions
    // keep only `resolve() is Patient`, DeviceUseStatement's does not.
    assert_eq!(targets("Observation", "patient"), ["Patient"]);
    assert_eq!(targets("Encounter", "patient"), ["Patient"]);
    assert_eq!(
        targets("DeviceUseStatement", "patient"),
        ["Group", "Patient"]
    );
    assert_eq!(
        targets("AllergyIntolerance", "patient"),
        ["Group", "Patient"]
    );
}

#[test]
fn parameter_types_and_bases() {
    let p = search_param("Observation", "subject").unwrap();
    assert_eq!(
        (p.code, p.kind, p.base),
        ("subject", ParamType::Reference, ParamBase::Type)
    );
    let code = search_param("Observation", "code").unwrap();
    assert_eq!(code.kind, ParamType::Token);
    assert!(code.targets().is_empty());
    assert_eq!(reference_targets("Observation", "code"), None);
    assert_eq!(
        search_param("Observation", "value-quantity").map(|p| p.kind),
        Some(ParamType::Quantity)
    );
    assert_eq!(
        search_param("Observation", "code-value-quantity").map(|p| p.kind),
        Some(ParamType::Composite)
    );
    assert_eq!(
        search_param("Patient", "birthdate").map(|p| p.kind),
        Some(ParamType::Date)
    );
    assert_eq!(
        search_param("Patient", "name").map(|p| p.kind),
        Some(ParamType::String)
    );
    assert_eq!(
        search_param("RiskAssessment", "probability").map(|p| p.kind),
        Some(ParamType::Number)
    );
    assert_eq!(
        search_param("Location", "near").map(|p| p.kind),
        Some(ParamType::Special)
    );
    assert_eq!(
        search_param("ValueSet", "url").map(|p| p.kind),
        Some(ParamType::Uri)
    );
    // A reference parameter R4 gives no target: unknown, not "none".
    let canon = search_param("RequestGroup", "instantiates-canonical").unwrap();
    assert_eq!(canon.kind, ParamType::Reference);
    assert!(canon.targets().is_empty());
    // Same code, different type on different resources.
    assert_eq!(
        search_param("DocumentReference", "location").map(|p| p.kind),
        Some(ParamType::Uri)
    );
    assert_eq!(
        search_param("Encounter", "location").map(|p| p.kind),
        Some(ParamType::Reference)
    );
}

#[test]
fn common_parameters_apply_to_every_type() {
    for t in ["Observation", "Patient", "Binary", "Bundle", "Parameters"] {
        let id = search_param(t, "_id").unwrap();
        assert_eq!(
            (id.kind, id.base),
            (ParamType::Token, ParamBase::Resource),
            "{t}"
        );
        for c in [
            "_lastUpdated",
            "_tag",
            "_profile",
            "_security",
            "_source",
            "_content",
            "_query",
        ] {
            assert!(search_param(t, c).is_some(), "{t} {c}");
        }
    }
    // `_text` is DomainResource's: not on Binary, Bundle, Parameters.
    assert_eq!(
        search_param("Observation", "_text").map(|p| (p.kind, p.base)),
        Some((ParamType::String, ParamBase::DomainResource))
    );
    for t in ["Binary", "Bundle", "Parameters"] {
        assert_eq!(search_param(t, "_text"), None, "{t}");
    }
    assert_eq!(
        common_param("_lastUpdated").map(|p| p.kind),
        Some(ParamType::Date)
    );
    assert_eq!(common_param("subject"), None);
}

#[test]
fn unknown_names_types_and_spellings_are_none() {
    for (t, c) in [
        ("Observation", "foo"),
        ("Observation", ""),
        ("Observation", "Subject"),
        ("Observation", "subject:Patient"),
        ("Observation", "subject.name"),
        ("Observation", "birthdate"),
        ("observation", "subject"),
        ("Resource", "_id"),
        ("", "_id"),
        // Non-core parameters in the source file are left out.
        ("Patient", "codex-age"),
        ("Consent", "mii-provision-provision-code"),
        // Prose-only names are not SearchParameters.
        ("Observation", "_has"),
        ("Observation", "_list"),
        ("Observation", "_type"),
        ("Observation", "_filter"),
        ("Observation", "_include"),
    ] {
        assert_eq!(search_param(t, c), None, "{t} {c}");
    }
}

#[test]
fn control_parameters() {
    assert_eq!(control_param("_has"), Some(ControlParam::Has));
    assert_eq!(control_param("_list"), Some(ControlParam::List));
    assert_eq!(control_param("_type"), Some(ControlParam::Type));
    assert_eq!(control_param("_filter"), Some(ControlParam::Filter));
    assert_eq!(
        control_param("_containedType"),
        Some(ControlParam::ContainedType)
    );
    assert_eq!(control_param("_id"), None);
    assert_eq!(control_param("_HAS"), None);
    // No name is both.
    for name in [
        "_has", "_list", "_type", "_filter", "_sort", "_count", "_include",
    ] {
        assert_eq!(common_param(name), None, "{name}");
    }
}

#[test]
fn parameters_that_can_point_at_a_patient() {
    assert_eq!(
        codes(patient_reference_params("Observation")),
        ["focus", "patient", "performer", "subject"]
    );
    assert_eq!(
        codes(patient_reference_params("Medication")),
        Vec::<&str>::new()
    );
    // Every compartment parameter is one of them.
    for (t, ps) in PATIENT_COMPARTMENT {
        let candidates = codes(patient_reference_params(t));
        for p in *ps {
            assert!(candidates.contains(&p.name), "{t}.{}", p.name);
        }
    }
    for (t, names) in PATIENT_PIN_ALIASES {
        let candidates = codes(patient_reference_params(t));
        for n in *names {
            assert!(candidates.contains(n), "{t}.{n}");
        }
    }
}

#[test]
fn types_with_and_without_parameters() {
    assert_eq!(types_with_params().count(), 133);
    assert!(has_type_params("Observation"));
    for t in [
        "Binary",
        "Parameters",
        "OperationOutcome",
        "SubstanceProtein",
    ] {
        assert!(!has_type_params(t), "{t}");
        assert_eq!(type_params_of(t).count(), 0);
    }
    assert!(!has_type_params("NoSuchType"));
    let obs = codes(type_params_of("Observation"));
    assert_eq!(obs.len(), 38);
    assert!(obs.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn patient_compartment_table() {
    assert_eq!(PATIENT_COMPARTMENT.len(), 66);
    let obs: Vec<(&str, &[&str])> = patient_compartment("Observation")
        .unwrap()
        .iter()
        .map(|p| (p.name, p.paths))
        .collect();
    assert_eq!(
        obs,
        [
            ("subject", &["subject"][..]),
            ("performer", &["performer"][..])
        ]
    );
    let audit = patient_compartment("AuditEvent").unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].paths, ["agent.who", "entity.what"]);
    assert_eq!(
        patient_compartment("SupplyRequest").map(|ps| (ps[0].name, ps[0].paths)),
        Some(("subject", &["deliverTo"][..]))
    );
    assert_eq!(patient_compartment("Medication"), None);
    assert_eq!(patient_compartment("Device"), None);
    assert_eq!(
        patient_compartment("Patient").map(|ps| ps[0].name),
        Some("link")
    );
    let aliases = |t: &str| {
        PATIENT_PIN_ALIASES
            .iter()
            .find(|(a, _)| *a == t)
            .map(|(_, ns)| *ns)
    };
    assert_eq!(aliases("Observation"), Some(&["patient"][..]));
    assert_eq!(aliases("Encounter"), Some(&["subject"][..]));
    assert_eq!(aliases("Immunization"), None);
}

/// The generated arrays are in range and sorted the way the lookups assume.
#[test]
fn tables_are_consistent() {
    use search_params::*;
    let n_codes = CODE_STARTS.len() - 1;
    let codes: Vec<&str> = (0..n_codes).map(|i| code_str(i as u16)).collect();
    assert!(
        codes.windows(2).all(|w| w[0] < w[1]),
        "codes sorted, distinct"
    );
    assert_eq!(CODE_STARTS.last().copied(), Some(CODES.len() as u16));
    for (i, c) in codes.iter().enumerate() {
        assert_eq!(code_id(c), Some(i as u16), "{c}");
    }
    assert_eq!(TYPE_PARAM_STARTS.len(), RESOURCE_TYPES.len() + 1);
    assert!(TYPE_PARAM_STARTS.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(TYPE_PARAM_STARTS.last().copied(), Some(PARAMS.len() as u16));
    let n_sets = TARGET_SET_STARTS.len() - 1;
    assert!(TARGET_SET_STARTS.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        TARGET_SET_STARTS.last().copied(),
        Some(TARGETS.len() as u16)
    );
    assert!(target_set(0).is_empty());
    for s in 0..n_sets {
        let set = target_set(s as u8);
        assert!(set.windows(2).all(|w| w[0] < w[1]), "set {s} sorted");
        assert!(set.iter().all(|&t| usize::from(t) < RESOURCE_TYPES.len()));
    }
    for t in 0..RESOURCE_TYPES.len() {
        let ps = type_params(t as u8);
        assert!(ps.windows(2).all(|w| w[0].code() < w[1].code()));
        for p in ps {
            assert!(usize::from(p.code()) < n_codes);
            assert!(usize::from(p.targets()) < n_sets);
            assert!(p.kind() == ParamType::Reference || p.targets() == 0);
            assert!(!code_str(p.code()).starts_with('_'));
        }
    }
    for c in &COMMON {
        assert!(code_str(c.code).starts_with('_'));
    }
    // The packing round-trips every value the generator may emit.
    for kind in [NUM, DATE, STR, TOK, REF, COMP, QTY, URI, SPEC] {
        for (code, set) in [(0, 0), (1023, 255), (447, 125), (256, 1)] {
            let q = p(code, kind, set);
            assert_eq!((q.code(), q.kind(), q.targets()), (code, kind, set));
        }
    }
    let compartment: Vec<&str> = PATIENT_COMPARTMENT.iter().map(|(t, _)| *t).collect();
    assert!(compartment.windows(2).all(|w| w[0] < w[1]));
    let aliases: Vec<&str> = PATIENT_PIN_ALIASES.iter().map(|(t, _)| *t).collect();
    assert!(aliases.windows(2).all(|w| w[0] < w[1]));
    for t in compartment.iter().chain(&aliases) {
        assert!(RESOURCE_TYPES.contains(t), "{t}");
    }
}
