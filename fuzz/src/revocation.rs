//! Structure-aware revocations: the input chooses rows of `oidc.revocations` (well-formed or
//! not: any kind text, empty or missing members, instants that are numbers, texts or absent)
//! and verified tokens (issuer, `jti`, `sid`, `sub`, `iat`, each present or not), drawn from
//! small vocabularies so that rows and tokens meet. [`Revocations`] (hash maps, the latest
//! instant per subject) must decide every token as a plain scan of the rows does, which
//! reads the table's contract straight off `core/src/revocation.rs`'s documentation:
//!
//! - `token`: a row of the token's issuer whose value is its `jti`;
//! - `session`: a row of its issuer whose value is its `sid`; and, for a row naming the
//!   session's subject, every token of that subject without a `sid` issued before the row's
//!   instant (or with no `iat`, or with no readable instant in the row: fails closed);
//! - `subject`: a row of its issuer whose value is its `sub`, for a token issued before the
//!   row's instant (or with no `iat`; a row without a readable instant revokes every token
//!   of the subject, and is reported);
//!
//! the first that applies in that order (token, session, subject, the session's subject)
//! names the kind. A row without a known kind, an issuer or a value revokes nothing and is
//! reported. Revocation never depends on the other rows' order.

use super::gen;
use arbitrary::{Arbitrary, Result, Unstructured};
use oidc_authz_core::config::ConfigError;
use oidc_authz_core::revocation::{Kind, Revocations};
use oidc_authz_core::token::alg::Alg;
use oidc_authz_core::token::{TokenError, Verified};
use serde_json::{Map, Value};

const ISSUERS: [&str; 3] = ["https://a.test", "https://b.test", ""];
const VALUES: [&str; 5] = ["alice", "bob", "s1", "j1", ""];
const KINDS: [&str; 6] = ["token", "session", "subject", "Token", "", "sessions"];

/// The `revocation` target.
pub fn revocation(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((rows, tokens)) = build(&mut u) else {
        return;
    };
    let (revocations, errors) = Revocations::from_rows(&rows);
    let expected: Vec<ConfigError> = rows.iter().filter_map(reported).collect();
    if errors != expected {
        super::broken(format_args!(
            "{errors:?} reported, {expected:?} expected (in the rows' order): {rows:?}"
        ));
    }
    let mut reversed = rows.clone();
    reversed.reverse();
    let (reversed, _) = Revocations::from_rows(&reversed);
    for token in &tokens {
        let got = revocations.check(token);
        let want = scan(&rows, token).map_or(Ok(()), |kind| Err(TokenError::Revoked(kind)));
        if got != want {
            super::broken(format_args!(
                "{got:?} for {:?} (iat {:?}), {want:?} expected from the rows {rows:?}",
                token.claims, token.iat
            ));
        }
        if reversed.check(token) != got {
            super::broken(format_args!(
                "the rows' order changed the decision: {rows:?}"
            ));
        }
    }
}

fn build(u: &mut Unstructured) -> Result<(Vec<Value>, Vec<Verified>)> {
    let n = u.int_in_range(0..=8)?;
    let rows = (0..n).map(|_| row(u)).collect::<Result<_>>()?;
    let n = u.int_in_range(1..=4)?;
    let tokens = (0..n).map(|_| token(u)).collect::<Result<_>>()?;
    Ok((rows, tokens))
}

/// A text member: one of `choices`, any text, or absent, null or a number.
fn member(
    u: &mut Unstructured,
    map: &mut Map<String, Value>,
    key: &str,
    choices: &[&str],
) -> Result<()> {
    match u.choose_index(6)? {
        0..=2 => {
            map.insert(key.into(), Value::String(u.choose(choices)?.to_string()));
        }
        3 => {
            map.insert(key.into(), Value::String(gen::string(u)?));
        }
        4 => {}
        _ => {
            map.insert(key.into(), gen::value(u, 0)?);
        }
    }
    Ok(())
}

/// A row as the extension reads it: `to_jsonb` of the table's row plus `issued_before_epoch`.
fn row(u: &mut Unstructured) -> Result<Value> {
    let mut map = Map::new();
    member(u, &mut map, "kind", &KINDS)?;
    member(u, &mut map, "issuer", &ISSUERS)?;
    member(u, &mut map, "value", &VALUES)?;
    if bool::arbitrary(u)? {
        member(u, &mut map, "sub", &VALUES)?;
    }
    match u.choose_index(4)? {
        0 | 1 => {
            map.insert(
                "issued_before_epoch".into(),
                Value::from(u.int_in_range(0..=4)? * 100),
            );
        }
        2 => {}
        _ => {
            map.insert("issued_before_epoch".into(), gen::value(u, 0)?);
        }
    }
    Ok(Value::Object(map))
}

/// A verified token: only what revocation reads is chosen.
fn token(u: &mut Unstructured) -> Result<Verified> {
    let issuer = u.choose(&ISSUERS[..2])?.to_string();
    let mut claims = Map::new();
    for key in ["jti", "sid", "sub"] {
        member(u, &mut claims, key, &VALUES)?;
    }
    // (the verifier reads a numeric `iat` or refuses the token)
    // (on, just before and between the rows' instants, which are multiples of 100)
    let iat = match u.choose_index(3)? {
        0 | 1 => Some(
            f64::from(u.int_in_range(0..=10u8)?) * 50.0 - f64::from(u.int_in_range(0..=1u8)?) / 2.0,
        ),
        _ => None,
    };
    if let Some(iat) = iat {
        claims.insert("iat".into(), Value::from(iat));
    }
    // The verified subject, which revocation must read (not the claims' member): mostly the
    // claims' `sub` as the verifier sets it, sometimes another.
    let sub = if u.ratio(1, 8)? {
        Some(u.choose(&VALUES)?.to_string())
    } else {
        claims
            .get("sub")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(Verified {
        claims: Value::Object(claims),
        issuer,
        sub,
        kid: None,
        alg: Alg::RS256,
        exp: 2e9,
        nbf: None,
        iat,
        leeway: 0,
        scopes: Vec::new(),
        roles: Vec::new(),
    })
}

/// A member that is a non-empty text.
fn text<'a>(row: &'a Value, key: &str) -> Option<&'a str> {
    row.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn kind(row: &Value) -> Option<Kind> {
    match text(row, "kind")? {
        "token" => Some(Kind::Token),
        "session" => Some(Kind::Session),
        "subject" => Some(Kind::Subject),
        _ => None,
    }
}

/// A row's instant, when it has a readable one.
fn instant(row: &Value) -> Option<f64> {
    row.get("issued_before_epoch")
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite())
}

/// What the extension reports of the row: incomplete, or a subject without an instant.
fn reported(row: &Value) -> Option<ConfigError> {
    match (kind(row), text(row, "issuer"), text(row, "value")) {
        (Some(Kind::Subject), Some(_), Some(_)) => instant(row)
            .is_none()
            .then_some(ConfigError::RevocationWithoutInstant),
        (Some(_), Some(_), Some(_)) => None,
        _ => Some(ConfigError::IncompleteRevocation),
    }
}

/// The kind of the first revocation that applies to the token, scanning the rows.
fn scan(rows: &[Value], v: &Verified) -> Option<Kind> {
    let claim = |k: &str| v.claims.get(k).and_then(Value::as_str);
    let complete = |r: &&Value, k: Kind| {
        kind(r) == Some(k)
            && text(r, "issuer") == Some(v.issuer.as_str())
            && text(r, "value").is_some()
    };
    let issued_before =
        |r: &Value| instant(r).is_none_or(|before| v.iat.is_none_or(|iat| iat < before));
    let of = |k: Kind| rows.iter().filter(move |r| complete(r, k));
    if of(Kind::Token).any(|r| text(r, "value") == claim("jti")) {
        return Some(Kind::Token);
    }
    if of(Kind::Session).any(|r| text(r, "value") == claim("sid")) {
        return Some(Kind::Session);
    }
    let sub = v.sub.as_deref()?;
    if of(Kind::Subject).any(|r| text(r, "value") == Some(sub) && issued_before(r)) {
        return Some(Kind::Subject);
    }
    let names_a_session = claim("sid").is_some_and(|s| !s.is_empty());
    if !names_a_session
        && of(Kind::Session).any(|r| text(r, "sub") == Some(sub) && issued_before(r))
    {
        return Some(Kind::Session);
    }
    None
}
