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

/// A resource type in the compartment and its compartment parameters.
pub struct CompartmentEntry {
    pub resource_type: &'static str,
    pub params: &'static [CompartmentParam],
}

const fn entry(
    resource_type: &'static str,
    params: &'static [CompartmentParam],
) -> CompartmentEntry {
    CompartmentEntry {
        resource_type,
        params,
    }
}

/// More parameters that pin a search on a type (see [`EXTRA_PIN_PARAMS`]).
pub struct ExtraPins {
    pub resource_type: &'static str,
    pub params: &'static [&'static str],
}

const fn pins(resource_type: &'static str, params: &'static [&'static str]) -> ExtraPins {
    ExtraPins {
        resource_type,
        params,
    }
}

/// The compartment's resource types, sorted by type name.
#[rustfmt::skip]
pub static PATIENT_COMPARTMENT: &[CompartmentEntry] = &[
    entry("Account", &[p("subject", &["subject"])]),
    entry("AdverseEvent", &[p("subject", &["subject"])]),
    entry("AllergyIntolerance", &[p("patient", &["patient"]), p("recorder", &["recorder"]), p("asserter", &["asserter"])]),
    entry("Appointment", &[p("actor", &["participant.actor"])]),
    entry("AppointmentResponse", &[p("actor", &["actor"])]),
    entry("AuditEvent", &[p("patient", &["agent.who", "entity.what"])]),
    entry("Basic", &[p("patient", &["subject"]), p("author", &["author"])]),
    entry("BodyStructure", &[p("patient", &["patient"])]),
    entry("CarePlan", &[p("patient", &["subject"]), p("performer", &["activity.detail.performer"])]),
    entry("CareTeam", &[p("patient", &["subject"]), p("participant", &["participant.member"])]),
    entry("ChargeItem", &[p("subject", &["subject"])]),
    entry("Claim", &[p("patient", &["patient"]), p("payee", &["payee.party"])]),
    entry("ClaimResponse", &[p("patient", &["patient"])]),
    entry("ClinicalImpression", &[p("subject", &["subject"])]),
    entry("Communication", &[p("subject", &["subject"]), p("sender", &["sender"]), p("recipient", &["recipient"])]),
    entry("CommunicationRequest", &[p("subject", &["subject"]), p("sender", &["sender"]), p("recipient", &["recipient"]), p("requester", &["requester"])]),
    entry("Composition", &[p("subject", &["subject"]), p("author", &["author"]), p("attester", &["attester.party"])]),
    entry("Condition", &[p("patient", &["subject"]), p("asserter", &["asserter"])]),
    entry("Consent", &[p("patient", &["patient"])]),
    entry("Coverage", &[p("policy-holder", &["policyHolder"]), p("subscriber", &["subscriber"]), p("beneficiary", &["beneficiary"]), p("payor", &["payor"])]),
    entry("CoverageEligibilityRequest", &[p("patient", &["patient"])]),
    entry("CoverageEligibilityResponse", &[p("patient", &["patient"])]),
    entry("DetectedIssue", &[p("patient", &["patient"])]),
    entry("DeviceRequest", &[p("subject", &["subject"]), p("performer", &["performer"])]),
    entry("DeviceUseStatement", &[p("subject", &["subject"])]),
    entry("DiagnosticReport", &[p("subject", &["subject"])]),
    entry("DocumentManifest", &[p("subject", &["subject"]), p("author", &["author"]), p("recipient", &["recipient"])]),
    entry("DocumentReference", &[p("subject", &["subject"]), p("author", &["author"])]),
    entry("Encounter", &[p("patient", &["subject"])]),
    entry("EnrollmentRequest", &[p("subject", &["candidate"])]),
    entry("EpisodeOfCare", &[p("patient", &["patient"])]),
    entry("ExplanationOfBenefit", &[p("patient", &["patient"]), p("payee", &["payee.party"])]),
    entry("FamilyMemberHistory", &[p("patient", &["patient"])]),
    entry("Flag", &[p("patient", &["subject"])]),
    entry("Goal", &[p("patient", &["subject"])]),
    entry("Group", &[p("member", &["member.entity"])]),
    entry("ImagingStudy", &[p("patient", &["subject"])]),
    entry("Immunization", &[p("patient", &["patient"])]),
    entry("ImmunizationEvaluation", &[p("patient", &["patient"])]),
    entry("ImmunizationRecommendation", &[p("patient", &["patient"])]),
    entry("Invoice", &[p("subject", &["subject"]), p("patient", &["subject"]), p("recipient", &["recipient"])]),
    entry("List", &[p("subject", &["subject"]), p("source", &["source"])]),
    entry("MeasureReport", &[p("patient", &["subject"])]),
    entry("Media", &[p("subject", &["subject"])]),
    entry("MedicationAdministration", &[p("patient", &["subject"]), p("performer", &["performer.actor"]), p("subject", &["subject"])]),
    entry("MedicationDispense", &[p("subject", &["subject"]), p("patient", &["subject"]), p("receiver", &["receiver"])]),
    entry("MedicationRequest", &[p("subject", &["subject"])]),
    entry("MedicationStatement", &[p("subject", &["subject"])]),
    entry("MolecularSequence", &[p("patient", &["patient"])]),
    entry("NutritionOrder", &[p("patient", &["patient"])]),
    entry("Observation", &[p("subject", &["subject"]), p("performer", &["performer"])]),
    entry("Patient", &[p("link", &["link.other"])]),
    entry("Person", &[p("patient", &["link.target"])]),
    entry("Procedure", &[p("patient", &["subject"]), p("performer", &["performer.actor"])]),
    entry("Provenance", &[p("patient", &["target"])]),
    entry("QuestionnaireResponse", &[p("subject", &["subject"]), p("author", &["author"])]),
    entry("RelatedPerson", &[p("patient", &["patient"])]),
    entry("RequestGroup", &[p("subject", &["subject"]), p("participant", &["action.participant"])]),
    entry("ResearchSubject", &[p("individual", &["individual"])]),
    entry("RiskAssessment", &[p("subject", &["subject"])]),
    entry("Schedule", &[p("actor", &["actor"])]),
    entry("ServiceRequest", &[p("subject", &["subject"]), p("performer", &["performer"])]),
    entry("Specimen", &[p("subject", &["subject"])]),
    entry("SupplyDelivery", &[p("patient", &["patient"])]),
    entry("SupplyRequest", &[p("subject", &["deliverTo"])]),
    entry("VisionPrescription", &[p("patient", &["patient"])]),
];

/// The compartment parameters of a type, `None` if the type is not in the
/// Patient compartment.
pub fn params(resource_type: &str) -> Option<&'static [CompartmentParam]> {
    PATIENT_COMPARTMENT
        .binary_search_by(|e| e.resource_type.cmp(resource_type))
        .ok()
        .and_then(|i| PATIENT_COMPARTMENT.get(i))
        .map(|e| e.params)
}

pub fn in_compartment(resource_type: &str) -> bool {
    params(resource_type).is_some()
}

/// R4 search parameters that are not compartment parameters but follow the
/// same element as one (so they pin equally well): `patient` (= `subject`
/// restricted to Patient) and `subject` where the compartment uses `patient`.
/// Only parameters defined by R4 for that type are listed: a server ignoring
/// an unknown parameter would otherwise return every patient's data.
#[rustfmt::skip]
pub static EXTRA_PIN_PARAMS: &[ExtraPins] = &[
    pins("Account", &["patient"]),
    pins("Basic", &["subject"]),
    pins("CarePlan", &["subject"]),
    pins("CareTeam", &["subject"]),
    pins("ChargeItem", &["patient"]),
    pins("ClinicalImpression", &["patient"]),
    pins("Communication", &["patient"]),
    pins("CommunicationRequest", &["patient"]),
    pins("Composition", &["patient"]),
    pins("Condition", &["subject"]),
    pins("DeviceRequest", &["patient"]),
    pins("DeviceUseStatement", &["patient"]),
    pins("DiagnosticReport", &["patient"]),
    pins("DocumentManifest", &["patient"]),
    pins("DocumentReference", &["patient"]),
    pins("Encounter", &["subject"]),
    pins("Flag", &["subject"]),
    pins("Goal", &["subject"]),
    pins("ImagingStudy", &["subject"]),
    pins("List", &["patient"]),
    pins("MeasureReport", &["subject"]),
    pins("Media", &["patient"]),
    pins("MedicationRequest", &["patient"]),
    pins("MedicationStatement", &["patient"]),
    pins("Observation", &["patient"]),
    pins("Procedure", &["subject"]),
    pins("QuestionnaireResponse", &["patient"]),
    pins("RiskAssessment", &["patient"]),
    pins("ServiceRequest", &["patient"]),
    pins("Specimen", &["patient"]),
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
                    .any(|e| e.resource_type == resource_type && e.params.contains(&name))
        }
    }
}

/// All types in the compartment (incl. Patient).
pub fn types() -> impl Iterator<Item = &'static str> {
    PATIENT_COMPARTMENT.iter().map(|e| e.resource_type)
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
