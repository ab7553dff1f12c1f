//! The request callbacks: headers (anti-spoofing, the SMART discovery
//! document, the token) and body (buffered while the decision needs it).

use super::{Callback, Phase, Stream};
use crate::host::{utf8_or_lossy, Buffer, Flow, HeaderMap, Host, LogLevel};
use crate::ports::TokenStep;
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::engine::{body_too_large, trailers_refused};
use fhir_smart_authz_core::reply::{discovery_answer, gateway_error_reply};

/// The token port's first answer for the request's token.
struct FirstStep {
    step: TokenStep,
    /// See [`Stream::first_step`].
    issuer: Option<usize>,
    /// The token, when verifying goes on after the headers callback.
    kept: Option<String>,
}

impl Stream {
    pub fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Flow {
        self.callback(Callback::Request);
        if self.shared.config.metrics.decision_latency {
            self.started_us = Some(host.now_us());
        }
        self.timed(host, "request_headers", |s| {
            s.request_headers(host, end_of_stream)
        })
    }

    fn request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Flow {
        let config = self.config();
        let read = self.timed(host, "read_headers", |_| {
            remove_reserved_headers(host, &config)
        });
        let Some(headers) = read else {
            // Fail closed: the upstream would trust an identity header the
            // client set.
            return self.reply(
                host,
                gateway_error_reply(
                    500,
                    "exception",
                    "the gateway could not remove a client-supplied identity header; the request was not forwarded",
                ),
            );
        };
        for (i, (n, _)) in headers.iter().enumerate() {
            match n.as_str() {
                ":method" => self.method_at = Some(i),
                ":path" => self.path_at = Some(i),
                _ => {}
            }
        }
        self.headers = headers;

        if let Some((d, reply)) = discovery_answer(&config, self.method(), self.path()) {
            // Public: audited as the SMART configuration.
            self.account(host, &d);
            return self.reply(host, reply);
        }

        let needs_body = self.with_parts(|s, parts| s.shared.engine.body_needed(&config, parts));
        if needs_body && end_of_stream {
            // The request has no body at all: decide on an empty one.
            self.body = Some(Vec::new());
        }
        let body_needed = needs_body && !end_of_stream;
        if let Phase::Verifying(v) = &mut self.phase {
            v.body_needed = body_needed;
        }

        // The ~1 KB token is verified where it lies in the headers, and
        // copied only when verifying goes on after this callback (a call, a
        // wait for keys).
        let first = self.with_parts(|s, parts| {
            let token = s.shared.tokens.borrow().extract(&config, parts)?;
            Ok(token.map(|t| {
                let (step, issuer) = s.first_step(host, &t);
                let goes_on = issuer.is_some() || matches!(step, TokenStep::Call { .. });
                FirstStep {
                    step,
                    issuer,
                    kept: goes_on.then(|| t.into_owned()),
                }
            }))
        });
        match first {
            Err(d) => self.carry_out(host, d),
            Ok(None) => self.after_token(host, None),
            Ok(Some(first)) => {
                if let Phase::Verifying(v) = &mut self.phase {
                    v.token = first.kept;
                }
                self.token_step(host, first.step, first.issuer)
            }
        }
    }

    pub fn on_request_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        self.callback(Callback::Request);
        match &mut self.phase {
            Phase::Replied | Phase::Prechecking { .. } | Phase::Relaying { .. } => {
                return Flow::Pause
            }
            Phase::Released { .. } => return Flow::Continue,
            Phase::Verifying(v) => {
                // The headers are paused for the token (JWKS fetch /
                // introspection) and the host still delivers the body (Envoy
                // with `allow_on_headers_stop_iteration`): Envoy buffers it
                // until resumed.
                v.body_seen_while_paused = true;
                if !v.body_needed {
                    return Flow::Pause;
                }
            }
            Phase::AwaitingBody => {}
        }
        let config = self.config();
        if body_size > config.max_body_bytes {
            return self.carry_out(host, body_too_large(&config));
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        let body = host.body(Buffer::RequestBody, body_size);
        if body.is_none() && body_size > 0 {
            // Deciding on an empty body would skip what it says (form
            // `_include`s, the resource's patient): fail closed.
            host.log(LogLevel::Error, "could not read the buffered request body");
            return self.reply(
                host,
                gateway_error_reply(
                    500,
                    "exception",
                    "the gateway could not read the request body to check it; the request was not forwarded",
                ),
            );
        }
        self.body = Some(body.unwrap_or_default());
        if !matches!(self.phase, Phase::AwaitingBody) {
            // The whole body is here before the token: decided when it resolves.
            return Flow::Pause;
        }
        self.consult_engine(host)
    }
}

impl Stream {
    /// Request trailers end the body without a body callback that says so.
    /// Envoy continues a request (its headers and the body the filter
    /// buffered) whose trailers callback answers `Continue`, so the answer
    /// follows the phase: before a decision that needs the body it is a
    /// refusal (the body is not checked at trailers), never `Continue`.
    pub fn on_request_trailers(&mut self, host: &dyn Host) -> Flow {
        self.callback(Callback::Request);
        match &self.phase {
            Phase::Released { .. } => Flow::Continue,
            Phase::Replied | Phase::Prechecking { .. } | Phase::Relaying { .. } => Flow::Pause,
            // Held for the token only: resumed (with the trailers) once decided.
            Phase::Verifying(v) if !v.body_needed => Flow::Pause,
            Phase::Verifying(_) | Phase::AwaitingBody => self.carry_out(host, trailers_refused()),
        }
    }
}

/// The request headers (names lower-cased) without the reserved ones, which
/// are removed from the request: incoming copies of the fact headers never
/// reach the upstream. `None` when the host could not remove one.
fn remove_reserved_headers(host: &dyn Host, config: &Config) -> Option<Vec<(String, String)>> {
    let mut headers = host.headers(HeaderMap::Request);
    // Lower-case in place (Envoy's names already are: usually a no-op).
    for (n, _) in headers.iter_mut() {
        n.make_ascii_lowercase();
    }
    // Read by the sender-constraint check, but never forwarded: `DPoP`
    // (unless configured), a certificate header from an untrusted hop.
    let peer = config
        .sender_constraint
        .certificate_source
        .header()
        .and_then(|_| host.property(&super::binding::SOURCE_ADDRESS))
        .map(utf8_or_lossy);
    let stripped = config.binding().stripped_headers(peer.as_deref());
    let mut spoofed_header_kept = false;
    headers.retain(|(lower, _)| {
        let reserved = config.upstream.is_reserved(lower);
        if (reserved || stripped.contains(&lower.as_str()))
            && host.set_header(HeaderMap::Request, lower, None).is_err()
        {
            host.log(LogLevel::Error, &format!("could not remove header {lower}"));
            spoofed_header_kept = true;
        }
        !reserved
    });
    (!spoofed_header_kept).then_some(headers)
}
