//! The sender constraint of one request (RFC 9449 §4.3, §7, §8, §11; RFC
//! 8705 §3): whether the verified token's binding (`cnf.jkt`,
//! `cnf.x5t#S256`) is proven by this request, and whether the issuer's
//! settings accept the token as it is bound. A bound token is always
//! checked against its binding, whatever is configured: the settings can
//! only refuse more.

use super::certificate::{client_thumbprint, ConnectionFacts};
use super::htu::{external_uri, same_target};
use super::nonce::{NonceCheck, NonceKeys};
use super::proof::{invalid, verify_proof_with, Proof, ProofKeys};
use super::replay::{proof_key, record_once, ReplayStore, Seen};
use super::settings::{CertificateBinding, DpopConfig, DpopMode, SenderConstraintConfig};
use crate::decision::{Decision, Reason};
use crate::fhir::RequestParts;
use crate::token::bearer::{authorization_scheme, extract_bearer, Scheme};
use crate::token::error::TokenError;
use crate::token::settings::{IssuerConfig, TokenSettings};
use crate::token::signature::SignatureVerifier;
use serde_json::Value;

/// What the check reads of the configuration (built by `Config::binding`).
#[derive(Debug, Clone, Copy)]
pub struct BindingContext<'a> {
    pub issuers: &'a [IssuerConfig],
    pub token: &'a TokenSettings,
    pub settings: &'a SenderConstraintConfig,
    /// `fhir_base_url`: the external URI proofs name (`htu`).
    pub base_url: Option<&'a str>,
    /// `fhir_base_path`: where that URL is on this listener.
    pub base_path: &'a str,
}

impl BindingContext<'_> {
    /// The nonce keys, when configured.
    pub fn nonce_keys(&self) -> Option<NonceKeys<'_>> {
        let s = self.settings;
        Some(NonceKeys {
            current: s.nonce_secret.value()?.expose(),
            previous: s
                .nonce_previous_secrets
                .iter()
                .filter_map(|p| p.value().map(|v| v.expose()))
                .collect(),
            lifetime_seconds: s.nonce_lifetime_seconds,
        })
    }

    /// Whether some issuer accepts the `DPoP` scheme.
    pub fn dpop_accepted(&self) -> bool {
        self.issuers.iter().any(|i| i.dpop.mode != DpopMode::Off)
    }

    /// The proof algorithms any issuer accepts (for the challenge's `algs`).
    pub fn dpop_algorithms(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for issuer in self.issuers.iter().filter(|i| i.dpop.mode != DpopMode::Off) {
            for a in issuer.dpop.effective_algorithms() {
                if !names.contains(&a.name()) {
                    names.push(a.name());
                }
            }
        }
        names
    }

    /// Whether checking these claims reads the connection (the client
    /// certificate, the peer): only for a certificate-bound token
    /// (`cnf.x5t#S256`; an issuer requiring certificate binding refuses
    /// any other token without reading it). Spares the host reads on every
    /// other request, DPoP-bound ones included.
    pub fn reads_connection(&self, claims: &Value) -> bool {
        claims
            .get("cnf")
            .and_then(|cnf| cnf.get("x5t#S256"))
            .is_some()
    }

    /// The request headers that never go upstream: `DPoP` (unless
    /// `forward_dpop_header`), and the certificate header when it did not
    /// come from a trusted hop (`peer`: `source.address`, read only when
    /// [`SenderConstraintConfig::certificate_header`] is set).
    pub fn stripped_headers(&self, peer: Option<&str>) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.settings.forward_dpop_header {
            out.push("dpop");
        }
        if let Some(h) = super::certificate::untrusted_header(self.settings, peer) {
            out.push(h);
        }
        out
    }

    /// The issuer of verified claims: by `iss`, else the introspection
    /// issuer (an introspection answer need not carry `iss`).
    fn issuer_of(&self, claims: &Value) -> Option<&IssuerConfig> {
        match claims.get("iss").and_then(Value::as_str) {
            Some(iss) => self.issuers.iter().find(|i| i.issuer == iss),
            None => self.issuers.iter().find(|i| i.introspection.is_some()),
        }
    }
}

/// The request as the check sees it.
#[derive(Debug, Clone, Copy)]
pub struct BindingRequest<'a, 'r> {
    pub parts: &'a RequestParts<'r>,
    pub connection: ConnectionFacts<'a>,
    /// Unix seconds.
    pub now: u64,
}

/// How the request proved possession of the token's binding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// The proof key's thumbprint (`cnf.jkt`), when DPoP-bound.
    pub jkt: Option<String>,
    /// The client certificate's thumbprint (`cnf.x5t#S256`), when certificate-bound.
    pub certificate: Option<String>,
    /// Headers for the response (a fresh `DPoP-Nonce`).
    pub response_headers: Vec<(String, String)>,
}

/// The token's confirmation claim (RFC 7800): the methods this filter checks.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Confirmation<'c> {
    pub jkt: Option<&'c str>,
    pub x5t_s256: Option<&'c str>,
}

impl<'c> Confirmation<'c> {
    /// Read `cnf`. A method the filter cannot check, or a malformed one,
    /// refuses the token: it is bound, and its binding would go unchecked.
    pub fn of(claims: &'c Value) -> Result<Confirmation<'c>, TokenError> {
        let Some(cnf) = claims.get("cnf") else {
            return Ok(Confirmation::default());
        };
        let mismatch = |why: String| TokenError::new(Reason::TokenBindingMismatch, why);
        let cnf = cnf
            .as_object()
            .ok_or_else(|| mismatch("the token claim `cnf` is not an object".into()))?;
        let mut c = Confirmation::default();
        for (name, value) in cnf {
            let text = value.as_str().filter(|s| !s.is_empty());
            match (name.as_str(), text) {
                ("jkt", Some(t)) => c.jkt = Some(t),
                ("x5t#S256", Some(t)) => c.x5t_s256 = Some(t),
                ("jkt" | "x5t#S256", None) => {
                    return Err(mismatch(format!("the token claim `cnf.{name}` is not a string")))
                }
                (other, _) => {
                    return Err(mismatch(format!(
                        "the token is bound by `cnf.{other}`, a confirmation method this server does not check"
                    )))
                }
            }
        }
        Ok(c)
    }

    pub fn is_bound(&self) -> bool {
        self.jkt.is_some() || self.x5t_s256.is_some()
    }
}

fn mismatch(why: impl Into<String>) -> TokenError {
    TokenError::new(Reason::TokenBindingMismatch, why)
}

fn required(why: impl Into<String>) -> TokenError {
    TokenError::new(Reason::TokenBindingRequired, why)
}

/// Check the sender constraint of a request whose token verified with
/// `claims`. `Err` is the denial (with its `DPoP-Nonce` when one is due).
pub fn check_binding(
    ctx: &BindingContext<'_>,
    req: &BindingRequest<'_, '_>,
    claims: &Value,
    verifier: &dyn SignatureVerifier,
    replay: &mut dyn ReplayStore,
) -> Result<Binding, Decision> {
    check_binding_with(
        ctx,
        req,
        claims,
        verifier,
        replay,
        &mut ProofKeys::default(),
    )
}

/// A denial of the check, with the `DPoP-Nonce` to send when one is due.
struct Refusal(TokenError, Option<String>);

impl From<Refusal> for Decision {
    fn from(Refusal(e, nonce): Refusal) -> Decision {
        let mut d = e.into_decision();
        if let Some(n) = nonce {
            d.reply_headers.push(("dpop-nonce".into(), n));
        }
        d
    }
}

/// [`check_binding`] with the proof headers a worker already checked
/// (`keys`, kept across its requests): the same decisions.
pub fn check_binding_with(
    ctx: &BindingContext<'_>,
    req: &BindingRequest<'_, '_>,
    claims: &Value,
    verifier: &dyn SignatureVerifier,
    replay: &mut dyn ReplayStore,
    keys: &mut ProofKeys,
) -> Result<Binding, Decision> {
    let plain = |e: TokenError| Refusal(e, None);
    let cnf = Confirmation::of(claims).map_err(plain)?;
    // Claims always come from a configured issuer; were it not found, the
    // default settings apply (DPoP off: a bound token is still refused).
    let unknown = IssuerConfig::default();
    let issuer = ctx.issuer_of(claims).unwrap_or(&unknown);
    let scheme = authorization_scheme(req.parts).unwrap_or(Scheme::Bearer);
    let mut binding = Binding {
        certificate: certificate_binding(ctx, req, issuer, &cnf).map_err(plain)?,
        ..Binding::default()
    };
    match cnf.jkt {
        None if scheme == Scheme::Dpop => {
            return Err(plain(mismatch(
                "the DPoP scheme needs a DPoP-bound token (`cnf.jkt`); send this token as `Authorization: Bearer`",
            ))
            .into())
        }
        None if issuer.dpop.mode == DpopMode::Required => {
            return Err(plain(required(format!(
                "issuer {} accepts only DPoP-bound tokens (dpop.mode \"required\"); obtain a DPoP-bound token",
                issuer.issuer
            )))
            .into())
        }
        None => {}
        Some(jkt) => {
            let proof = dpop_proof(ctx, req, issuer, jkt, scheme, verifier, keys).map_err(plain)?;
            binding.response_headers = nonce_check(ctx, issuer, &proof, req.now)?;
            record(ctx, issuer, &proof, req.now, replay).map_err(plain)?;
            binding.jkt = Some(proof.jkt);
        }
    }
    Ok(binding)
}

/// RFC 8705 §3: the client certificate's thumbprint equals `cnf.x5t#S256`.
fn certificate_binding(
    ctx: &BindingContext<'_>,
    req: &BindingRequest<'_, '_>,
    issuer: &IssuerConfig,
    cnf: &Confirmation<'_>,
) -> Result<Option<String>, TokenError> {
    let Some(bound) = cnf.x5t_s256 else {
        if issuer.certificate_binding == CertificateBinding::Required {
            return Err(required(format!(
                "issuer {} accepts only certificate-bound tokens (certificate_binding \"required\"); obtain one over mutual TLS",
                issuer.issuer
            )));
        }
        return Ok(None);
    };
    if issuer.certificate_binding == CertificateBinding::Off {
        return Err(mismatch(format!(
            "the token is certificate-bound (`cnf.x5t#S256`) and issuer {} does not accept certificate-bound tokens (certificate_binding \"off\")",
            issuer.issuer
        )));
    }
    let header = ctx.settings.certificate_source.header().unwrap_or("");
    let presented = client_thumbprint(
        ctx.settings,
        &req.connection,
        req.parts.header_values(header),
    )
    .ok_or_else(|| {
        mismatch("the token is certificate-bound (`cnf.x5t#S256`) and the request came without a client certificate; connect with the certificate the token was issued to")
    })?;
    if presented != bound {
        return Err(mismatch(
            "the token is bound to another client certificate (`cnf.x5t#S256`)",
        ));
    }
    Ok(Some(presented))
}

/// RFC 9449 §4.3 and §7: the request's one proof, checked on its own and
/// against the request, the token and the clock.
fn dpop_proof(
    ctx: &BindingContext<'_>,
    req: &BindingRequest<'_, '_>,
    issuer: &IssuerConfig,
    jkt: &str,
    scheme: Scheme,
    verifier: &dyn SignatureVerifier,
    keys: &mut ProofKeys,
) -> Result<Proof, TokenError> {
    let dpop: &DpopConfig = &issuer.dpop;
    if dpop.mode == DpopMode::Off {
        return Err(mismatch(format!(
            "the token is DPoP-bound (`cnf.jkt`) and issuer {} does not accept DPoP (dpop.mode \"off\")",
            issuer.issuer
        )));
    }
    if scheme != Scheme::Dpop {
        return Err(mismatch(
            "the token is DPoP-bound (`cnf.jkt`): send it as `Authorization: DPoP <token>` with a `DPoP` proof, not as a bearer token",
        ));
    }
    let mut proofs = req.parts.header_values("dpop");
    let proof = match (proofs.next(), proofs.next()) {
        (Some(p), None) => p,
        (None, _) => return Err(invalid("the request has no `DPoP` proof header")),
        (Some(_), Some(_)) => {
            return Err(invalid(
                "the request has more than one `DPoP` header; send exactly one proof",
            ))
        }
    };
    let proof = verify_proof_with(proof.trim(), &dpop.effective_algorithms(), verifier, keys)?;
    if proof.htm != req.parts.method {
        return Err(invalid("the DPoP proof `htm` is not the request's method"));
    }
    let external = ctx
        .base_url
        .and_then(|base| external_uri(base, ctx.base_path, req.parts.path))
        .ok_or_else(|| invalid("the request's external URI is unknown (fhir_base_url)"))?;
    if !same_target(&proof.htu, &external) {
        return Err(invalid(format!(
            "the DPoP proof `htu` is not this request's URI ({external}, without query)"
        )));
    }
    let oldest = req.now.saturating_sub(dpop.max_age_seconds);
    if proof.iat < oldest {
        return Err(invalid(format!(
            "the DPoP proof is too old (`iat` more than {} s ago); make a new proof for every request",
            dpop.max_age_seconds
        )));
    }
    if proof.iat > req.now.saturating_add(dpop.clock_skew_seconds) {
        return Err(invalid(
            "the DPoP proof was made in the future (`iat`); check the client's clock",
        ));
    }
    let token = extract_bearer(req.parts, ctx.token)
        .ok()
        .flatten()
        .ok_or_else(|| invalid("the access token could not be read"))?;
    let ath = keys.access_token_hash(&proof.jkt, &token.token);
    match &proof.ath {
        Some(a) if *a == ath => {}
        Some(_) => {
            return Err(invalid(
                "the DPoP proof `ath` is not the hash of this access token",
            ))
        }
        None => {
            return Err(invalid(
                "the DPoP proof has no `ath` (the access token's hash)",
            ))
        }
    }
    if proof.jkt != jkt {
        return Err(mismatch(
            "the DPoP proof is signed with another key than the one the token is bound to (`cnf.jkt`)",
        ));
    }
    Ok(proof)
}

/// RFC 9449 §8: with `dpop.nonce`, the proof carries a nonce this server
/// gave out. `Ok`: the response headers (a fresh `DPoP-Nonce` when the
/// bucket turned); `Err`: `use_dpop_nonce` with the nonce to use.
fn nonce_check(
    ctx: &BindingContext<'_>,
    issuer: &IssuerConfig,
    proof: &Proof,
    now: u64,
) -> Result<Vec<(String, String)>, Refusal> {
    if !issuer.dpop.nonce {
        return Ok(Vec::new());
    }
    let Some(keys) = ctx.nonce_keys() else {
        // Refused by the configuration check; fail closed all the same.
        return Err(Refusal(
            invalid("server nonces are not configured (sender_constraint.nonce_secret)"),
            None,
        ));
    };
    match keys.check(proof.nonce.as_deref(), now) {
        NonceCheck::Current => Ok(Vec::new()),
        NonceCheck::Renew(fresh) => Ok(vec![("dpop-nonce".into(), fresh)]),
        NonceCheck::Refused(fresh) => Err(Refusal(
            TokenError::new(
                Reason::UseDpopNonce,
                match proof.nonce {
                    None => "this server requires a nonce in DPoP proofs: make a new proof with the `DPoP-Nonce` given",
                    Some(_) => "the DPoP proof's nonce is not current: make a new proof with the `DPoP-Nonce` given",
                },
            ),
            Some(fresh),
        )),
    }
}

/// RFC 9449 §11.1: the proof is used once, across every worker, within
/// the window its `iat` is accepted in.
fn record(
    ctx: &BindingContext<'_>,
    issuer: &IssuerConfig,
    proof: &Proof,
    now: u64,
    replay: &mut dyn ReplayStore,
) -> Result<(), TokenError> {
    let expires_at = proof
        .iat
        .max(now)
        .saturating_add(issuer.dpop.replay_window_seconds());
    match record_once(
        replay,
        proof_key(&proof.jkt, &proof.jti),
        expires_at,
        now,
        ctx.settings.replay_cache_entries,
    ) {
        Seen::Fresh => Ok(()),
        Seen::Replayed => Err(TokenError::new(
            Reason::DpopProofReplayed,
            "the DPoP proof was already used (`jti`); make a new proof for every request",
        )),
        Seen::Full => Err(TokenError::new(
            Reason::ReplayCacheUnavailable,
            "the DPoP replay cache is full (sender_constraint.replay_cache_entries); retry shortly",
        )),
        Seen::Unavailable => Err(TokenError::new(
            Reason::ReplayCacheUnavailable,
            "the DPoP replay cache could not be updated; retry shortly",
        )),
    }
}
