//! The "Tokens" table of SECURITY.md, row by row, at the full JWT layer: every token goes through
//! [`verify_token`] against a [`TrustConfig`] built from `oidc.issuers`-shaped rows.
//!
//! Tokens are signed by an independent library, `jsonwebtoken` (or by aws-lc-rs directly for
//! ES512, which `jsonwebtoken` lacks, and for hand-made headers and payloads). Each rejection
//! asserts the `TokenError` variant and its `check()` name, so a test shows why a token is refused,
//! and that the error text leaks neither the token nor key material (the "leakage" row).
//! The clock is injected: `NOW` throughout.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, PublicKey as RsaPublicKey, PublicKeyComponents};
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oidc_authz_core::token::alg::Alg;
use oidc_authz_core::{verify_token, TokenError, TrustConfig, Verified};
use serde_json::{json, Value};
use std::sync::OnceLock;

const ISS: &str = "https://issuer.test";
const AUD: &str = "api://test";
/// The injected clock: 2027-01-15T08:00:00Z.
const NOW: i64 = 1_800_000_000;
/// `leeway_seconds` of every issuer row here.
const LEEWAY: i64 = 30;
/// The size cap passed to `verify_token`, as the default `oidc.max_token_bytes`.
const MAX_LEN: usize = 16 * 1024;

// ---------------------------------------------------------------------------------------------
// Keys

/// A signing key for `jsonwebtoken`, with the public JWK an issuer row would configure.
struct Signer {
    key: EncodingKey,
    jwk: Value,
}

struct Fixture {
    /// The issuer's RSA key, `kid: rsa-1`; its JWK pins no `alg`, so it serves RS* and PS*.
    rsa: Signer,
    /// `rsa`'s public key as SPKI PEM text, as an attacker could fetch it.
    rsa_public_pem: String,
    /// An attacker's own RSA key, with a JWK claiming the real `kid: rsa-1`.
    attacker: Signer,
    /// P-256, `kid: ec-256`, with its PKCS #8 document for signing in DER form.
    ec256: Signer,
    ec256_pkcs8: Vec<u8>,
    /// A second P-256 key, `kid: ec-256b`, for the ambiguity test.
    ec256b: Signer,
    ec384: Signer,
    /// P-521, `kid: ec-521`: `jsonwebtoken` has no ES512, so aws-lc-rs signs.
    ec521: EcdsaKeyPair,
    ec521_jwk: Value,
    ed25519: Signer,
    /// A 64-byte HMAC secret, `kid: hs-1`: long enough for HS256, HS384 and HS512.
    hmac: Signer,
    /// A 1024-bit RSA public key, `kid: rsa-1024`.
    rsa1024_jwk: Value,
    /// Everything that must never appear in an error text: base64url of every secret and
    /// public component, the PEM lines of the keys, the JWK texts.
    material: Vec<String>,
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a broken key file fails the test"
)]
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn rsa_jwk(kid: &str, public: &RsaPublicKey) -> Value {
    let parts = PublicKeyComponents::<Vec<u8>>::from(public);
    json!({"kty": "RSA", "kid": kid, "n": b64(&parts.n), "e": b64(&parts.e)})
}

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a broken key file fails the test"
)]
fn rsa_signer(kid: &str, pem_text: &str) -> (Signer, RsaKeyPair) {
    // `jsonwebtoken` takes RSA keys as PKCS #1 DER, which is what the committed files hold.
    let der = pem_der(pem_text);
    let pair = RsaKeyPair::from_der(&der).unwrap();
    let signer = Signer {
        key: EncodingKey::from_rsa_der(&der),
        jwk: rsa_jwk(kid, pair.public_key()),
    };
    (signer, pair)
}

fn ec_jwk(kid: &str, crv: &str, point: &[u8]) -> Value {
    // An uncompressed SEC1 point: 04 ‖ x ‖ y.
    let (x, y) = point[1..].split_at((point.len() - 1) / 2);
    json!({"kty": "EC", "crv": crv, "kid": kid, "x": b64(x), "y": b64(y)})
}

#[expect(clippy::unwrap_used, reason = "test helper: key generation must work")]
fn ec_signer(kid: &str, crv: &str, alg: &'static EcdsaSigningAlgorithm) -> (Signer, Vec<u8>) {
    let pair = EcdsaKeyPair::generate(alg).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap().as_ref().to_vec();
    let signer = Signer {
        key: EncodingKey::from_ec_der(&pkcs8),
        jwk: ec_jwk(kid, crv, pair.public_key().as_ref()),
    };
    (signer, pkcs8)
}

#[expect(clippy::unwrap_used, reason = "test helper: key generation must work")]
fn build_fixture() -> Fixture {
    let (rsa, rsa_pair) = rsa_signer("rsa-1", include_str!("data/keys/rsa2048.pem"));
    let (attacker, _) = rsa_signer("rsa-1", include_str!("data/keys/rsa2048_attacker.pem"));
    let rsa_public_pem = pem(
        "PUBLIC KEY",
        rsa_pair.public_key().as_der().unwrap().as_ref(),
    );
    let weak_der = pem_der(include_str!("data/keys/rsa1024_public.pem"));
    let rsa1024_jwk = rsa_jwk("rsa-1024", &RsaPublicKey::from_der(&weak_der).unwrap());

    let (ec256, ec256_pkcs8) = ec_signer("ec-256", "P-256", &ECDSA_P256_SHA256_FIXED_SIGNING);
    let (ec256b, _) = ec_signer("ec-256b", "P-256", &ECDSA_P256_SHA256_FIXED_SIGNING);
    let (ec384, _) = ec_signer("ec-384", "P-384", &ECDSA_P384_SHA384_FIXED_SIGNING);
    let ec521 = EcdsaKeyPair::generate(&ECDSA_P521_SHA512_FIXED_SIGNING).unwrap();
    let ec521_jwk = ec_jwk("ec-521", "P-521", ec521.public_key().as_ref());

    let ed_pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let ed_public = Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let ed25519 = Signer {
        key: EncodingKey::from_ed_der(ed_pkcs8.as_ref()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": b64(&ed_public)}),
    };

    let mut secret = [0u8; 64];
    aws_lc_rs::rand::fill(&mut secret).unwrap();
    let hmac = Signer {
        key: EncodingKey::from_secret(&secret),
        jwk: json!({"kty": "oct", "kid": "hs-1", "k": b64(secret)}),
    };

    let mut material = vec![b64(secret), b64(&ed_pkcs8), b64(&ec256_pkcs8)];
    for jwk in [
        &rsa.jwk,
        &attacker.jwk,
        &rsa1024_jwk,
        &ec256.jwk,
        &ec256b.jwk,
        &ec384.jwk,
        &ec521_jwk,
        &ed25519.jwk,
        &hmac.jwk,
    ] {
        material.push(jwk.to_string());
        for member in ["n", "x", "y", "k"] {
            if let Some(text) = jwk.get(member).and_then(Value::as_str) {
                material.push(text.to_owned());
            }
        }
    }
    for pem_text in [
        include_str!("data/keys/rsa2048.pem"),
        include_str!("data/keys/rsa2048_attacker.pem"),
        include_str!("data/keys/rsa1024_public.pem"),
        &rsa_public_pem,
    ] {
        material.push(pem_text.to_owned());
        material.extend(
            pem_text
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_owned),
        );
    }
    Fixture {
        rsa,
        rsa_public_pem,
        attacker,
        ec256,
        ec256_pkcs8,
        ec256b,
        ec384,
        ec521,
        ec521_jwk,
        ed25519,
        hmac,
        rsa1024_jwk,
        material,
    }
}

/// Built once: RSA parsing and EC key generation are shared by all tests of this binary.
fn keys() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

// ---------------------------------------------------------------------------------------------
// Issuers

/// One `oidc.issuers` row as `to_jsonb(row)` gives it, with `jwks` holding `keys`.
fn row(keys: &[&Value], algorithms: &[&str]) -> Value {
    json!({
        "issuer": ISS,
        "audiences": [AUD],
        "jwks": {"keys": keys},
        "algorithms": algorithms,
        "leeway_seconds": LEEWAY,
        "required_typ": null,
        "roles_claim": "realm_access.roles",
        "scopes_claim": "scope",
    })
}

const ASYMMETRIC: [&str; 10] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
];

/// A configuration that must be accepted whole.
#[track_caller]
fn trust(row: Value) -> TrustConfig {
    let (trust, errors) = TrustConfig::from_rows(&[row]);
    assert_eq!(errors, vec![], "the row is valid");
    assert_eq!(trust.len(), 1);
    trust
}

/// A configuration that must be refused, for a reason containing `why`; returns the (empty)
/// trust that results, so a test can show the issuer's tokens then fail closed.
#[track_caller]
fn refused(row: Value, why: &str) -> TrustConfig {
    let (trust, errors) = TrustConfig::from_rows(&[row]);
    assert!(trust.is_empty(), "the row must be refused ({why})");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().contains(why),
        "`{}` lacks `{why}`",
        errors[0]
    );
    assert_no_leak(&errors[0].to_string(), "");
    trust
}

/// The usual issuer: the RSA, EC, and Ed25519 keys, every public-key algorithm.
fn public_keys() -> TrustConfig {
    let k = keys();
    trust(row(
        &[
            &k.rsa.jwk,
            &k.ec256.jwk,
            &k.ec384.jwk,
            &k.ec521_jwk,
            &k.ed25519.jwk,
        ],
        &ASYMMETRIC,
    ))
}

/// An issuer with the shared secret only (secrets and public keys never share an issuer).
fn shared_secret() -> TrustConfig {
    trust(row(&[&keys().hmac.jwk], &["HS256", "HS384", "HS512"]))
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// Claims that pass every check at `NOW`.
fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "iat": NOW - 10, "exp": NOW + 600})
}

/// `claims()` with `member` set to `value`, or removed when `value` is `None`.
fn claims_with(member: &str, value: Option<Value>) -> Value {
    let mut c = claims();
    if let Value::Object(m) = &mut c {
        match value {
            Some(v) => m.insert(member.to_owned(), v),
            None => m.remove(member),
        };
    }
    c
}

fn header(alg: Algorithm, kid: Option<&str>) -> Header {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    h
}

/// A token signed by `jsonwebtoken` from a typed header.
#[expect(clippy::unwrap_used, reason = "test helper: signing must work")]
fn sign(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).unwrap()
}

/// An RS256 token by the issuer's key, `kid: rsa-1`, with these claims.
fn rs256(claims: &Value) -> String {
    sign(
        &header(Algorithm::RS256, Some("rsa-1")),
        claims,
        &keys().rsa.key,
    )
}

/// A token from hand-written header and payload texts (so duplicates, `crit`, odd numbers and
/// deep nesting reach the verifier byte for byte), signed by `jsonwebtoken::crypto::sign`.
#[expect(clippy::unwrap_used, reason = "test helper: signing must work")]
fn raw(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{signature}")
}

/// `raw` with the issuer's RSA key and RS256.
fn raw_rs256(header: &str, payload: &str) -> String {
    raw(header, payload, &keys().rsa.key, Algorithm::RS256)
}

/// An ES512 token (P-521) signed by aws-lc-rs, since `jsonwebtoken` has no ES512.
#[expect(clippy::unwrap_used, reason = "test helper: signing must work")]
fn es512(header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = keys()
        .ec521
        .sign(&SystemRandom::new(), input.as_bytes())
        .unwrap();
    format!("{input}.{}", b64(signature.as_ref()))
}

#[expect(
    clippy::unwrap_used,
    reason = "test helper: the token has three segments"
)]
fn segments(token: &str) -> (&str, &str, &str) {
    let (input, s) = token.rsplit_once('.').unwrap();
    let (h, p) = input.split_once('.').unwrap();
    (h, p, s)
}

// ---------------------------------------------------------------------------------------------
// Checking

/// Verifies at `NOW`; a rejection fails the test, showing the error.
#[track_caller]
#[expect(
    clippy::unwrap_used,
    reason = "test helper: the token must be accepted"
)]
fn accepted(token: &str, trust: &TrustConfig) -> Verified {
    verify_token(token, trust, NOW, MAX_LEN).unwrap()
}

/// Asserts that `token` is refused with an error matching `is` (spelt `expected` in messages)
/// whose `check()` is `check`, and that the error text leaks nothing.
#[track_caller]
fn check_rejection(
    trust: &TrustConfig,
    token: &str,
    now: i64,
    max_len: usize,
    check: &str,
    expected: &str,
    is: impl FnOnce(&TokenError) -> bool,
) -> TokenError {
    let err = match verify_token(token, trust, now, max_len) {
        Ok(v) => wrongly_accepted(expected, &v),
        Err(e) => e,
    };
    assert!(is(&err), "expected {expected}, got {err:?}");
    assert_eq!(err.check(), check, "check name of {err:?}");
    assert_no_leak(&err.to_string(), token);
    err
}

#[track_caller]
#[expect(
    clippy::panic,
    reason = "test helper: an accepted token fails the test"
)]
fn wrongly_accepted(expected: &str, v: &Verified) -> ! {
    panic!("token accepted (sub {:?}), expected {expected}", v.sub);
}

/// `rejects!(trust, token, Pattern => "check")`, optionally `at now`, `max len`.
macro_rules! rejects {
    ($trust:expr, $token:expr, at $now:expr, max $max:expr, $pat:pat $(if $guard:expr)? => $check:literal) => {
        check_rejection(
            &$trust,
            &$token,
            $now,
            $max,
            $check,
            stringify!($pat $(if $guard)?),
            |e| matches!(e, $pat $(if $guard)?),
        )
    };
    ($trust:expr, $token:expr, at $now:expr, $pat:pat $(if $guard:expr)? => $check:literal) => {
        rejects!($trust, $token, at $now, max MAX_LEN, $pat $(if $guard)? => $check)
    };
    ($trust:expr, $token:expr, $pat:pat $(if $guard:expr)? => $check:literal) => {
        rejects!($trust, $token, at NOW, max MAX_LEN, $pat $(if $guard)? => $check)
    };
}

/// The leakage row: an error text must not contain the token, any of its segments, or any key
/// material. Compared by 16-byte windows of the error text, because `quote` truncates what it
/// shows (so a leaked value appears only in part), and 16 bytes of ordinary prose never match
/// base64 or PEM by chance.
#[track_caller]
fn assert_no_leak(text: &str, token: &str) {
    let mut secrets: Vec<&str> = keys().material.iter().map(String::as_str).collect();
    secrets.push(token);
    secrets.extend(token.split('.'));
    for s in secrets.into_iter().filter(|s| !s.is_empty()) {
        if s.len() < 16 {
            assert!(s.len() < 4 || !text.contains(s), "`{text}` contains `{s}`");
            continue;
        }
        for window in text.as_bytes().windows(16) {
            if let Ok(w) = std::str::from_utf8(window) {
                assert!(
                    !s.contains(w),
                    "error text `{text}` leaks `{w}` of the token or a key"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Positive tests

#[test]
fn every_algorithm_verifies() {
    let k = keys();
    let (public, secret) = (public_keys(), shared_secret());
    let cases: [(Algorithm, &EncodingKey, &str, &TrustConfig); 12] = [
        (Algorithm::HS256, &k.hmac.key, "hs-1", &secret),
        (Algorithm::HS384, &k.hmac.key, "hs-1", &secret),
        (Algorithm::HS512, &k.hmac.key, "hs-1", &secret),
        (Algorithm::RS256, &k.rsa.key, "rsa-1", &public),
        (Algorithm::RS384, &k.rsa.key, "rsa-1", &public),
        (Algorithm::RS512, &k.rsa.key, "rsa-1", &public),
        (Algorithm::PS256, &k.rsa.key, "rsa-1", &public),
        (Algorithm::PS384, &k.rsa.key, "rsa-1", &public),
        (Algorithm::PS512, &k.rsa.key, "rsa-1", &public),
        (Algorithm::ES256, &k.ec256.key, "ec-256", &public),
        (Algorithm::ES384, &k.ec384.key, "ec-384", &public),
        (Algorithm::EdDSA, &k.ed25519.key, "ed-1", &public),
    ];
    for (alg, key, kid, trust) in cases {
        // Both libraries spell the algorithms as RFC 7518 registers them.
        let ours: Alg = format!("{alg:?}").parse().unwrap();
        let sub = format!("user-{ours}");
        let token = sign(
            &header(alg, Some(kid)),
            &claims_with("sub", Some(json!(sub))),
            key,
        );
        let v = accepted(&token, trust);
        assert_eq!(v.sub.as_deref(), Some(sub.as_str()), "{ours}");
        assert_eq!(v.alg, ours);
        assert_eq!(v.kid.as_deref(), Some(kid));
        assert_eq!(v.issuer, ISS);
    }
    let token = es512(
        &json!({"alg": "ES512", "kid": "ec-521", "typ": "JWT"}),
        &claims_with("sub", Some(json!("user-ES512"))),
    );
    let v = accepted(&token, &public);
    assert_eq!(v.sub.as_deref(), Some("user-ES512"));
    assert_eq!((v.alg, v.kid.as_deref()), (Alg::ES512, Some("ec-521")));
}

#[test]
fn scopes_and_roles_come_from_the_configured_claims() {
    let mut c = claims();
    c["scope"] = json!("read  write\tadmin");
    c["realm_access"] = json!({"roles": ["editor", "reader"]});
    c["scp"] = json!(["not", "configured"]);
    let v = accepted(&rs256(&c), &public_keys());
    assert_eq!(v.scopes, ["read", "write", "admin"]);
    assert_eq!(v.roles, ["editor", "reader"]);

    // An issuer that puts scopes in an `scp` array (as Azure AD / Okta do).
    let mut r = row(&[&keys().rsa.jwk], &["RS256"]);
    r["scopes_claim"] = json!("scp");
    c["scp"] = json!(["orders.read", "orders.write"]);
    let v = accepted(&rs256(&c), &trust(r));
    assert_eq!(v.scopes, ["orders.read", "orders.write"]);
    assert_eq!(v.roles, ["editor", "reader"]);
}

#[test]
fn kid_less_token_needs_exactly_one_fitting_key() {
    let k = keys();
    // Only ec-256 can verify ES256 among the usual keys, so it is chosen without a kid.
    let token = sign(&header(Algorithm::ES256, None), &claims(), &k.ec256.key);
    let v = accepted(&token, &public_keys());
    assert_eq!(v.kid.as_deref(), Some("ec-256"));

    // With two P-256 keys the verifier would have to guess: it refuses instead.
    let two = trust(row(&[&k.ec256.jwk, &k.ec256b.jwk], &["ES256"]));
    rejects!(two, token, TokenError::AmbiguousKey => "kid");
    // Naming the key settles it.
    let named = sign(
        &header(Algorithm::ES256, Some("ec-256b")),
        &claims(),
        &k.ec256b.key,
    );
    assert_eq!(accepted(&named, &two).kid.as_deref(), Some("ec-256b"));
}

// ---------------------------------------------------------------------------------------------
// Row: `alg: none` / `None` / empty signature

#[test]
fn unsigned_tokens_are_never_accepted() {
    let t = public_keys();
    let payload = b64(claims().to_string());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64(json!({"alg": alg, "kid": "rsa-1"}).to_string());
        // RFC 7519 §6.1's unsecured JWT: an empty signature.
        rejects!(t, format!("{h}.{payload}."), TokenError::AlgNone => "alg");
        // Or some bytes where the signature would be.
        rejects!(t, format!("{h}.{payload}.c2lnbmF0dXJl"), TokenError::AlgNone => "alg");
    }
    // A genuine token whose signature is cut off.
    let good = rs256(&claims());
    let (h, p, _) = segments(&good);
    rejects!(t, format!("{h}.{p}."), TokenError::Malformed(_) => "format");
    // `alg` empty is an unknown algorithm; absent or not a string, a malformed header.
    let h = b64(r#"{"alg":"","kid":"rsa-1"}"#);
    rejects!(t, format!("{h}.{p}.c2lnbmF0dXJl"), TokenError::UnsupportedAlg(_) => "alg");
    for header_text in [r#"{"kid":"rsa-1"}"#, r#"{"alg":null,"kid":"rsa-1"}"#] {
        let h = b64(header_text);
        rejects!(t, format!("{h}.{p}.c2lnbmF0dXJl"), TokenError::Malformed(_) => "format");
    }
}

// ---------------------------------------------------------------------------------------------
// Row: algorithm confusion

#[test]
fn public_key_text_is_never_an_hmac_secret() {
    let k = keys();
    // What an attacker can fetch: the PEM (with or without its final newline), the JWK.
    let public_texts = [
        k.rsa_public_pem.clone(),
        k.rsa_public_pem.trim_end().to_owned(),
        k.rsa.jwk.to_string(),
    ];
    // An admin who also listed HS256 must not turn the RSA key into a secret either.
    let with_hs256 = trust(row(&[&k.rsa.jwk], &["RS256", "HS256"]));
    for text in public_texts {
        let key = EncodingKey::from_secret(text.as_bytes());
        let token = sign(&header(Algorithm::HS256, Some("rsa-1")), &claims(), &key);
        rejects!(public_keys(), token, TokenError::AlgNotAllowed(Alg::HS256) => "alg");
        rejects!(
            with_hs256,
            token,
            TokenError::KeyAlgMismatch { alg: Alg::HS256, .. } => "kid"
        );
        let no_kid = sign(&header(Algorithm::HS256, None), &claims(), &key);
        rejects!(with_hs256, no_kid, TokenError::NoKey(Alg::HS256) => "kid");
    }
}

// ---------------------------------------------------------------------------------------------
// Row: embedded `jwk`, `jku`, `x5u`, `x5c`

#[test]
fn keys_carried_by_the_token_are_never_used() {
    let k = keys();
    let t = public_keys();
    let payload = claims().to_string();
    // The attacker signs with their own key and offers it, under the real kid, every way a
    // header can carry or point at a key.
    let carriers = [
        json!({"alg": "RS256", "kid": "rsa-1", "jwk": k.attacker.jwk}),
        json!({"alg": "RS256", "jwk": k.attacker.jwk}),
        json!({"alg": "RS256", "kid": "rsa-1", "jku": "https://attacker.test/jwks.json"}),
        json!({"alg": "RS256", "kid": "rsa-1", "x5u": "https://attacker.test/cert.pem"}),
        json!({"alg": "RS256", "kid": "rsa-1", "x5c": [b64(b"attacker certificate")]}),
    ];
    for h in &carriers {
        let forged = raw(&h.to_string(), &payload, &k.attacker.key, Algorithm::RS256);
        rejects!(t, forged, TokenError::BadSignature => "signature");
        // The same header on a token the issuer did sign is fine: the member is just ignored.
        let genuine = raw_rs256(&h.to_string(), &payload);
        assert_eq!(accepted(&genuine, &t).kid.as_deref(), Some("rsa-1"));
    }
}

// ---------------------------------------------------------------------------------------------
// Row: `kid` tricks

#[test]
fn kid_must_match_a_configured_key_exactly() {
    let t = public_keys();
    for kid in ["../../x", "' or 1=1 --", "RSA-1", "rsa-1 ", "", "*"] {
        let token = sign(
            &header(Algorithm::RS256, Some(kid)),
            &claims(),
            &keys().rsa.key,
        );
        rejects!(t, token, TokenError::UnknownKid(_) => "kid");
    }
    // A kid ending in U+0000 is refused before any key is looked up, as any string holding it.
    let token = sign(
        &header(Algorithm::RS256, Some("rsa-1\0")),
        &claims(),
        &keys().rsa.key,
    );
    rejects!(t, token, TokenError::NulCharacter => "nul");
    // A JWKS naming two keys alike is refused when configured.
    let k = keys();
    let mut twin = k.ec256b.jwk.clone();
    twin["kid"] = json!("ec-256");
    refused(row(&[&k.ec256.jwk, &twin], &["ES256"]), "duplicate kid");
}

// ---------------------------------------------------------------------------------------------
// Row: ECDSA special values (CVE-2022-21449)

#[test]
fn ecdsa_signatures_must_be_fixed_width_and_in_range() {
    const P256_ORDER: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
    let n: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&P256_ORDER[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let t = public_keys();
    let good = sign(
        &header(Algorithm::ES256, Some("ec-256")),
        &claims(),
        &keys().ec256.key,
    );
    accepted(&good, &t);
    let (input, sig) = good.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let (r, s) = sig.split_at(32);
    let zero = [0u8; 32];
    let bad_signatures: [(&str, Vec<u8>); 6] = [
        ("r = s = 0", [zero, zero].concat()),
        ("r = 0", [&zero[..], s].concat()),
        ("s = 0", [r, &zero[..]].concat()),
        ("r = n", [&n[..], s].concat()),
        ("s = n", [r, &n[..]].concat()),
        ("a trailing byte", [&sig[..], &[0u8][..]].concat()),
    ];
    for (why, bad) in bad_signatures {
        println!("ES256 signature with {why}");
        rejects!(t, format!("{input}.{}", b64(bad)), TokenError::BadSignature => "signature");
    }
    // The same key signing the same input, DER-encoded: a valid ECDSA signature in the wrong
    // form. JWS takes only r ‖ s (RFC 7518 §3.4).
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &keys().ec256_pkcs8).unwrap();
    let der = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    assert_eq!(der.as_ref()[0], 0x30, "a DER SEQUENCE");
    rejects!(
        t,
        format!("{input}.{}", b64(der.as_ref())),
        TokenError::BadSignature => "signature"
    );
}

// ---------------------------------------------------------------------------------------------
// Row: weak keys

#[test]
fn weak_or_misfit_keys_are_refused_when_configured() {
    let k = keys();
    let token = rs256(&claims());

    // RSA under 2048 bits: the row is refused, so the issuer's tokens fail closed.
    let none = refused(row(&[&k.rsa1024_jwk], &["RS256"]), "1024 bits");
    rejects!(none, token, TokenError::UnknownIssuer(_) => "iss");

    // A 16-byte HMAC secret for HS256 (32 needed).
    let short = [7u8; 16];
    let jwk = json!({"kty": "oct", "kid": "hs-short", "k": b64(short)});
    let none = refused(row(&[&jwk], &["HS256"]), "16 bytes");
    let token16 = sign(
        &header(Algorithm::HS256, Some("hs-short")),
        &claims(),
        &EncodingKey::from_secret(&short),
    );
    rejects!(none, token16, TokenError::UnknownIssuer(_) => "iss");

    // A 32-byte secret serves HS256 but not HS384 (48 needed).
    let secret = [9u8; 32];
    let jwk = json!({"kty": "oct", "kid": "hs-32", "k": b64(secret)});
    let t = trust(row(&[&jwk], &["HS256", "HS384"]));
    let key = EncodingKey::from_secret(&secret);
    accepted(
        &sign(&header(Algorithm::HS256, Some("hs-32")), &claims(), &key),
        &t,
    );
    rejects!(
        t,
        sign(&header(Algorithm::HS384, Some("hs-32")), &claims(), &key),
        TokenError::KeyAlgMismatch { alg: Alg::HS384, .. } => "kid"
    );

    // `crv` and `alg` must agree, and `alg` must fit `kty`.
    let mut p256_as_es384 = k.ec256.jwk.clone();
    p256_as_es384["alg"] = json!("ES384");
    refused(row(&[&p256_as_es384], &ASYMMETRIC), "does not fit");
    let mut ed_as_es256 = k.ed25519.jwk.clone();
    ed_as_es256["alg"] = json!("ES256");
    refused(row(&[&ed_as_es256], &ASYMMETRIC), "does not fit");
    let mut p384_as_p256 = k.ec384.jwk.clone();
    p384_as_p256["crv"] = json!("P-256");
    refused(row(&[&p384_as_p256], &ASYMMETRIC), "32 bytes");
    // ...but a correct pin is honoured: the RSA key pinned to PS256 refuses RS256.
    let mut rsa_ps256 = k.rsa.jwk.clone();
    rsa_ps256["alg"] = json!("PS256");
    let pinned = trust(row(&[&rsa_ps256], &ASYMMETRIC));
    rejects!(
        pinned,
        token,
        TokenError::KeyAlgMismatch { alg: Alg::RS256, .. } => "kid"
    );

    // Encryption keys (`use: enc`, or `key_ops` without `verify`) never verify a signature.
    let ec_token = sign(
        &header(Algorithm::ES256, Some("ec-256")),
        &claims(),
        &k.ec256.key,
    );
    for (member, value) in [("use", json!("enc")), ("key_ops", json!(["encrypt"]))] {
        let mut enc = k.ec256.jwk.clone();
        enc[member] = value;
        // Alone it leaves the issuer without a signature key: refused.
        refused(row(&[&enc], &ASYMMETRIC), "no signature key");
        // Beside a signature key it is skipped, so its kid is unknown.
        let t = trust(row(&[&k.rsa.jwk, &enc], &ASYMMETRIC));
        rejects!(t, ec_token, TokenError::UnknownKid(_) => "kid");
    }
    // The same key marked for signing verifies: the refusals above are about `use`/`key_ops`.
    let mut sig = k.ec256.jwk.clone();
    sig["use"] = json!("sig");
    sig["key_ops"] = json!(["verify"]);
    accepted(&ec_token, &trust(row(&[&k.rsa.jwk, &sig], &ASYMMETRIC)));
}

// ---------------------------------------------------------------------------------------------
// Row: malformed encoding

/// Sets an unused low bit of the last character of a segment whose length is not a multiple
/// of 4, keeping its decoded bytes: the non-canonical spelling that strict base64url refuses.
#[expect(clippy::unwrap_used, reason = "test helper: the segment is base64url")]
fn with_trailing_bits(segment: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert_ne!(
        segment.len() % 4,
        0,
        "a full last quantum has no unused bits"
    );
    let last = segment.as_bytes()[segment.len() - 1];
    let index = ALPHABET.iter().position(|&c| c == last).unwrap();
    assert_eq!(index & 1, 0, "canonical: the unused bits are zero");
    let mut out = segment[..segment.len() - 1].to_owned();
    out.push(char::from(ALPHABET[index | 1]));
    out
}

#[test]
fn encoding_must_be_strict_compact_base64url() {
    let t = public_keys();
    let good = rs256(&claims());
    accepted(&good, &t);
    let (h, p, s) = segments(&good);

    // Five segments: a JWE. Four, two, one: nothing at all. A JSON serialization: refused too.
    rejects!(t, format!("{h}.{p}.{s}.{s}.{s}"), TokenError::Encrypted => "format");
    let malformed = [
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}.{p}"),
        h.to_owned(),
        json!({"protected": h, "payload": p, "signature": s}).to_string(),
    ];
    for token in malformed {
        rejects!(t, token, TokenError::Malformed(_) => "format");
    }
    // JWE header members on a three-segment token.
    rejects!(
        t,
        raw_rs256(r#"{"alg":"RS256","kid":"rsa-1","enc":"A256GCM"}"#, &claims().to_string()),
        TokenError::Encrypted => "format"
    );

    // Padding: a 256-byte signature is 342 characters, so it could be padded with `==`.
    assert_eq!(s.len() % 4, 2);
    let pad = |seg: &str| format!("{seg}{}", "=".repeat((4 - seg.len() % 4) % 4));
    // Whitespace anywhere, the standard alphabet, non-canonical trailing bits.
    let standard = s.replace('-', "+").replace('_', "/");
    assert_ne!(standard, s, "the signature has a `-` or `_` to swap");
    let mut tampered = vec![
        format!("{h}.{p}.{}", pad(s)),
        format!(" {good}"),
        format!("{good}\n"),
        format!("{good}\r\n"),
        format!("{h} .{p}.{s}"),
        format!("{h}.{p}.{}\t{}", &s[..20], &s[20..]),
        format!("{h}.{p}.{standard}"),
        format!("{h}.{p}.{}", with_trailing_bits(s)),
    ];
    if h.len() % 4 != 0 {
        tampered.push(format!("{}.{p}.{s}", pad(h)));
        tampered.push(format!("{}.{p}.{s}", with_trailing_bits(h)));
    }
    if p.len() % 4 != 0 {
        tampered.push(format!("{h}.{}.{s}", pad(p)));
        tampered.push(format!("{h}.{}.{s}", with_trailing_bits(p)));
    }
    for token in tampered {
        rejects!(t, token, TokenError::Malformed(_) => "format");
    }
}

// ---------------------------------------------------------------------------------------------
// Row: `crit`

#[test]
fn any_crit_header_is_refused() {
    let t = public_keys();
    let payload = claims().to_string();
    for h in [
        json!({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"], "exp": NOW + 600}),
        json!({"alg": "RS256", "kid": "rsa-1", "crit": ["b64"], "b64": true}),
        json!({"alg": "RS256", "kid": "rsa-1", "crit": []}),
    ] {
        rejects!(
            t,
            raw_rs256(&h.to_string(), &payload),
            TokenError::CritHeader => "crit"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Row: duplicate JSON members

#[test]
fn duplicate_members_are_refused() {
    let t = public_keys();
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"sub":"alice","sub":"admin"}}"#,
        NOW + 600
    );
    rejects!(
        t,
        raw_rs256(r#"{"alg":"RS256","kid":"rsa-1"}"#, &payload),
        TokenError::Malformed(m) if m.contains("duplicate member `sub`") => "format"
    );
    // A header that says both `none` and RS256, hoping two parsers disagree.
    rejects!(
        t,
        raw_rs256(r#"{"alg":"none","kid":"rsa-1","alg":"RS256"}"#, &claims().to_string()),
        TokenError::Malformed(m) if m.contains("duplicate member `alg`") => "format"
    );
    // Nested duplicates too, e.g. in the roles claim.
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"realm_access":{{"roles":[],"roles":["admin"]}}}}"#,
        NOW + 600
    );
    rejects!(
        t,
        raw_rs256(r#"{"alg":"RS256","kid":"rsa-1"}"#, &payload),
        TokenError::Malformed(m) if m.contains("duplicate") => "format"
    );
}

// ---------------------------------------------------------------------------------------------
// Row: U+0000 in a string

/// Postgres text cannot hold U+0000: a claim read as text would end at it, so
/// `victim@example.test\u0000x` would read as the victim's `sub`. Any JSON string holding it,
/// value or member name, at any depth, in the payload or the header, refuses the token, in
/// `verify_untimed` (what the extension calls) as in `verify_token`.
#[test]
fn nul_characters_in_strings_are_refused() {
    let t = public_keys();
    let rs = r#"{"alg":"RS256","kid":"rsa-1"}"#;
    // The payload as JSON text, `sub` spelt byte for byte.
    let with_sub = |sub: &str| {
        format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"sub":"{sub}"}}"#,
            NOW + 600
        )
    };
    let tokens = [
        rs256(&claims_with(
            "sub",
            Some(json!("victim@example.test\u{0}x")),
        )),
        rs256(&claims_with(
            "realm_access",
            Some(json!({"roles": ["reader", "admin\u{0}"]})),
        )),
        rs256(&claims_with("ext", Some(json!({"deep": [{"x\u{0}y": 1}]})))),
        rs256(&claims_with("\u{0}", Some(json!(1)))),
        raw_rs256(rs, &with_sub(r"victim\u0000")),
        raw_rs256(
            r#"{"alg":"RS256","kid":"rsa-1\u0000"}"#,
            &claims().to_string(),
        ),
        raw_rs256(
            r#"{"alg":"RS256","kid":"rsa-1","x\u0000":"y"}"#,
            &claims().to_string(),
        ),
        raw_rs256(
            r#"{"alg":"RS256","kid":"rsa-1","typ":"JWT\u0000"}"#,
            &claims().to_string(),
        ),
    ];
    for token in tokens {
        rejects!(t, token, TokenError::NulCharacter => "nul");
        let untimed = oidc_authz_core::verify_untimed(&token, &t, MAX_LEN);
        assert!(
            matches!(untimed, Err(TokenError::NulCharacter)),
            "verify_untimed: {untimed:?}"
        );
    }
    let err = TokenError::NulCharacter.to_string();
    assert!(err.contains("U+0000") && !err.contains("victim"), "{err}");

    // The six characters `\u0000` (an escaped backslash in the JSON text) are no NUL.
    let v = accepted(&rs256(&claims_with("sub", Some(json!("a\\u0000b")))), &t);
    assert_eq!(v.sub.as_deref(), Some("a\\u0000b"));
    let v = accepted(&raw_rs256(rs, &with_sub(r"\\u0000")), &t);
    assert_eq!(v.sub.as_deref(), Some(r"\u0000"));
}

/// The extension reports a token setting whose bytes are not UTF-8 (possible in a SQL_ASCII
/// or LATIN1 database) with this error.
#[test]
fn not_utf8_has_its_own_check_name() {
    let e = TokenError::NotUtf8;
    assert_eq!(e.check(), "encoding");
    assert_eq!(e.to_string(), "the token is not valid UTF-8");
}

// ---------------------------------------------------------------------------------------------
// Row: claim types

#[test]
fn time_claims_must_be_numbers_in_range() {
    let t = public_keys();
    // Hand-written payloads, so that e.g. `1e300` reaches the verifier as written.
    let token = |member: &str, value: &str| {
        let exp = if member == "exp" {
            String::new()
        } else {
            format!(r#","exp":{}"#, NOW + 600)
        };
        let payload =
            format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice"{exp},"{member}":{value}}}"#);
        raw_rs256(r#"{"alg":"RS256","kid":"rsa-1"}"#, &payload)
    };
    // CVE-2026-25537: a string `exp` was skipped by jsonwebtoken < 10.3.
    for value in [
        r#""9999999999""#,
        "-1",
        "1e300",
        "253402300800",
        "null",
        "true",
        "[1]",
        r#"{"n":1}"#,
    ] {
        rejects!(t, token("exp", value), TokenError::ClaimType("exp") => "claims");
        rejects!(t, token("nbf", value), TokenError::ClaimType("nbf") => "claims");
        rejects!(t, token("iat", value), TokenError::ClaimType("iat") => "claims");
    }
    // Fractional NumericDates are numbers (RFC 7519 §2).
    accepted(&token("exp", &format!("{}.5", NOW + 600)), &t);
    rejects!(
        t,
        rs256(&claims_with("exp", None)),
        TokenError::MissingClaim("exp") => "claims"
    );
    // `iss` and `sub` must be strings too.
    rejects!(
        t,
        rs256(&claims_with("iss", Some(json!(["https://issuer.test"])))),
        TokenError::ClaimType("iss") => "claims"
    );
    rejects!(
        t,
        rs256(&claims_with("sub", Some(json!(42)))),
        TokenError::ClaimType("sub") => "claims"
    );
    // So must `jti` and `sid`, which revocations match as strings: a token whose `jti` is
    // a number could never be revoked (found by the differential test against PyJWT).
    for (member, value) in [
        ("jti", json!(42)),
        ("jti", json!(["j"])),
        ("jti", json!(null)),
        ("sid", json!(7)),
        ("sid", json!({"id": "s"})),
    ] {
        rejects!(
            t,
            rs256(&claims_with(member, Some(value))),
            TokenError::ClaimType(c) if *c == member => "claims"
        );
    }
    accepted(&rs256(&claims_with("jti", Some(json!("j-1")))), &t);
    accepted(&rs256(&claims_with("sid", Some(json!("s-1")))), &t);
}

// ---------------------------------------------------------------------------------------------
// Row: time

#[test]
fn time_window_with_leeway() {
    let t = public_keys();
    let at = |member: &str, when: i64| rs256(&claims_with(member, Some(json!(when))));

    rejects!(t, at("exp", NOW - LEEWAY - 1), TokenError::Expired => "exp");
    rejects!(t, at("exp", NOW - LEEWAY), TokenError::Expired => "exp");
    accepted(&at("exp", NOW - LEEWAY + 1), &t);

    rejects!(t, at("nbf", NOW + LEEWAY + 1), TokenError::NotYetValid => "nbf");
    accepted(&at("nbf", NOW + LEEWAY), &t);

    rejects!(t, at("iat", NOW + LEEWAY + 1), TokenError::IssuedInFuture => "iat");
    accepted(&at("iat", NOW + LEEWAY), &t);

    // A cached verification is re-checked against the clock at each use, e.g. late in a long
    // transaction that began while the token was fresh.
    let v = accepted(&at("exp", NOW + 60), &t);
    assert_eq!(v.check_time(NOW + 60 + LEEWAY - 1), Ok(()));
    assert_eq!(v.check_time(NOW + 60 + LEEWAY), Err(TokenError::Expired));
    assert_eq!(v.check_time(NOW + 3600), Err(TokenError::Expired));
    // The same token verified afresh at that later time is refused the same way.
    rejects!(t, at("exp", NOW + 60), at NOW + 60 + LEEWAY, TokenError::Expired => "exp");
    // The re-check enforces `nbf` too (a clock stepped back).
    let v = accepted(&at("nbf", NOW + LEEWAY), &t);
    assert_eq!(v.check_time(NOW - 1), Err(TokenError::NotYetValid));
}

// ---------------------------------------------------------------------------------------------
// Row: issuer / audience

#[test]
fn issuer_must_match_exactly() {
    let t = public_keys();
    for iss in [
        "https://issuer.test/",
        "HTTPS://issuer.test",
        "https://issuer.test ",
        "http://issuer.test",
        "https://issuer.test.evil.example",
    ] {
        rejects!(
            t,
            rs256(&claims_with("iss", Some(json!(iss)))),
            TokenError::UnknownIssuer(_) => "iss"
        );
    }
    rejects!(
        t,
        rs256(&claims_with("iss", None)),
        TokenError::MissingClaim("iss") => "claims"
    );
}

#[test]
fn audience_must_include_a_configured_one() {
    let t = public_keys();
    let aud = |value: Option<Value>| rs256(&claims_with("aud", value));
    rejects!(t, aud(None), TokenError::MissingClaim("aud") => "claims");
    rejects!(t, aud(Some(json!("api://other"))), TokenError::Audience => "aud");
    rejects!(
        t,
        aud(Some(json!(["api://other", "api://test/"]))),
        TokenError::Audience => "aud"
    );
    rejects!(t, aud(Some(json!([]))), TokenError::Audience => "aud");
    rejects!(
        t,
        aud(Some(json!(["api://test", 5]))),
        TokenError::ClaimType("aud") => "claims"
    );
    rejects!(t, aud(Some(json!({"aud": AUD}))), TokenError::ClaimType("aud") => "claims");
    accepted(&aud(Some(json!(["api://other", AUD]))), &t);
    accepted(&aud(Some(json!(AUD))), &t);
}

// ---------------------------------------------------------------------------------------------
// Row: token type

#[test]
fn required_typ_refuses_id_tokens() {
    let mut r = row(&[&keys().rsa.jwk], &["RS256"]);
    r["required_typ"] = json!("at+jwt");
    let t = trust(r);
    let typed = |typ: Option<&str>| {
        let mut h = header(Algorithm::RS256, Some("rsa-1"));
        h.typ = typ.map(str::to_owned);
        sign(&h, &claims(), &keys().rsa.key)
    };
    for ok in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        accepted(&typed(Some(ok)), &t);
    }
    // An ID token (typ `JWT`, or none at all) presented as an access token.
    for bad in [Some("JWT"), None, Some("application/jwt"), Some("at+jwt+x")] {
        rejects!(
            t,
            typed(bad),
            TokenError::Type { expected } if expected == "at+jwt" => "typ"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Row: denial of service

#[test]
fn size_is_capped_before_decoding() {
    let t = public_keys();
    // A token over 1 MB: signed properly, and as garbage that decoding would call malformed.
    let mut big = claims();
    big["pad"] = json!("x".repeat(1 << 20));
    let signed = rs256(&big);
    rejects!(
        t,
        signed,
        TokenError::TooLarge { len, max: MAX_LEN } if *len == signed.len() => "size"
    );
    let garbage = "!".repeat(1 << 20);
    rejects!(
        t,
        garbage,
        TokenError::TooLarge { len: 1_048_576, max: MAX_LEN } => "size"
    );
    // Under a cap it fits in, the same garbage reaches decoding and is malformed there: so the
    // `TooLarge` above was decided before any decoding.
    rejects!(t, garbage, at NOW, max 2 << 20, TokenError::Malformed(_) => "format");

    // The cap is inclusive.
    let good = rs256(&claims());
    assert!(verify_token(&good, &t, NOW, good.len()).is_ok());
    rejects!(
        t,
        good,
        at NOW,
        max good.len() - 1,
        TokenError::TooLarge { .. } => "size"
    );
}

#[test]
fn deep_json_is_refused_without_deep_recursion() {
    // Depth 10000 in the payload (arrays) and in the header (objects), validly signed.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"x":{deep}}}"#,
        NOW + 600
    );
    let objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let header = format!(r#"{{"alg":"RS256","kid":"rsa-1","x":{objects}}}"#);
    let tokens = [
        raw_rs256(r#"{"alg":"RS256","kid":"rsa-1"}"#, &payload),
        raw_rs256(&header, &claims().to_string()),
    ];
    let t = public_keys();
    // Verified on a deliberately small stack, so that recursing once per level would overflow
    // it and abort the test binary rather than pass.
    let worker = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            for token in tokens {
                rejects!(
                    t,
                    token,
                    at NOW,
                    max 1 << 20,
                    TokenError::Malformed(m) if m.contains("nested deeper") => "format"
                );
            }
        });
    let joined = worker.map(std::thread::JoinHandle::join);
    assert!(matches!(joined, Ok(Ok(()))), "the worker thread failed");
}

// ---------------------------------------------------------------------------------------------
// Row: leakage (checked for every rejection above, through `check_rejection`)

#[test]
fn the_leak_check_itself_catches_echoes() {
    // Show that `assert_no_leak` would fail on a leak, even a partial one as `quote` makes
    // (at most 64 characters, then an ellipsis), so its passing above means something.
    let token = rs256(&claims());
    let (_, payload, _) = segments(&token);
    let k = keys();
    let n = k.rsa.jwk["n"].as_str().unwrap();
    let secret = k.hmac.jwk["k"].as_str().unwrap();
    let leaky = [
        format!("unknown kid `{}…`", &n[100..164]),
        format!("issuer `{}` is not configured", &secret[..20]),
        format!("malformed token: `{}…`", &payload[..64]),
        format!("bad token {token}"),
        k.rsa_public_pem.lines().nth(2).unwrap().to_owned(),
    ];
    for text in leaky {
        let caught = std::panic::catch_unwind(|| assert_no_leak(&text, &token));
        assert!(caught.is_err(), "not caught: {text}");
    }
    // Ordinary messages, including quoted kids and issuers, pass.
    assert_no_leak(&TokenError::BadSignature.to_string(), &token);
    assert_no_leak(
        &TokenError::UnknownKid("../../x".into()).to_string(),
        &token,
    );
    assert_no_leak(
        &TokenError::UnknownIssuer("https://issuer.test/".into()).to_string(),
        &token,
    );
}
