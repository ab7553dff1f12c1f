//! What the classifier reads from the request line and headers: the method
//! (and the refused method overrides), `Content-Type` and `If-None-Exist`.

use super::error::{err, short, ClassifyError};
use super::interaction::RequestParts;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

pub(super) fn parse_method(m: &str) -> Result<Method, ClassifyError> {
    Ok(match m {
        "GET" | "HEAD" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "OPTIONS" => {
            return err(
                "OPTIONS is refused: FHIR defines no OPTIONS interaction (read the server's capabilities with GET [base]/metadata)",
            )
        }
        other => {
            return err(format!(
                "unsupported HTTP method `{}`: FHIR uses GET, HEAD, POST, PUT, PATCH and DELETE (upper-case)",
                short(other)
            ))
        }
    })
}

const OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// What the classifier takes from the request headers.
pub(super) struct Head<'a> {
    pub(super) method: Method,
    pub(super) content_type: Option<&'a str>,
    pub(super) if_none_exist: Option<&'a str>,
}

pub(super) fn read_head<'a>(req: &'a RequestParts<'_>) -> Result<Head<'a>, ClassifyError> {
    let method = parse_method(req.method)?;
    let mut content_type = None;
    let mut if_none_exist = None;
    for (name, value) in &req.headers {
        let name = name.as_str();
        if OVERRIDE_HEADERS
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        {
            return err(format!(
                "the `{name}` header is refused: this gateway does not tunnel HTTP methods, because the upstream may or may not apply the override and authorizing one method while the server performs another would be an authorization bypass; send the real method instead"
            ));
        }
        if name.eq_ignore_ascii_case("content-type") {
            if content_type.replace(value.as_str()).is_some() {
                return err("more than one Content-Type header: send exactly one");
            }
        } else if name.eq_ignore_ascii_case("if-none-exist")
            && if_none_exist.replace(value.as_str()).is_some()
        {
            return err("more than one If-None-Exist header: send exactly one");
        }
    }
    Ok(Head {
        method,
        content_type,
        if_none_exist,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MediaKind {
    Json,
    Xml,
    Form,
    Other,
}

pub(super) fn media_kind(content_type: &str) -> MediaKind {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or(content_type)
        .trim();
    let is = |t: &str| essence.eq_ignore_ascii_case(t);
    if is("application/fhir+json") || is("application/json") || is("application/json+fhir") {
        MediaKind::Json
    } else if is("application/fhir+xml")
        || is("application/xml")
        || is("application/xml+fhir")
        || is("text/xml")
    {
        MediaKind::Xml
    } else if is("application/x-www-form-urlencoded") {
        MediaKind::Form
    } else {
        MediaKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_kinds() {
        for (ct, kind) in [
            ("application/fhir+json", MediaKind::Json),
            ("Application/FHIR+JSON; fhirVersion=4.0", MediaKind::Json),
            ("application/json;charset=utf-8", MediaKind::Json),
            ("application/json+fhir", MediaKind::Json),
            (" application/fhir+xml ", MediaKind::Xml),
            ("text/xml", MediaKind::Xml),
            (
                "application/x-www-form-urlencoded; charset=UTF-8",
                MediaKind::Form,
            ),
            ("application/json, text/xml", MediaKind::Other),
            ("application/json-patch+json", MediaKind::Other),
            ("", MediaKind::Other),
        ] {
            assert_eq!(media_kind(ct), kind, "{ct:?}");
        }
    }
}
