//! Type, system and compartment searches, their parameters, paging and history.

use super::*;

#[test]
#[rustfmt::skip]
fn type_search_and_parameters() {
    const FORM_UTF8: &[(&str, &str)] = &[(
        "content-type",
        "application/x-www-form-urlencoded; charset=UTF-8",
    )];
    check(&[
        row("/fhir", "GET", "/fhir/Patient", NO, None, "search type Patient"),
        row("/fhir", "HEAD", "/fhir/Patient", NO, None, "search type Patient"),
        row("/fhir", "GET", "/fhir/Patient?name=smith", NO, None, "search type Patient q=name=smith"),
        row("/fhir", "GET", "/fhir/Patient?name=smith&name=jones", NO, None, "search type Patient q=name=smith&name=jones"),
        row("/fhir", "GET", "/fhir/Observation?code=a,b", NO, None, "search type Observation q=code=a;b"),
        row("/fhir", "GET", "/fhir/Observation?code=a%2Cb", NO, None, "search type Observation q=code=a;b"),
        row("/fhir", "GET", "/fhir/Observation?code=a\\,b,c", NO, None, "search type Observation q=code=a,b;c"),
        row("/fhir", "GET", "/fhir/Observation?code=a%5C,b", NO, None, "search type Observation q=code=a,b"),
        row("/fhir", "GET", "/fhir/Observation?code=http://loinc.org%7C1234-5", NO, None, "search type Observation q=code=http://loinc.org|1234-5"),
        row("/fhir", "GET", "/fhir/Observation?subject:Patient.name=peter", NO, None, "search type Observation q=subject[m=Patient][c=name]=peter"),
        row("/fhir", "GET", "/fhir/Observation?subject.name=peter", NO, None, "search type Observation q=subject[c=name]=peter"),
        row("/fhir", "GET", "/fhir/Observation?subject:Patient.organization.name=x", NO, None, "search type Observation q=subject[m=Patient][c=organization.name]=x"),
        row("/fhir", "GET", "/fhir/Patient?_has:Observation:patient:code=1234-5", NO, None, "search type Patient q=_has[m=Observation:patient:code]=1234-5"),
        row("/fhir", "GET", "/fhir/Patient?name:exact=Smith", NO, None, "search type Patient q=name[m=exact]=Smith"),
        row("/fhir", "GET", "/fhir/Patient?name%3Aexact=Smith", NO, None, "search type Patient q=name[m=exact]=Smith"),
        row("/fhir", "GET", "/fhir/Observation?date=ge2020&date=le2021", NO, None, "search type Observation q=date=ge2020&date=le2021"),
        row("/fhir", "GET", "/fhir/Patient?_include=Patient:organization&_revinclude=Provenance:target", NO, None, "search type Patient q=_include=Patient:organization&_revinclude=Provenance:target"),
        row("/fhir", "GET", "/fhir/Patient?_include:iterate=Patient:link", NO, None, "search type Patient q=_include[m=iterate]=Patient:link"),
        row("/fhir", "GET", "/fhir/Patient?_count=10&_sort=-birthdate", NO, None, "search type Patient q=_count=10&_sort=-birthdate"),
        row("/fhir", "GET", "/fhir/Patient?name=John+Smith", NO, None, "search type Patient q=name=John Smith"),
        row("/fhir", "GET", "/fhir/Patient?name=%C3%A9", NO, None, "search type Patient q=name=é"),
        row("/fhir", "GET", "/fhir/Patient?name", NO, None, "search type Patient q=name="),
        row("/fhir", "GET", "/fhir/Patient?&&name=a&&", NO, None, "search type Patient q=name=a"),
        row("/fhir", "GET", "/fhir/Patient?_type=Observation", NO, None, "search type Patient q=_type=Observation"),
        row("/fhir", "GET", "/fhir/Patient?=x", NO, None, "!empty name"),
        row("/fhir", "GET", "/fhir/Patient?:exact=x", NO, None, "!empty name before `:` or `.`"),
        row("/fhir", "GET", "/fhir/Patient?name=a%00", NO, None, "!the query string contains an encoded control character (%00)"),
        row("/fhir", "GET", "/fhir/Patient?name=a\u{0}", NO, None, "!raw control character (0x00)"),
        row("/fhir", "GET", "/fhir/Patient?name=a%0D%0A", NO, None, "!encoded control character (%0D)"),
        row("/fhir", "GET", "/fhir/Patient?name=a%zz", NO, None, "!malformed percent escape"),
        row("/fhir", "GET", "/fhir/Patient?name=a%", NO, None, "!malformed percent escape"),
        row("/fhir", "GET", "/fhir/Patient?name=%FF", NO, None, "!invalid UTF-8"),
        row("/fhir", "GET", "/fhir/Patient?name=%C2%85", NO, None, "!the query string contains a control character (U+0085)"),
        row("/fhir", "GET", "/fhir/Patient?name=\u{85}", NO, None, "!the query string contains a control character (U+0085)"),
        row("/fhir", "GET", "/fhir/Patient?name=%E2%80%8B", NO, None, "search type Patient q=name=\u{200b}"),
        row("/fhir", "GET", "/fhir/Patient?name=a;_include=*", NO, None, "!the query string contains a raw `;`"),
        row("/fhir", "GET", "/fhir/Patient?name=a%3B_include=*", NO, None, "search type Patient q=name=a;_include=*"),
        row("/fhir", "GET", "/fhir/Patient?name=a#frag", NO, None, "!`#` fragment"),
        row("/fhir", "GET", "/fhir/Patient?_method=DELETE", NO, None, "!the `_method` parameter is refused"),
        row("/fhir", "GET", "/fhir/Patient/_search?name=a", NO, None, "search type Patient q=name=a"),
        row("/fhir", "POST", "/fhir/Patient/_search?_count=5", FORM, Some("name=a&birthdate=ge2000"), "search type Patient q=_count=5&name=a&birthdate=ge2000"),
        row("/fhir", "POST", "/fhir/Patient/_search", FORM_UTF8, Some("name=a%2Cb,c"), "search type Patient q=name=a;b;c"),
        row("/fhir", "POST", "/fhir/Patient/_search", FORM, Some(""), "search type Patient"),
        row("/fhir", "POST", "/fhir/Patient/_search?name=a", NO, Some(""), "!POST _search needs a form, even when empty"),
        row("/fhir", "POST", "/fhir/Patient/_search", NO, Some("name=a"), "!POST _search needs a form"),
        row("/fhir", "POST", "/fhir/Patient/_search", JSON, Some("{}"), "!POST _search needs a form, not `application/fhir+json`"),
        row("/fhir", "POST", "/fhir/Patient/_search", FORM, None, "!was not provided"),
        row("/fhir", "POST", "/fhir/Patient/_search", NO, None, "!POST _search needs a form, even when empty"),
        row("/fhir", "POST", "/fhir/Patient/_search", FORM, Some("name=a%00"), "!the form body contains an encoded control character"),
        row("/fhir", "POST", "/fhir/Patient/_search", FORM, Some("name=x;_id=1"), "!the form body contains a raw `;`"),
        row("/fhir", "POST", "/fhir/Patient/_search", FORM, Some("=a"), "!the form body has a parameter with an empty name"),
        row("/fhir", "POST", "/fhir/Patient/_search", FORM, Some("_method=DELETE"), "!the `_method` parameter is refused"),
        row("/fhir", "PUT", "/fhir/Patient/_search", FORM, Some(""), "!PUT [base]/Patient/_search is not a FHIR interaction; allowed here: GET or POST"),
        row("/fhir", "DELETE", "/fhir/Patient/_search", NO, None, "!DELETE [base]/Patient/_search is not a FHIR interaction"),
        row("/fhir", "GET", "/fhir/Patient/", NO, None, "search type Patient"),
        row("/fhir", "GET", "/fhir/Patient/?name=x", NO, None, "search type Patient q=name=x"),
        row("/fhir", "HEAD", "/fhir/Patient/?name=x", NO, None, "search type Patient q=name=x"),
        row("/fhir", "GET", "/fhir/patient/?name=x", NO, None, "!the path `patient/` ends with `/`"),
        row("/fhir", "GET", "/fhir/Patient//", NO, None, "!ends with `/`"),
        row("/fhir", "GET", "/fhir/_history/", NO, None, "!ends with `/`"),
        row("/fhir", "GET", "/fhir/$export/", NO, None, "!ends with `/`"),
        row("/fhir", "DELETE", "/fhir/Patient/?identifier=x", NO, None, "!DELETE [base]/Patient/ is not a FHIR interaction; allowed here: GET (search); for anything else remove the trailing `/`"),
        row("/fhir", "PUT", "/fhir/Patient/?identifier=x", JSON, Some(PATIENT), "!PUT [base]/Patient/ is not a FHIR interaction"),
        row("/fhir/R4", "GET", "/fhir/R4/Condition?patient=123&clinical-status=active", NO, None, "search type Condition q=patient=123&clinical-status=active"),
        row("", "GET", "/Condition?patient=123", NO, None, "search type Condition q=patient=123"),
    ]);
}

#[test]
#[rustfmt::skip]
fn system_search_and_paging() {
    check(&[
        row("/fhir", "GET", "/fhir", NO, None, "search system"),
        row("/fhir", "GET", "/fhir/", NO, None, "search system"),
        row("/fhir", "GET", "/fhir?_type=Patient,Observation&_lastUpdated=gt2020", NO, None, "search system types=Patient,Observation q=_type=Patient;Observation&_lastUpdated=gt2020"),
        row("/fhir", "GET", "/fhir?_type=Patient&_type=Observation,Patient", NO, None, "search system types=Patient,Observation q=_type=Patient&_type=Observation;Patient"),
        row("/fhir", "GET", "/fhir/?_type=Patient", NO, None, "search system types=Patient q=_type=Patient"),
        row("/fhir", "GET", "/fhir?_type=patient", NO, None, "!_type: unknown resource type `patient`"),
        row("/fhir", "GET", "/fhir?_type=Foo", NO, None, "!_type: `Foo` is not a FHIR R4 resource type"),
        row("/fhir", "GET", "/fhir?_type=", NO, None, "!_type: `` is not a FHIR R4 resource type"),
        row("/fhir", "POST", "/fhir/_search", FORM, Some("_type=Patient&name=x"), "search system types=Patient q=_type=Patient&name=x"),
        row("/fhir", "GET", "/fhir/_search?_type=Patient", NO, None, "search system types=Patient q=_type=Patient"),
        row("/fhir", "DELETE", "/fhir/_search", NO, None, "!DELETE [base]/_search is not a FHIR interaction"),
        row("/fhir", "DELETE", "/fhir", NO, None, "!DELETE [base] is not a FHIR interaction; allowed here: GET (system search) or POST (batch/transaction Bundle)"),
        row("/fhir", "PUT", "/fhir", JSON, Some("{}"), "!PUT [base] is not a FHIR interaction"),
        row("/fhir", "PATCH", "/fhir/", NO, None, "!PATCH [base] is not a FHIR interaction"),
        row("", "GET", "/", NO, None, "search system"),
        row("", "GET", "/?_type=Patient", NO, None, "search system types=Patient q=_type=Patient"),
        row("/fhir/R4", "GET", "/fhir/R4?_type=Encounter", NO, None, "search system types=Encounter q=_type=Encounter"),
        row("/fhir", "GET", "/fhir?_getpages=abc&_getpagesoffset=20&_count=10&_bundletype=searchset", NO, None, "paging system q=_getpages=abc&_getpagesoffset=20&_count=10&_bundletype=searchset"),
        row("/fhir", "GET", "/fhir/?_getpages=abc", NO, None, "paging system q=_getpages=abc"),
        row("/fhir", "HEAD", "/fhir?_getpages=abc", NO, None, "paging system q=_getpages=abc"),
        row("", "GET", "/?_getpages=abc&_getpagesoffset=10", NO, None, "paging system q=_getpages=abc&_getpagesoffset=10"),
        row("/fhir/R4", "GET", "/fhir/R4?_getpages=x1", NO, None, "paging system q=_getpages=x1"),
        row("/fhir", "GET", "/fhir/_getpages", NO, None, "!`_getpages` is not a FHIR R4 resource type or endpoint"),
        row("/fhir", "GET", "/fhir/Patient?_getpages=abc", NO, None, "!`_getpages` is refused on [base]/Patient"),
    ]);
}

#[test]
#[rustfmt::skip]
fn compartment_search() {
    check(&[
        row("/fhir", "GET", "/fhir/Patient/123/Observation", NO, None, "search type Observation comp=Patient/123 types=Observation"),
        row("/fhir", "HEAD", "/fhir/Patient/123/Observation", NO, None, "search type Observation comp=Patient/123 types=Observation"),
        row("/fhir", "GET", "/fhir/Patient/123/Observation?code=x,y", NO, None, "search type Observation comp=Patient/123 types=Observation q=code=x;y"),
        row("/fhir", "GET", "/fhir/Patient/123/*", NO, None, "search system comp=Patient/123"),
        row("/fhir", "GET", "/fhir/Patient/123/*?_type=Observation,Condition", NO, None, "search system comp=Patient/123 types=Observation,Condition q=_type=Observation;Condition"),
        row("/fhir", "GET", "/fhir/Patient/123/*?_type=Nope", NO, None, "!_type: `Nope` is not a FHIR R4 resource type"),
        row("/fhir", "GET", "/fhir/Encounter/e1/Observation", NO, None, "search type Observation comp=Encounter/e1 types=Observation"),
        row("/fhir", "GET", "/fhir/RelatedPerson/r1/Observation", NO, None, "search type Observation comp=RelatedPerson/r1 types=Observation"),
        row("/fhir", "GET", "/fhir/Practitioner/p1/Encounter", NO, None, "search type Encounter comp=Practitioner/p1 types=Encounter"),
        row("/fhir", "GET", "/fhir/Device/d1/Observation", NO, None, "search type Observation comp=Device/d1 types=Observation"),
        row("/fhir", "GET", "/fhir/Observation/1/Patient", NO, None, "!`Observation` is not a compartment: compartment searches use one of Device, Encounter, Patient, Practitioner, RelatedPerson"),
        row("/fhir", "GET", "/fhir/Organization/1/*", NO, None, "!`Organization` is not a compartment"),
        row("/fhir", "GET", "/fhir/Patient/123/observation", NO, None, "!use `Observation`"),
        row("/fhir", "GET", "/fhir/Patient/123/Observation/456", NO, None, "!`Patient/123/Observation/456` is not a FHIR R4 RESTful path under the base"),
        row("/fhir", "GET", "/fhir/Patient/bad_id/Observation", NO, None, "!invalid resource id `bad_id`"),
        row("/fhir", "POST", "/fhir/Patient/123/_search", FORM, Some("_type=Observation"), "search system comp=Patient/123 types=Observation q=_type=Observation"),
        row("/fhir", "GET", "/fhir/Patient/123/_search?code=x", NO, None, "search system comp=Patient/123 q=code=x"),
        row("/fhir", "POST", "/fhir/Patient/123/Observation/_search", FORM, Some("code=x"), "search type Observation comp=Patient/123 types=Observation q=code=x"),
        row("/fhir", "POST", "/fhir/Patient/123/Observation/_search", JSON, Some("{}"), "!POST _search needs a form, not `application/fhir+json`"),
        row("/fhir", "POST", "/fhir/Patient/123/Observation", JSON, Some("{}"), "!POST [base]/Patient/123/Observation is not a FHIR interaction; allowed here: GET"),
        row("/fhir", "DELETE", "/fhir/Patient/123/Observation", NO, None, "!DELETE [base]/Patient/123/Observation is not a FHIR interaction"),
        row("/fhir", "POST", "/fhir/Patient/123/*", NO, None, "!POST [base]/Patient/123/* is not a FHIR interaction"),
        row("/fhir", "GET", "/fhir/Patient/123/*/_search", NO, None, "!not a FHIR R4 RESTful path"),
        row("/fhir", "GET", "/fhir/Patient/123/Observation/", NO, None, "!ends with `/`"),
        row("/fhir/R4", "GET", "/fhir/R4/Patient/123/MedicationRequest?status=active", NO, None, "search type MedicationRequest comp=Patient/123 types=MedicationRequest q=status=active"),
        row("", "GET", "/Patient/123/Condition", NO, None, "search type Condition comp=Patient/123 types=Condition"),
    ]);
}

#[test]
#[rustfmt::skip]
fn history() {
    check(&[
        row("/fhir", "GET", "/fhir/_history", NO, None, "history system"),
        row("/fhir", "GET", "/fhir/_history?_since=2020-01-01", NO, None, "history system q=_since=2020-01-01"),
        row("/fhir", "GET", "/fhir/Patient/_history", NO, None, "history type Patient"),
        row("/fhir", "GET", "/fhir/Patient/123/_history", NO, None, "history instance Patient id=123"),
        row("/fhir", "GET", "/fhir/Patient/123/_history?_count=5&_at=2020", NO, None, "history instance Patient id=123 q=_count=5&_at=2020"),
        row("/fhir", "POST", "/fhir/_history", NO, None, "!POST [base]/_history is not a FHIR interaction; allowed here: GET"),
        row("/fhir", "DELETE", "/fhir/Patient/123/_history", NO, None, "!DELETE [base]/Patient/123/_history is not a FHIR interaction"),
        row("/fhir", "DELETE", "/fhir/Patient/_history", NO, None, "!DELETE [base]/Patient/_history is not a FHIR interaction"),
        row("/fhir", "GET", "/fhir/_history/1", NO, None, "!`_history` is not a FHIR R4 resource type"),
        row("", "GET", "/_history", NO, None, "history system"),
        row("/fhir/R4", "GET", "/fhir/R4/Observation/_history", NO, None, "history type Observation"),
    ]);
}
