//! SMART App Launch 2.2 scope grammar (v1 and v2, granular). Pure.
//!
//! Clinical scopes are `(patient|user|system)/(Type|*).(perms)[?query]`:
//! v2 permissions are a non-empty subsequence of `cruds` (in that order, no
//! repeats); v1 `read`/`write`/`*` map to `rs`/`cud`/`cruds`. A granular v2
//! scope carries a query (`param=value[&param=value]`) and is only valid with
//! v2 letters. `openid`, `fhirUser`, `profile`, `launch`, `launch/...`,
//! `offline_access`, `online_access` are recognised and grant no access.
//! Anything else is invalid: ignored (never widens access) and reported.

use std::collections::HashMap;
use std::fmt;

/// The most scopes a token may carry: every request is decided against
/// each of them (and a Bundle's every entry), so this bounds the cost of a
/// decision together with `fhir::MAX_BUNDLE_ENTRIES`. Tokens with more are
/// refused (`unsupported_claims`), never truncated.
pub const MAX_SCOPES: usize = 256;

/// The scope context: whose data the scope speaks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeContext {
    Patient,
    User,
    System,
}

impl ScopeContext {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeContext::Patient => "patient",
            ScopeContext::User => "user",
            ScopeContext::System => "system",
        }
    }
}

/// A set of SMART v2 permission letters (`c r u d s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perms(u8);

impl Perms {
    pub const NONE: Perms = Perms(0);
    pub const C: Perms = Perms(1);
    pub const R: Perms = Perms(2);
    pub const U: Perms = Perms(4);
    pub const D: Perms = Perms(8);
    pub const S: Perms = Perms(16);
    pub const ALL: Perms = Perms(31);
    const ORDER: [(char, Perms); 5] = [
        ('c', Perms::C),
        ('r', Perms::R),
        ('u', Perms::U),
        ('d', Perms::D),
        ('s', Perms::S),
    ];

    /// Parse v2 letters: non-empty, each of `cruds` at most once, in order.
    pub fn parse_v2(s: &str) -> Option<Perms> {
        if s.is_empty() {
            return None;
        }
        let mut bits = 0u8;
        let mut next = 0usize;
        for ch in s.chars() {
            let pos = Perms::ORDER.iter().position(|(c, _)| *c == ch)?;
            if pos < next {
                return None;
            }
            bits |= Perms::ORDER.get(pos).map(|(_, p)| p.0).unwrap_or(0);
            next = pos + 1;
        }
        Some(Perms(bits))
    }

    /// Parse letters for configuration: like v2 but tolerant of order.
    pub fn parse_any_order(s: &str) -> Option<Perms> {
        let mut bits = 0u8;
        for ch in s.chars() {
            let (_, p) = Perms::ORDER.iter().find(|(c, _)| *c == ch)?;
            bits |= p.0;
        }
        if bits == 0 {
            None
        } else {
            Some(Perms(bits))
        }
    }

    pub fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn intersects(self, other: Perms) -> bool {
        self.0 & other.0 != 0
    }
    pub fn union(self, other: Perms) -> Perms {
        Perms(self.0 | other.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The single letters in this set, in `cruds` order.
    pub fn letters(self) -> impl Iterator<Item = Perms> {
        Perms::ORDER
            .into_iter()
            .filter(move |(_, p)| self.contains(*p))
            .map(|(_, p)| p)
    }
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (c, p) in Perms::ORDER {
            if self.contains(p) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One `name=value` restriction of a granular scope (percent-decoded).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryParam {
    pub name: String,
    pub value: String,
}

/// A parsed clinical (resource) scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceScope {
    pub context: ScopeContext,
    /// `None` = `*` (all types).
    pub resource_type: Option<String>,
    pub perms: Perms,
    /// Granular restriction (AND of params); empty = not granular.
    pub query: Vec<QueryParam>,
    /// The query exactly as written after `?` (empty if none).
    pub raw_query: String,
}

impl ResourceScope {
    pub fn is_granular(&self) -> bool {
        !self.query.is_empty()
    }
    /// Canonical v2 rendering, e.g. `patient/Observation.rs`.
    pub fn canonical(&self) -> String {
        render(
            self.context,
            self.resource_type.as_deref().unwrap_or("*"),
            self.perms,
            &self.raw_query,
        )
    }
}

/// Render a canonical v2 scope string.
pub fn render(context: ScopeContext, resource_type: &str, perms: Perms, query: &str) -> String {
    // Pushed piece by piece, not `format!`: every scope of a fresh token is
    // rendered once (de-duplication in `ScopeSet::insert`).
    let ctx = context.as_str();
    let mut out = String::with_capacity(ctx.len() + resource_type.len() + query.len() + 8);
    out.push_str(ctx);
    out.push('/');
    out.push_str(resource_type);
    out.push('.');
    out.extend(
        Perms::ORDER
            .into_iter()
            .filter(|(_, p)| perms.contains(*p))
            .map(|(c, _)| c),
    );
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A scope token after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Resource(ResourceScope),
    /// Recognised, grants no data access (`openid`, `launch/patient`, ...).
    NoAccess(String),
}

/// Whether `s` looks like an R4 resource type name (`[A-Z][A-Za-z]*`).
pub fn is_type_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphabetic())
        && s.len() <= 64
}

/// Parse one scope string. `Err` says why it is invalid.
pub fn parse_scope(s: &str) -> Result<Scope, String> {
    match s {
        "openid" | "fhirUser" | "profile" | "launch" | "offline_access" | "online_access" => {
            return Ok(Scope::NoAccess(s.to_string()))
        }
        _ => {}
    }
    if let Some(rest) = s.strip_prefix("launch/") {
        if !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Ok(Scope::NoAccess(s.to_string()));
        }
        return Err(format!("invalid launch scope {s:?}"));
    }
    let (context, rest) = if let Some(r) = s.strip_prefix("patient/") {
        (ScopeContext::Patient, r)
    } else if let Some(r) = s.strip_prefix("user/") {
        (ScopeContext::User, r)
    } else if let Some(r) = s.strip_prefix("system/") {
        (ScopeContext::System, r)
    } else {
        return Err(format!(
            "unrecognised scope {s:?} (expected patient/, user/ or system/ clinical scope or a launch/identity scope)"
        ));
    };
    parse_resource_scope(s, context, rest).map(Scope::Resource)
}

/// `(Type|*).(perms)[?query]` after the context of clinical scope `s`.
fn parse_resource_scope(
    s: &str,
    context: ScopeContext,
    rest: &str,
) -> Result<ResourceScope, String> {
    let (body, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (rtype, perm_str) = body
        .split_once('.')
        .ok_or_else(|| format!("scope {s:?} lacks `.permissions` (e.g. `.rs`)"))?;
    let resource_type = if rtype == "*" {
        None
    } else if crate::fhir::resource_types::is_resource_type(rtype) {
        Some(rtype.to_string())
    } else {
        return Err(format!(
            "scope {s:?} names {rtype:?}, which is not an R4 resource type (types are case-sensitive)"
        ));
    };
    let (perms, v2) = parse_permissions(s, perm_str)?;
    let (params, raw_query) = match query {
        None => (Vec::new(), String::new()),
        Some(_) if !v2 => {
            return Err(format!(
                "scope {s:?}: granular queries need v2 permission letters (e.g. `.rs?...`)"
            ))
        }
        Some(q) => (parse_query(s, q)?, q.to_string()),
    };
    Ok(ResourceScope {
        context,
        resource_type,
        perms,
        query: params,
        raw_query,
    })
}

/// v1 `read`/`write`/`*` or v2 letters; `true` for v2.
fn parse_permissions(s: &str, perm_str: &str) -> Result<(Perms, bool), String> {
    Ok(match perm_str {
        "read" => (Perms::R.union(Perms::S), false),
        "write" => (Perms::C.union(Perms::U).union(Perms::D), false),
        "*" => (Perms::ALL, false),
        other => match Perms::parse_v2(other) {
            Some(p) => (p, true),
            None => {
                return Err(format!(
                    "scope {s:?} has invalid permissions {other:?} (use a subset of `cruds` in that order, or v1 read/write/*)"
                ))
            }
        },
    })
}

/// A granular scope's `name=value[&name=value]` query, percent-decoded
/// (`+` stays a plus sign). `s` names the scope in errors.
pub(crate) fn parse_query(s: &str, q: &str) -> Result<Vec<QueryParam>, String> {
    if q.is_empty() {
        return Err(format!("scope {s:?} has an empty query"));
    }
    let mut params = Vec::new();
    for part in q.split('&') {
        let (n, v) = part
            .split_once('=')
            .ok_or_else(|| format!("scope {s:?}: query part {part:?} is not name=value"))?;
        let name = decode(n);
        let value = decode(v);
        if name.is_empty() || value.is_empty() {
            return Err(format!(
                "scope {s:?}: query part {part:?} has an empty name or value"
            ));
        }
        params.push(QueryParam { name, value });
    }
    Ok(params)
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Index of granted clinical scopes for fast lookup.
#[derive(Debug, Clone, Default)]
pub struct ScopeSet {
    /// All valid clinical scopes in the order given.
    pub scopes: Vec<ResourceScope>,
    /// Recognised non-access scopes (`openid`, `launch/patient`, ...).
    pub other: Vec<String>,
    /// Per context (index = ScopeContext as usize): letters on `*`.
    wildcard: [Perms; 3],
    /// Per context: letters per named type (non-granular scopes).
    typed: [HashMap<String, Perms>; 3],
    /// Indices into `scopes` of granular ones.
    granular: Vec<usize>,
}

/// Up to this many distinct scopes, a repeat is found by a scan (no
/// rendering, no allocation: tokens carry a handful); beyond, through a map
/// of canonical forms, so de-duplication stays linear.
const SCAN_DISTINCT: usize = 16;

/// The canonical forms of the distinct scopes (the value is unused; the map
/// type is the one of `ScopeSet::typed`), built once past [`SCAN_DISTINCT`].
type Seen = HashMap<String, Perms>;

fn ctx_index(c: ScopeContext) -> usize {
    match c {
        ScopeContext::Patient => 0,
        ScopeContext::User => 1,
        ScopeContext::System => 2,
    }
}

impl ScopeSet {
    /// Parse scope strings; invalid ones are ignored and described in the
    /// returned diagnostics.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> (ScopeSet, Vec<String>) {
        let mut set = ScopeSet::default();
        let mut diags = Vec::new();
        let mut seen: Option<Seen> = None;
        for raw in items {
            if raw.is_empty() {
                continue;
            }
            match parse_scope(raw) {
                Ok(Scope::NoAccess(s)) => set.other.push(s),
                Ok(Scope::Resource(r)) => {
                    if !set.is_repeat(&r, &mut seen) {
                        set.insert(r);
                    }
                }
                Err(e) => diags.push(format!("ignored invalid scope: {e}")),
            }
        }
        (set, diags)
    }

    /// Parse a space-delimited scope string.
    pub fn parse_str(s: &str) -> (ScopeSet, Vec<String>) {
        ScopeSet::parse(s.split(' '))
    }

    /// Whether `r` equals a scope already in the set (the same canonical
    /// form: equal scopes render equally and vice versa). Records `r` in
    /// `seen` when `seen` is in use.
    fn is_repeat(&self, r: &ResourceScope, seen: &mut Option<Seen>) -> bool {
        if seen.is_none() && self.scopes.len() < SCAN_DISTINCT {
            return self.scopes.iter().any(|s| s == r);
        }
        let seen = seen.get_or_insert_with(|| {
            let mut built = Seen::with_capacity(2 * SCAN_DISTINCT);
            for s in &self.scopes {
                built.insert(s.canonical(), s.perms);
            }
            built
        });
        seen.insert(r.canonical(), r.perms).is_some()
    }

    /// Add a scope that is not in the set yet.
    fn insert(&mut self, r: ResourceScope) {
        let ci = ctx_index(r.context);
        if r.is_granular() {
            self.granular.push(self.scopes.len());
        } else {
            match &r.resource_type {
                None => {
                    if let Some(w) = self.wildcard.get_mut(ci) {
                        *w = w.union(r.perms);
                    }
                }
                Some(t) => {
                    if let Some(m) = self.typed.get_mut(ci) {
                        if m.capacity() == 0 {
                            // Room for a typical token's types at once, not
                            // grown (and rehashed) twice on the way.
                            m.reserve(7);
                        }
                        let e = m.entry(t.clone()).or_insert(Perms::NONE);
                        *e = e.union(r.perms);
                    }
                }
            }
        }
        self.scopes.push(r);
    }

    /// Letters granted (non-granular) in `context` on `resource_type`
    /// (`"*"` asks for the wildcard grant only).
    pub fn perms(&self, context: ScopeContext, resource_type: &str) -> Perms {
        let ci = ctx_index(context);
        let w = self.wildcard.get(ci).copied().unwrap_or_default();
        if resource_type == "*" {
            return w;
        }
        let t = self
            .typed
            .get(ci)
            .and_then(|m| m.get(resource_type))
            .copied()
            .unwrap_or_default();
        w.union(t)
    }

    /// Non-granular grant of all `letters` on the type in the context.
    pub fn grants(&self, context: ScopeContext, resource_type: &str, letters: Perms) -> bool {
        self.perms(context, resource_type).contains(letters)
    }

    /// Granular scopes in `context` covering `letters` on the type.
    pub fn granular<'s>(
        &'s self,
        context: ScopeContext,
        resource_type: &'s str,
        letters: Perms,
    ) -> impl Iterator<Item = &'s ResourceScope> + 's {
        self.granular
            .iter()
            .filter_map(|i| self.scopes.get(*i))
            .filter(move |s| {
                s.context == context
                    && s.perms.contains(letters)
                    && match &s.resource_type {
                        None => true,
                        Some(t) => resource_type != "*" && t == resource_type,
                    }
            })
    }

    pub fn has_context(&self, context: ScopeContext) -> bool {
        self.scopes.iter().any(|s| s.context == context)
    }

    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(s: &str) -> ResourceScope {
        match parse_scope(s) {
            Ok(Scope::Resource(r)) => r,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn repeats_are_dropped_by_scan_and_by_map() {
        // Few scopes (the scan) and many (the map of canonical forms, built past
        // SCAN_DISTINCT): a repeat in any spelling of the same canonical
        // scope is kept once, in first-seen order.
        for n in [3usize, SCAN_DISTINCT, 40] {
            let types = crate::fhir::resource_types::RESOURCE_TYPES;
            let mut items = Vec::new();
            for t in types.iter().take(n) {
                items.push(format!("patient/{t}.rs"));
                items.push(format!("user/{t}.rs?category=a"));
            }
            for t in types.iter().take(n).rev() {
                items.push(format!("patient/{t}.read"));
                items.push(format!("user/{t}.rs?category=a"));
                items.push(format!("user/{t}.rs?category=b"));
            }
            let (set, diags) = ScopeSet::parse(items.iter().map(String::as_str));
            assert!(diags.is_empty(), "{diags:?}");
            assert_eq!(set.scopes.len(), 3 * n);
            let canon: Vec<String> = set.scopes.iter().map(ResourceScope::canonical).collect();
            let mut unique = canon.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), canon.len());
            assert_eq!(
                canon.first().map(String::as_str),
                Some(&*format!("patient/{}.rs", types[0]))
            );
            assert_eq!(set.granular.len(), 2 * n);
        }
    }

    #[test]
    fn v2_letters() {
        for (s, ok) in [
            ("cruds", Some("cruds")),
            ("rs", Some("rs")),
            ("cud", Some("cud")),
            ("s", Some("s")),
            ("sr", None),
            ("rr", None),
            ("", None),
            ("x", None),
            ("crudss", None),
        ] {
            assert_eq!(
                Perms::parse_v2(s).map(|p| p.to_string()),
                ok.map(String::from),
                "{s}"
            );
        }
    }

    #[test]
    fn parse_table() {
        for (input, canonical) in [
            ("patient/Observation.rs", Some("patient/Observation.rs")),
            ("patient/Observation.read", Some("patient/Observation.rs")),
            ("user/*.write", Some("user/*.cud")),
            ("system/*.*", Some("system/*.cruds")),
            ("user/Patient.cruds", Some("user/Patient.cruds")),
            (
                "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
                Some("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),
            ),
            ("patient/Observation.read?category=x", None),
            ("patient/Observation.rs?", None),
            ("patient/Observation.rs?category", None),
            ("patient/observation.rs", None),
            ("patient/Foo.rs", None),
            ("patient/Observation", None),
            ("patient/Observation.sr", None),
            ("patient/Observation.rr", None),
            ("admin/Observation.rs", None),
            ("Observation.rs", None),
            ("patient/*.", None),
        ] {
            let got = parse_scope(input);
            match canonical {
                Some(c) => assert_eq!(res(input).canonical(), c, "{input}"),
                None => assert!(got.is_err(), "{input}: {got:?}"),
            }
        }
    }

    #[test]
    fn granular_params() {
        let r = res("patient/Observation.rs?category=a%7Cb&code=x");
        assert_eq!(
            r.query,
            vec![
                QueryParam {
                    name: "category".into(),
                    value: "a|b".into()
                },
                QueryParam {
                    name: "code".into(),
                    value: "x".into()
                }
            ]
        );
    }

    #[test]
    fn no_access_scopes() {
        for s in [
            "openid",
            "fhirUser",
            "launch",
            "launch/patient",
            "launch/encounter",
            "offline_access",
            "online_access",
        ] {
            assert!(matches!(parse_scope(s), Ok(Scope::NoAccess(_))), "{s}");
        }
    }

    #[test]
    fn set_union_and_lookup() {
        let (set, diags) = ScopeSet::parse_str(
            "patient/Observation.r patient/Observation.s user/*.read bogus openid",
        );
        assert_eq!(diags.len(), 1);
        assert!(set.grants(
            ScopeContext::Patient,
            "Observation",
            Perms::R.union(Perms::S)
        ));
        assert!(!set.grants(ScopeContext::Patient, "Condition", Perms::R));
        assert!(set.grants(ScopeContext::User, "Condition", Perms::R));
        assert!(!set.grants(ScopeContext::User, "Condition", Perms::C));
        assert!(!set.grants(ScopeContext::System, "Condition", Perms::R));
        assert_eq!(set.other, vec!["openid".to_string()]);
    }
}
