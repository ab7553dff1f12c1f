//! Issue 8, the write side: references in written resources (conditional,
//! foreign and odd forms, another patient anywhere), transactions that
//! refer to their own Patient entry, PATCH documents, letters split across
//! scope contexts, and the write pre-check obligation.

use super::*;

const INVALID: Expect = expect(false, 400, Reason::InvalidRequest);
const BASE: &str = "https://ehr.example.org/fhir";

/// An Observation for `subject` with `extra` members merged in.
fn obs_with(subject: &str, extra: Value) -> Value {
    let mut o = obs(subject);
    if let (Some(o), Value::Object(extra)) = (o.as_object_mut(), extra) {
        o.extend(extra);
    }
    o
}

/// Creates of an Observation under `patient/Observation.c patient/Patient.rs`
/// (context patient 123): every reference in the body is read as the
/// servers read it.
#[test]
#[rustfmt::skip]
fn references_in_written_resources() {
    const TP: &str = "patient/Observation.c patient/Patient.rs";
    const REQ: &[&str] = &["patient/Observation.c"];
    let c = |body: Value| create("Observation", Some(body));
    let sub = |r: &str| c(obs(r));
    check(vec![
        row(TP, Some("123"), sub("Patient/123"), ALLOW, &[]),
        row(TP, Some("123"), sub("Patient/123/_history/3"), ALLOW, &[]),
        row(TP, Some("123"), sub(&format!("{BASE}/Patient/123")), ALLOW, &[]),
        row(TP, Some("123"), sub(&format!("{BASE}/Patient/123/_history/1")), ALLOW, &[]),
        // Another patient in any form.
        row(TP, Some("123"), sub("Patient/456"), COMPART, REQ),
        row(TP, Some("123"), sub(&format!("{BASE}/Patient/456")), COMPART, REQ),
        row(TP, Some("123"), sub("https://evil.example/Patient/456"), COMPART, REQ),
        row(TP, Some("123"), sub("http://ehr.example.org/fhir/Patient/456"), COMPART, REQ),
        row(TP, Some("123"), sub("foo/bar/Patient/456"), COMPART, REQ),
        row(TP, Some("123"), sub("patient/456"), COMPART, REQ),
        // The context patient in a form servers read differently: unreadable.
        row(TP, Some("123"), sub("HTTPS://EHR.EXAMPLE.ORG/fhir/Patient/123"), INVALID, REQ),
        row(TP, Some("123"), sub("http://ehr.example.org/fhir/Patient/123"), INVALID, REQ),
        row(TP, Some("123"), sub("https://ehr.example.org:443/fhir/Patient/123"), INVALID, REQ),
        row(TP, Some("123"), sub("https://evil.example/Patient/123"), INVALID, REQ),
        row(TP, Some("123"), sub("patient/123"), INVALID, REQ),
        row(TP, Some("123"), sub("Patient/123/"), INVALID, REQ),
        row(TP, Some("123"), sub("Patient/456/"), INVALID, REQ),
        row(TP, Some("123"), sub(" Patient/123"), INVALID, REQ),
        row(TP, Some("123"), sub("Patient/123 "), INVALID, REQ),
        row(TP, Some("123"), sub("Patient/12%33"), INVALID, REQ),
        row(TP, Some("123"), sub("Patient/123?x"), INVALID, REQ),
        row(TP, Some("123"), sub("Patient/123#x"), INVALID, REQ),
        row(TP, Some("123"), sub("Patient/12\\3"), INVALID, REQ),
        // Conditional references in a compartment element: never the patient.
        row(TP, Some("123"), sub("Patient?identifier=urn:mrn|456"), COMPART, REQ),
        row(TP, Some("123"), sub("Patient?_id=456"), COMPART, REQ),
        row(TP, Some("123"), sub("Patient?_id=123"), COMPART, REQ),
        row(TP, Some("123"), sub("patient?identifier=x"), INVALID, REQ),
        row(TP, Some("123"), sub("Patient/?identifier=x"), INVALID, REQ),
        row(TP, Some("123"), sub("https://other.example/fhir/Patient?identifier=x"), INVALID, REQ),
        // Another patient anywhere in the resource (sekmet counts any reference as membership).
        row(TP, Some("123"), c(obs_with("Patient/123", json!({"basedOn":[{"reference":"Patient/456"}]}))), COMPART, REQ),
        row(TP, Some("123"), c(obs_with("Patient/123", json!({"focus":[{"reference":"https://evil.example/Patient/456"}]}))), COMPART, REQ),
        row(TP, Some("123"), c(obs_with("Patient/123", json!({"extension":[{"url":"x","valueReference":{"reference":"Patient/456"}}]}))), COMPART, REQ),
        row(TP, Some("123"), c(obs_with("Patient/123", json!({"contained":[{"resourceType":"Observation","id":"c1","subject":{"reference":"Patient/456"}}]}))), COMPART, REQ),
        row(TP, Some("123"), c(obs_with("Patient/123", json!({"performer":[{"reference":"Patient/456"}]}))), COMPART, REQ),
        row(TP, Some("123"), c(obs_with("Patient/123", json!({"performer":[{"reference":"Practitioner/p1"}],"encounter":{"reference":"Encounter/e1"}}))), ALLOW, &[]),
        row(TP, Some("123"), c(obs_with("Patient/123", json!({"basedOn":[{"reference":"Patient/123/"}]}))), INVALID, REQ),
        // A contained Patient or a logical reference is not the patient.
        row(TP, Some("123"), c(obs_with("#p1", json!({"contained":[{"resourceType":"Patient","id":"p1"}]}))), COMPART, REQ),
        row(TP, Some("123"), c(json!({"resourceType":"Observation","subject":{"identifier":{"system":"mrn","value":"456"}}})), COMPART, REQ),
        row(TP, Some("123"), c(json!({"resourceType":"Observation","subject":{"reference":"Patient/123","identifier":{"system":"mrn","value":"456"}}})), ALLOW, &[]),
        row(TP, Some("123"), c(obs_with("Patient/123", json!({"derivedFrom":[{"reference":"#c1"}],"hasMember":[{"reference":"urn:uuid:6f1b"}]}))), ALLOW, &[]),
        // The patient's own Patient: no other patient in link.
        row("patient/Patient.u", Some("123"), update("Patient", "123", Some(json!({"resourceType":"Patient","id":"123","link":[{"other":{"reference":"Patient/456"},"type":"seealso"}]}))), COMPART, &["patient/Patient.u"]),
        row("patient/Patient.u", Some("123"), update("Patient", "123", Some(json!({"resourceType":"Patient","id":"123","generalPractitioner":[{"reference":"Practitioner/p1"}]}))), ALLOW, &[]),
        // user/ scopes: the patient does not matter, unreadable forms neither.
        row("user/Observation.c", None, sub("Patient/456/"), ALLOW, &[]),
        row("user/Observation.c", None, sub("https://evil.example/Patient/456"), ALLOW, &[]),
    ]);
}

/// Issue 17: a compartment element whose patient the filter cannot see (a
/// contained resource of a compartment type, an identifier-only reference)
/// is refused even when another compartment element names the patient, in
/// creates, updates and Bundle entries; what names nobody (a contained
/// Practitioner, a typed logical reference to one, a display) is kept.
#[test]
#[rustfmt::skip]
fn compartment_elements_that_cannot_be_shown() {
    const TP: &str = "patient/Observation.cus patient/Patient.rs";
    let c = |body: Value| create("Observation", Some(body));
    let contained_patient = json!({"contained":[{"resourceType":"Patient","id":"p1"}],"performer":[{"reference":"Patient/123"}]});
    let logical_subject = json!({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"identifier":{"system":"mrn","value":"456"}},"performer":[{"reference":"Patient/123"}]});
    check(vec![
        row(TP, Some("123"), c(obs_with("#p1", contained_patient.clone())), COMPART, &["patient/Observation.c"]),
        row(TP, Some("123"), c(obs_with("#missing", json!({"performer":[{"reference":"Patient/123"}]}))), COMPART, &["patient/Observation.c"]),
        row(TP, Some("123"), c(obs_with("#rp", json!({"contained":[{"resourceType":"RelatedPerson","id":"rp","patient":{"reference":"Patient/123"}}],"performer":[{"reference":"Patient/123"}]}))), COMPART, &["patient/Observation.c"]),
        row(TP, Some("123"), c(logical_subject.clone()), COMPART, &["patient/Observation.c"]),
        row(TP, Some("123"), c(obs_with("Patient/123", json!({"performer":[{"identifier":{"system":"npi","value":"1"}}]}))), COMPART, &["patient/Observation.c"]),
        row(TP, Some("123"), c(obs_with("Patient/123", json!({"performer":[{"identifier":{"system":"mrn","value":"1"},"type":"Patient"}]}))), COMPART, &["patient/Observation.c"]),
        row(TP, Some("123"), update("Observation", "o1", Some(obs_with("#p1", contained_patient.clone()))), COMPART, &["patient/Observation.u"]),
        row(TP, Some("123"), cond_update("Observation", "patient=Patient/123", obs_with("#p1", contained_patient.clone())), COMPART, &["patient/Observation.us"]),
        row(TP, Some("123"), transaction(vec![entry(0, "POST", None, c(obs_with("#p1", contained_patient)))]), BUNDLE, &["patient/Observation.c"]),
        row(TP, Some("123"), transaction(vec![entry(0, "POST", None, c(logical_subject))]), BUNDLE, &["patient/Observation.c"]),
        // What names nobody the patient could be.
        row(TP, Some("123"), c(obs_with("Patient/123", json!({"contained":[{"resourceType":"Practitioner","id":"pr"}],"performer":[{"reference":"#pr"}]}))), ALLOW, &[]),
        row(TP, Some("123"), c(obs_with("Patient/123", json!({"performer":[{"identifier":{"system":"npi","value":"1"},"type":"Practitioner"}]}))), ALLOW, &[]),
        row(TP, Some("123"), c(obs_with("Patient/123", json!({"performer":[{"display":"Dr. X"}]}))), ALLOW, &[]),
        // user/ scopes do not look at the patient.
        row("user/Observation.c", None, c(obs_with("#p1", json!({"contained":[{"resourceType":"Patient","id":"p1"}]}))), ALLOW, &[]),
    ]);
}

/// A conditional reference in any field is a search on its type (HAPI
/// resolves it on every write): s on that type, and under patient/ scopes
/// pinned to the patient; chains, `_has` and unreadable forms are refused.
#[test]
#[rustfmt::skip]
fn conditional_references_are_searches() {
    let c = |extra: Value| create("Observation", Some(obs_with("Patient/123", extra)));
    let based = |r: &str| c(json!({"basedOn":[{"reference":r}]}));
    check(vec![
        // user/ scopes: the search oracle needs s on the referenced type.
        row("user/Observation.c", None, based("ServiceRequest?subject=Patient/456&code=HIV"), INSUFF, &["user/Observation.c", "user/ServiceRequest.s"]),
        row("user/Observation.c user/ServiceRequest.s", None, based("ServiceRequest?subject=Patient/456&code=HIV"), ALLOW, &[]),
        row("user/Observation.c user/ServiceRequest.s", None, based("ServiceRequest?subject.name=Smith"), INVALID, &["user/Observation.c"]),
        row("user/Observation.c user/ServiceRequest.s", None, based("ServiceRequest?_has:Condition:subject:code=x"), INVALID, &["user/Observation.c"]),
        row("user/Observation.c user/ServiceRequest.s", None, based("ServiceRequest?_filter=code%20eq%20x"), INVALID, &["user/Observation.c"]),
        row("user/Observation.c user/ServiceRequest.s", None, based("ServiceRequest?_id=sr1"), ALLOW, &[]),
        row("user/Observation.c user/ServiceRequest.s", None, based("https://other.example/fhir/ServiceRequest?code=x"), INVALID, &["user/Observation.c"]),
        row("user/Observation.c user/ServiceRequest.s", None, based("serviceRequest?code=x"), INVALID, &["user/Observation.c"]),
        row("user/Observation.c user/ServiceRequest.s", None, based("ServiceRequest?code=a+b"), INVALID, &["user/Observation.c"]),
        row("user/Observation.c user/ServiceRequest.s", None, based("ServiceRequest?code=%zz"), INVALID, &["user/Observation.c"]),
        row("user/Observation.c", None, c(json!({"extension":[{"url":"x","valueReference":{"reference":"Patient?name=Smith"}}]})), INSUFF, &["user/Observation.c", "user/Patient.s"]),
        row("user/Observation.c user/Patient.s", None, c(json!({"contained":[{"resourceType":"Provenance","target":[{"reference":"Patient?name=Smith"}]}]})), ALLOW, &[]),
        // patient/ scopes: the search must be pinned to the patient.
        row("patient/Observation.c patient/Encounter.s", Some("123"), c(json!({"encounter":{"reference":"Encounter?patient=123&identifier=v1"}})), ALLOW, &[]),
        row("patient/Observation.c patient/Encounter.s", Some("123"), c(json!({"encounter":{"reference":"Encounter?identifier=v1"}})), COMPART, &["patient/Observation.c", "patient/Encounter.s"]),
        row("patient/Observation.c patient/Encounter.s", Some("123"), c(json!({"encounter":{"reference":"Encounter?patient=456"}})), COMPART, &["patient/Observation.c", "patient/Encounter.s"]),
        row("patient/Observation.c", Some("123"), c(json!({"encounter":{"reference":"Encounter?patient=123"}})), INSUFF, &["patient/Observation.c", "patient/Encounter.s"]),
        row("patient/Observation.c patient/ServiceRequest.s", Some("123"), based("ServiceRequest?code=HIV"), COMPART, &["patient/Observation.c", "patient/ServiceRequest.s"]),
        // Updates are read the same way.
        row("user/Observation.u", None, update("Observation", "o1", Some(json!({"resourceType":"Observation","id":"o1","basedOn":[{"reference":"ServiceRequest?code=x"}]}))), INSUFF, &["user/Observation.u", "user/ServiceRequest.s"]),
    ]);
}

fn entry(index: usize, method: &str, full_url: Option<&str>, i: Interaction) -> BundleEntry {
    BundleEntry {
        index,
        method: method.into(),
        url: "x".into(),
        full_url: full_url.map(String::from),
        interaction: Box::new(i),
    }
}

fn transaction(entries: Vec<BundleEntry>) -> Interaction {
    let mut b = it(K::Transaction, Level::System, None, None);
    b.entries = entries;
    b
}

/// A transaction that writes the patient's own Patient and refers to it by
/// its `fullUrl`: only `PUT Patient/{context id}` names the context
/// patient; a created or conditionally matched Patient is a new one.
#[test]
#[rustfmt::skip]
fn transactions_refer_to_their_own_patient_entry() {
    const TP: &str = "patient/Observation.c patient/Patient.u";
    let own = || update("Patient", "123", Some(json!({"resourceType":"Patient","id":"123"})));
    let obs_of = |r: &str| create("Observation", Some(obs(r)));
    check(vec![
        row(TP, Some("123"), transaction(vec![entry(0, "PUT", Some("urn:uuid:a"), own()), entry(1, "POST", None, obs_of("urn:uuid:a"))]), ALLOW, &[]),
        row(TP, Some("123"), transaction(vec![entry(0, "PUT", Some(&format!("{BASE}/Patient/123")), own()), entry(1, "POST", None, obs_of(&format!("{BASE}/Patient/123")))]), ALLOW, &[]),
        // The Observation first, the Patient after it: the same.
        row(TP, Some("123"), transaction(vec![entry(0, "POST", None, obs_of("urn:uuid:a")), entry(1, "PUT", Some("urn:uuid:a"), own())]), ALLOW, &[]),
        // A new Patient (create), or one matched by criteria: not the context patient.
        row("patient/Observation.c user/Patient.c", Some("123"), transaction(vec![entry(0, "POST", Some("urn:uuid:a"), create("Patient", Some(json!({"resourceType":"Patient"})))), entry(1, "POST", None, obs_of("urn:uuid:a"))]), BUNDLE, &["patient/Observation.c"]),
        row("patient/Observation.c user/Patient.us", Some("123"), transaction(vec![entry(0, "PUT", Some("urn:uuid:a"), cond_update("Patient", "identifier=x", json!({"resourceType":"Patient"}))), entry(1, "POST", None, obs_of("urn:uuid:a"))]), BUNDLE, &["patient/Observation.c"]),
        // Another patient written by a user/ scope in the same Bundle.
        row("patient/Observation.c user/Patient.u", Some("123"), transaction(vec![entry(0, "PUT", Some("urn:uuid:a"), update("Patient", "456", Some(json!({"resourceType":"Patient","id":"456"})))), entry(1, "POST", None, obs_of("urn:uuid:a"))]), BUNDLE, &["patient/Observation.c"]),
        // A urn:uuid no entry has: not the patient.
        row(TP, Some("123"), transaction(vec![entry(0, "PUT", Some("urn:uuid:a"), own()), entry(1, "POST", None, obs_of("urn:uuid:b"))]), BUNDLE, &["patient/Observation.c"]),
        // A PUT of another patient's id is refused on its own.
        row(TP, Some("123"), transaction(vec![entry(0, "PUT", Some("urn:uuid:a"), update("Patient", "456", Some(json!({"resourceType":"Patient","id":"456"})))), entry(1, "POST", None, obs_of("urn:uuid:a"))]), BUNDLE, &["patient/Patient.u", "patient/Observation.c"]),
    ]);
}

/// JSON Patch and FHIRPath Patch documents under `patient/Observation.u`
/// (patient 123), conditional patches pinned by their criteria.
#[test]
#[rustfmt::skip]
fn patch_documents() {
    const TP: &str = "patient/Observation.us";
    const REQ: &[&str] = &["patient/Observation.us"];
    let jp = |ops: Value| with_doc(it(K::Patch, Level::Type, Some("Observation"), None), ops);
    let cond = |ops: Value| {
        let mut i = jp(ops);
        i.conditional = true;
        i.search = params("patient=Patient/123&code=x");
        i
    };
    let fp = |ops: Value| {
        let parts: Vec<Value> = ops.as_array().unwrap().iter().map(|o| json!({"name":"operation","part":o})).collect();
        cond(json!({"resourceType":"Parameters","parameter":parts}))
    };
    let p = |name: &str, v: Value| { let mut m = serde_json::Map::new(); m.insert("name".into(), json!(name)); m.extend(v.as_object().unwrap().clone()); Value::Object(m) };
    let ty = |t: &str| p("type", json!({"valueCode":t}));
    let path = |s: &str| p("path", json!({"valueString":s}));
    let refv = |r: &str| p("value", json!({"valueReference":{"reference":r}}));
    check(vec![
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/status","value":"final"}])), ALLOW, &[]),
        row(TP, Some("123"), cond(json!([{"op":"test","path":"/subject/reference","value":"Patient/456"}])), ALLOW, &[]),
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/subject","value":{"reference":"Patient/123"}}])), ALLOW, &[]),
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/subject/reference","value":"Patient/123"}])), ALLOW, &[]),
        row(TP, Some("123"), cond(json!([{"op":"add","path":"/performer/-","value":{"reference":"Patient/123"}}])), ALLOW, &[]),
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/performer","value":[{"reference":"Patient/123"}]}])), ALLOW, &[]),
        row(TP, Some("123"), cond(json!([{"op":"add","path":"/note/-","value":{"text":"ok"}}])), ALLOW, &[]),
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/subject/reference","value":"Patient/456"}])), COMPART, REQ),
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/subject","value":{"reference":"Patient/456"}}])), COMPART, REQ),
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/subject","value":{"reference":"Group/g1"}}])), COMPART, REQ),
        row(TP, Some("123"), cond(json!([{"op":"remove","path":"/subject"}])), COMPART, REQ),
        row(TP, Some("123"), cond(json!([{"op":"remove","path":"/performer/0"}])), COMPART, REQ),
        row(TP, Some("123"), cond(json!([{"op":"copy","from":"/performer/0","path":"/subject"}])), COMPART, REQ),
        row(TP, Some("123"), cond(json!([{"op":"move","from":"/subject","path":"/basedOn/0"}])), COMPART, REQ),
        row(TP, Some("123"), cond(json!([{"op":"add","path":"/performer/-","value":{"reference":"Practitioner/p1"}}])), COMPART, REQ),
        row(TP, Some("123"), cond(json!([{"op":"add","path":"/basedOn/-","value":{"reference":"Patient/456"}}])), COMPART, REQ),
        row(TP, Some("123"), cond(json!([{"op":"add","path":"/extension/-","value":{"url":"x","valueReference":{"reference":"https://evil.example/Patient/456"}}}])), COMPART, REQ),
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"","value":obs("Patient/123")}])), COMPART, REQ),
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/subject/identifier","value":{"value":"x"}}])), COMPART, REQ),
        // FHIR element names hold no `~`: an escaped pointer names nothing (400).
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/sub~1ject","value":{"reference":"Patient/456"}}])), INVALID, &[]),
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/sub~0ject","value":"x"}])), INVALID, &[]),
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/subject/reference","value":"Patient/123/"}])), INVALID, REQ),
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/subject/reference","value":"Patient?_id=123"}])), COMPART, REQ),
        // Unreadable patches: 400 under every scope.
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/sub~2ject","value":"x"}])), INVALID, &[]),
        row(TP, Some("123"), cond(json!([{"op":"frobnicate","path":"/status"}])), INVALID, &[]),
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"status","value":"x"}])), INVALID, &[]),
        row(TP, Some("123"), cond(json!([{"op":"replace","path":"/status"}])), INVALID, &[]),
        row(TP, Some("123"), cond(json!([{"op":"copy","path":"/status"}])), INVALID, &[]),
        // Not an array: no JSON Patch (the classifier refuses it as such).
        row(TP, Some("123"), cond(json!({"op":"replace"})), COMPART, REQ),
        row("user/Observation.us", None, cond(json!([{"op":"nope","path":"/a"}])), INVALID, &[]),
        row("user/Observation.us", None, cond(json!([{"op":"replace","path":"/subject","value":{"reference":"Patient/456"}}])), ALLOW, &[]),
        row("user/Observation.us", None, cond(json!([{"op":"add","path":"/basedOn/-","value":{"reference":"ServiceRequest?code=x"}}])), INSUFF, &["user/Observation.us", "user/ServiceRequest.s"]),
        row("user/Observation.us", None, cond(json!([{"op":"replace","path":"/basedOn/0/reference","value":"ServiceRequest?code=x"}])), INSUFF, &["user/Observation.us", "user/ServiceRequest.s"]),
        // FHIRPath Patch: its paths are FHIRPath expressions the gateway does
        // not evaluate; patient/ scopes refuse it, user/ scopes have the
        // references in it read (conditional ones are searches).
        row(TP, Some("123"), fp(json!([[ty("replace"), path("Observation.status"), p("value", json!({"valueCode":"final"}))]])), COMPART, REQ),
        row(TP, Some("123"), fp(json!([[ty("replace"), path("Observation.subject"), refv("Patient/123")]])), COMPART, REQ),
        row("user/Observation.us", None, fp(json!([[ty("replace"), path("Observation.where(true).subject"), refv("Patient/456")]])), ALLOW, &[]),
        row("user/Observation.us", None, fp(json!([[ty("add"), path("Observation"), p("name", json!({"valueString":"basedOn"})), refv("ServiceRequest?code=x")]])), INSUFF, &["user/Observation.us", "user/ServiceRequest.s"]),
        // Conditional patches: the criteria pin the target exactly.
        row(TP, Some("123"), { let mut i = cond(json!([])); i.search = params("code=x"); i }, COMPART, REQ),
        row(TP, Some("123"), { let mut i = cond(json!([])); i.search = params("subject=123"); i }, COMPART, REQ),
        row(TP, Some("123"), { let mut i = cond(json!([])); i.search = params("subject=Patient/123"); i }, ALLOW, &[]),
        row("patient/Observation.u", Some("123"), cond(json!([])), INSUFF, REQ),
        // No patch document (the classifier refuses an XML patch): refused.
        row(TP, Some("123"), { let mut i = cond(json!([])); i.resource = None; i }, COMPART, REQ),
    ]);
}

/// Letters split across contexts: every split of an interaction's letters
/// over patient/, user/ and system/ scopes. The letters are met all by
/// patient/ scopes (then the patient rule holds for all of them: pinned
/// criteria, own compartment) or all by user/ and system/ scopes; a
/// patient/ letter never combines with a user/ or system/ one.
#[test]
fn letters_split_across_contexts() {
    let body = || obs("Patient/123");
    // (name, type the letters are on, letters, the interaction pinned to the
    // patient or not); a search that is not pinned is narrowed (allowed).
    type Build = Box<dyn Fn(bool) -> Interaction>;
    let crit = |pinned: bool| {
        if pinned {
            "patient=Patient/123&code=x"
        } else {
            "code=x"
        }
    };
    let cases: Vec<(&str, &str, &str, Build)> = vec![
        (
            "conditional create",
            "Observation",
            "cs",
            Box::new(move |p| cond_create("Observation", body(), crit(p))),
        ),
        (
            "conditional update",
            "Observation",
            "us",
            Box::new(move |p| cond_update("Observation", crit(p), body())),
        ),
        (
            "conditional patch",
            "Observation",
            "us",
            Box::new(move |p| {
                let mut i = with_doc(
                    it(K::Patch, Level::Type, Some("Observation"), None),
                    json!([]),
                );
                i.conditional = true;
                i.search = params(crit(p));
                i
            }),
        ),
        (
            "conditional delete",
            "Observation",
            "ds",
            Box::new(move |p| cond_delete("Observation", crit(p))),
        ),
        (
            "search",
            "Observation",
            "s",
            Box::new(move |p| search("Observation", crit(p))),
        ),
        (
            "$everything",
            "*",
            "rs",
            Box::new(|p| {
                let id = if p { "123" } else { "456" };
                let mut i = op(
                    Level::Instance,
                    Some("Patient"),
                    Some(id),
                    "$everything",
                    "",
                );
                i.compartment = Some(Compartment {
                    resource_type: "Patient".into(),
                    id: id.into(),
                });
                i
            }),
        ),
    ];
    let contexts = ["patient", "user", "system"];
    let mut failures = Vec::new();
    let mut n = 0;
    let config = cfg();
    for (name, rtype, letters, build) in &cases {
        let letters: Vec<char> = letters.chars().collect();
        for split in 0..contexts.len().pow(letters.len() as u32) {
            // Letter i goes to context (split / 3^i) % 3.
            let assigned: Vec<&str> = (0..letters.len())
                .map(|i| contexts[(split / 3usize.pow(i as u32)) % 3])
                .collect();
            let scopes: Vec<String> = letters
                .iter()
                .zip(&assigned)
                .map(|(l, c)| format!("{c}/{rtype}.{l}"))
                .collect();
            let all_patient = assigned.iter().all(|c| *c == "patient");
            let no_patient = assigned.iter().all(|c| *c != "patient");
            for pinned in [true, false] {
                n += 1;
                let ctx = AuthContext::from_scopes(&scopes.join(" "), Some("123"));
                let d = authorize(&config, build(pinned), Some(&ctx));
                let narrowed = *name == "search";
                let want = if no_patient || (all_patient && (pinned || narrowed)) {
                    ALLOW
                } else if all_patient {
                    COMPART
                } else {
                    INSUFF
                };
                let letters: String = letters.iter().collect();
                let want_required = vec![format!("patient/{rtype}.{letters}")];
                if d.is_allow() != want.allow
                    || (d.status, d.reason) != (want.status, want.reason)
                    || (!want.allow && d.required_scopes != want_required)
                {
                    failures.push(format!(
                        "{name} pinned={pinned} with {scopes:?}: want {} {:?} {want_required:?}, got {} {:?} {:?}: {}",
                        want.status, want.reason, d.status, d.reason, d.required_scopes, d.message
                    ));
                }
            }
        }
    }
    assert_eq!(n, 2 * (9 * 5 + 3));
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The issue's example: `PUT Observation?_id=o456` with the body rule met
    // by patient/ and the criteria by user/.
    let ctx = AuthContext::from_scopes("patient/Observation.u user/Observation.s", Some("123"));
    let d = authorize(
        &config,
        cond_update("Observation", "_id=o456", obs("Patient/123")),
        Some(&ctx),
    );
    assert_eq!(
        (d.status, d.reason),
        (403, Reason::InsufficientScope),
        "{}",
        d.message
    );
    assert!(d.message.contains("one interaction"), "{}", d.message);
    assert_eq!(d.required_scopes, vec!["patient/Observation.us"]);
}

fn stored(t: &str, id: &str, kind: K, entry: Option<usize>) -> Obligation {
    Obligation::CheckStored {
        resource_type: t.into(),
        id: id.into(),
        patient: "123".into(),
        interaction: kind,
        entry,
    }
}

/// Writes by id of compartment resources under patient/ scopes carry the
/// write pre-check (`policy.patient_update_by_id`, default `check_stored`);
/// the patient's own Patient needs none; `check_body` and `deny` keep the
/// old rules.
#[test]
#[rustfmt::skip]
fn write_pre_check_obligations() {
    const TP: &str = "patient/Observation.cruds patient/Patient.uds";
    let modes = |mode: &str| Config::from_json(format!(r#"{{"fhir_base_url":"{BASE}","policy":{{"patient_update_by_id":"{mode}"}}}}"#).as_bytes()).unwrap();
    let upd = || update("Observation", "o1", Some(json!({"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/123"}})));
    let pat = || with_doc(patch("Observation", "o1"), json!([{"op":"replace","path":"/status","value":"final"}]));
    // (mode, interaction, allowed, obligations)
    let rows: Vec<(&str, Interaction, Expect, Vec<Obligation>)> = vec![
        ("check_stored", upd(), ALLOW, vec![stored("Observation", "o1", K::Update, None)]),
        ("check_stored", pat(), ALLOW, vec![stored("Observation", "o1", K::Patch, None)]),
        ("check_stored", delete("Observation", "o1"), ALLOW, vec![stored("Observation", "o1", K::Delete, None)]),
        ("check_stored", update("Patient", "123", Some(json!({"resourceType":"Patient","id":"123"}))), ALLOW, vec![]),
        ("check_stored", delete("Patient", "123"), ALLOW, vec![]),
        ("check_stored", delete("Patient", "456"), COMPART, vec![]),
        // The body rule still holds for an update by id.
        ("check_stored", update("Observation", "o1", Some(json!({"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/456"}}))), COMPART, vec![]),
        ("check_stored", update("Medication", "m1", Some(json!({"resourceType":"Medication","id":"m1"}))), INSUFF, vec![]),
        ("check_body", upd(), ALLOW, vec![]),
        ("check_body", pat(), COMPART, vec![]),
        ("check_body", delete("Observation", "o1"), COMPART, vec![]),
        ("deny", upd(), COMPART, vec![]),
        ("deny", delete("Observation", "o1"), COMPART, vec![]),
        ("deny", update("Patient", "123", Some(json!({"resourceType":"Patient","id":"123"}))), ALLOW, vec![]),
        // Conditional writes are pinned by their criteria, never pre-checked.
        ("check_stored", cond_update("Observation", "patient=123&code=x", obs("Patient/123")), ALLOW, vec![]),
        ("check_stored", cond_delete("Observation", "patient=123&code=x"), ALLOW, vec![]),
        // A bare id may name a Group too: not pinned enough for a write.
        ("check_stored", cond_delete("Observation", "subject=123&code=x"), COMPART, vec![]),
        // A body id on a conditional update: some servers write to that id when nothing matches.
        ("check_stored", cond_update("Observation", "patient=123&code=x", json!({"resourceType":"Observation","id":"o456","subject":{"reference":"Patient/123"}})), INVALID, vec![]),
        ("check_stored", cond_update("Patient", "_id=123", json!({"resourceType":"Patient","id":"123"})), ALLOW, vec![]),
    ];
    let ctx = AuthContext::from_scopes(TP, Some("123"));
    for (i, (mode, req, want, obligations)) in rows.into_iter().enumerate() {
        let d = authorize(&modes(mode), req, Some(&ctx));
        assert_eq!((d.is_allow(), d.status, d.reason), (want.allow, want.status, want.reason), "row {i} ({mode}): {}", d.message);
        assert_eq!(d.obligations, obligations, "row {i} ({mode})");
    }
    // user/ scopes: no pre-check.
    let user = AuthContext::from_scopes("user/Observation.ud", None);
    for req in [upd(), pat(), delete("Observation", "o1")] {
        let d = authorize(&cfg(), req, Some(&user));
        assert!(d.is_allow() && d.obligations.is_empty(), "{}", d.message);
    }
    // In a Bundle: one pre-check per entry, naming it; at most 16.
    let entries: Vec<Interaction> = (0..3).map(|i| delete("Observation", &format!("o{i}"))).collect();
    let d = authorize(&cfg(), bundle(K::Transaction, entries), Some(&ctx));
    assert!(d.is_allow(), "{}", d.message);
    assert_eq!(d.obligations, (0..3).map(|i| stored("Observation", &format!("o{i}"), K::Delete, Some(i))).collect::<Vec<_>>());
    let many: Vec<Interaction> = (0..17).map(|i| delete("Observation", &format!("o{i}"))).collect();
    let d = authorize(&cfg(), bundle(K::Transaction, many.clone()), Some(&ctx));
    assert_eq!((d.status, d.reason), (403, Reason::BundleEntryDenied));
    assert_eq!(d.denied_entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![16]);
    // a batch: the 17th entry answered in place
    let d = authorize(&cfg(), bundle(K::Batch, many), Some(&ctx));
    assert!(d.is_partial_batch(), "{}", d.message);
    assert_eq!(d.denied_entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![16]);
    assert!(d.denied_entries[0].message.contains("more than 16"), "{}", d.denied_entries[0].message);
}

/// (interaction, Bundle entry, status, headers, body, expected answer)
type AnswerRow<'a> = (
    K,
    Option<usize>,
    u16,
    Vec<(String, String)>,
    &'a str,
    fhir_smart_authz_core::policy::Stored,
);

/// The pre-check's answer (`policy::check_stored`): the stored resource
/// must be the patient's; a missing one is a create (update) or the
/// server's own 404/410 (patch, delete); anything unusable fails closed.
#[test]
#[rustfmt::skip]
fn write_pre_check_answers() {
    use fhir_smart_authz_core::policy::{check_stored, Stored};
    let own = r#"{"resourceType":"Observation","id":"o1","meta":{"versionId":"3"},"subject":{"reference":"Patient/123"}}"#;
    let abs = r#"{"resourceType":"Observation","id":"o1","subject":{"reference":"https://ehr.example.org/fhir/Patient/123"}}"#;
    let other = r#"{"resourceType":"Observation","id":"o1","meta":{"versionId":"3"},"subject":{"reference":"Patient/456"}}"#;
    let performer = r#"{"resourceType":"Observation","id":"o1","subject":{"reference":"Group/g"},"performer":[{"reference":"Patient/123"}]}"#;
    let mixed = r#"{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/123"},"basedOn":[{"reference":"https://x.example/Patient/456"}]}"#;
    let none = r#"{"resourceType":"Observation","id":"o1"}"#;
    let wrong = r#"{"resourceType":"Observation","id":"o2","subject":{"reference":"Patient/123"}}"#;
    let h = |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    let allow = |v: Option<&str>| Stored::Allow { if_match: v.map(String::from) };
    let refuse = Stored::Refuse(String::new());
    let unavailable = Stored::Unavailable(String::new());
    let (u, p, d) = (K::Update, K::Patch, K::Delete);
    let rows: Vec<AnswerRow<'_>> = vec![
        // The version is the stored resource's meta.versionId, whatever the ETag says.
        (u, None, 200, h(&[("etag", "W/\"7\"")]), own, allow(Some("W/\"3\""))),
        (u, None, 200, h(&[]), own, allow(Some("W/\"3\""))),
        (u, None, 200, h(&[("etag", "W/\"a b\"")]), own, allow(Some("W/\"3\""))),
        (u, None, 200, h(&[("content-encoding", "identity")]), abs, allow(None)),
        (p, None, 200, h(&[]), performer, allow(None)),
        (d, None, 200, h(&[]), own, allow(None)),
        (u, Some(1), 200, h(&[]), own, allow(None)),
        (u, None, 200, h(&[]), other, refuse.clone()),
        (p, None, 200, h(&[]), mixed, refuse.clone()),
        (d, None, 200, h(&[]), none, refuse.clone()),
        (u, None, 404, h(&[]), "", allow(None)),
        (u, None, 410, h(&[]), "", refuse.clone()),
        (p, None, 404, h(&[]), "", allow(None)),
        (d, None, 410, h(&[]), "", allow(None)),
        (d, Some(0), 404, h(&[]), "", allow(None)),
        (u, None, 500, h(&[]), own, unavailable.clone()),
        (u, None, 401, h(&[]), own, unavailable.clone()),
        (u, None, 304, h(&[]), own, unavailable.clone()),
        (u, None, 200, h(&[("content-encoding", "gzip")]), own, unavailable.clone()),
        (u, None, 200, h(&[]), "<Observation/>", unavailable.clone()),
        (u, None, 200, h(&[]), r#"{"resourceType":"Observation","id":"o1","id":"o1"}"#, unavailable.clone()),
        (u, None, 200, h(&[]), wrong, unavailable.clone()),
    ];
    for (i, (kind, entry, status, headers, body, want)) in rows.into_iter().enumerate() {
        let o = Obligation::CheckStored { resource_type: "Observation".into(), id: "o1".into(), patient: "123".into(), interaction: kind, entry };
        let got = check_stored(&o, status, &headers, body.as_bytes(), Some(BASE));
        let same = match (&got, &want) {
            (Stored::Refuse(m), Stored::Refuse(_)) | (Stored::Unavailable(m), Stored::Unavailable(_)) => !m.is_empty(),
            _ => got == want,
        };
        assert!(same, "row {i}: got {got:?}, want {want:?}");
    }
}
