//! The FHIR R4 resource type list (case-sensitive).
