//! OpenID Connect Discovery, the pure part: which URLs may be fetched, what a discovery
//! document and a key set must be, and when to fetch again. The extension's background
//! worker does the HTTP (src/worker); everything it decides on is here.
//!
//! Rules (README "Keys from discovery"):
//! - URLs: `https://`, or `http://` to a loopback address (`127.0.0.0/8`, `[::1]`,
//!   `localhost`) only when the superuser setting allows it; no user info in the URL.
//! - The discovery document (`<issuer>/.well-known/openid-configuration`) is a JSON object
//!   whose `issuer` equals the configured issuer byte for byte, with a string `jwks_uri`
//!   obeying the URL rules.
//! - The key set is validated exactly as a hand-written `oidc.issuers.jwks` is
//!   ([`KeySet::from_jwks`] with the issuer's algorithms), and must hold a signature key.
//! - Bodies are strict JSON (no duplicate members) of at most [`MAX_BODY_BYTES`].

use crate::json::{parse_strict, JsonError};
use crate::token::alg::Alg;
use crate::token::jwk::KeySet;
use crate::token::quote;
use serde_json::Value;
use std::fmt;

/// The largest discovery document or key set accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Why a fetch changed nothing. Never contains a body or a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError(pub String);

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FetchError {}

fn fail<T>(msg: impl Into<String>) -> Result<T, FetchError> {
    Err(FetchError(msg.into()))
}

/// The URL of the issuer's discovery document (OIDC Discovery 1.0 §4: a trailing `/` of the
/// issuer is not doubled).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Checks that an issuer may use discovery: an URL that may be fetched (see [`check_url`],
/// plain http to loopback allowed here, refused at fetch time without the setting), with
/// neither a query nor a fragment (the discovery document's path is appended to it).
pub fn check_issuer(issuer: &str) -> Result<(), FetchError> {
    check_url(issuer, true)?;
    if issuer.contains(['?', '#']) {
        return fail("an issuer with discovery is an URL without a query or a fragment");
    }
    Ok(())
}

/// Checks that `url` may be fetched; `Ok(true)` when it is plain `http` (to loopback).
pub fn check_url(url: &str, allow_insecure_loopback: bool) -> Result<bool, FetchError> {
    let (insecure, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (true, rest)
    } else {
        return fail(format!("`{}` is not an https URL", quote(url)));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') || url.chars().any(char::is_whitespace) {
        return fail(format!("`{}` is not a valid URL", quote(url)));
    }
    if insecure {
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return fail(format!(
                "`{}` is plain http: only https is fetched (http to loopback with oidc.fetch_allow_insecure_loopback)",
                quote(url)
            ));
        }
        if !allow_insecure_loopback {
            return fail(format!(
                "`{}` is plain http: set oidc.fetch_allow_insecure_loopback to fetch it",
                quote(url)
            ));
        }
    }
    Ok(insecure)
}

fn json(body: &[u8], what: &str) -> Result<Value, FetchError> {
    if body.len() > MAX_BODY_BYTES {
        return fail(format!("the {what} is over {MAX_BODY_BYTES} bytes"));
    }
    parse_strict(body).or_else(|e| match e {
        JsonError::Nul => fail(format!("the {what} holds U+0000")),
        JsonError::Invalid(why) => fail(format!("the {what} is not valid JSON: {why}")),
    })
}

/// The `jwks_uri` of a discovery document fetched for `issuer`.
pub fn jwks_uri(
    body: &[u8],
    issuer: &str,
    allow_insecure_loopback: bool,
) -> Result<String, FetchError> {
    let doc = json(body, "discovery document")?;
    let Value::Object(doc) = doc else {
        return fail("the discovery document is not a JSON object");
    };
    match doc.get("issuer") {
        Some(Value::String(s)) if s == issuer => {}
        Some(Value::String(s)) => {
            return fail(format!(
                "the discovery document names issuer `{}`, not the configured one",
                quote(s)
            ))
        }
        _ => return fail("the discovery document has no issuer"),
    }
    let Some(Value::String(uri)) = doc.get("jwks_uri") else {
        return fail("the discovery document has no jwks_uri");
    };
    check_url(uri, allow_insecure_loopback)?;
    Ok(uri.clone())
}

/// A fetched key set, validated as `oidc.issuers.jwks` is: the JSON to store and its kids.
pub fn key_set(body: &[u8], algorithms: &[Alg]) -> Result<(Value, Vec<String>), FetchError> {
    let jwks = json(body, "key set")?;
    // Published keys are public keys: a shared secret fetched over the network is refused.
    let secret = jwks
        .get("keys")
        .and_then(Value::as_array)
        .is_some_and(|keys| {
            keys.iter()
                .any(|k| k.get("kty").and_then(Value::as_str) == Some("oct"))
        });
    if secret {
        return fail("the key set holds a shared secret (kty oct): only public keys are fetched");
    }
    let keys = KeySet::from_jwks(&jwks, algorithms)
        .map_err(|e| FetchError(format!("the key set is refused: {e}")))?;
    if keys.keys.is_empty() {
        return fail("the key set holds no signature key");
    }
    let kids = keys.keys.iter().filter_map(|k| k.kid.clone()).collect();
    Ok((jwks, kids))
}

/// Seconds until the next refresh after a successful fetch: the response's
/// `Cache-Control: max-age` within `[min, max]`; `max` without one, `min` for `no-cache` or
/// `no-store`.
pub fn refresh_after(cache_control: Option<&str>, min: u64, max: u64) -> u64 {
    let max = max.max(min);
    let Some(cc) = cache_control else {
        return max;
    };
    let mut age = None;
    for directive in cc.split(',') {
        let d = directive.trim();
        let (name, value) = d.split_once('=').unwrap_or((d, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-cache" | "no-store" => return min,
            "max-age" => age = value.trim().trim_matches('"').parse::<u64>().ok(),
            _ => {}
        }
    }
    age.map_or(max, |a| a.clamp(min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(check_url("https://id.example.com/x", false), Ok(false));
        assert_eq!(check_url("http://127.0.0.1:8080/x", true), Ok(true));
        assert_eq!(check_url("http://[::1]:8080/x", true), Ok(true));
        assert_eq!(check_url("http://localhost/x", true), Ok(true));
        for bad in [
            "http://127.0.0.1/x",
            "ftp://x",
            "https://",
            "https://user:pw@id.example.com/",
            "http://10.0.0.1/x",
            "http://example.com/",
            "https://a b/",
            "//id.example.com",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://10.0.0.1/x", true).is_err());
        assert!(check_url("http://127.0.0.1.example.com/x", true).is_err());
        assert_eq!(
            discovery_url("https://a/realms/x/"),
            "https://a/realms/x/.well-known/openid-configuration"
        );
    }

    #[test]
    fn issuers_with_discovery() {
        assert!(check_issuer("https://id.example.com/realms/x").is_ok());
        assert!(check_issuer("http://127.0.0.1:8080").is_ok());
        for bad in [
            "https://10.0.0.5:8443/internal/secret#",
            "https://a/x?y=",
            "internal-batch",
            "http://example.com",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn discovery_documents() {
        let ok = br#"{"issuer":"https://a","jwks_uri":"https://a/jwks"}"#;
        assert_eq!(
            jwks_uri(ok, "https://a", false),
            Ok("https://a/jwks".into())
        );
        for (body, issuer) in [
            (
                &br#"{"issuer":"https://a/","jwks_uri":"https://a/jwks"}"#[..],
                "https://a",
            ),
            (
                br#"{"issuer":"https://a","jwks_uri":"http://a/jwks"}"#,
                "https://a",
            ),
            (br#"{"issuer":"https://a"}"#, "https://a"),
            (
                br#"{"issuer":"https://a","issuer":"https://a","jwks_uri":"https://a/j"}"#,
                "https://a",
            ),
            (br#"["https://a"]"#, "https://a"),
            (b"not json", "https://a"),
        ] {
            assert!(
                jwks_uri(body, issuer, false).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert!(jwks_uri(&big, "https://a", false).is_err());
    }

    #[test]
    fn key_sets() {
        let secret = br#"{"keys":[{"kty":"oct","kid":"s","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#;
        assert!(key_set(secret, &Alg::ASYMMETRIC).is_err());
        let hs = [Alg::HS256];
        assert!(key_set(secret, &hs).is_err_and(|e| e.0.contains("shared secret")));
        assert!(key_set(br#"{"keys":[]}"#, &Alg::ASYMMETRIC).is_err());
        assert!(key_set(br#"{"keys":"x"}"#, &Alg::ASYMMETRIC).is_err());
    }

    #[test]
    fn refresh_intervals() {
        assert_eq!(refresh_after(None, 60, 3600), 3600);
        assert_eq!(refresh_after(Some("public, max-age=600"), 60, 3600), 600);
        assert_eq!(refresh_after(Some("max-age=5"), 60, 3600), 60);
        assert_eq!(refresh_after(Some("max-age=99999"), 60, 3600), 3600);
        assert_eq!(refresh_after(Some("no-store"), 60, 3600), 60);
        assert_eq!(refresh_after(Some("max-age=x"), 60, 3600), 3600);
        assert_eq!(refresh_after(Some("Max-Age=\"120\""), 60, 3600), 120);
    }
}
