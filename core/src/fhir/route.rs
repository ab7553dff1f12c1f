//! The shape of a request path, independent of the method: the raw checks,
//! the split into at most five decoded segments and the [`Route`] they form.

use super::base::FhirBase;
use super::error::{err, short, ClassifyError};
use super::id::{is_operation_name, is_valid_id};
use super::query;
use super::resource_types::{
    is_compartment_type, resource_type, COMPARTMENT_TYPES, RESOURCE_TYPES,
};
use percent_encoding::percent_decode_str;
use std::borrow::Cow;

/// Splits the raw `:path` into the path relative to the base (without its
/// leading `/`; empty for the base itself) and the raw query.
pub(super) fn split_target<'a>(
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

pub(super) fn check_type(seg: &str) -> Result<&'static str, ClassifyError> {
    if let Some(t) = resource_type(seg) {
        return Ok(t);
    }
    if let Some(t) = RESOURCE_TYPES.iter().find(|t| t.eq_ignore_ascii_case(seg)) {
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
    if is_operation_name(seg.strip_prefix('$').unwrap_or("")) {
        Ok(seg)
    } else {
        err(format!(
            "invalid operation name `{}`: use `$` followed by letters, digits, `-`, `_` or `.`",
            short(&seg)
        ))
    }
}

/// The shape of a path, independent of the method.
pub(super) enum Route<'a> {
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
    pub(super) fn describe(&self) -> String {
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
    pub(super) fn allowed(&self) -> &'static str {
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

pub(super) fn route(rel: &str) -> Result<Route<'_>, ClassifyError> {
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
                s => Route::Type(check_type(s)?),
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
            let ty = check_type(&a)?;
            match b.as_ref() {
                "_search" => Route::TypeSearch(ty),
                "_history" => Route::TypeHistory(ty),
                s if is_operation(s) => Route::TypeOperation(ty, check_operation(b)?),
                _ => Route::Instance(ty, check_id(b, "resource id")?),
            }
        }
        3 => {
            let ty = check_type(&a)?;
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
                    let target = check_type(s)?;
                    compartment_route(ty, id, Some(target), false)?
                }
            }
        }
        4 => {
            let ty = check_type(&a)?;
            let id = check_id(b, "resource id")?;
            if c == "_history" {
                Route::Version(ty, id, check_id(d, "version id")?)
            } else if d == "_search" && c != "*" {
                let target = check_type(&c)?;
                compartment_route(ty, id, Some(target), true)?
            } else {
                return Err(unknown());
            }
        }
        _ => {
            let ty = check_type(&a)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
