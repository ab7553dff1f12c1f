//! The decision record: what the filter, the audit record and the CLI consume.

use crate::fhir::{Interaction, InteractionKind};
use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

/// Stable machine reason codes (serialized snake_case). Never renumber or
/// rename: dashboards and pipelines match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    // --- allow ---
    /// Every required scope is granted.
    Allowed,
    /// A public endpoint (`metadata`, SMART discovery) by configuration.
    PublicEndpoint,

    // --- 400 invalid_request ---
    /// The request cannot be classified unambiguously (path, query, header, body).
    InvalidRequest,
    /// More than one credential, or a token in both header and query.
    MultipleCredentials,
    /// The body exceeds `max_body_bytes` (413).
    BodyTooLarge,

    // --- 401 ---
    /// No bearer token.
    MissingToken,
    /// Token malformed, bad signature, wrong issuer/audience, expired, ...
    InvalidToken,
    /// Token signature could not be checked because no keys are known yet.
    KeysUnavailable,
    /// Opaque token reported inactive by introspection.
    TokenInactive,
    /// Introspection endpoint unavailable (fail closed).
    IntrospectionUnavailable,
    /// The DPoP proof (RFC 9449 §4.3) is missing, malformed, or fails a check
    /// (signature, `htm`, `htu`, `iat`, `ath`, algorithm, key).
    InvalidDpopProof,
    /// The DPoP proof's `jti` was already used within its `iat` window.
    DpopProofReplayed,
    /// The issuer asks for server nonces and the proof has none, or a stale
    /// one (RFC 9449 §8): retry with the `DPoP-Nonce` given.
    UseDpopNonce,
    /// The token is sender-constrained (`cnf.jkt`, `cnf.x5t#S256`) and the
    /// request does not prove possession: another key or certificate, no
    /// certificate, the Bearer scheme for a DPoP-bound token, the DPoP scheme
    /// for an unbound token, or a binding this issuer does not accept.
    TokenBindingMismatch,
    /// The issuer requires sender-constrained tokens and this one is not bound.
    TokenBindingRequired,

    // --- 403 ---
    /// No granted scope covers the needed type and letters.
    InsufficientScope,
    /// A patient/ scope is needed but the token carries no patient context.
    NoPatientContext,
    /// The request reaches outside the context patient's compartment.
    PatientCompartmentViolation,
    /// A granular scope's query is not satisfied by the search.
    GranularScopeViolation,
    /// `_include` / `_revinclude` target not readable, or `*` form refused.
    IncludeNotPermitted,
    /// `_has` or chained parameter refused under patient/ scopes.
    ChainedSearchNotPermitted,
    /// The operation is not in the operations table (or refused by it).
    OperationNotPermitted,
    /// At least one batch/transaction entry is denied.
    BundleEntryDenied,
    /// The response resource failed an obligation check (compartment/granular).
    ResponseNotPermitted,
    /// The claims have a shape the filter does not understand (fail closed).
    UnsupportedClaims,
    /// The request could reveal, add or remove security labels the token
    /// may not see or change (`policy.labels`).
    SecurityLabelNotPermitted,

    // --- 404 ---
    /// A Bulk Data status or file URL that is no job of this client (or
    /// whose exported types its scopes no longer cover): the same answer as
    /// for a job that does not exist.
    BulkJobNotFound,

    // --- 429 ---
    /// The client has `bulk.max_active_per_client` exports running.
    ExportLimitReached,

    // --- 500 ---
    /// The gateway could not carry out an allowed decision (the host refused
    /// to set the narrowed request's `:path` or headers): never forwarded.
    InternalError,

    // --- 502 ---
    /// The FHIR server could not be consulted for a check the decision
    /// needs (the write pre-check): fail closed.
    UpstreamUnavailable,

    // --- 503 ---
    /// The DPoP replay cache shared by the workers is full (or could not be
    /// written): a proof cannot be checked for replay, so it is refused.
    ReplayCacheUnavailable,
}

impl Reason {
    /// Every reason, allows first: the filter defines a counter for each at
    /// start (`decision.<allow|deny>.<reason>`, at zero until it fires).
    pub const ALL: &'static [Reason] = &[
        Reason::Allowed,
        Reason::PublicEndpoint,
        Reason::InvalidRequest,
        Reason::MultipleCredentials,
        Reason::BodyTooLarge,
        Reason::MissingToken,
        Reason::InvalidToken,
        Reason::KeysUnavailable,
        Reason::TokenInactive,
        Reason::IntrospectionUnavailable,
        Reason::InsufficientScope,
        Reason::NoPatientContext,
        Reason::PatientCompartmentViolation,
        Reason::GranularScopeViolation,
        Reason::IncludeNotPermitted,
        Reason::ChainedSearchNotPermitted,
        Reason::OperationNotPermitted,
        Reason::BundleEntryDenied,
        Reason::ResponseNotPermitted,
        Reason::UnsupportedClaims,
        Reason::SecurityLabelNotPermitted,
        Reason::BulkJobNotFound,
        Reason::ExportLimitReached,
        Reason::InvalidDpopProof,
        Reason::DpopProofReplayed,
        Reason::UseDpopNonce,
        Reason::TokenBindingMismatch,
        Reason::TokenBindingRequired,
        Reason::ReplayCacheUnavailable,
        Reason::InternalError,
        Reason::UpstreamUnavailable,
    ];

    /// Whether requests are allowed with this reason (else denied).
    pub fn is_allow(self) -> bool {
        matches!(self, Reason::Allowed | Reason::PublicEndpoint)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::PublicEndpoint => "public_endpoint",
            Reason::InvalidRequest => "invalid_request",
            Reason::MultipleCredentials => "multiple_credentials",
            Reason::BodyTooLarge => "body_too_large",
            Reason::MissingToken => "missing_token",
            Reason::InvalidToken => "invalid_token",
            Reason::KeysUnavailable => "keys_unavailable",
            Reason::TokenInactive => "token_inactive",
            Reason::IntrospectionUnavailable => "introspection_unavailable",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::NoPatientContext => "no_patient_context",
            Reason::PatientCompartmentViolation => "patient_compartment_violation",
            Reason::GranularScopeViolation => "granular_scope_violation",
            Reason::IncludeNotPermitted => "include_not_permitted",
            Reason::ChainedSearchNotPermitted => "chained_search_not_permitted",
            Reason::OperationNotPermitted => "operation_not_permitted",
            Reason::BundleEntryDenied => "bundle_entry_denied",
            Reason::ResponseNotPermitted => "response_not_permitted",
            Reason::UnsupportedClaims => "unsupported_claims",
            Reason::SecurityLabelNotPermitted => "security_label_not_permitted",
            Reason::BulkJobNotFound => "bulk_job_not_found",
            Reason::ExportLimitReached => "export_limit_reached",
            Reason::InternalError => "internal_error",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::InvalidDpopProof => "invalid_dpop_proof",
            Reason::DpopProofReplayed => "dpop_proof_replayed",
            Reason::UseDpopNonce => "use_dpop_nonce",
            Reason::TokenBindingMismatch => "token_binding_mismatch",
            Reason::TokenBindingRequired => "token_binding_required",
            Reason::ReplayCacheUnavailable => "replay_cache_unavailable",
        }
    }

    /// Whether a token with more scopes could be allowed: only such a denial
    /// suggests scopes to the client. Another patient's record, a missing
    /// patient context, a granular restriction or a refused response stay
    /// refused whatever the client asks for (a hint would make it loop).
    pub fn more_scope_can_help(self) -> bool {
        matches!(
            self,
            Reason::InsufficientScope | Reason::OperationNotPermitted | Reason::BundleEntryDenied
        )
    }

    /// The RFC 6750 `error` code for the `WWW-Authenticate` header, if any.
    /// `None` for a missing token (RFC 6750 §3.1: no error code then) and allows.
    pub fn bearer_error(self) -> Option<&'static str> {
        match self {
            Reason::Allowed
            | Reason::PublicEndpoint
            | Reason::MissingToken
            | Reason::InternalError
            | Reason::UpstreamUnavailable
            | Reason::ReplayCacheUnavailable
            | Reason::BulkJobNotFound
            | Reason::ExportLimitReached => None,
            // The DPoP challenge carries these (RFC 9449 §7.1).
            Reason::InvalidDpopProof | Reason::DpopProofReplayed | Reason::UseDpopNonce => None,
            Reason::InvalidRequest | Reason::MultipleCredentials | Reason::BodyTooLarge => {
                Some("invalid_request")
            }
            Reason::InvalidToken
            | Reason::KeysUnavailable
            | Reason::TokenInactive
            | Reason::IntrospectionUnavailable
            | Reason::TokenBindingMismatch
            | Reason::TokenBindingRequired => Some("invalid_token"),
            _ => Some("insufficient_scope"),
        }
    }

    /// The `error` code of the DPoP challenge (RFC 9449 §7.1, §8), if any:
    /// the proof errors, else the Bearer code (`invalid_token`, ...).
    pub fn dpop_error(self) -> Option<&'static str> {
        match self {
            Reason::InvalidDpopProof | Reason::DpopProofReplayed => Some("invalid_dpop_proof"),
            Reason::UseDpopNonce => Some("use_dpop_nonce"),
            other => other.bearer_error(),
        }
    }
}

/// Something the filter must still do before the request is finally allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Obligation {
    /// The response resource must be in the Patient compartment of `patient`.
    CheckResponseCompartment {
        resource_type: String,
        patient: String,
    },
    /// The response resource must match one of the granular scope queries
    /// (each a `param=value` query string from a granted scope).
    CheckResponseGranular {
        resource_type: String,
        queries: Vec<String>,
    },
    /// Every resource of a page (a searchset Bundle) must be of a type the
    /// token may receive: search matches a type in `search`, included
    /// resources (`search.mode` = `include`) a type in `read` (`*` = any).
    CheckResponseTypes {
        search: Vec<String>,
        read: Vec<String>,
    },
    /// The response carries no resource of these types: the targets of an
    /// `_include` without a target type that the token may not read.
    CheckResponseTypesAbsent { resource_types: Vec<String> },
    /// Before the write is forwarded, the resource stored at
    /// `resource_type/id` must be in the Patient compartment of `patient`
    /// (the write pre-check, `policy.patient_update_by_id = "check_stored"`):
    /// the filter reads it through `upstream.cluster` and decides with
    /// `policy::check_stored`. `interaction` is the write (update, patch,
    /// delete); `entry` the Bundle entry it comes from.
    CheckStored {
        resource_type: String,
        id: String,
        patient: String,
        interaction: InteractionKind,
        #[serde(skip_serializing_if = "Option::is_none")]
        entry: Option<usize>,
    },
    /// The response carries nothing labelled (`meta.security`) with a label
    /// the token may not see (`policy.labels`): a single resource is
    /// refused, a Bundle's entries are withheld ([`crate::policy::filter_labels`]).
    FilterLabels(LabelFilter),
}

/// What [`Obligation::FilterLabels`] withholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelFilter {
    /// Labels (`system|code`) the token may not see on any type.
    pub hidden: Vec<String>,
    /// Labels of `hidden` the token may see on one type only (granular
    /// `_security` scopes): `(type, labels)`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cleared_on: Vec<(String, Vec<String>)>,
    /// The search was narrowed with `_security:not`: `Bundle.total` counts
    /// only what the token may see and stays; otherwise it is removed.
    pub narrowed: bool,
}

impl LabelFilter {
    /// The labels hidden on a resource of type `rtype`.
    pub fn hidden_on<'s>(&'s self, rtype: &'s str) -> impl Iterator<Item = &'s str> + 's {
        let cleared = self
            .cleared_on
            .iter()
            .find(|(t, _)| t == rtype)
            .map(|(_, l)| l.as_slice())
            .unwrap_or_default();
        self.hidden
            .iter()
            .filter(move |h| !cleared.contains(h))
            .map(String::as_str)
    }
}

/// What the label policy did for one request (`policy.labels`): the audit
/// record's `labels` (labels and counts, never data).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct LabelFacts {
    /// Labels the token could not see on this request (before break-glass).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<String>,
    /// The token's purposes of use (`system|code`), as BALP `purposeOfUse`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub purpose_of_use: Vec<String>,
    /// A break-glass purpose let the token see labelled data it otherwise
    /// could not (`hidden` is what it opened).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    /// Response entries withheld by the label filter (set once the response
    /// is filtered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withheld: Option<u64>,
    /// The hidden labels the withheld entries carried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub withheld_labels: Vec<String>,
}

impl Obligation {
    /// Whether it is checked before the request is forwarded (else on the response).
    pub fn is_precheck(&self) -> bool {
        matches!(self, Obligation::CheckStored { .. })
    }
}

/// A search parameter the filter adds in front of the request's query
/// (narrowing): `name=value`, the value as the server must read it (the
/// engine percent-encodes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedParam {
    pub name: String,
    pub value: String,
}

impl AddedParam {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        AddedParam {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// How the policy narrows an allowed request: what the engine turns into a
/// [`Rewrite`] of the request the upstream receives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Narrowing {
    /// Parameters added in front of the query, in order (AND constraints
    /// only); empty when the URL stays as sent.
    pub added: Vec<AddedParam>,
    /// The allow rests on search parameters the server must apply: it gets
    /// `Prefer: handling=strict`, so it refuses a parameter it does not
    /// support instead of ignoring it.
    pub strict: bool,
}

impl Narrowing {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && !self.strict
    }

    /// Adds `p` unless the same parameter (name and value) is already there.
    pub fn add(&mut self, p: AddedParam) {
        if !self.added.contains(&p) {
            self.added.push(p);
        }
    }

    pub fn merge(&mut self, other: Narrowing) {
        for p in other.added {
            self.add(p);
        }
        self.strict |= other.strict;
    }
}

/// What the filter changes in an allowed request before it goes upstream
/// (`decide` output `rewrite`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    /// The request target the upstream receives (`:path`, with values): the
    /// added parameters first, then the query as sent.
    pub path: String,
    /// Request headers the filter sets (lower-case name, value), e.g.
    /// `prefer: handling=strict`; an empty value removes the header;
    /// serialized as an object.
    #[serde(serialize_with = "as_object")]
    pub headers: Vec<(String, String)>,
    /// The names of the added parameters, in order (what the audit record
    /// shows: it never carries parameter values).
    pub added: Vec<String>,
}

/// `(name, value)` pairs as a JSON object.
fn as_object<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(n, v)| (n, v)))
}

impl Rewrite {
    /// The value of the header `name` (lower-case) the rewrite sets.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request headers it changes, in order: `(name, Some(value))` set,
    /// `(name, None)` removed (an empty value). `:path` first, unless it is
    /// `current_path` already.
    pub fn changes<'r>(
        &'r self,
        current_path: Option<&str>,
    ) -> impl Iterator<Item = (&'r str, Option<&'r str>)> {
        let path = (current_path != Some(self.path.as_str()))
            .then_some((":path", Some(self.path.as_str())));
        path.into_iter().chain(
            self.headers
                .iter()
                .map(|(n, v)| (n.as_str(), Some(v.as_str()).filter(|v| !v.is_empty()))),
        )
    }
}

/// What a Bulk Data request is to the job registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BulkAction {
    /// An allowed `$export`: the client's running exports are counted first,
    /// and a `202` answer's `Content-Location` becomes a job of this client.
    KickOff,
    /// A poll (or manifest read) of a status URL.
    Status,
    /// `DELETE` on a status URL.
    Cancel,
    /// The download of an output file under the gateway.
    File,
}

impl BulkAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::KickOff => "kick-off",
            BulkAction::Status => "status",
            BulkAction::Cancel => "cancel",
            BulkAction::File => "file",
        }
    }
}

/// A Bulk Data step the filter completes with its job registry (shared by
/// the worker VMs): the owner check of a job URL before it is forwarded, or
/// the registration of a kick-off's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkStep {
    pub action: BulkAction,
    /// The request's job URL relative to the base (empty for a kick-off).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// The job (its status URL relative to the base), once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// Why one batch/transaction entry was denied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryDenial {
    pub index: usize,
    pub reason: Reason,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub required_scopes: Vec<String>,
}

/// The outcome of deciding one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub decision: Verdict,
    pub status: u16,
    pub reason: Reason,
    /// Human-readable; says what was refused and how to get access. Never
    /// contains token contents.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interaction: Option<Interaction>,
    /// Scopes that would have sufficed (403) or that were used (allow).
    pub required_scopes: Vec<String>,
    pub obligations: Vec<Obligation>,
    /// Non-fatal findings, e.g. invalid scope strings that were ignored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
    /// For a denied batch/transaction: the failing entries; for an allowed
    /// batch: the entries answered in place (the others are forwarded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied_entries: Vec<EntryDenial>,
    /// An allow that holds only with these changes to the request (the
    /// policy's view; the engine derives [`Decision::rewrite`] from it).
    #[serde(skip)]
    pub narrowing: Option<Narrowing>,
    /// The changes the filter makes to the request before it goes upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
    /// What the label policy did (`policy.labels`), when it applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<LabelFacts>,
    /// Headers the filter adds to its reply (a denial) or to the upstream's
    /// response (an allow): `DPoP-Nonce` (RFC 9449 §8). Lower-case names.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "as_object")]
    pub reply_headers: Vec<(String, String)>,
    /// A Bulk Data step left to the job registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulk: Option<BulkStep>,
    /// `Retry-After` (seconds) of a 429.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// Configuration keys a decision message may name for the operator: the
/// audit record and the log keep them, the client's answer does not.
const CONFIG_TERMS: [&str; 10] = [
    "policy.",
    "token.",
    "upstream.",
    "responses.",
    "claims.",
    "issuers",
    "discovery.",
    "max_body_bytes",
    "fhir_base_url",
    "enforce",
];

/// A decision message as the client reads it (the OperationOutcome, the
/// `WWW-Authenticate` description): in FHIR and SMART terms, without the
/// configuration keys the audit record and the log carry. Messages name a
/// key only in a parenthesis, which is left out.
pub fn client_text(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('(') {
        let (before, from) = rest.split_at(open);
        let Some(close) = from.find(')') else { break };
        let (inside, after) = from.split_at(close + 1);
        if CONFIG_TERMS.iter().any(|t| inside.contains(t)) {
            out.push_str(before.strip_suffix(' ').unwrap_or(before));
        } else {
            out.push_str(before);
            out.push_str(inside);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

impl Decision {
    /// [`client_text`] of the message.
    pub fn client_message(&self) -> String {
        client_text(&self.message)
    }

    pub fn allow(reason: Reason, interaction: Interaction) -> Self {
        Decision {
            decision: Verdict::Allow,
            status: 200,
            reason,
            message: String::from("allowed"),
            interaction: Some(interaction),
            required_scopes: Vec::new(),
            obligations: Vec::new(),
            diagnostics: Vec::new(),
            denied_entries: Vec::new(),
            narrowing: None,
            rewrite: None,
            labels: None,
            reply_headers: Vec::new(),
            bulk: None,
            retry_after: None,
        }
    }

    /// A denial; the HTTP status follows from the reason.
    pub fn deny(reason: Reason, message: impl Into<String>) -> Self {
        Decision {
            decision: Verdict::Deny,
            status: deny_status(reason),
            reason,
            message: message.into(),
            interaction: None,
            required_scopes: Vec::new(),
            obligations: Vec::new(),
            diagnostics: Vec::new(),
            denied_entries: Vec::new(),
            narrowing: None,
            rewrite: None,
            labels: None,
            reply_headers: Vec::new(),
            bulk: None,
            retry_after: None,
        }
    }

    /// The scopes a denied client may ask for (`WWW-Authenticate` `scope`,
    /// the OperationOutcome's hint, `explain`): `required_scopes` when more
    /// scope can help ([`Reason::more_scope_can_help`]); for a Bundle, those
    /// of the entries more scope can help. Empty otherwise.
    pub fn scope_hint(&self) -> Vec<&str> {
        let mut hint: Vec<&str> = Vec::new();
        if self.reason == Reason::BundleEntryDenied {
            for e in self
                .denied_entries
                .iter()
                .filter(|e| e.reason.more_scope_can_help())
            {
                for s in &e.required_scopes {
                    if !hint.contains(&s.as_str()) {
                        hint.push(s);
                    }
                }
            }
        } else if self.reason.more_scope_can_help() {
            hint.extend(self.required_scopes.iter().map(String::as_str));
        }
        hint
    }

    pub fn with_interaction(mut self, interaction: Interaction) -> Self {
        self.interaction = Some(interaction);
        self
    }

    pub fn is_allow(&self) -> bool {
        self.decision == Verdict::Allow
    }

    /// An allowed batch some of whose entries are answered in place
    /// ([`crate::batch`]): only the others go to the server.
    pub fn is_partial_batch(&self) -> bool {
        self.is_allow() && !self.denied_entries.is_empty()
    }
}

/// HTTP status for a denial reason.
pub fn deny_status(reason: Reason) -> u16 {
    match reason {
        Reason::InvalidRequest | Reason::MultipleCredentials => 400,
        Reason::BodyTooLarge => 413,
        Reason::MissingToken
        | Reason::InvalidToken
        | Reason::KeysUnavailable
        | Reason::TokenInactive
        | Reason::IntrospectionUnavailable
        | Reason::InvalidDpopProof
        | Reason::DpopProofReplayed
        | Reason::UseDpopNonce
        | Reason::TokenBindingMismatch
        | Reason::TokenBindingRequired => 401,
        Reason::Allowed | Reason::PublicEndpoint => 200,
        Reason::InternalError => 500,
        Reason::UpstreamUnavailable => 502,
        Reason::ReplayCacheUnavailable => 503,
        Reason::BulkJobNotFound => 404,
        Reason::ExportLimitReached => 429,
        _ => 403,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_leaves_configuration_keys_to_the_audit_record() {
        for (message, want) in [
            ("chained parameter `subject.name` is refused under patient/ scopes (policy.allow_chained = false)",
             "chained parameter `subject.name` is refused under patient/ scopes"),
            ("operation $x at type level on Patient is not permitted (not in policy.operations)",
             "operation $x at type level on Patient is not permitted"),
            ("reading Observation by id under a patient/ scope is refused (policy.read_outside_request = deny); search with Observation?patient=1 instead",
             "reading Observation by id under a patient/ scope is refused; search with Observation?patient=1 instead"),
            ("Device is not in the Patient compartment; under patient/ scopes only the patient's own data and the shared reference types this server allows (policy.patient_scope_public_types) are reachable",
             "Device is not in the Patient compartment; under patient/ scopes only the patient's own data and the shared reference types this server allows are reachable"),
            ("servers read `x` differently: send Type/id or a URL under the server's base URL (fhir_base_url)",
             "servers read `x` differently: send Type/id or a URL under the server's base URL"),
            ("the request body is larger than 10 bytes (max_body_bytes) and cannot be checked",
             "the request body is larger than 10 bytes and cannot be checked"),
            ("the Observation must refer to Patient/1 (e.g. in Observation.subject)",
             "the Observation must refer to Patient/1 (e.g. in Observation.subject)"),
            ("unbalanced ( parenthesis", "unbalanced ( parenthesis"),
        ] {
            assert_eq!(client_text(message), want);
        }
    }
}

#[cfg(test)]
mod scope_hint_tests {
    use super::*;

    fn denied(reason: Reason, scopes: &[&str]) -> Decision {
        let mut d = Decision::deny(reason, "x");
        d.required_scopes = scopes.iter().map(|s| s.to_string()).collect();
        d
    }

    #[test]
    fn only_denials_more_scope_can_help_suggest_scopes() {
        let s = ["patient/Observation.r"];
        for (reason, hinted) in [
            (Reason::InsufficientScope, true),
            (Reason::OperationNotPermitted, true),
            (Reason::PatientCompartmentViolation, false),
            (Reason::NoPatientContext, false),
            (Reason::GranularScopeViolation, false),
            (Reason::IncludeNotPermitted, false),
            (Reason::ChainedSearchNotPermitted, false),
            (Reason::ResponseNotPermitted, false),
        ] {
            let want: Vec<&str> = if hinted { s.to_vec() } else { vec![] };
            assert_eq!(denied(reason, &s).scope_hint(), want, "{reason:?}");
        }
        let mut bundle = denied(
            Reason::BundleEntryDenied,
            &["user/Patient.d", "patient/Observation.r"],
        );
        bundle.denied_entries = vec![
            EntryDenial {
                index: 0,
                reason: Reason::InsufficientScope,
                message: "x".into(),
                required_scopes: vec!["user/Patient.d".into()],
            },
            EntryDenial {
                index: 1,
                reason: Reason::PatientCompartmentViolation,
                message: "x".into(),
                required_scopes: vec!["patient/Observation.r".into()],
            },
            EntryDenial {
                index: 2,
                reason: Reason::InsufficientScope,
                message: "x".into(),
                required_scopes: vec!["user/Patient.d".into()],
            },
        ];
        assert_eq!(bundle.scope_hint(), vec!["user/Patient.d"]);
    }
}

#[cfg(test)]
mod reason_list_tests {
    use super::*;

    /// `Reason::ALL` lists every variant once: `as_str` is exhaustive, so a
    /// variant missing from the list shows as a count mismatch here.
    #[test]
    fn all_reasons_are_listed_once() {
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        let from_source = include_str!("decision.rs")
            .lines()
            .filter(|l| l.trim_start().starts_with("Reason::") && l.contains("=> \""))
            .count();
        assert_eq!(n, from_source, "a Reason missing from Reason::ALL");
    }
}
