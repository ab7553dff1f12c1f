//! The Bundle and resource walkers: the input as a batch/transaction
//! Bundle, a create/update body, a POST operation's Parameters, a patch, and
//! a response checked against every kind of obligation and filtered by
//! security labels.
#![no_main]

#[path = "common.rs"]
mod common;

use fhir_smart_authz_core::decision::{LabelFilter, Obligation};
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::policy::{check_response, filter_labels};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = common::config();
    for (method, path, ct) in [
        ("POST", "/fhir", "application/fhir+json"),
        ("POST", "/fhir/Observation", "application/fhir+json"),
        ("PUT", "/fhir/Observation/1", "application/fhir+json"),
        (
            "PUT",
            "/fhir/Observation?patient=123",
            "application/fhir+json",
        ),
        ("POST", "/fhir/$export", "application/fhir+json"),
        ("POST", "/fhir/Observation/$lastn", "application/fhir+json"),
        (
            "POST",
            "/fhir/Observation/$validate",
            "application/fhir+json",
        ),
        (
            "PATCH",
            "/fhir/Observation/1",
            "application/json-patch+json",
        ),
        (
            "PATCH",
            "/fhir/Observation?patient=123",
            "application/fhir+json",
        ),
    ] {
        let req = RequestParts {
            method,
            path,
            headers: vec![("content-type".into(), ct.into())].into(),
            body: Some(data),
        };
        common::decide_all(&config, &req);
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for o in [
        Obligation::CheckResponseCompartment {
            resource_type: "*".into(),
            patient: "123".into(),
        },
        Obligation::CheckResponseCompartment {
            resource_type: "Observation".into(),
            patient: "123".into(),
        },
        Obligation::CheckResponseGranular {
            resource_type: "Observation".into(),
            queries: vec!["category=laboratory".into(), "code=a|b".into()],
        },
        Obligation::CheckResponseTypesAbsent {
            resource_types: vec!["Patient".into()],
        },
        Obligation::CheckResponseTypes {
            search: vec!["Observation".into()],
            read: vec!["Patient".into()],
        },
    ] {
        let _ = check_response(&config.policy, Some("https://ehr.example.org/fhir"), &o, &v);
    }
    for narrowed in [false, true] {
        let filter = LabelFilter {
            hidden: vec![
                "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R".into(),
                "http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH".into(),
            ],
            cleared_on: vec![("Condition".into(), vec!["http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH".into()])],
            narrowed,
        };
        let _ = filter_labels(&config.policy, &filter, &v);
    }
});
