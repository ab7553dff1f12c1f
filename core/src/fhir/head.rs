//! What the classifier reads from the request line and headers: the method
//! (and the refused method overrides), `Content-Type`, `If-None-Exist`,
//! `Prefer: respond-async`, and the headers a server trusts that the
//! gateway refuses (`Content-Encoding`, `Content-Location`, `X-Cascade`, ...).

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

/// Headers a FHIR server acts on that would make it do something other than
/// what the gateway decided, each with why it is refused and what to do.
const REFUSED_HEADERS: [(&str, &str); 6] = [
    ("content-encoding", "Content-Encoding is refused (even `identity`): servers read such bodies differently; send the body uncompressed"),
    ("content-location", "Content-Location is refused: HAPI FHIR takes an update's target from it; name the target in the URL only"),
    ("x-cascade", "X-Cascade is refused: a cascade deletes resources the request does not name; delete them one by one"),
    ("x-rewrite-history", "X-Rewrite-History is refused: send a plain update"),
    ("x-upsert-existence-check", "X-Upsert-Existence-Check is refused: send a plain update"),
    ("x-retry-on-version-conflict", "X-Retry-On-Version-Conflict is refused: retry from the client"),
];

/// What the classifier takes from the request headers.
pub(super) struct Head<'a> {
    pub(super) method: Method,
    pub(super) content_type: Option<&'a str>,
    pub(super) if_none_exist: Option<&'a str>,
    /// `Prefer: respond-async`: asynchronous processing (Bulk Data kick-off only).
    pub(super) respond_async: bool,
}

pub(super) fn read_head<'a>(req: &'a RequestParts<'_>) -> Result<Head<'a>, ClassifyError> {
    let method = parse_method(req.method)?;
    let mut content_type = None;
    let mut if_none_exist = None;
    let mut respond_async = false;
    for (name, value) in req.headers.iter() {
        let name = name.as_str();
        // ASCII first: a word-at-a-time check, where `contains` of a
        // multi-byte char runs a substring search over every value.
        if !value.is_ascii() && value.contains(char::REPLACEMENT_CHARACTER) {
            // The host hands over bytes that are not UTF-8 as U+FFFD: the
            // server may read the original bytes otherwise.
            return err(format!(
                "the `{}` header's value is not plain text (bytes that are not UTF-8, or U+FFFD): send header values as ASCII",
                short(name)
            ));
        }
        if name.starts_with(':') {
            // A pseudo-header (`:path`, `:authority`, ...): none of the
            // names below.
            continue;
        }
        if let Some((_, why)) = REFUSED_HEADERS
            .iter()
            .find(|(h, _)| name.eq_ignore_ascii_case(h))
        {
            return err(*why);
        }
        if name.eq_ignore_ascii_case("prefer") {
            // A preference is its name up to `=`: HAPI FHIR reads
            // `respond-async=true` as `respond-async` (RestfulServerUtils.parsePreferHeader).
            respond_async |= value
                .split([',', ';'])
                .any(|t| preference_is(t, "respond-async"));
        }
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
        respond_async,
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

pub(super) const FORM: &str = "application/x-www-form-urlencoded";

/// How to send a form so that every server reads it as this gateway does.
pub(super) const FORM_HOW: &str = "send `Content-Type: application/x-www-form-urlencoded` (lower case, optionally `; charset=utf-8`) and no Content-Encoding";

/// The kind of a body the classifier reads, with the Content-Type checked
/// so that no server reads the body differently: one media type (no comma
/// list), a form's media type exactly in lower case (HAPI FHIR and Tomcat
/// compare it case-sensitively and ignore the body otherwise), and as
/// parameters only `charset=utf-8` (and, for JSON, `fhirVersion=4.0|4.0.1`).
pub(super) fn body_media(content_type: &str) -> Result<MediaKind, ClassifyError> {
    if content_type.contains(',') {
        return err(format!(
            "the Content-Type `{}` lists several media types: send exactly one",
            short(content_type)
        ));
    }
    let kind = media_kind(content_type);
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or("");
    if kind == MediaKind::Form && (essence != FORM || content_type.trim() != content_type) {
        return err(format!(
            "the Content-Type `{}` is not read as a form by every server: {FORM_HOW}",
            short(content_type)
        ));
    }
    if !matches!(kind, MediaKind::Form | MediaKind::Json) {
        return Ok(kind);
    }
    for param in parts {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let (name, value) = (name.trim(), value.trim());
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let ok = if name.eq_ignore_ascii_case("charset") {
            value.eq_ignore_ascii_case("utf-8")
        } else {
            kind == MediaKind::Json
                && name.eq_ignore_ascii_case("fhirVersion")
                && matches!(value, "4.0" | "4.0.1")
        };
        if !ok {
            return err(format!(
                "the Content-Type parameter `{}` is refused (allowed: `charset=utf-8`; for JSON `fhirVersion=4.0`)",
                short(param.trim())
            ));
        }
    }
    Ok(kind)
}

/// Whether a `Prefer` token (a preference, or one of its `;`-parameters)
/// is `name`: its name up to `=`, trimmed, in any case — as HAPI FHIR reads
/// it (`respond-async=true` is `respond-async`).
pub(crate) fn preference_is(token: &str, name: &str) -> bool {
    let key = token.split_once('=').map_or(token, |(k, _)| k);
    key.trim().eq_ignore_ascii_case(name)
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

    #[test]
    fn body_media_types() {
        for (ct, want) in [
            ("application/x-www-form-urlencoded", Ok(MediaKind::Form)),
            (
                "application/x-www-form-urlencoded; charset=UTF-8",
                Ok(MediaKind::Form),
            ),
            (
                "application/x-www-form-urlencoded;charset=utf-8",
                Ok(MediaKind::Form),
            ),
            (
                "application/x-www-form-urlencoded; charset=\"utf-8\"",
                Ok(MediaKind::Form),
            ),
            (
                "Application/X-WWW-Form-Urlencoded",
                Err("is not read as a form"),
            ),
            (
                "application/x-www-form-urlencoded ",
                Err("is not read as a form"),
            ),
            (
                " application/x-www-form-urlencoded",
                Err("is not read as a form"),
            ),
            (
                "application/x-www-form-urlencoded; charset=ISO-8859-1",
                Err("`charset=ISO-8859-1` is refused"),
            ),
            (
                "application/x-www-form-urlencoded; charset=utf-16",
                Err("`charset=utf-16` is refused"),
            ),
            (
                "application/x-www-form-urlencoded; fhirVersion=4.0",
                Err("`fhirVersion=4.0` is refused"),
            ),
            (
                "application/x-www-form-urlencoded, application/json",
                Err("several media types"),
            ),
            ("application/fhir+json", Ok(MediaKind::Json)),
            (
                "application/fhir+json; fhirVersion=4.0",
                Ok(MediaKind::Json),
            ),
            (
                "application/fhir+json;fhirVersion=4.0.1;charset=utf-8",
                Ok(MediaKind::Json),
            ),
            (
                "application/fhir+json; fhirVersion=3.0",
                Err("`fhirVersion=3.0` is refused"),
            ),
            (
                "application/json; charset=latin1",
                Err("`charset=latin1` is refused"),
            ),
            (
                "application/json; boundary=x",
                Err("`boundary=x` is refused"),
            ),
            ("application/fhir+xml; charset=utf-16", Ok(MediaKind::Xml)),
            ("multipart/form-data; boundary=x", Ok(MediaKind::Other)),
        ] {
            match (body_media(ct), want) {
                (Ok(k), Ok(w)) => assert_eq!(k, w, "{ct:?}"),
                (Err(e), Err(sub)) => assert!(e.message.contains(sub), "{ct:?}: {}", e.message),
                (got, want) => panic!("{ct:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
