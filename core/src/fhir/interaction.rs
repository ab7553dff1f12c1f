use serde::Serialize;
use std::borrow::Cow;

/// What the classifier sees of an HTTP request. Header names are lower-case.
#[derive(Debug, Clone, Default)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// Raw request target as received (`:path`), including the query string.
    pub path: &'a str,
    /// Lower-cased header names with their values, in arrival order
    /// (borrowed where the caller keeps them, as the filter's stream does).
    pub headers: Cow<'a, [(String, String)]>,
    /// The request body when it was buffered; `None` when not (yet) available.
    pub body: Option<&'a [u8]>,
}

impl RequestParts<'_> {
    /// All values of a header (name compared case-insensitively).
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The FHIR RESTful interaction (http.html) a request performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InteractionKind {
    /// `GET [base]/metadata`
    Capabilities,
    /// `GET [base]/.well-known/smart-configuration`
    SmartConfiguration,
    Read,
    Vread,
    Update,
    Patch,
    Delete,
    Create,
    /// Type, system or compartment search (see [`Interaction::level`] / `compartment`).
    Search,
    /// History at instance, type or system level.
    History,
    /// `$operation` at system, type or instance level.
    Operation,
    Batch,
    Transaction,
    /// Continuation of a search via a server paging link (e.g. `?_getpages=`).
    Paging,
}

impl InteractionKind {
    /// Every kind, in declaration order.
    pub const ALL: [InteractionKind; 14] = [
        InteractionKind::Capabilities,
        InteractionKind::SmartConfiguration,
        InteractionKind::Read,
        InteractionKind::Vread,
        InteractionKind::Update,
        InteractionKind::Patch,
        InteractionKind::Delete,
        InteractionKind::Create,
        InteractionKind::Search,
        InteractionKind::History,
        InteractionKind::Operation,
        InteractionKind::Batch,
        InteractionKind::Transaction,
        InteractionKind::Paging,
    ];

    /// The serialized name (kebab-case, as serde writes it), without a
    /// serializer on the per-request path (the audit record).
    pub fn as_str(self) -> &'static str {
        match self {
            InteractionKind::Capabilities => "capabilities",
            InteractionKind::SmartConfiguration => "smart-configuration",
            InteractionKind::Read => "read",
            InteractionKind::Vread => "vread",
            InteractionKind::Update => "update",
            InteractionKind::Patch => "patch",
            InteractionKind::Delete => "delete",
            InteractionKind::Create => "create",
            InteractionKind::Search => "search",
            InteractionKind::History => "history",
            InteractionKind::Operation => "operation",
            InteractionKind::Batch => "batch",
            InteractionKind::Transaction => "transaction",
            InteractionKind::Paging => "paging",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    System,
    Type,
    Instance,
}

/// A compartment a search or operation is scoped to, e.g. `Patient/123`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compartment {
    pub resource_type: String,
    pub id: String,
}

/// One search parameter as sent: `name[:modifier]=v1,v2` (comma = OR).
/// Repeated parameters (AND) are separate entries in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchParam {
    /// Name without modifier; for chained params the full chain (`subject:Patient.name`
    /// has name `subject`, modifier `Patient`, chain `name`).
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modifier: Option<String>,
    /// The chain after the first `.`, if the parameter is chained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Decoded values, split on unescaped commas (OR). `\,` stays a literal comma.
    pub values: Vec<String>,
}

/// A classified FHIR REST interaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interaction {
    pub kind: InteractionKind,
    pub level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Compartment search (`Patient/123/Observation`, `Patient/123/*`) or instance operation base.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compartment: Option<Compartment>,
    /// `$name` for operations (with the `$`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Conditional create/update/patch/delete (criteria in `search`, or `If-None-Exist`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conditional: bool,
    /// Search / conditional criteria / operation parameters from the query
    /// (and from a `_search` form body), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<SearchParam>,
    /// Resource types a system-level search or operation targets (`_type`), or
    /// a compartment search's target types; empty = all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// Entries of a batch/transaction Bundle, each classified the same way.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<BundleEntry>,
    /// The resource in the body of a create/update (and of a bundle entry),
    /// or the document of a patch (a JSON Patch array or a FHIRPath Patch
    /// `Parameters`). Never serialized: bodies are not logged.
    #[serde(skip)]
    pub resource: Option<serde_json::Value>,
}

impl Interaction {
    pub fn new(kind: InteractionKind, level: Level) -> Self {
        Interaction {
            kind,
            level,
            resource_type: None,
            id: None,
            version: None,
            compartment: None,
            operation: None,
            conditional: false,
            search: Vec::new(),
            types: Vec::new(),
            entries: Vec::new(),
            resource: None,
        }
    }

    /// The search parameters with a given name (any modifier).
    pub fn params<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s SearchParam> + 's {
        self.search.iter().filter(move |p| p.name == name)
    }
}

/// One entry of a batch/transaction Bundle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BundleEntry {
    /// Zero-based index of the entry in `Bundle.entry`.
    pub index: usize,
    /// `request.method` + `request.url` as written in the entry.
    pub method: String,
    pub url: String,
    /// `entry.fullUrl`, which other entries' references may name. Not
    /// serialized.
    #[serde(skip)]
    pub full_url: Option<String>,
    pub interaction: Box<Interaction>,
}
