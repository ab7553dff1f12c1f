//! Bearer token extraction (RFC 6750): header, query parameter, refusals.

use super::*;

/// A request's path and headers, the extraction settings, and the outcome.
struct Case<'a> {
    path: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    settings: &'a TokenSettings,
    expect: Expect,
}

fn case<'a>(
    path: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    settings: &'a TokenSettings,
    expect: Expect,
) -> Case<'a> {
    Case {
        path,
        headers,
        settings,
        expect,
    }
}

/// No token (`Ok(None)`), the token and where it was, or the refusal.
type Expect = Result<Option<Extracted>, Refused>;

#[derive(Debug)]
struct Extracted {
    token: &'static str,
    location: TokenLocation,
}

/// The refusal's reason and status, and a substring of its message.
#[derive(Debug)]
struct Refused {
    reason: Reason,
    status: u16,
    text: &'static str,
}

fn found(token: &'static str, location: TokenLocation) -> Expect {
    Ok(Some(Extracted { token, location }))
}

fn refused(reason: Reason, status: u16, text: &'static str) -> Expect {
    Err(Refused {
        reason,
        status,
        text,
    })
}

#[test]
#[rustfmt::skip]
fn bearer_extraction_table() {
    let default = TokenSettings::default();
    let query_ok = TokenSettings {
        allow_query_parameter: true,
        ..TokenSettings::default()
    };
    let big = "a".repeat(16385);
    let big_header = format!("Bearer {big}");
    let cases = vec![
        case("/fhir/Patient", vec![], &default, Ok(None)),
        case("/fhir/Patient", vec![("authorization", "Bearer abc.def.ghi")], &default, found("abc.def.ghi", TokenLocation::Header)),
        case("/fhir/Patient", vec![("authorization", "bearer abc")], &default, found("abc", TokenLocation::Header)),
        case("/fhir/Patient", vec![("authorization", "BEARER   abc==")], &default, found("abc==", TokenLocation::Header)),
        case("/fhir/Patient", vec![("Authorization", "Bearer a-b_c~d+e/f")], &default, found("a-b_c~d+e/f", TokenLocation::Header)),
        case("/fhir/Patient", vec![("authorization", "Basic dXNlcjpwdw==")], &default, Ok(None)),
        case("/fhir/Patient", vec![("authorization", "Bearer")], &default, refused(Reason::InvalidRequest, 400, "no token")),
        case("/fhir/Patient", vec![("authorization", "Bearer a b")], &default, refused(Reason::MultipleCredentials, 400, "more than one credential")),
        case("/fhir/Patient", vec![("authorization", "Bearer a.b.c,Bearer d.e.f")], &default, refused(Reason::MultipleCredentials, 400, "joined with a comma")),
        case("/fhir/Patient", vec![("authorization", "DPoP a.b.c, Bearer d.e.f")], &default, refused(Reason::MultipleCredentials, 400, "joined with a comma")),
        case("/fhir/Patient", vec![("authorization", "Bearer a"), ("authorization", "Bearer b")], &default, refused(Reason::MultipleCredentials, 400, "more than one Authorization header")),
        case("/fhir/Patient", vec![("authorization", "Bearer a=b")], &default, refused(Reason::InvalidToken, 401, "b64token")),
        case("/fhir/Patient", vec![("authorization", "Bearer a\"b")], &default, refused(Reason::InvalidToken, 401, "b64token")),
        case("/fhir/Patient", vec![("authorization", big_header.as_str())], &default, refused(Reason::InvalidToken, 401, "token.max_bytes (16384 bytes)")),
        case("/fhir/Patient?access_token=abc", vec![], &default, refused(Reason::InvalidRequest, 400, "allow_query_parameter")),
        case("/fhir/Patient?access_token=abc", vec![], &query_ok, found("abc", TokenLocation::Query)),
        case("/fhir/Patient?_id=1&access_token=a%2Eb", vec![], &query_ok, found("a.b", TokenLocation::Query)),
        case("/fhir/Patient?access_token=abc", vec![("authorization", "Bearer abc")], &query_ok, refused(Reason::MultipleCredentials, 400, "both in the Authorization header")),
        case("/fhir/Patient?access_token=abc", vec![("authorization", "Bearer abc")], &default, refused(Reason::MultipleCredentials, 400, "both in the Authorization header")),
        case("/fhir/Patient?access_token=a&access_token=b", vec![], &query_ok, refused(Reason::MultipleCredentials, 400, "repeated")),
        case("/fhir/Patient?access_token=", vec![], &query_ok, refused(Reason::InvalidRequest, 400, "empty")),
        case("/fhir/Patient?my_access_token=abc", vec![], &default, Ok(None)),
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let Case {
            path,
            headers,
            settings,
            expect: expected,
        } = c;
        let p = parts(path, &headers);
        let got = extract_bearer(&p, settings);
        match (got, expected) {
            (Ok(None), Ok(None)) => {}
            (Ok(Some(b)), Ok(Some(Extracted { token, location }))) => {
                assert_eq!((b.token.as_ref(), b.location), (token, location), "case {i}");
                assert!(
                    !format!("{b:?}").contains(token),
                    "Debug must not print the token"
                );
            }
            (
                Err(d),
                Err(Refused {
                    reason,
                    status,
                    text,
                }),
            ) => {
                assert_eq!(
                    (d.reason, d.status),
                    (reason, status),
                    "case {i}: {}",
                    d.message
                );
                assert!(
                    d.message.contains(text),
                    "case {i}: {:?} lacks {text:?}",
                    d.message
                );
            }
            (got, expected) => panic!("case {i} ({path}): got {got:?}, expected {expected:?}"),
        }
    }
}
