//! Token verification: compact JWS → signature → registered claims → [`Verified`].
//!
//! Order of checks (RFC 8725, RFC 9068 §4, OIDC Core §3.1.3.7): size cap before any
//! decoding; structure, header and `alg`; the issuer named by the (still unverified)
//! payload picks the key set; signature with a key chosen by exact `kid`; then `typ`, the
//! types of the time claims, `exp`/`nbf`/`iat` against `now` with the issuer's leeway, and
//! `aud`. Error texts name the failed check and never contain the token or key material.

pub mod alg;
pub mod b64;
pub mod jwk;
pub mod jws;
pub mod logout;

use crate::config::{IssuerConfig, TrustConfig};
use crate::json::{parse_strict, JsonError};
use crate::path;
use alg::Alg;
use serde_json::{Map, Value};
use std::fmt;

/// Latest accepted NumericDate: 9999-12-31T23:59:59Z. Larger values are refused, not clamped.
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// Why a token was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    TooLarge {
        len: usize,
        max: usize,
    },
    Malformed(String),
    Encrypted,
    AlgNone,
    UnsupportedAlg(String),
    CritHeader,
    UnknownIssuer(String),
    AlgNotAllowed(Alg),
    UnknownKid(String),
    KeyAlgMismatch {
        kid: String,
        alg: Alg,
    },
    NoKey(Alg),
    AmbiguousKey,
    BadSignature,
    ClaimType(&'static str),
    MissingClaim(&'static str),
    Expired,
    NotYetValid,
    IssuedInFuture,
    Audience,
    Type {
        expected: String,
    },
    /// A JSON string of the header or payload (a value or a member name, at any depth) holds
    /// U+0000, which Postgres text cannot hold: read as text, a claim would end there.
    NulCharacter,
    /// The token's bytes are not UTF-8 (raised by the extension, whose setting may hold any
    /// bytes in a SQL_ASCII or LATIN1 database).
    NotUtf8,
    /// A row of `oidc.revocations` revokes the token (see [`crate::revocation`]).
    Revoked(crate::revocation::Kind),
    /// A logout token breaks a rule of Back-Channel Logout (see [`logout`]).
    Logout(&'static str),
}

impl TokenError {
    /// A stable one-word name of the failed check, for `oidc.token_status()`.
    pub fn check(&self) -> &'static str {
        match self {
            TokenError::TooLarge { .. } => "size",
            TokenError::Malformed(_) | TokenError::Encrypted => "format",
            TokenError::AlgNone | TokenError::UnsupportedAlg(_) | TokenError::AlgNotAllowed(_) => {
                "alg"
            }
            TokenError::CritHeader => "crit",
            TokenError::UnknownIssuer(_) => "iss",
            TokenError::UnknownKid(_)
            | TokenError::KeyAlgMismatch { .. }
            | TokenError::NoKey(_)
            | TokenError::AmbiguousKey => "kid",
            TokenError::BadSignature => "signature",
            TokenError::ClaimType(_) | TokenError::MissingClaim(_) => "claims",
            TokenError::Expired => "exp",
            TokenError::NotYetValid => "nbf",
            TokenError::IssuedInFuture => "iat",
            TokenError::Audience => "aud",
            TokenError::Type { .. } => "typ",
            TokenError::NulCharacter => "nul",
            TokenError::NotUtf8 => "encoding",
            TokenError::Revoked(_) => "revoked",
            TokenError::Logout(_) => "logout",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::TooLarge { len, max } => {
                write!(
                    f,
                    "token is {len} bytes, over the limit of {max} (oidc.max_token_bytes)"
                )
            }
            TokenError::Malformed(why) => write!(f, "malformed token: {why}"),
            TokenError::Encrypted => f.write_str("encrypted tokens (JWE) are not supported"),
            TokenError::AlgNone => f.write_str("unsigned tokens (alg `none`) are never accepted"),
            TokenError::UnsupportedAlg(a) => write!(f, "unsupported algorithm `{a}`"),
            TokenError::CritHeader => {
                f.write_str("critical header extensions (`crit`) are not supported")
            }
            TokenError::UnknownIssuer(i) => write!(f, "issuer `{i}` is not configured"),
            TokenError::AlgNotAllowed(a) => {
                write!(f, "algorithm `{a}` is not allowed for this issuer")
            }
            TokenError::UnknownKid(k) => write!(f, "unknown kid `{k}`"),
            TokenError::KeyAlgMismatch { kid, alg } => {
                write!(f, "key `{kid}` does not allow algorithm `{alg}`")
            }
            TokenError::NoKey(a) => write!(f, "no configured key verifies algorithm `{a}`"),
            TokenError::AmbiguousKey => {
                f.write_str("token has no kid and several configured keys could verify it")
            }
            TokenError::BadSignature => f.write_str("bad signature"),
            TokenError::ClaimType(c) => write!(f, "claim `{c}` has the wrong type or range"),
            TokenError::MissingClaim(c) => write!(f, "missing required claim `{c}`"),
            TokenError::Expired => f.write_str("expired"),
            TokenError::NotYetValid => f.write_str("not yet valid (nbf)"),
            TokenError::IssuedInFuture => f.write_str("issued in the future (iat)"),
            TokenError::Audience => f.write_str("audience not accepted"),
            TokenError::Type { expected } => write!(f, "token type (typ) must be `{expected}`"),
            TokenError::NulCharacter => f.write_str(
                "a claim or header string contains the character U+0000, which Postgres text cannot hold",
            ),
            TokenError::NotUtf8 => f.write_str("the token is not valid UTF-8"),
            TokenError::Logout(why) => write!(f, "not a valid logout token: {why}"),
            TokenError::Revoked(kind) => write!(
                f,
                "the token is revoked (a revocation of its {})",
                match kind {
                    crate::revocation::Kind::Token => "jti",
                    crate::revocation::Kind::Subject => "subject",
                    crate::revocation::Kind::Session => "session",
                }
            ),
        }
    }
}

/// Quotes an untrusted value for an error message: at most 64 characters, control
/// characters and backticks escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == 64 {
            out.push('…');
            break;
        }
        match c {
            '`' => out.push('\''),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// A verified token's claims and what was learnt verifying it.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Value,
    pub issuer: String,
    pub sub: Option<String>,
    pub kid: Option<String>,
    pub alg: Alg,
    pub exp: f64,
    pub nbf: Option<f64>,
    pub iat: Option<f64>,
    pub leeway: i64,
    /// From the issuer's scope claim: a space-separated string or an array of strings.
    pub scopes: Vec<String>,
    /// From the issuer's roles claim: an array of strings or a single string.
    pub roles: Vec<String>,
}

impl Verified {
    /// Checks `exp`, `nbf` and `iat` against `now` with the issuer's leeway; done on every
    /// use of a cached verification, not only when the signature was checked.
    pub fn check_time(&self, now: i64) -> Result<(), TokenError> {
        let now = now as f64;
        let leeway = self.leeway as f64;
        if now >= self.exp + leeway {
            return Err(TokenError::Expired);
        }
        if self.nbf.is_some_and(|nbf| now + leeway < nbf) {
            return Err(TokenError::NotYetValid);
        }
        if self.iat.is_some_and(|iat| iat > now + leeway) {
            return Err(TokenError::IssuedInFuture);
        }
        Ok(())
    }

    /// Seconds until `exp` (negative once past), without leeway.
    pub fn expires_in(&self, now: i64) -> i64 {
        (self.exp - now as f64).floor() as i64
    }

    pub fn claim(&self, path: &str) -> Option<&Value> {
        path::lookup(&self.claims, path)
    }
}

/// Verifies `token` against `trust` at time `now` (seconds since the epoch).
pub fn verify_token(
    token: &str,
    trust: &TrustConfig,
    now: i64,
    max_len: usize,
) -> Result<Verified, TokenError> {
    let verified = verify_untimed(token, trust, max_len)?;
    verified.check_time(now)?;
    Ok(verified)
}

/// Everything [`verify_token`] checks but the time claims' values (their presence and types
/// are checked). The result must pass [`Verified::check_time`] before any claim is used:
/// a cache of verifications calls it on every use, and can then report an expired token's
/// identity and age instead of only "invalid".
pub fn verify_untimed(
    token: &str,
    trust: &TrustConfig,
    max_len: usize,
) -> Result<Verified, TokenError> {
    let Opened {
        jws,
        claims: map,
        issuer,
        config,
    } = open(token, trust, max_len)?;
    let key = jws.verify(&config.keys, &config.algorithms)?;
    let kid = key.kid.clone();
    check_typ(config, jws.header.typ.as_deref())?;
    // A Back-Channel Logout token is no access token (its `aud` may be the same client id).
    let logout_typ = jws
        .header
        .typ
        .as_deref()
        .is_some_and(|t| media_type(t) == "logout+jwt");
    let logout_event = map
        .get("events")
        .and_then(Value::as_object)
        .is_some_and(|e| e.contains_key(logout::BACKCHANNEL_LOGOUT_EVENT));
    if logout_typ || logout_event {
        return Err(TokenError::Logout(
            "a logout token is not accepted as an access token",
        ));
    }
    let exp = numeric_date(&map, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    let nbf = numeric_date(&map, "nbf")?;
    let iat = numeric_date(&map, "iat")?;
    let sub = match map.get("sub") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(TokenError::ClaimType("sub")),
    };
    // Revocations name a token by its `jti` and a session by its `sid`, both strings (RFC
    // 7519 §4.1.7, OIDC Back-Channel Logout §2.4): one of another type could not be revoked.
    for name in ["jti", "sid"] {
        if map.get(name).is_some_and(|v| !v.is_string()) {
            return Err(TokenError::ClaimType(name));
        }
    }
    check_audience(config, &map)?;
    let claims = Value::Object(map);
    Ok(Verified {
        issuer,
        sub,
        kid,
        alg: jws.header.alg,
        exp,
        nbf,
        iat,
        leeway: config.leeway,
        scopes: scopes_of(&claims, Some(config)),
        roles: roles_of(&claims, Some(config)),
        claims,
    })
}

/// A token past the checks every kind of token shares: under the size cap, a structurally
/// valid compact JWS whose payload is a strict-JSON object (without U+0000, which Postgres
/// text cannot hold), naming in `iss` a configured issuer. Its signature is not checked yet.
struct Opened<'t, 'c> {
    jws: jws::Jws<'t>,
    claims: Map<String, Value>,
    issuer: String,
    config: &'c IssuerConfig,
}

fn open<'t, 'c>(
    token: &'t str,
    trust: &'c TrustConfig,
    max_len: usize,
) -> Result<Opened<'t, 'c>, TokenError> {
    if token.len() > max_len {
        return Err(TokenError::TooLarge {
            len: token.len(),
            max: max_len,
        });
    }
    let jws = jws::Jws::parse(token)?;
    // Refused here, before any claim is read.
    let claims = parse_strict(&jws.payload).map_err(|e| match e {
        JsonError::Nul => TokenError::NulCharacter,
        JsonError::Invalid(why) => TokenError::Malformed(format!("payload: {why}")),
    })?;
    let Value::Object(claims) = claims else {
        return Err(TokenError::Malformed("payload is not a JSON object".into()));
    };
    let issuer = match claims.get("iss") {
        Some(Value::String(iss)) => iss.clone(),
        Some(_) => return Err(TokenError::ClaimType("iss")),
        None => return Err(TokenError::MissingClaim("iss")),
    };
    let config = trust
        .issuer(&issuer)
        .ok_or_else(|| TokenError::UnknownIssuer(quote(&issuer)))?;
    Ok(Opened {
        jws,
        claims,
        issuer,
        config,
    })
}

/// The `iss` a token claims, before any check: only to choose where to look for keys (the
/// worker's early refresh of a discovery issuer), never to trust.
pub fn unverified_issuer(token: &str) -> Option<String> {
    let jws = jws::Jws::parse(token).ok()?;
    match parse_strict(&jws.payload).ok()? {
        Value::Object(map) => match map.get("iss") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// A header `typ` as compared (RFC 7515 §4.1.9): media types compare case-insensitively,
/// and `application/` may be omitted.
fn media_type(t: &str) -> String {
    let t = t.to_ascii_lowercase();
    t.strip_prefix("application/")
        .map(str::to_owned)
        .unwrap_or(t)
}

fn check_typ(config: &IssuerConfig, typ: Option<&str>) -> Result<(), TokenError> {
    let Some(expected) = &config.required_typ else {
        return Ok(());
    };
    match typ {
        Some(t) if media_type(t) == media_type(expected) => Ok(()),
        _ => Err(TokenError::Type {
            expected: expected.clone(),
        }),
    }
}

fn numeric_date(map: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, TokenError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if (0.0..=MAX_NUMERIC_DATE).contains(&v) => Ok(Some(v)),
            _ => Err(TokenError::ClaimType(name)),
        },
        Some(_) => Err(TokenError::ClaimType(name)),
    }
}

fn check_audience(config: &IssuerConfig, map: &Map<String, Value>) -> Result<(), TokenError> {
    let accepted = |a: &str| config.audiences.iter().any(|c| c == a);
    match map.get("aud") {
        None => Err(TokenError::MissingClaim("aud")),
        Some(Value::String(a)) if accepted(a) => Ok(()),
        Some(Value::String(_)) => Err(TokenError::Audience),
        Some(Value::Array(list)) => {
            let mut hit = false;
            for a in list {
                match a {
                    Value::String(a) => hit |= accepted(a),
                    _ => return Err(TokenError::ClaimType("aud")),
                }
            }
            if hit {
                Ok(())
            } else {
                Err(TokenError::Audience)
            }
        }
        Some(_) => Err(TokenError::ClaimType("aud")),
    }
}

/// Strings at `path`: an array's string members, or one string (split on spaces when
/// `split`, as OAuth's `scope`). Anything else, or nothing there, is no strings: a
/// malformed claim grants nothing.
/// The scopes of `claims` by the issuer's scope mapping (`scope` when no issuer is known).
pub fn scopes_of(claims: &Value, config: Option<&IssuerConfig>) -> Vec<String> {
    strings_at(
        claims,
        config.map_or("scope", |c| c.scopes_claim.as_str()),
        true,
    )
}

/// The roles of `claims` by the issuer's role mapping (`roles` when no issuer is known).
pub fn roles_of(claims: &Value, config: Option<&IssuerConfig>) -> Vec<String> {
    strings_at(
        claims,
        config.map_or("roles", |c| c.roles_claim.as_str()),
        false,
    )
}

/// The scopes of `claims` at the claim path `path` (an issuer's `scopes_claim`).
pub fn scopes_at(claims: &Value, path: &str) -> Vec<String> {
    strings_at(claims, path, true)
}

/// The roles of `claims` at the claim path `path` (an issuer's `roles_claim`).
pub fn roles_at(claims: &Value, path: &str) -> Vec<String> {
    strings_at(claims, path, false)
}

fn strings_at(claims: &Value, path: &str, split: bool) -> Vec<String> {
    match path::lookup(claims, path) {
        Some(Value::String(s)) if split => s.split_ascii_whitespace().map(str::to_owned).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Parses a UUID in its canonical 8-4-4-4-12 hex form (either case) or as 32 hex digits.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = match s.len() {
        36 => {
            let b = s.as_bytes();
            if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
                return None;
            }
            b.iter().copied().filter(|c| *c != b'-').collect()
        }
        32 => s.as_bytes().to_vec(),
        _ => return None,
    };
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// SHA-256 of the token: the key of the per-backend verification cache, so the cache holds
/// no token text and compares fixed-size keys.
pub fn fingerprint(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The bearer token of a PostgREST-style `request.headers` JSON object: the
/// `authorization` member (any case) when it reads `Bearer <token>` (scheme in any case).
pub fn bearer_from_headers(headers: &str) -> Option<String> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(headers) else {
        return None;
    };
    let value = map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.as_str())?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}
