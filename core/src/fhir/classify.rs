//! Request classification: method + `:path` (+ the few headers that change
//! meaning, + the body where it matters) → exactly one [`Interaction`].
//!
//! Rules the classifier enforces (each refusal is a [`ClassifyError`], which
//! the engine answers with `400 invalid_request`):
//!
//! * **Methods**: `GET`, `HEAD` (classified exactly like `GET`), `POST`, `PUT`,
//!   `PATCH`, `DELETE`, case-sensitive. `OPTIONS` and anything else are
//!   refused: FHIR defines no OPTIONS interaction and a gateway that guesses
//!   what a server does with one cannot authorize it.
//! * **Method override** headers (`x-http-method-override`, `x-http-method`,
//!   `x-method-override`) and a `_method` query parameter are refused: the
//!   upstream may or may not apply them, and authorizing one method while the
//!   server performs another would be an authorization bypass.
//! * **Paths** are checked raw (no `#`, `\`, `;`, control characters, malformed
//!   escapes, `%2F`, `%25`, `%5C`, `%3B`, encoded controls), then split on `/`
//!   and every segment is percent-decoded exactly once and must be valid UTF-8.
//!   Empty segments (`//`) and dot segments (`.`, `..`, also `%2e%2e`) are
//!   refused. A trailing `/` is refused except in two places: directly after
//!   the base (`[base]/` means `[base]`; clients post bundles there), and
//!   after a resource type for a GET search (`[base]/Patient/?name=x` is how
//!   http.html itself writes type search). The path must be the base path or
//!   lie under it (`/fhirx` is not under `/fhir`); the base is compared
//!   literally, before decoding.
//! * **Query strings** follow `application/x-www-form-urlencoded` (`+` is a
//!   space). Repeated parameters stay separate (AND), values are split on
//!   unescaped commas (OR). A raw `;` is refused (some servers split on it),
//!   as are control characters (raw, encoded, or C1 after decoding),
//!   malformed escapes, invalid UTF-8 and empty parameter names.
//! * **JSON bodies** with a repeated object key are refused: parsers disagree
//!   on which copy wins, and the gateway must see what the server sees.
//! * `If-None-Exist` (only on a create) holds search parameters, optionally
//!   prefixed by `?` or by the create's own type (`Patient?identifier=..`).
//! * Resource types are checked case-sensitively against the R4 list, ids and
//!   version ids against `[A-Za-z0-9\-\.]{1,64}`, operation names against
//!   `$[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}`.
//! * Conditional update/patch/delete and conditional create need real
//!   criteria: parameters other than `_format`, `_pretty`, `_summary` and
//!   `_elements` (a criteria-less conditional delete could match everything).
//! * Bodies: a batch/transaction must be a JSON Bundle (XML bundles cannot be
//!   inspected and are refused); `_search` bodies must be form-encoded (or
//!   empty without a Content-Type); JSON create/update bodies are parsed into
//!   [`Interaction::resource`] and their `resourceType` (and, for update, `id`)
//!   must match the URL. XML bodies and non-FHIR bodies of `Binary` are
//!   classified with `resource: None`; other content types on create/update
//!   are refused.

use super::base::FhirBase;
use super::error::{err, short, ClassifyError};
use super::interaction::{
    BundleEntry, Compartment, Interaction, InteractionKind, Level, RequestParts, SearchParam,
};
use super::query;
use super::resource_types::{is_compartment_type, resource_type, COMPARTMENT_TYPES};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

fn parse_method(m: &str) -> Result<Method, ClassifyError> {
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
struct Head<'a> {
    method: Method,
    content_type: Option<&'a str>,
    if_none_exist: Option<&'a str>,
}

fn read_head<'a>(req: &'a RequestParts<'_>) -> Result<Head<'a>, ClassifyError> {
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
enum MediaKind {
    Json,
    Xml,
    Form,
    Other,
}

fn media_kind(content_type: &str) -> MediaKind {
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

/// Splits the raw `:path` into the path relative to the base (without its
/// leading `/`; empty for the base itself) and the raw query.
fn split_target<'a>(
    base: &FhirBase,
    target: &'a str,
) -> Result<(&'a str, Option<&'a str>), ClassifyError> {
    if target.contains('#') {
        return err("the request target contains a `#` fragment; fragments are never sent to a server (percent-encode a literal `#` as %23)");
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if !path.starts_with('/') {
        return err(format!(
            "the request path `{}` must start with `/`",
            short(path)
        ));
    }
    let base = base.path.as_str();
    let outside = || {
        ClassifyError::new(format!(
            "the path `{}` is outside the FHIR base path `{}`",
            short(path),
            if base.is_empty() { "/" } else { base }
        ))
    };
    let rest = path.strip_prefix(base).ok_or_else(outside)?;
    let rel = if rest.is_empty() || rest == "/" {
        ""
    } else {
        rest.strip_prefix('/').ok_or_else(outside)?
    };
    Ok((rel, query))
}

/// Raw checks on a path (relative to the base) before it is split and decoded.
fn check_path_raw(path: &str) -> Result<(), ClassifyError> {
    let bytes = path.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => return err("the path contains a backslash `\\`; FHIR paths use `/` only"),
            b';' => return err("the path contains `;`: path parameters are not part of FHIR URLs"),
            b'%' => {
                let Some(v) = query::escape_at(bytes, i) else {
                    return err(format!("the path contains a malformed percent escape at byte {i} of `{}`: `%` must be followed by two hex digits", short(path)));
                };
                match v {
                    b'/' => return err("the path contains an encoded `/` (%2F): refused because servers disagree on whether it separates segments"),
                    b'%' => return err("the path contains an encoded `%` (%25): refused because double encoding (e.g. %252F) is ambiguous"),
                    b'\\' => return err("the path contains an encoded backslash (%5C)"),
                    b';' => return err("the path contains an encoded `;` (%3B): path parameters are not part of FHIR URLs"),
                    _ if query::is_control(v) => {
                        return err(format!("the path contains an encoded control character (%{v:02X})"))
                    }
                    _ => {}
                }
                i += 3;
            }
            _ if query::is_control(b) => {
                return err(format!(
                    "the path contains a raw control character (0x{b:02X})"
                ))
            }
            _ => i += 1,
        }
    }
    Ok(())
}

const MAX_SEGMENTS: usize = 5;

/// Splits and decodes the relative path into at most [`MAX_SEGMENTS`] segments.
fn segments(rel: &str) -> Result<([Cow<'_, str>; MAX_SEGMENTS], usize), ClassifyError> {
    let mut segs: [Cow<'_, str>; MAX_SEGMENTS] = Default::default();
    if rel.is_empty() {
        return Ok((segs, 0));
    }
    check_path_raw(rel)?;
    if rel.ends_with('/') {
        return err(format!(
            "the path `{}` ends with `/`: remove the trailing slash (e.g. `Patient/123`, not `Patient/123/`)",
            short(rel)
        ));
    }
    let mut n = 0;
    for raw in rel.split('/') {
        if raw.is_empty() {
            return err(format!(
                "the path `{}` contains an empty segment (`//`)",
                short(rel)
            ));
        }
        let Some(slot) = segs.get_mut(n) else {
            return err(format!(
                "the path `{}` has too many segments to be a FHIR R4 interaction",
                short(rel)
            ));
        };
        let seg = percent_decode_str(raw).decode_utf8().map_err(|_| {
            ClassifyError::new(format!(
                "the path segment `{}` decodes to invalid UTF-8",
                short(raw)
            ))
        })?;
        if seg == "." || seg == ".." {
            return err(format!(
                "the path contains a dot segment `{}`; `.` and `..` (also encoded as %2e) are refused",
                short(raw)
            ));
        }
        *slot = seg;
        n += 1;
    }
    Ok((segs, n))
}

fn rtype(seg: &str) -> Result<&'static str, ClassifyError> {
    if let Some(t) = resource_type(seg) {
        return Ok(t);
    }
    if let Some(t) = super::resource_types::RESOURCE_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(seg))
    {
        return err(format!(
            "unknown resource type `{}`: resource types are case-sensitive, use `{t}`",
            short(seg)
        ));
    }
    err(format!(
        "`{}` is not a FHIR R4 resource type or endpoint",
        short(seg)
    ))
}

/// The FHIR `id` grammar `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn check_id<'a>(seg: Cow<'a, str>, what: &str) -> Result<Cow<'a, str>, ClassifyError> {
    if is_valid_id(&seg) {
        Ok(seg)
    } else {
        err(format!(
            "invalid {what} `{}`: FHIR ids are 1-64 characters of A-Z, a-z, 0-9, `-` and `.`",
            short(&seg)
        ))
    }
}

/// `$name` with `name` = `[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}`.
fn is_operation(seg: &str) -> bool {
    seg.starts_with('$')
}

fn check_operation(seg: Cow<'_, str>) -> Result<Cow<'_, str>, ClassifyError> {
    let name = seg.strip_prefix('$').unwrap_or("");
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(seg)
    } else {
        err(format!(
            "invalid operation name `{}`: use `$` followed by letters, digits, `-`, `_` or `.`",
            short(&seg)
        ))
    }
}

/// The shape of a path, independent of the method.
enum Route<'a> {
    Base,
    Metadata,
    SmartConfiguration,
    SystemHistory,
    SystemSearch,
    SystemOperation(Cow<'a, str>),
    Type(&'static str),
    /// `[base]/[type]/`: the spelling http.html uses for a GET type search.
    TypeSlash(&'static str),
    TypeSearch(&'static str),
    TypeHistory(&'static str),
    TypeOperation(&'static str, Cow<'a, str>),
    Instance(&'static str, Cow<'a, str>),
    InstanceHistory(&'static str, Cow<'a, str>),
    Version(&'static str, Cow<'a, str>, Cow<'a, str>),
    InstanceOperation {
        ty: &'static str,
        id: Cow<'a, str>,
        version: Option<Cow<'a, str>>,
        op: Cow<'a, str>,
    },
    Compartment {
        ty: &'static str,
        id: Cow<'a, str>,
        target: Option<&'static str>,
        /// `.../_search` (POST form) rather than a plain GET.
        search_suffix: bool,
    },
}

impl Route<'_> {
    fn describe(&self) -> String {
        match self {
            Route::Base => "[base]".into(),
            Route::Metadata => "[base]/metadata".into(),
            Route::SmartConfiguration => "[base]/.well-known/smart-configuration".into(),
            Route::SystemHistory => "[base]/_history".into(),
            Route::SystemSearch => "[base]/_search".into(),
            Route::SystemOperation(op) => format!("[base]/{op}"),
            Route::Type(t) => format!("[base]/{t}"),
            Route::TypeSlash(t) => format!("[base]/{t}/"),
            Route::TypeSearch(t) => format!("[base]/{t}/_search"),
            Route::TypeHistory(t) => format!("[base]/{t}/_history"),
            Route::TypeOperation(t, op) => format!("[base]/{t}/{op}"),
            Route::Instance(t, id) => format!("[base]/{t}/{id}"),
            Route::InstanceHistory(t, id) => format!("[base]/{t}/{id}/_history"),
            Route::Version(t, id, v) => format!("[base]/{t}/{id}/_history/{v}"),
            Route::InstanceOperation { ty, id, op, .. } => format!("[base]/{ty}/{id}/{op}"),
            Route::Compartment {
                ty,
                id,
                target,
                search_suffix,
            } => format!(
                "[base]/{ty}/{id}/{}{}",
                target.unwrap_or("*"),
                if *search_suffix { "/_search" } else { "" }
            ),
        }
    }

    /// Methods this path accepts, for error messages.
    fn allowed(&self) -> &'static str {
        match self {
            Route::Base => "GET (system search) or POST (batch/transaction Bundle)",
            Route::Type(_) => "GET (search), POST (create), or PUT/PATCH/DELETE with search criteria (conditional)",
            Route::TypeSlash(_) => "GET (search); for anything else remove the trailing `/`",
            Route::Instance(..) => "GET (read), PUT (update), PATCH (patch) or DELETE (delete)",
            Route::SystemSearch
            | Route::TypeSearch(_)
            | Route::SystemOperation(_)
            | Route::TypeOperation(..)
            | Route::InstanceOperation { .. } => "GET or POST",
            Route::Compartment {
                search_suffix: true,
                ..
            } => "GET or POST",
            _ => "GET",
        }
    }
}

fn compartment_route<'a>(
    ty: &'static str,
    id: Cow<'a, str>,
    target: Option<&'static str>,
    search_suffix: bool,
) -> Result<Route<'a>, ClassifyError> {
    if !is_compartment_type(ty) {
        return err(format!(
            "`{ty}` is not a compartment: compartment searches use one of {} (e.g. `Patient/123/Observation`)",
            COMPARTMENT_TYPES.join(", ")
        ));
    }
    Ok(Route::Compartment {
        ty,
        id,
        target,
        search_suffix,
    })
}

fn route(rel: &str) -> Result<Route<'_>, ClassifyError> {
    if let Some(first) = rel.strip_suffix('/').filter(|s| !s.contains('/')) {
        // `[base]/Patient/?name=x`: http.html writes type search this way.
        // Only a type may be followed by the slash; anything else falls
        // through to the trailing-slash refusal.
        let (segs, n) = segments(first)?;
        if let (1, Some(ty)) = (n, segs.first().and_then(|s| resource_type(s))) {
            return Ok(Route::TypeSlash(ty));
        }
    }
    let (segs, n) = segments(rel)?;
    let [a, b, c, d, e] = segs;
    let unknown = || {
        ClassifyError::new(format!(
            "`{}` is not a FHIR R4 RESTful path under the base",
            short(rel)
        ))
    };
    Ok(match n {
        0 => Route::Base,
        1 => {
            match a.as_ref() {
                "metadata" => Route::Metadata,
                "_history" => Route::SystemHistory,
                "_search" => Route::SystemSearch,
                ".well-known" => return err(
                    "only `[base]/.well-known/smart-configuration` is served under `.well-known`",
                ),
                s if is_operation(s) => Route::SystemOperation(check_operation(a)?),
                s => Route::Type(rtype(s)?),
            }
        }
        2 => {
            if a == ".well-known" {
                return if b == "smart-configuration" {
                    Ok(Route::SmartConfiguration)
                } else {
                    err("only `[base]/.well-known/smart-configuration` is served under `.well-known`")
                };
            }
            let ty = rtype(&a)?;
            match b.as_ref() {
                "_search" => Route::TypeSearch(ty),
                "_history" => Route::TypeHistory(ty),
                s if is_operation(s) => Route::TypeOperation(ty, check_operation(b)?),
                _ => Route::Instance(ty, check_id(b, "resource id")?),
            }
        }
        3 => {
            let ty = rtype(&a)?;
            let id = check_id(b, "resource id")?;
            match c.as_ref() {
                "_history" => Route::InstanceHistory(ty, id),
                s if is_operation(s) => Route::InstanceOperation {
                    ty,
                    id,
                    version: None,
                    op: check_operation(c)?,
                },
                "_search" => compartment_route(ty, id, None, true)?,
                "*" => compartment_route(ty, id, None, false)?,
                s => {
                    let target = rtype(s)?;
                    compartment_route(ty, id, Some(target), false)?
                }
            }
        }
        4 => {
            let ty = rtype(&a)?;
            let id = check_id(b, "resource id")?;
            if c == "_history" {
                Route::Version(ty, id, check_id(d, "version id")?)
            } else if d == "_search" && c != "*" {
                let target = rtype(&c)?;
                compartment_route(ty, id, Some(target), true)?
            } else {
                return Err(unknown());
            }
        }
        _ => {
            let ty = rtype(&a)?;
            let id = check_id(b, "resource id")?;
            if c == "_history" && is_operation(&e) {
                Route::InstanceOperation {
                    ty,
                    id,
                    version: Some(check_id(d, "version id")?),
                    op: check_operation(e)?,
                }
            } else {
                return Err(unknown());
            }
        }
    })
}

/// Where the body of the (sub-)request comes from.
enum Body<'a> {
    /// The HTTP request itself.
    Http {
        content_type: Option<&'a str>,
        body: Option<&'a [u8]>,
    },
    /// A batch/transaction entry: its `resource`, already parsed.
    Entry { resource: Option<Value> },
}

struct Ctx<'a> {
    if_none_exist: Option<&'a str>,
    body: Body<'a>,
}

/// Parameters that shape the response, not the match: they are not criteria.
const NON_CRITERIA: [&str; 4] = ["_format", "_pretty", "_summary", "_elements"];

fn has_criteria(search: &[SearchParam]) -> bool {
    search
        .iter()
        .any(|p| !NON_CRITERIA.contains(&p.name.as_str()))
}

fn not_buffered() -> ClassifyError {
    ClassifyError::new(
        "the request body is needed to classify this request but was not provided (internal: call body_needed and buffer the body)",
    )
}

/// Validated `_type` values, in order, without duplicates.
fn types_from(search: &[SearchParam]) -> Result<Vec<String>, ClassifyError> {
    let mut types: Vec<String> = Vec::new();
    for p in search.iter().filter(|p| p.name == "_type") {
        for v in &p.values {
            let t = rtype(v).map_err(|e| ClassifyError::new(format!("_type: {}", e.message)))?;
            if !types.iter().any(|x| x == t) {
                types.push(t.to_string());
            }
        }
    }
    Ok(types)
}

fn inter(kind: InteractionKind, level: Level, ty: Option<&str>) -> Interaction {
    let mut i = Interaction::new(kind, level);
    i.resource_type = ty.map(str::to_string);
    i
}

/// A `_method` parameter asks some frameworks to tunnel another method.
fn refuse_method_param(search: &[SearchParam]) -> Result<(), ClassifyError> {
    if search.iter().any(|p| p.name == "_method") {
        return err("the `_method` parameter is refused: this gateway does not tunnel HTTP methods; send the real method instead");
    }
    Ok(())
}

/// Appends the form body of a `POST .../_search`.
fn form_body(ctx: &Ctx<'_>, search: &mut Vec<SearchParam>) -> Result<(), ClassifyError> {
    match ctx.body {
        Body::Entry { .. } => err(
            "POST _search inside a Bundle is not supported: use a GET entry with the parameters in request.url",
        ),
        Body::Http { content_type, body } => match content_type.map(media_kind) {
            Some(MediaKind::Form) => {
                let body = body.ok_or_else(not_buffered)?;
                let text = std::str::from_utf8(body).map_err(|_| {
                    ClassifyError::new("the _search form body is not valid UTF-8")
                })?;
                query::parse_into(text, "form body", search)?;
                refuse_method_param(search)
            }
            None => match body {
                Some([]) => Ok(()),
                Some(_) => err(
                    "a POST _search body needs Content-Type: application/x-www-form-urlencoded",
                ),
                None => Err(not_buffered()),
            },
            Some(_) => err(format!(
                "POST _search bodies must be application/x-www-form-urlencoded (got `{}`)",
                short(content_type.unwrap_or(""))
            )),
        },
    }
}

/// The resource of a create/update: parsed and checked against the URL.
fn body_resource(
    ctx: &mut Ctx<'_>,
    ty: &str,
    url_id: Option<&str>,
) -> Result<Option<Value>, ClassifyError> {
    let value = match &mut ctx.body {
        Body::Entry { resource } => match resource.take() {
            Some(v) => v,
            None => {
                return err(format!(
                    "the entry has no resource: a {} of {ty} needs entry.resource",
                    if url_id.is_some() { "update" } else { "create" }
                ))
            }
        },
        Body::Http { content_type, body } => match content_type.map(media_kind) {
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

/// `If-None-Exist` / `ifNoneExist`: search parameters, optionally prefixed
/// by `?` or by the create's own type (`Patient?identifier=...`, as some
/// clients send).
fn check_if_none_exist(
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

/// Classifies a path relative to the base (HTTP request or bundle entry).
fn classify_rel(
    base: &FhirBase,
    method: Method,
    rel: &str,
    raw_query: Option<&str>,
    mut ctx: Ctx<'_>,
) -> Result<Interaction, ClassifyError> {
    let route = route(rel)?;
    let mut search = Vec::new();
    if let Some(q) = raw_query {
        query::parse_into(q, "query string", &mut search)?;
    }
    refuse_method_param(&search)?;
    let is_create = method == Method::Post && matches!(route, Route::Type(_));
    if ctx.if_none_exist.is_some() && !is_create {
        return err(format!(
            "If-None-Exist is only allowed on a create (POST [base]/[type]), not on {} {}",
            method.as_str(),
            route.describe()
        ));
    }
    let wrong_method = |route: &Route<'_>| {
        ClassifyError::new(format!(
            "{} {} is not a FHIR interaction; allowed here: {}",
            method.as_str(),
            route.describe(),
            route.allowed()
        ))
    };
    use InteractionKind as K;
    use Method as M;
    let mut out = match (&route, method) {
        (Route::Base, M::Get) => {
            if search.iter().any(|p| p.name == "_getpages") {
                inter(K::Paging, Level::System, None)
            } else {
                let mut i = inter(K::Search, Level::System, None);
                i.types = types_from(&search)?;
                i
            }
        }
        (Route::Base, M::Post) => return bundle(base, ctx, search),
        (Route::Metadata, M::Get) => inter(K::Capabilities, Level::System, None),
        (Route::SmartConfiguration, M::Get) => inter(K::SmartConfiguration, Level::System, None),
        (Route::SystemHistory, M::Get) => inter(K::History, Level::System, None),
        (Route::SystemSearch, M::Get | M::Post) => {
            if method == M::Post {
                form_body(&ctx, &mut search)?;
            }
            let mut i = inter(K::Search, Level::System, None);
            i.types = types_from(&search)?;
            i
        }
        (Route::SystemOperation(op), M::Get | M::Post) => {
            let mut i = inter(K::Operation, Level::System, None);
            i.operation = Some(op.to_string());
            i.types = types_from(&search)?;
            i
        }
        (Route::Type(t) | Route::TypeSlash(t), M::Get) => inter(K::Search, Level::Type, Some(t)),
        (Route::Type(t), M::Post) => {
            let mut i = inter(K::Create, Level::Type, Some(t));
            if let Some(criteria) = ctx.if_none_exist {
                check_if_none_exist(criteria, t, &mut search)?;
                i.conditional = true;
            }
            i.resource = body_resource(&mut ctx, t, None)?;
            i
        }
        (Route::Type(t), M::Put | M::Patch | M::Delete) => {
            let kind = match method {
                M::Put => K::Update,
                M::Patch => K::Patch,
                _ => K::Delete,
            };
            if !has_criteria(&search) {
                return err(format!(
                    "{} [base]/{t} needs an id (`{t}/[id]`) or search criteria (`{t}?identifier=...`) for a conditional {}",
                    method.as_str(),
                    method.as_str().to_ascii_lowercase()
                ));
            }
            let mut i = inter(kind, Level::Type, Some(t));
            i.conditional = true;
            if kind == K::Update {
                i.resource = body_resource(&mut ctx, t, None)?;
            }
            i
        }
        (Route::TypeSearch(t), M::Get | M::Post) => {
            if method == M::Post {
                form_body(&ctx, &mut search)?;
            }
            inter(K::Search, Level::Type, Some(t))
        }
        (Route::TypeHistory(t), M::Get) => inter(K::History, Level::Type, Some(t)),
        (Route::TypeOperation(t, op), M::Get | M::Post) => {
            let mut i = inter(K::Operation, Level::Type, Some(t));
            i.operation = Some(op.to_string());
            i
        }
        (Route::Instance(t, id), M::Get | M::Put | M::Patch | M::Delete) => {
            let kind = match method {
                M::Get => K::Read,
                M::Put => K::Update,
                M::Patch => K::Patch,
                _ => K::Delete,
            };
            let mut i = inter(kind, Level::Instance, Some(t));
            i.id = Some(id.to_string());
            if kind == K::Update {
                i.resource = body_resource(&mut ctx, t, Some(id))?;
            }
            i
        }
        (Route::InstanceHistory(t, id), M::Get) => {
            let mut i = inter(K::History, Level::Instance, Some(t));
            i.id = Some(id.to_string());
            i
        }
        (Route::Version(t, id, v), M::Get) => {
            let mut i = inter(K::Vread, Level::Instance, Some(t));
            i.id = Some(id.to_string());
            i.version = Some(v.to_string());
            i
        }
        (
            Route::InstanceOperation {
                ty,
                id,
                version,
                op,
            },
            M::Get | M::Post,
        ) => {
            let mut i = inter(K::Operation, Level::Instance, Some(ty));
            i.id = Some(id.to_string());
            i.version = version.as_ref().map(|v| v.to_string());
            i.operation = Some(op.to_string());
            i.compartment = Some(Compartment {
                resource_type: ty.to_string(),
                id: id.to_string(),
            });
            i
        }
        (
            Route::Compartment {
                ty,
                id,
                target,
                search_suffix,
            },
            _,
        ) if method == M::Get || (method == M::Post && *search_suffix) => {
            if method == M::Post {
                form_body(&ctx, &mut search)?;
            }
            let level = if target.is_some() {
                Level::Type
            } else {
                Level::System
            };
            let mut i = inter(K::Search, level, *target);
            i.compartment = Some(Compartment {
                resource_type: ty.to_string(),
                id: id.to_string(),
            });
            i.types = match target {
                Some(t) => vec![t.to_string()],
                None => types_from(&search)?,
            };
            i
        }
        (r, _) => return Err(wrong_method(r)),
    };
    out.search = search;
    Ok(out)
}

/// `POST [base]`: a JSON batch or transaction Bundle; every entry classified.
fn bundle(
    base: &FhirBase,
    ctx: Ctx<'_>,
    search: Vec<SearchParam>,
) -> Result<Interaction, ClassifyError> {
    let (content_type, body) = match ctx.body {
        Body::Entry { .. } => {
            return err(
                "an entry cannot POST to [base]: nested batch/transaction Bundles are refused",
            )
        }
        Body::Http { content_type, body } => (content_type, body),
    };
    match content_type.map(media_kind) {
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
    let (rel, query) = entry_target(base, url)?;
    let ctx = Ctx {
        if_none_exist,
        body: Body::Entry { resource },
    };
    let interaction = classify_rel(base, method, rel, query, ctx)?;
    Ok(BundleEntry {
        index,
        method: method_raw.to_string(),
        url: url.to_string(),
        interaction: Box::new(interaction),
    })
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
                "absolute request.url `{}` cannot be checked because fhir_base_url is not configured: use a relative URL such as `Patient/123`",
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
            "request.url `{}` must be relative to the base (`Patient/123`, no leading `/`) or absolute under fhir_base_url",
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

/// Whether the classifier needs the body to classify this request. Called on
/// headers alone. When it returns `true`, buffer the body and pass it to
/// [`classify`] (an empty body as `Some(&[])`).
pub fn body_needed(base: &FhirBase, req: &RequestParts) -> bool {
    let Ok(head) = read_head(req) else {
        return false;
    };
    let Ok((rel, _)) = split_target(base, req.path) else {
        return false;
    };
    let Ok(route) = route(rel) else {
        return false;
    };
    // Only when the classifier will read it: other content types are either
    // refused before the body is looked at or classified without it.
    let media = head.content_type.map(media_kind);
    let json = media == Some(MediaKind::Json);
    let form = matches!(media, None | Some(MediaKind::Form));
    match (route, head.method) {
        (Route::Base, Method::Post) => json,
        (Route::SystemSearch | Route::TypeSearch(_), Method::Post) => form,
        (
            Route::Compartment {
                search_suffix: true,
                ..
            },
            Method::Post,
        ) => form,
        (Route::Type(_), Method::Post | Method::Put) | (Route::Instance(..), Method::Put) => json,
        _ => false,
    }
}

/// Classifies one HTTP request (see the module documentation for the rules).
pub fn classify(base: &FhirBase, req: &RequestParts) -> Result<Interaction, ClassifyError> {
    let head = read_head(req)?;
    let (rel, query) = split_target(base, req.path)?;
    let ctx = Ctx {
        if_none_exist: head.if_none_exist,
        body: Body::Http {
            content_type: head.content_type,
            body: req.body,
        },
    };
    classify_rel(base, head.method, rel, query, ctx)
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
    fn untrusted_text_is_shortened_and_escaped() {
        assert_eq!(short("abc"), "abc");
        assert_eq!(short(&"x".repeat(200)).len(), 80);
        assert_eq!(short("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(short("é"), "é");
    }

    #[test]
    fn operation_names() {
        for (op, ok) in [
            ("$everything", true),
            ("$meta-add", true),
            ("$validate_code", true),
            ("$x.y", true),
            ("$", false),
            ("$-x", false),
            ("$a b", false),
            ("$a/b", false),
        ] {
            assert_eq!(check_operation(Cow::Borrowed(op)).is_ok(), ok, "{op}");
        }
    }
}
