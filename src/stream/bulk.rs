//! Bulk Data jobs in the stream: the shell's half of
//! `fhir_smart_authz_core::bulk`. It provides the job registry's store
//! (proxy-wasm shared data, common to all worker VMs) and hands the core
//! the server's answers it needs: a kick-off's `202` and `Content-Location`,
//! a status poll's status and manifest (buffered like the `/metadata`
//! answer, never modified), a cancel's status. Every rule is the core's.

use super::{AnswerHook, Phase, Stream};
use crate::host::{Buffer, Flow, HeaderMap, Host, HostError, LogLevel};
use fhir_smart_authz_core::bulk::{self, HeadersAnswered, JobStore, StoreError};
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
    match bulk::watches(d) {
        Some(action) => AnswerHook::Bulk(BulkHook::Armed(action)),
        None => AnswerHook::Off,
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
    /// handed to the registry (core `bulk::headers_answered`), or its
    /// manifest buffered.
    pub(super) fn bulk_response_headers(
        &mut self,
        host: &dyn Host,
        mut d: Decision,
        action: BulkAction,
    ) -> Flow {
        let headers = host.headers(HeaderMap::Response);
        let status = crate::host::response_status(&headers).unwrap_or(0);
        let config = self.config();
        let now = self.now_s(host);
        let answered = bulk::headers_answered(
            &config.bulk,
            &config.base,
            &SharedJobs(host),
            &mut d,
            action,
            self.auth_context(),
            (status, &headers),
            now,
        );
        let answer = match answered {
            HeadersAnswered::NeedsManifest => AnswerHook::Bulk(BulkHook::Manifest),
            HeadersAnswered::Done(result) => {
                match result {
                    Ok(true) => self.shared.count(host, "bulk.job_registered"),
                    Ok(false) => {}
                    Err(why) => self.bulk_unrecorded(host, &why),
                }
                if action == BulkAction::KickOff {
                    // The record names the job now that the server answered.
                    self.write_audit(host, &d, None);
                }
                AnswerHook::Off
            }
        };
        self.phase = Phase::Released {
            decision: d,
            answer,
        };
        Flow::Continue
    }

    /// The manifest of a status poll of decision `d`, buffered to its end
    /// (never modified), handed to the registry. `None` while it is still
    /// arriving.
    pub(super) fn bulk_response_body(
        &self,
        host: &dyn Host,
        d: &Decision,
        body_size: usize,
        end_of_stream: bool,
    ) -> Option<Flow> {
        let config = self.config();
        if !end_of_stream && body_size <= config.max_body_bytes {
            return None;
        }
        let answered = bulk::manifest_answered(
            &config.bulk,
            &config.base,
            &SharedJobs(host),
            d,
            (body_size, config.max_body_bytes),
            || {
                host.body(Buffer::ResponseBody, body_size)
                    .unwrap_or_default()
            },
        );
        if let Err(why) = answered {
            self.bulk_unrecorded(host, &why);
        }
        Some(Flow::Continue)
    }

    fn bulk_unrecorded(&self, host: &dyn Host, why: &str) {
        self.shared.count(host, "bulk.job_unrecorded");
        host.log(LogLevel::Warn, &format!("bulk: {why}"));
    }
}
