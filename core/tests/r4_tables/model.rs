//! What the generators need of the SearchParameters: per type, each parameter with its value type, targets and paths.

use super::*;

/// One (type, code) parameter after applying the R4 definitions.
#[derive(Clone)]
pub(crate) struct TypeParam {
    pub(crate) kind: String,
    /// Target types, sorted by name (narrowed by `resolve() is X`).
    pub(crate) targets: Vec<String>,
    /// The expression's parts rooted at this type (`Type.a.b...`).
    pub(crate) parts: Vec<String>,
}

pub(crate) struct Model {
    /// type → code → parameter.
    pub(crate) types: BTreeMap<String, BTreeMap<String, TypeParam>>,
    /// code → (type, DomainResource only).
    pub(crate) common: BTreeMap<String, (String, bool)>,
}

/// The parts of an expression that apply to `rtype`: `Type.x`, `(Type.x as T)`.
pub(crate) fn parts_for(expression: &str, rtype: &str) -> Vec<String> {
    expression
        .split('|')
        .map(str::trim)
        .filter(|p| {
            let p = p.trim_start_matches('(');
            p == rtype || p.strip_prefix(rtype).is_some_and(|r| r.starts_with('.'))
        })
        .map(str::to_string)
        .collect()
}

/// `X` of a part ending in `.where(resolve() is X)`.
pub(crate) fn resolve_is(part: &str) -> Option<&str> {
    let (_, rest) = part.rsplit_once(".where(resolve() is ")?;
    rest.strip_suffix(')')
}

pub(crate) fn build_model(params: &[SpecParam]) -> Model {
    let known: BTreeSet<&str> = RESOURCE_TYPES.iter().copied().collect();
    let mut types: BTreeMap<String, BTreeMap<String, TypeParam>> = BTreeMap::new();
    let mut common = BTreeMap::new();
    for sp in params {
        for t in &sp.target {
            assert!(
                known.contains(t.as_str()),
                "{}: target {t} is not in RESOURCE_TYPES",
                sp.id
            );
        }
        for base in &sp.base {
            if base == "Resource" || base == "DomainResource" {
                let prev =
                    common.insert(sp.code.clone(), (sp.kind.clone(), base == "DomainResource"));
                assert!(
                    prev.is_none(),
                    "{}: common parameter {} twice",
                    sp.id,
                    sp.code
                );
                continue;
            }
            assert!(
                known.contains(base.as_str()),
                "{}: base {base} is not in RESOURCE_TYPES",
                sp.id
            );
            let parts = sp
                .expression
                .as_deref()
                .map(|e| parts_for(e, base))
                .unwrap_or_default();
            let mut targets: BTreeSet<String> = sp.target.iter().cloned().collect();
            if !parts.is_empty() && sp.kind == "reference" {
                let only: Option<BTreeSet<String>> = parts
                    .iter()
                    .map(|p| resolve_is(p).map(str::to_string))
                    .collect();
                if let Some(only) = only {
                    for t in &only {
                        assert!(
                            targets.contains(t),
                            "{}: resolve() is {t} outside its targets",
                            sp.id
                        );
                    }
                    targets = only;
                }
            }
            let tp = TypeParam {
                kind: sp.kind.clone(),
                targets: targets.into_iter().collect(),
                parts,
            };
            let prev = types
                .entry(base.clone())
                .or_default()
                .insert(sp.code.clone(), tp);
            assert!(
                prev.is_none(),
                "{}: {base}.{} defined twice",
                sp.id,
                sp.code
            );
        }
    }
    for (t, ps) in &types {
        for c in ps.keys() {
            assert!(
                !common.contains_key(c),
                "{t}.{c} shadows a common parameter"
            );
        }
    }
    Model { types, common }
}
