//! The route × method table: which FHIR interaction a method on a path is
//! (http.html), for an HTTP request or a Bundle entry alike.

use super::body::{
    body_resource, check_if_none_exist, form_body, has_criteria, patch_body, refuse_method_param,
    Payload,
};
use super::error::{err, ClassifyError};
use super::head::Method;
use super::interaction::{Compartment, Interaction, InteractionKind as K, Level, SearchParam};
use super::paging::{refuse_misplaced_paging, PAGING};
use super::parameters::{operation_body, refuse_url_params};
use super::query;
use super::route::{check_type, route, Route};

/// The Bulk Data status endpoint of HAPI FHIR (`[base]/$export-poll-status?_jobId=`).
pub(super) const BULK_STATUS: &str = "$export-poll-status";

/// What a method on a path is.
pub(super) enum Classified<'p> {
    Interaction(Interaction),
    /// `POST [base]`: a batch/transaction Bundle, classified entry by entry
    /// by the caller (entries are classified here again, never nested).
    Bundle {
        search: Vec<SearchParam>,
        payload: Payload<'p>,
    },
}

/// Classifies a path relative to the base (HTTP request or bundle entry).
pub(super) fn classify_path<'p>(
    method: Method,
    rel: &str,
    raw_query: Option<&str>,
    mut payload: Payload<'p>,
) -> Result<Classified<'p>, ClassifyError> {
    let route = route(rel)?;
    let mut search = Vec::new();
    if let Some(q) = raw_query {
        query::parse_into(q, "query string", &mut search)?;
    }
    refuse_method_param(&search)?;
    refuse_widening_params(&search)?;
    let is_create = method == Method::Post && matches!(route, Route::Type(_));
    if payload.if_none_exist.is_some() && !is_create {
        return err(format!(
            "If-None-Exist is only allowed on a create (POST [base]/[type]), not on {} {}",
            method.as_str(),
            route.describe()
        ));
    }
    let mut out = match &route {
        Route::Base if method == Method::Post => {
            refuse_bundle_query(&search)?;
            return Ok(Classified::Bundle { search, payload });
        }
        Route::Base
        | Route::Metadata
        | Route::SmartConfiguration
        | Route::SystemHistory
        | Route::SystemSearch
        | Route::SystemOperation(_) => system_level(&route, method, &mut payload, &mut search)?,
        Route::Type(_)
        | Route::TypeSlash(_)
        | Route::TypeSearch(_)
        | Route::TypeHistory(_)
        | Route::TypeOperation(..) => type_level(&route, method, &mut payload, &mut search)?,
        Route::Instance(..)
        | Route::InstanceHistory(..)
        | Route::Version(..)
        | Route::InstanceOperation { .. } => {
            instance_level(&route, method, &mut payload, &mut search)?
        }
        Route::Compartment { .. } => compartment(&route, method, &payload, &mut search)?,
    };
    if out.kind != K::Paging {
        refuse_misplaced_paging(&search, &route)?;
    }
    out.search = search;
    Ok(Classified::Interaction(out))
}

/// Parameters with which a server widens what an interaction does beyond
/// what the request names (HAPI FHIR's cascading delete and expunge).
fn refuse_widening_params(search: &[SearchParam]) -> Result<(), ClassifyError> {
    match search
        .iter()
        .find(|p| matches!(p.name.as_str(), "_cascade" | "_expunge"))
    {
        Some(p) => err(format!(
            "`{}` is refused: it deletes or purges resources the request does not name; delete them one by one",
            p.name
        )),
        None => Ok(()),
    }
}

/// `POST [base]` takes a Bundle and no search parameters: a server may read
/// them (HAPI FHIR serves `POST [base]?_getpages=` as a page, other servers
/// run the body as a batch), so only `_format`/`_pretty` are accepted.
fn refuse_bundle_query(search: &[SearchParam]) -> Result<(), ClassifyError> {
    match search
        .iter()
        .find(|p| !matches!(p.name.as_str(), "_format" | "_pretty"))
    {
        Some(p) if p.name == PAGING => err(
            "POST [base]?_getpages= is refused (a page on some servers, a batch on others): follow paging links with GET",
        ),
        Some(p) => err(format!(
            "POST [base] takes a Bundle and no URL parameters but _format, _pretty; `{}` is refused",
            super::error::short(&p.name)
        )),
        None => Ok(()),
    }
}

/// An operation's parameters: with POST no URL parameters besides
/// `_format`/`_pretty`, its parameters (and resource) come from the body;
/// `_type` names the types it reaches.
#[inline(never)]
fn operation_params(
    op: &str,
    method: Method,
    payload: &mut Payload<'_>,
    search: &mut Vec<SearchParam>,
    i: &mut Interaction,
) -> Result<(), ClassifyError> {
    if method == Method::Post {
        refuse_url_params(op, search)?;
        i.resource = operation_body(payload, op, search)?;
    }
    i.types = types_from(search)?;
    Ok(())
}

fn wrong_method(method: Method, route: &Route<'_>) -> ClassifyError {
    ClassifyError::new(format!(
        "{} {} is not a FHIR interaction; allowed here: {}",
        method.as_str(),
        route.describe(),
        route.allowed()
    ))
}

fn new_interaction(kind: K, level: Level, ty: Option<&str>) -> Interaction {
    let mut i = Interaction::new(kind, level);
    i.resource_type = ty.map(str::to_string);
    i
}

/// Validated `_type` values, in order, without duplicates.
fn types_from(search: &[SearchParam]) -> Result<Vec<String>, ClassifyError> {
    let mut types: Vec<String> = Vec::new();
    for p in search.iter().filter(|p| p.name == "_type") {
        for v in &p.values {
            let t =
                check_type(v).map_err(|e| ClassifyError::new(format!("_type: {}", e.message)))?;
            if !types.iter().any(|x| x == t) {
                types.push(t.to_string());
            }
        }
    }
    Ok(types)
}

/// `[base]`, `metadata`, the SMART configuration, system history, search
/// and operations.
fn system_level(
    route: &Route<'_>,
    method: Method,
    payload: &mut Payload<'_>,
    search: &mut Vec<SearchParam>,
) -> Result<Interaction, ClassifyError> {
    let system = |kind| new_interaction(kind, Level::System, None);
    Ok(match (route, method) {
        (Route::Base, Method::Get) if search.iter().any(|p| p.name == PAGING) => {
            super::paging::check_paging(search)?;
            system(K::Paging)
        }
        (Route::Base, Method::Get) => {
            let mut i = system(K::Search);
            i.types = types_from(search)?;
            i
        }
        (Route::Metadata, Method::Get) => system(K::Capabilities),
        (Route::SmartConfiguration, Method::Get) => system(K::SmartConfiguration),
        (Route::SystemHistory, Method::Get) => system(K::History),
        (Route::SystemSearch, Method::Get | Method::Post) => {
            if method == Method::Post {
                form_body(payload, search)?;
            }
            if search.iter().any(|p| p.name == PAGING) {
                // HAPI FHIR serves `[base]/_search?_getpages=` as a page.
                super::paging::check_paging(search)?;
                return Ok(system(K::Paging));
            }
            let mut i = system(K::Search);
            i.types = types_from(search)?;
            i
        }
        (Route::SystemOperation(op), Method::Get | Method::Post) => {
            let mut i = system(K::Operation);
            i.operation = Some(op.to_string());
            operation_params(op, method, payload, search, &mut i)?;
            i
        }
        (Route::SystemOperation(op), Method::Delete) if op == BULK_STATUS => {
            // Bulk Data: DELETE on the status URL cancels the export.
            let mut i = system(K::Operation);
            i.operation = Some(op.to_string());
            i
        }
        (r, _) => return Err(wrong_method(method, r)),
    })
}

/// `[base]/[type]` (search, create, conditional update/patch/delete) and
/// the type's `_search`, `_history` and operations.
fn type_level(
    route: &Route<'_>,
    method: Method,
    payload: &mut Payload<'_>,
    search: &mut Vec<SearchParam>,
) -> Result<Interaction, ClassifyError> {
    let of_type = |kind, t| new_interaction(kind, Level::Type, Some(t));
    Ok(match (route, method) {
        (Route::Type(t) | Route::TypeSlash(t), Method::Get) => of_type(K::Search, t),
        (Route::Type(t), Method::Post) => {
            let mut i = of_type(K::Create, t);
            if let Some(criteria) = payload.if_none_exist {
                check_if_none_exist(criteria, t, search)?;
                i.conditional = true;
            }
            i.resource = body_resource(payload, t, None)?;
            i
        }
        (Route::Type(t), Method::Put | Method::Patch | Method::Delete) => {
            if !has_criteria(search) {
                return err(format!(
                    "{} [base]/{t} needs an id (`{t}/[id]`) or search criteria (`{t}?identifier=...`) for a conditional {}",
                    method.as_str(),
                    method.as_str().to_ascii_lowercase()
                ));
            }
            let kind = match method {
                Method::Put => K::Update,
                Method::Patch => K::Patch,
                _ => K::Delete,
            };
            let mut i = of_type(kind, t);
            i.conditional = true;
            if kind == K::Update {
                i.resource = body_resource(payload, t, None)?;
            } else if kind == K::Patch {
                i.resource = Some(patch_body(payload)?);
            }
            i
        }
        (Route::TypeSearch(t), Method::Get | Method::Post) => {
            if method == Method::Post {
                form_body(payload, search)?;
            }
            of_type(K::Search, t)
        }
        (Route::TypeHistory(t), Method::Get) => of_type(K::History, t),
        (Route::TypeOperation(t, op), Method::Get | Method::Post) => {
            let mut i = of_type(K::Operation, t);
            i.operation = Some(op.to_string());
            operation_params(op, method, payload, search, &mut i)?;
            i
        }
        (r, _) => return Err(wrong_method(method, r)),
    })
}

/// `[base]/[type]/[id]` (read, update, patch, delete), its history, a
/// version and instance operations.
fn instance_level(
    route: &Route<'_>,
    method: Method,
    payload: &mut Payload<'_>,
    search: &mut Vec<SearchParam>,
) -> Result<Interaction, ClassifyError> {
    let instance = |kind, t, id: &str| {
        let mut i = new_interaction(kind, Level::Instance, Some(t));
        i.id = Some(id.to_string());
        i
    };
    Ok(match (route, method) {
        (Route::Instance(t, id), Method::Get | Method::Put | Method::Patch | Method::Delete) => {
            let kind = match method {
                Method::Get => K::Read,
                Method::Put => K::Update,
                Method::Patch => K::Patch,
                _ => K::Delete,
            };
            let mut i = instance(kind, t, id);
            if kind == K::Update {
                i.resource = body_resource(payload, t, Some(id))?;
            } else if kind == K::Patch {
                i.resource = Some(patch_body(payload)?);
            }
            i
        }
        (Route::InstanceHistory(t, id), Method::Get) => instance(K::History, t, id),
        (Route::Version(t, id, v), Method::Get) => {
            let mut i = instance(K::Vread, t, id);
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
            Method::Get | Method::Post,
        ) => {
            let mut i = instance(K::Operation, ty, id);
            i.version = version.as_ref().map(|v| v.to_string());
            i.operation = Some(op.to_string());
            i.compartment = Some(Compartment {
                resource_type: ty.to_string(),
                id: id.to_string(),
            });
            operation_params(op, method, payload, search, &mut i)?;
            i
        }
        (r, _) => return Err(wrong_method(method, r)),
    })
}

/// `[base]/[compartment type]/[id]/[type or *][/_search]`.
fn compartment(
    route: &Route<'_>,
    method: Method,
    payload: &Payload<'_>,
    search: &mut Vec<SearchParam>,
) -> Result<Interaction, ClassifyError> {
    let Route::Compartment {
        ty,
        id,
        target,
        search_suffix,
    } = route
    else {
        return Err(wrong_method(method, route));
    };
    if !(method == Method::Get || (method == Method::Post && *search_suffix)) {
        return Err(wrong_method(method, route));
    }
    if method == Method::Post {
        form_body(payload, search)?;
    }
    let level = if target.is_some() {
        Level::Type
    } else {
        Level::System
    };
    let mut i = new_interaction(K::Search, level, *target);
    i.compartment = Some(Compartment {
        resource_type: ty.to_string(),
        id: id.to_string(),
    });
    i.types = match target {
        Some(t) => vec![t.to_string()],
        None => types_from(search)?,
    };
    Ok(i)
}
