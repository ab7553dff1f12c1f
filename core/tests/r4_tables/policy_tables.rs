//! The policy reads the generated tables (no hand-written lists are left);
//! what it derives from them is checked against the spec here, and what the
//! spec itself leaves open is pinned.

use super::*;

/// Every compartment type can be narrowed, through a parameter that pins it:
/// a reference parameter of the type that can point at a Patient.
#[test]
pub(crate) fn every_compartment_type_has_a_narrowing_pin() {
    for (t, _) in r4::PATIENT_COMPARTMENT {
        let pin = policy::narrowing_pin(t).unwrap_or_else(|| panic!("{t}: no narrowing pin"));
        assert!(policy::is_pin_param(t, pin), "{t}.{pin} does not pin");
        if *t == "Patient" {
            assert_eq!(pin, "_id");
            continue;
        }
        let targets = r4::reference_targets(t, pin)
            .unwrap_or_else(|| panic!("{t}.{pin} is not a reference parameter"));
        assert!(
            targets.contains("Patient"),
            "{t}.{pin} cannot point at Patient"
        );
    }
    assert_eq!(policy::narrowing_pin("Medication"), None);
}

/// A bare id pins exactly only on a parameter that can point at nothing but
/// a Patient; elsewhere (`AllergyIntolerance?patient=123`: R4's shared
/// `patient` parameter also targets Group) the search is response-checked.
#[test]
pub(crate) fn bare_id_pins() {
    let loose: Vec<&str> = r4::PATIENT_COMPARTMENT
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t != "Patient")
        .filter(|t| policy::narrowing_pin(t) == Some("patient"))
        .filter(|t| !policy::bare_id_is_exact(t, "patient"))
        .collect();
    assert_eq!(
        loose,
        [
            "AllergyIntolerance",
            "Consent",
            "DetectedIssue",
            "DeviceUseStatement",
            "EpisodeOfCare",
            "FamilyMemberHistory",
            "Immunization",
            "NutritionOrder",
            "SupplyDelivery",
            "VisionPrescription"
        ]
    );
}

/// What the spec leaves for the policy to decide: the shared reference types
/// and the resource types the CompartmentDefinition or the SearchParameters
/// do not cover.
pub(crate) fn spec_gaps() -> Vec<String> {
    let mut d = Vec::new();
    // Types readable under patient/ scopes as shared reference data must
    // not be in the compartment, and should not point at patients.
    for t in fhir_smart_authz_core::policy::DEFAULT_PATIENT_SCOPE_PUBLIC_TYPES {
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
    // The resource type list: every type the CompartmentDefinition lists
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

/// The gaps known when the tables were generated. A change to the spec
/// inputs or to the public types must update this list.
pub(crate) const KNOWN_GAPS: &[&str] = &[
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
pub(crate) fn policy_tables_vs_spec() {
    let gaps = spec_gaps();
    for line in &gaps {
        eprintln!("GAP {line}");
    }
    let known: Vec<String> = KNOWN_GAPS.iter().map(|s| s.to_string()).collect();
    assert_eq!(gaps, known, "what the spec leaves open changed");
}
