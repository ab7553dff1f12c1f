//! What a request carries besides its path: the `_search` form body, the
//! create/update resource (checked against the URL) and `If-None-Exist`
//! criteria, from the HTTP request or from a Bundle entry.

use super::error::{err, short, ClassifyError};
use super::head::{body_media, MediaKind, FORM_HOW};
use super::interaction::SearchParam;
use super::query;
use serde_json::Value;

/// Where the body of the (sub-)request comes from.
pub(super) enum BodySource<'a> {
    /// The HTTP request itself.
    Http {
        content_type: Option<&'a str>,
        body: Option<&'a [u8]>,
    },
    /// A batch/transaction entry: its `resource`, already parsed.
    Entry { resource: Option<Value> },
}

/// What a (sub-)request carries besides its method and URL.
pub(super) struct Payload<'a> {
    pub(super) if_none_exist: Option<&'a str>,
    pub(super) body: BodySource<'a>,
}

/// Parameters that shape the response, not the match: they are not criteria.
const NON_CRITERIA: [&str; 4] = ["_format", "_pretty", "_summary", "_elements"];

pub(super) fn has_criteria(search: &[SearchParam]) -> bool {
    search
        .iter()
        .any(|p| !NON_CRITERIA.contains(&p.name.as_str()))
}

pub(super) fn not_buffered() -> ClassifyError {
    ClassifyError::new(
        "the request body is needed to classify this request but was not provided (internal: call body_needed and buffer the body)",
    )
}

/// A `_method` parameter asks some frameworks to tunnel another method.
pub(super) fn refuse_method_param(search: &[SearchParam]) -> Result<(), ClassifyError> {
    if search.iter().any(|p| p.name == "_method") {
        return err("the `_method` parameter is refused: this gateway does not tunnel HTTP methods; send the real method instead");
    }
    Ok(())
}

/// The largest `POST _search` form body this gateway decides. Far below any
/// container's own limit: Tomcat ignores a form past `maxPostSize` (2 MiB by
/// default, often set lower) without an error and runs the search on the URL
/// alone, dropping a pin this gateway decided on; `max_body_bytes` alone may
/// be configured above that.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// Appends the form body of a `POST .../_search`. The form Content-Type is
/// required even for an empty body: HAPI FHIR reads the URL of a POST
/// `_search` only when the body is a form (and Tomcat reads the body only
/// with that exact media type), so anything else could be run without the
/// parameters this gateway decided on.
pub(super) fn form_body(
    payload: &Payload<'_>,
    search: &mut Vec<SearchParam>,
) -> Result<(), ClassifyError> {
    match payload.body {
        BodySource::Entry { .. } => err(
            "POST _search inside a Bundle is not supported: use a GET entry with the parameters in request.url",
        ),
        BodySource::Http { content_type, body } => {
            let Some(ct) = content_type else {
                return err(format!(
                    "POST _search needs a form, even when empty (or use GET): {FORM_HOW}"
                ));
            };
            if body_media(ct)? != MediaKind::Form {
                return err(format!(
                    "POST _search needs a form, not `{}`: {FORM_HOW}",
                    short(ct)
                ));
            }
            let body = body.ok_or_else(not_buffered)?;
            if body.len() > MAX_FORM_BYTES {
                return err(format!(
                    "the _search form body has {} bytes, more than {MAX_FORM_BYTES}: servers silently ignore a form past their own limit (Tomcat's maxPostSize) and would run the search without its parameters; send a smaller form",
                    body.len()
                ));
            }
            let text = std::str::from_utf8(body)
                .map_err(|_| ClassifyError::new("the _search form body is not valid UTF-8"))?;
            query::parse_into(text, "form body", search)?;
            refuse_method_param(search)
        }
    }
}

/// The resource of a create/update: parsed and checked against the URL.
pub(super) fn body_resource(
    payload: &mut Payload<'_>,
    ty: &str,
    url_id: Option<&str>,
) -> Result<Option<Value>, ClassifyError> {
    let value = match &mut payload.body {
        BodySource::Entry { resource } => match resource.take() {
            Some(v) => v,
            None => {
                return err(format!(
                    "the entry has no resource: a {} of {ty} needs entry.resource",
                    if url_id.is_some() { "update" } else { "create" }
                ))
            }
        },
        BodySource::Http { content_type, body } => match content_type.map(body_media).transpose()? {
            Some(MediaKind::Json) => {
                let body = body.ok_or_else(not_buffered)?;
                crate::json::from_slice_strict(body).map_err(|e| {
                    ClassifyError::new(format!("the request body is not valid JSON: {e}"))
                })?
            }
            Some(MediaKind::Xml) => return Ok(None),
            _ if ty == "Binary" => return Ok(None),
            None => {
                return err(format!(
                    "a create/update of {ty} needs a Content-Type header (application/fhir+json or application/fhir+xml)"
                ))
            }
            Some(_) => {
                return err(format!(
                    "unsupported Content-Type `{}` for a create/update of {ty}: use application/fhir+json or application/fhir+xml",
                    short(content_type.unwrap_or(""))
                ))
            }
        },
    };
    let Some(obj) = value.as_object() else {
        return err("the resource must be a JSON object");
    };
    if obj.get("contentType").and_then(Value::as_str) == Some(JSON_PATCH) {
        return err("a Binary of application/json-patch+json is applied as a patch by some servers: send it with PATCH");
    }
    match obj.get("resourceType").and_then(Value::as_str) {
        Some(rt) if rt == ty => {}
        Some(rt) => {
            return err(format!(
                "the resource's resourceType `{}` does not match the URL type `{ty}`",
                short(rt)
            ))
        }
        None => return err("the resource has no resourceType"),
    }
    if let Some(url_id) = url_id {
        match obj.get("id").and_then(Value::as_str) {
            Some(id) if id == url_id => {}
            Some(id) => {
                return err(format!(
                    "the resource id `{}` does not match the id `{url_id}` in the URL",
                    short(id)
                ))
            }
            None => {
                return err(format!(
                    "an update needs the resource's id: set \"id\": \"{url_id}\" to match the URL"
                ))
            }
        }
    }
    Ok(Some(value))
}

const JSON_PATCH: &str = "application/json-patch+json";

/// The document of a PATCH: a JSON Patch array (`application/json-patch+json`;
/// in a Bundle, a base64 Binary of that content type) or a FHIRPath Patch
/// `Parameters` (`application/fhir+json`). An XML patch cannot be read:
/// refused with every other content type. Media types are compared exactly, as servers do; the
/// only parameter allowed is `charset=utf-8`.
pub(super) fn patch_body(payload: &mut Payload<'_>) -> Result<Value, ClassifyError> {
    let decoded: Vec<u8>;
    let (json_patch, bytes): (bool, &[u8]) = match &mut payload.body {
        BodySource::Entry { resource } => {
            let r = resource.take().unwrap_or_default();
            let text = |k: &str| r.get(k).and_then(Value::as_str);
            if text("resourceType") == Some("Parameters") {
                return Ok(r);
            }
            let data = match (text("contentType"), text("data")) {
                (Some(JSON_PATCH), Some(d)) => {
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, d).ok()
                }
                _ => None,
            };
            decoded = data.ok_or_else(|| ClassifyError::new("a PATCH entry needs a Parameters resource or a Binary of application/json-patch+json with base64 data"))?;
            (true, &decoded)
        }
        BodySource::Http { content_type, body } => {
            let ct = content_type.unwrap_or("");
            let (essence, param) = ct.split_once(';').unwrap_or((ct, "charset=utf-8"));
            let json_patch = match essence.trim() {
                JSON_PATCH => true,
                "application/fhir+json" => false,
                _ => return err(PATCH_TYPES),
            };
            if !param.trim().eq_ignore_ascii_case("charset=utf-8") {
                return err(PATCH_TYPES);
            }
            (json_patch, body.ok_or_else(not_buffered)?)
        }
    };
    let doc = crate::json::from_slice_strict(bytes)
        .map_err(|e| ClassifyError::new(format!("the patch is not valid JSON: {e}")))?;
    let is = |t| doc.get("resourceType").and_then(Value::as_str) == Some(t);
    if json_patch != doc.is_array() || !(json_patch || is("Parameters")) {
        return err("a JSON Patch is an array of operations; a FHIRPath Patch is a Parameters resource (application/fhir+json)");
    }
    Ok(doc)
}

const PATCH_TYPES: &str = "a PATCH needs Content-Type application/json-patch+json or application/fhir+json, exactly, optionally with charset=utf-8";

/// `If-None-Exist` / `ifNoneExist`: search parameters, optionally prefixed
/// by `?` or by the create's own type (`Patient?identifier=...`, as some
/// clients send).
pub(super) fn check_if_none_exist(
    raw: &str,
    ty: &str,
    search: &mut Vec<SearchParam>,
) -> Result<(), ClassifyError> {
    let raw = raw.trim();
    let raw = match raw.split_once('?') {
        None => raw,
        Some((prefix, rest)) if prefix.is_empty() || prefix == ty => rest,
        Some(_) => {
            return err(format!(
                "If-None-Exist must hold only search parameters for {ty} (`identifier=http://x|1` or `{ty}?identifier=...`)"
            ))
        }
    };
    let start = search.len();
    query::parse_into(raw, "If-None-Exist criteria", search)?;
    if !has_criteria(search.get(start..).unwrap_or(&[])) {
        return err("If-None-Exist has no search criteria: give at least one search parameter");
    }
    Ok(())
}
