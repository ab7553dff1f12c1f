//! Batch and transaction Bundles: one decision from the entries' decisions.

use super::context::AuthContext;
use super::interaction::evaluate;
use super::references::PatientEntry;
use super::settings::PolicyConfig;
use crate::decision::{Decision, EntryDenial, Narrowing, Obligation, Reason};
use crate::fhir::{BundleEntry, FhirBase, Interaction, InteractionKind};
use std::collections::HashMap;

/// At most this many entries of one Bundle may need a write pre-check (one
/// read of the stored resource each, one after the other).
const MAX_PRECHECKS: usize = 16;

/// The `PUT Patient/{id}` entries of a Bundle, by `fullUrl`: a reference to
/// such a `fullUrl` names that patient, unless another entry carries the
/// same `fullUrl` (which of them a server resolves is its own guess).
fn patient_entries(entries: &[BundleEntry]) -> Vec<PatientEntry> {
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for url in entries.iter().filter_map(|e| e.full_url.as_deref()) {
        *uses.entry(url).or_default() += 1;
    }
    let mut out = Vec::new();
    for e in entries {
        let it = &e.interaction;
        if let (InteractionKind::Update, Some("Patient"), Some(id), Some(url)) =
            (it.kind, it.resource_type.as_deref(), &it.id, &e.full_url)
        {
            if uses.get(url.as_str()) == Some(&1) {
                out.push((url.clone(), id.clone()));
            }
        }
    }
    out
}

/// Every entry decided as if sent alone (references to other entries'
/// `fullUrl` resolved). One denied entry denies a whole transaction
/// (`bundle_entry_denied`); a batch is allowed with its denied entries
/// listed (`denied_entries`: answered in place), unless every entry is
/// denied. Entries' obligations apply to the whole
/// response; their write pre-checks are made before it is forwarded.
/// Entries are never narrowed (their URLs are in the body); when an entry's
/// allow rests on search parameters the request gets
/// `Prefer: handling=strict`.
pub(super) fn authorize_bundle(
    policy: &PolicyConfig,
    base: &FhirBase,
    ctx: &AuthContext,
    it: Interaction,
) -> Decision {
    let mut denied = Vec::new();
    let mut obligations: Vec<Obligation> = Vec::new();
    let mut required: Vec<String> = Vec::new();
    let mut narrowing = Narrowing::default();
    let patients = patient_entries(&it.entries);
    let mut prechecks = 0;
    for e in &it.entries {
        let mut sub = evaluate(policy, base, &e.interaction, ctx, Some(&patients));
        prechecks += sub.obligations.iter().filter(|o| o.is_precheck()).count();
        if prechecks > MAX_PRECHECKS {
            sub.result = Err(super::need::fail(
                Reason::PatientCompartmentViolation,
                "more than 16 entries write by id under patient/ scopes; send fewer per Bundle",
            ));
        }
        match sub.result {
            Ok(()) => {
                narrowing.merge(sub.narrowing);
                for mut o in sub.obligations {
                    if let Obligation::CheckStored { entry, .. } = &mut o {
                        *entry = Some(e.index);
                    }
                    if !obligations.contains(&o) {
                        obligations.push(o);
                    }
                }
            }
            Err(f) => {
                for r in &sub.required_scopes {
                    if !required.contains(r) {
                        required.push(r.clone());
                    }
                }
                denied.push(EntryDenial {
                    index: e.index,
                    reason: f.reason,
                    message: f.message,
                    required_scopes: sub.required_scopes,
                });
            }
        }
    }
    let partial_batch = it.kind == InteractionKind::Batch && denied.len() < it.entries.len();
    if denied.is_empty() || partial_batch {
        // A batch answers per entry (R4 http.html): the allowed entries go
        // to the server, the denied ones are answered in place in the
        // batch-response (`crate::batch`).
        let message = if denied.is_empty() {
            "allowed".to_string()
        } else {
            let list: Vec<String> = denied
                .iter()
                .map(|d| format!("#{} {}", d.index, d.reason.as_str()))
                .collect();
            format!(
                "{} of {} batch entries forwarded; answered in place: {}",
                it.entries.len() - denied.len(),
                it.entries.len(),
                list.join(", ")
            )
        };
        let mut d = Decision::allow(Reason::Allowed, it);
        d.message = message;
        d.obligations = obligations;
        d.narrowing = (!narrowing.is_empty()).then_some(narrowing);
        d.denied_entries = denied;
        d
    } else {
        let list: Vec<String> = denied
            .iter()
            .map(|d| format!("#{} {}", d.index, d.reason.as_str()))
            .collect();
        let mut d = Decision::deny(
            Reason::BundleEntryDenied,
            format!(
                "{} of {} bundle entries denied ({}); the whole {} is refused",
                denied.len(),
                it.entries.len(),
                list.join(", "),
                if it.kind == InteractionKind::Batch {
                    "batch"
                } else {
                    "transaction"
                }
            ),
        )
        .with_interaction(it);
        d.denied_entries = denied;
        d.required_scopes = required;
        d
    }
}
