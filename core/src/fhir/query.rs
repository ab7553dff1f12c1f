//! Query strings, form bodies and `If-None-Exist` criteria → [`SearchParam`]s.
//!
//! Parsing follows `application/x-www-form-urlencoded` (`form_urlencoded`):
//! `+` is a space and every name and value is percent-decoded exactly once.
//! Before parsing, the raw text is checked so that decoding cannot hide
//! anything: malformed escapes, control characters (raw or encoded), a `#`
//! fragment and invalid UTF-8 are refused.

use super::error::ClassifyError;
use super::interaction::SearchParam;

/// The most parameters one request may carry, query and body together
/// (also a Bundle entry's URL, an `If-None-Exist` and a `Parameters` body).
/// Far below any container's own limit (Tomcat stops reading at
/// `maxParameterCount`, 1000 by default, silently dropping the rest), so
/// that no server drops a parameter this gateway decided on.
pub const MAX_PARAMETERS: usize = 100;

/// Appends one parameter, refusing more than [`MAX_PARAMETERS`].
pub(crate) fn push_param(out: &mut Vec<SearchParam>, p: SearchParam) -> Result<(), ClassifyError> {
    if out.len() >= MAX_PARAMETERS {
        return Err(ClassifyError::new(format!(
            "more than {MAX_PARAMETERS} parameters (query and body together): servers silently drop those past their own limit; send at most {MAX_PARAMETERS} (a comma list `code=a,b` counts once)"
        )));
    }
    out.push(p);
    Ok(())
}

/// Checks a raw query string (or form body, or `If-None-Exist` value).
/// `what` names it in messages ("query string", "form body", ...).
pub(crate) fn check_raw(raw: &str, what: &str) -> Result<(), ClassifyError> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    let mut decoded_non_ascii = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'#' => {
                return Err(ClassifyError::new(format!(
                    "the {what} contains a `#` fragment; fragments are never sent to a server, percent-encode it as %23"
                )))
            }
            b';' => {
                return Err(ClassifyError::new(format!(
                    "the {what} contains a raw `;`: some servers treat it as a parameter separator, so it is ambiguous; percent-encode it as %3B"
                )))
            }
            b'%' => {
                let v = escape_at(bytes, i).ok_or_else(|| {
                    ClassifyError::new(format!(
                        "the {what} contains a malformed percent escape at byte {i}: `%` must be followed by two hex digits (encode a literal `%` as %25)"
                    ))
                })?;
                if is_control(v) {
                    return Err(ClassifyError::new(format!(
                        "the {what} contains an encoded control character (%{v:02X}); control characters are not allowed"
                    )));
                }
                decoded_non_ascii |= v >= 0x80;
                i += 3;
            }
            _ if is_control(b) => {
                return Err(ClassifyError::new(format!(
                    "the {what} contains a raw control character (0x{b:02X}); control characters are not allowed"
                )))
            }
            _ => {
                decoded_non_ascii |= b >= 0x80;
                i += 1
            }
        }
    }
    if decoded_non_ascii {
        // Separators are ASCII and never UTF-8 continuation bytes, so the
        // whole decoded text is valid UTF-8 iff every decoded piece is.
        let decoded: Vec<u8> = percent_encoding::percent_decode(bytes).collect();
        let Ok(text) = std::str::from_utf8(&decoded) else {
            return Err(ClassifyError::new(format!(
                "the {what} decodes to invalid UTF-8; percent-encode text as UTF-8"
            )));
        };
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(ClassifyError::new(format!(
                "the {what} contains a control character (U+{:04X}); control characters are not allowed",
                u32::from(c)
            )));
        }
    }
    Ok(())
}

/// The byte a valid `%XX` escape at `i` stands for.
pub(crate) fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    let h = hex(*bytes.get(i + 1)?)?;
    let l = hex(*bytes.get(i + 2)?)?;
    Some(h << 4 | l)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

pub(crate) fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Parses checked form-encoded text and appends its parameters in order.
pub(crate) fn parse_into(
    raw: &str,
    what: &str,
    out: &mut Vec<SearchParam>,
) -> Result<(), ClassifyError> {
    check_raw(raw, what)?;
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        push_param(out, param(&name, &value, what)?)?;
    }
    Ok(())
}

/// A query string as search parameters (the criteria of a conditional
/// reference in a body), by the rules of the request's own query.
pub fn parse_query(raw: &str) -> Result<Vec<SearchParam>, ClassifyError> {
    let mut out = Vec::new();
    parse_into(raw, "criteria", &mut out)?;
    Ok(out)
}

/// One parameter: splits `name[:modifier][.chain]` and the comma-OR values.
pub(crate) fn param(name: &str, value: &str, what: &str) -> Result<SearchParam, ClassifyError> {
    if name.is_empty() {
        return Err(ClassifyError::new(format!(
            "the {what} has a parameter with an empty name (`=value` or `&=`); every parameter needs a name"
        )));
    }
    let (base, modifier, chain) = split_name(name);
    if base.is_empty() {
        return Err(ClassifyError::new(format!(
            "the {what} has a parameter `{name}` with an empty name before `:` or `.`"
        )));
    }
    Ok(SearchParam {
        name: base.to_string(),
        modifier: modifier.map(str::to_string),
        chain: chain.map(str::to_string),
        values: split_values(value),
    })
}

/// `name=value` percent-encoded as a query parameter (`form_urlencoded`,
/// the form [`parse_into`] reads back exactly: `Patient/123` →
/// `Patient%2F123`, a space → `+`).
pub(crate) fn form_encode(name: &str, value: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair(name, value)
        .finish()
}

/// `subject:Patient.name` → (`subject`, `Patient`, `name`); `subject.name` →
/// (`subject`, None, `name`); `_has:Observation:patient:code` → (`_has`,
/// `Observation:patient:code`, None).
pub(crate) fn split_name(name: &str) -> (&str, Option<&str>, Option<&str>) {
    let Some(pos) = name.find([':', '.']) else {
        return (name, None, None);
    };
    let (base, rest) = name.split_at(pos);
    if let Some(after_colon) = rest.strip_prefix(':') {
        if base == "_has" {
            return (base, Some(after_colon), None);
        }
        match after_colon.split_once('.') {
            Some((m, c)) => (base, Some(m), Some(c)),
            None => (base, Some(after_colon), None),
        }
    } else {
        (base, None, rest.strip_prefix('.'))
    }
}

/// Splits on commas not escaped by `\`; `\,` becomes a literal comma, other
/// escapes (`\\`, `\$`, `\|`) are kept as written.
pub(crate) fn split_values(value: &str) -> Vec<String> {
    if !value.contains(',') {
        return vec![value.to_string()];
    }
    let mut out = Vec::new();
    let mut cur = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(',') => cur.push(','),
                Some(n) => {
                    cur.push('\\');
                    cur.push(n);
                }
                None => cur.push('\\'),
            },
            ',' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for (input, expected) in [
            ("name", ("name", None, None)),
            ("name:exact", ("name", Some("exact"), None)),
            (
                "subject:Patient.name",
                ("subject", Some("Patient"), Some("name")),
            ),
            ("subject.name", ("subject", None, Some("name"))),
            (
                "subject:Patient.organization.name",
                ("subject", Some("Patient"), Some("organization.name")),
            ),
            (
                "_has:Observation:patient:code",
                ("_has", Some("Observation:patient:code"), None),
            ),
            (":x", ("", Some("x"), None)),
        ] {
            assert_eq!(split_name(input), expected, "{input}");
        }
    }

    #[test]
    fn values() {
        for (input, expected) in [
            ("a", vec!["a"]),
            ("", vec![""]),
            ("a,b", vec!["a", "b"]),
            ("a\\,b,c", vec!["a,b", "c"]),
            ("a\\\\,b", vec!["a\\\\", "b"]),
            ("a\\|b", vec!["a\\|b"]),
            ("a,", vec!["a", ""]),
            ("x\\", vec!["x\\"]),
        ] {
            assert_eq!(split_values(input), expected, "{input}");
        }
    }

    #[test]
    fn raw_checks() {
        for (input, err) in [
            ("a=b", None),
            ("a=%41", None),
            ("a=%C3%A9", None),
            ("a=%zz", Some("malformed percent escape")),
            ("a=%4", Some("malformed percent escape")),
            ("a=%00", Some("encoded control character (%00)")),
            ("a=%0a", Some("encoded control character (%0A)")),
            ("a=\u{7f}", Some("raw control character")),
            ("a=b#c", Some("fragment")),
            ("a=%C3", Some("invalid UTF-8")),
            ("a=%FF", Some("invalid UTF-8")),
        ] {
            match (check_raw(input, "query string"), err) {
                (Ok(()), None) => {}
                (Err(e), Some(s)) => assert!(e.message.contains(s), "{input}: {}", e.message),
                (r, _) => panic!("{input}: {r:?}"),
            }
        }
    }

    #[test]
    fn parse_keeps_order_and_repeats() {
        let mut out = Vec::new();
        parse_into(
            "code=a,b&code=c&name:exact=J+S%20x",
            "query string",
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].values, vec!["a", "b"]);
        assert_eq!(out[1].values, vec!["c"]);
        assert_eq!(out[2].name, "name");
        assert_eq!(out[2].modifier.as_deref(), Some("exact"));
        assert_eq!(out[2].values, vec!["J S x"]);
        assert!(parse_into("=x", "query string", &mut out).is_err());
    }
}
