//! The FHIR R4 grammars of ids, literal references and operation names: the
//! one definition the classifier (URL paths, Bundle entries), the policy
//! (search pins, conditional criteria, operation parameters, written and
//! returned references) and the claims (the token's or introspection's
//! patient, `fhirUser`) use. A value this grammar does not accept is refused
//! in every position.

use super::resource_types::is_resource_type;

/// The FHIR `id` grammar `[A-Za-z0-9\-\.]{1,64}`, without the two ids that
/// are URL dot segments (`.` and `..`): in a reference or a path a server
/// resolving it as RFC 3986 says reads them as another resource.
pub fn is_valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// A literal reference (R4 references.html): `Type/id` or
/// `Type/id/_history/vid`, relative to the service base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Literal<'r> {
    pub resource_type: &'r str,
    pub id: &'r str,
    pub version: Option<&'r str>,
}

/// `r` read as a literal reference: `Type/id[/_history/vid]` relative, or
/// `{base_url}/Type/id[/_history/vid]` on the configured base; the type an R4
/// resource type (case as written), the id and version per [`is_valid_id`].
/// Anything else (another base, a path prefix, dot segments, `%`, `\`,
/// whitespace, a query, a trailing `/`) is `None`.
pub fn literal<'r>(r: &'r str, base_url: Option<&str>) -> Option<Literal<'r>> {
    let rel = base_url
        .and_then(|b| r.strip_prefix(b))
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(r);
    let mut parts = rel.split('/');
    let (ty, id) = (parts.next()?, parts.next()?);
    let version = match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => None,
        (Some("_history"), Some(v), None) if is_valid_id(v) => Some(v),
        _ => return None,
    };
    (is_resource_type(ty) && is_valid_id(id)).then_some(Literal {
        resource_type: ty,
        id,
        version,
    })
}

/// The Patient id a literal reference names (see [`literal`]).
pub fn literal_patient<'r>(r: &'r str, base_url: Option<&str>) -> Option<&'r str> {
    literal(r, base_url)
        .filter(|l| l.resource_type == "Patient")
        .map(|l| l.id)
}

/// An operation name without its `$`: `[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}`.
pub fn is_operation_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for (s, ok) in [
            ("123", true),
            ("a.b-C", true),
            ("a..b", true),
            (".", false),
            ("..", false),
            ("", false),
            ("a_b", false),
            ("a/b", false),
            ("a%2Fb", false),
            (&"x".repeat(65), false),
        ] {
            assert_eq!(is_valid_id(s), ok, "{s:?}");
        }
    }

    #[test]
    fn literals() {
        let base = Some("https://h/fhir");
        let lit = |t, id, version| {
            Some(Literal {
                resource_type: t,
                id,
                version,
            })
        };
        for (r, want) in [
            ("Patient/1", lit("Patient", "1", None)),
            ("Patient/1/_history/2", lit("Patient", "1", Some("2"))),
            (
                "https://h/fhir/Observation/o",
                lit("Observation", "o", None),
            ),
            ("Patient/1/_history/..", None),
            ("Patient/1/_history/../../2", None),
            ("Patient/1/_history/2/x", None),
            ("Patient/1/_history", None),
            ("Patient/1/_history/", None),
            ("Patient/..", None),
            ("Patient/./2", None),
            ("Patient/1/", None),
            ("Patient/1%2F..", None),
            ("Patient/1?x=y", None),
            ("patient/1", None),
            ("Foo/1", None),
            (" Patient/1", None),
            ("https://evil/fhir/Patient/1", None),
            ("https://h/fhir/x/Patient/1", None),
            ("https://h/fhirPatient/1", None),
            ("#p1", None),
            ("Patient", None),
        ] {
            assert_eq!(literal(r, base), want, "{r:?}");
        }
        assert_eq!(literal_patient("Patient/9", None), Some("9"));
        assert_eq!(literal_patient("Group/9", None), None);
    }
}
