//! Property tests for the classifier: no input panics it, ids it reports
//! always follow the FHIR id grammar, and a body `body_needed` says is not
//! needed never changes the outcome.

#![allow(clippy::indexing_slicing)]

mod classify_common;

use classify_common::fhir_base;
use fhir_smart_authz_core::fhir::{
    body_needed, classify, is_valid_id, resource_types, Interaction, InteractionKind, RequestParts,
};
use proptest::prelude::*;
use proptest::test_runner::Config as PtConfig;

/// Path and query fragments chosen to hit every rule of the classifier.
const FRAGMENTS: &[&str] = &[
    "/",
    "/",
    "/",
    "Patient",
    "patient",
    "Observation",
    "123",
    "a.b-c",
    "_history",
    "1",
    "$everything",
    "$export",
    "$",
    "_search",
    "metadata",
    ".well-known",
    "smart-configuration",
    "*",
    "Bundle",
    "Binary",
    "%2F",
    "%2f",
    "%25",
    "%252F",
    "%2e%2e",
    "%2E",
    "..",
    ".",
    "%00",
    "%0a",
    "\\",
    "%5C",
    ";",
    "%3B",
    "#",
    "?",
    "&",
    "=",
    ",",
    "\\,",
    "_type=",
    "Patient,Foo",
    "%",
    "%z",
    "%zz",
    "%C3",
    "%C3%A9",
    "%FF",
    "é",
    "\u{0}",
    "\t",
    " ",
    "+",
    ":",
    "_getpages=x",
    "_has:Observation:patient:code=1",
    "subject:Patient.name=x",
    "_method=GET",
    "//",
    "fhir",
    "R4",
    "Encounter",
    "e1",
    "_count=5",
    "name=a%2Cb",
];

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FRAGMENTS).prop_map(str::to_string),
        1 => "\\PC{0,6}",
        1 => any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ]
}

/// Path templates: `T` = a resource type, `C` = a compartment type,
/// `I` = an id, `O` = an operation, `S` = any segment (often nasty).
const TEMPLATES: &[&str] = &[
    "",
    "T",
    "T/I",
    "T/I",
    "T/I/_history",
    "T/I/_history/I",
    "T/_history",
    "_history",
    "T/O",
    "T/I/O",
    "O",
    "C/I/T",
    "C/I/*",
    "C/I/_search",
    "C/I/T/_search",
    "metadata",
    ".well-known/smart-configuration",
    "T/_search",
    "_search",
    "T/I/_history/I/O",
    "S",
    "T/S",
    "T/I/S",
    "S/I",
];

const TYPES: &[&str] = &[
    "Patient",
    "Observation",
    "Encounter",
    "Group",
    "Binary",
    "Bundle",
    "Condition",
];
const COMPARTMENTS: &[&str] = &["Patient", "Encounter", "Device", "Observation", "patient"];
const IDS: &[&str] = &["123", "a.b-c", "x", "p1", "..", "a_b", "%31", "1%2F2"];
const OPS: &[&str] = &["$everything", "$export", "$meta", "$validate", "$", "$-x"];

const PARAMS: &[&str] = &[
    "name=a",
    "code=a,b",
    "code=a\\,b",
    "subject:Patient.name=x",
    "subject.name=y",
    "_has:Observation:patient:code=1",
    "_type=Patient,Observation",
    "_type=Condition",
    "_getpages=abc",
    "_count=10",
    "_include=Patient:organization",
    "identifier=http://x%7C1",
    "date=ge2020&date=le2021",
    "_format=json",
    "name:exact=Jo+Smith",
    "given=%C3%A9",
];

fn structured() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(TEMPLATES),
        proptest::collection::vec(
            (
                proptest::sample::select(TYPES),
                proptest::sample::select(COMPARTMENTS),
                proptest::sample::select(IDS),
                proptest::sample::select(OPS),
                fragment(),
            ),
            5,
        ),
        proptest::option::of(proptest::collection::vec(
            proptest::sample::select(PARAMS),
            0..4,
        )),
        proptest::sample::select(&["", "", "", "", "/"][..]),
    )
        .prop_map(|(template, picks, params, trailing)| {
            let mut p = String::new();
            for (part, (t, c, i, o, s)) in template.split('/').zip(picks.iter()) {
                if part.is_empty() {
                    continue;
                }
                p.push('/');
                p.push_str(match part {
                    "T" => t,
                    "C" => c,
                    "I" => i,
                    "O" => o,
                    "S" => s,
                    literal => literal,
                });
            }
            p.push_str(trailing);
            if let Some(params) = params {
                p.push('?');
                p.push_str(&params.join("&"));
            }
            p
        })
}

/// (prefix, rest): the prefix is `None` for "the configured base path".
fn path() -> impl Strategy<Value = (Option<&'static str>, String)> {
    let nasty = (
        proptest::sample::select(&["/fhir", "/fhir/", "/fhir/R4", "", "/", "/other", "fhir"][..]),
        proptest::collection::vec(fragment(), 0..10),
    )
        .prop_map(|(base, frags)| (Some(base), frags.concat()));
    prop_oneof![
        1 => nasty,
        4 => structured().prop_map(|p| (None, p)),
    ]
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => proptest::sample::select(&["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"][..])
            .prop_map(str::to_string),
        2 => proptest::sample::select(&["OPTIONS", "get", "TRACE", ""][..])
        .prop_map(str::to_string),
        1 => "[A-Za-z]{0,8}",
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        6 => proptest::sample::select(&["content-type", "accept", "prefer", "authorization"][..]),
        1 => proptest::sample::select(
            &["if-none-exist", "x-http-method-override", "x-method-override", "x-http-method"][..]
        ),
    ];
    let value = prop_oneof![
        4 => proptest::sample::select(
            &[
                "application/fhir+json",
                "application/json; charset=utf-8",
                "application/fhir+xml",
                "application/x-www-form-urlencoded",
                "image/png",
                "identifier=a",
                "?identifier=a%7C1",
                "Patient?identifier=b",
                "",
                "GET",
            ][..]
        )
        .prop_map(str::to_string),
        1 => "\\PC{0,12}",
    ];
    proptest::collection::vec((name.prop_map(str::to_string), value), 0..3)
}

/// Bundle entries with URLs built from the nasty fragments.
fn bundle_body() -> impl Strategy<Value = Vec<u8>> {
    let entry = (
        proptest::sample::select(
            &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "get", "X"][..],
        ),
        prop_oneof![
            proptest::collection::vec(fragment(), 0..6).prop_map(|f| f.concat()),
            structured().prop_map(|p| p.trim_start_matches('/').to_string()),
        ],
        proptest::option::of(proptest::sample::select(
            &["Patient", "Observation", "Bundle", "Parameters"][..],
        )),
        proptest::option::of("[a-z0-9]{0,4}"),
        any::<bool>(),
    )
        .prop_map(|(m, url, rt, id, ine)| {
            let mut e = serde_json::json!({"request": {"method": m, "url": url}});
            if ine {
                e["request"]["ifNoneExist"] = "identifier=a".into();
            }
            if let Some(rt) = rt {
                let mut r = serde_json::json!({"resourceType": rt});
                if let Some(id) = id {
                    r["id"] = id.into();
                }
                e["resource"] = r;
            }
            e
        });
    (
        proptest::sample::select(&["batch", "transaction", "document"][..]),
        proptest::collection::vec(entry, 0..5),
    )
        .prop_map(|(t, entries)| {
            serde_json::to_vec(&serde_json::json!({
                "resourceType": "Bundle", "type": t, "entry": entries
            }))
            .unwrap_or_default()
        })
}

fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        "\\PC{0,40}".prop_map(String::into_bytes),
        bundle_body(),
        proptest::sample::select(
            &[
                r#"{"resourceType":"Patient","id":"123"}"#,
                r#"{"resourceType":"Patient"}"#,
                "name=a&_type=Patient",
                "[]",
                "",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
    ])
}

fn base() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(&["/fhir", "/fhir/R4", ""][..])
}

/// Every id and type the classifier reports is well-formed, recursively.
fn check_well_formed(i: &Interaction) -> Result<(), TestCaseError> {
    if let Some(id) = &i.id {
        prop_assert!(is_valid_id(id), "bad id {id:?}");
        prop_assert!(id != "." && id != "..", "dot id {id:?}");
    }
    if let Some(v) = &i.version {
        prop_assert!(is_valid_id(v), "bad version {v:?}");
    }
    if let Some(t) = &i.resource_type {
        prop_assert!(resource_types::is_resource_type(t), "bad type {t:?}");
    }
    if let Some(c) = &i.compartment {
        prop_assert!(resource_types::is_resource_type(&c.resource_type));
        prop_assert!(is_valid_id(&c.id));
    }
    for t in &i.types {
        prop_assert!(resource_types::is_resource_type(t), "bad _type {t:?}");
    }
    for e in &i.entries {
        prop_assert!(e.interaction.entries.is_empty(), "nested entries");
        check_well_formed(&e.interaction)?;
    }
    Ok(())
}

fn pt_config() -> PtConfig {
    PtConfig {
        cases: 512,
        failure_persistence: None,
        ..PtConfig::default()
    }
}

proptest! {
    #![proptest_config(pt_config())]

    #[test]
    fn never_panics_and_reports_well_formed_ids(
        base in base(),
        method in method(),
        (prefix, rest) in path(),
        headers in headers(),
        body in body(),
    ) {
        let cfg = fhir_base(base);
        let path = format!("{}{rest}", prefix.unwrap_or(base));
        let req = RequestParts { method: &method, path: &path, headers: headers.into(), body: None };
        let needed = body_needed(&cfg, &req);
        let without = classify(&cfg, &req);
        let with_body = RequestParts { body: body.as_deref(), ..req.clone() };
        let with = classify(&cfg, &with_body);
        if let Ok(i) = &without {
            check_well_formed(i)?;
        }
        if let Ok(i) = &with {
            check_well_formed(i)?;
        }
        if !needed {
            // A body the classifier did not ask for never changes the outcome.
            prop_assert_eq!(&without, &with);
        }
        if let Err(e) = &with {
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn bundles_never_panic(base in base(), body in bundle_body()) {
        let cfg = fhir_base(base);
        let path = if base.is_empty() { "/".to_string() } else { base.to_string() };
        let req = RequestParts {
            method: "POST",
            path: &path,
            headers: vec![("content-type".into(), "application/fhir+json".into())].into(),
            body: Some(&body),
        };
        prop_assert!(body_needed(&cfg, &req));
        if let Ok(i) = classify(&cfg, &req) {
            check_well_formed(&i)?;
        }
    }

    /// A GET/HEAD/DELETE entry is classified exactly like the same request
    /// sent directly, whether its URL is relative or absolute.
    #[test]
    fn entries_match_direct_requests(
        base in base(),
        method in proptest::sample::select(&["GET", "HEAD", "DELETE"][..]),
        rest in structured(),
        absolute in any::<bool>(),
    ) {
        // `[base]/` is fine for HTTP but a leading `/` is not a relative URL.
        prop_assume!(rest != "/" && !rest.starts_with("/?"));
        let cfg = fhir_base(base);
        let direct_path = if base.is_empty() && !rest.starts_with('/') {
            format!("/{rest}")
        } else {
            format!("{base}{rest}")
        };
        let direct = classify(&cfg, &RequestParts {
            method, path: &direct_path, headers: vec![].into(), body: None,
        });
        let relative = rest.strip_prefix('/').unwrap_or(&rest);
        let url = if absolute {
            format!("{}{rest}", cfg.url.clone().unwrap_or_default())
        } else {
            relative.to_string()
        };
        let bundle = serde_json::to_vec(&serde_json::json!({
            "resourceType": "Bundle", "type": "batch",
            "entry": [{"request": {"method": method, "url": url}}]
        })).unwrap_or_default();
        let bundle_path = if base.is_empty() { "/".to_string() } else { base.to_string() };
        let via_bundle = classify(&cfg, &RequestParts {
            method: "POST",
            path: &bundle_path,
            headers: vec![("content-type".into(), "application/fhir+json".into())].into(),
            body: Some(&bundle),
        });
        match (direct, via_bundle) {
            // A page is followed directly, never inside a batch.
            (Ok(d), Err(e)) if d.kind == InteractionKind::Paging => {
                prop_assert!(e.message.contains("paging links cannot be followed inside a batch"), "{}", e.message)
            }
            (Ok(d), Ok(b)) => {
                prop_assert_eq!(b.entries.len(), 1);
                prop_assert_eq!(&*b.entries[0].interaction, &d);
            }
            (Err(_), Err(e)) => prop_assert!(e.message.starts_with("Bundle.entry[0]: "), "{}", e.message),
            (d, b) => prop_assert!(false, "direct {:?} vs bundle {:?} for {}", d, b, url),
        }
    }

    /// Valid reads round-trip: the id (even when percent-encoded) comes back decoded once.
    #[test]
    fn reads_round_trip(
        base in base(),
        t in proptest::sample::select(resource_types::RESOURCE_TYPES),
        id in "[A-Za-z0-9.-]{1,64}",
        encode in proptest::collection::vec(any::<bool>(), 64),
    ) {
        prop_assume!(id != "." && id != "..");
        let encoded: String = id
            .chars()
            .zip(encode.iter().chain(std::iter::repeat(&false)))
            .map(|(c, &e)| if e { format!("%{:02X}", c as u32) } else { c.to_string() })
            .collect();
        let path = format!("{base}/{t}/{encoded}");
        let cfg = fhir_base(base);
        let req = RequestParts { method: "GET", path: &path, headers: vec![].into(), body: None };
        let i = classify(&cfg, &req).map_err(|e| TestCaseError::fail(e.message))?;
        prop_assert_eq!(i.id.as_deref(), Some(id.as_str()));
        prop_assert_eq!(i.resource_type.as_deref(), Some(t));
        prop_assert!(is_valid_id(i.id.as_deref().unwrap_or("")));
    }
}
