//! What a public answer (`/metadata`, the SMART discovery document) carries
//! besides its body: `Vary: Origin`. Envoy's CORS filter in front of the
//! gateway echoes the caller's `Origin` in `Access-Control-Allow-Origin`
//! (it adds no `Vary`), and these answers are cacheable without a token: a
//! shared or browser cache must not serve one origin's copy to another.

use crate::decision::{Decision, Reason};

/// Whether the answer to the request of decision `d` is a public answer.
pub fn is_public_answer(d: &Decision) -> bool {
    d.reason == Reason::PublicEndpoint
}

/// The `Vary` value of a public answer whose present value is `existing`:
/// `Origin` added unless it is already there (or `*`); `None` when the
/// value stays as it is.
pub fn vary_with_origin(existing: Option<&str>) -> Option<String> {
    let v = existing.unwrap_or("").trim();
    if v.split(',')
        .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("origin"))
    {
        None
    } else if v.is_empty() {
        Some("Origin".into())
    } else {
        Some(format!("{v}, Origin"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_is_added_once() {
        for (existing, want) in [
            (None, Some("Origin")),
            (Some(""), Some("Origin")),
            (Some("Accept"), Some("Accept, Origin")),
            (Some("accept, origin"), None),
            (Some("Origin"), None),
            (Some("*"), None),
        ] {
            assert_eq!(vary_with_origin(existing).as_deref(), want, "{existing:?}");
        }
    }
}
