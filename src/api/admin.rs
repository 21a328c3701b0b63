//! Internal functions behind the `oidc.issuers` triggers (EXECUTE revoked from PUBLIC).

use crate::error::{Error, OrRaise};
use oidc_authz_core::IssuerConfig;
use pgrx::prelude::*;
use pgrx::JsonB;

/// Validates one row (`to_jsonb(NEW)`); raises 22023 naming the problem, so a refused
/// configuration stores nothing.
#[pg_extern(immutable, parallel_safe, name = "_check_issuer_row")]
fn check_issuer_row(row: JsonB) {
    IssuerConfig::from_row(&row.0)
        .map(drop)
        .map_err(Error::Config)
        .or_raise()
}

/// Makes every backend reload the configuration at its next transaction (sent at commit).
#[pg_extern(volatile, name = "_invalidate_config")]
fn invalidate_config(rel: pg_sys::Oid) {
    crate::trust::invalidate(rel)
}
