//! The sender constraint of the verified token (DPoP proof, client
//! certificate), checked by the core on every request, and the headers it
//! adds to the upstream's response (a fresh `DPoP-Nonce`).

use super::Stream;
use crate::host::{utf8_or_lossy, HeaderMap, Host, LogLevel};
use crate::replay_store::SharedReplay;
use fhir_smart_authz_core::decision::{Decision, Reason};
use fhir_smart_authz_core::token::binding::{Binding, BindingRequest, ConnectionFacts};
use serde_json::Value;

/// Envoy's hex SHA-256 of the client certificate's DER.
const PEER_CERTIFICATE_DIGEST: [&str; 2] = ["connection", "sha256_peer_certificate_digest"];
/// Envoy's `ip:port` of the hop the request came from.
pub(super) const SOURCE_ADDRESS: [&str; 2] = ["source", "address"];

impl Stream {
    /// Check the verified token's binding: `Err` is the denial.
    pub(super) fn check_binding(
        &self,
        host: &dyn Host,
        claims: &Value,
    ) -> Result<Binding, Decision> {
        let config = self.config();
        let ctx = config.binding();
        let (digest, peer) = if ctx.reads_connection(claims) {
            let read = |path: &[&str]| host.property(path).map(utf8_or_lossy);
            (read(&PEER_CERTIFICATE_DIGEST), read(&SOURCE_ADDRESS))
        } else {
            (None, None)
        };
        let now = self.now_s(host);
        let mut replay = SharedReplay::prepared(host, self.shared.replay_shards.get());
        self.with_parts(|s, parts| {
            let req = BindingRequest {
                parts,
                connection: ConnectionFacts {
                    peer_certificate_sha256_hex: digest.as_deref(),
                    peer_address: peer.as_deref(),
                },
                now,
            };
            match s.shared.tokens.try_borrow_mut() {
                Ok(mut tp) => tp.check_binding(host, &config, &req, claims, &mut replay),
                Err(_) => Err(Decision::deny(
                    Reason::InvalidToken,
                    "internal: token verifier busy; retry",
                )),
            }
        })
    }

    /// Add the headers every answer carries to the upstream's response.
    pub(super) fn add_answer_headers(&self, host: &dyn Host) {
        for (name, value) in self.answer_headers() {
            if host
                .set_header(HeaderMap::Response, name, Some(value))
                .is_err()
            {
                host.log(
                    LogLevel::Warn,
                    &format!("could not set the response header {name}"),
                );
            }
        }
    }
}
