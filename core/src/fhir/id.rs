//! The FHIR R4 grammars of ids and operation names: the one definition the
//! classifier, the policy (context patient, references) and the claims use.

/// The FHIR `id` grammar `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
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
