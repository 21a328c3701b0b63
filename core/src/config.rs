//! Trust configuration: the rows of `oidc.issuers`, each given as the JSON object
//! `to_jsonb(row)`, validated into [`IssuerConfig`]. The same function validates a row
//! when it is written (so a refused row stores nothing) and when a backend loads it.

use crate::token::alg::Alg;
use crate::token::jwk::KeySet;
use crate::token::quote;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;

/// Default clock leeway for `exp`, `nbf` and `iat`, in seconds.
pub const DEFAULT_LEEWAY: i64 = 30;
/// Largest leeway an issuer may configure, in seconds.
pub const MAX_LEEWAY: i64 = 300;

/// Why an issuer row was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
        let row = row
            .as_object()
            .ok_or_else(|| ConfigError("issuer row must be a JSON object".into()))?;
        let issuer = match row.get("issuer") {
            Some(Value::String(s)) if !s.is_empty() && !s.chars().any(char::is_whitespace) => {
                s.clone()
            }
            _ => {
                return Err(ConfigError(
                    "`issuer` must be a non-empty string without spaces".into(),
                ))
            }
        };
        let err = |msg: String| ConfigError(format!("issuer `{}`: {msg}", quote(&issuer)));
        let audiences = string_list(row, "audiences")
            .map_err(err)?
            .unwrap_or_default();
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err(err(
                "`audiences` must list at least one non-empty audience".into()
            ));
        }
        let logout_audiences = match string_list(row, "logout_audiences").map_err(err)? {
            None => Vec::new(),
            Some(l) if l.is_empty() || l.iter().any(String::is_empty) => {
                return Err(err(
                    "`logout_audiences` must be NULL or list non-empty client ids".into(),
                ))
            }
            Some(l) => l,
        };
        let algorithms = match string_list(row, "algorithms").map_err(err)? {
            None => Alg::ASYMMETRIC.to_vec(),
            Some(names) if names.is_empty() => {
                return Err(err("`algorithms` must not be empty".into()))
            }
            Some(names) => names
                .iter()
                .map(|n| {
                    n.parse::<Alg>().map_err(|()| {
                        err(format!("unknown algorithm `{}` in `algorithms`", quote(n)))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        // The table's `leeway interval` arrives as `leeway_seconds` (the SQL side converts it,
        // as an interval's text form depends on IntervalStyle).
        let leeway = match row.get("leeway_seconds") {
            None | Some(Value::Null) => DEFAULT_LEEWAY,
            Some(v) => match v.as_f64() {
                Some(s) if (0.0..=MAX_LEEWAY as f64).contains(&s) && s.fract() == 0.0 => s as i64,
                _ => {
                    return Err(err(format!(
                        "`leeway` must be whole seconds, from 0 to {MAX_LEEWAY} seconds"
                    )))
                }
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
            crate::discovery::check_issuer(&issuer).map_err(|e| err(e.0))?;
        }
        let keys = match row.get("jwks") {
            None | Some(Value::Null) if discovery => KeySet { keys: Vec::new() },
            None | Some(Value::Null) => {
                return Err(err(
                    "`jwks` is required (or set `discovery` to have it fetched)".into(),
                ))
            }
            Some(jwks) => {
                let keys = KeySet::from_jwks(jwks, &algorithms).map_err(|e| err(e.0))?;
                if keys.keys.is_empty() && !discovery {
                    return Err(err("`jwks` holds no signature key".into()));
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

fn string_list(row: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, String> {
    match row.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("`{name}` must hold strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(format!("`{name}` must be an array of strings")),
    }
}

fn optional_string(row: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match row.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{name}` must be a non-empty string or null")),
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
