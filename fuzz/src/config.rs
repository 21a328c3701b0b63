//! Trust configuration from JSON: key sets, issuer rows, and what discovery fetches.

use super::broken;
use oidc_authz_core::config::IssuerConfig;
use oidc_authz_core::discovery::{
    check_issuer, check_url, discovery_url, jwks_uri, key_set, refresh_after,
};
use oidc_authz_core::token::alg::{Alg, Family};
use oidc_authz_core::token::jwk::KeySet;
use oidc_authz_core::TrustConfig;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Allowed-algorithm lists a key set is validated under.
const ALLOWED: [&[Alg]; 4] = [
    &Alg::ALL,
    &Alg::ASYMMETRIC,
    &[Alg::HS256],
    &[Alg::ES256, Alg::EdDSA],
];

/// The `jwks` target: any JSON as a key set (under several allowed lists), as the `jwks` of
/// an issuer row, and as a row itself. What is accepted keeps its promises (every key
/// verifies with some allowed algorithm of one family, no duplicate kid, no shared secret
/// beside a public key; a row's defaults and bounds); a refusal names no secret the document
/// holds.
pub fn jwks(data: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for allowed in ALLOWED {
        match KeySet::from_jwks(&doc, allowed) {
            Ok(set) => check_set(&set, allowed),
            Err(e) => check_no_secret(&e.to_string(), &doc),
        }
    }
    let rows = [
        json!({"issuer": "https://issuer.test", "audiences": ["api://test"], "jwks": doc}),
        json!({
            "issuer": "https://hmac.test", "audiences": ["api://test"],
            "algorithms": ["HS256", "HS384", "HS512"], "jwks": doc,
        }),
        doc,
    ];
    for row in &rows {
        check_row(row);
    }
}

fn check_set(set: &KeySet, allowed: &[Alg]) {
    let mut kids = HashSet::new();
    let mut secrets = 0;
    for key in &set.keys {
        let algs: Vec<Alg> = key.algs().collect();
        let Some(first) = algs.first() else {
            broken(format_args!(
                "a key that verifies nothing: {}",
                key.description
            ))
        };
        assert!(algs.iter().all(|a| allowed.contains(a)), "alg not allowed");
        assert!(
            algs.iter().all(|a| a.family() == first.family()),
            "families mixed"
        );
        secrets += usize::from(first.family() == Family::Hmac);
        if let Some(kid) = &key.kid {
            assert!(kids.insert(kid.clone()), "duplicate kid `{kid}`");
        }
    }
    assert!(
        secrets == 0 || secrets == set.keys.len(),
        "shared secrets beside public keys"
    );
}

fn check_row(row: &Value) {
    let one = IssuerConfig::from_row(row);
    let (trust, errors) = TrustConfig::from_rows(std::slice::from_ref(row));
    assert_eq!(
        one.is_err(),
        errors.len() == 1,
        "from_row and from_rows differ"
    );
    match one {
        Ok(c) => {
            assert!(!c.issuer.is_empty() && !c.issuer.chars().any(char::is_whitespace));
            assert!(!c.audiences.is_empty() && c.audiences.iter().all(|a| !a.is_empty()));
            assert!(!c.algorithms.is_empty(), "no algorithm");
            assert!((0..=oidc_authz_core::config::MAX_LEEWAY).contains(&c.leeway));
            assert!(c.logout_audiences.iter().all(|a| !a.is_empty()));
            assert!(c.required_typ.as_ref().is_none_or(|t| !t.is_empty()));
            assert_eq!(trust.issuer(&c.issuer).is_some(), c.enabled);
            check_set(&c.keys, &c.algorithms);
            if c.discovery {
                assert!(
                    check_issuer(&c.issuer).is_ok(),
                    "discovery issuer not fetchable"
                );
            } else {
                assert!(!c.keys.keys.is_empty(), "an issuer without keys");
            }
        }
        Err(e) => {
            assert!(trust.is_empty(), "a refused row was configured");
            check_no_secret(&e.to_string(), row);
        }
    }
}

/// An error text never holds a secret or private member of a key (`k`, `d`, …) the document
/// holds, unless the same text is also elsewhere in it (a kid, say), where it may be quoted.
fn check_no_secret(error: &str, doc: &Value) {
    let mut secret = Vec::new();
    let mut other = Vec::new();
    collect(doc, None, &mut secret, &mut other);
    for s in secret.iter().filter(|s| s.len() >= 12) {
        if error.contains(s.as_str()) && !other.iter().any(|o| o.contains(s.as_str())) {
            broken(format_args!("an error text holds key material: {error}"));
        }
    }
}

fn collect(v: &Value, member: Option<&str>, secret: &mut Vec<String>, other: &mut Vec<String>) {
    const SECRET: [&str; 8] = ["k", "d", "p", "q", "dp", "dq", "qi", "oth"];
    match v {
        Value::String(s) if member.is_some_and(|m| SECRET.contains(&m)) => secret.push(s.clone()),
        Value::String(s) => other.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect(x, member, secret, other)),
        Value::Object(m) => {
            for (k, x) in m {
                other.push(k.clone());
                collect(x, Some(k), secret, other);
            }
        }
        _ => other.push(v.to_string()),
    }
}

/// The `discovery` target: the bytes as a discovery document and as a fetched key set, and
/// (as text) as an URL and a `Cache-Control` header. A `jwks_uri` returned may be fetched;
/// a key set returned validates as `oidc.issuers.jwks` does, with the kids it reports and no
/// shared secret; an URL accepted is https, or http to loopback when allowed; an issuer fit
/// for discovery has a fetchable discovery URL; a refresh delay is within its bounds.
pub fn discovery(data: &[u8]) {
    for allow in [false, true] {
        for iss in ["https://issuer.test", "http://127.0.0.1:8080/realms/x"] {
            if let Ok(uri) = jwks_uri(data, iss, allow) {
                assert!(check_url(&uri, allow).is_ok(), "jwks_uri not fetchable");
                let doc: Value = serde_json::from_slice(data).unwrap_or_default();
                assert_eq!(doc["issuer"], json!(iss), "another issuer's document");
            }
        }
    }
    for algs in [&Alg::ASYMMETRIC[..], &Alg::ALL[..]] {
        if let Ok((jwks, kids)) = key_set(data, algs) {
            let Ok(set) = KeySet::from_jwks(&jwks, algs) else {
                broken(format_args!("a fetched key set does not validate"))
            };
            assert!(!set.keys.is_empty(), "a fetched key set without keys");
            let want: Vec<String> = set.keys.iter().filter_map(|k| k.kid.clone()).collect();
            assert_eq!(kids, want);
            check_set(&set, algs);
            assert!(
                set.keys
                    .iter()
                    .all(|k| k.algs().all(|a| a.family() != Family::Hmac)),
                "a shared secret fetched"
            );
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for allow in [false, true] {
        match check_url(text, allow) {
            Ok(false) => assert!(text.starts_with("https://")),
            Ok(true) => assert!(allow && text.starts_with("http://")),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    if check_issuer(text).is_ok() {
        assert!(!text.contains(['?', '#']));
        assert!(
            check_url(&discovery_url(text), true).is_ok(),
            "discovery URL"
        );
    }
    for (min, max) in [(60, 86_400), (300, 10), (0, 0), (0, u64::MAX)] {
        let after = refresh_after(Some(text), min, max);
        assert!((min..=max.max(min)).contains(&after), "refresh {after}");
    }
}
