//! `metadata`, the SMART configuration, and operations at every level.

use super::*;

#[test]
#[rustfmt::skip]
fn capabilities_and_discovery() {
    check(&[
        row("/fhir", "GET", "/fhir/metadata", NO, None, "capabilities system"),
        row("/fhir", "HEAD", "/fhir/metadata", NO, None, "capabilities system"),
        row("/fhir", "GET", "/fhir/metadata?_format=json", NO, None, "capabilities system q=_format=json"),
        row("/fhir", "DELETE", "/fhir/metadata", NO, None, "!DELETE [base]/metadata is not a FHIR interaction; allowed here: GET"),
        row("/fhir", "POST", "/fhir/metadata", NO, None, "!POST [base]/metadata is not a FHIR interaction"),
        row("/fhir", "PUT", "/fhir/metadata", JSON, Some("{}"), "!PUT [base]/metadata is not a FHIR interaction"),
        row("/fhir", "GET", "/fhir/metadata/", NO, None, "!ends with `/`"),
        row("/fhir", "GET", "/fhir/.well-known/smart-configuration", NO, None, "smart-configuration system"),
        row("/fhir", "HEAD", "/fhir/.well-known/smart-configuration", NO, None, "smart-configuration system"),
        row("/fhir", "POST", "/fhir/.well-known/smart-configuration", NO, None, "!POST [base]/.well-known/smart-configuration is not a FHIR interaction"),
        row("/fhir", "GET", "/fhir/.well-known/openid-configuration", NO, None, "!only `[base]/.well-known/smart-configuration`"),
        row("/fhir", "GET", "/fhir/.well-known", NO, None, "!only `[base]/.well-known/smart-configuration`"),
        row("", "GET", "/metadata", NO, None, "capabilities system"),
        row("", "GET", "/.well-known/smart-configuration", NO, None, "smart-configuration system"),
        row("/fhir/R4", "GET", "/fhir/R4/metadata", NO, None, "capabilities system"),
        row("/fhir/R4", "GET", "/fhir/R4/.well-known/smart-configuration", NO, None, "smart-configuration system"),
        row("/fhir", "GET", "/fhir/R4/metadata", NO, None, "!`R4` is not a FHIR R4 resource type or endpoint"),
        row("/fhir/R4", "GET", "/fhir/metadata", NO, None, "!outside the FHIR base path `/fhir/R4`"),
    ]);
}

#[test]
#[rustfmt::skip]
fn operations() {
    check(&[
        row("/fhir", "GET", "/fhir/$export", NO, None, "operation system op=$export"),
        row("/fhir", "GET", "/fhir/$export?_type=Patient,Observation&_since=2020", NO, None, "operation system op=$export types=Patient,Observation q=_type=Patient;Observation&_since=2020"),
        row("/fhir", "GET", "/fhir/$export?_type=Bogus", NO, None, "!_type: `Bogus` is not a FHIR R4 resource type"),
        row("/fhir", "POST", "/fhir/$process-message", JSON, Some(r#"{"resourceType":"Bundle","type":"message"}"#), "operation system op=$process-message res"),
        row("/fhir", "GET", "/fhir/Patient/$export", NO, None, "operation type Patient op=$export"),
        row("/fhir", "POST", "/fhir/Patient/$validate", JSON, Some(PATIENT), "operation type Patient op=$validate res"),
        row("/fhir", "POST", "/fhir/Patient/$validate", JSON, None, "!was not provided"),
        row("/fhir", "GET", "/fhir/Observation/$lastn?patient=1&code=x", NO, None, "operation type Observation op=$lastn q=patient=1&code=x"),
        row("/fhir", "GET", "/fhir/Group/g1/$export", NO, None, "operation instance Group id=g1 comp=Group/g1 op=$export"),
        row("/fhir", "GET", "/fhir/Patient/123/$everything", NO, None, "operation instance Patient id=123 comp=Patient/123 op=$everything"),
        row("/fhir", "POST", "/fhir/Patient/123/$everything", NO, Some(""), "operation instance Patient id=123 comp=Patient/123 op=$everything"),
        row("/fhir", "GET", "/fhir/Patient/123/$everything?_since=2020&_count=50", NO, None, "operation instance Patient id=123 comp=Patient/123 op=$everything q=_since=2020&_count=50"),
        row("/fhir", "GET", "/fhir/Patient/%24everything", NO, None, "operation type Patient op=$everything"),
        row("/fhir", "GET", "/fhir/Patient/123/_history/2/$meta", NO, None, "operation instance Patient id=123 v=2 comp=Patient/123 op=$meta"),
        row("/fhir", "POST", "/fhir/Patient/123/$meta-add", JSON, Some(r#"{"resourceType":"Parameters"}"#), "operation instance Patient id=123 comp=Patient/123 op=$meta-add"),
        row("/fhir", "GET", "/fhir/ValueSet/$expand?url=http://x", NO, None, "operation type ValueSet op=$expand q=url=http://x"),
        row("/fhir", "DELETE", "/fhir/Patient/123/$everything", NO, None, "!DELETE [base]/Patient/123/$everything is not a FHIR interaction; allowed here: GET or POST"),
        row("/fhir", "PUT", "/fhir/$export", NO, None, "!PUT [base]/$export is not a FHIR interaction"),
        row("/fhir", "PATCH", "/fhir/Patient/$validate", NO, None, "!PATCH [base]/Patient/$validate is not a FHIR interaction"),
        row("/fhir", "GET", "/fhir/$", NO, None, "!invalid operation name `$`"),
        row("/fhir", "GET", "/fhir/$ev%20il", NO, None, "!invalid operation name `$ev il`"),
        row("/fhir", "GET", "/fhir/$-x", NO, None, "!invalid operation name `$-x`"),
        row("/fhir", "GET", "/fhir/Patient/123/$everything/", NO, None, "!ends with `/`"),
        row("/fhir", "GET", "/fhir/Patient/123/$everything/x", NO, None, "!not a FHIR R4 RESTful path"),
        row("/fhir", "GET", "/fhir/Patient/123/_history/2/meta", NO, None, "!not a FHIR R4 RESTful path"),
        row("", "GET", "/$export", NO, None, "operation system op=$export"),
        row("/fhir/R4", "GET", "/fhir/R4/Patient/p1/$everything", NO, None, "operation instance Patient id=p1 comp=Patient/p1 op=$everything"),
    ]);
}
