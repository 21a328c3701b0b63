//! Rule tests (`oidc.rule_tests`): expected decisions pinned beside the rules, as `opa test`
//! or `cedar run-tests` do. A test names a principal (claims, or none for anonymous), an
//! action, a resource type and resource, the request's context and time, and the decision
//! it expects, optionally with the rule that must decide. [`RuleTest::run`] decides it with
//! a [`RuleSet`] exactly as `oidc.replay()` does.

use super::value::Val;
use super::{context, Effect, Explanation, RuleSet};
use crate::config::TrustConfig;
use crate::token::{roles_of, scopes_of};
use serde_json::{Map, Value};
use std::fmt;

/// The decision a test expects or got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Allow,
    Deny,
}

impl Expect {
    pub fn name(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
        }
    }
}

/// Why a row of `oidc.rule_tests` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTestError {
    /// A required column is missing or NULL.
    Missing(&'static str),
    /// A column has the wrong JSON type: (column, what it must be).
    Type(&'static str, &'static str),
    /// `expect` is neither `allow` nor `deny`.
    Expect,
    /// `context` holds a member other than `method` and `path`.
    ContextMember,
}

impl fmt::Display for RuleTestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleTestError::Missing(c) => write!(f, "rule test: `{c}` is required"),
            RuleTestError::Type(c, must) => write!(f, "rule test: `{c}` must be {must}"),
            RuleTestError::Expect => f.write_str("rule test: `expect` must be `allow` or `deny`"),
            RuleTestError::ContextMember => f.write_str(
                "rule test: `context` may hold only `method` and `path` (strings); the time is `at`",
            ),
        }
    }
}

impl std::error::Error for RuleTestError {}

/// One row of `oidc.rule_tests`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleTest {
    pub name: String,
    /// `None`: anonymous.
    pub claims: Option<Value>,
    pub action: String,
    pub resource_type: String,
    pub resource: Value,
    pub method: Option<String>,
    pub path: Option<String>,
    /// When the request is decided, in ns since the Unix epoch; `None`: now.
    pub at_ns: Option<i128>,
    pub expect: Expect,
    /// The rule that must decide: a forbid that holds when denied, a permit that holds when
    /// allowed.
    pub expect_rule: Option<String>,
    /// Whether a failure refuses the transaction that changed the rules or the tests.
    pub gate: bool,
}

/// What running a test gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub passed: bool,
    pub got: Expect,
    /// The rules that decided: the forbids that held (or errored) when denied, the permits
    /// that held when allowed; none for the default deny.
    pub deciding: Vec<String>,
    pub explanation: Explanation,
}

impl RuleTest {
    /// Reads a row as `to_jsonb()` gives it, with `at` as `at_epoch_us` (microseconds since
    /// the Unix epoch, or null).
    pub fn from_row(row: &Value) -> Result<RuleTest, RuleTestError> {
        let text = |c: &'static str| match row.get(c) {
            None | Some(Value::Null) => Err(RuleTestError::Missing(c)),
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(RuleTestError::Type(c, "a non-empty string")),
        };
        let optional_text = |c: &'static str| match row.get(c) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(RuleTestError::Type(c, "NULL or a non-empty string")),
        };
        let claims = match row.get("claims") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => return Err(RuleTestError::Type("claims", "NULL or a JSON object")),
        };
        let resource = match row.get("resource") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => return Err(RuleTestError::Type("resource", "a JSON object")),
        };
        let (method, path) = match row.get("context") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(m)) => {
                if m.keys().any(|k| k != "method" && k != "path") {
                    return Err(RuleTestError::ContextMember);
                }
                let member = |k: &'static str| match m.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(RuleTestError::ContextMember),
                };
                (member("method")?, member("path")?)
            }
            Some(_) => return Err(RuleTestError::Type("context", "NULL or a JSON object")),
        };
        let at_ns = match row.get("at_epoch_us") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => {
                Some(i128::from(n.as_i64().ok_or(RuleTestError::Type("at", "a timestamp"))?) * 1000)
            }
            Some(_) => return Err(RuleTestError::Type("at", "a timestamp")),
        };
        let expect = match text("expect")?.as_str() {
            "allow" => Expect::Allow,
            "deny" => Expect::Deny,
            _ => return Err(RuleTestError::Expect),
        };
        let gate = match row.get("gate") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(RuleTestError::Type("gate", "a boolean")),
        };
        Ok(RuleTest {
            name: text("name")?,
            claims,
            action: text("action")?,
            resource_type: text("resource_type")?,
            resource,
            method,
            path,
            at_ns,
            expect,
            expect_rule: optional_text("expect_rule")?,
            gate,
        })
    }

    /// Whether the issuers can change this test's outcome: its claims name an issuer (`iss`),
    /// whose mapping of scopes and roles [`run`](Self::run) uses when it is configured.
    /// Anonymous tests, and claims without a string `iss`, decide alike with any issuers.
    pub fn needs_issuer(&self) -> bool {
        self.claims
            .as_ref()
            .is_some_and(|c| c.get("iss").is_some_and(Value::is_string))
    }

    /// Decides the test with `rules`, scopes and roles mapped by the claims' issuer in
    /// `trust` (as `oidc.replay()` does); `now_ns` when the test names no time.
    pub fn run(&self, rules: &RuleSet, trust: &TrustConfig, now_ns: i128) -> Outcome {
        let null = Value::Null;
        let claims = self.claims.as_ref().unwrap_or(&null);
        let config = claims
            .get("iss")
            .and_then(Value::as_str)
            .and_then(|i| trust.issuer(i));
        let (scopes, roles) = if self.claims.is_some() {
            (scopes_of(claims, config), roles_of(claims, config))
        } else {
            (Vec::new(), Vec::new())
        };
        let claims = Val::from_json(claims);
        let scopes = Val::list_of_strings(&scopes);
        let roles = Val::list_of_strings(&roles);
        let context = context(
            self.at_ns.unwrap_or(now_ns),
            self.method.as_deref(),
            self.path.as_deref(),
        );
        let resource = Val::from_json(&self.resource);
        let request = super::Request {
            claims: &claims,
            scopes: &scopes,
            roles: &roles,
            context: &context,
            resource: &resource,
        };
        let explanation = rules.explain(&self.action, &self.resource_type, &request);
        let got = if explanation.allowed {
            Expect::Allow
        } else {
            Expect::Deny
        };
        let deciding = if explanation.allowed {
            explanation.permits.clone()
        } else {
            explanation.forbids.clone()
        };
        let rule_ok = self
            .expect_rule
            .as_ref()
            .is_none_or(|r| deciding.iter().any(|d| d == r));
        Outcome {
            passed: got == self.expect && rule_ok,
            got,
            deciding,
            explanation,
        }
    }
}

impl RuleTest {
    /// The enforced rules that this test, having no `at`, decides by the clock: those
    /// matching its action and type whose condition reads `context.time`. Its outcome can
    /// then change with the time it runs (a gated test that fails refuses the next change).
    /// None when the test names its time.
    pub fn clock_rules<'r>(&self, rules: &'r RuleSet) -> Vec<&'r str> {
        if self.at_ns.is_some() {
            return Vec::new();
        }
        let m = rules.matching(&self.action, &self.resource_type);
        m.permits()
            .iter()
            .chain(m.forbids())
            .map(|&i| rules.rule(i))
            .filter(|r| r.program.as_ref().is_some_and(super::lint::reads_clock))
            .map(|r| r.name.as_str())
            .collect()
    }
}

/// Whether a rule of `rules` named `name` is a forbid (for messages).
pub fn is_forbid(rules: &RuleSet, name: &str) -> bool {
    rules
        .by_name(name)
        .is_some_and(|(_, r)| r.effect == Effect::Forbid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(rows: Value) -> RuleSet {
        let (set, errors) = RuleSet::from_rows(rows.as_array().map(Vec::as_slice).unwrap_or(&[]));
        assert!(errors.is_empty(), "{errors:?}");
        set
    }

    fn docs() -> RuleSet {
        rules(json!([
            {"name": "owner", "effect": "permit", "actions": ["read"], "resource_type": "doc",
             "condition": "resource.owner == claims.sub", "enabled": true},
            {"name": "admins", "effect": "permit", "actions": ["*"], "resource_type": "*",
             "condition": "'admin' in roles", "enabled": true},
            {"name": "night", "effect": "forbid", "actions": ["*"], "resource_type": "doc",
             "condition": "context.time.getHours() < 6", "enabled": true},
        ]))
    }

    fn test(row: Value) -> RuleTest {
        let mut base =
            json!({"name": "t", "action": "read", "resource_type": "doc", "expect": "allow"});
        if let (Some(b), Some(r)) = (base.as_object_mut(), row.as_object()) {
            b.extend(r.clone());
        }
        RuleTest::from_row(&base).unwrap_or_else(|e| unreachable!("{e}"))
    }

    const NOON: i128 = 1_700_049_600 * 1_000_000_000; // 2023-11-15T12:00:00Z
    const NIGHT: i128 = 1_700_006_400 * 1_000_000_000; // 2023-11-15T00:00:00Z

    #[test]
    fn decides_as_replay_and_names_the_deciding_rules() {
        let (r, t) = (docs(), TrustConfig::default());
        let owner = test(json!({"claims": {"sub": "alice"}, "resource": {"owner": "alice"}}));
        let o = owner.run(&r, &t, NOON);
        assert!(o.passed);
        assert_eq!(
            (o.got, o.deciding.as_slice()),
            (Expect::Allow, &["owner".to_string()][..])
        );
        let o = owner.run(&r, &t, NIGHT);
        assert!(!o.passed);
        assert_eq!(
            (o.got, o.deciding.as_slice()),
            (Expect::Deny, &["night".to_string()][..])
        );
        let night = test(
            json!({"claims": {"sub": "alice"}, "resource": {"owner": "alice"},
                                "at_epoch_us": 1_700_006_400_000_000_i64, "expect": "deny",
                                "expect_rule": "night"}),
        );
        assert!(night.run(&r, &t, NOON).passed, "`at` wins over now");
        let anonymous = test(json!({"resource": {"owner": "alice"}, "expect": "deny"}));
        let o = anonymous.run(&r, &t, NOON);
        assert!(o.passed && o.deciding.is_empty(), "default deny: {o:?}");
    }

    #[test]
    fn a_test_without_at_names_the_matching_rules_that_read_the_clock() {
        let r = docs();
        let owner = test(json!({"claims": {"sub": "alice"}, "resource": {"owner": "alice"}}));
        assert_eq!(owner.clock_rules(&r), ["night"]);
        let pinned = test(json!({"claims": {"sub": "alice"}, "at_epoch_us": 0}));
        assert!(pinned.clock_rules(&r).is_empty(), "`at` pins it");
        let other_type = test(json!({"resource_type": "folder"}));
        assert!(
            other_type.clock_rules(&r).is_empty(),
            "`night` is for docs only"
        );
        let shadowed = rules(json!([
            {"name": "try-night", "effect": "forbid", "actions": ["*"], "resource_type": "*",
             "condition": "context.time.getHours() < 6", "enabled": true, "mode": "shadow"},
            {"name": "off", "effect": "forbid", "actions": ["*"], "resource_type": "*",
             "condition": "context.time.getHours() < 6", "enabled": false},
        ]));
        assert!(
            owner.clock_rules(&shadowed).is_empty(),
            "a shadow or disabled rule decides no test"
        );
    }

    #[test]
    fn expect_rule_must_be_among_the_deciding_rules() {
        let (r, t) = (docs(), TrustConfig::default());
        let wrong = test(
            json!({"claims": {"sub": "alice"}, "resource": {"owner": "alice"},
                                "expect_rule": "admins"}),
        );
        let o = wrong.run(&r, &t, NOON);
        assert!(!o.passed && o.got == Expect::Allow);
        let default_deny = test(
            json!({"claims": {"sub": "bob"}, "resource": {"owner": "alice"},
                                       "expect": "deny", "expect_rule": "night"}),
        );
        assert!(!default_deny.run(&r, &t, NOON).passed);
    }

    /// The issuer `https://i.test`, its roles read from the claim `roles_claim`.
    fn issuer_with_roles_claim(roles_claim: &str) -> TrustConfig {
        let key = json!({"kty": "oct", "kid": "a", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0"});
        let row = json!({"issuer": "https://i.test", "audiences": ["a"], "algorithms": ["HS256"],
                         "jwks": {"keys": [key]}, "roles_claim": roles_claim, "enabled": true});
        let (trust, errors) = TrustConfig::from_rows(&[row]);
        assert!(errors.is_empty(), "{errors:?}");
        trust
    }

    #[test]
    fn scopes_and_roles_come_from_the_claims_issuer_mapping() {
        let r = docs();
        let trust = issuer_with_roles_claim("realm_access.roles");
        let claims =
            json!({"iss": "https://i.test", "sub": "x", "realm_access": {"roles": ["admin"]}});
        let t = test(json!({"claims": claims, "action": "delete"}));
        assert!(
            t.run(&r, &trust, NOON).passed,
            "admins by the issuer's roles_claim"
        );
        let o = t.run(&r, &TrustConfig::default(), NOON);
        assert!(!o.passed, "unknown issuer: the `roles` claim, absent here");
    }

    #[test]
    fn only_tests_that_name_an_issuer_need_one() {
        let needs = |claims: Value| test(json!({"claims": claims})).needs_issuer();
        assert!(needs(json!({"iss": "https://i.test", "sub": "x"})));
        assert!(!needs(json!({"sub": "x"})));
        assert!(
            !needs(json!({"iss": 7, "sub": "x"})),
            "not a string: no issuer's mapping"
        );
        assert!(!needs(Value::Null), "anonymous");
        // Those decide alike with and without issuers.
        let r = docs();
        let trust = issuer_with_roles_claim("sub");
        for claims in [
            json!({"sub": "admin"}),
            json!({"iss": 7, "sub": "admin"}),
            Value::Null,
        ] {
            let t = test(json!({"claims": claims, "action": "delete"}));
            assert_eq!(
                t.run(&r, &trust, NOON).got,
                t.run(&r, &TrustConfig::default(), NOON).got
            );
        }
    }

    #[test]
    fn refuses_malformed_rows() {
        let base =
            json!({"name": "t", "action": "read", "resource_type": "doc", "expect": "allow"});
        let with = |k: &str, v: Value| {
            let mut row = base.clone();
            row[k] = v;
            RuleTest::from_row(&row)
        };
        assert_eq!(with("expect", json!("maybe")), Err(RuleTestError::Expect));
        assert_eq!(
            with("name", json!("")),
            Err(RuleTestError::Type("name", "a non-empty string"))
        );
        assert_eq!(
            with("action", Value::Null),
            Err(RuleTestError::Missing("action"))
        );
        assert_eq!(
            with("claims", json!([1])),
            Err(RuleTestError::Type("claims", "NULL or a JSON object"))
        );
        assert_eq!(
            with("resource", json!("x")),
            Err(RuleTestError::Type("resource", "a JSON object"))
        );
        assert_eq!(
            with("context", json!({"time": 1})),
            Err(RuleTestError::ContextMember)
        );
        assert_eq!(
            with("context", json!({"method": 1})),
            Err(RuleTestError::ContextMember)
        );
        assert_eq!(
            with("gate", json!("yes")),
            Err(RuleTestError::Type("gate", "a boolean"))
        );
        assert!(with("context", json!({"method": "GET", "path": "/d"})).is_ok());
        assert_eq!(
            with("expect_rule", json!("")),
            Err(RuleTestError::Type(
                "expect_rule",
                "NULL or a non-empty string"
            ))
        );
    }
}
