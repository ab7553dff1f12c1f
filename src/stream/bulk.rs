//! Bulk Data jobs in the stream: the shell's half of
//! `fhir_smart_authz_core::bulk`. It provides the job registry's store
//! (proxy-wasm shared data, common to all worker VMs) and hands the core
//! the server's answers it needs: a kick-off's `202` and `Content-Location`,
//! a status poll's status and manifest (buffered like the `/metadata`
//! answer, never modified), a cancel's status. Every rule is the core's.

use super::Stream;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum BulkHook {
    #[default]
    Off,
    /// Forwarded; the answer's headers decide.
    Armed(BulkAction),
    /// A status poll answered 200: buffering the manifest.
    Manifest,
}

impl Stream {
    fn auth_context(&self) -> Option<&AuthContext> {
        self.facts
            .as_ref()
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

    /// An allowed Bulk Data request goes upstream: watch for its answer.
    pub(super) fn arm_bulk_hook(&mut self, d: &Decision) {
        if let Some(step) = d.bulk.as_ref().filter(|_| d.is_allow()) {
            if step.action != BulkAction::File {
                self.bulk_hook = BulkHook::Armed(step.action);
            }
        }
    }

    pub(super) fn bulk_response_headers(&mut self, host: &dyn Host) -> Flow {
        let BulkHook::Armed(action) = self.bulk_hook else {
            return Flow::Continue;
        };
        self.bulk_hook = BulkHook::Off;
        let headers = host.headers(HeaderMap::Response);
        let status = crate::host::response_status(&headers).unwrap_or(0);
        let config = self.config();
        let store = SharedJobs(host);
        let Some(mut d) = self.decision.take() else {
            return Flow::Continue;
        };
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
                self.bulk_hook = BulkHook::Manifest;
                self.decision = Some(d);
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
        self.decision = Some(d);
        Flow::Continue
    }

    pub(super) fn bulk_response_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        let config = self.config();
        let too_large = body_size > config.max_body_bytes;
        if !end_of_stream && !too_large {
            return Flow::Pause;
        }
        self.bulk_hook = BulkHook::Off;
        let body = (!too_large).then(|| {
            host.body(Buffer::ResponseBody, body_size)
                .unwrap_or_default()
        });
        let Some(step) = self.decision.as_ref().and_then(|d| d.bulk.clone()) else {
            return Flow::Continue;
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
        Flow::Continue
    }
}
