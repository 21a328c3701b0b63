//! Trust configuration: the rows of `oidc.issuers`, each given as the JSON object
//! `to_jsonb(row)`, validated into [`IssuerConfig`]. The same function validates a row
//! when it is written (so a refused row stores nothing) and when a backend loads it.

use crate::discovery::FetchError;
use crate::token::alg::Alg;
use crate::token::jwk::{JwkError, KeySet};
use crate::token::quote;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;

/// Default clock leeway for `exp`, `nbf` and `iat`, in seconds.
pub const DEFAULT_LEEWAY: i64 = 30;
/// Largest leeway an issuer may configure, in seconds.
pub const MAX_LEEWAY: i64 = 300;

/// Why a configuration row was refused: a row of `oidc.issuers`, or one of
/// `oidc.revocations` that cannot be read (see [`crate::revocation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The issuer row is not a JSON object.
    NotAnObject,
    /// The row has no usable `issuer`.
    BadIssuer,
    /// The row of `issuer` is refused for `problem`.
    Issuer {
        issuer: String,
        problem: IssuerProblem,
    },
    /// A revocation row without a kind, an issuer or a value.
    IncompleteRevocation,
    /// A subject revocation without a finite `issued_before` (it then revokes every token
    /// of the subject).
    RevocationWithoutInstant,
}

/// What is wrong with an issuer row (see [`ConfigError::Issuer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerProblem {
    NoAudience,
    BadLogoutAudiences,
    /// A member that must be an array of strings is something else.
    NotAnArray(&'static str),
    /// An array member holding something else than strings.
    NotStrings(&'static str),
    NoAlgorithms,
    /// An entry of `algorithms` that is not an algorithm's name.
    UnknownAlgorithm(String),
    BadLeeway,
    /// A member that must be a non-empty string or null is something else.
    NotAnOptionalString(&'static str),
    /// The issuer cannot use discovery.
    Discovery(FetchError),
    /// Neither `jwks` nor `discovery`.
    NoJwks,
    /// `jwks` is refused.
    Jwks(JwkError),
    /// `jwks` holds only keys that are not for signatures.
    NoSignatureKey,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NotAnObject => f.write_str("issuer row must be a JSON object"),
            ConfigError::BadIssuer => {
                f.write_str("`issuer` must be a non-empty string without spaces")
            }
            ConfigError::Issuer { issuer, problem } => {
                write!(f, "issuer `{}`: {problem}", quote(issuer))
            }
            ConfigError::IncompleteRevocation => f.write_str(
                "a revocation needs a kind (token, subject, session), an issuer and a value",
            ),
            ConfigError::RevocationWithoutInstant => f.write_str(
                "a subject revocation without a finite issued_before revokes every token of the subject",
            ),
        }
    }
}

impl fmt::Display for IssuerProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use IssuerProblem as P;
        match self {
            P::NoAudience => f.write_str("`audiences` must list at least one non-empty audience"),
            P::BadLogoutAudiences => {
                f.write_str("`logout_audiences` must be NULL or list non-empty client ids")
            }
            P::NotAnArray(member) => write!(f, "`{member}` must be an array of strings"),
            P::NotStrings(member) => write!(f, "`{member}` must hold strings"),
            P::NoAlgorithms => f.write_str("`algorithms` must not be empty"),
            P::UnknownAlgorithm(name) => {
                write!(f, "unknown algorithm `{}` in `algorithms`", quote(name))
            }
            P::BadLeeway => write!(
                f,
                "`leeway` must be whole seconds, from 0 to {MAX_LEEWAY} seconds"
            ),
            P::NotAnOptionalString(member) => {
                write!(f, "`{member}` must be a non-empty string or null")
            }
            P::Discovery(e) => fmt::Display::fmt(e, f),
            P::NoJwks => f.write_str("`jwks` is required (or set `discovery` to have it fetched)"),
            P::Jwks(e) => fmt::Display::fmt(e, f),
            P::NoSignatureKey => f.write_str("`jwks` holds no signature key"),
        }
    }
}

/// The message of a refused issuer includes its cause's: the source is there for callers
/// that want the cause's type, not for printing the chain.
impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Issuer {
                problem: IssuerProblem::Jwks(e),
                ..
            } => Some(e),
            ConfigError::Issuer {
                problem: IssuerProblem::Discovery(e),
                ..
            } => Some(e),
            _ => None,
        }
    }
}

/// One trusted issuer.
pub struct IssuerConfig {
    /// Compared byte for byte with a token's `iss` (no normalisation of trailing slashes).
    pub issuer: String,
    /// A token's `aud` must contain at least one of these.
    pub audiences: Vec<String>,
    pub keys: KeySet,
    /// Header `alg` values accepted. Default [`Alg::ASYMMETRIC`].
    pub algorithms: Vec<Alg>,
    /// Seconds of clock skew tolerated. Default [`DEFAULT_LEEWAY`], at most [`MAX_LEEWAY`].
    pub leeway: i64,
    /// When set (e.g. `at+jwt`), the header `typ` must match: ID tokens are then refused.
    pub required_typ: Option<String>,
    /// Claim path of the roles list. Default `roles`.
    pub roles_claim: String,
    /// Claim path of the scopes. Default `scope`.
    pub scopes_claim: String,
    /// The `aud` values of its Back-Channel Logout tokens (the relying parties' client
    /// ids); empty: its logout tokens are refused.
    pub logout_audiences: Vec<String>,
    /// The extension's worker keeps `jwks` from the issuer's discovery document; until its
    /// first fetch the row may hold no keys (its tokens are then refused).
    pub discovery: bool,
    pub enabled: bool,
}

impl IssuerConfig {
    /// Validates one `oidc.issuers` row given as a JSON object.
    pub fn from_row(row: &Value) -> Result<IssuerConfig, ConfigError> {
        let row = row.as_object().ok_or(ConfigError::NotAnObject)?;
        let issuer = match row.get("issuer") {
            Some(Value::String(s)) if !s.is_empty() && !s.chars().any(char::is_whitespace) => {
                s.clone()
            }
            _ => return Err(ConfigError::BadIssuer),
        };
        let err = |problem| ConfigError::Issuer {
            issuer: issuer.clone(),
            problem,
        };
        let audiences = string_list(row, "audiences")
            .map_err(err)?
            .unwrap_or_default();
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err(err(IssuerProblem::NoAudience));
        }
        let logout_audiences = match string_list(row, "logout_audiences").map_err(err)? {
            None => Vec::new(),
            Some(l) if l.is_empty() || l.iter().any(String::is_empty) => {
                return Err(err(IssuerProblem::BadLogoutAudiences))
            }
            Some(l) => l,
        };
        let algorithms = match string_list(row, "algorithms").map_err(err)? {
            None => Alg::ASYMMETRIC.to_vec(),
            Some(names) if names.is_empty() => return Err(err(IssuerProblem::NoAlgorithms)),
            Some(names) => names
                .iter()
                .map(|n| {
                    n.parse::<Alg>()
                        .map_err(|()| err(IssuerProblem::UnknownAlgorithm(n.clone())))
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        // The table's `leeway interval` arrives as `leeway_seconds` (the SQL side converts it,
        // as an interval's text form depends on IntervalStyle).
        let leeway = match row.get("leeway_seconds") {
            None | Some(Value::Null) => DEFAULT_LEEWAY,
            Some(v) => match v.as_f64() {
                Some(s) if (0.0..=MAX_LEEWAY as f64).contains(&s) && s.fract() == 0.0 => s as i64,
                _ => return Err(err(IssuerProblem::BadLeeway)),
            },
        };
        let required_typ = optional_string(row, "required_typ").map_err(err)?;
        let roles_claim = optional_string(row, "roles_claim")
            .map_err(err)?
            .unwrap_or_else(|| "roles".into());
        let scopes_claim = optional_string(row, "scopes_claim")
            .map_err(err)?
            .unwrap_or_else(|| "scope".into());
        let enabled = row.get("enabled").and_then(Value::as_bool).unwrap_or(true);
        let discovery = row
            .get("discovery")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if discovery {
            crate::discovery::check_issuer(&issuer)
                .map_err(|e| err(IssuerProblem::Discovery(e)))?;
        }
        let keys = match row.get("jwks") {
            None | Some(Value::Null) if discovery => KeySet { keys: Vec::new() },
            None | Some(Value::Null) => return Err(err(IssuerProblem::NoJwks)),
            Some(jwks) => {
                let keys = KeySet::from_jwks(jwks, &algorithms)
                    .map_err(|e| err(IssuerProblem::Jwks(e)))?;
                if keys.keys.is_empty() && !discovery {
                    return Err(err(IssuerProblem::NoSignatureKey));
                }
                keys
            }
        };
        Ok(IssuerConfig {
            issuer,
            audiences,
            keys,
            algorithms,
            leeway,
            required_typ,
            roles_claim,
            scopes_claim,
            logout_audiences,
            discovery,
            enabled,
        })
    }
}

fn string_list(
    row: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<Vec<String>>, IssuerProblem> {
    match row.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or(IssuerProblem::NotStrings(name))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(IssuerProblem::NotAnArray(name)),
    }
}

fn optional_string(
    row: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, IssuerProblem> {
    match row.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(IssuerProblem::NotAnOptionalString(name)),
    }
}

/// Every enabled issuer, by exact issuer string.
#[derive(Default)]
pub struct TrustConfig {
    issuers: HashMap<String, IssuerConfig>,
}

impl TrustConfig {
    /// Builds the configuration from rows. A row that fails validation (possible only if it
    /// was written around the validating trigger) is left out, so its tokens fail closed,
    /// and its error is returned for the caller to report.
    pub fn from_rows(rows: &[Value]) -> (TrustConfig, Vec<ConfigError>) {
        let mut config = TrustConfig::default();
        let mut errors = Vec::new();
        for row in rows {
            match IssuerConfig::from_row(row) {
                Ok(issuer) if issuer.enabled => {
                    config.issuers.insert(issuer.issuer.clone(), issuer);
                }
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        (config, errors)
    }

    pub fn issuer(&self, iss: &str) -> Option<&IssuerConfig> {
        self.issuers.get(iss)
    }

    pub fn len(&self) -> usize {
        self.issuers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::Revocations;
    use crate::token::jwk::{KeyName, KeyProblem};
    use serde_json::json;
    use std::error::Error as _;

    const K32: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";

    fn refused(row: Value) -> ConfigError {
        match IssuerConfig::from_row(&row) {
            Ok(_) => panic!("{row} was accepted"),
            Err(e) => e,
        }
    }

    fn issuer(problem: IssuerProblem) -> ConfigError {
        ConfigError::Issuer {
            issuer: "https://i.test".into(),
            problem,
        }
    }

    fn row(member: &str, value: Value) -> Value {
        let mut row = json!({
            "issuer": "https://i.test", "audiences": ["a"], "algorithms": ["HS256"],
            "jwks": {"keys": [{"kty": "oct", "k": K32, "kid": "a"}]},
        });
        row[member] = value;
        row
    }

    #[test]
    fn each_refusal_has_its_variant_and_message() {
        assert!(IssuerConfig::from_row(&row("enabled", json!(true))).is_ok());
        for (row, want, text) in [
            (
                json!([]),
                ConfigError::NotAnObject,
                "issuer row must be a JSON object",
            ),
            (
                json!({"issuer": "a b"}),
                ConfigError::BadIssuer,
                "`issuer` must be a non-empty string without spaces",
            ),
            (
                row("audiences", json!([])),
                issuer(IssuerProblem::NoAudience),
                "issuer `https://i.test`: `audiences` must list at least one non-empty audience",
            ),
            (
                row("audiences", json!([1])),
                issuer(IssuerProblem::NotStrings("audiences")),
                "issuer `https://i.test`: `audiences` must hold strings",
            ),
            (
                row("algorithms", json!(["XS999"])),
                issuer(IssuerProblem::UnknownAlgorithm("XS999".into())),
                "issuer `https://i.test`: unknown algorithm `XS999` in `algorithms`",
            ),
            (
                row("leeway_seconds", json!(301)),
                issuer(IssuerProblem::BadLeeway),
                "issuer `https://i.test`: `leeway` must be whole seconds, from 0 to 300 seconds",
            ),
            (
                row("roles_claim", json!("")),
                issuer(IssuerProblem::NotAnOptionalString("roles_claim")),
                "issuer `https://i.test`: `roles_claim` must be a non-empty string or null",
            ),
            (
                row("jwks", json!(null)),
                issuer(IssuerProblem::NoJwks),
                "issuer `https://i.test`: `jwks` is required (or set `discovery` to have it fetched)",
            ),
            (
                row("jwks", json!({"keys": []})),
                issuer(IssuerProblem::NoSignatureKey),
                "issuer `https://i.test`: `jwks` holds no signature key",
            ),
        ] {
            let e = refused(row.clone());
            assert_eq!(e, want, "{row}");
            assert_eq!(e.to_string(), text, "{row}");
            assert!(e.source().is_none(), "{row}");
        }
    }

    #[test]
    fn a_refused_key_set_is_the_source() {
        let e = refused(row(
            "jwks",
            json!({"keys": [{"kty": "oct", "k": "AAAA", "kid": "s"}]}),
        ));
        let jwk = JwkError::Key {
            key: KeyName::Kid("s".into()),
            problem: KeyProblem::HmacTooShort {
                len: 3,
                alg: Alg::HS256,
                need: 32,
            },
        };
        assert_eq!(e, issuer(IssuerProblem::Jwks(jwk.clone())));
        assert_eq!(
            e.to_string(),
            "issuer `https://i.test`: key `s`: HMAC secret is 3 bytes; HS256 needs at least 32"
        );
        let source = e.source().and_then(|s| s.downcast_ref::<JwkError>());
        assert_eq!(source, Some(&jwk));
    }

    #[test]
    fn a_discovery_refusal_is_the_source() {
        let mut r = row("discovery", json!(true));
        r["issuer"] = json!("ftp://i.test");
        let e = refused(r);
        assert!(matches!(
            &e,
            ConfigError::Issuer {
                problem: IssuerProblem::Discovery(_),
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "issuer `ftp://i.test`: `ftp://i.test` is not an https URL"
        );
        assert!(e.source().is_some_and(|s| s.is::<FetchError>()));
    }

    #[test]
    fn the_issuer_is_quoted() {
        let e = ConfigError::Issuer {
            issuer: "https://x`\u{1}.test".into(),
            problem: IssuerProblem::NoAudience,
        };
        assert!(
            e.to_string()
                .starts_with("issuer `https://x'\\u{1}.test`: "),
            "{e}"
        );
    }

    #[test]
    fn unreadable_revocations() {
        let (_, errors) = Revocations::from_rows(&[
            json!({"kind": "x", "issuer": "https://i.test", "value": "v"}),
            json!({"kind": "subject", "issuer": "https://i.test", "value": "v"}),
        ]);
        assert_eq!(
            errors,
            [
                ConfigError::IncompleteRevocation,
                ConfigError::RevocationWithoutInstant
            ]
        );
    }
}
