//! The FHIR R4 (4.0.1) Patient CompartmentDefinition, typed in: every
//! resource type in the compartment with its compartment search parameters
//! and, for each parameter, the element path(s) it follows (used to check a
//! body or a response resource). `Patient` itself is in its own compartment
//! (by id) and via `link`.

/// One compartment parameter: its search name and the element paths it covers.
pub struct CompartmentParam {
    pub name: &'static str,
    pub paths: &'static [&'static str],
}

const fn p(name: &'static str, paths: &'static [&'static str]) -> CompartmentParam {
    CompartmentParam { name, paths }
}

/// (resource type, compartment parameters), sorted by type name.
pub static PATIENT_COMPARTMENT: &[(&str, &[CompartmentParam])] = &[
    ("Account", &[p("subject", &["subject"])]),
    ("AdverseEvent", &[p("subject", &["subject"])]),
    (
        "AllergyIntolerance",
        &[
            p("patient", &["patient"]),
            p("recorder", &["recorder"]),
            p("asserter", &["asserter"]),
        ],
    ),
    ("Appointment", &[p("actor", &["participant.actor"])]),
    ("AppointmentResponse", &[p("actor", &["actor"])]),
    ("AuditEvent", &[p("patient", &["agent.who", "entity.what"])]),
    (
        "Basic",
        &[p("patient", &["subject"]), p("author", &["author"])],
    ),
    ("BodyStructure", &[p("patient", &["patient"])]),
    (
        "CarePlan",
        &[
            p("patient", &["subject"]),
            p("performer", &["activity.detail.performer"]),
        ],
    ),
    (
        "CareTeam",
        &[
            p("patient", &["subject"]),
            p("participant", &["participant.member"]),
        ],
    ),
    ("ChargeItem", &[p("subject", &["subject"])]),
    (
        "Claim",
        &[p("patient", &["patient"]), p("payee", &["payee.party"])],
    ),
    ("ClaimResponse", &[p("patient", &["patient"])]),
    ("ClinicalImpression", &[p("subject", &["subject"])]),
    (
        "Communication",
        &[
            p("subject", &["subject"]),
            p("sender", &["sender"]),
            p("recipient", &["recipient"]),
        ],
    ),
    (
        "CommunicationRequest",
        &[
            p("subject", &["subject"]),
            p("sender", &["sender"]),
            p("recipient", &["recipient"]),
            p("requester", &["requester"]),
        ],
    ),
    (
        "Composition",
        &[
            p("subject", &["subject"]),
            p("author", &["author"]),
            p("attester", &["attester.party"]),
        ],
    ),
    (
        "Condition",
        &[p("patient", &["subject"]), p("asserter", &["asserter"])],
    ),
    ("Consent", &[p("patient", &["patient"])]),
    (
        "Coverage",
        &[
            p("policy-holder", &["policyHolder"]),
            p("subscriber", &["subscriber"]),
            p("beneficiary", &["beneficiary"]),
            p("payor", &["payor"]),
        ],
    ),
    ("CoverageEligibilityRequest", &[p("patient", &["patient"])]),
    ("CoverageEligibilityResponse", &[p("patient", &["patient"])]),
    ("DetectedIssue", &[p("patient", &["patient"])]),
    (
        "DeviceRequest",
        &[p("subject", &["subject"]), p("performer", &["performer"])],
    ),
    ("DeviceUseStatement", &[p("subject", &["subject"])]),
    ("DiagnosticReport", &[p("subject", &["subject"])]),
    (
        "DocumentManifest",
        &[
            p("subject", &["subject"]),
            p("author", &["author"]),
            p("recipient", &["recipient"]),
        ],
    ),
    (
        "DocumentReference",
        &[p("subject", &["subject"]), p("author", &["author"])],
    ),
    ("Encounter", &[p("patient", &["subject"])]),
    ("EnrollmentRequest", &[p("subject", &["candidate"])]),
    ("EpisodeOfCare", &[p("patient", &["patient"])]),
    (
        "ExplanationOfBenefit",
        &[p("patient", &["patient"]), p("payee", &["payee.party"])],
    ),
    ("FamilyMemberHistory", &[p("patient", &["patient"])]),
    ("Flag", &[p("patient", &["subject"])]),
    ("Goal", &[p("patient", &["subject"])]),
    ("Group", &[p("member", &["member.entity"])]),
    ("ImagingStudy", &[p("patient", &["subject"])]),
    ("Immunization", &[p("patient", &["patient"])]),
    ("ImmunizationEvaluation", &[p("patient", &["patient"])]),
    ("ImmunizationRecommendation", &[p("patient", &["patient"])]),
    (
        "Invoice",
        &[
            p("subject", &["subject"]),
            p("patient", &["subject"]),
            p("recipient", &["recipient"]),
        ],
    ),
    (
        "List",
        &[p("subject", &["subject"]), p("source", &["source"])],
    ),
    ("MeasureReport", &[p("patient", &["subject"])]),
    ("Media", &[p("subject", &["subject"])]),
    (
        "MedicationAdministration",
        &[
            p("patient", &["subject"]),
            p("performer", &["performer.actor"]),
            p("subject", &["subject"]),
        ],
    ),
    (
        "MedicationDispense",
        &[
            p("subject", &["subject"]),
            p("patient", &["subject"]),
            p("receiver", &["receiver"]),
        ],
    ),
    ("MedicationRequest", &[p("subject", &["subject"])]),
    ("MedicationStatement", &[p("subject", &["subject"])]),
    ("MolecularSequence", &[p("patient", &["patient"])]),
    ("NutritionOrder", &[p("patient", &["patient"])]),
    (
        "Observation",
        &[p("subject", &["subject"]), p("performer", &["performer"])],
    ),
    ("Patient", &[p("link", &["link.other"])]),
    ("Person", &[p("patient", &["link.target"])]),
    (
        "Procedure",
        &[
            p("patient", &["subject"]),
            p("performer", &["performer.actor"]),
        ],
    ),
    ("Provenance", &[p("patient", &["target"])]),
    (
        "QuestionnaireResponse",
        &[p("subject", &["subject"]), p("author", &["author"])],
    ),
    ("RelatedPerson", &[p("patient", &["patient"])]),
    (
        "RequestGroup",
        &[
            p("subject", &["subject"]),
            p("participant", &["action.participant"]),
        ],
    ),
    ("ResearchSubject", &[p("individual", &["individual"])]),
    ("RiskAssessment", &[p("subject", &["subject"])]),
    ("Schedule", &[p("actor", &["actor"])]),
    (
        "ServiceRequest",
        &[p("subject", &["subject"]), p("performer", &["performer"])],
    ),
    ("Specimen", &[p("subject", &["subject"])]),
    ("SupplyDelivery", &[p("patient", &["patient"])]),
    ("SupplyRequest", &[p("subject", &["deliverTo"])]),
    ("VisionPrescription", &[p("patient", &["patient"])]),
];

/// The compartment parameters of a type, `None` if the type is not in the
/// Patient compartment.
pub fn params(resource_type: &str) -> Option<&'static [CompartmentParam]> {
    PATIENT_COMPARTMENT
        .binary_search_by(|(t, _)| (*t).cmp(resource_type))
        .ok()
        .and_then(|i| PATIENT_COMPARTMENT.get(i))
        .map(|(_, ps)| *ps)
}

pub fn in_compartment(resource_type: &str) -> bool {
    params(resource_type).is_some()
}

/// R4 search parameters that are not compartment parameters but follow the
/// same element as one (so they pin equally well): `patient` (= `subject`
/// restricted to Patient) and `subject` where the compartment uses `patient`.
/// Only parameters defined by R4 for that type are listed: a server ignoring
/// an unknown parameter would otherwise return every patient's data.
pub static EXTRA_PIN_PARAMS: &[(&str, &[&str])] = &[
    ("Account", &["patient"]),
    ("Basic", &["subject"]),
    ("CarePlan", &["subject"]),
    ("CareTeam", &["subject"]),
    ("ChargeItem", &["patient"]),
    ("ClinicalImpression", &["patient"]),
    ("Communication", &["patient"]),
    ("CommunicationRequest", &["patient"]),
    ("Composition", &["patient"]),
    ("Condition", &["subject"]),
    ("DeviceRequest", &["patient"]),
    ("DeviceUseStatement", &["patient"]),
    ("DiagnosticReport", &["patient"]),
    ("DocumentManifest", &["patient"]),
    ("DocumentReference", &["patient"]),
    ("Encounter", &["subject"]),
    ("Flag", &["subject"]),
    ("Goal", &["subject"]),
    ("ImagingStudy", &["subject"]),
    ("List", &["patient"]),
    ("MeasureReport", &["subject"]),
    ("Media", &["patient"]),
    ("MedicationRequest", &["patient"]),
    ("MedicationStatement", &["patient"]),
    ("Observation", &["patient"]),
    ("Procedure", &["subject"]),
    ("QuestionnaireResponse", &["patient"]),
    ("RiskAssessment", &["patient"]),
    ("ServiceRequest", &["patient"]),
    ("Specimen", &["patient"]),
];

/// Whether `name` pins a search on `resource_type` to a patient: a
/// compartment parameter, or one of [`EXTRA_PIN_PARAMS`].
pub fn is_pin_param(resource_type: &str, name: &str) -> bool {
    match params(resource_type) {
        None => false,
        Some(ps) => {
            ps.iter().any(|p| p.name == name)
                || EXTRA_PIN_PARAMS
                    .iter()
                    .any(|(t, ns)| *t == resource_type && ns.contains(&name))
        }
    }
}

/// All types in the compartment (incl. Patient).
pub fn types() -> impl Iterator<Item = &'static str> {
    PATIENT_COMPARTMENT.iter().map(|(t, _)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_for_binary_search() {
        let names: Vec<&str> = types().collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }

    #[test]
    fn lookups() {
        assert_eq!(params("Observation").map(|p| p.len()), Some(2));
        assert!(is_pin_param("Observation", "subject"));
        assert!(is_pin_param("Observation", "patient"));
        assert!(is_pin_param("Encounter", "patient"));
        assert!(is_pin_param("Encounter", "subject"));
        assert!(!is_pin_param("Encounter", "performer"));
        assert!(!is_pin_param("AdverseEvent", "patient"));
        assert!(is_pin_param("AllergyIntolerance", "asserter"));
        assert!(!in_compartment("Medication"));
        assert!(in_compartment("Patient"));
    }
}
