//! Compact JWS (RFC 7515 §7.1) parsing and signature verification. The payload is
//! returned as bytes: the JWS layer knows nothing of claims.

use super::alg::Alg;
use super::jwk::{Key, KeySet};
use super::{b64, quote, TokenError};
use crate::json::{parse_strict, JsonError};
use serde_json::Value;

/// The protected header members this verifier acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Alg,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

/// A structurally valid compact JWS whose signature is not yet checked.
pub struct Jws<'t> {
    pub header: Header,
    pub payload: Vec<u8>,
    signing_input: &'t str,
    signature: Vec<u8>,
}

impl<'t> Jws<'t> {
    /// Splits and decodes `token`: exactly three strictly base64url segments, a JSON object
    /// header without duplicate members, a registered non-`none` `alg`, and no `crit`.
    pub fn parse(token: &'t str) -> Result<Jws<'t>, TokenError> {
        let segments = token.split('.').count();
        if segments == 5 {
            return Err(TokenError::Encrypted);
        }
        let mut parts = token.splitn(3, '.');
        let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed("expected three dot-separated segments"));
        };
        if segments != 3 {
            return Err(malformed("expected three dot-separated segments"));
        }
        if h.is_empty() {
            return Err(malformed("empty header or signature segment"));
        }
        let header = b64::decode(h).ok_or_else(|| malformed("header is not base64url"))?;
        let payload = b64::decode(p).ok_or_else(|| malformed("payload is not base64url"))?;
        let signature = b64::decode(s).ok_or_else(|| malformed("signature is not base64url"))?;
        let header = parse_strict(&header).map_err(|e| match e {
            JsonError::Nul => TokenError::NulCharacter,
            JsonError::Invalid(why) => malformed(&format!("header: {why}")),
        })?;
        let Value::Object(header) = header else {
            return Err(malformed("header is not a JSON object"));
        };
        if header.contains_key("crit") {
            return Err(TokenError::CritHeader);
        }
        if header.contains_key("enc") || header.contains_key("zip") {
            return Err(TokenError::Encrypted);
        }
        if header.get("b64").is_some_and(|v| v != &Value::Bool(true)) {
            return Err(malformed("unencoded payloads (`b64`) are not supported"));
        }
        let alg = match header.get("alg") {
            Some(Value::String(a)) if a.eq_ignore_ascii_case("none") => {
                return Err(TokenError::AlgNone)
            }
            Some(Value::String(a)) => a
                .parse::<Alg>()
                .map_err(|()| TokenError::UnsupportedAlg(quote(a)))?,
            Some(_) => return Err(malformed("header `alg` is not a string")),
            None => return Err(malformed("header has no `alg`")),
        };
        // Only after `alg`: an unsigned token (RFC 7519 §6.1) has an empty signature, and must
        // be reported as `alg` none, not as a formatting slip.
        if s.is_empty() {
            return Err(malformed("empty header or signature segment"));
        }
        let text = |name: &str| match header.get(name) {
            None => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.clone())),
            Some(_) => Err(malformed(&format!("header `{name}` is not a string"))),
        };
        let header = Header {
            alg,
            kid: text("kid")?,
            typ: text("typ")?,
        };
        let signing_input = &token[..h.len() + 1 + p.len()];
        Ok(Jws {
            header,
            payload,
            signing_input,
            signature,
        })
    }

    /// Picks the key (exact `kid`, or the single key able to verify without one) and checks
    /// the signature with the header's algorithm, which must be in `allowed` and allowed by
    /// that key. Embedded keys (`jwk`, `jku`, `x5c`, `x5u`) are never looked at.
    pub fn verify<'k>(&self, keys: &'k KeySet, allowed: &[Alg]) -> Result<&'k Key, TokenError> {
        let alg = self.header.alg;
        if !allowed.contains(&alg) {
            return Err(TokenError::AlgNotAllowed(alg));
        }
        let key = match &self.header.kid {
            Some(kid) => {
                let key = keys
                    .keys
                    .iter()
                    .find(|k| k.kid.as_deref() == Some(kid.as_str()))
                    .ok_or_else(|| TokenError::UnknownKid(quote(kid)))?;
                if !key.supports(alg) {
                    return Err(TokenError::KeyAlgMismatch {
                        kid: quote(kid),
                        alg,
                    });
                }
                key
            }
            None => {
                let mut able = keys.keys.iter().filter(|k| k.supports(alg));
                match (able.next(), able.next()) {
                    (Some(key), None) => key,
                    (None, _) => return Err(TokenError::NoKey(alg)),
                    (Some(_), Some(_)) => return Err(TokenError::AmbiguousKey),
                }
            }
        };
        if key.verify(alg, self.signing_input.as_bytes(), &self.signature) {
            Ok(key)
        } else {
            Err(TokenError::BadSignature)
        }
    }
}

fn malformed(why: &str) -> TokenError {
    TokenError::Malformed(why.to_string())
}
