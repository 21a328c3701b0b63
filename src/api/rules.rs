//! The rule engine's SQL surface: `allow` for policies, `explain`, `replay`, `require`.

use crate::error::{Error, OrRaise};
use crate::jsonb::RawJsonb;
use crate::policy;
use oidc_authz_core::rules::Rule;
use pgrx::prelude::*;
use pgrx::JsonB;

// None of these is STRICT: a NULL argument (a NULL jsonb column, a trigger's missing
// `tg_argv[0]`) must decide, and it denies. A STRICT guard would skip the decision:
// `allow()` would be NULL and `require()` would return normally.

/// For RLS: `using (oidc.allow('read', 'document', jsonb_build_object('owner', owner)))`.
/// False for a NULL argument.
#[pg_extern(stable, parallel_safe)]
fn allow(
    action: Option<&str>,
    resource_type: Option<&str>,
    resource: default!(Option<RawJsonb>, "'{}'"),
) -> bool {
    match (action, resource_type, resource) {
        (Some(action), Some(resource_type), Some(resource)) => {
            policy::allow(action, resource_type, &resource).or_raise()
        }
        _ => false,
    }
}

/// The actions the current principal may do on `resource` (of `resource_type`): those the
/// matching rules name that `allow` would grant, sorted. Empty for a NULL argument.
#[pg_extern(stable, parallel_safe)]
fn allowed_actions(
    resource_type: Option<&str>,
    resource: default!(Option<RawJsonb>, "'{}'"),
) -> Vec<String> {
    match (resource_type, resource) {
        (Some(resource_type), Some(resource)) => {
            policy::allowed_actions(resource_type, &resource).or_raise()
        }
        _ => Vec::new(),
    }
}

/// The decision with its reasons: the permits and forbids that held, the rules that did
/// not, the errors, what the conditions read. Never contains the token. A NULL argument
/// is a denial that says which argument was NULL.
#[pg_extern(stable, parallel_safe)]
fn explain(
    action: Option<&str>,
    resource_type: Option<&str>,
    resource: default!(Option<RawJsonb>, "'{}'"),
) -> JsonB {
    JsonB(match (action, resource_type, resource) {
        (Some(action), Some(resource_type), Some(resource)) => {
            policy::explain(action, resource_type, &resource).or_raise()
        }
        (action, resource_type, resource) => policy::null_argument(
            action,
            resource_type,
            null_argument(action, resource_type, resource.is_some()),
        ),
    })
}

/// The decision for `claims` at time `at`, without a token (admin only): by the rules and
/// the issuers' scope and role mapping in force at `at` (`oidc.rules_history`), or by
/// today's with `rules => 'current'` (what-if).
#[pg_extern(stable, parallel_safe)]
fn replay(
    claims: JsonB,
    action: &str,
    resource_type: &str,
    resource: default!(RawJsonb, "'{}'"),
    at: default!(pgrx::datum::TimestampWithTimeZone, "now()"),
    rules: default!(&str, "'at'"),
) -> JsonB {
    let as_of = match rules {
        "at" => Some(at),
        "current" => None,
        _ => Error::Argument("`rules` must be 'at' (the rules in force at `at`) or 'current'")
            .raise(),
    };
    JsonB(policy::replay(
        &claims.0,
        action,
        resource_type,
        &resource,
        at.into_inner(),
        as_of,
    ))
}

/// Raises 42501 with the explanation when the current principal may not do `action`, or
/// when an argument is NULL.
#[pg_extern(stable, parallel_safe)]
fn require(
    action: Option<&str>,
    resource_type: Option<&str>,
    resource: default!(Option<RawJsonb>, "'{}'"),
) {
    let (Some(action), Some(resource_type), Some(resource)) = (action, resource_type, &resource)
    else {
        let which = null_argument(action, resource_type, resource.is_some());
        Error::Denied {
            action: action.unwrap_or("NULL").to_string(),
            resource_type: resource_type.unwrap_or("NULL").to_string(),
            explanation: policy::null_argument(action, resource_type, which).to_string(),
        }
        .raise()
    };
    if policy::allow(action, resource_type, resource).or_raise() {
        return;
    }
    let explanation = policy::explain(action, resource_type, resource).or_raise();
    Error::Denied {
        action: action.to_string(),
        resource_type: resource_type.to_string(),
        explanation: explanation.to_string(),
    }
    .raise()
}

/// The first NULL argument's name.
fn null_argument(
    action: Option<&str>,
    resource_type: Option<&str>,
    resource: bool,
) -> &'static str {
    match (action, resource_type, resource) {
        (None, _, _) => "action",
        (_, None, _) => "resource_type",
        _ => "resource",
    }
}

/// What each rule matching (action, resource type) becomes per row for the current
/// principal: the planner's residual with the principal's values folded in (admin only).
#[pg_extern(stable, parallel_safe)]
fn residual(action: &str, resource_type: &str) -> JsonB {
    JsonB(crate::residual::fixed::describe(action, resource_type).or_raise())
}

/// Validates one `oidc.rules` row (`to_jsonb(NEW)`): a syntax error, an unknown variable
/// or function is refused with its position, so a refused rule stores nothing.
#[pg_extern(immutable, parallel_safe, name = "_check_rule_row")]
fn check_rule_row(row: JsonB) {
    Rule::from_row(&row.0)
        .map(drop)
        .map_err(Error::Rule)
        .or_raise()
}
