//! The `DPoP` challenge of a `401` (RFC 9449 §7.1), next to the Bearer one
//! when both schemes are accepted, and the `resource_metadata` parameter
//! (RFC 9728 §5.1) both carry.

use super::check::BindingContext;
use crate::decision::Decision;

/// Make a string safe inside a quoted-string header parameter: visible ASCII
/// only, `"` and `\` escaped.
pub fn quote_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

/// `, resource_metadata="…"` when the filter serves the metadata, else "".
pub fn resource_metadata_param(url: Option<&str>) -> String {
    url.map(|u| format!(", resource_metadata=\"{}\"", quote_escape(u)))
        .unwrap_or_default()
}

/// The `DPoP` challenge of a `401`, when an issuer accepts DPoP: the
/// accepted proof algorithms, and the error of a refused token or proof.
pub fn dpop_challenge(
    ctx: &BindingContext<'_>,
    realm: &str,
    d: &Decision,
    status: u16,
    resource_metadata: Option<&str>,
) -> Option<String> {
    if status != 401 || !ctx.dpop_accepted() {
        return None;
    }
    let mut v = format!(
        "DPoP realm=\"{}\", algs=\"{}\"",
        quote_escape(realm),
        ctx.dpop_algorithms().join(" ")
    );
    if let Some(err) = d.reason.dpop_error() {
        v.push_str(&format!(
            ", error=\"{err}\", error_description=\"{}\"",
            quote_escape(&d.message)
        ));
    }
    v.push_str(&resource_metadata_param(resource_metadata));
    Some(v)
}
