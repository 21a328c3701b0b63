//! Claim accessors for RLS policies. All STABLE (a token can change between statements,
//! never within a snapshot's use of a plan) and PARALLEL SAFE: workers restore the leader's
//! settings, so they see the same token and verify it themselves.
//! No token → NULL (or false); an invalid token → error 28000.

use crate::cache::{with_token, with_token_str};
use crate::error::{Error, OrRaise};
use oidc_authz_core::path::lookup;
use pgrx::prelude::*;
use pgrx::{Array, JsonB, Uuid};
use serde_json::Value;

#[pg_extern(stable, parallel_safe)]
fn claims() -> Option<JsonB> {
    with_token(|t| JsonB(t.verified.claims.clone())).or_raise()
}

#[pg_extern(stable, parallel_safe)]
fn claim(path: &str) -> Option<JsonB> {
    with_token(|t| lookup(&t.verified.claims, path).cloned().map(JsonB))
        .or_raise()
        .flatten()
}

/// A string claim as itself, any other JSON value as its JSON text, JSON null as NULL.
#[pg_extern(stable, parallel_safe)]
fn claim_text(path: &str) -> Option<String> {
    with_token(|t| match lookup(&t.verified.claims, path) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    })
    .or_raise()
    .flatten()
}

#[pg_extern(stable, parallel_safe)]
fn sub() -> Option<&'static str> {
    with_token_str(|t| t.verified.sub.as_deref()).or_raise()
}

#[pg_extern(stable, parallel_safe)]
fn uid() -> Option<Uuid> {
    match with_token(|t| (t.verified.sub.is_some(), t.uid)).or_raise() {
        None | Some((false, _)) => None,
        Some((true, Some(bytes))) => Some(Uuid::from_bytes(bytes)),
        Some((true, None)) => Error::NotUuid.raise(),
    }
}

#[pg_extern(stable, parallel_safe)]
fn issuer() -> Option<&'static str> {
    with_token_str(|t| Some(t.verified.issuer.as_str())).or_raise()
}

#[pg_extern(stable, parallel_safe)]
fn scopes() -> Option<Vec<String>> {
    with_token(|t| t.verified.scopes.clone()).or_raise()
}

// The `has_*` functions decide, so none is STRICT: a NULL argument (a trigger's missing
// `tg_argv[0]`) is never held, and `if not oidc.has_scope(…)` cannot pass on it.

#[pg_extern(stable, parallel_safe)]
fn has_scope(scope: Option<&str>) -> bool {
    let Some(scope) = scope else { return false };
    with_token(|t| t.verified.scopes.iter().any(|s| s == scope))
        .or_raise()
        .unwrap_or(false)
}

/// True if the token has at least one of `wanted`; false for an empty or NULL list.
#[pg_extern(stable, parallel_safe)]
fn has_any_scope(wanted: Option<Array<&str>>) -> bool {
    let Some(wanted) = wanted else { return false };
    with_token(|t| {
        wanted
            .iter()
            .flatten()
            .any(|w| t.verified.scopes.iter().any(|s| s == w))
    })
    .or_raise()
    .unwrap_or(false)
}

/// True if the token has every one of `wanted` (a NULL element is never held); true for an
/// empty list when a token is present; false for a NULL list.
#[pg_extern(stable, parallel_safe)]
fn has_all_scopes(wanted: Option<Array<&str>>) -> bool {
    let Some(wanted) = wanted else { return false };
    with_token(|t| {
        wanted
            .iter()
            .all(|w| w.is_some_and(|w| t.verified.scopes.iter().any(|s| s == w)))
    })
    .or_raise()
    .unwrap_or(false)
}

#[pg_extern(stable, parallel_safe)]
fn roles() -> Option<Vec<String>> {
    with_token(|t| t.verified.roles.clone()).or_raise()
}

#[pg_extern(stable, parallel_safe)]
fn has_role(role: Option<&str>) -> bool {
    let Some(role) = role else { return false };
    with_token(|t| t.verified.roles.iter().any(|r| r == role))
        .or_raise()
        .unwrap_or(false)
}
