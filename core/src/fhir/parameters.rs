//! What a `POST` operation reads: HAPI FHIR binds the parameters of an
//! operation invoked with POST from the body (a FHIR `Parameters` resource)
//! and not from the URL, while other servers merge both. So the URL of a POST
//! operation may carry only `_format`/`_pretty`, and the operation is decided
//! on its body: an empty body (no parameters: e.g. `$export` of every type),
//! a JSON `Parameters` resource (its primitive parameters become the
//! interaction's parameters, a `resource` parameter its resource), or a
//! single other resource (the operation's `resource`, e.g. `$validate`).

use super::body::{not_buffered, BodySource, Payload};
use super::error::{err, short, ClassifyError};
use super::head::{body_media, MediaKind};
use super::interaction::SearchParam;
use super::query;
use serde_json::{Map, Value};

/// URL parameters that shape the response only; every other one is refused
/// on a POST operation.
const URL_PARAMS: [&str; 2] = ["_format", "_pretty"];

const HOW: &str = "send them in a FHIR Parameters resource (application/fhir+json), or use GET";

/// Refuses URL parameters of a POST operation other than [`URL_PARAMS`].
pub(super) fn refuse_url_params(op: &str, search: &[SearchParam]) -> Result<(), ClassifyError> {
    match search.iter().find(|p| !URL_PARAMS.contains(&p.name.as_str())) {
        Some(p) => err(format!(
            "POST {op} reads its parameters from the body; the URL parameter `{}` is refused: {HOW}",
            short(&p.name)
        )),
        None => Ok(()),
    }
}

/// Appends the parameters of a POST operation's body; returns the resource
/// it carries (a `resource` parameter or a non-`Parameters` body).
pub(super) fn operation_body(
    payload: &mut Payload<'_>,
    op: &str,
    search: &mut Vec<SearchParam>,
) -> Result<Option<Value>, ClassifyError> {
    let value = match &mut payload.body {
        BodySource::Entry { resource } => match resource.take() {
            Some(v) => v,
            None => return Ok(None),
        },
        BodySource::Http { content_type, body } => {
            let body = body.ok_or_else(not_buffered)?;
            if body.is_empty() {
                return Ok(None);
            }
            match content_type.map(body_media).transpose()? {
                Some(MediaKind::Json) => {}
                Some(_) | None => {
                    return err(format!(
                        "the body of POST {op} must be JSON (got {}): {HOW}",
                        content_type
                            .map(|c| format!("`{}`", short(c)))
                            .unwrap_or_else(|| "no Content-Type".into())
                    ))
                }
            }
            crate::json::from_slice_strict(body).map_err(|e| {
                ClassifyError::new(format!("the body of POST {op} is not valid JSON: {e}"))
            })?
        }
    };
    let Value::Object(obj) = value else {
        return err(format!("the body of POST {op} must be a JSON resource"));
    };
    match obj.get("resourceType").and_then(Value::as_str) {
        Some("Parameters") => parameters(&obj, op, search),
        Some(_) => Ok(Some(Value::Object(obj))),
        None => err(format!("the body of POST {op} has no resourceType: {HOW}")),
    }
}

/// `Parameters.parameter[]`: each a name with one primitive `value[x]` (a
/// `valueReference` by its `reference`), or the `resource` parameter.
fn parameters(
    obj: &Map<String, Value>,
    op: &str,
    search: &mut Vec<SearchParam>,
) -> Result<Option<Value>, ClassifyError> {
    let items = match obj.get("parameter") {
        None => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return err("Parameters.parameter must be an array"),
    };
    let mut resource = None;
    for (i, item) in items.iter().enumerate() {
        let name = item.get("name").and_then(Value::as_str).unwrap_or("");
        let entry = item
            .as_object()
            .filter(|p| !name.is_empty() && !p.contains_key("part"));
        let read = match (entry, item.get("resource")) {
            (Some(p), Some(r)) if name == "resource" && resource.is_none() && p.len() == 2 => {
                resource = Some(r.clone());
                continue;
            }
            (Some(p), None) => {
                let mut values = p.iter().filter(|(k, _)| k.starts_with("value"));
                match (values.next(), values.next()) {
                    (Some((key, v)), None) => primitive(key, v),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some(text) = read else {
            return err(format!(
                "Parameters.parameter[{i}] (`{}`) of {op} is refused: give a `name` and one primitive value[x] or valueReference.reference (or be the one `resource`; no `part`)",
                short(name)
            ));
        };
        query::push_param(search, query::param(name, &text, "Parameters body")?)?;
    }
    Ok(resource)
}

/// A primitive `value[x]` as text (as it would be written in a URL), or a
/// `valueReference`'s `reference`.
fn primitive(key: &str, v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) if key == "valueReference" => o
            .get("reference")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}
