//! Property tests of the `htu` normalisation (RFC 9449 §4.3 step 9, RFC 3986
//! §6.2.2/§6.2.3): every spelling of a URI a client may send compares equal
//! to the external URI, and a different target never does.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use fhir_smart_authz_core::token::binding::htu::{normalize, same_target};
use proptest::prelude::*;

/// A URI's parts: scheme, host, port, path segments (unreserved text).
fn parts() -> impl Strategy<Value = (bool, String, Option<u16>, Vec<String>)> {
    (
        any::<bool>(),
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9]{0,6}){0,2}",
        proptest::option::of(1u16..65535),
        proptest::collection::vec("[A-Za-z0-9._~-]{1,8}", 0..5),
    )
        .prop_filter(
            "no dot segments in the canonical path",
            |(_, _, _, segs)| segs.iter().all(|s| s != "." && s != ".."),
        )
}

fn canonical(https: bool, host: &str, port: Option<u16>, segs: &[String]) -> String {
    let scheme = if https { "https" } else { "http" };
    let default = if https { 443 } else { 80 };
    let port = match port {
        Some(p) if p != default => format!(":{p}"),
        _ => String::new(),
    };
    let path: String = segs.iter().map(|s| format!("/{s}")).collect();
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    format!("{scheme}://{host}{port}{path}")
}

/// Another spelling of the same URI.
fn variant(https: bool, host: &str, port: Option<u16>, segs: &[String], how: &[u8]) -> String {
    let flip = |i: usize| how.get(i).copied().unwrap_or(0);
    let scheme = match (https, flip(0) % 2) {
        (true, 0) => "https",
        (true, _) => "HTTPS",
        (false, 0) => "http",
        (false, _) => "HtTp",
    };
    let host = if flip(1) % 2 == 1 {
        host.to_ascii_uppercase()
    } else {
        host.to_string()
    };
    let default = if https { 443 } else { 80 };
    let port = match port {
        Some(p) if p != default => format!(":{}{p}", if flip(2) % 3 == 0 { "0" } else { "" }),
        _ => match flip(2) % 3 {
            0 => format!(":{default}"),
            1 => ":".to_string(),
            _ => String::new(),
        },
    };
    let mut path = String::new();
    for (i, s) in segs.iter().enumerate() {
        match flip(3 + i) % 4 {
            1 => path.push_str("/."),
            2 => path.push_str("/zz/.."),
            _ => {}
        }
        path.push('/');
        if flip(3 + i) % 4 == 3 {
            // Percent-encode every byte (unreserved: decoded by normalisation).
            for b in s.bytes() {
                path.push_str(&format!("%{b:02x}"));
            }
        } else {
            path.push_str(s);
        }
    }
    let tail = match flip(9) % 3 {
        0 => "",
        1 => "?_count=10&x=%20",
        _ => "#frag",
    };
    format!("{scheme}://{host}{port}{path}{tail}")
}

proptest! {
    #[test]
    fn every_spelling_names_the_same_target(
        (https, host, port, segs) in parts(),
        how in proptest::collection::vec(any::<u8>(), 12),
    ) {
        let canon = canonical(https, &host, port, &segs);
        let spelled = variant(https, &host, port, &segs, &how);
        prop_assert_eq!(normalize(&spelled), Some(canon.clone()), "{}", spelled);
        prop_assert!(same_target(&spelled, &canon));
    }

    #[test]
    fn normalisation_is_idempotent(s in "[a-zA-Z]{2,5}://[a-zA-Z0-9.:@\\[\\]-]{0,20}(/[a-zA-Z0-9%._~-]{0,6}){0,5}[?#]?[a-z=&]{0,6}") {
        if let Some(n) = normalize(&s) {
            prop_assert_eq!(normalize(&n), Some(n.clone()));
        }
    }

    #[test]
    fn another_path_host_or_port_is_another_target(
        (https, host, port, segs) in parts(),
        extra in "[a-z0-9]{1,6}",
        which in 0..3u8,
    ) {
        let canon = canonical(https, &host, port, &segs);
        let other = match which {
            0 => { let mut s = segs.clone(); s.push(extra); canonical(https, &host, port, &s) }
            1 => canonical(https, &format!("{extra}.{host}"), port, &segs),
            _ => canonical(!https, &host, port.or(Some(8443)), &segs),
        };
        prop_assume!(other != canon);
        prop_assert!(!same_target(&other, &canon), "{} vs {}", other, canon);
    }
}
