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
//! * **One reading** (README "Decision rules"): a `POST _search` needs the
//!   exact lower-case form Content-Type (optionally `charset=utf-8`), even
//!   for an empty body; no request may carry `Content-Encoding`,
//!   `Content-Location` or the other headers in `head::REFUSED_HEADERS`, nor
//!   `_cascade`/`_expunge`; at most `MAX_PARAMETERS` parameters (query and
//!   body); a POST operation takes only `_format`/`_pretty` in its URL and
//!   its parameters from its `Parameters` body (`parameters`); `_getpages`
//!   only in the paging forms (`paging`); `Prefer: respond-async` only on
//!   Bulk Data; a Bundle has at most `MAX_BUNDLE_ENTRIES` entries.
//! * Bodies: a batch/transaction must be a JSON Bundle (XML bundles cannot be
//!   inspected and are refused); `_search` bodies must be form-encoded;
//!   JSON create/update bodies are parsed into
//!   [`Interaction::resource`] and their `resourceType` (and, for update, `id`)
//!   must match the URL. XML bodies and non-FHIR bodies of `Binary` are
//!   classified with `resource: None`; other content types on create/update
//!   are refused. A PATCH body (exactly `application/json-patch+json`: a JSON
//!   array; exactly `application/fhir+json`: a `Parameters`; only
//!   `charset=utf-8` as a parameter) is parsed into [`Interaction::resource`];
//!   other content types (an XML patch too: unreadable) are refused.

use super::base::FhirBase;
use super::body::{BodySource, Payload};
use super::bundle::classify_bundle;
use super::error::ClassifyError;
use super::head::{body_media, parse_method, read_head, MediaKind, Method};
use super::interaction::{Interaction, InteractionKind, RequestParts};
use super::route::{route, split_target, Route};
use super::table::BULK_STATUS;
use super::table::{classify_path, Classified};

/// Whether the classifier needs the body to classify this request. Called on
/// headers alone. When it returns `true`, buffer the body and pass it to
/// [`classify`] (an empty body as `Some(&[])`).
pub fn body_needed(base: &FhirBase, req: &RequestParts) -> bool {
    // Only POST, PUT and PATCH read a body: a GET or DELETE (most requests)
    // skips reading the headers and the path here, `classify` reads them.
    if !matches!(
        parse_method(req.method),
        Ok(Method::Post | Method::Put | Method::Patch)
    ) {
        return false;
    }
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
    let media = head.content_type.map(body_media).transpose().ok().flatten();
    let json = media == Some(MediaKind::Json);
    let form = media == Some(MediaKind::Form);
    match (route, head.method) {
        (Route::Base, Method::Post) => json,
        (Route::SystemSearch | Route::TypeSearch(_), Method::Post) => form,
        // Any content type: an empty body is read as "no parameters".
        (
            Route::SystemOperation(_) | Route::TypeOperation(..) | Route::InstanceOperation { .. },
            Method::Post,
        ) => true,
        (
            Route::Compartment {
                search_suffix: true,
                ..
            },
            Method::Post,
        ) => form,
        (Route::Type(_), Method::Post | Method::Put) | (Route::Instance(..), Method::Put) => json,
        // The patch document (JSON Patch or FHIRPath Patch; a wrong
        // Content-Type is refused after the body).
        (Route::Type(_) | Route::Instance(..), Method::Patch) => true,
        _ => false,
    }
}

/// Classifies one HTTP request (see the module documentation for the rules).
pub fn classify(base: &FhirBase, req: &RequestParts) -> Result<Interaction, ClassifyError> {
    let head = read_head(req)?;
    let (rel, query) = split_target(base, req.path)?;
    let payload = Payload {
        if_none_exist: head.if_none_exist,
        body: BodySource::Http {
            content_type: head.content_type,
            body: req.body,
        },
    };
    let it = match classify_path(head.method, rel, query, payload)? {
        Classified::Interaction(i) => i,
        Classified::Bundle { search, payload } => classify_bundle(base, payload, search)?,
    };
    // A search is answered synchronously instead (the engine's rewrite
    // drops the preference), so its answer is checked as usual.
    if head.respond_async && !is_bulk_data(&it) && it.kind != InteractionKind::Search {
        return Err(ClassifyError::new(
            "`Prefer: respond-async` is refused here (only $export, its status and searches take it; a search is answered synchronously): an async answer cannot be checked",
        ));
    }
    Ok(it)
}

fn is_bulk_data(it: &Interaction) -> bool {
    it.kind == InteractionKind::Operation
        && matches!(it.operation.as_deref(), Some(op) if op == "$export" || op == BULK_STATUS)
}
