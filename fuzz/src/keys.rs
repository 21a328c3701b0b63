//! The fixed trust configuration the token targets verify against, and a reference verifier
//! beside it.
//!
//! Keys are the committed test keys of `tests/fixtures/keys` (the ones `mint.py` signs the
//! regression tokens with), so a minted token in the seed corpus verifies here. The issuers
//! are `oidc.issuers` rows built from a description ([`ISSUERS`]) that also feeds the
//! reference: it holds each key's public material and decides independently, from the
//! token's own bytes, which key a token names and whether its signature is that key's. A
//! token the core accepts must satisfy the reference; a token the harness signs correctly
//! must be accepted by the core (see `token_spec`).

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use oidc_authz_core::token::alg::Alg;
use oidc_authz_core::TrustConfig;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// The injected clock of every token target: 2027-01-15T08:00:00Z.
pub const NOW: i64 = 1_800_000_000;
/// The size cap passed to the verifier, as the default `oidc.max_token_bytes`.
pub const MAX_LEN: usize = 16 * 1024;
/// The audience of the issuers' Back-Channel Logout tokens.
pub const LOGOUT_AUD: &str = "client-1";

/// Key material by file: `(name, text, kind)`.
const FILES: [(&str, &str, Kind); 10] = [
    (
        "rsa-2048",
        include_str!("../../tests/fixtures/keys/rsa-2048.pem"),
        Kind::Rsa,
    ),
    (
        "rsa-2048-rotated",
        include_str!("../../tests/fixtures/keys/rsa-2048-rotated.pem"),
        Kind::Rsa,
    ),
    (
        "attacker-rsa-2048",
        include_str!("../../tests/fixtures/keys/attacker-rsa-2048.pem"),
        Kind::Rsa,
    ),
    (
        "ec-p256",
        include_str!("../../tests/fixtures/keys/ec-p256.pem"),
        Kind::P256,
    ),
    (
        "ec-p384",
        include_str!("../../tests/fixtures/keys/ec-p384.pem"),
        Kind::P384,
    ),
    (
        "ec-p521",
        include_str!("../../tests/fixtures/keys/ec-p521.pem"),
        Kind::P521,
    ),
    (
        "ed25519",
        include_str!("../../tests/fixtures/keys/ed25519.pem"),
        Kind::Ed25519,
    ),
    (
        "hmac-256",
        include_str!("../../tests/fixtures/keys/hmac-256.jwk.json"),
        Kind::Secret,
    ),
    (
        "hmac-384",
        include_str!("../../tests/fixtures/keys/hmac-384.jwk.json"),
        Kind::Secret,
    ),
    (
        "hmac-512",
        include_str!("../../tests/fixtures/keys/hmac-512.jwk.json"),
        Kind::Secret,
    ),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rsa,
    P256,
    P384,
    P521,
    Ed25519,
    Secret,
}

/// One configured key of an issuer: `(kid, file, pinned alg)`.
type KeySpec = (Option<&'static str>, &'static str, Option<Alg>);

/// One issuer: its row's members besides `jwks`, and its keys.
pub struct IssuerSpec {
    pub issuer: &'static str,
    pub audiences: &'static [&'static str],
    /// `None`: the default, every public-key algorithm.
    pub algorithms: Option<&'static [Alg]>,
    pub required_typ: Option<&'static str>,
    pub logout: bool,
    pub enabled: bool,
    pub leeway: i64,
    keys: &'static [KeySpec],
}

const MAIN_KEYS: [KeySpec; 10] = [
    (Some("rs256"), "rsa-2048", Some(Alg::RS256)),
    (Some("rs384"), "rsa-2048", Some(Alg::RS384)),
    (Some("rs512"), "rsa-2048", Some(Alg::RS512)),
    (Some("ps256"), "rsa-2048", Some(Alg::PS256)),
    (Some("ps384"), "rsa-2048", Some(Alg::PS384)),
    (Some("ps512"), "rsa-2048", Some(Alg::PS512)),
    (Some("es256"), "ec-p256", Some(Alg::ES256)),
    (Some("es384"), "ec-p384", Some(Alg::ES384)),
    (Some("es512"), "ec-p521", Some(Alg::ES512)),
    (Some("eddsa"), "ed25519", Some(Alg::EdDSA)),
];

/// The issuers of the fixed configuration. The first two are `mint.py`'s (its regression
/// tokens verify against them); `other` wants access tokens only; `nokid` has one key, with
/// neither kid nor pinned algorithm; `disabled` is configured but off.
pub const ISSUERS: [IssuerSpec; 5] = [
    IssuerSpec {
        issuer: "https://issuer.test",
        audiences: &["api://test"],
        algorithms: None,
        required_typ: None,
        logout: true,
        enabled: true,
        leeway: 30,
        keys: &MAIN_KEYS,
    },
    IssuerSpec {
        issuer: "https://hmac.test",
        audiences: &["api://test"],
        algorithms: Some(&[Alg::HS256, Alg::HS384, Alg::HS512]),
        required_typ: None,
        logout: true,
        enabled: true,
        leeway: 30,
        keys: &[
            (Some("hs256"), "hmac-256", Some(Alg::HS256)),
            (Some("hs384"), "hmac-384", Some(Alg::HS384)),
            (Some("hs512"), "hmac-512", Some(Alg::HS512)),
        ],
    },
    IssuerSpec {
        issuer: "https://other.test",
        audiences: &["api://other"],
        algorithms: None,
        required_typ: Some("at+jwt"),
        logout: false,
        enabled: true,
        leeway: 30,
        keys: &[(Some("eddsa"), "ed25519", Some(Alg::EdDSA))],
    },
    IssuerSpec {
        issuer: "https://nokid.test",
        audiences: &["api://test", "api://other"],
        algorithms: Some(&[Alg::RS256, Alg::PS256, Alg::ES256]),
        required_typ: None,
        logout: false,
        enabled: true,
        leeway: 0,
        keys: &[(None, "rsa-2048-rotated", None)],
    },
    IssuerSpec {
        issuer: "https://disabled.test",
        audiences: &["api://test"],
        algorithms: None,
        required_typ: None,
        logout: true,
        enabled: false,
        leeway: 30,
        keys: &[(Some("rs256"), "rsa-2048", Some(Alg::RS256))],
    },
];

impl IssuerSpec {
    pub fn algorithms(&self) -> Vec<Alg> {
        self.algorithms
            .map_or(Alg::ASYMMETRIC.to_vec(), <[Alg]>::to_vec)
    }

    /// The algorithms the key `i` verifies: its family's, narrowed to its pin and to the
    /// issuer's list (its HMAC secret long enough for the hash).
    pub fn key_algs(&self, i: usize) -> Vec<Alg> {
        let (_, file, pin) = self.keys[i];
        let material = &fixture().material[file_index(file)];
        self.algorithms()
            .into_iter()
            .filter(|a| pin.is_none_or(|p| p == *a) && material.fits(*a))
            .collect()
    }

    pub fn kid(&self, i: usize) -> Option<&'static str> {
        self.keys[i].0
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The key file of key `i`, as an index of [`Fixture::material`].
    pub fn key_file(&self, i: usize) -> usize {
        file_index(self.keys[i].1)
    }

    fn row(&self, f: &Fixture) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|(kid, file, pin)| {
                let mut jwk = f.material[file_index(file)].jwk();
                if let Some(kid) = kid {
                    jwk["kid"] = json!(kid);
                }
                if let Some(pin) = pin {
                    jwk["alg"] = json!(pin.name());
                    jwk["use"] = json!("sig");
                }
                jwk
            })
            .collect();
        json!({
            "issuer": self.issuer,
            "audiences": self.audiences,
            "algorithms": self.algorithms.map(|a| a.iter().map(|a| a.name()).collect::<Vec<_>>()),
            "required_typ": self.required_typ,
            "logout_audiences": self.logout.then_some([LOGOUT_AUD]),
            "leeway_seconds": self.leeway,
            "enabled": self.enabled,
            "jwks": {"keys": keys},
        })
    }
}

fn file_index(file: &str) -> usize {
    FILES
        .iter()
        .position(|(name, _, _)| *name == file)
        .unwrap_or(0)
}

/// A key pair (or secret) of one file, able to sign and, from its public part, to verify.
pub enum Material {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair, Curve),
    Ed25519(Ed25519KeyPair),
    Secret(Vec<u8>),
}

/// The curve of an EC key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Material {
    fn load(text: &str, kind: Kind) -> Material {
        match kind {
            Kind::Secret => {
                let jwk: Value = ok(serde_json::from_str(text), "an HMAC key file");
                let k = jwk["k"].as_str().unwrap_or_default();
                Material::Secret(ok(URL_SAFE_NO_PAD.decode(k), "an HMAC secret"))
            }
            _ => {
                let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
                let der = ok(STANDARD.decode(body), "a PEM key file");
                let ec = |alg, curve| {
                    Material::Ec(ok(EcdsaKeyPair::from_pkcs8(alg, &der), "an EC key"), curve)
                };
                match kind {
                    Kind::Rsa => Material::Rsa(ok(RsaKeyPair::from_pkcs8(&der), "an RSA key")),
                    Kind::P256 => ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, Curve::P256),
                    Kind::P384 => ec(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, Curve::P384),
                    Kind::P521 => ec(&signature::ECDSA_P521_SHA512_FIXED_SIGNING, Curve::P521),
                    _ => Material::Ed25519(ok(
                        Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der),
                        "an Ed25519 key",
                    )),
                }
            }
        }
    }

    /// Whether `alg` is of this key's family (and, for a secret, not longer than it).
    pub fn fits(&self, alg: Alg) -> bool {
        use Alg::*;
        match self {
            Material::Rsa(_) => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Material::Ec(_, Curve::P256) => alg == ES256,
            Material::Ec(_, Curve::P384) => alg == ES384,
            Material::Ec(_, Curve::P521) => alg == ES512,
            Material::Ed25519(_) => alg == EdDSA,
            Material::Secret(k) => {
                matches!(
                    (alg, k.len()),
                    (HS256, 32..) | (HS384, 48..) | (HS512, 64..)
                )
            }
        }
    }

    /// The public JWK (a secret's `oct` JWK), without kid, alg or use.
    pub fn jwk(&self) -> Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match self {
            Material::Rsa(k) => {
                let parts = PublicKeyComponents::<Vec<u8>>::from(k.public_key());
                json!({"kty": "RSA", "n": b64(&parts.n), "e": b64(&parts.e)})
            }
            Material::Ec(k, curve) => {
                let point = k.public_key().as_ref();
                let (x, y) = point[1..].split_at((point.len() - 1) / 2);
                let crv = match curve {
                    Curve::P256 => "P-256",
                    Curve::P384 => "P-384",
                    Curve::P521 => "P-521",
                };
                json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)})
            }
            Material::Ed25519(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
            }
            Material::Secret(k) => json!({"kty": "oct", "k": b64(k)}),
        }
    }

    /// A signature of `message` with `alg`; empty when the key cannot make one for `alg`
    /// (an HMAC secret MACs with any hash, so a confused `alg` can be tried).
    pub fn sign(&self, alg: Alg, message: &[u8]) -> Vec<u8> {
        use Alg::*;
        let rng = SystemRandom::new();
        match self {
            Material::Rsa(k) => {
                let padding: &'static dyn signature::RsaEncoding = match alg {
                    RS256 => &signature::RSA_PKCS1_SHA256,
                    RS384 => &signature::RSA_PKCS1_SHA384,
                    RS512 => &signature::RSA_PKCS1_SHA512,
                    PS256 => &signature::RSA_PSS_SHA256,
                    PS384 => &signature::RSA_PSS_SHA384,
                    PS512 => &signature::RSA_PSS_SHA512,
                    _ => return Vec::new(),
                };
                let mut sig = vec![0; k.public_modulus_len()];
                match k.sign(padding, &rng, message, &mut sig) {
                    Ok(()) => sig,
                    Err(_) => Vec::new(),
                }
            }
            Material::Ec(k, _) => k
                .sign(&rng, message)
                .map_or(Vec::new(), |s| s.as_ref().to_vec()),
            Material::Ed25519(k) => k.sign(message).as_ref().to_vec(),
            Material::Secret(k) => {
                let h = match alg {
                    HS384 => hmac::HMAC_SHA384,
                    HS512 => hmac::HMAC_SHA512,
                    _ => hmac::HMAC_SHA256,
                };
                hmac::sign(&hmac::Key::new(h, k), message).as_ref().to_vec()
            }
        }
    }

    /// Whether `signature` is this key's signature of `message` under `alg`, checked from the
    /// public part alone, by other aws-lc-rs entry points than the core's.
    pub fn verifies(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        use Alg::*;
        if !self.fits(alg) {
            return false;
        }
        match self {
            Material::Rsa(k) => {
                let params: &signature::RsaParameters = match alg {
                    RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                let parts = PublicKeyComponents::<Vec<u8>>::from(k.public_key());
                parts.verify(params, message, sig).is_ok()
            }
            Material::Ec(k, curve) => {
                let params: &signature::EcdsaVerificationAlgorithm = match curve {
                    Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
                    Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
                };
                UnparsedPublicKey::new(params, k.public_key().as_ref())
                    .verify(message, sig)
                    .is_ok()
            }
            Material::Ed25519(k) => {
                UnparsedPublicKey::new(&signature::ED25519, k.public_key().as_ref())
                    .verify(message, sig)
                    .is_ok()
            }
            Material::Secret(k) => {
                let h = match alg {
                    HS384 => hmac::HMAC_SHA384,
                    HS512 => hmac::HMAC_SHA512,
                    _ => hmac::HMAC_SHA256,
                };
                hmac::verify(&hmac::Key::new(h, k), message, sig).is_ok()
            }
        }
    }
}

/// Everything built once per process.
pub struct Fixture {
    /// By [`FILES`] order.
    pub material: Vec<Material>,
    pub trust: TrustConfig,
    /// The rows [`Fixture::trust`] was built from, by [`ISSUERS`] order.
    pub rows: Vec<Value>,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

pub fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let material: Vec<Material> = FILES
            .iter()
            .map(|(_, text, kind)| Material::load(text, *kind))
            .collect();
        let mut f = Fixture {
            material,
            trust: TrustConfig::default(),
            rows: Vec::new(),
        };
        f.rows = ISSUERS.iter().map(|i| i.row(&f)).collect();
        let (trust, errors) = TrustConfig::from_rows(&f.rows);
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(errors.is_empty(), "fixture issuers refused: {errors:?}");
        f.trust = trust;
        f
    })
}

/// The configured issuer named exactly `iss`, enabled or not.
pub fn issuer(iss: &str) -> Option<&'static IssuerSpec> {
    ISSUERS.iter().find(|i| i.issuer == iss)
}

/// The index of the key the token names (`kid`, exact) or, without a kid, of the one key of
/// the issuer able to verify `alg`; `None` when there is no such key or several.
pub fn pick_key(spec: &IssuerSpec, kid: Option<&str>, alg: Alg) -> Option<usize> {
    match kid {
        Some(kid) => (0..spec.key_count()).find(|&i| spec.kid(i) == Some(kid)),
        None => {
            let able: Vec<usize> = (0..spec.key_count())
                .filter(|&i| spec.key_algs(i).contains(&alg))
                .collect();
            match able[..] {
                [one] => Some(one),
                _ => None,
            }
        }
    }
}

/// A fixture that cannot be built fails every target at once, whatever the input.
fn ok<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => super::broken(format_args!("cannot read {what}: {e:?}")),
    }
}
