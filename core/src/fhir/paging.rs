//! Paging links (`_getpages`, HAPI FHIR's): recognised in every form a
//! server serves as a page, and refused in every form a server could read
//! some other way.
//!
//! HAPI FHIR serves `_getpages` (from the URL or a form body, GET or POST) as
//! a page on the paths without a resource type (`[base]`, `[base]/`,
//! `[base]/_search`), uses the first value when it repeats, and falls back to
//! another interaction when it is blank (`[base]?_getpages=&_type=X` becomes
//! a system search). On a typed path it runs a search and ignores the
//! parameter. So: a page is `GET [base]?_getpages=ID` (also `[base]/`, and
//! `[base]/_search` with GET or a POST form) with exactly one non-blank id and
//! only the paging parameters a server writes into its links; `_getpages`
//! anywhere else, blank or repeated, is refused.

use super::error::{err, short, ClassifyError};
use super::interaction::SearchParam;
use super::route::Route;

/// The paging parameter.
pub(super) const PAGING: &str = "_getpages";

/// What a server writes into a paging link besides `_getpages` (HAPI FHIR's
/// `RestfulServerUtils.createPagingLink`), and response-shaping parameters
/// that cannot widen what the page returns.
const PAGE_PARAMS: [&str; 8] = [
    "_getpagesoffset",
    "_pageId",
    "_count",
    "_bundletype",
    "_pretty",
    "_format",
    "_elements",
    "_summary",
];

const FOLLOW: &str = "follow the paging link as the server wrote it (GET [base]?_getpages=<id>)";

/// Checks the parameters of a page request.
pub(super) fn check_paging(search: &[SearchParam]) -> Result<(), ClassifyError> {
    let mut ids = search.iter().filter(|p| p.name == PAGING);
    match (ids.next(), ids.next()) {
        (Some(p), None) if p.modifier.is_none() && p.chain.is_none() => match p.values.as_slice() {
            [id] if !id.trim().is_empty() => {}
            [_] => return err(format!("`_getpages` is blank: {FOLLOW}")),
            _ => return err(format!("`_getpages` names several pages: {FOLLOW}")),
        },
        _ => {
            return err(format!(
                "`_getpages` must appear once, without modifiers: {FOLLOW}"
            ))
        }
    }
    if let Some(p) = search
        .iter()
        .find(|p| p.name != PAGING && !PAGE_PARAMS.contains(&p.name.as_str()))
    {
        return err(format!(
            "a paging request takes only {}; `{}` is refused: {FOLLOW}",
            PAGE_PARAMS.join(", "),
            short(&p.name)
        ));
    }
    Ok(())
}

/// `_getpages` on a request that is not a page (the message names the
/// route; described only then, not on every request).
pub(super) fn refuse_misplaced_paging(
    search: &[SearchParam],
    route: &Route<'_>,
) -> Result<(), ClassifyError> {
    if search.iter().any(|p| p.name == PAGING) {
        return err(format!(
            "`_getpages` is refused on {}: {FOLLOW}",
            route.describe()
        ));
    }
    Ok(())
}
