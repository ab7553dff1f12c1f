//! Public endpoints and requests without a token.

use super::*;

#[test]
#[rustfmt::skip]
fn public_endpoints_and_missing_token() {
    let private = Config::from_json(
        br#"{"policy":{"public_capabilities":false,"public_smart_configuration":false}}"#,
    )
    .unwrap();
    let d = authorize(
        &private,
        it(K::Capabilities, Level::System, None, None),
        None,
    );
    assert_eq!((d.status, d.reason), (401, Reason::MissingToken));
    let ctx = AuthContext::from_scopes("openid", None);
    let d = authorize(
        &private,
        it(K::SmartConfiguration, Level::System, None, None),
        Some(&ctx),
    );
    assert_eq!((d.status, d.reason), (200, Reason::Allowed));
}
