//! Bulk Data jobs in the stream: the shell's half of
//! `fhir_smart_authz_core::bulk`. It provides the job registry's store
//! (proxy-wasm shared data, common to all worker VMs) and hands the core
//! the server's answers it needs: a kick-off's `202` and `Content-Location`,
//! a status poll's status and manifest (buffered like the `/metadata`
//! answer, never modified), a cancel's status. Every rule is the core's.

use super::{AnswerHook, Phase, Stream};
use crate::host::{Buffer, Flow, HeaderMap, Host, HostError, LogLevel};
use fhir_smart_authz_core::bulk::{self, JobStore, StoreError};
use fhir_smart_authz_core::decision::{BulkAction, Decision};
use fhir_smart_authz_core::policy::AuthContext;

/// The job registry's store over the host's shared data.
struct SharedJobs<'h>(&'h dyn Host);

impl JobStore for SharedJobs<'_> {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        self.0.shared_get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.0.shared_set(key, value, cas).map_err(|e| match e {
            HostError::CasMismatch => StoreError::CasMismatch,
            _ => StoreError::Failed,
        })
    }
}

/// Which answer of an allowed Bulk Data request the core still needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BulkHook {
    /// Forwarded; the answer's headers decide.
    Armed(BulkAction),
    /// A status poll answered 200: buffering the manifest.
    Manifest,
}

/// What the response callbacks of decision `d` do for the job registry.
pub(super) fn hook_for(d: &Decision) -> AnswerHook {
    match d.bulk.as_ref().filter(|_| d.is_allow()) {
        Some(step) if step.action != BulkAction::File => {
            AnswerHook::Bulk(BulkHook::Armed(step.action))
        }
        _ => AnswerHook::Off,
    }
}

impl Stream {
    fn auth_context(&self) -> Option<&AuthContext> {
        self.facts()
            .and_then(|f| f.context.as_ref())
            .and_then(|c| c.as_ref().ok())
    }

    /// Complete a pending Bulk Data step of an allowed decision against the
    /// registry (the owner check of a job URL, the kick-off limit).
    pub(super) fn settle_bulk(&mut self, host: &dyn Host, d: Decision) -> Decision {
        if d.bulk.is_none() || !d.is_allow() {
            return d;
        }
        let config = self.config();
        let now = self.now_s(host);
        let (d, why) = bulk::settle(&config.bulk, &SharedJobs(host), d, self.auth_context(), now);
        if let Some(why) = why {
            host.log(
                LogLevel::Info,
                &format!("bulk: job request refused as not found: {why}"),
            );
        }
        d
    }

    /// The answer's headers of the allowed Bulk Data request `d` (`action`):
    /// handed to the registry, or its manifest buffered.
    pub(super) fn bulk_response_headers(
        &mut self,
        host: &dyn Host,
        mut d: Decision,
        action: BulkAction,
    ) -> Flow {
        let headers = host.headers(HeaderMap::Response);
        let status = crate::host::response_status(&headers).unwrap_or(0);
        let config = self.config();
        let store = SharedJobs(host);
        let result = match (action, d.bulk.clone()) {
            (BulkAction::KickOff, _) => {
                let location = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-location"))
                    .map(|(_, v)| v.as_str());
                let now = self.now_s(host);
                match self.auth_context() {
                    Some(ctx) => bulk::kickoff_answered(
                        &config.bulk,
                        &config.base,
                        &store,
                        &mut d,
                        ctx,
                        (status, location),
                        now,
                    )
                    .map(|job| {
                        if job.is_some() {
                            self.shared.count(host, "bulk.job_registered");
                        }
                    }),
                    None => Ok(()),
                }
            }
            (BulkAction::Status, Some(_)) if status == 200 => {
                self.phase = Phase::Released {
                    decision: d,
                    answer: AnswerHook::Bulk(BulkHook::Manifest),
                };
                return Flow::Continue;
            }
            (BulkAction::Status, Some(step)) => {
                bulk::status_answered(&config.bulk, &config.base, &store, &step, status, None)
                    .map(|_| ())
            }
            (BulkAction::Cancel, Some(step)) => bulk::cancel_answered(&store, &step, status),
            _ => Ok(()),
        };
        if let Err(why) = result {
            self.shared.count(host, "bulk.job_unrecorded");
            host.log(LogLevel::Warn, &format!("bulk: {why}"));
        }
        if action == BulkAction::KickOff {
            // The record names the job now that the server answered.
            self.write_audit(host, &d, None);
        }
        self.phase = Phase::Released {
            decision: d,
            answer: AnswerHook::Off,
        };
        Flow::Continue
    }

    /// The manifest of a status poll of decision `d` (buffered to its end,
    /// never modified): handed to the registry.
    pub(super) fn bulk_response_body(
        &mut self,
        host: &dyn Host,
        d: &Decision,
        body_size: usize,
        end_of_stream: bool,
    ) -> (Flow, bool) {
        let config = self.config();
        let too_large = body_size > config.max_body_bytes;
        if !end_of_stream && !too_large {
            return (Flow::Pause, false);
        }
        let body = (!too_large).then(|| {
            host.body(Buffer::ResponseBody, body_size)
                .unwrap_or_default()
        });
        let Some(step) = d.bulk.clone() else {
            return (Flow::Continue, true);
        };
        match bulk::status_answered(
            &config.bulk,
            &config.base,
            &SharedJobs(host),
            &step,
            200,
            body.as_deref(),
        ) {
            Ok(_) => {}
            Err(why) => {
                self.shared.count(host, "bulk.job_unrecorded");
                host.log(LogLevel::Warn, &format!("bulk: {why}"));
            }
        }
        (Flow::Continue, true)
    }
}
