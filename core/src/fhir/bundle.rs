//! `POST [base]`: a batch or transaction Bundle, every entry classified by
//! the same table as a request of its own.

use super::base::FhirBase;
use super::body::{not_buffered, BodySource, Payload};
use super::error::{err, short, ClassifyError};
use super::head::{body_media, parse_method, MediaKind};
use super::id::literal;
use super::interaction::{BundleEntry, Interaction, InteractionKind, Level, SearchParam};
use super::table::{classify_path, Classified};
use serde_json::{Map, Value};

/// The most entries of a batch/transaction Bundle this gateway decides:
/// every entry is decided against every scope, so the cost of a request is
/// bounded by this times the scopes considered (`scope::MAX_SCOPES`).
pub const MAX_BUNDLE_ENTRIES: usize = 1000;

/// `POST [base]`: a JSON batch or transaction Bundle; every entry classified.
pub(super) fn classify_bundle(
    base: &FhirBase,
    payload: Payload<'_>,
    search: Vec<SearchParam>,
) -> Result<Interaction, ClassifyError> {
    let (content_type, body) = match payload.body {
        BodySource::Entry { .. } => return Err(nested_bundle()),
        BodySource::Http { content_type, body } => (content_type, body),
    };
    match content_type.map(body_media).transpose()? {
        Some(MediaKind::Json) => {}
        Some(MediaKind::Xml) => return err("XML batch/transaction Bundles are not supported by this gateway: send the Bundle as application/fhir+json"),
        None => return err("POST [base] needs Content-Type: application/fhir+json with a batch or transaction Bundle"),
        Some(_) => return err(format!(
            "unsupported Content-Type `{}` for POST [base]: send a batch or transaction Bundle as application/fhir+json",
            short(content_type.unwrap_or(""))
        )),
    }
    let body = body.ok_or_else(not_buffered)?;
    let mut value = crate::json::from_slice_strict(body)
        .map_err(|e| ClassifyError::new(format!("the Bundle is not valid JSON: {e}")))?;
    let Some(obj) = value.as_object_mut() else {
        return err("the body of POST [base] must be a JSON Bundle object");
    };
    match obj.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") => {}
        Some(other) => {
            return err(format!(
                "POST [base] takes a Bundle, not a `{}`",
                short(other)
            ))
        }
        None => return err("the body of POST [base] has no resourceType: send a Bundle"),
    }
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some("batch") => InteractionKind::Batch,
        Some("transaction") => InteractionKind::Transaction,
        Some(other) => {
            return err(format!(
            "Bundle.type `{}` cannot be processed at POST [base]: only `batch` or `transaction`",
            short(other)
        ))
        }
        None => return err("Bundle.type is missing: use `batch` or `transaction`"),
    };
    let raw_entries = match obj.get_mut("entry") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => std::mem::take(a),
        Some(_) => return err("Bundle.entry must be an array"),
    };
    if raw_entries.len() > MAX_BUNDLE_ENTRIES {
        return err(format!(
            "the Bundle has {} entries, more than {MAX_BUNDLE_ENTRIES}: split it",
            raw_entries.len()
        ));
    }
    let mut entries = Vec::with_capacity(raw_entries.len());
    for (index, entry) in raw_entries.into_iter().enumerate() {
        let e = classify_entry(base, index, entry)
            .map_err(|e| ClassifyError::new(format!("Bundle.entry[{index}]: {}", e.message)))?;
        entries.push(e);
    }
    let mut out = Interaction::new(kind, Level::System);
    out.search = search;
    out.entries = entries;
    Ok(out)
}

fn nested_bundle() -> ClassifyError {
    ClassifyError::new(
        "an entry cannot POST to [base]: nested batch/transaction Bundles are refused",
    )
}

fn entry_str<'a>(
    request: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ClassifyError> {
    match request.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => err(format!("request.{field} must be a string")),
    }
}

fn classify_entry(
    base: &FhirBase,
    index: usize,
    entry: Value,
) -> Result<BundleEntry, ClassifyError> {
    let Value::Object(mut entry) = entry else {
        return err("the entry must be a JSON object");
    };
    let resource = match entry.remove("resource") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => {
            if v.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
                return err("a Bundle nested in an entry's resource is refused: send its entries in the outer Bundle");
            }
            Some(v)
        }
        Some(_) => return err("entry.resource must be a JSON object"),
    };
    let Some(request) = entry.get("request").and_then(Value::as_object) else {
        return err("entry.request is missing: batch/transaction entries need request.method and request.url");
    };
    let method_raw = entry_str(request, "method")?
        .ok_or_else(|| ClassifyError::new("request.method is missing"))?;
    let url =
        entry_str(request, "url")?.ok_or_else(|| ClassifyError::new("request.url is missing"))?;
    let if_none_exist = entry_str(request, "ifNoneExist")?;
    let method = parse_method(method_raw)?;
    let full_url = match entry.get("fullUrl") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return err("entry.fullUrl must be a string"),
    };
    let (rel, query) = entry_target(base, url)?;
    let payload = Payload {
        if_none_exist,
        body: BodySource::Entry { resource },
    };
    let interaction = match classify_path(method, rel, query, payload)? {
        Classified::Interaction(i) if i.kind == InteractionKind::Paging => {
            return err("paging links cannot be followed inside a batch: GET them directly")
        }
        Classified::Interaction(i) => i,
        Classified::Bundle { .. } => return Err(nested_bundle()),
    };
    check_full_url(base, full_url.as_deref(), &interaction)?;
    Ok(BundleEntry {
        index,
        method: method_raw.to_string(),
        url: url.to_string(),
        full_url,
        interaction: Box::new(interaction),
    })
}

/// An entry's `fullUrl` (which other entries' references may name): a
/// `urn:uuid:`/`urn:oid:` URI, or a literal reference by the one grammar
/// ([`literal`]: `Type/id` on `fhir_base_url` or relative) naming the
/// resource `request.url` names, if it names one. Anything else could be
/// read as another resource (or another patient) than the entry writes.
fn check_full_url(
    base: &FhirBase,
    full_url: Option<&str>,
    it: &Interaction,
) -> Result<(), ClassifyError> {
    let Some(url) = full_url else { return Ok(()) };
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'%' | b'\\' | b'/' | b'?' | b'#'))
    };
    if url
        .strip_prefix("urn:uuid:")
        .or_else(|| url.strip_prefix("urn:oid:"))
        .is_some_and(plain)
    {
        return Ok(());
    }
    let named = literal(url, base.url.as_deref()).filter(|l| l.version.is_none());
    let agrees = named.is_some_and(|l| {
        it.id.is_none()
            || (it.resource_type.as_deref() == Some(l.resource_type)
                && it.id.as_deref() == Some(l.id))
    });
    if agrees {
        return Ok(());
    }
    err(format!(
        "entry.fullUrl `{}` must be a urn:uuid:/urn:oid: URI or the entry's own resource (Type/id of request.url) on the server's base URL (fhir_base_url)",
        short(url)
    ))
}

/// An entry's `request.url`, relative to the base: relative (`Patient/1`) or
/// absolute under `fhir_base_url`.
fn entry_target<'a>(
    base: &FhirBase,
    url: &'a str,
) -> Result<(&'a str, Option<&'a str>), ClassifyError> {
    if url.contains('#') {
        return err("request.url contains a `#` fragment");
    }
    let first = url
        .find([':', '/', '?'])
        .and_then(|i| url.as_bytes().get(i));
    let rel_full = if first == Some(&b':') || url.starts_with("//") {
        let Some(base_url) = base.url.as_deref() else {
            return err(format!(
                "absolute request.url `{}` cannot be checked because the gateway knows no base URL (fhir_base_url): use a relative URL such as `Patient/123`",
                short(url)
            ));
        };
        let not_under = || {
            ClassifyError::new(format!(
                "request.url `{}` is not under the FHIR base {base_url}",
                short(url)
            ))
        };
        let rest = url.strip_prefix(base_url).ok_or_else(not_under)?;
        if rest.is_empty() || rest.starts_with('?') {
            rest
        } else {
            rest.strip_prefix('/').ok_or_else(not_under)?
        }
    } else if url.starts_with('/') {
        return err(format!(
            "request.url `{}` must be relative to the base (`Patient/123`, no leading `/`) or absolute under the server's base URL (fhir_base_url)",
            short(url)
        ));
    } else {
        url
    };
    Ok(match rel_full.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rel_full, None),
    })
}
