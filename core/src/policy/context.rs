//! The authorization context of one verified token.

use super::labels::LabelClaims;
use crate::claims::ClaimsConfig;
use crate::decision::{Decision, Reason};
use crate::fhir::FhirBase;
use crate::scope::{ScopeSet, MAX_SCOPES};
use serde_json::Value;

/// Everything the policy needs from a token, parsed once per token.
#[derive(Debug, Clone, Default)]
pub struct AuthContext {
    pub scopes: ScopeSet,
    /// The launch patient id (FHIR id grammar), if any.
    pub patient: Option<String>,
    pub fhir_user: Option<String>,
    /// `client_id`, else `azp`.
    pub client_id: Option<String>,
    pub sub: Option<String>,
    pub iss: Option<String>,
    pub jti: Option<String>,
    /// Invalid scopes that were ignored, and similar findings.
    pub diagnostics: Vec<String>,
    /// Clearance, purposes of use and relabel permission (`policy.labels`;
    /// filled by [`crate::engine::token_context`]).
    pub labels: LabelClaims,
}

fn unsupported(message: String) -> Decision {
    Decision::deny(Reason::UnsupportedClaims, message)
}

fn str_claim(claims: &Value, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_string)
}

/// The non-empty items of `s.split(' ')`: the runs of non-space bytes
/// (a byte scan; the split runs once more when the scopes are parsed).
fn count_scopes(s: &str) -> usize {
    let mut prev = b' ';
    let mut n = 0;
    for &b in s.as_bytes() {
        if b != b' ' && prev == b' ' {
            n += 1;
        }
        prev = b;
    }
    n
}

impl AuthContext {
    /// Build from verified claims. Fails closed (`unsupported_claims`) on
    /// claim shapes the filter does not understand.
    pub fn from_claims(
        names: &ClaimsConfig,
        base: &FhirBase,
        claims: &Value,
    ) -> Result<AuthContext, Decision> {
        if !claims.is_object() {
            return Err(unsupported("the token claims are not a JSON object".into()));
        }
        let scope_claim = names.scope.as_str();
        let too_many = |n: usize| {
            unsupported(format!(
                "claim `{scope_claim}` carries {n} scopes, more than {MAX_SCOPES}: request fewer"
            ))
        };
        let (scopes, diagnostics) = match claims.get(scope_claim) {
            None | Some(Value::Null) => (ScopeSet::default(), Vec::new()),
            Some(Value::String(s)) => {
                let n = count_scopes(s);
                if n > MAX_SCOPES {
                    return Err(too_many(n));
                }
                ScopeSet::parse_str(s)
            }
            Some(Value::Array(items)) => {
                let mut strs = Vec::with_capacity(items.len());
                for it in items {
                    match it {
                        Value::String(s) => strs.push(s.as_str()),
                        _ => {
                            return Err(unsupported(format!(
                                "claim `{scope_claim}` must be a space-delimited string or an array of strings; it holds a non-string item"
                            )))
                        }
                    }
                }
                let n: usize = strs.iter().map(|s| count_scopes(s)).sum();
                if n > MAX_SCOPES {
                    return Err(too_many(n));
                }
                ScopeSet::parse(strs.iter().flat_map(|s| s.split(' ')))
            }
            Some(_) => {
                return Err(unsupported(format!(
                    "claim `{scope_claim}` must be a space-delimited string or an array of strings"
                )))
            }
        };
        let patient = names
            .patient(claims, base.url.as_deref())
            .map_err(unsupported)?;
        let fhir_user = match claims.get("fhirUser") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(unsupported("claim `fhirUser` must be a string".into())),
        };
        Ok(AuthContext {
            scopes,
            patient,
            fhir_user,
            client_id: str_claim(claims, "client_id").or_else(|| str_claim(claims, "azp")),
            sub: str_claim(claims, "sub"),
            iss: str_claim(claims, "iss"),
            jti: str_claim(claims, "jti"),
            diagnostics,
            labels: LabelClaims::default(),
        })
    }

    /// A context from a scope string and an optional patient (tests, tools).
    pub fn from_scopes(scopes: &str, patient: Option<&str>) -> AuthContext {
        let (scopes, diagnostics) = ScopeSet::parse_str(scopes);
        AuthContext {
            scopes,
            patient: patient.map(str::to_string),
            diagnostics,
            ..AuthContext::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_scopes_counts_what_split_yields() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "  a  b ",
            "a\tb c",
            "a  b\u{a0}c",
            "x y z",
        ] {
            let split = s.split(' ').filter(|x| !x.is_empty()).count();
            assert_eq!(count_scopes(s), split, "{s:?}");
        }
    }
    use serde_json::json;

    use crate::config::Config;

    fn cfg(json: &str) -> Config {
        Config::from_json(json.as_bytes()).unwrap()
    }

    fn from_claims(c: &Config, claims: &Value) -> Result<AuthContext, Decision> {
        AuthContext::from_claims(&c.claims, &c.base, claims)
    }

    #[test]
    fn claim_shapes() {
        let c = cfg("{}");
        let ok = from_claims(
            &c,
            &json!({"scope": "patient/Observation.rs openid bogus", "patient": "123"}),
        )
        .unwrap();
        assert_eq!(ok.patient.as_deref(), Some("123"));
        assert_eq!(ok.scopes.scopes.len(), 1);
        assert_eq!(ok.diagnostics.len(), 1);
        let arr = from_claims(
            &c,
            &json!({"scope": ["patient/Observation.rs", "user/Patient.r"]}),
        )
        .unwrap();
        assert_eq!(arr.scopes.scopes.len(), 2);
        for bad in [
            json!({"scope": 5}),
            json!({"scope": {"a": 1}}),
            json!({"scope": ["a", 1]}),
            json!({"scope": "user/*.rs", "patient": 123}),
            json!({"scope": "user/*.rs", "patient": "a/b"}),
            json!("not an object"),
        ] {
            let e = from_claims(&c, &bad).unwrap_err();
            assert_eq!(e.reason, Reason::UnsupportedClaims, "{bad}");
            assert_eq!(e.status, 403);
        }
        let scp = cfg(r#"{"claims":{"scope":"scp"}}"#);
        let s = from_claims(&scp, &json!({"scp": ["user/*.rs"], "scope": "bogus"})).unwrap();
        assert_eq!(s.scopes.scopes.len(), 1);
        assert!(s.diagnostics.is_empty());
    }

    #[test]
    fn fhir_user_patient() {
        let c =
            cfg(r#"{"fhir_base_url":"https://h/fhir","claims":{"patient_from_fhir_user":true}}"#);
        for (fu, want) in [
            ("Patient/9", Some("9")),
            ("https://h/fhir/Patient/9", Some("9")),
            ("https://evil/fhir/Patient/9", None),
            ("Practitioner/9", None),
            ("Patient/9/x", None),
        ] {
            let ctx = from_claims(&c, &json!({"fhirUser": fu})).unwrap();
            assert_eq!(ctx.patient.as_deref(), want, "{fu}");
        }
        let off = cfg("{}");
        let ctx = from_claims(&off, &json!({"fhirUser": "Patient/9"})).unwrap();
        assert_eq!(ctx.patient, None);
    }
}
