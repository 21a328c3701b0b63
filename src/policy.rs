//! Decisions inside the backend: the rule set, the principal, the statement's context and a
//! resource come together here.
//!
//! Per-statement state (a backend is single-threaded, so `thread_local!` is safe): the
//! `context` value (statement time, PostgREST's `request.method`/`request.path`), rebuilt
//! when the statement start time changes, and the rules matching each (action, resource
//! type) the statement asks about, with their memo of resource-independent conditions. A
//! call site with constant arguments also keeps all of it (a [`Prepared`]) at the site, so
//! a row costs O(1) checks plus the matching rules' evaluation.

use crate::audit;
use crate::cache::{self, Entry, Inputs};
use crate::error::Error;
use crate::settings;
use oidc_authz_core::rules::eval::{Request, Resource};
use oidc_authz_core::rules::value::Val;
use oidc_authz_core::rules::{context as context_val, Explanation, Matching, RuleSet};
use pgrx::pg_sys;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;

struct StatementCache {
    /// The statement start time and [`settings::CONTEXT_GENERATION`] it was built for.
    context_key: (i64, u64),
    context: Rc<Val>,
    /// One entry per (action, resource type) used by the statement: a table's policies ask
    /// for several (read, update, …), and alternating between them must not rebuild.
    matching: Vec<CachedMatching>,
}

/// The rules matching one (action, resource type) and what they were built for.
struct CachedMatching {
    rules: Rc<RuleSet>,
    action: String,
    resource_type: String,
    token_generation: u64,
    matching: Rc<Matching>,
    /// Unique in the backend: names this rule list in the audit's counters.
    id: u64,
}

static NEXT_MATCHING_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Most (action, resource type) pairs kept per statement; more (an action taken from a
/// column, say) start over, which only costs rebuilding.
const MAX_MATCHINGS: usize = 64;

thread_local! {
    static STATEMENT: RefCell<Option<StatementCache>> = const { RefCell::new(None) };
    static ANONYMOUS: Inputs = Inputs::new(&json!({}), &[], &[]);
}

/// Nanoseconds since the Unix epoch of a Postgres timestamptz; `±infinity` and instants past
/// CEL's years 1–9999 become its first or last instant.
pub fn timestamptz_ns(ts: pg_sys::TimestampTz) -> i128 {
    oidc_authz_core::rules::span::timestamp_ns(ts)
}

/// What `context` was built for: the statement start time and the context generation
/// (transaction end, `request.method`/`request.path` assigned). Statements of one
/// simple-query message share a start time, even across `commit`: the generation tells
/// their transactions apart.
fn context_key() -> (i64, u64) {
    // SAFETY: a plain read of the transaction state.
    let started = unsafe { pg_sys::GetCurrentStatementStartTimestamp() };
    (
        started,
        settings::CONTEXT_GENERATION.load(Ordering::Relaxed),
    )
}

/// `context` for the current statement: its start time (as `now()` in the statement,
/// identical on every row and in parallel workers), and the request's method and path as
/// PostgREST sets them.
fn statement_context() -> (Rc<Val>, (i64, u64)) {
    let key = context_key();
    if let Some(ctx) = STATEMENT.with_borrow(|s| {
        s.as_ref()
            .filter(|s| s.context_key == key && settings::context_watched())
            .map(|s| s.context.clone())
    }) {
        return (ctx, key);
    }
    let (method, path) = settings::request_line();
    let ctx = Rc::new(context_val(
        timestamptz_ns(key.0),
        method.as_deref(),
        path.as_deref(),
    ));
    STATEMENT.with_borrow_mut(|s| {
        *s = Some(StatementCache {
            context_key: key,
            context: ctx.clone(),
            matching: Vec::new(),
        })
    });
    (ctx, key)
}

/// The rules matching (action, resource type), kept for the statement. Its memo of
/// resource-independent conditions holds for one principal, so a token change inside the
/// statement (a function calling `set_config`) starts a new one.
fn matching(rules: &Rc<RuleSet>, action: &str, resource_type: &str) -> (Rc<Matching>, u64) {
    let token = crate::settings::TOKEN_GENERATION.load(std::sync::atomic::Ordering::Relaxed);
    if !crate::settings::token_sources_watched() {
        // The token generation cannot tell principals apart: no memo may outlive the call.
        let id = NEXT_MATCHING_ID.fetch_add(1, Ordering::Relaxed);
        return (Rc::new(rules.matching(action, resource_type)), id);
    }
    let hit = STATEMENT.with_borrow(|s| {
        s.as_ref()
            .and_then(|s| {
                s.matching.iter().find(|c| {
                    Rc::ptr_eq(&c.rules, rules)
                        && c.token_generation == token
                        && c.action == action
                        && c.resource_type == resource_type
                })
            })
            .map(|c| (c.matching.clone(), c.id))
    });
    if let Some(m) = hit {
        return m;
    }
    let m = Rc::new(rules.matching(action, resource_type));
    let id = NEXT_MATCHING_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    STATEMENT.with_borrow_mut(|s| {
        if let Some(s) = s.as_mut() {
            // A token change inside the statement leaves stale entries: drop them.
            s.matching
                .retain(|c| c.token_generation == token && Rc::ptr_eq(&c.rules, rules));
            if s.matching.len() >= MAX_MATCHINGS {
                s.matching.clear();
            }
            s.matching.push(CachedMatching {
                rules: rules.clone(),
                action: action.to_string(),
                resource_type: resource_type.to_string(),
                token_generation: token,
                matching: m.clone(),
                id,
            });
        }
    });
    (m, id)
}

fn with_inputs<R>(entry: Option<&Entry>, f: impl FnOnce(&Inputs) -> R) -> R {
    match entry {
        Some(e) => f(e.inputs()),
        None => ANONYMOUS.with(|a| f(a)),
    }
}

/// `oidc.allow()`: the decision for the current principal.
pub fn allow(action: &str, resource_type: &str, resource: &dyn Resource) -> Result<bool, Error> {
    decide(&Prepared::new(action, resource_type), resource)
}

/// What a decision needs besides the principal and the resource: valid for one statement,
/// token and configuration, and one (action, resource type).
pub struct Prepared {
    /// The statement start time and context generation (see [`context_key`]).
    statement: (pg_sys::TimestampTz, u64),
    token_generation: u64,
    config_generation: u64,
    rules: Rc<RuleSet>,
    context: Rc<Val>,
    matching: Rc<Matching>,
    matching_id: u64,
    action: String,
    resource_type: String,
}

impl Prepared {
    fn new(action: &str, resource_type: &str) -> Prepared {
        let rules = cache::rules();
        let (context, statement) = statement_context();
        let (matching, matching_id) = self::matching(&rules, action, resource_type);
        Prepared {
            statement,
            token_generation: crate::settings::TOKEN_GENERATION.load(Ordering::Relaxed),
            config_generation: crate::trust::config_generation(),
            rules,
            context,
            matching,
            matching_id,
            action: action.to_string(),
            resource_type: resource_type.to_string(),
        }
    }

    fn current(&self) -> bool {
        crate::settings::token_sources_watched()
            && settings::context_watched()
            && self.statement == context_key()
            && self.token_generation == crate::settings::TOKEN_GENERATION.load(Ordering::Relaxed)
            && self.config_generation == crate::trust::config_generation()
    }
}

/// `oidc.allow()` at a call site whose action and resource type are constants: the
/// `Prepared` part is kept at the site and checked in O(1) per row; `request` (the action
/// and resource type) is read only when it must be rebuilt.
pub fn allow_at<'a>(
    site: &RefCell<Option<Prepared>>,
    request: impl FnOnce() -> (&'a str, &'a str),
    resource: &dyn Resource,
) -> Result<bool, Error> {
    let fresh = site.borrow().as_ref().is_some_and(Prepared::current);
    if !fresh {
        let (action, resource_type) = request();
        *site.borrow_mut() = Some(Prepared::new(action, resource_type));
    }
    let prepared = site.borrow();
    match prepared.as_ref() {
        Some(p) => decide(p, resource),
        None => Err(Error::Internal("call site prepared nothing")),
    }
}

fn decide(p: &Prepared, resource: &dyn Resource) -> Result<bool, Error> {
    cache::with_principal(|entry| {
        let (verdict, shadow) = with_inputs(entry, |inputs| {
            let req = request(inputs, &p.context, resource);
            let verdict = p.rules.decide(&p.matching, &req);
            (verdict, p.rules.shadow(&p.matching, &req, verdict))
        });
        crate::stats::decided(&p.rules, p.matching_id, verdict);
        if let Some(diff) = &shadow {
            crate::stats::shadow(&p.rules, diff);
        }
        let level = crate::settings::audit_level();
        let logged =
            level == settings::Audit::All || (level == settings::Audit::Deny && !verdict.allowed);
        if logged || (shadow.is_some() && level != settings::Audit::Off) {
            audit::record(audit::Decided {
                statement: p.statement.0,
                token_generation: p.token_generation,
                entry,
                matching: p.matching_id,
                rules: &p.rules,
                action: &p.action,
                resource_type: &p.resource_type,
                verdict,
                logged,
                shadow: shadow.as_ref(),
            });
        }
        verdict.allowed
    })
}

/// Runs `f` on a request for the current principal and statement context whose resource
/// is absent (for the principal- and context-only parts of residuals); `key` identifies
/// what it is valid for: the token generation and the context key.
pub fn with_fixed_request<R>(f: impl FnOnce(&Request, (u64, (i64, u64))) -> R) -> Result<R, Error> {
    let (context, key) = statement_context();
    let token = crate::settings::TOKEN_GENERATION.load(Ordering::Relaxed);
    let null = Val::Null;
    cache::with_principal(|entry| {
        with_inputs(entry, |inputs| {
            f(&request(inputs, &context, &null), (token, key))
        })
    })
}

/// One rule's value for the current principal, context and `resource`, the rule found by
/// a residual's key (`fingerprint/name`); 40001 when it is not the rule the plan was built
/// from.
pub fn rule_value(
    key: &str,
    resource: &dyn Resource,
) -> Result<oidc_authz_core::rules::residual::Tri, Error> {
    use oidc_authz_core::rules::residual::Tri;
    let rules = cache::rules();
    let rule = rules.by_residual_key(key).ok_or(Error::StalePlan)?;
    let (context, _) = statement_context();
    cache::with_principal(|entry| {
        with_inputs(entry, |inputs| {
            match rule.evaluate(&request(inputs, &context, resource)) {
                Ok(true) => Tri::True,
                Ok(false) => Tri::False,
                Err(_) => Tri::Unknown,
            }
        })
    })
}

/// `oidc.allowed_actions()`: the actions named by the rules for `resource_type` (or for
/// every type) that the current principal is allowed on `resource`, sorted; each decided
/// as `oidc.allow()` decides it. `*` is no action name: a rule for every action lists none.
pub fn allowed_actions(resource_type: &str, resource: &dyn Resource) -> Result<Vec<String>, Error> {
    let rules = cache::rules();
    let mut candidates = std::collections::BTreeSet::new();
    for i in 0..rules.len() {
        let rule = rules.rule(i);
        if rule.enabled
            && !rule.shadow
            && (rule.resource_type == resource_type || rule.resource_type == "*")
        {
            candidates.extend(rule.actions.iter().filter(|a| a.as_str() != "*").cloned());
        }
    }
    let mut allowed = Vec::new();
    for action in candidates {
        if decide(&Prepared::new(&action, resource_type), resource)? {
            allowed.push(action);
        }
    }
    Ok(allowed)
}

/// `oidc.explain()`: the decision for the current principal, with every matching rule.
pub fn explain(action: &str, resource_type: &str, resource: &dyn Resource) -> Result<Value, Error> {
    let rules = cache::rules();
    let (context, _) = statement_context();
    cache::with_principal(|entry| {
        let principal = entry.map(|e| json!({"issuer": e.verified.issuer, "sub": e.verified.sub}));
        with_inputs(entry, |inputs| {
            let ex = rules.explain(action, resource_type, &request(inputs, &context, resource));
            report(ex, principal, action, resource_type, &context)
        })
    })
}

/// The denial for a call with a NULL argument (`which`): guards fail closed.
pub fn null_argument(action: Option<&str>, resource_type: Option<&str>, which: &str) -> Value {
    json!({
        "decision": "deny",
        "reason": format!("the {which} argument is NULL (fail closed)"),
        "permits": [],
        "forbids": [],
        "not_held": [],
        "errors": [],
        "reads": [],
        "action": action,
        "resource_type": resource_type,
    })
}

/// `oidc.replay()`: the decision for given claims at a given time, without a token.
pub fn replay(
    claims: &Value,
    action: &str,
    resource_type: &str,
    resource: &dyn Resource,
    at: pg_sys::TimestampTz,
    as_of: Option<pgrx::datum::TimestampWithTimeZone>,
) -> Value {
    use oidc_authz_core::token::{roles_at, roles_of, scopes_at, scopes_of};
    let issuer = claims.get("iss").and_then(Value::as_str);
    let (rules, inputs, configured) = match as_of {
        None => {
            let trust = cache::trust();
            let config = issuer.and_then(|i| trust.issuer(i));
            let inputs = Inputs::new(
                claims,
                &scopes_of(claims, config),
                &roles_of(claims, config),
            );
            (cache::rules(), inputs, config.is_some())
        }
        Some(then) => {
            let mapping = issuer.and_then(|i| crate::history::mapping_at(i, then));
            let (scopes, roles) = match &mapping {
                Some((s, r)) => (scopes_at(claims, s), roles_at(claims, r)),
                None => (scopes_of(claims, None), roles_of(claims, None)),
            };
            let inputs = Inputs::new(claims, &scopes, &roles);
            (
                Rc::new(crate::history::rules_at(then)),
                inputs,
                mapping.is_some(),
            )
        }
    };
    let context = context_val(timestamptz_ns(at), None, None);
    let ex = rules.explain(action, resource_type, &request(&inputs, &context, resource));
    let principal = json!({"issuer": issuer, "sub": claims.get("sub")});
    let mut out = report(ex, Some(principal), action, resource_type, &context);
    out["issuer_configured"] = json!(configured);
    out["rules"] = json!(if as_of.is_some() { "at" } else { "current" });
    out
}

fn request<'a>(inputs: &'a Inputs, context: &'a Val, resource: &'a dyn Resource) -> Request<'a> {
    Request {
        claims: &inputs.claims,
        scopes: &inputs.scopes,
        roles: &inputs.roles,
        context,
        resource,
    }
}

fn report(
    ex: Explanation,
    principal: Option<Value>,
    action: &str,
    resource_type: &str,
    context: &Val,
) -> Value {
    let mut out = ex.to_json();
    out["principal"] = principal.unwrap_or(Value::Null);
    out["action"] = json!(action);
    out["resource_type"] = json!(resource_type);
    out["at"] = context
        .field("time")
        .map_or(Value::Null, |t| json!(t.to_string()));
    out
}
