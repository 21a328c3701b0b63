//! Why a key set was refused: [`JwkError`], and for one key its [`KeyName`] and
//! [`KeyProblem`]. A message names the key by `kid` (quoted) or position, and shows only
//! members' names, sizes and the configuration's own words: never key material.

use super::{MAX_RSA_BITS, MIN_RSA_BITS};
use crate::token::alg::Alg;
use crate::token::quote;
use std::fmt;

/// Why a key set was refused. Names the key by `kid` (or position), never its material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwkError {
    /// Not a JSON object with a `keys` array.
    NotAKeySet,
    /// The element at this position of `keys` is not a JSON object.
    KeyNotAnObject(usize),
    /// Two keys with this `kid`.
    DuplicateKid(String),
    /// Shared secrets (`oct`) and public keys in one set.
    MixedSecretAndPublic,
    /// One key is refused.
    Key { key: KeyName, problem: KeyProblem },
}

/// How an error names a key: by its `kid`, or by its position when it has no string `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyName {
    Kid(String),
    Index(usize),
}

/// Why one key is refused (see [`JwkError::Key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    /// A member that must be a string is not (`kid`, `kty`, `use`, `alg`, `crv`, …).
    NotAString(&'static str),
    MissingMember(&'static str),
    NotBase64url(&'static str),
    UnknownUse(String),
    KeyOpsNotAnArray,
    KeyOpsNotStrings,
    /// A private key member (`d`, `p`, …): only public keys are configured.
    PrivateMaterial(&'static str),
    /// A key `alg` that is not a known signature algorithm.
    UnknownAlg(String),
    UnsupportedCurve(String),
    UnsupportedKeyType(String),
    /// The key's `alg` contradicts its type (`key_type` as in `EC P-384`, `RSA`).
    AlgMismatch {
        alg: Alg,
        key_type: String,
    },
    RsaTooSmall {
        bits: usize,
    },
    RsaTooLarge {
        bits: usize,
    },
    RsaBadExponent,
    RsaEvenModulus,
    /// The modulus has the ROCA fingerprint (CVE-2017-15361).
    RsaRoca,
    EcCoordinateLength {
        crv: &'static str,
        width: usize,
    },
    EcPointNotOnCurve {
        crv: &'static str,
    },
    Ed25519Length,
    HmacEmpty,
    /// A shared secret of `len` bytes, shorter than `alg` needs.
    HmacTooShort {
        len: usize,
        alg: Alg,
        need: usize,
    },
    CryptoRefused,
    /// A usable key that no allowed algorithm fits (`description` as in
    /// [`Key::description`](super::Key::description)).
    NoAllowedAlgorithm {
        description: String,
    },
}

impl fmt::Display for JwkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwkError::NotAKeySet => f.write_str("jwks must be a JSON object with a `keys` array"),
            JwkError::KeyNotAnObject(i) => write!(f, "key {i} is not a JSON object"),
            JwkError::DuplicateKid(kid) => write!(f, "duplicate kid `{}`", quote(kid)),
            JwkError::MixedSecretAndPublic => f.write_str(
                "jwks mixes shared secrets (`oct`) with public keys; configure them as separate issuers",
            ),
            JwkError::Key { key, problem } => {
                // Most problems follow the key's name after a colon; two read as a sentence.
                match problem {
                    KeyProblem::PrivateMaterial(_) | KeyProblem::NoAllowedAlgorithm { .. } => {
                        write!(f, "{key} {problem}")
                    }
                    _ => write!(f, "{key}: {problem}"),
                }
            }
        }
    }
}

impl std::error::Error for JwkError {}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyName::Kid(kid) => write!(f, "key `{}`", quote(kid)),
            KeyName::Index(i) => write!(f, "key {i}"),
        }
    }
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use KeyProblem as P;
        match self {
            P::NotAString(member) => write!(f, "`{member}` must be a string"),
            P::MissingMember(member) => write!(f, "missing `{member}`"),
            P::NotBase64url(member) => write!(f, "`{member}` is not valid base64url"),
            P::UnknownUse(u) => write!(f, "unknown `use` `{}`", quote(u)),
            P::KeyOpsNotAnArray => f.write_str("`key_ops` must be an array"),
            P::KeyOpsNotStrings => f.write_str("`key_ops` must hold strings"),
            P::PrivateMaterial(member) => write!(
                f,
                "contains private key material (`{member}`); configure the public key only"
            ),
            P::UnknownAlg(alg) => {
                write!(f, "unknown or non-signature algorithm `{}`", quote(alg))
            }
            P::UnsupportedCurve(crv) => write!(f, "unsupported curve `{}`", quote(crv)),
            P::UnsupportedKeyType(kty) => write!(f, "unsupported key type `{}`", quote(kty)),
            P::AlgMismatch { alg, key_type } => {
                write!(f, "algorithm `{alg}` does not fit a key of type {key_type}")
            }
            P::RsaTooSmall { bits } => {
                write!(
                    f,
                    "RSA key of {bits} bits; at least {MIN_RSA_BITS} required"
                )
            }
            P::RsaTooLarge { bits } => {
                write!(
                    f,
                    "RSA key of {bits} bits; at most {MAX_RSA_BITS} supported"
                )
            }
            P::RsaBadExponent => {
                f.write_str("RSA public exponent must be odd, at least 3 and at most 32 bits")
            }
            P::RsaEvenModulus => f.write_str("RSA modulus is even"),
            P::RsaRoca => f.write_str(
                "RSA modulus has the ROCA fingerprint (CVE-2017-15361); replace the key",
            ),
            P::EcCoordinateLength { crv, width } => {
                write!(f, "{crv} coordinates must be {width} bytes each")
            }
            P::EcPointNotOnCurve { crv } => write!(f, "the point is not on curve {crv}"),
            P::Ed25519Length => f.write_str("Ed25519 `x` must be 32 bytes"),
            P::HmacEmpty => f.write_str("HMAC secret is empty"),
            P::HmacTooShort { len, alg, need } => {
                write!(f, "HMAC secret is {len} bytes; {alg} needs at least {need}")
            }
            P::CryptoRefused => f.write_str("key refused by the crypto library"),
            P::NoAllowedAlgorithm { description } => {
                write!(f, "({description}) fits none of the allowed algorithms")
            }
        }
    }
}

impl KeyName {
    pub(super) fn refuse(&self, problem: KeyProblem) -> JwkError {
        JwkError::Key {
            key: self.clone(),
            problem,
        }
    }
}
