//! The rule engine's SQL surface: `allow` for policies, `explain`, `replay`, `require`.

use crate::error::{Error, OrRaise};
use crate::jsonb::RawJsonb;
use crate::policy;
use oidc_authz_core::rules::Rule;
use pgrx::prelude::*;
use pgrx::JsonB;

/// For RLS: `using (oidc.allow('read', 'document', jsonb_build_object('owner', owner)))`.
#[pg_extern(stable, parallel_safe)]
fn allow(action: &str, resource_type: &str, resource: default!(RawJsonb, "'{}'")) -> bool {
    policy::allow(action, resource_type, &resource).or_raise()
}

/// The decision with its reasons: the permits and forbids that held, the rules that did
/// not, the errors, what the conditions read. Never contains the token.
#[pg_extern(stable, parallel_safe)]
fn explain(action: &str, resource_type: &str, resource: default!(RawJsonb, "'{}'")) -> JsonB {
    JsonB(policy::explain(action, resource_type, &resource).or_raise())
}

/// The decision for `claims` at time `at`, without a token (admin only).
#[pg_extern(stable, parallel_safe)]
fn replay(
    claims: JsonB,
    action: &str,
    resource_type: &str,
    resource: default!(RawJsonb, "'{}'"),
    at: default!(pgrx::datum::TimestampWithTimeZone, "now()"),
) -> JsonB {
    JsonB(policy::replay(
        &claims.0,
        action,
        resource_type,
        &resource,
        at.into_inner(),
    ))
}

/// Raises 42501 with the explanation when the current principal may not do `action`.
#[pg_extern(stable, parallel_safe)]
fn require(action: &str, resource_type: &str, resource: default!(RawJsonb, "'{}'")) {
    if policy::allow(action, resource_type, &resource).or_raise() {
        return;
    }
    let explanation = policy::explain(action, resource_type, &resource).or_raise();
    Error::Denied {
        action: action.to_string(),
        resource_type: resource_type.to_string(),
        explanation: explanation.to_string(),
    }
    .raise()
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
