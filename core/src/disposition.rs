//! What the filter does with a decision it carries out, the same in every
//! shell: read the stored resource first (a write pre-check), let the
//! request go on (rewritten in place when narrowed), send it itself and
//! answer with what comes back (the relay: response obligations, a partly
//! allowed batch, a narrowed request whose headers already went upstream),
//! or answer the denial. Shadow mode (`enforce: false`) lets every decision
//! go on and changes no request.

use crate::decision::{Decision, Obligation};

/// The way decision `d` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Let the request go on.
    Release,
    /// Send it through `upstream.cluster` and answer with what comes back.
    Relay,
    /// Answer the denial.
    Deny,
}

/// How a narrowed allow reaches the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Narrowed {
    /// Its held headers are rewritten before it goes on.
    InPlace,
    /// Its headers already went upstream: the filter sends the rewritten
    /// request itself.
    Relayed,
    /// Shadow mode: the request goes on as sent.
    Shadow,
}

/// Whether the allowed decision `d` reads stored resources first (its
/// write pre-checks), before anything else is done with it.
pub fn prechecks_first(d: &Decision) -> bool {
    d.is_allow() && d.obligations.iter().any(Obligation::is_precheck)
}

/// Whether the request of decision `d` is narrowed where it is held (its
/// headers not yet upstream, `headers_forwarded` false), before the
/// decision is counted: a host that refuses the rewrite turns it into a
/// denial.
pub fn narrows_held_request(enforce: bool, d: &Decision, headers_forwarded: bool) -> bool {
    enforce && !headers_forwarded && d.is_allow() && d.rewrite.is_some()
}

/// The way decision `d` goes (its pre-checks done), and how a narrowed
/// allow reaches the upstream.
pub fn disposition(
    enforce: bool,
    d: &Decision,
    headers_forwarded: bool,
) -> (Disposition, Option<Narrowed>) {
    let allow = d.is_allow();
    let checked = !d.obligations.is_empty();
    if allow && enforce && d.is_partial_batch() {
        // Only the allowed entries go; the answer is merged.
        return (Disposition::Relay, None);
    }
    if allow && d.rewrite.is_some() {
        let narrowed = match (enforce, headers_forwarded) {
            (false, _) => Narrowed::Shadow,
            (true, true) => Narrowed::Relayed,
            (true, false) => Narrowed::InPlace,
        };
        let relay = checked || narrowed == Narrowed::Relayed;
        let way = if relay {
            Disposition::Relay
        } else {
            Disposition::Release
        };
        return (way, Some(narrowed));
    }
    let way = if allow && checked {
        Disposition::Relay
    } else if allow || !enforce {
        Disposition::Release
    } else {
        Disposition::Deny
    };
    (way, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{EntryDenial, Reason, Rewrite};
    use crate::fhir::{Interaction, InteractionKind, Level};

    fn allow() -> Decision {
        Decision::allow(
            Reason::Allowed,
            Interaction::new(InteractionKind::Read, Level::Instance),
        )
    }

    fn checked(mut d: Decision) -> Decision {
        d.obligations = vec![Obligation::CheckResponseCompartment {
            resource_type: "Observation".into(),
            patient: "123".into(),
        }];
        d
    }

    fn narrowed(mut d: Decision) -> Decision {
        d.rewrite = Some(Rewrite {
            path: "/fhir/Observation?patient=123".into(),
            headers: vec![],
            added: vec!["patient".into()],
        });
        d
    }

    fn partial_batch(mut d: Decision) -> Decision {
        d.denied_entries = vec![EntryDenial {
            index: 1,
            reason: Reason::InsufficientScope,
            message: "no".into(),
            required_scopes: vec![],
        }];
        d
    }

    /// (row, decision, enforce, headers forwarded, way, narrowed)
    type Row = (
        &'static str,
        Decision,
        bool,
        bool,
        Disposition,
        Option<Narrowed>,
    );

    #[test]
    fn each_decision_goes_its_way() {
        use Disposition::*;
        let deny = || Decision::deny(Reason::InsufficientScope, "no");
        #[rustfmt::skip]
        let rows: Vec<Row> = vec![
            ("allow", allow(), true, false, Release, None),
            ("deny", deny(), true, false, Deny, None),
            ("deny in shadow", deny(), false, false, Release, None),
            ("checked", checked(allow()), true, false, Relay, None),
            ("checked in shadow", checked(allow()), false, false, Relay, None),
            ("narrowed, held", narrowed(allow()), true, false, Release, Some(Narrowed::InPlace)),
            ("narrowed, forwarded", narrowed(allow()), true, true, Relay, Some(Narrowed::Relayed)),
            ("narrowed in shadow", narrowed(allow()), false, true, Release, Some(Narrowed::Shadow)),
            ("narrowed and checked", checked(narrowed(allow())), true, false, Relay, Some(Narrowed::InPlace)),
            ("partial batch", partial_batch(allow()), true, false, Relay, None),
            ("partial batch in shadow", partial_batch(allow()), false, false, Release, None),
        ];
        for (row, d, enforce, forwarded, way, narrowed) in rows {
            assert_eq!(
                disposition(enforce, &d, forwarded),
                (way, narrowed),
                "{row}"
            );
        }
    }

    #[test]
    fn only_an_enforced_narrowed_allow_is_narrowed_where_held() {
        assert!(narrows_held_request(true, &narrowed(allow()), false));
        assert!(!narrows_held_request(true, &narrowed(allow()), true));
        assert!(!narrows_held_request(false, &narrowed(allow()), false));
        assert!(!narrows_held_request(true, &allow(), false));
    }
}
