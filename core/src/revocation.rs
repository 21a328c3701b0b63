//! Revoked tokens: the rows of `oidc.revocations`, and whether a verified token is among
//! what they revoke.
//!
//! Three kinds, each scoped to one issuer (a `sub`, `jti` or `sid` means nothing across
//! issuers):
//! - `token`: the token whose `jti` is the value;
//! - `subject`: every token of the subject `sub` issued before an instant (`iat` earlier
//!   than it; a token without `iat` cannot show it was issued after, so it is revoked too);
//! - `session`: every token carrying the session id `sid` (OIDC Back-Channel Logout).
//!
//! Checking is a few hash lookups per token resolution (a new token, or a change of the
//! table), never per row, and never a signature check again.

use crate::config::ConfigError;
use crate::token::{TokenError, Verified};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Token,
    Subject,
    Session,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "token" => Kind::Token,
            "subject" => Kind::Subject,
            "session" => Kind::Session,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Token => "token",
            Kind::Subject => "subject",
            Kind::Session => "session",
        }
    }
}

/// What the table revokes, indexed for lookups by (issuer, value).
#[derive(Debug, Default)]
pub struct Revocations {
    tokens: HashSet<(String, String)>,
    /// The latest `issued_before` (seconds since the epoch) per subject.
    subjects: HashMap<(String, String), f64>,
    sessions: HashSet<(String, String)>,
    /// A session's subject: its tokens without a `sid` issued before the instant (the
    /// latest per subject).
    session_subjects: HashMap<(String, String), f64>,
}

impl Revocations {
    /// The revocations of the rows (`to_jsonb` of `oidc.revocations` plus
    /// `issued_before_epoch`), and a description of each row that could not be read: the
    /// table's constraints make that impossible unless they were dropped.
    pub fn from_rows(rows: &[Value]) -> (Revocations, Vec<ConfigError>) {
        let mut r = Revocations::default();
        let mut errors = Vec::new();
        for row in rows {
            let text = |k: &str| row.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
            let kind = text("kind").and_then(Kind::parse);
            let (Some(kind), Some(issuer), Some(value)) = (kind, text("issuer"), text("value"))
            else {
                errors.push(ConfigError::IncompleteRevocation);
                continue;
            };
            let key = (issuer.to_string(), value.to_string());
            match kind {
                Kind::Token => {
                    r.tokens.insert(key);
                }
                Kind::Session => {
                    r.sessions.insert(key);
                    if let Some(sub) = text("sub") {
                        let before = row
                            .get("issued_before_epoch")
                            .and_then(Value::as_f64)
                            .filter(|f| f.is_finite())
                            .unwrap_or(f64::INFINITY);
                        let e = r
                            .session_subjects
                            .entry((issuer.to_string(), sub.to_string()))
                            .or_insert(before);
                        *e = e.max(before);
                    }
                }
                Kind::Subject => {
                    // Without a readable instant, every token of the subject (fails closed).
                    let before = match row.get("issued_before_epoch").and_then(Value::as_f64) {
                        Some(f) if f.is_finite() => f,
                        _ => {
                            errors.push(ConfigError::RevocationWithoutInstant);
                            f64::INFINITY
                        }
                    };
                    let e = r.subjects.entry(key).or_insert(before);
                    *e = e.max(before);
                }
            }
        }
        (r, errors)
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.subjects.is_empty() && self.sessions.is_empty()
    }

    /// `Err(Revoked)` when a row revokes the token.
    pub fn check(&self, v: &Verified) -> Result<(), TokenError> {
        if self.is_empty() {
            return Ok(());
        }
        let revoked = |kind| Err(TokenError::Revoked(kind));
        let claim = |name: &str| v.claims.get(name).and_then(Value::as_str);
        let key = |value: &str| (v.issuer.clone(), value.to_string());
        if let Some(jti) = claim("jti") {
            if self.tokens.contains(&key(jti)) {
                return revoked(Kind::Token);
            }
        }
        if let Some(sid) = claim("sid") {
            if self.sessions.contains(&key(sid)) {
                return revoked(Kind::Session);
            }
        }
        if let Some(sub) = v.sub.as_deref() {
            let before = |map: &HashMap<(String, String), f64>| {
                map.get(&key(sub))
                    .is_some_and(|before| v.iat.is_none_or(|iat| iat < *before))
            };
            if before(&self.subjects) {
                return revoked(Kind::Subject);
            }
            // A token that names no session cannot show it is not of the revoked one.
            let names_a_session = v
                .claims
                .get("sid")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if !names_a_session && before(&self.session_subjects) {
                return revoked(Kind::Session);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::alg::Alg;
    use serde_json::json;

    fn verified(iss: &str, claims: Value) -> Verified {
        Verified {
            sub: claims
                .get("sub")
                .and_then(Value::as_str)
                .map(str::to_string),
            iat: claims.get("iat").and_then(Value::as_f64),
            claims,
            issuer: iss.into(),
            kid: None,
            alg: Alg::RS256,
            exp: 2e9,
            nbf: None,
            leeway: 0,
            scopes: vec![],
            roles: vec![],
        }
    }

    fn rows(r: &[Value]) -> Revocations {
        let (r, errors) = Revocations::from_rows(r);
        assert!(errors.is_empty(), "{errors:?}");
        r
    }

    #[test]
    fn each_kind_revokes_what_it_names_for_its_issuer_only() {
        let r = rows(&[
            json!({"kind": "token", "issuer": "https://a", "value": "j1"}),
            json!({"kind": "session", "issuer": "https://a", "value": "s1"}),
            json!({"kind": "subject", "issuer": "https://a", "value": "alice", "issued_before_epoch": 1000.5}),
        ]);
        let a = |c| r.check(&verified("https://a", c));
        let b = |c| r.check(&verified("https://b", c));
        assert_eq!(
            a(json!({"jti": "j1", "sub": "x"})),
            Err(TokenError::Revoked(Kind::Token))
        );
        assert_eq!(b(json!({"jti": "j1", "sub": "x"})), Ok(()));
        assert_eq!(a(json!({"jti": "j2", "sub": "x"})), Ok(()));
        assert_eq!(
            a(json!({"sid": "s1", "sub": "x"})),
            Err(TokenError::Revoked(Kind::Session))
        );
        assert_eq!(b(json!({"sid": "s1"})), Ok(()));
        // Before the instant, or without iat: revoked; at or after it: not.
        let subject = Err(TokenError::Revoked(Kind::Subject));
        assert_eq!(a(json!({"sub": "alice", "iat": 1000})), subject);
        assert_eq!(a(json!({"sub": "alice"})), subject);
        assert_eq!(a(json!({"sub": "alice", "iat": 1001})), Ok(()));
        assert_eq!(a(json!({"sub": "bob", "iat": 10})), Ok(()));
        assert_eq!(b(json!({"sub": "alice", "iat": 10})), Ok(()));
        // Claims of another type match nothing.
        assert_eq!(a(json!({"jti": 1, "sid": ["s1"], "sub": "x"})), Ok(()));
    }

    #[test]
    fn a_session_with_its_subject_revokes_that_subjects_tokens_without_a_sid() {
        let r = rows(&[
            json!({"kind": "session", "issuer": "i", "value": "s1", "sub": "alice",
                              "issued_before_epoch": 100}),
        ]);
        let check = |c| r.check(&verified("i", c));
        let session = Err(TokenError::Revoked(Kind::Session));
        assert_eq!(check(json!({"sub": "alice", "iat": 50})), session);
        assert_eq!(check(json!({"sub": "alice"})), session);
        assert_eq!(check(json!({"sub": "alice", "iat": 150})), Ok(()));
        // A sid that is no session id names no session.
        for sid in [json!(null), json!(""), json!(7)] {
            assert_eq!(
                check(json!({"sub": "alice", "sid": sid, "iat": 50})),
                session
            );
        }
        // Another session of the same subject: not this one.
        assert_eq!(
            check(json!({"sub": "alice", "sid": "s2", "iat": 50})),
            Ok(())
        );
        assert_eq!(check(json!({"sub": "bob", "iat": 50})), Ok(()));
    }

    #[test]
    fn the_latest_instant_of_a_subject_counts() {
        let r = rows(&[
            json!({"kind": "subject", "issuer": "i", "value": "s", "issued_before_epoch": 50}),
            json!({"kind": "subject", "issuer": "i", "value": "s", "issued_before_epoch": 100}),
        ]);
        assert!(r
            .check(&verified("i", json!({"sub": "s", "iat": 70})))
            .is_err());
    }

    #[test]
    fn unreadable_rows_are_reported() {
        let (r, errors) = Revocations::from_rows(&[
            json!({"kind": "everything", "issuer": "i", "value": "v"}),
            json!({"kind": "token", "issuer": "", "value": "v"}),
            json!({"kind": "subject", "issuer": "i", "value": "v"}),
        ]);
        assert_eq!(errors.len(), 3);
        assert!(r
            .check(&verified("i", json!({"sub": "v", "iat": 1e12})))
            .is_err());
        assert!(r
            .check(&verified("i", json!({"jti": "v", "sub": "w"})))
            .is_ok());
    }
}
