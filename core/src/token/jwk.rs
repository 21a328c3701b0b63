//! JWK sets (RFC 7517) turned into verification keys, validated once when configured.
//!
//! Everything a token must not influence is decided here: which algorithms each key may
//! verify (its `kty`/`crv`, its own `alg`, the issuer's allowed list), whether it is a
//! signature key at all (`use`, `key_ops`), and whether it is strong enough. A token can
//! only pick among these keys by exact `kid`.

mod error;

pub use error::{JwkError, KeyName, KeyProblem};

use super::alg::{Alg, Family};
use super::b64;
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use serde_json::{Map, Value};

/// Members that only private keys carry (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;

/// One configured key, ready to verify with each algorithm it may be used with.
pub struct Key {
    pub kid: Option<String>,
    /// e.g. `RSA 2048`, `EC P-256`, `OKP Ed25519`, `oct 32 bytes`: for messages and status.
    pub description: String,
    verifiers: Vec<(Alg, Verifier)>,
}

enum Verifier {
    Public(ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

impl Key {
    /// The algorithms this key verifies, in the order of [`Alg::ALL`].
    pub fn algs(&self) -> impl Iterator<Item = Alg> + '_ {
        self.verifiers.iter().map(|(a, _)| *a)
    }

    pub fn supports(&self, alg: Alg) -> bool {
        self.verifiers.iter().any(|(a, _)| *a == alg)
    }

    /// Checks `signature` over `message` with `alg`; false for an algorithm this key does
    /// not allow. ECDSA takes only the fixed-width r‖s form (no DER), and aws-lc refuses
    /// r or s of zero or ≥ n; HMAC compares in constant time.
    pub fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        self.verifiers
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, v)| match v {
                Verifier::Public(key) => key.verify_sig(message, signature).is_ok(),
                Verifier::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            })
    }
}

/// The signature keys of one issuer.
pub struct KeySet {
    pub keys: Vec<Key>,
}

impl KeySet {
    /// Validates a JWKS (`{"keys": [...]}`) and builds its keys, keeping only algorithms in
    /// `allowed`. Encryption-only keys (`use: enc`, or `key_ops` without `verify`) are
    /// skipped, as a provider's published set may hold them. Refused, whole: malformed
    /// members, private key material, duplicate `kid`, RSA under 2048 bits or with a weak
    /// exponent or a ROCA modulus, EC points off their curve, HMAC secrets shorter than
    /// the hash, a key `alg` that is unknown or contradicts the key, secret keys mixed with
    /// public keys, and a usable key that no allowed algorithm fits.
    pub fn from_jwks(jwks: &Value, allowed: &[Alg]) -> Result<KeySet, JwkError> {
        let members = jwks.as_object().ok_or(JwkError::NotAKeySet)?;
        let list = members
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwkError::NotAKeySet)?;
        let mut keys: Vec<Key> = Vec::with_capacity(list.len());
        let (mut secret, mut public) = (0, 0);
        for (i, jwk) in list.iter().enumerate() {
            let obj = jwk.as_object().ok_or(JwkError::KeyNotAnObject(i))?;
            let name = key_name(obj, i);
            if let Some(kid) = obj.get("kid") {
                let kid = kid
                    .as_str()
                    .ok_or_else(|| name.refuse(KeyProblem::NotAString("kid")))?;
                if keys.iter().any(|k| k.kid.as_deref() == Some(kid))
                    || list[..i]
                        .iter()
                        .any(|o| o.get("kid").and_then(Value::as_str) == Some(kid))
                {
                    return Err(JwkError::DuplicateKid(kid.to_owned()));
                }
            }
            match obj.get("kty").and_then(Value::as_str) {
                Some("oct") => secret += 1,
                _ => public += 1,
            }
            if let Some(key) = parse_key(obj, &name, allowed)? {
                keys.push(key);
            }
        }
        if secret > 0 && public > 0 {
            return Err(JwkError::MixedSecretAndPublic);
        }
        Ok(KeySet { keys })
    }
}

fn key_name(obj: &Map<String, Value>, i: usize) -> KeyName {
    match obj.get("kid").and_then(Value::as_str) {
        Some(kid) => KeyName::Kid(kid.to_owned()),
        None => KeyName::Index(i),
    }
}

fn str_member<'a>(
    obj: &'a Map<String, Value>,
    name: &KeyName,
    member: &'static str,
) -> Result<Option<&'a str>, JwkError> {
    match obj.get(member) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(name.refuse(KeyProblem::NotAString(member))),
    }
}

fn bytes_member(
    obj: &Map<String, Value>,
    name: &KeyName,
    member: &'static str,
) -> Result<Vec<u8>, JwkError> {
    let text = str_member(obj, name, member)?
        .ok_or_else(|| name.refuse(KeyProblem::MissingMember(member)))?;
    b64::decode(text).ok_or_else(|| name.refuse(KeyProblem::NotBase64url(member)))
}

/// Whether the key is meant for verifying signatures; `None` means skip it.
fn signature_key(obj: &Map<String, Value>, name: &KeyName) -> Result<bool, JwkError> {
    let by_use = match str_member(obj, name, "use")? {
        None | Some("sig") => true,
        Some("enc") => false,
        Some(other) => return Err(name.refuse(KeyProblem::UnknownUse(other.to_owned()))),
    };
    let by_ops = match obj.get("key_ops") {
        None => true,
        Some(Value::Array(ops)) => {
            let mut verify = false;
            for op in ops {
                match op.as_str() {
                    Some("verify") => verify = true,
                    Some(_) => {}
                    None => return Err(name.refuse(KeyProblem::KeyOpsNotStrings)),
                }
            }
            verify
        }
        Some(_) => return Err(name.refuse(KeyProblem::KeyOpsNotAnArray)),
    };
    Ok(by_use && by_ops)
}

fn parse_key(
    obj: &Map<String, Value>,
    name: &KeyName,
    allowed: &[Alg],
) -> Result<Option<Key>, JwkError> {
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
        return Err(name.refuse(KeyProblem::PrivateMaterial(member)));
    }
    let kty = str_member(obj, name, "kty")?
        .ok_or_else(|| name.refuse(KeyProblem::MissingMember("kty")))?;
    let pinned = match str_member(obj, name, "alg")? {
        None => None,
        // RFC 7520's P-521 example key spells ES512 as `ES521`; accept that spelling only in
        // a key, where it still pins the key to P-521 (and so is refused on other curves).
        Some("ES521") => Some(Alg::ES512),
        Some(text) => Some(
            text.parse::<Alg>()
                .map_err(|()| name.refuse(KeyProblem::UnknownAlg(text.to_owned())))?,
        ),
    };
    let family = match kty {
        "RSA" => Family::Rsa,
        "EC" => match str_member(obj, name, "crv")? {
            Some("P-256") => Family::Ec("P-256"),
            Some("P-384") => Family::Ec("P-384"),
            Some("P-521") => Family::Ec("P-521"),
            Some(other) => return Err(name.refuse(KeyProblem::UnsupportedCurve(other.to_owned()))),
            None => return Err(name.refuse(KeyProblem::MissingMember("crv"))),
        },
        "OKP" => match str_member(obj, name, "crv")? {
            Some("Ed25519") => Family::Ed25519,
            Some(other) => return Err(name.refuse(KeyProblem::UnsupportedCurve(other.to_owned()))),
            None => return Err(name.refuse(KeyProblem::MissingMember("crv"))),
        },
        "oct" => Family::Hmac,
        other => return Err(name.refuse(KeyProblem::UnsupportedKeyType(other.to_owned()))),
    };
    if let Some(alg) = pinned {
        if alg.family() != family {
            let key_type = match family {
                Family::Ec(crv) => format!("EC {crv}"),
                Family::Ed25519 => "OKP Ed25519".to_string(),
                _ => kty.to_string(),
            };
            return Err(name.refuse(KeyProblem::AlgMismatch { alg, key_type }));
        }
    }
    // Validate the material even for keys that are then skipped, so a broken set is refused.
    let material = Material::parse(obj, name, family)?;
    if !signature_key(obj, name)? {
        return Ok(None);
    }
    let candidates: Vec<Alg> = Alg::ALL
        .into_iter()
        .filter(|a| a.family() == family && pinned.is_none_or(|p| p == *a))
        .collect();
    if let Material::Secret(k) = &material {
        let usable: Vec<Alg> = candidates
            .iter()
            .copied()
            .filter(|a| k.len() >= a.min_secret_len())
            .collect();
        if usable.is_empty() {
            let need = candidates
                .iter()
                .map(|a| a.min_secret_len())
                .min()
                .unwrap_or(32);
            return Err(name.refuse(KeyProblem::HmacTooShort {
                len: k.len(),
                alg: pinned.unwrap_or(Alg::HS256),
                need,
            }));
        }
    }
    let mut verifiers = Vec::new();
    for alg in candidates.into_iter().filter(|a| allowed.contains(a)) {
        if let Some(v) = material.verifier(alg, name)? {
            verifiers.push((alg, v));
        }
    }
    if verifiers.is_empty() {
        return Err(name.refuse(KeyProblem::NoAllowedAlgorithm {
            description: material.describe(kty),
        }));
    }
    Ok(Some(Key {
        kid: obj.get("kid").and_then(Value::as_str).map(str::to_owned),
        description: material.describe(kty),
        verifiers,
    }))
}

enum Material {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point `04 ‖ x ‖ y`.
    Ec(Vec<u8>),
    Ed25519(Vec<u8>),
    Secret(Vec<u8>),
}

impl Material {
    fn parse(
        obj: &Map<String, Value>,
        name: &KeyName,
        family: Family,
    ) -> Result<Material, JwkError> {
        Ok(match family {
            Family::Rsa => {
                let n = strip_zeros(bytes_member(obj, name, "n")?);
                let e = strip_zeros(bytes_member(obj, name, "e")?);
                let bits = bit_len(&n);
                if bits < MIN_RSA_BITS {
                    return Err(name.refuse(KeyProblem::RsaTooSmall { bits }));
                }
                if bits > MAX_RSA_BITS {
                    return Err(name.refuse(KeyProblem::RsaTooLarge { bits }));
                }
                let e_ok = !e.is_empty()
                    && e.len() <= 4
                    && e[e.len() - 1] & 1 == 1
                    && !(e.len() == 1 && e[0] < 3);
                if !e_ok {
                    return Err(name.refuse(KeyProblem::RsaBadExponent));
                }
                if n[n.len() - 1] & 1 == 0 {
                    return Err(name.refuse(KeyProblem::RsaEvenModulus));
                }
                if roca::is_vulnerable(&n) {
                    return Err(name.refuse(KeyProblem::RsaRoca));
                }
                Material::Rsa { n, e }
            }
            Family::Ec(crv) => {
                let width = match crv {
                    "P-256" => 32,
                    "P-384" => 48,
                    _ => 66,
                };
                let x = bytes_member(obj, name, "x")?;
                let y = bytes_member(obj, name, "y")?;
                if x.len() != width || y.len() != width {
                    return Err(name.refuse(KeyProblem::EcCoordinateLength { crv, width }));
                }
                let mut point = Vec::with_capacity(1 + 2 * width);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let check: &'static signature::EcdsaVerificationAlgorithm = match crv {
                    "P-256" => &signature::ECDSA_P256_SHA256_FIXED,
                    "P-384" => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => &signature::ECDSA_P521_SHA512_FIXED,
                };
                ParsedPublicKey::new(check, &point)
                    .map_err(|_| name.refuse(KeyProblem::EcPointNotOnCurve { crv }))?;
                Material::Ec(point)
            }
            Family::Ed25519 => {
                let x = bytes_member(obj, name, "x")?;
                if x.len() != 32 {
                    return Err(name.refuse(KeyProblem::Ed25519Length));
                }
                Material::Ed25519(x)
            }
            Family::Hmac => {
                let k = bytes_member(obj, name, "k")?;
                if k.is_empty() {
                    return Err(name.refuse(KeyProblem::HmacEmpty));
                }
                Material::Secret(k)
            }
        })
    }

    fn verifier(&self, alg: Alg, name: &KeyName) -> Result<Option<Verifier>, JwkError> {
        let refused = |_| name.refuse(KeyProblem::CryptoRefused);
        Ok(Some(match self {
            Material::Rsa { n, e } => {
                let params: &'static signature::RsaParameters = match alg {
                    Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Alg::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return Ok(None),
                };
                let parts = RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                };
                Verifier::Public(parts.to_parsed_public_key(params).map_err(refused)?)
            }
            Material::Ec(point) => {
                let check: &'static signature::EcdsaVerificationAlgorithm = match alg {
                    Alg::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Alg::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                    Alg::ES512 => &signature::ECDSA_P521_SHA512_FIXED,
                    _ => return Ok(None),
                };
                Verifier::Public(ParsedPublicKey::new(check, point).map_err(refused)?)
            }
            Material::Ed25519(x) => {
                Verifier::Public(ParsedPublicKey::new(&signature::ED25519, x).map_err(refused)?)
            }
            Material::Secret(k) => {
                if k.len() < alg.min_secret_len() {
                    return Ok(None);
                }
                let h = match alg {
                    Alg::HS256 => hmac::HMAC_SHA256,
                    Alg::HS384 => hmac::HMAC_SHA384,
                    _ => hmac::HMAC_SHA512,
                };
                Verifier::Hmac(Box::new(hmac::Key::new(h, k)))
            }
        }))
    }

    fn describe(&self, kty: &str) -> String {
        match self {
            Material::Rsa { n, .. } => format!("RSA {}", bit_len(n)),
            Material::Ec(p) => format!(
                "EC {}",
                match p.len() {
                    65 => "P-256",
                    97 => "P-384",
                    _ => "P-521",
                }
            ),
            Material::Ed25519(_) => "OKP Ed25519".to_string(),
            Material::Secret(k) => format!("{kty} {} bytes", k.len()),
        }
    }
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let lead = v.iter().take_while(|b| **b == 0).count();
    v.drain(..lead);
    v
}

fn bit_len(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(top) => n.len() * 8 - top.leading_zeros() as usize,
    }
}

/// Detection of RSA moduli made by the Infineon library flaw (ROCA, CVE-2017-15361), after
/// Nemec et al., "The Return of Coppersmith's Attack" (CCS 2017): such a modulus lies, modulo
/// each of these small primes, in the subgroup generated by 65537.
mod roca {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];

    pub fn is_vulnerable(n: &[u8]) -> bool {
        PRIMES.iter().all(|&p| {
            let residue = n
                .iter()
                .fold(0u32, |acc, b| (acc * 256 + u32::from(*b)) % p);
            in_subgroup_of_65537(residue, p)
        })
    }

    fn in_subgroup_of_65537(residue: u32, p: u32) -> bool {
        let g = 65537 % p;
        let mut x = 1u32;
        for _ in 0..p {
            if x == residue {
                return true;
            }
            x = x * g % p;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(keys: Value, allowed: &[Alg]) -> Result<KeySet, JwkError> {
        KeySet::from_jwks(&json!({ "keys": keys }), allowed)
    }

    #[test]
    fn hmac_secret_length_follows_the_hash() {
        let k31 =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [7u8; 31]);
        let k48 =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [7u8; 48]);
        let e = set(json!([{"kty":"oct","k":k31,"kid":"a"}]), &Alg::ALL)
            .err()
            .unwrap();
        assert_eq!(
            e,
            JwkError::Key {
                key: KeyName::Kid("a".into()),
                problem: KeyProblem::HmacTooShort {
                    len: 31,
                    alg: Alg::HS256,
                    need: 32
                }
            }
        );
        assert_eq!(
            e.to_string(),
            "key `a`: HMAC secret is 31 bytes; HS256 needs at least 32"
        );
        let ks = set(json!([{"kty":"oct","k":k48,"kid":"a"}]), &Alg::ALL).unwrap();
        assert_eq!(
            ks.keys[0].algs().collect::<Vec<_>>(),
            vec![Alg::HS256, Alg::HS384]
        );
        let e = set(json!([{"kty":"oct","k":k48,"alg":"HS512"}]), &Alg::ALL)
            .err()
            .unwrap();
        assert_eq!(
            e,
            KeyName::Index(0).refuse(KeyProblem::HmacTooShort {
                len: 48,
                alg: Alg::HS512,
                need: 64
            })
        );
    }

    #[test]
    fn shape_errors_are_refused() {
        const K32: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";
        let key0 = |problem| KeyName::Index(0).refuse(problem);
        for (bad, want, text) in [
            (
                json!({"kees": []}),
                JwkError::NotAKeySet,
                "jwks must be a JSON object with a `keys` array",
            ),
            (
                json!([]),
                JwkError::NotAKeySet,
                "jwks must be a JSON object with a `keys` array",
            ),
            (
                json!({"keys": [1]}),
                JwkError::KeyNotAnObject(0),
                "key 0 is not a JSON object",
            ),
            (
                json!({"keys": [{"kty":"oct","k":"AAAA","kid":5}]}),
                key0(KeyProblem::NotAString("kid")),
                "key 0: `kid` must be a string",
            ),
            (
                json!({"keys": [{"kty":"XYZ"}]}),
                key0(KeyProblem::UnsupportedKeyType("XYZ".into())),
                "key 0: unsupported key type `XYZ`",
            ),
            (
                json!({"keys": [{"kty":"OKP","crv":"Ed448","x":"AA"}]}),
                key0(KeyProblem::UnsupportedCurve("Ed448".into())),
                "key 0: unsupported curve `Ed448`",
            ),
            (
                json!({"keys": [{"kty":"EC","crv":"P-256","x":"AA","y":"AA","alg":"HS256"}]}),
                key0(KeyProblem::AlgMismatch {
                    alg: Alg::HS256,
                    key_type: "EC P-256".into(),
                }),
                "key 0: algorithm `HS256` does not fit a key of type EC P-256",
            ),
            (
                json!({"keys": [{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA","kid":"p"}]}),
                KeyName::Kid("p".into()).refuse(KeyProblem::PrivateMaterial("d")),
                "key `p` contains private key material (`d`); configure the public key only",
            ),
            (
                json!({"keys": [{"kty":"oct","k":"AAAA","use":"wrap"}]}),
                key0(KeyProblem::UnknownUse("wrap".into())),
                "key 0: unknown `use` `wrap`",
            ),
            (
                json!({"keys": [{"kty":"oct","k":"A A"}]}),
                key0(KeyProblem::NotBase64url("k")),
                "key 0: `k` is not valid base64url",
            ),
            (
                json!({"keys": [{"kty":"RSA","e":"AQAB","kid":"no-n"}]}),
                KeyName::Kid("no-n".into()).refuse(KeyProblem::MissingMember("n")),
                "key `no-n`: missing `n`",
            ),
            (
                json!({"keys": [{"kty":"oct","k":K32,"kid":"a"},{"kty":"oct","k":K32,"kid":"a"}]}),
                JwkError::DuplicateKid("a".into()),
                "duplicate kid `a`",
            ),
        ] {
            let e = KeySet::from_jwks(&bad, &Alg::ALL).err().unwrap();
            assert_eq!(e, want, "{bad}");
            assert_eq!(e.to_string(), text, "{bad}");
        }
    }

    #[test]
    fn messages_quote_the_kid() {
        let e = KeyName::Kid("a`b\n".into()).refuse(KeyProblem::RsaEvenModulus);
        assert_eq!(e.to_string(), "key `a'b\\n`: RSA modulus is even");
        let long = "k".repeat(100);
        let e = JwkError::DuplicateKid(long);
        assert_eq!(
            e.to_string(),
            format!("duplicate kid `{}…`", "k".repeat(64))
        );
    }

    #[test]
    fn default_algorithms_refuse_hmac_keys() {
        let k =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [1u8; 32]);
        let e = set(json!([{"kty":"oct","k":k,"kid":"h"}]), &Alg::ASYMMETRIC)
            .err()
            .unwrap();
        assert_eq!(
            e,
            KeyName::Kid("h".into()).refuse(KeyProblem::NoAllowedAlgorithm {
                description: "oct 32 bytes".into()
            })
        );
        assert_eq!(
            e.to_string(),
            "key `h` (oct 32 bytes) fits none of the allowed algorithms"
        );
    }

    #[test]
    fn roca_subgroup_test_matches_its_definition() {
        // 1 = 65537^0 lies in every subgroup; 0 lies in none.
        assert!(roca::is_vulnerable(&[1]));
        assert!(!roca::is_vulnerable(&[0]));
    }
}
