//! OIDC Back-Channel Logout 1.0 §2.6: verifying a logout token.
//!
//! A logout token is a JWT the provider posts to a relying party when a user's session
//! ends. It is signed by the issuer's keys like any token, but it is no access token: its
//! `aud` is the relying party's client id (the issuer's `logout_audiences`, never its
//! access-token `audiences`), its `typ` is `logout+jwt` where sent (the issuer's
//! `required_typ` does not apply), and it carries an `events` claim instead of a lifetime
//! (`iat` and `exp` are required). It must name a session (`sid`), a subject (`sub`) or
//! both, must not carry a `nonce` (an ID token is no logout token), and must carry a `jti`.

use super::{media_type, numeric_date, open, Opened, TokenError};
use crate::config::TrustConfig;
use serde_json::Value;

/// The event a logout token must carry.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// What a valid logout token asks to end.
#[derive(Debug, Clone, PartialEq)]
pub struct Logout {
    pub issuer: String,
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    pub iat: f64,
}

/// Verifies a logout token against `trust` at `now` (seconds since the epoch).
pub fn verify_logout(
    token: &str,
    trust: &TrustConfig,
    now: i64,
    max_len: usize,
) -> Result<Logout, TokenError> {
    let Opened {
        jws,
        claims: map,
        issuer,
        config,
    } = open(token, trust, max_len)?;
    if config.logout_audiences.is_empty() {
        return Err(TokenError::Logout(
            "the issuer accepts no logout tokens (its logout_audiences are not set)",
        ));
    }
    jws.verify(&config.keys, &config.algorithms)?;
    // Explicit typing (§2.4): `logout+jwt` where a typ is sent.
    if let Some(typ) = &jws.header.typ {
        if media_type(typ) != "logout+jwt" {
            return Err(TokenError::Type {
                expected: "logout+jwt".into(),
            });
        }
    }
    let iat = numeric_date(&map, "iat")?.ok_or(TokenError::MissingClaim("iat"))?;
    let leeway = config.leeway as f64;
    let now = now as f64;
    if iat > now + leeway {
        return Err(TokenError::IssuedInFuture);
    }
    // Required since errata set 1 (and a replay is then bounded by it).
    let exp = numeric_date(&map, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    if now >= exp + leeway {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = numeric_date(&map, "nbf")? {
        if now + leeway < nbf {
            return Err(TokenError::NotYetValid);
        }
    }
    let accepted = |a: &Value| {
        a.as_str()
            .is_some_and(|a| config.logout_audiences.iter().any(|c| c == a))
    };
    match map.get("aud") {
        None => return Err(TokenError::MissingClaim("aud")),
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
            if !list.iter().any(accepted) {
                return Err(TokenError::Audience);
            }
        }
        Some(a @ Value::String(_)) => {
            if !accepted(a) {
                return Err(TokenError::Audience);
            }
        }
        Some(_) => return Err(TokenError::ClaimType("aud")),
    }
    match map.get("events") {
        Some(Value::Object(events)) => match events.get(BACKCHANNEL_LOGOUT_EVENT) {
            Some(Value::Object(_)) => {}
            _ => {
                return Err(TokenError::Logout(
                    "`events` has no back-channel logout event (a JSON object)",
                ))
            }
        },
        Some(_) => return Err(TokenError::ClaimType("events")),
        None => return Err(TokenError::MissingClaim("events")),
    }
    if map.contains_key("nonce") {
        return Err(TokenError::Logout("a logout token must not carry `nonce`"));
    }
    let string = |name: &'static str| match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::ClaimType(name)),
    };
    let sub = string("sub")?;
    let sid = string("sid")?;
    if sub.is_none() && sid.is_none() {
        return Err(TokenError::Logout(
            "a logout token must name a session (`sid`) or a subject (`sub`)",
        ));
    }
    let jti = string("jti")?.ok_or(TokenError::MissingClaim("jti"))?;
    Ok(Logout {
        issuer,
        sub,
        sid,
        jti,
        iat,
    })
}
