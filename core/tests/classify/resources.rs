//! Interactions on resources: read, vread, update, patch, delete, create (plain and conditional), and the bodies they carry.

use super::*;

#[test]
#[rustfmt::skip]
fn read_and_vread() {
    let id64 = "a".repeat(64);
    let id65 = "a".repeat(65);
    let p64 = format!("/fhir/Patient/{id64}");
    let p65 = format!("/fhir/Patient/{id65}");
    let e64 = format!("read instance Patient id={id64}");
    check(&[
        row("/fhir", "GET", "/fhir/Patient/123", NO, None, "read instance Patient id=123"),
        row("/fhir", "HEAD", "/fhir/Patient/123", NO, None, "read instance Patient id=123"),
        row("/fhir", "GET", "/fhir/Patient/a.b-C9", NO, None, "read instance Patient id=a.b-C9"),
        row("/fhir", "GET", &p64, NO, None, &e64),
        row("/fhir", "GET", &p65, NO, None, "!invalid resource id"),
        row("/fhir", "GET", "/fhir/Patient/abc_def", NO, None, "!invalid resource id `abc_def`"),
        row("/fhir", "GET", "/fhir/Patient/12%33", NO, None, "read instance Patient id=123"),
        row("/fhir", "GET", "/fhir/%50atient/1", NO, None, "read instance Patient id=1"),
        row("/fhir", "GET", "/fhir/Patient/123?_elements=name,birthDate", NO, None, "read instance Patient id=123 q=_elements=name;birthDate"),
        row("/fhir", "GET", "/fhir/Patient/123?", NO, None, "read instance Patient id=123"),
        row("/fhir", "GET", "/fhir/patient/123", NO, None, "!resource types are case-sensitive, use `Patient`"),
        row("/fhir", "GET", "/fhir/PATIENT/123", NO, None, "!resource types are case-sensitive, use `Patient`"),
        row("/fhir", "GET", "/fhir/Foo/1", NO, None, "!`Foo` is not a FHIR R4 resource type"),
        row("/fhir", "GET", "/fhir/Resource/1", NO, None, "!`Resource` is not a FHIR R4 resource type"),
        row("/fhir", "GET", "/fhir/DomainResource/1", NO, None, "!`DomainResource` is not a FHIR R4 resource type"),
        row("/fhir", "GET", "/fhir/Patient/1%20", NO, None, "!invalid resource id `1 `"),
        row("/fhir", "GET", "/fhir/Patient/%C3%A9", NO, None, "!invalid resource id `é`"),
        row("/fhir", "GET", "/fhir/Patient/*", NO, None, "!invalid resource id `*`"),
        row("/fhir", "GET", "/fhir/Patient/123/_history/4", NO, None, "vread instance Patient id=123 v=4"),
        row("/fhir", "HEAD", "/fhir/Patient/123/_history/4", NO, None, "vread instance Patient id=123 v=4"),
        row("/fhir", "GET", "/fhir/Patient/123/_history/4/", NO, None, "!ends with `/`"),
        row("/fhir", "GET", "/fhir/Patient/123/_history/x_y", NO, None, "!invalid version id `x_y`"),
        row("/fhir", "GET", "/fhir/Patient/123/_history/..", NO, None, "!dot segment"),
        row("/fhir", "DELETE", "/fhir/Patient/123/_history/4", NO, None, "!DELETE [base]/Patient/123/_history/4 is not a FHIR interaction"),
        row("/fhir", "PUT", "/fhir/Patient/123/_history/4", JSON, Some(PATIENT_123), "!PUT [base]/Patient/123/_history/4 is not a FHIR interaction"),
        row("/fhir", "GET", "/fhir/Patient/123/_history/4/5", NO, None, "!not a FHIR R4 RESTful path"),
        row("/fhir", "GET", "/fhir/Patient/metadata", NO, None, "read instance Patient id=metadata"),
        row("/fhir/R4", "GET", "/fhir/R4/Observation/o-1", NO, None, "read instance Observation id=o-1"),
        row("", "GET", "/Observation/o-1", NO, None, "read instance Observation id=o-1"),
        row("", "GET", "/Observation/o-1/_history/1", NO, None, "vread instance Observation id=o-1 v=1"),
    ]);
}

#[test]
#[rustfmt::skip]
fn update_patch_delete() {
    const JSON_UTF8: &[(&str, &str)] = &[("content-type", "application/json; charset=utf-8")];
    const PNG: &[(&str, &str)] = &[("content-type", "image/png")];
    const TEXT: &[(&str, &str)] = &[("content-type", "text/plain")];
    const JSON_PATCH: &[(&str, &str)] = &[("content-type", "application/json-patch+json")];
    check(&[
        row("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(PATIENT_123), "update instance Patient id=123 res"),
        row("/fhir", "PUT", "/fhir/Patient/123", JSON_UTF8, Some(PATIENT_123), "update instance Patient id=123 res"),
        row("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(r#"{"resourceType":"Patient","id":"124"}"#), "!the resource id `124` does not match the id `123` in the URL"),
        row("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(PATIENT), "!an update needs the resource's id"),
        row("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(r#"{"resourceType":"Observation","id":"123"}"#), "!resourceType `Observation` does not match the URL type `Patient`"),
        row("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(r#"{"id":"123"}"#), "!the resource has no resourceType"),
        row("/fhir", "PUT", "/fhir/Patient/123", JSON, Some("[1]"), "!the resource must be a JSON object"),
        row("/fhir", "PUT", "/fhir/Patient/123", JSON, Some("{"), "!not valid JSON"),
        row("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(r#"{"resourceType":"Patient","id":"123","id":"999"}"#), "!duplicate key `id` in a JSON object"),
        row("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(r#"{"resourceType":"Patient","id":"123","link":[{"other":{"reference":"Patient/1"},"other":{"reference":"Patient/2"}}]}"#), "!duplicate key `other`"),
        row("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(r#"{"resourceType":"Patient","id":"123"} x"#), "!not valid JSON"),
        row("/fhir", "PUT", "/fhir/Patient/123", JSON, None, "!was not provided"),
        row("/fhir", "PUT", "/fhir/Patient/123", XML, Some("<Patient/>"), "update instance Patient id=123"),
        row("/fhir", "PUT", "/fhir/Patient/123", XML, None, "update instance Patient id=123"),
        row("/fhir", "PUT", "/fhir/Patient/123", NO, Some(PATIENT_123), "!needs a Content-Type header"),
        row("/fhir", "PUT", "/fhir/Patient/123", TEXT, Some("x"), "!unsupported Content-Type `text/plain`"),
        row("/fhir", "PUT", "/fhir/Binary/b1", PNG, Some("\u{1}PNG"), "update instance Binary id=b1"),
        row("/fhir", "PUT", "/fhir/Patient", JSON, Some(PATIENT), "!PUT [base]/Patient needs an id (`Patient/[id]`) or search criteria"),
        row("/fhir", "PUT", "/fhir/Patient?", JSON, Some(PATIENT), "!needs an id"),
        row("/fhir", "PUT", "/fhir/Patient?_format=json", JSON, Some(PATIENT), "!needs an id"),
        row("/fhir", "PUT", "/fhir/Patient?identifier=http://x%7C1", JSON, Some(PATIENT), "update type Patient cond q=identifier=http://x|1 res"),
        row("/fhir", "PUT", "/fhir/Patient?identifier=x", JSON, Some(r#"{"resourceType":"Group"}"#), "!does not match the URL type `Patient`"),
        row("/fhir", "PUT", "/fhir/Patient/123?_format=json", JSON, Some(PATIENT_123), "update instance Patient id=123 q=_format=json res"),
        row("/fhir", "PATCH", "/fhir/Patient/123", JSON_PATCH, Some("[]"), "patch instance Patient id=123 res"),
        row("/fhir", "PATCH", "/fhir/Patient/123", JSON_PATCH, None, "!was not provided"),
        row("/fhir", "PATCH", "/fhir/Observation?code=x", JSON_PATCH, Some("[]"), "patch type Observation cond q=code=x res"),
        row("/fhir", "PATCH", "/fhir/Observation", JSON_PATCH, Some("[]"), "!PATCH [base]/Observation needs an id"),
        row("/fhir", "DELETE", "/fhir/Patient/123", NO, None, "delete instance Patient id=123"),
        row("/fhir", "DELETE", "/fhir/Observation?subject=Patient/1", NO, None, "delete type Observation cond q=subject=Patient/1"),
        row("/fhir", "DELETE", "/fhir/Observation", NO, None, "!DELETE [base]/Observation needs an id (`Observation/[id]`) or search criteria"),
        row("/fhir", "DELETE", "/fhir/Observation?_pretty=true&_summary=count", NO, None, "!needs an id"),
        row("/fhir", "DELETE", "/fhir/Patient/123/", NO, None, "!ends with `/`"),
        row("/fhir/R4", "DELETE", "/fhir/R4/Patient/123", NO, None, "delete instance Patient id=123"),
        row("", "PUT", "/Patient/123", JSON, Some(PATIENT_123), "update instance Patient id=123 res"),
    ]);
}

#[test]
#[rustfmt::skip]
fn create_and_conditional_create() {
    const INE: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "identifier=http://x%7C1"),
    ];
    const INE_Q: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("If-None-Exist", "?identifier=a"),
    ];
    const INE_URL: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "Patient?identifier=a"),
    ];
    const INE_OTHER: &[(&str, &str)] = &[("content-type", "application/fhir+json"), ("if-none-exist", "Observation?identifier=a")];
    const INE_ABS: &[(&str, &str)] = &[("content-type", "application/fhir+json"), ("if-none-exist", "https://ehr.example.org/fhir/Patient?identifier=a")];
    const INE_SEMI: &[(&str, &str)] = &[("content-type", "application/fhir+json"), ("if-none-exist", "identifier=a;_id=b")];
    const INE_EMPTY: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("if-none-exist", ""),
    ];
    const INE_FORMAT: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "_format=json"),
    ];
    const INE_TWO: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "identifier=a"),
        ("if-none-exist", "identifier=b"),
    ];
    const INE_ONLY: &[(&str, &str)] = &[("if-none-exist", "identifier=a")];
    const PDF: &[(&str, &str)] = &[("content-type", "application/pdf")];
    const TWO_CT: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("content-type", "application/fhir+xml"),
    ];
    check(&[
        row("/fhir", "POST", "/fhir/Patient", JSON, Some(PATIENT), "create type Patient res"),
        row("/fhir", "POST", "/fhir/Patient", JSON, Some(PATIENT_123), "create type Patient res"),
        row("/fhir", "POST", "/fhir/Patient", JSON, Some(r#"{"resourceType":"Observation"}"#), "!resourceType `Observation` does not match the URL type `Patient`"),
        row("/fhir", "POST", "/fhir/Patient", JSON, None, "!was not provided"),
        row("/fhir", "POST", "/fhir/Patient", JSON, Some(""), "!not valid JSON"),
        row("/fhir", "POST", "/fhir/Patient", INE, Some(PATIENT), "create type Patient cond q=identifier=http://x|1 res"),
        row("/fhir", "POST", "/fhir/Patient", INE_Q, Some(PATIENT), "create type Patient cond q=identifier=a res"),
        row("/fhir", "POST", "/fhir/Patient", INE_URL, Some(PATIENT), "create type Patient cond q=identifier=a res"),
        row("/fhir", "POST", "/fhir/Patient", INE_OTHER, Some(PATIENT), "!If-None-Exist must hold only search parameters for Patient"),
        row("/fhir", "POST", "/fhir/Patient", INE_ABS, Some(PATIENT), "!If-None-Exist must hold only search parameters for Patient"),
        row("/fhir", "POST", "/fhir/Patient", INE_SEMI, Some(PATIENT), "!the If-None-Exist criteria contains a raw `;`"),
        row("/fhir", "POST", "/fhir/Patient", INE_EMPTY, Some(PATIENT), "!If-None-Exist has no search criteria"),
        row("/fhir", "POST", "/fhir/Patient", INE_FORMAT, Some(PATIENT), "!If-None-Exist has no search criteria"),
        row("/fhir", "POST", "/fhir/Patient", INE_TWO, Some(PATIENT), "!more than one If-None-Exist header"),
        row("/fhir", "GET", "/fhir/Patient", INE_ONLY, None, "!If-None-Exist is only allowed on a create (POST [base]/[type]), not on GET [base]/Patient"),
        row("/fhir", "PUT", "/fhir/Patient/1", INE, Some(r#"{"resourceType":"Patient","id":"1"}"#), "!If-None-Exist is only allowed on a create"),
        row("/fhir", "POST", "/fhir/Patient/_search", INE_ONLY, Some(""), "!If-None-Exist is only allowed on a create"),
        row("/fhir", "POST", "/fhir/Patient", XML, Some("<Patient/>"), "create type Patient"),
        row("/fhir", "POST", "/fhir/Binary", PDF, Some("%PDF"), "create type Binary"),
        row("/fhir", "POST", "/fhir/Binary", NO, Some("x"), "create type Binary"),
        row("/fhir", "POST", "/fhir/Patient", NO, Some(PATIENT), "!a create/update of Patient needs a Content-Type header"),
        row("/fhir", "POST", "/fhir/Patient", PDF, Some("x"), "!unsupported Content-Type `application/pdf` for a create/update of Patient"),
        row("/fhir", "POST", "/fhir/Patient", TWO_CT, Some(PATIENT), "!more than one Content-Type header"),
        row("/fhir", "POST", "/fhir/Patient/123", JSON, Some(PATIENT_123), "!POST [base]/Patient/123 is not a FHIR interaction; allowed here: GET (read), PUT (update), PATCH (patch) or DELETE (delete)"),
        row("/fhir", "POST", "/fhir/Patient?_format=json", JSON, Some(PATIENT), "create type Patient q=_format=json res"),
        row("/fhir", "POST", "/fhir/patient", JSON, Some(PATIENT), "!use `Patient`"),
        row("/fhir", "POST", "/fhir/Patient/", JSON, Some(PATIENT), "!POST [base]/Patient/ is not a FHIR interaction; allowed here: GET (search)"),
        row("/fhir/R4", "POST", "/fhir/R4/Observation", JSON, Some(r#"{"resourceType":"Observation","status":"final"}"#), "create type Observation res"),
        row("", "POST", "/Observation", JSON, Some(r#"{"resourceType":"Observation"}"#), "create type Observation res"),
    ]);
}

#[test]
#[rustfmt::skip]
fn resources_are_parsed_into_the_interaction() {
    let cfg = fhir_base("/fhir");
    let body = br#"{"resourceType":"Patient","id":"123","name":[{"family":"Chalmers"}]}"#;
    let req = request("PUT", "/fhir/Patient/123", JSON, Some(body));
    let i = classify(&cfg, &req).unwrap();
    assert_eq!(i.resource.unwrap()["name"][0]["family"], "Chalmers");

    let req = request("POST", "/fhir", JSON, Some(TX.as_bytes()));
    let i = classify(&cfg, &req).unwrap();
    assert_eq!(i.entries.len(), 13);
    assert_eq!(
        i.entries[1].interaction.resource.as_ref().unwrap()["id"],
        "123"
    );
    assert!(i.entries[2].interaction.resource.is_none());
    // a patch entry carries its patch document (here a FHIRPath Patch)
    assert_eq!(
        i.entries[5].interaction.resource.as_ref().unwrap()["resourceType"],
        "Parameters"
    );
    assert_eq!(i.entries[4].index, 4);
    // bodies never reach the serialized interaction
    let json = serde_json::to_string(&i).unwrap();
    assert!(!json.contains("resource\""), "{json}");
}

/// PATCH documents: exact media types (servers compare them exactly), a
/// charset only UTF-8, JSON Patch an array, FHIRPath Patch a Parameters;
/// XML patches are classified unread; in a Bundle a Parameters or a
/// base64 JSON Patch Binary.
#[test]
#[rustfmt::skip]
fn patch_documents() {
    const JP: &str = "application/json-patch+json";
    let ct = |v: &'static str| -> Vec<(&'static str, &'static str)> { vec![("content-type", v)] };
    let jp = ct(JP);
    let jp_utf8 = ct("application/json-patch+json; charset=utf-8");
    let jp_latin = ct("application/json-patch+json; charset=ISO-8859-1");
    let jp_case = ct("Application/JSON-Patch+json");
    let plain_json = ct("application/json");
    let fhir_json = ct("application/fhir+json");
    let xml_patch = ct("application/xml-patch+xml");
    let text = ct("text/plain");
    const OPS: &str = r#"[{"op":"replace","path":"/status","value":"final"}]"#;
    const PARAMS: &str = r#"{"resourceType":"Parameters","parameter":[]}"#;
    check(&[
        row("/fhir", "PATCH", "/fhir/Observation/o1", &jp, Some(OPS), "patch instance Observation id=o1 res"),
        row("/fhir", "PATCH", "/fhir/Observation/o1", &jp_utf8, Some(OPS), "patch instance Observation id=o1 res"),
        row("/fhir", "PATCH", "/fhir/Observation/o1", &fhir_json, Some(PARAMS), "patch instance Observation id=o1 res"),
        row("/fhir", "PATCH", "/fhir/Observation/o1", &xml_patch, Some("<diff/>"), "!a PATCH needs Content-Type"),
        row("/fhir", "PATCH", "/fhir/Observation/o1", XML, Some("<Parameters/>"), "!a PATCH needs Content-Type"),
        row("/fhir", "PATCH", "/fhir/Observation/o1", &jp_latin, Some(OPS), "!a PATCH needs Content-Type"),
        row("/fhir", "PATCH", "/fhir/Observation/o1", &jp_case, Some(OPS), "!a PATCH needs Content-Type application/json-patch+json"),
        row("/fhir", "PATCH", "/fhir/Observation/o1", &plain_json, Some(OPS), "!a PATCH needs Content-Type"),
        row("/fhir", "PATCH", "/fhir/Observation/o1", &text, Some(OPS), "!a PATCH needs Content-Type"),
        row("/fhir", "PATCH", "/fhir/Observation/o1", NO, Some(OPS), "!a PATCH needs Content-Type"),
        row("/fhir", "PATCH", "/fhir/Observation/o1", &jp, Some(PARAMS), "!a JSON Patch is an array of operations"),
        row("/fhir", "PATCH", "/fhir/Observation/o1", &fhir_json, Some(OPS), "!a FHIRPath Patch is a Parameters resource"),
        row("/fhir", "PATCH", "/fhir/Observation/o1", &jp, Some("[{"), "!the patch is not valid JSON"),
        row("/fhir", "PATCH", "/fhir/Observation/o1", &jp, Some(r#"[{"op":"add","op":"remove","path":"/a"}]"#), "!duplicate key `op`"),
        row("/fhir", "PATCH", "/fhir/Observation?patient=123", &jp, Some(OPS), "patch type Observation cond q=patient=123 res"),
    ]);
    let entry = |resource: &str| bundle("transaction", &format!(r#"{{"resource":{resource},"request":{{"method":"PATCH","url":"Observation/o1"}}}}"#));
    let binary = |ct: &str, data: &str| format!(r#"{{"resourceType":"Binary","contentType":"{ct}","data":"{data}"}}"#);
    // base64 of `[{"op":"remove","path":"/note"}]`
    const B64: &str = "W3sib3AiOiJyZW1vdmUiLCJwYXRoIjoiL25vdGUifV0=";
    for (resource, want) in [
        (binary(JP, B64), Ok(())),
        (PARAMS.to_string(), Ok(())),
        (binary(JP, "not base64!"), Err("a PATCH entry needs")),
        (binary("application/fhir+json", B64), Err("a PATCH entry needs a Parameters resource")),
        (r#"{"resourceType":"Observation"}"#.to_string(), Err("a PATCH entry needs")),
        // base64 of `{}`
        (binary(JP, "e30="), Err("a JSON Patch is an array")),
    ] {
        let body = entry(&resource);
        let got = classify(&fhir_base("/fhir"), &request("POST", "/fhir", JSON, Some(body.as_bytes())));
        match (got, want) {
            (Ok(i), Ok(())) => assert!(i.entries[0].interaction.resource.is_some(), "{resource}"),
            (Err(e), Err(w)) => assert!(e.message.contains(w), "{resource}: {}", e.message),
            (got, want) => panic!("{resource}: got {got:?}, want {want:?}"),
        }
    }
    // A patch Binary in a create or update entry would be applied as a patch by some servers.
    let put = bundle("transaction", &format!(r#"{{"resource":{},"request":{{"method":"PUT","url":"Binary/b1"}}}}"#, binary(JP, B64).replacen("{", r#"{"id":"b1","#, 1)));
    let e = classify(&fhir_base("/fhir"), &request("POST", "/fhir", JSON, Some(put.as_bytes()))).unwrap_err();
    assert!(e.message.contains("send it with PATCH"), "{}", e.message);
}
