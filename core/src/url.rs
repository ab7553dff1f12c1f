//! The one check of the absolute `http(s)` URLs a configuration names
//! (`fhir_base_url`, `issuers[].jwks_uri`, the discovery endpoints).

/// An absolute `http://` or `https://` URL, split for an Envoy call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpUrl<'a> {
    /// `host[:port]`.
    pub authority: &'a str,
    /// `/path?query` (`/` when the URL has no path).
    pub path: &'a str,
}

impl<'a> HttpUrl<'a> {
    /// `https://host[:port]/path?query`: a non-empty authority without user
    /// info, no fragment, no whitespace or control characters.
    pub fn parse(url: &'a str) -> Option<HttpUrl<'a>> {
        let rest = strip_scheme(url)?;
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (authority, path) = match rest.find('/') {
            Some(pos) => (rest.get(..pos)?, rest.get(pos..)?),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains(['@', '?', '#']) || path.contains('#') {
            return None;
        }
        Some(HttpUrl { authority, path })
    }

    /// Whether the URL has a query string.
    pub fn has_query(&self) -> bool {
        self.path.contains('?')
    }
}

/// Whether `url` starts with `http://` or `https://`.
pub fn has_http_scheme(url: &str) -> bool {
    strip_scheme(url).is_some()
}

fn strip_scheme(url: &str) -> Option<&str> {
    url.strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls() {
        for (url, expected) in [
            (
                "https://auth.example.org/jwks",
                Some(("auth.example.org", "/jwks")),
            ),
            (
                "http://127.0.0.1:8080/a/b?x=1",
                Some(("127.0.0.1:8080", "/a/b?x=1")),
            ),
            ("https://auth.example.org", Some(("auth.example.org", "/"))),
            ("ftp://x/y", None),
            ("https:///y", None),
            ("https://user@host/y", None),
            ("https://host/a b", None),
            ("https://host/a\tb", None),
            ("https://host/a#f", None),
            ("https://host?x=1", None),
        ] {
            assert_eq!(
                HttpUrl::parse(url).map(|u| (u.authority, u.path)),
                expected,
                "{url}"
            );
        }
        assert!(HttpUrl::parse("https://h/p?q").is_some_and(|u| u.has_query()));
        assert!(!HttpUrl::parse("https://h/p").is_some_and(|u| u.has_query()));
        assert!(has_http_scheme("http://x") && !has_http_scheme("//x"));
    }
}
