//! Structure-aware tokens: the input chooses an issuer, a signing key, header and claims
//! (well-formed or not, one choice at a time) and how the token is encoded and signed; the
//! harness assembles and signs it, so the fuzzer gets past base64url, JSON and the signature
//! to the claim checks. Every token goes through [`check_token`]'s properties; a token made
//! only of good choices must also be accepted (as an access token by `token_structured`, as
//! a logout token by `logout`): the verifier must not refuse what the rules allow.

use super::gen;
use super::keys::{self, fixture, IssuerSpec, LOGOUT_AUD, MAX_LEN, NOW};
use super::token::check_token;
use arbitrary::{Arbitrary, Result, Unstructured};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use oidc_authz_core::token::alg::Alg;
use oidc_authz_core::token::logout::BACKCHANNEL_LOGOUT_EVENT;
use serde_json::{json, Value};

/// The `token_structured` target: access tokens.
pub fn token_structured(data: &[u8]) {
    run(data, false);
}

/// The `logout` target: Back-Channel Logout tokens.
pub fn logout(data: &[u8]) {
    run(data, true);
}

fn run(data: &[u8], logout: bool) {
    let mut u = Unstructured::new(data);
    let Ok(built) = build(&mut u, logout) else {
        return;
    };
    let outcome = check_token(&built.token);
    if built.good && built.token.len() <= MAX_LEN {
        let accepted = if logout {
            outcome.logout
        } else {
            outcome.access
        };
        assert!(
            accepted,
            "a token of good choices only was refused: {}",
            built.token
        );
    }
}

/// A token, and whether every choice that made it was a good one.
struct Built {
    token: String,
    good: bool,
}

/// Accumulates the choices' verdicts.
struct Choices {
    good: bool,
}

impl Choices {
    /// Records a choice: index 0 (the common one, also what an exhausted input picks) up to
    /// `n - 1`; those below `good_below` keep the token good.
    fn pick(&mut self, u: &mut Unstructured, n: usize, good_below: usize) -> Result<usize> {
        let i = u.choose_index(n)?;
        self.good &= i < good_below;
        Ok(i)
    }
}

const ALG_NAMES: [&str; 17] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    "HS256", "HS384", "HS512", "none", "None", "ES521", "hs256",
];

fn build(u: &mut Unstructured, logout: bool) -> Result<Built> {
    let mut c = Choices { good: true };
    let f = fixture();

    // Issuer: a configured one, or another text.
    let enabled: Vec<&IssuerSpec> = keys::ISSUERS
        .iter()
        .filter(|s| s.enabled && (!logout || s.logout))
        .collect();
    let others: Vec<&IssuerSpec> = keys::ISSUERS
        .iter()
        .filter(|s| !enabled.iter().any(|e| e.issuer == s.issuer))
        .collect();
    let spec: &IssuerSpec = match c.pick(u, 3, 1)? {
        0 => u.choose(&enabled)?,
        1 => u.choose(&others)?,
        _ => &keys::ISSUERS[0],
    };
    let iss = match c.pick(u, 6, 1)? {
        0 => json!(spec.issuer),
        1 => json!(format!("{}/", spec.issuer)),
        2 => json!(String::arbitrary(u)?),
        3 => gen::value(u, 2)?,
        _ => Value::Null,
    };

    // The signing key: one of the issuer's, with its algorithm, or any other key and name.
    let key = u.choose_index(spec.key_count())?;
    let key_algs = spec.key_algs(key);
    let (file, alg_name) = match c.pick(u, 4, 1)? {
        0 if !key_algs.is_empty() => {
            let alg = *u.choose(&key_algs)?;
            (spec.key_file(key), alg.name().to_string())
        }
        0 | 1 => (
            u.choose_index(f.material.len())?,
            u.choose(&ALG_NAMES)?.to_string(),
        ),
        2 => (spec.key_file(key), String::arbitrary(u)?),
        _ => (spec.key_file(key), u.choose(&ALG_NAMES)?.to_string()),
    };
    c.good &= !key_algs.is_empty();
    let alg: Option<Alg> = alg_name.parse().ok();

    // Header.
    let mut header: Vec<(String, Value)> = vec![("alg".into(), json!(alg_name))];
    let kid = spec.kid(key);
    let only_key = alg.and_then(|a| keys::pick_key(spec, None, a)) == Some(key);
    match c.pick(u, 5, 2)? {
        0 => header.extend(kid.map(|k| ("kid".into(), json!(k)))),
        // Without a kid: good when the key is the only one for the algorithm.
        1 => c.good &= only_key,
        2 => header.push(("kid".into(), json!(String::arbitrary(u)?))),
        3 => header.push(("kid".into(), gen::value(u, 1)?)),
        _ => header.push((
            "kid".into(),
            json!(u.choose(&["rs256", "hs256", "eddsa", "es256"])?),
        )),
    }
    let typs: &[&str] = match (logout, spec.required_typ) {
        (true, _) => &["logout+jwt", "application/logout+jwt", "Logout+JWT"],
        (false, Some(_)) => &["at+jwt", "application/at+jwt", "AT+JWT"],
        (false, None) => &["JWT", "at+jwt", "application/at+jwt"],
    };
    match c.pick(u, 6, 2)? {
        0 if logout || spec.required_typ.is_none() => {}
        0 => c.good = false,
        1 => header.push(("typ".into(), json!(u.choose(typs)?))),
        2 => header.push(("typ".into(), json!("logout+jwt"))),
        3 => header.push(("typ".into(), json!("at+jwt"))),
        4 => header.push(("typ".into(), json!(String::arbitrary(u)?))),
        _ => header.push(("typ".into(), gen::value(u, 1)?)),
    }
    for _ in 0..u.int_in_range(0..=2)? {
        // Members the verifier ignores, then members it refuses (`b64` unless true).
        let names = [
            "jwk", "jku", "x5u", "x5c", "cty", "b64", "crit", "enc", "zip",
        ];
        let i = c.pick(u, names.len() + 1, 5)?;
        let name = match names.get(i) {
            Some(name) => name.to_string(),
            None => String::arbitrary(u)?,
        };
        let value = gen::value(u, 2)?;
        c.good &= !header.iter().any(|(n, _)| *n == name) && !gen::has_nul(&value);
        header.push((name, value));
    }

    // Claims.
    let mut claims: Vec<(String, Value)> = Vec::new();
    if !iss.is_null() || c.pick(u, 2, 0)? == 0 {
        claims.push(("iss".into(), iss));
    }
    let auds: Vec<&str> = if logout {
        vec![LOGOUT_AUD]
    } else {
        spec.audiences.to_vec()
    };
    let aud = match c.pick(u, 7, 2)? {
        0 => Some(json!(u.choose(&auds)?)),
        1 => Some(json!([gen::text(u)?, u.choose(&auds)?])),
        2 => None,
        3 => Some(json!("api://elsewhere")),
        4 => Some(json!([u.choose(&auds)?, gen::value(u, 1)?])),
        5 => Some(json!(if logout { "api://test" } else { LOGOUT_AUD })),
        _ => Some(gen::value(u, 2)?),
    };
    claims.extend(aud.map(|a| ("aud".into(), a)));
    let leeway = spec.leeway;
    // exp: required, in the future (past the leeway); iat and nbf: optional, in the past,
    // except that a logout token needs iat.
    let exp = time(u, &mut c, NOW + leeway + 1..=NOW + 1_000_000, false)?;
    let iat = time(u, &mut c, NOW - 1_000_000..=NOW, !logout)?;
    let nbf = time(u, &mut c, NOW - 1_000_000..=NOW, true)?;
    for (name, v) in [("exp", exp), ("iat", iat), ("nbf", nbf)] {
        claims.extend(v.map(|v| (name.to_string(), v)));
    }
    // sub, sid, jti: strings; a logout token needs them non-empty, and its jti.
    let text = |u: &mut Unstructured, c: &mut Choices, required: bool| -> Result<Option<Value>> {
        let i = u.choose_index(5)?;
        c.good &= i == 0 || (i == 1 && !required) || (i == 2 && !logout);
        Ok(match i {
            0 => Some(json!(gen::text(u)?))
                .filter(|s| s != "")
                .or(Some(json!("x"))),
            1 => None,
            2 => Some(json!("")),
            3 => Some(json!("victim\u{0}x")),
            _ => Some(gen::value(u, 1)?),
        })
    };
    let sub = text(u, &mut c, false)?;
    let sid = text(u, &mut c, false)?;
    let jti = text(u, &mut c, logout)?;
    if logout && sub.is_none() && sid.is_none() {
        c.good = false;
    }
    for (name, v) in [("sub", sub), ("sid", sid), ("jti", jti)] {
        claims.extend(v.map(|v| (name.to_string(), v)));
    }
    let event = json!({ BACKCHANNEL_LOGOUT_EVENT: {} });
    match c.pick(u, 4, 1)? {
        0 if logout => claims.push(("events".into(), event)),
        0 => {}
        1 => claims.push(("events".into(), event)),
        2 => claims.push(("events".into(), json!({ BACKCHANNEL_LOGOUT_EVENT: "x" }))),
        _ => claims.push(("events".into(), gen::value(u, 2)?)),
    }
    if u.choose_index(2)? == 1 {
        // A nonce: an ID token's; fine in an access token, never in a logout token.
        c.good &= !logout;
        claims.push(("nonce".into(), json!(gen::text(u)?)));
    }
    const RESERVED: [&str; 10] = [
        "iss", "aud", "exp", "iat", "nbf", "sub", "sid", "jti", "events", "nonce",
    ];
    for _ in 0..u.int_in_range(0..=4)? {
        let name = gen::name(u)?;
        let value = gen::value(u, 3)?;
        c.good &= !RESERVED.contains(&name.as_str())
            && !name.contains('\0')
            && !gen::has_nul(&value)
            && !claims.iter().any(|(n, _)| *n == name);
        claims.push((name, value));
    }

    // Encoding and signature.
    let mut header_text = members(&header);
    let mut payload_text = members(&claims);
    match c.pick(u, 8, 3)? {
        0 => {}
        // JSON allows whitespace around the object: still a good token.
        1 => header_text = format!("{}{header_text}", " ".repeat(u.int_in_range(1..=12)?)),
        2 => payload_text = format!("\n\t {payload_text} \r\n"),
        3 => header_text = header_text.replacen('{', "{\"alg\":\"HS256\",", 1),
        4 => payload_text = payload_text.replacen('{', "{\"sub\":\"mallory\",", 1),
        5 => header_text = String::arbitrary(u)?,
        6 => payload_text = String::arbitrary(u)?,
        _ => payload_text = format!("{payload_text}{}", String::arbitrary(u)?),
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header_text),
        URL_SAFE_NO_PAD.encode(payload_text)
    );
    let sign_alg = alg.unwrap_or(Alg::HS256);
    let material = &f.material[file];
    let mut signature = material.sign(sign_alg, signing_input.as_bytes());
    match c.pick(u, 6, 1)? {
        0 => {}
        1 => {
            let i = u.choose_index(signature.len().max(1))?;
            if let Some(b) = signature.get_mut(i) {
                *b ^= 1 << u.int_in_range(0..=7)?;
            }
        }
        2 => signature.truncate(u.choose_index(signature.len().max(1))?),
        3 => signature = Vec::<u8>::arbitrary(u)?,
        4 => {
            let other = u.choose_index(f.material.len())?;
            signature = f.material[other].sign(sign_alg, signing_input.as_bytes());
        }
        _ => signature.clear(),
    }
    let mut token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&signature));
    match c.pick(u, 6, 1)? {
        0 => {}
        1 => token.push('='),
        2 => token = format!("{token}.{}", String::arbitrary(u)?),
        3 => token.insert(u.choose_index(token.len())?.min(token.len()), ' '),
        4 => token = token.replacen('.', "..", 1),
        _ => {
            let at = u.choose_index(token.len())?;
            if token.is_char_boundary(at) {
                token.insert_str(at, &String::arbitrary(u)?);
            }
        }
    }
    Ok(Built {
        token,
        good: c.good,
    })
}

/// A claim's NumericDate: mostly a number of seconds in `good` (a whole one or, a half second
/// further from the boundary, a fraction), else out of it, of the wrong type, or absent
/// (good when `optional`).
fn time(
    u: &mut Unstructured,
    c: &mut Choices,
    good: std::ops::RangeInclusive<i64>,
    optional: bool,
) -> Result<Option<Value>> {
    let half = if *good.start() > NOW { 0.5 } else { -0.5 };
    let i = u.choose_index(9)?;
    c.good &= i < 2 || (i == 2 && optional);
    Ok(match i {
        0 => Some(json!(u.int_in_range(good)?)),
        1 => Some(json!(u.int_in_range(good)? as f64 + half)),
        2 => None,
        3 => Some(json!(u.int_in_range(NOW - 2_000_000..=NOW + 2_000_000)?)),
        4 => Some(json!(u.int_in_range(good)?.to_string())),
        5 => Some(json!(-1)),
        6 => Some(json!(253_402_300_800i64)),
        7 => Some(json!(1e300)),
        _ => Some(gen::value(u, 1)?),
    })
}

/// A JSON object's text from members in order, duplicates kept.
fn members(members: &[(String, Value)]) -> String {
    let body: Vec<String> = members
        .iter()
        .map(|(n, v)| format!("{}:{v}", Value::String(n.clone())))
        .collect();
    format!("{{{}}}", body.join(","))
}
