//! `policy.labels`: which security labels (`meta.security`) only some
//! tokens may see, where a token's clearance and purpose of use come from,
//! and how searches and responses are kept inside it. Absent = no label
//! policy: nothing changes.

use super::is_label;
use crate::config_error::ConfigError;
use serde::Deserialize;

/// The confidentiality and sensitivity labels restricted by default:
/// v3-Confidentiality R and V, and the DS4P sensitivity codes for substance
/// use (ETH, and the 42 CFR Part 2 policy), mental health (PSY), HIV and
/// sexual or domestic violence (SDV).
pub const DEFAULT_RESTRICTED_LABELS: &[&str] = &[
    "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R",
    "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|V",
    "http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH",
    "http://terminology.hl7.org/CodeSystem/v3-ActCode|42CFRPart2",
    "http://terminology.hl7.org/CodeSystem/v3-ActCode|PSY",
    "http://terminology.hl7.org/CodeSystem/v3-ActCode|HIV",
    "http://terminology.hl7.org/CodeSystem/v3-ActCode|SDV",
];

/// What happens to a response that carries entries the token may not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LabelResponse {
    /// Bundles: the entries are withheld, `Bundle.total` removed (unless the
    /// search was narrowed) and an OperationOutcome entry (search mode
    /// `outcome`) says so. A single resource is refused.
    #[default]
    Filter,
    /// The whole response is refused.
    Deny,
}

/// `policy.labels`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelPolicy {
    /// Labels (`system|code`) a token sees only when cleared for them (or
    /// through break-glass); everything else, unlabelled included, is normal.
    pub restricted: Vec<String>,
    /// A claim listing the labels the token is cleared for (`system|code`
    /// strings: an array or a space-delimited string).
    pub clearance_claim: Option<String>,
    /// A claim holding the token's purposes of use (`system|code` or a bare
    /// v3-ActReason code, or `{system, code}` objects; one or an array).
    pub purpose_of_use_claim: Option<String>,
    /// Purposes of use (`system|code`, e.g.
    /// `http://terminology.hl7.org/CodeSystem/v3-ActReason|BTG`) that see
    /// every label: break-glass. Needs `purpose_of_use_claim`.
    pub break_glass: Vec<String>,
    /// The FHIR server applies `_security:not=` (and refuses it under
    /// `Prefer: handling=strict` when it cannot): searches are narrowed with
    /// one `_security:not` per hidden label, so pages and counts hold only
    /// what the token may see. Otherwise searches are only filtered on the
    /// response, and counts that could reveal labelled data are refused.
    pub server_supports_security_not: bool,
    /// Responses with entries the token may not see: filtered or refused.
    pub response: LabelResponse,
    /// A scope (as granted, e.g. `system/security-labels.write`) that allows
    /// writes adding or removing labels.
    pub relabel_scope: Option<String>,
    /// A claim that, when `true`, allows writes adding or removing labels.
    pub relabel_claim: Option<String>,
    /// The server keeps a resource's stored `meta.security` on an update
    /// whose body carries none: such updates need no relabel permission.
    pub update_keeps_labels: bool,
}

impl Default for LabelPolicy {
    fn default() -> Self {
        LabelPolicy {
            restricted: DEFAULT_RESTRICTED_LABELS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            clearance_claim: None,
            purpose_of_use_claim: None,
            break_glass: Vec::new(),
            server_supports_security_not: false,
            response: LabelResponse::Filter,
            relabel_scope: None,
            relabel_claim: None,
            update_keeps_labels: false,
        }
    }
}

impl LabelPolicy {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        if self.restricted.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.restricted"),
                "must list at least one label (system|code), or remove policy.labels",
            ));
        }
        for (list, name) in [
            (&self.restricted, "restricted"),
            (&self.break_glass, "break_glass"),
        ] {
            for (i, l) in list.iter().enumerate() {
                if !is_label(l) {
                    return Err(ConfigError::new(
                        format!("{field}.{name}[{i}]"),
                        format!("{l:?} is not system|code (an absolute system URI, one `|`, a code without `,`, `$` or spaces), e.g. \"http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R\""),
                    ));
                }
            }
        }
        for (name, value) in [
            ("clearance_claim", &self.clearance_claim),
            ("purpose_of_use_claim", &self.purpose_of_use_claim),
            ("relabel_claim", &self.relabel_claim),
            ("relabel_scope", &self.relabel_scope),
        ] {
            if value
                .as_deref()
                .is_some_and(|v| v.trim().is_empty() || v.contains(' '))
            {
                return Err(ConfigError::new(
                    format!("{field}.{name}"),
                    "must be one name without spaces, or be left out",
                ));
            }
        }
        if !self.break_glass.is_empty() && self.purpose_of_use_claim.is_none() {
            return Err(ConfigError::new(
                format!("{field}.purpose_of_use_claim"),
                "break_glass needs the claim that carries the purpose of use (e.g. \"purpose_of_use\"); or set break_glass to []",
            ));
        }
        Ok(())
    }

    /// The claims a cached token must keep for this policy.
    pub fn claim_names(&self) -> impl Iterator<Item = &str> {
        [
            &self.clearance_claim,
            &self.purpose_of_use_claim,
            &self.relabel_claim,
        ]
        .into_iter()
        .filter_map(|c| c.as_deref())
    }
}
