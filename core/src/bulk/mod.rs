//! Bulk Data jobs bound to the client that started them (Bulk Data Access
//! 2.0/3.0). The kick-off itself is decided by the policy like any operation
//! (`policy::export`: the types, the parameters that widen the output); what
//! follows is decided here:
//!
//! - an allowed kick-off is counted against `bulk.max_active_per_client`
//!   (429 with `Retry-After` beyond), and its `202` answer's
//!   `Content-Location` becomes a job of this client ([`kickoff_answered`]);
//! - a request to a status or file URL ([`job_request`]) is forwarded only
//!   for the client that started the job, with scopes still granting what
//!   the kick-off needed; anyone else gets the `404` a job that does not
//!   exist gets ([`settle`]);
//! - a complete manifest's URLs under the gateway become the job's files
//!   ([`status_answered`]); a `2xx` answer to `DELETE` forgets the job
//!   ([`cancel_answered`]).
//!
//! The registry lives in a [`JobStore`] the shell provides (shared data).

mod answers;
mod manifest;
mod registry;
pub mod settings;
mod urls;

pub use answers::{headers_answered, manifest_answered, watches, HeadersAnswered};
pub use manifest::manifest_urls;
pub use registry::{
    active_jobs, find, forget, record_outcome, register, slot_key, EmptyRegistry, Job, JobStore,
    Owner, StoreError, INDEX_KEY,
};
pub use settings::BulkConfig;
pub use urls::{job_request, url_key, JobUrl};

use crate::decision::{BulkAction, BulkStep, Decision, Reason};
use crate::fhir::{FhirBase, Interaction, InteractionKind, Level};
use crate::policy::AuthContext;

/// What every refused job request answers, whatever the cause (no such
/// job, another client's, scopes narrowed since): nothing is revealed.
pub const NOT_FOUND: &str = "there is no Bulk Data export job at this URL for this token";

/// The engine's decision on a request to a job URL (`None`: not one). An
/// allow is pending: [`settle`] completes it against the registry.
pub fn decide_job_request(
    cfg: &BulkConfig,
    base: &FhirBase,
    method: &str,
    target: &str,
    ctx: Option<&AuthContext>,
) -> Option<Decision> {
    let url = match job_request(cfg, base, method, target)? {
        Ok(u) => u,
        Err(why) => return Some(Decision::deny(Reason::InvalidRequest, why)),
    };
    let it = Interaction::new(InteractionKind::Operation, Level::System);
    if ctx.is_none() {
        return Some(
            Decision::deny(
                Reason::MissingToken,
                "this request needs a bearer token (Authorization: Bearer ...)",
            )
            .with_interaction(it),
        );
    }
    let mut d = Decision::allow(Reason::Allowed, it);
    d.bulk = Some(BulkStep {
        action: url.action,
        url: url.key,
        job: None,
    });
    Some(d)
}

/// An allowed `$export` (kick-off): marked for [`settle`] and
/// [`kickoff_answered`].
pub fn mark_kickoff(d: &mut Decision) {
    let export = d.interaction.as_ref().is_some_and(|it| {
        it.kind == InteractionKind::Operation && it.operation.as_deref() == Some("$export")
    });
    if export && d.is_allow() {
        d.bulk = Some(BulkStep {
            action: BulkAction::KickOff,
            url: String::new(),
            job: None,
        });
    }
}

/// Complete a pending Bulk Data decision against the registry: the owner
/// check of a job URL, or the concurrency limit of a kick-off. The second
/// value says why a job request was refused (for the log; the client hears
/// [`NOT_FOUND`]).
pub fn settle(
    cfg: &BulkConfig,
    store: &dyn JobStore,
    mut d: Decision,
    ctx: Option<&AuthContext>,
    now: u64,
) -> (Decision, Option<String>) {
    let Some(step) = d.bulk.clone().filter(|_| d.is_allow()) else {
        return (d, None);
    };
    let Some(ctx) = ctx else {
        return (
            refuse(
                d,
                Reason::MissingToken,
                "this request needs a bearer token (Authorization: Bearer ...)",
            ),
            None,
        );
    };
    if step.action == BulkAction::KickOff {
        let Some(owner) = Owner::of(ctx) else {
            let msg = "a Bulk Data kick-off needs a token naming its client (client_id, azp or sub): the job is bound to it";
            return (refuse(d, Reason::InsufficientScope, msg), None);
        };
        if active_jobs(cfg, store, &owner, now) >= cfg.max_active_per_client {
            let msg = format!(
                "this client has {} Bulk Data exports running (the limit): wait for one to complete, or cancel one with DELETE on its status URL",
                cfg.max_active_per_client
            );
            let mut d = refuse(d, Reason::ExportLimitReached, &msg);
            d.retry_after = Some(cfg.retry_after_seconds);
            return (d, None);
        }
        return (d, None);
    }
    let why = match find(cfg, store, &step.url, now) {
        None => "no job in the registry has this URL".to_string(),
        Some(job) => match job.admits(ctx) {
            Ok(()) => {
                if let Some(s) = d.bulk.as_mut() {
                    s.job = Some(job.key);
                }
                return (d, None);
            }
            Err(why) => {
                if let Some(s) = d.bulk.as_mut() {
                    s.job = Some(job.key);
                }
                why
            }
        },
    };
    (refuse(d, Reason::BulkJobNotFound, NOT_FOUND), Some(why))
}

fn refuse(d: Decision, reason: Reason, message: &str) -> Decision {
    let mut out = Decision::deny(reason, message);
    out.interaction = d.interaction;
    out.bulk = d.bulk;
    out
}

/// The answer to an allowed kick-off: a `202` with a `Content-Location`
/// under the gateway becomes a job of this client. `Ok(Some(key))`: the
/// job; `Ok(None)`: nothing to record (no `202`, or a status URL elsewhere);
/// `Err`: the job could not be recorded (its polls will be refused).
pub fn kickoff_answered(
    cfg: &BulkConfig,
    base: &FhirBase,
    store: &dyn JobStore,
    d: &mut Decision,
    ctx: &AuthContext,
    (status, content_location): (u16, Option<&str>),
    now: u64,
) -> Result<Option<String>, String> {
    if status != 202 {
        return Ok(None);
    }
    let Some(location) = content_location else {
        return Err("the server answered the kick-off 202 without Content-Location".into());
    };
    let Some(key) = url_key(base, location) else {
        return Ok(None);
    };
    if !cfg.is_status_path(key.split('?').next().unwrap_or("")) {
        return Err(format!(
            "the server's status URL `{key}` is not under bulk.status_paths: add its path there, or its polls are decided as FHIR requests"
        ));
    }
    let Some(owner) = Owner::of(ctx) else {
        return Err("the kick-off's token names no client".into());
    };
    let job = Job {
        key: key.clone(),
        owner: owner.whole,
        started: now,
        needs: d.required_scopes.clone(),
        files: Vec::new(),
    };
    register(cfg, store, &job, &owner.client, now)
        .map_err(|e| format!("the job registry refused the job ({e:?})"))?;
    if let Some(s) = d.bulk.as_mut() {
        s.job = Some(key.clone());
    }
    Ok(Some(key))
}

/// The answer to an allowed status poll: `200` (a manifest: its URLs under
/// the gateway become the job's files) or an error status (the job failed)
/// marks the job complete; `202` (in progress) changes nothing. `Ok(n)`:
/// the URLs recorded.
pub fn status_answered(
    cfg: &BulkConfig,
    base: &FhirBase,
    store: &dyn JobStore,
    step: &BulkStep,
    status: u16,
    body: Option<&[u8]>,
) -> Result<usize, String> {
    let Some(job) = step.job.as_deref() else {
        return Ok(0);
    };
    let urls = match (status, body) {
        (200, Some(body)) => manifest_urls(cfg, base, body)?,
        (200, None) => return Err("the manifest could not be read (larger than max_body_bytes?): its files cannot be downloaded".into()),
        (s, _) if s >= 400 => Vec::new(),
        _ => return Ok(0),
    };
    record_outcome(cfg, store, job, &urls)
        .map_err(|e| format!("the job registry refused the manifest ({e:?})"))?;
    Ok(urls.len())
}

/// The answer to an allowed cancel: a `2xx` forgets the job.
pub fn cancel_answered(store: &dyn JobStore, step: &BulkStep, status: u16) -> Result<(), String> {
    match step.job.as_deref() {
        Some(job) if (200..300).contains(&status) => forget(store, job)
            .map_err(|e| format!("the job registry could not forget the job ({e:?})")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
