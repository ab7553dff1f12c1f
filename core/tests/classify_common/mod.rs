//! Helpers shared by the classifier tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhir_smart_authz_core::fhir::{FhirBase, Interaction, RequestParts, SearchParam};

pub fn fhir_base(base: &str) -> FhirBase {
    let (path, url) = match base {
        "" => ("/", "https://ehr.example.org"),
        "/fhir" => ("/fhir", "https://ehr.example.org/fhir"),
        "/fhir/R4" => ("/fhir/R4", "https://ehr.example.org/fhir/R4"),
        other => panic!("unknown test base {other}"),
    };
    FhirBase::new(path, Some(url)).unwrap()
}

pub fn fhir_base_without_url(base: &str) -> FhirBase {
    FhirBase::new(base, None).unwrap()
}

pub fn request<'a>(
    method: &'a str,
    path: &'a str,
    headers: &[(&str, &str)],
    body: Option<&'a [u8]>,
) -> RequestParts<'a> {
    RequestParts {
        method,
        path,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
            .collect(),
        body,
    }
}

fn param(p: &SearchParam) -> String {
    let mut s = p.name.clone();
    if let Some(m) = &p.modifier {
        s.push_str(&format!("[m={m}]"));
    }
    if let Some(c) = &p.chain {
        s.push_str(&format!("[c={c}]"));
    }
    s.push('=');
    s.push_str(&p.values.join(";"));
    s
}

fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// A compact, exact rendering of an interaction:
/// `kind level [Type] [id=..] [v=..] [comp=T/id] [op=$x] [cond] [types=A,B] [q=..] [res] [entries: ...]`.
pub fn summary(i: &Interaction) -> String {
    let mut parts = vec![name(&i.kind), name(&i.level)];
    if let Some(t) = &i.resource_type {
        parts.push(t.clone());
    }
    if let Some(id) = &i.id {
        parts.push(format!("id={id}"));
    }
    if let Some(v) = &i.version {
        parts.push(format!("v={v}"));
    }
    if let Some(c) = &i.compartment {
        parts.push(format!("comp={}/{}", c.resource_type, c.id));
    }
    if let Some(op) = &i.operation {
        parts.push(format!("op={op}"));
    }
    if i.conditional {
        parts.push("cond".into());
    }
    if !i.types.is_empty() {
        parts.push(format!("types={}", i.types.join(",")));
    }
    if !i.search.is_empty() {
        let q: Vec<String> = i.search.iter().map(param).collect();
        parts.push(format!("q={}", q.join("&")));
    }
    if i.resource.is_some() {
        parts.push("res".into());
    }
    if !i.entries.is_empty() {
        let e: Vec<String> = i
            .entries
            .iter()
            .map(|e| {
                format!(
                    "[{} {} {} => {}]",
                    e.index,
                    e.method,
                    e.url,
                    summary(&e.interaction)
                )
            })
            .collect();
        parts.push(format!("entries: {}", e.join(" ")));
    }
    parts.join(" ")
}
