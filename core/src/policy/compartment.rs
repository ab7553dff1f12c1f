//! The R4 Patient compartment as the policy uses it, read from the tables
//! generated from the specification (`crate::fhir::r4`): which types are in
//! it, through which search parameters (and element paths), which
//! parameters pin a search to a patient, and which one narrowing adds.

use crate::fhir::r4;
pub use crate::fhir::r4::{CompartmentParam, PATIENT_COMPARTMENT};

/// Types R4 leaves out of the Patient compartment that one R4 reference
/// parameter (targeting Patient only) links to one patient: `Device.patient`,
/// which US Core's Implantable Device profile searches
/// (`Device?patient=`). The policy treats them as the patient's data
/// through that parameter: pinned and narrowed by it, response-checked, and
/// written only naming the patient there.
const LINKED_TYPES: [(&str, &[CompartmentParam]); 1] = [(
    "Device",
    &[CompartmentParam {
        name: "patient",
        paths: &["patient"],
    }],
)];

/// The compartment parameters of a type, `None` if the type is not in the
/// Patient compartment (R4's, with [`LINKED_TYPES`]).
pub fn params(resource_type: &str) -> Option<&'static [CompartmentParam]> {
    r4::patient_compartment(resource_type).or_else(|| {
        LINKED_TYPES
            .iter()
            .find(|(t, _)| *t == resource_type)
            .map(|(_, ps)| *ps)
    })
}

pub fn in_compartment(resource_type: &str) -> bool {
    params(resource_type).is_some()
}

/// The R4 parameters of a type that follow only compartment paths without
/// being compartment parameters themselves (`Observation` `patient` =
/// `subject` restricted to Patient): they pin a search equally well.
fn aliases(resource_type: &str) -> &'static [&'static str] {
    r4::PATIENT_PIN_ALIASES
        .binary_search_by(|(t, _)| (*t).cmp(resource_type))
        .ok()
        .and_then(|i| r4::PATIENT_PIN_ALIASES.get(i))
        .map_or(&[], |(_, names)| *names)
}

/// Whether `name` pins a search on `resource_type` to one patient: `_id` on
/// Patient; on the other compartment types a compartment parameter or an
/// alias of one. `Patient`'s own compartment parameter `link` is not a pin:
/// it selects the *other* Patients that link to one.
pub fn is_pin_param(resource_type: &str, name: &str) -> bool {
    if resource_type == "Patient" {
        return name == "_id";
    }
    params(resource_type).is_some_and(|ps| ps.iter().any(|p| p.name == name))
        || aliases(resource_type).contains(&name)
}

/// The parameter narrowing adds to pin a search on `resource_type`: `_id` on
/// Patient, else `patient` where it pins (what US Core and most clients
/// use), else `subject` where it pins, else the first compartment parameter.
/// `None` for types outside the compartment.
pub fn narrowing_pin(resource_type: &str) -> Option<&'static str> {
    if resource_type == "Patient" {
        return Some("_id");
    }
    let ps = params(resource_type)?;
    ["patient", "subject"]
        .into_iter()
        .find(|n| is_pin_param(resource_type, n))
        .or_else(|| ps.first().map(|p| p.name))
}

/// Whether a bare id (`patient=123`) on the pin parameter `name` can only
/// name a Patient: R4 lets it point at nothing else. Otherwise the same id
/// may name a Group or a Device (`subject=123`), and the pin is loose.
pub fn bare_id_is_exact(resource_type: &str, name: &str) -> bool {
    r4::reference_targets(resource_type, name)
        .is_some_and(|t| t.len() == 1 && t.contains("Patient"))
}

/// All types in the compartment (incl. Patient and [`LINKED_TYPES`]).
pub fn types() -> impl Iterator<Item = &'static str> {
    PATIENT_COMPARTMENT
        .iter()
        .chain(LINKED_TYPES.iter())
        .map(|(t, _)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(is_pin_param("Provenance", "target"));
        assert!(is_pin_param("Patient", "_id"));
        assert!(!is_pin_param("Patient", "link"));
        assert!(!in_compartment("Medication"));
        assert!(in_compartment("Patient"));
        assert!(bare_id_is_exact("Observation", "patient"));
        assert!(!bare_id_is_exact("Observation", "subject"));
        assert!(!bare_id_is_exact("Immunization", "patient"));
        assert!(is_pin_param("Device", "patient"));
        assert_eq!(narrowing_pin("Device"), Some("patient"));
    }

    /// The linked types rest on R4: a parameter of the type that points at
    /// Patient only, whose expression is the path given.
    #[test]
    fn linked_types_follow_r4() {
        for (t, ps) in LINKED_TYPES {
            assert!(
                r4::patient_compartment(t).is_none(),
                "{t} is in R4's compartment"
            );
            for p in ps {
                assert!(bare_id_is_exact(t, p.name), "{t}.{}", p.name);
                assert_eq!(p.paths, [p.name]);
            }
        }
    }

    #[test]
    fn narrowing_pins() {
        for (t, pin) in [
            ("Patient", Some("_id")),
            ("Observation", Some("patient")),
            ("Account", Some("patient")),
            ("AdverseEvent", Some("subject")),
            ("Group", Some("member")),
            ("Schedule", Some("actor")),
            ("SupplyRequest", Some("subject")),
            ("ResearchSubject", Some("patient")),
            ("Medication", None),
        ] {
            assert_eq!(narrowing_pin(t), pin, "{t}");
        }
    }
}
