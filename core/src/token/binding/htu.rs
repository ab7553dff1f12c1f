//! The `htu` of a DPoP proof against the request's external URI (RFC 9449
//! §4.3 step 9): both without query and fragment, after RFC 3986 syntax-
//! and scheme-based normalisation. Behind Envoy the external URI is not what
//! the filter sees (`:authority` + `:path` may be rewritten by hops in
//! front): it is built from `fhir_base_url`, the public base URL the
//! discovery documents publish, never from `X-Forwarded-*`.

/// `uri` normalised for comparison: scheme and host lower-cased, the
/// default port and an empty port dropped, percent-encodings upper-cased
/// and unreserved ones decoded, dot segments removed, an empty path `/`;
/// the query and fragment dropped. `None` unless an absolute `http(s)` URI
/// without user info.
pub fn normalize(uri: &str) -> Option<String> {
    let uri = uri.split(['#', '?']).next().unwrap_or("");
    let (scheme, rest) = uri.split_once("://")?;
    let (scheme, default_port) = if scheme.eq_ignore_ascii_case("https") {
        ("https", "443")
    } else if scheme.eq_ignore_ascii_case("http") {
        ("http", "80")
    } else {
        return None;
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal's colons are inside the brackets.
        Some((host, port)) if !port.contains(']') => {
            if !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let port = port.trim_start_matches('0');
            (
                host,
                (!port.is_empty() && port != default_port).then_some(port),
            )
        }
        _ => (authority, None),
    };
    // No host (`:8080`, an unbracketed IPv6 address): not an absolute URI.
    if host.is_empty() || host.starts_with(':') {
        return None;
    }
    let mut out = String::with_capacity(uri.len() + 1);
    out.push_str(scheme);
    out.push_str("://");
    out.extend(host.chars().map(|c| c.to_ascii_lowercase()));
    if let Some(port) = port {
        out.push(':');
        out.push_str(port);
    }
    let authority_end = out.len();
    if is_normal_path(path) {
        // Most proofs name the URI in its normal form: the path as it is.
        out.push_str(path);
    } else {
        out.push_str(&remove_dot_segments(&normalize_percent(path)?));
    }
    if out.len() == authority_end {
        out.push('/');
    }
    Some(out)
}

/// Whether normalising `path` leaves it as it is: ASCII, no
/// percent-encoding, no dot segment.
fn is_normal_path(path: &str) -> bool {
    path.is_ascii() && !path.contains('%') && !path.split('/').any(|s| s == "." || s == "..")
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodings upper-cased, those of unreserved characters decoded
/// (RFC 3986 §6.2.2.1, §6.2.2.2). `None` for a malformed `%`.
fn normalize_percent(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3)?;
        let text = std::str::from_utf8(hex).ok()?;
        let value = u8::from_str_radix(text, 16).ok()?;
        if is_unreserved(value) {
            out.push(char::from(value));
        } else {
            out.push('%');
            out.push_str(&text.to_ascii_uppercase());
        }
        i += 3;
    }
    // Non-ASCII bytes were pushed one by one as chars: refuse them (a
    // client sends them percent-encoded).
    path.is_ascii().then_some(out)
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => trailing_slash = i == last,
            ".." => {
                output.pop();
                trailing_slash = i == last;
            }
            s => {
                output.push(s);
                trailing_slash = false;
            }
        }
    }
    if segments.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(path.len());
    for s in &output {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

/// The external URI of a request: `base_url` (the public FHIR base URL)
/// followed by the request path after `base_path`, without the query.
/// `None` when the path is not under the base path.
pub fn external_uri(base_url: &str, base_path: &str, request_path: &str) -> Option<String> {
    let path = request_path.split(['?', '#']).next().unwrap_or("");
    let rest = path.strip_prefix(base_path.trim_end_matches('/'))?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(format!("{}{rest}", base_url.trim_end_matches('/')))
}

/// Whether a proof's `htu` names the request's external URI.
pub fn same_target(htu: &str, external: &str) -> bool {
    let Some(target) = normalize(external) else {
        return false;
    };
    // The same text normalises the same: one normalisation, not two.
    htu == external || normalize(htu).is_some_and(|named| named == target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        for (input, want) in [
            (
                "https://fhir.example.org/fhir/Patient",
                Some("https://fhir.example.org/fhir/Patient"),
            ),
            (
                "HTTPS://FHIR.Example.ORG/fhir/Patient",
                Some("https://fhir.example.org/fhir/Patient"),
            ),
            (
                "https://fhir.example.org:443/fhir",
                Some("https://fhir.example.org/fhir"),
            ),
            (
                "https://fhir.example.org:/fhir",
                Some("https://fhir.example.org/fhir"),
            ),
            (
                "http://fhir.example.org:80/fhir",
                Some("http://fhir.example.org/fhir"),
            ),
            (
                "http://fhir.example.org:443/fhir",
                Some("http://fhir.example.org:443/fhir"),
            ),
            (
                "https://fhir.example.org:08443/x",
                Some("https://fhir.example.org:8443/x"),
            ),
            (
                "https://fhir.example.org",
                Some("https://fhir.example.org/"),
            ),
            (
                "https://fhir.example.org/a/./b/../c",
                Some("https://fhir.example.org/a/c"),
            ),
            (
                "https://fhir.example.org/a/b/..",
                Some("https://fhir.example.org/a/"),
            ),
            (
                "https://fhir.example.org/../a",
                Some("https://fhir.example.org/a"),
            ),
            (
                "https://fhir.example.org/%7euser/%2f",
                Some("https://fhir.example.org/~user/%2F"),
            ),
            (
                "https://fhir.example.org/Patient?name=x#f",
                Some("https://fhir.example.org/Patient"),
            ),
            ("https://[::1]:443/a", Some("https://[::1]/a")),
            ("https://[::1]/a", Some("https://[::1]/a")),
            ("https://user@fhir.example.org/a", None),
            ("ftp://fhir.example.org/a", None),
            ("/fhir/Patient", None),
            ("https:///a", None),
            ("https://h:x/a", None),
            ("https://h/%zz", None),
            ("https://h/é", None),
        ] {
            assert_eq!(normalize(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn external_uri_table() {
        let base = "https://fhir.example.org/r4";
        for (path, want) in [
            (
                "/fhir/Patient/1?x=1",
                Some("https://fhir.example.org/r4/Patient/1"),
            ),
            ("/fhir", Some("https://fhir.example.org/r4")),
            ("/fhir/", Some("https://fhir.example.org/r4/")),
            ("/fhirx/Patient", None),
            ("/other", None),
        ] {
            assert_eq!(external_uri(base, "/fhir", path).as_deref(), want, "{path}");
        }
        assert_eq!(
            external_uri("https://h/", "/", "/Patient").as_deref(),
            Some("https://h/Patient")
        );
    }
}
