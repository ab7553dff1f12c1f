//! Shadow mode (`enforce: false`) changes no traffic: what the filter does
//! when a call it makes on a request's behalf fails. Enforcing, the request
//! is refused (fail closed); in shadow mode it goes on exactly as without
//! the filter, and the audit record says what enforcing would have done.
//!
//! Key fetches, introspection and the write pre-check fail into a denial
//! (`keys_unavailable`, `introspection_unavailable`, `upstream_unavailable`)
//! that shadow mode audits and releases like any other; the response fetch
//! of a decision with response obligations is the one call whose failure is
//! not a decision, so its shell asks [`after_failed_call`].

/// A call the filter makes on a request's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterCall {
    /// The response fetched through `upstream.cluster` to check obligations.
    ResponseFetch,
    /// The stored resource read before a write by id.
    WritePrecheck,
    /// The issuer's JWKS.
    KeyFetch,
    /// RFC 7662 introspection of an opaque token.
    Introspection,
}

/// What to do with the request after a failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailedCall {
    /// Answer the failure (502 for the upstream calls, 401 for the token ones).
    Refuse,
    /// Let the request go upstream through its route, unchecked; audit `why`.
    Continue { why: String },
}

/// The rule: refuse when enforcing, else continue with the reason audited.
pub fn after_failed_call(enforce: bool, call: FilterCall, failure: &str) -> AfterFailedCall {
    if enforce {
        return AfterFailedCall::Refuse;
    }
    let what = match call {
        FilterCall::ResponseFetch => "the response could not be fetched for its check",
        FilterCall::WritePrecheck => {
            "the stored resource could not be read for the write pre-check"
        }
        FilterCall::KeyFetch => "the issuer's keys could not be fetched",
        FilterCall::Introspection => "the token could not be introspected",
    };
    AfterFailedCall::Continue {
        why: format!(
            "shadow mode: {what} ({failure}); the request went upstream unchecked (enforcing, it would have been refused)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuse_when_enforcing_continue_in_shadow_mode() {
        for call in [
            FilterCall::ResponseFetch,
            FilterCall::WritePrecheck,
            FilterCall::KeyFetch,
            FilterCall::Introspection,
        ] {
            assert_eq!(after_failed_call(true, call, "x"), AfterFailedCall::Refuse);
            let AfterFailedCall::Continue { why } = after_failed_call(false, call, "no cluster")
            else {
                panic!("{call:?}: shadow mode continues");
            };
            assert!(
                why.starts_with("shadow mode: ") && why.contains("(no cluster)"),
                "{why}"
            );
        }
        assert_eq!(
            after_failed_call(false, FilterCall::ResponseFetch, "cluster \"fhri\" unknown"),
            AfterFailedCall::Continue {
                why: "shadow mode: the response could not be fetched for its check (cluster \"fhri\" unknown); the request went upstream unchecked (enforcing, it would have been refused)".into()
            }
        );
    }
}
