//! The rows HTTP cannot express, so they stay out of the corpus
//! (`tests/corpus/`, which holds every other row): interactions the
//! classifier refuses before the policy sees them. The policy still refuses
//! them on its own (defence in depth).

use super::*;

#[test]
#[rustfmt::skip]
fn interactions_the_classifier_never_builds() {
    const TP: &str = "patient/Observation.us";
    let cond_patch = |doc: Option<Value>| {
        let mut i = it(K::Patch, Level::Type, Some("Observation"), None);
        i.conditional = true;
        i.search = params("patient=Patient/123&code=x");
        i.resource = doc;
        i
    };
    check(vec![
        // a Bundle nested in an entry (the classifier: 400)
        row("user/*.rs", None, bundle(K::Batch, vec![bundle(K::Batch, vec![])]), BUNDLE, &[]),
        // a JSON Patch that is not an array, and a patch without a document
        row(TP, Some("123"), cond_patch(Some(json!({"op":"replace"}))), COMPART, &["patient/Observation.us"]),
        row(TP, Some("123"), cond_patch(None), COMPART, &["patient/Observation.us"]),
        row("patient/Observation.u", Some("123"), patch("Observation", "1"), COMPART, &["patient/Observation.u"]),
        // an update whose body names another id than the URL
        row("patient/Patient.u", Some("123"), update("Patient", "123", Some(json!({"resourceType":"Patient","id":"9"}))), COMPART, &["patient/Patient.u"]),
    ]);
}
