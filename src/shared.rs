//! What the streams of one plugin configuration share within a worker VM:
//! the configuration, the token port and engine, the metrics, what was
//! derived from each token, and this VM's view of the shared key sets.

use crate::jwks_sync::JwksSync;
use crate::metrics::Metrics;
use crate::ports::{Engine, TokenPort};
use fhir_smart_authz_core::audit::{AuditEncoding, Identity};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::engine::TokenContext;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Everything the streams of one plugin configuration share (per VM).
pub struct Shared {
    pub config: Rc<Config>,
    pub tokens: RefCell<Box<dyn TokenPort>>,
    pub engine: Box<dyn Engine>,
    pub metrics: RefCell<Metrics>,
    /// How this configuration's audit record is written (see
    /// [`crate::audit_property::resolve_audit_encoding`]).
    pub audit_encoding: AuditEncoding,
    /// What is derived from a token's claims, kept per claims object (the
    /// token service hands out the same `Rc` for repeats of a cached token).
    tokens_seen: RefCell<TokensSeen>,
    /// Key sets shared with the other worker VMs, and the requests waiting
    /// for one.
    pub jwks: JwksSync,
    /// The DPoP replay cache's shard count in this process, found when the
    /// configuration was loaded (`replay::prepare`).
    pub replay_shards: Cell<Option<usize>>,
}

/// Claims object address → (the claims, kept alive so the address stays
/// theirs; what was derived from them).
type TokensSeen = HashMap<usize, (Rc<Value>, Rc<TokenFacts>)>;

/// Derived once per token: the identity facts, the fact headers and the
/// engine's token context.
pub struct TokenFacts {
    pub identity: Identity,
    /// The upstream fact headers: (name, value).
    pub headers: Vec<(String, String)>,
    pub context: Option<TokenContext>,
}

/// Claims objects remembered in [`Shared`]; when full it is cleared.
const TOKEN_FACTS_ENTRIES: usize = 256;

impl Shared {
    pub fn new(
        config: Rc<Config>,
        tokens: Box<dyn TokenPort>,
        engine: Box<dyn Engine>,
        audit_encoding: AuditEncoding,
    ) -> Rc<Shared> {
        let metrics = Metrics::new(&config.metrics.prefix);
        Rc::new(Shared {
            config,
            tokens: RefCell::new(tokens),
            engine,
            metrics: RefCell::new(metrics),
            audit_encoding,
            tokens_seen: RefCell::new(HashMap::new()),
            jwks: JwksSync::default(),
            replay_shards: Cell::new(None),
        })
    }

    /// The identity and token context of verified claims, derived once per
    /// claims object.
    pub fn token_facts(&self, claims: &Rc<Value>) -> Rc<TokenFacts> {
        let key = Rc::as_ptr(claims) as usize;
        if let Ok(seen) = self.tokens_seen.try_borrow() {
            if let Some((c, f)) = seen.get(&key) {
                if Rc::ptr_eq(c, claims) {
                    return f.clone();
                }
            }
        }
        let identity =
            Identity::from_claims(&self.config.claims, self.config.base.url.as_deref(), claims);
        let facts = Rc::new(TokenFacts {
            headers: self.config.upstream.fact_headers(&identity),
            identity,
            context: self.engine.token_context(&self.config, claims),
        });
        if let Ok(mut seen) = self.tokens_seen.try_borrow_mut() {
            if seen.len() >= TOKEN_FACTS_ENTRIES {
                seen.clear();
            }
            seen.insert(key, (claims.clone(), facts.clone()));
        }
        facts
    }

    /// Load the key set another VM published for `issuer`, if newer.
    pub fn pick_up_shared_jwks(
        &self,
        host: &dyn crate::host::Host,
        tokens: &mut dyn TokenPort,
        issuer: usize,
    ) -> bool {
        self.jwks.pick_up(host, &self.config, tokens, issuer)
    }

    /// A JWKS fetch for `issuer` ended (by the root or a request): counted,
    /// and the issuer's `jwks.refresh_failing` gauge set.
    pub fn jwks_fetched(&self, host: &dyn crate::host::Host, issuer: usize, ok: bool) {
        if let Ok(mut m) = self.metrics.try_borrow_mut() {
            m.inc(
                host,
                if ok {
                    "jwks_fetch.success"
                } else {
                    "jwks_fetch.failure"
                },
            );
            m.gauge(
                host,
                &crate::metrics::refresh_failing_gauge(issuer),
                u64::from(!ok),
            );
        }
    }

    pub fn count(&self, host: &dyn crate::host::Host, suffix: &'static str) {
        if let Ok(mut m) = self.metrics.try_borrow_mut() {
            m.inc(host, suffix);
        }
    }
}
