//! Back-Channel Logout tokens (OIDC Back-Channel Logout 1.0 §2.4–2.6), signed by the
//! independent `jsonwebtoken`, each rule broken once.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use oidc_authz_core::token::logout::{verify_logout, Logout, BACKCHANNEL_LOGOUT_EVENT};
use oidc_authz_core::{TokenError, TrustConfig};
use serde_json::{json, Value};

const ISS: &str = "https://op.test";
const SECRET: &[u8] = b"a logout test secret of enough bytes for HS256!!";
const NOW: i64 = 1_800_000_000;

fn trust(logout_audiences: Value) -> TrustConfig {
    let k = URL_SAFE_NO_PAD.encode(SECRET);
    let row = json!({"issuer": ISS, "audiences": ["api://docs"], "algorithms": ["HS256"],
                     "required_typ": "at+jwt", "logout_audiences": logout_audiences,
                     "jwks": {"keys": [{"kty": "oct", "kid": "k", "k": k}]}});
    let (t, errors) = TrustConfig::from_rows(&[row]);
    assert!(errors.is_empty(), "{errors:?}");
    t
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": "backend", "iat": NOW - 5, "exp": NOW + 115, "jti": "lt-1", "sid": "s-1",
           "sub": "alice", "events": {BACKCHANNEL_LOGOUT_EVENT: {}}})
}

fn sign(claims: &Value, typ: Option<&str>) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k".into());
    h.typ = typ.map(str::to_string);
    #[expect(clippy::unwrap_used, reason = "test helper")]
    encode(&h, claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

fn verify(claims: &Value, typ: Option<&str>) -> Result<Logout, TokenError> {
    verify_logout(
        &sign(claims, typ),
        &trust(json!(["backend"])),
        NOW,
        16 * 1024,
    )
}

fn with(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut c = claims();
    if let Value::Object(m) = &mut c {
        f(m);
    }
    c
}

#[test]
fn a_valid_logout_token_names_its_session_and_subject() {
    let l = verify(&claims(), Some("logout+jwt")).map_err(|e| e.to_string());
    assert_eq!(
        l,
        Ok(Logout {
            issuer: ISS.into(),
            sub: Some("alice".into()),
            sid: Some("s-1".into()),
            jti: "lt-1".into(),
            iat: (NOW - 5) as f64
        })
    );
    // typ is optional; the issuer's required_typ (at+jwt) is for access tokens only.
    assert!(verify(&claims(), None).is_ok());
    assert!(verify(&claims(), Some("application/logout+jwt")).is_ok());
    assert!(verify(&with(|m| drop(m.remove("sid"))), None).is_ok());
    assert!(verify(&with(|m| drop(m.remove("sub"))), None).is_ok());
    assert!(verify(
        &with(|m| drop(m.insert("aud".into(), json!(["x", "backend"])))),
        None
    )
    .is_ok());
}

#[test]
fn each_rule_refuses() {
    let check = |c: &Value, typ: Option<&str>| verify(c, typ).map(drop).map_err(|e| e.check());
    let cases: Vec<(Value, Option<&str>, &str)> = vec![
        (claims(), Some("JWT"), "typ"),
        (claims(), Some("at+jwt"), "typ"),
        (with(|m| drop(m.remove("iat"))), None, "claims"),
        (
            with(|m| drop(m.insert("iat".into(), json!(NOW + 600)))),
            None,
            "iat",
        ),
        (
            with(|m| drop(m.insert("exp".into(), json!(NOW - 600)))),
            None,
            "exp",
        ),
        (
            with(|m| drop(m.insert("aud".into(), json!("api://docs")))),
            None,
            "aud",
        ),
        (with(|m| drop(m.remove("aud"))), None, "claims"),
        (with(|m| drop(m.remove("events"))), None, "claims"),
        (
            with(|m| drop(m.insert("events".into(), json!({"other": {}})))),
            None,
            "logout",
        ),
        (
            with(|m| drop(m.insert("events".into(), json!({BACKCHANNEL_LOGOUT_EVENT: "yes"})))),
            None,
            "logout",
        ),
        (
            with(|m| drop(m.insert("events".into(), json!([BACKCHANNEL_LOGOUT_EVENT])))),
            None,
            "claims",
        ),
        (
            with(|m| drop(m.insert("nonce".into(), json!("n")))),
            None,
            "logout",
        ),
        (
            with(|m| {
                m.remove("sid");
                m.remove("sub");
            }),
            None,
            "logout",
        ),
        (
            with(|m| drop(m.insert("sid".into(), json!(7)))),
            None,
            "claims",
        ),
        (
            with(|m| drop(m.insert("sub".into(), json!("")))),
            None,
            "claims",
        ),
        (with(|m| drop(m.remove("jti"))), None, "claims"),
        (
            with(|m| drop(m.insert("iss".into(), json!("https://other.test")))),
            None,
            "iss",
        ),
    ];
    for (c, typ, expected) in cases {
        assert_eq!(check(&c, typ), Err(expected), "{c} {typ:?}");
    }
    // A forged signature, and an issuer that accepts no logout tokens.
    let mut t = sign(&claims(), None);
    t.push('A');
    assert!(verify_logout(&t, &trust(json!(["backend"])), NOW, 16 * 1024).is_err());
    let none = verify_logout(&sign(&claims(), None), &trust(Value::Null), NOW, 16 * 1024);
    assert_eq!(none.map(drop).map_err(|e| e.check()), Err("logout"));
}

#[test]
fn logout_audiences_are_validated() {
    let k = URL_SAFE_NO_PAD.encode(SECRET);
    for bad in [json!([]), json!([""]), json!("backend"), json!([1])] {
        let row = json!({"issuer": ISS, "audiences": ["a"], "algorithms": ["HS256"], "logout_audiences": bad,
                         "jwks": {"keys": [{"kty": "oct", "kid": "k", "k": k}]}});
        let (_, errors) = TrustConfig::from_rows(&[row]);
        assert_eq!(errors.len(), 1, "{bad}");
    }
}

#[test]
fn a_logout_token_is_no_access_token() {
    // Same issuer, and an access-token audience equal to the logout audience.
    let k = URL_SAFE_NO_PAD.encode(SECRET);
    let row = json!({"issuer": ISS, "audiences": ["backend"], "algorithms": ["HS256"],
                     "jwks": {"keys": [{"kty": "oct", "kid": "k", "k": k}]}});
    let (t, _) = TrustConfig::from_rows(&[row]);
    for typ in [None, Some("logout+jwt")] {
        let r = oidc_authz_core::verify_token(&sign(&claims(), typ), &t, NOW, 16 * 1024);
        assert_eq!(r.map(drop).map_err(|e| e.check()), Err("logout"), "{typ:?}");
    }
    let mut plain = claims();
    if let Value::Object(m) = &mut plain {
        m.remove("events");
    }
    assert!(oidc_authz_core::verify_token(&sign(&plain, None), &t, NOW, 16 * 1024).is_ok());
    assert!(
        oidc_authz_core::verify_token(&sign(&plain, Some("logout+jwt")), &t, NOW, 16 * 1024)
            .is_err()
    );
}
