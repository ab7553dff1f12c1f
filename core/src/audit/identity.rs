//! The verified identity facts of a token: what the audit record and the
//! upstream fact headers say about who is asking.

use crate::claims::ClaimsConfig;
use crate::token::binding::Confirmation;
use serde_json::Value;
use std::borrow::Cow;

/// The verified identity facts of a token (from its claims). Shared by the
/// audit record and the upstream fact headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub client_id: Option<String>,
    pub fhir_user: Option<String>,
    pub sub: Option<String>,
    pub iss: Option<String>,
    pub jti: Option<String>,
    pub patient: Option<String>,
    /// Space-delimited granted scopes.
    pub scopes: Option<String>,
    /// How the token is sender-constrained (`cnf`), as checked on every
    /// request: `dpop`, `mtls` or `dpop+mtls`; `None` for a bearer token.
    pub binding: Option<&'static str>,
    /// The thumbprint it is bound to: `cnf.jkt` (DPoP), else `cnf.x5t#S256`.
    pub binding_thumbprint: Option<String>,
}

fn str_claim(claims: &Value, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Identity {
    /// The facts of verified claims. The patient is the policy's own
    /// ([`ClaimsConfig::patient`], `base_url` = `fhir_base_url`): the
    /// forwarded `x-smart-patient` header and the audit record name the
    /// patient the decision used, or none.
    pub fn from_claims(names: &ClaimsConfig, base_url: Option<&str>, claims: &Value) -> Identity {
        let fhir_user = str_claim(claims, "fhirUser");
        let patient = names.patient(claims, base_url).ok().flatten();
        let scopes = match claims.get(&names.scope) {
            Some(Value::String(s)) => Some(s.split_whitespace().collect::<Vec<_>>().join(" ")),
            Some(Value::Array(a)) => Some(
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        }
        .filter(|s| !s.is_empty());
        let cnf = Confirmation::of(claims).unwrap_or_default();
        let binding = match (cnf.jkt.is_some(), cnf.x5t_s256.is_some()) {
            (true, true) => Some("dpop+mtls"),
            (true, false) => Some("dpop"),
            (false, true) => Some("mtls"),
            (false, false) => None,
        };
        Identity {
            binding,
            binding_thumbprint: cnf.jkt.or(cnf.x5t_s256).map(str::to_string),
            client_id: str_claim(claims, "client_id").or_else(|| str_claim(claims, "azp")),
            fhir_user,
            sub: str_claim(claims, "sub"),
            iss: str_claim(claims, "iss"),
            jti: str_claim(claims, "jti"),
            patient,
            scopes,
        }
    }

    /// The user: `fhirUser`, else `iss|sub` (borrowed unless both are
    /// joined: it is written into every audit record).
    pub fn user(&self) -> Option<Cow<'_, str>> {
        if let Some(u) = &self.fhir_user {
            return Some(Cow::Borrowed(u));
        }
        match (&self.iss, &self.sub) {
            (Some(i), Some(s)) => Some(Cow::Owned(format!("{i}|{s}"))),
            (None, Some(s)) => Some(Cow::Borrowed(s)),
            _ => None,
        }
    }
}
