//! Batch and transaction Bundles, entry by entry.

use super::*;

fn get_entry(url: &str) -> String {
    format!(r#"{{"request":{{"method":"GET","url":"{url}"}}}}"#)
}

#[test]
#[rustfmt::skip]
fn batch_and_transaction() {
    let batch_abs = bundle(
        "batch",
        &[
            get_entry("https://ehr.example.org/fhir/Patient/1"),
            get_entry("https://ehr.example.org/fhir/Observation?patient=1"),
            get_entry("https://ehr.example.org/fhir?_type=Patient"),
            get_entry("https://ehr.example.org/fhir/"),
        ]
        .join(","),
    );
    let batch_abs_expected = "batch system entries: \
[0 GET https://ehr.example.org/fhir/Patient/1 => read instance Patient id=1] \
[1 GET https://ehr.example.org/fhir/Observation?patient=1 => search type Observation q=patient=1] \
[2 GET https://ehr.example.org/fhir?_type=Patient => search system types=Patient q=_type=Patient] \
[3 GET https://ehr.example.org/fhir/ => search system]";
    let r4 = bundle(
        "batch",
        &[
            get_entry("https://ehr.example.org/fhir/R4/Patient/1"),
            get_entry("Patient/2"),
        ]
        .join(","),
    );
    let root = bundle(
        "batch",
        &[
            get_entry("https://ehr.example.org/Patient/1"),
            get_entry("Patient/2"),
        ]
        .join(","),
    );
    let other_host = bundle(
        "batch",
        &get_entry("https://evil.example.org/fhir/Patient/1"),
    );
    let http_scheme = bundle("batch", &get_entry("http://ehr.example.org/fhir/Patient/1"));
    let sibling = bundle(
        "batch",
        &get_entry("https://ehr.example.org/fhirx/Patient/1"),
    );
    let r4_outside = bundle(
        "batch",
        &get_entry("https://ehr.example.org/fhir/Patient/1"),
    );
    let leading_slash = bundle("batch", &get_entry("/fhir/Patient/1"));
    let net_path = bundle("batch", &get_entry("//ehr.example.org/fhir/Patient/1"));
    let urn = bundle("batch", &get_entry("urn:uuid:1234"));
    let dot = bundle("batch", &get_entry("Patient/../Observation/1"));
    let enc_slash = bundle("batch", &get_entry("Patient/1%2F2"));
    let frag = bundle("batch", &get_entry("Patient/1#x"));
    let lower = bundle("batch", &get_entry("patient/1"));
    let trailing = bundle("batch", &get_entry("Patient/"));
    let trailing2 = bundle("batch", &get_entry("Patient/1/"));
    let second_bad = bundle(
        "batch",
        &[get_entry("Patient/1"), get_entry("Nope/1")].join(","),
    );
    let nested = bundle(
        "transaction",
        r#"{"resource":{"resourceType":"Bundle","type":"batch"},"request":{"method":"POST","url":"Bundle"}}"#,
    );
    let post_base = bundle("transaction", r#"{"request":{"method":"POST","url":""}}"#);
    let post_base_abs = bundle(
        "transaction",
        r#"{"request":{"method":"POST","url":"https://ehr.example.org/fhir"}}"#,
    );
    let post_search = bundle(
        "batch",
        r#"{"resource":{"resourceType":"Parameters"},"request":{"method":"POST","url":"Patient/_search"}}"#,
    );
    let get_search = bundle("batch", &get_entry("Patient/_search?name=x"));
    let no_request = bundle("batch", r#"{"resource":{"resourceType":"Patient"}}"#);
    let no_url = bundle("batch", r#"{"request":{"method":"GET"}}"#);
    let no_method = bundle("batch", r#"{"request":{"url":"Patient/1"}}"#);
    let url_number = bundle("batch", r#"{"request":{"method":"GET","url":5}}"#);
    let lower_method = bundle("batch", r#"{"request":{"method":"get","url":"Patient/1"}}"#);
    let options = bundle(
        "batch",
        r#"{"request":{"method":"OPTIONS","url":"Patient/1"}}"#,
    );
    let put_mismatch = bundle(
        "transaction",
        r#"{"resource":{"resourceType":"Patient","id":"9"},"request":{"method":"PUT","url":"Patient/1"}}"#,
    );
    let post_no_resource = bundle(
        "transaction",
        r#"{"request":{"method":"POST","url":"Patient"}}"#,
    );
    let post_wrong_type = bundle(
        "transaction",
        r#"{"resource":{"resourceType":"Observation"},"request":{"method":"POST","url":"Patient"}}"#,
    );
    let resource_not_object = bundle(
        "transaction",
        r#"{"resource":"Patient","request":{"method":"POST","url":"Patient"}}"#,
    );
    let ine_on_put = bundle(
        "transaction",
        r#"{"resource":{"resourceType":"Patient","id":"1"},"request":{"method":"PUT","url":"Patient/1","ifNoneExist":"identifier=a"}}"#,
    );
    let ine_empty = bundle(
        "transaction",
        r#"{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":""}}"#,
    );
    let ine_typed = bundle(
        "transaction",
        r#"{"resource":{"resourceType":"Observation"},"request":{"method":"POST","url":"Observation","ifNoneExist":"Observation?identifier=x"}}"#,
    );
    let override_param = bundle("batch", &get_entry("Patient/1?_method=DELETE"));
    let entry_not_object = bundle("batch", "5");
    let empty_batch = r#"{"resourceType":"Bundle","type":"batch"}"#;
    let empty_tx = r#"{"resourceType":"Bundle","type":"transaction","entry":[]}"#;
    let document = r#"{"resourceType":"Bundle","type":"document","entry":[]}"#;
    let searchset = r#"{"resourceType":"Bundle","type":"searchset"}"#;
    let no_type = r#"{"resourceType":"Bundle"}"#;
    let not_bundle = r#"{"resourceType":"Patient"}"#;
    let entry_obj = r#"{"resourceType":"Bundle","type":"batch","entry":{}}"#;

    check(&[
        row("/fhir", "POST", "/fhir", JSON, Some(TX), TX_EXPECTED),
        row("/fhir", "POST", "/fhir/", JSON, Some(TX), TX_EXPECTED),
        row("/fhir", "POST", "/fhir", JSON, Some(&batch_abs), batch_abs_expected),
        row("/fhir", "POST", "/fhir", JSON, Some(empty_batch), "batch system"),
        row("/fhir", "POST", "/fhir", JSON, Some(empty_tx), "transaction system"),
        row("/fhir/R4", "POST", "/fhir/R4", JSON, Some(&r4), "batch system entries: [0 GET https://ehr.example.org/fhir/R4/Patient/1 => read instance Patient id=1] [1 GET Patient/2 => read instance Patient id=2]"),
        row("", "POST", "/", JSON, Some(&root), "batch system entries: [0 GET https://ehr.example.org/Patient/1 => read instance Patient id=1] [1 GET Patient/2 => read instance Patient id=2]"),
        row("/fhir", "POST", "/fhir", JSON, Some(&other_host), "!Bundle.entry[0]: request.url `https://evil.example.org/fhir/Patient/1` is not under the FHIR base https://ehr.example.org/fhir"),
        row("/fhir", "POST", "/fhir", JSON, Some(&http_scheme), "!Bundle.entry[0]: request.url `http://ehr.example.org/fhir/Patient/1` is not under the FHIR base"),
        row("/fhir", "POST", "/fhir", JSON, Some(&sibling), "!is not under the FHIR base"),
        row("/fhir/R4", "POST", "/fhir/R4", JSON, Some(&r4_outside), "!is not under the FHIR base https://ehr.example.org/fhir/R4"),
        row("/fhir", "POST", "/fhir", JSON, Some(&leading_slash), "!Bundle.entry[0]: request.url `/fhir/Patient/1` must be relative to the base"),
        row("/fhir", "POST", "/fhir", JSON, Some(&net_path), "!Bundle.entry[0]: request.url `//ehr.example.org/fhir/Patient/1` is not under the FHIR base"),
        row("/fhir", "POST", "/fhir", JSON, Some(&urn), "!Bundle.entry[0]: request.url `urn:uuid:1234` is not under the FHIR base"),
        row("/fhir", "POST", "/fhir", JSON, Some(&dot), "!Bundle.entry[0]: the path contains a dot segment"),
        row("/fhir", "POST", "/fhir", JSON, Some(&enc_slash), "!Bundle.entry[0]: the path contains an encoded `/` (%2F)"),
        row("/fhir", "POST", "/fhir", JSON, Some(&frag), "!Bundle.entry[0]: request.url contains a `#` fragment"),
        row("/fhir", "POST", "/fhir", JSON, Some(&lower), "!Bundle.entry[0]: unknown resource type `patient`"),
        row("/fhir", "POST", "/fhir", JSON, Some(&trailing), "batch system entries: [0 GET Patient/ => search type Patient]"),
        row("/fhir", "POST", "/fhir", JSON, Some(&trailing2), "!Bundle.entry[0]: the path `Patient/1/` ends with `/`"),
        row("/fhir", "POST", "/fhir", JSON, Some(&second_bad), "!Bundle.entry[1]: `Nope` is not a FHIR R4 resource type"),
        row("/fhir", "POST", "/fhir", JSON, Some(&nested), "!Bundle.entry[0]: a Bundle nested in an entry's resource is refused"),
        row("/fhir", "POST", "/fhir", JSON, Some(&post_base), "!Bundle.entry[0]: an entry cannot POST to [base]: nested batch/transaction Bundles are refused"),
        row("/fhir", "POST", "/fhir", JSON, Some(&post_base_abs), "!Bundle.entry[0]: an entry cannot POST to [base]"),
        row("/fhir", "POST", "/fhir", JSON, Some(&post_search), "!Bundle.entry[0]: POST _search inside a Bundle is not supported"),
        row("/fhir", "POST", "/fhir", JSON, Some(&get_search), "batch system entries: [0 GET Patient/_search?name=x => search type Patient q=name=x]"),
        row("/fhir", "POST", "/fhir", JSON, Some(&no_request), "!Bundle.entry[0]: entry.request is missing"),
        row("/fhir", "POST", "/fhir", JSON, Some(&no_url), "!Bundle.entry[0]: request.url is missing"),
        row("/fhir", "POST", "/fhir", JSON, Some(&no_method), "!Bundle.entry[0]: request.method is missing"),
        row("/fhir", "POST", "/fhir", JSON, Some(&url_number), "!Bundle.entry[0]: request.url must be a string"),
        row("/fhir", "POST", "/fhir", JSON, Some(&lower_method), "!Bundle.entry[0]: unsupported HTTP method `get`"),
        row("/fhir", "POST", "/fhir", JSON, Some(&options), "!Bundle.entry[0]: OPTIONS is refused"),
        row("/fhir", "POST", "/fhir", JSON, Some(&put_mismatch), "!Bundle.entry[0]: the resource id `9` does not match the id `1` in the URL"),
        row("/fhir", "POST", "/fhir", JSON, Some(&post_no_resource), "!Bundle.entry[0]: the entry has no resource: a create of Patient needs entry.resource"),
        row("/fhir", "POST", "/fhir", JSON, Some(&post_wrong_type), "!Bundle.entry[0]: the resource's resourceType `Observation` does not match the URL type `Patient`"),
        row("/fhir", "POST", "/fhir", JSON, Some(&resource_not_object), "!Bundle.entry[0]: entry.resource must be a JSON object"),
        row("/fhir", "POST", "/fhir", JSON, Some(&ine_on_put), "!Bundle.entry[0]: If-None-Exist is only allowed on a create"),
        row("/fhir", "POST", "/fhir", JSON, Some(&ine_empty), "!Bundle.entry[0]: If-None-Exist has no search criteria"),
        row("/fhir", "POST", "/fhir", JSON, Some(&ine_typed), "transaction system entries: [0 POST Observation => create type Observation cond q=identifier=x res]"),
        row("/fhir", "POST", "/fhir", JSON, Some(&override_param), "!Bundle.entry[0]: the `_method` parameter is refused"),
        row("/fhir", "POST", "/fhir", JSON, Some(&entry_not_object), "!Bundle.entry[0]: the entry must be a JSON object"),
        row("/fhir", "POST", "/fhir", JSON, Some(document), "!Bundle.type `document` cannot be processed at POST [base]: only `batch` or `transaction`"),
        row("/fhir", "POST", "/fhir", JSON, Some(searchset), "!Bundle.type `searchset` cannot be processed"),
        row("/fhir", "POST", "/fhir", JSON, Some(no_type), "!Bundle.type is missing"),
        row("/fhir", "POST", "/fhir", JSON, Some(not_bundle), "!POST [base] takes a Bundle, not a `Patient`"),
        row("/fhir", "POST", "/fhir", JSON, Some(entry_obj), "!Bundle.entry must be an array"),
        row("/fhir", "POST", "/fhir", JSON, Some("[]"), "!must be a JSON Bundle object"),
        row("/fhir", "POST", "/fhir", JSON, Some(r#"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/1","url":"Patient/2"}}]}"#), "!the Bundle is not valid JSON: duplicate key `url`"),
        row("/fhir", "POST", "/fhir", JSON, Some(r#"{"resourceType":"Bundle","type":"batch","type":"document"}"#), "!duplicate key `type`"),
        row("/fhir", "POST", "/fhir", JSON, Some("{\"resourceType\":"), "!the Bundle is not valid JSON"),
        row("/fhir", "POST", "/fhir", JSON, None, "!was not provided"),
        row("/fhir", "POST", "/fhir", XML, Some("<Bundle/>"), "!XML batch/transaction Bundles are not supported"),
        row("/fhir", "POST", "/fhir", NO, Some(TX), "!POST [base] needs Content-Type: application/fhir+json"),
        row("/fhir", "POST", "/fhir", FORM, Some("a=b"), "!unsupported Content-Type `application/x-www-form-urlencoded` for POST [base]"),
        row("/fhir", "POST", "/fhir?_getpages=abc", JSON, Some(empty_batch), "!POST [base]?_getpages= is refused"),
    ]);
}

#[test]
#[rustfmt::skip]
fn absolute_entry_urls_need_a_configured_base_url() {
    let cfg = fhir_base_without_url("/fhir");
    let body = bundle(
        "batch",
        &get_entry("https://ehr.example.org/fhir/Patient/1"),
    );
    let req = request("POST", "/fhir", JSON, Some(body.as_bytes()));
    let e = classify(&cfg, &req).unwrap_err();
    assert!(
        e.message.contains("knows no base URL (fhir_base_url)"),
        "{}",
        e.message
    );
    let body = bundle("batch", &get_entry("Patient/1"));
    let req = request("POST", "/fhir", JSON, Some(body.as_bytes()));
    assert_eq!(
        summary(&classify(&cfg, &req).unwrap()),
        "batch system entries: [0 GET Patient/1 => read instance Patient id=1]"
    );
}
