//! Production implementations of the ports over the pure core. This is the
//! one place that adapts to the signatures of `crate::token`, `crate::engine`
//! and `crate::policy`.

use super::host::{Host, HttpCall};
use super::ports::{Engine, Pending, TokenPort, TokenStep};
use crate::config::Config;
use crate::decision::{Decision, Obligation, Reason};
use crate::fhir::RequestParts;
use serde_json::Value;
use std::rc::Rc;

/// The decision engine: classifier + policy.
#[derive(Debug, Default)]
pub struct CoreEngine;

impl Engine for CoreEngine {
    fn body_needed(&self, config: &Config, req: &RequestParts) -> bool {
        crate::fhir::body_needed(config, req)
    }

    fn decide(&self, config: &Config, req: &RequestParts, _claims: Option<&Value>) -> Decision {
        // TEMPORARY until `crate::engine::decide` lands on main.
        match crate::fhir::classify(config, req) {
            Err(e) => Decision::deny(Reason::InvalidRequest, e.message),
            Ok(it) => Decision::deny(
                Reason::UnsupportedClaims,
                "the policy engine is not part of this build",
            )
            .with_interaction(it),
        }
    }

    fn check_response(
        &self,
        _obligation: &Obligation,
        _response: &Value,
        _base_url: Option<&str>,
    ) -> Result<(), String> {
        // TEMPORARY until `crate::policy::check_response` lands on main.
        Err("response checks are not part of this build".into())
    }
}

/// Token handling over `crate::token`.
pub struct CoreTokens {
    config: Rc<Config>,
}

impl CoreTokens {
    pub fn new(config: Rc<Config>) -> CoreTokens {
        CoreTokens { config }
    }
}

impl TokenPort for CoreTokens {
    fn extract(&self, _config: &Config, req: &RequestParts) -> Result<Option<String>, Decision> {
        // TEMPORARY until `crate::token` bearer extraction lands on main.
        let values: Vec<&str> = req.header_values("authorization").collect();
        if values.len() > 1 {
            return Err(Decision::deny(
                Reason::MultipleCredentials,
                "send exactly one Authorization header",
            ));
        }
        Ok(values.first().and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_string())
                .filter(|t| !t.is_empty())
        }))
    }

    fn verify(&mut self, _host: &dyn Host, _token: &str, _now: u64) -> TokenStep {
        let _ = &self.config;
        TokenStep::Denied(Decision::deny(
            Reason::KeysUnavailable,
            "token verification is not part of this build",
        ))
    }

    fn call_done(
        &mut self,
        _host: &dyn Host,
        _pending: Pending,
        _token: &str,
        _status: Option<u16>,
        _body: &[u8],
        _now: u64,
    ) -> TokenStep {
        TokenStep::Denied(Decision::deny(
            Reason::KeysUnavailable,
            "token verification is not part of this build",
        ))
    }

    fn due_jwks_fetches(&mut self, _now: u64) -> Vec<(usize, HttpCall)> {
        Vec::new()
    }

    fn jwks_loaded(&mut self, _issuer: usize, _bytes: &[u8], _now: u64) -> Result<(), String> {
        Ok(())
    }

    fn jwks_failed(&mut self, _issuer: usize, _now: u64) {}

    fn fetched_issuers(&self) -> Vec<usize> {
        Vec::new()
    }
}
