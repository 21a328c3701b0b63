//! Tokens as text: every verifier entry point against the fixed configuration of
//! [`super::keys`], and what each acceptance must satisfy.
//!
//! Properties, for any text:
//! - no entry point panics; an error text never holds the token;
//! - `verify_token` is `verify_untimed` then `check_time`, to the error;
//! - an access token accepted has the signature of the key it names, by the reference, in an
//!   enabled issuer that allows its `alg`, with an accepted `aud`, the claims it carries, and
//!   is no logout token; the log redaction blots it out;
//! - a logout token accepted satisfies Back-Channel Logout by the reference, and is never
//!   accepted as an access token;
//! - the JWS layer alone (`Jws::parse` + `verify`, every algorithm allowed) accepts only a
//!   signature of the key it returns.

use super::broken;
use super::keys::{self, fixture, IssuerSpec, LOGOUT_AUD, MAX_LEN, NOW};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use oidc_authz_core::token::alg::Alg;
use oidc_authz_core::token::jws::Jws;
use oidc_authz_core::token::logout::{verify_logout, Logout, BACKCHANNEL_LOGOUT_EVENT};
use oidc_authz_core::token::unverified_issuer;
use oidc_authz_core::{verify_token, verify_untimed, Verified};
use serde_json::{Map, Value};

/// The `token` target: the bytes as a token (the extension refuses non-UTF-8 itself).
pub fn token(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_token(text);
    }
}

/// What the core made of a token.
pub struct Outcome {
    /// `verify_token` accepted it.
    pub access: bool,
    /// `verify_logout` accepted it.
    pub logout: bool,
}

/// Runs every entry point on `token` and checks the properties of the module.
pub fn check_token(token: &str) -> Outcome {
    let f = fixture();
    let untimed = verify_untimed(token, &f.trust, MAX_LEN);
    let timed = verify_token(token, &f.trust, NOW, MAX_LEN);
    let logout = verify_logout(token, &f.trust, NOW, MAX_LEN);
    let errors = [
        untimed.as_ref().err().map(ToString::to_string),
        timed.as_ref().err().map(ToString::to_string),
        logout.as_ref().err().map(ToString::to_string),
    ];
    // Only for text shaped like a token (two dots): a fixed message, which holds fewer, is
    // no leak when the input happens to be a piece of it.
    let shaped = token.len() >= 16 && token.matches('.').count() >= 2;
    for text in errors.iter().flatten() {
        if shaped && text.contains(token) {
            broken(format_args!("an error text holds the token: {text}"));
        }
    }
    match &untimed {
        Ok(v) => assert_eq!(
            timed.is_ok(),
            v.check_time(NOW).is_ok(),
            "verify_token differs from verify_untimed + check_time"
        ),
        Err(e) => assert_eq!(
            timed.as_ref().err().map(ToString::to_string),
            Some(e.to_string()),
            "verify_token fails otherwise than verify_untimed"
        ),
    }
    if let Ok(v) = &untimed {
        check_access(token, v);
        assert!(
            logout.is_err(),
            "an access token was accepted as a logout token"
        );
        assert_eq!(unverified_issuer(token).as_deref(), Some(v.issuer.as_str()));
        match oidc_authz_core::redact::redact(token) {
            Some(text) if !text.contains(token) => {}
            other => broken(format_args!(
                "an accepted token is not redacted from logs: {other:?}"
            )),
        }
    }
    if let Ok(l) = &logout {
        check_logout(token, l);
    }
    check_jws_layer(token);
    Outcome {
        access: timed.is_ok(),
        logout: logout.is_ok(),
    }
}

/// A token's parts as the reference reads them, with `serde_json` and `base64` directly.
struct Parts {
    header: Map<String, Value>,
    /// The payload as a JSON object; empty for a JWS whose payload is none (which only the
    /// JWS layer accepts).
    claims: Map<String, Value>,
    alg: Alg,
    signing_input: String,
    signature: Vec<u8>,
}

fn parts(token: &str) -> Parts {
    let segments: Vec<&str> = token.split('.').collect();
    let [h, p, s] = segments[..] else {
        broken(format_args!("accepted with {} segments", segments.len()))
    };
    let object = |segment: &str| -> Option<Map<String, Value>> {
        let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        }
    };
    let Some(header) = object(h) else {
        broken(format_args!(
            "accepted with a header that is no JSON object"
        ))
    };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(s) else {
        broken(format_args!(
            "accepted with a signature that is not base64url"
        ))
    };
    let alg = match header.get("alg").and_then(Value::as_str).map(str::parse) {
        Some(Ok(alg)) => alg,
        _ => broken(format_args!("accepted without a known `alg`")),
    };
    for refused in ["crit", "enc", "zip"] {
        assert!(!header.contains_key(refused), "accepted with `{refused}`");
    }
    Parts {
        header,
        claims: object(p).unwrap_or_default(),
        alg,
        signing_input: format!("{h}.{p}"),
        signature,
    }
}

/// [`parts`] of a token accepted with its claims: its payload must be a JSON object.
fn claim_parts(token: &str) -> Parts {
    let p = parts(token);
    let payload = token.split('.').nth(1).unwrap_or_default();
    let text = URL_SAFE_NO_PAD.decode(payload).unwrap_or_default();
    assert!(
        matches!(serde_json::from_slice(&text), Ok(Value::Object(_))),
        "accepted with a payload that is no JSON object"
    );
    p
}

/// The issuer of an accepted token, enabled, and the key its header names (by index), whose
/// signature the token must carry.
fn signed(parts: &Parts, want_logout: bool) -> (&'static IssuerSpec, usize) {
    let Some(iss) = parts.claims.get("iss").and_then(Value::as_str) else {
        broken(format_args!("accepted without a string `iss`"))
    };
    let Some(spec) = keys::issuer(iss).filter(|s| s.enabled) else {
        broken(format_args!("accepted from issuer `{iss}`, not enabled"))
    };
    assert!(spec.algorithms().contains(&parts.alg), "alg not allowed");
    assert!(
        !want_logout || spec.logout,
        "logout token of an issuer without logout"
    );
    let kid = match parts.header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => broken(format_args!("accepted with a kid that is no string")),
    };
    let Some(i) = keys::pick_key(spec, kid, parts.alg) else {
        broken(format_args!(
            "accepted, but names no single key (kid {kid:?})"
        ))
    };
    assert!(spec.key_algs(i).contains(&parts.alg), "key not for alg");
    let material = &fixture().material[spec.key_file(i)];
    assert!(
        material.verifies(parts.alg, parts.signing_input.as_bytes(), &parts.signature),
        "accepted without the signature of the key it names"
    );
    (spec, i)
}

fn media_type(t: &str) -> String {
    let t = t.to_ascii_lowercase();
    t.strip_prefix("application/")
        .map_or(t.clone(), str::to_owned)
}

fn check_access(token: &str, v: &Verified) {
    let p = claim_parts(token);
    let (spec, key) = signed(&p, false);
    assert_eq!(v.issuer, spec.issuer);
    assert_eq!(v.alg, p.alg);
    assert_eq!(v.kid.as_deref(), spec.kid(key), "another key's kid");
    assert_eq!(
        v.claims,
        Value::Object(p.claims.clone()),
        "claims differ from the payload"
    );
    assert_eq!(
        v.sub.as_deref(),
        p.claims.get("sub").and_then(Value::as_str)
    );
    let typ = p.header.get("typ").and_then(Value::as_str).map(media_type);
    if let Some(want) = spec.required_typ {
        assert_eq!(typ.as_deref(), Some(want), "typ not the issuer's");
    }
    assert_ne!(
        typ.as_deref(),
        Some("logout+jwt"),
        "a logout token as access token"
    );
    let events = p.claims.get("events").and_then(Value::as_object);
    assert!(
        !events.is_some_and(|e| e.contains_key(BACKCHANNEL_LOGOUT_EVENT)),
        "a logout event in an access token"
    );
    assert!(p.claims.get("exp").is_some_and(Value::is_number), "exp");
    let accepted = |a: &Value| a.as_str().is_some_and(|a| spec.audiences.contains(&a));
    let aud_ok = match p.claims.get("aud") {
        Some(Value::Array(list)) => list.iter().all(Value::is_string) && list.iter().any(accepted),
        Some(a) => accepted(a),
        None => false,
    };
    assert!(aud_ok, "audience not accepted");
    assert_eq!(v.leeway, spec.leeway);
}

fn check_logout(token: &str, l: &Logout) {
    let p = claim_parts(token);
    let (spec, _) = signed(&p, true);
    assert_eq!(l.issuer, spec.issuer);
    if let Some(typ) = p.header.get("typ") {
        assert_eq!(typ.as_str().map(media_type).as_deref(), Some("logout+jwt"));
    }
    let accepted = |a: &Value| a.as_str() == Some(LOGOUT_AUD);
    let aud_ok = match p.claims.get("aud") {
        Some(Value::Array(list)) => list.iter().all(Value::is_string) && list.iter().any(accepted),
        Some(a) => accepted(a),
        None => false,
    };
    assert!(aud_ok, "logout audience not accepted");
    let event = p
        .claims
        .get("events")
        .and_then(|e| e.get(BACKCHANNEL_LOGOUT_EVENT));
    assert!(event.is_some_and(Value::is_object), "no logout event");
    assert!(!p.claims.contains_key("nonce"), "a logout token with nonce");
    let text = |n: &str| {
        p.claims
            .get(n)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    assert_eq!(text("jti"), Some(l.jti.as_str()));
    assert_eq!(text("sub"), l.sub.as_deref());
    assert_eq!(text("sid"), l.sid.as_deref());
    assert!(
        l.sub.is_some() || l.sid.is_some(),
        "names no session nor subject"
    );
    let leeway = spec.leeway as f64;
    let time = |n: &str| p.claims.get(n).and_then(Value::as_f64);
    assert!(
        time("iat").is_some_and(|iat| iat <= NOW as f64 + leeway),
        "iat"
    );
    assert!(
        time("exp").is_some_and(|exp| (NOW as f64) < exp + leeway),
        "exp"
    );
}

/// The JWS layer on its own, with each enabled issuer's key set and every algorithm.
fn check_jws_layer(token: &str) {
    let Ok(jws) = Jws::parse(token) else {
        return;
    };
    for spec in keys::ISSUERS.iter().filter(|s| s.enabled) {
        let Some(config) = fixture().trust.issuer(spec.issuer) else {
            broken(format_args!("issuer `{}` not configured", spec.issuer))
        };
        let Ok(key) = jws.verify(&config.keys, &Alg::ALL) else {
            continue;
        };
        let p = parts(token);
        assert_eq!(jws.header.alg, p.alg);
        let Some(i) = (0..spec.key_count()).find(|&i| spec.kid(i) == key.kid.as_deref()) else {
            broken(format_args!(
                "the JWS layer returned a key the issuer lacks"
            ))
        };
        let material = &fixture().material[spec.key_file(i)];
        assert!(
            material.verifies(p.alg, p.signing_input.as_bytes(), &p.signature),
            "the JWS layer accepted a signature not of its key"
        );
    }
}
