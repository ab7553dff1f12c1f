//! The server's answers to an allowed Bulk Data request, handed to the
//! registry: which answer is needed ([`watches`]), what its headers settle
//! ([`headers_answered`]), and the manifest of a status poll
//! ([`manifest_answered`]). The shells read the answer and count.

use super::{cancel_answered, kickoff_answered, status_answered, BulkConfig, JobStore};
use crate::decision::{BulkAction, Decision};
use crate::fhir::FhirBase;
use crate::policy::AuthContext;

/// The answer of decision `d` the registry needs: `Some(action)` for an
/// allowed kick-off, status poll or cancel (a file download needs none).
pub fn watches(d: &Decision) -> Option<BulkAction> {
    let step = d.bulk.as_ref().filter(|_| d.is_allow())?;
    (step.action != BulkAction::File).then_some(step.action)
}

/// What the answer's headers settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersAnswered {
    /// A status poll answered 200: its manifest (the body) is needed.
    NeedsManifest,
    /// Done: `Ok(true)` when a job was registered; `Err`: why the registry
    /// could not record the answer.
    Done(Result<bool, String>),
}

/// The answer (`status`, `headers`: lower-case names) to the allowed
/// request of decision `d` (`action`: [`watches`]) of the client `ctx` at
/// `now`: a kick-off's `202` and `Content-Location` register the job (and
/// name it in `d`), a cancel's `2xx` forgets it, a status poll's error is
/// recorded.
#[allow(clippy::too_many_arguments)]
pub fn headers_answered(
    cfg: &BulkConfig,
    base: &FhirBase,
    store: &dyn JobStore,
    d: &mut Decision,
    action: BulkAction,
    ctx: Option<&AuthContext>,
    (status, headers): (u16, &[(String, String)]),
    now: u64,
) -> HeadersAnswered {
    let result = match (action, d.bulk.clone()) {
        (BulkAction::KickOff, _) => {
            let location = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-location"))
                .map(|(_, v)| v.as_str());
            match ctx {
                Some(ctx) => kickoff_answered(cfg, base, store, d, ctx, (status, location), now)
                    .map(|job| job.is_some()),
                None => Ok(false),
            }
        }
        (BulkAction::Status, Some(_)) if status == 200 => return HeadersAnswered::NeedsManifest,
        (BulkAction::Status, Some(step)) => {
            status_answered(cfg, base, store, &step, status, None).map(|_| false)
        }
        (BulkAction::Cancel, Some(step)) => cancel_answered(store, &step, status).map(|_| false),
        _ => Ok(false),
    };
    HeadersAnswered::Done(result)
}

/// The manifest of a status poll of decision `d` (`body_size` bytes,
/// `read_body` reads them): its files registered; one over `max_body_bytes`
/// is not read (the job's files stay unknown). `Err`: why the registry
/// could not record it.
pub fn manifest_answered(
    cfg: &BulkConfig,
    base: &FhirBase,
    store: &dyn JobStore,
    d: &Decision,
    (body_size, max_body_bytes): (usize, usize),
    read_body: impl FnOnce() -> Vec<u8>,
) -> Result<(), String> {
    let Some(step) = d.bulk.as_ref() else {
        return Ok(());
    };
    let body = (body_size <= max_body_bytes).then(read_body);
    status_answered(cfg, base, store, step, 200, body.as_deref()).map(|_| ())
}
