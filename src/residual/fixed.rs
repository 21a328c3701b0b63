//! Residuals at execution: the principal- and context-derived values a plan asks for,
//! computed once per rule, principal and statement context, and cached for the rows.

use crate::cache;
use crate::error::{Error, OrRaise};
use crate::settings;
use oidc_authz_core::rules::eval::EvalError;
use oidc_authz_core::rules::residual::{translate, Tri};
use oidc_authz_core::rules::span::Query;
use oidc_authz_core::rules::value::Val;
use oidc_authz_core::rules::RuleSet;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

pub(super) fn strings_of(v: &Val) -> Option<Vec<Rc<str>>> {
    match v {
        Val::List(l) => Some(
            l.iter()
                .filter_map(|x| match x {
                    Val::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        ),
        Val::Map(m) => Some(m.keys().cloned().collect()),
        _ => None,
    }
}

/// What `oidc._fixed_bool(key, slot, test)` answers for a fixed value. Never unknown: a
/// residual is two-valued.
pub(super) fn value_test(v: &Result<Val, EvalError>, test: &str) -> bool {
    if let Some(q) = Query::parse(test) {
        return q.holds(v);
    }
    match test {
        "true" => Tri::of(v) == Tri::True,
        "false" => Tri::of(v) == Tri::False,
        "unknown" => Tri::of(v) == Tri::Unknown,
        "error" => v.is_err(),
        "string" => matches!(v, Ok(Val::Str(_))),
        "null" => matches!(v, Ok(Val::Null)),
        "map" => matches!(v, Ok(Val::Map(_))),
        "list or map" => matches!(v, Ok(Val::List(_) | Val::Map(_))),
        "holds null" => matches!(v, Ok(Val::List(l)) if l.iter().any(|x| matches!(x, Val::Null))),
        _ => false,
    }
}

/// The fixed values of one rule for one principal and context.
type Values = Rc<Result<Vec<Result<Val, EvalError>>, EvalError>>;

struct FixedCache {
    rules: *const RuleSet,
    key: (u64, (i64, u64)),
    values: HashMap<String, Values>,
}

thread_local! {
    /// Fixed values per rule key, for one rule set, principal and context (a backend is
    /// single-threaded). Bounded by the number of rules a statement's plans name.
    static FIXED: RefCell<Option<FixedCache>> = const { RefCell::new(None) };
}

/// The fixed values of the rule `key` names (`fingerprint/name`) for the current
/// principal and context; 40001 when the rule is not the one the plan was built from.
fn values(key: &str) -> Result<Values, Error> {
    let rules = cache::rules();
    let cacheable = settings::token_sources_watched() && settings::context_watched();
    crate::policy::with_fixed_request(|req, valid_for| {
        if cacheable {
            let hit = FIXED.with_borrow(|c| {
                c.as_ref()
                    .filter(|c| c.rules == Rc::as_ptr(&rules) && c.key == valid_for)
                    .and_then(|c| c.values.get(key).cloned())
            });
            if let Some(v) = hit {
                return Ok(v);
            }
        }
        let rule = rules.by_residual_key(key).ok_or(Error::StalePlan)?;
        let program = rule.program.as_ref().ok_or(Error::StalePlan)?;
        let t = translate(program).ok_or(Error::StalePlan)?;
        let values: Values = Rc::new(t.fixed_values(req));
        if cacheable {
            FIXED.with_borrow_mut(|c| {
                let fresh = c
                    .as_ref()
                    .is_some_and(|c| c.rules == Rc::as_ptr(&rules) && c.key == valid_for);
                if !fresh {
                    *c = Some(FixedCache {
                        rules: Rc::as_ptr(&rules),
                        key: valid_for,
                        values: HashMap::new(),
                    });
                }
                if let Some(c) = c.as_mut() {
                    c.values.insert(key.to_string(), values.clone());
                }
            });
        }
        Ok(values)
    })?
}

fn value(key: &str, slot: i32) -> Result<Result<Val, EvalError>, Error> {
    let values = values(key)?;
    Ok(match &*values {
        Err(e) => Err(e.clone()),
        Ok(v) => usize::try_from(slot)
            .ok()
            .and_then(|i| v.get(i).cloned())
            .ok_or(Error::StalePlan)?,
    })
}

/// A test of a residual's fixed value (slot -1: whether the rule's fixed parts ran out
/// of steps).
#[pg_extern(stable, parallel_safe, name = "_fixed_bool")]
fn fixed_bool(key: &str, slot: i32, test: &str) -> bool {
    if slot == -1 {
        return values(key).or_raise().is_err();
    }
    value_test(&value(key, slot).or_raise(), test)
}

/// A residual's fixed value as text: the string, or NULL.
#[pg_extern(stable, parallel_safe, name = "_fixed_text")]
fn fixed_text(key: &str, slot: i32) -> Option<String> {
    match value(key, slot).or_raise() {
        Ok(Val::Str(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// `{}` when a residual's fixed value passes `test`, else NULL (see `null_elements`).
#[pg_extern(stable, parallel_safe, name = "_fixed_probe")]
fn fixed_probe(key: &str, slot: i32, test: &str) -> Option<Vec<String>> {
    value_test(&value(key, slot).or_raise(), test).then(Vec::new)
}

/// A bound of an ordered comparison (`core::span::Query`, e.g. `int le hi`), or NULL when
/// the comparison holds for no value.
fn bound(key: &str, slot: i32, query: &str) -> Option<i64> {
    let q = Query::parse(query)?;
    q.bound(&value(key, slot).or_raise())
}

#[pg_extern(stable, parallel_safe, name = "_fixed_int8")]
fn fixed_int8(key: &str, slot: i32, query: &str) -> Option<i64> {
    bound(key, slot, query)
}

#[pg_extern(stable, parallel_safe, name = "_fixed_timestamptz")]
fn fixed_timestamptz(key: &str, slot: i32, query: &str) -> Option<TimestampWithTimeZone> {
    // (A snapped bound is always a valid timestamp.)
    bound(key, slot, query).and_then(|raw| TimestampWithTimeZone::try_from(raw).ok())
}

#[pg_extern(stable, parallel_safe, name = "_fixed_timestamp")]
fn fixed_timestamp(key: &str, slot: i32, query: &str) -> Option<Timestamp> {
    bound(key, slot, query).and_then(|raw| Timestamp::try_from(raw).ok())
}

/// A residual's fixed value as text[]: a list's strings or a map's keys, or NULL.
#[pg_extern(stable, parallel_safe, name = "_fixed_texts")]
fn fixed_texts(key: &str, slot: i32) -> Option<Vec<String>> {
    match value(key, slot).or_raise() {
        Ok(v) => strings_of(&v).map(|s| s.iter().map(|x| x.to_string()).collect()),
        Err(_) => None,
    }
}

/// `oidc.residual()`: for the current principal and context, what each rule matching
/// (action, resource type) becomes per row: the residual with the principal's values
/// folded in, or that it is evaluated per row.
pub fn describe(action: &str, resource_type: &str) -> Result<serde_json::Value, Error> {
    use oidc_authz_core::rules::residual_text::render;
    use oidc_authz_core::rules::Effect;
    use serde_json::json;
    let rules = cache::rules();
    let matching = rules.matching(action, resource_type);
    crate::policy::with_fixed_request(|req, _| {
        let mut permits = Vec::new();
        let mut forbids = Vec::new();
        for &i in matching.permits().iter().chain(matching.forbids()) {
            let rule = rules.rule(i);
            let (sql, per_row) = if rule.unloadable {
                ("true".to_string(), false)
            } else {
                match &rule.program {
                    None => ("true".to_string(), false),
                    Some(program) => match translate(program) {
                        None => ("evaluated per row".to_string(), true),
                        Some(t) => match t.fixed_values(req) {
                            Ok(values) => (render(&t.residual, &values), false),
                            Err(_) => ("NULL (out of steps)".to_string(), false),
                        },
                    },
                }
            };
            let entry = json!({"rule": rule.name, "sql": sql, "per_row": per_row});
            match rule.effect {
                Effect::Permit => permits.push(entry),
                Effect::Forbid => forbids.push(entry),
            }
        }
        json!({
            "action": action,
            "resource_type": resource_type,
            "permits": permits,
            "forbids": forbids,
            "note": "a permit grants a row where its sql is true; a forbid denies one where its sql is not false; attributes as the call passes them",
        })
    })
}
