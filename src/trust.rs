//! Loading the trust configuration (`oidc.issuers`) into the backend, and noticing changes.
//!
//! Writes to `oidc.issuers` fire a statement trigger that queues a relcache invalidation
//! for the table (`oidc._invalidate_config`). Postgres delivers it, at commit, to every
//! backend (and, through the WAL, to hot standbys), where [`on_relcache_invalidation`]
//! bumps [`CONFIG_GENERATION`]; each backend reloads at its next use, i.e. its next
//! transaction. A full cache reset (relid 0) counts too.

use oidc_authz_core::{ConfigError, TrustConfig};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgLogLevel, PgSqlErrorCode};
use serde_json::Value;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub static CONFIG_GENERATION: AtomicU64 = AtomicU64::new(1);

/// OID of `oidc.issuers` once seen; 0 before the first load.
static ISSUERS_OID: AtomicU32 = AtomicU32::new(0);

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let watched = ISSUERS_OID.load(Ordering::Relaxed);
    if relid == pg_sys::InvalidOid || (watched != 0 && relid.to_u32() == watched) {
        CONFIG_GENERATION.fetch_add(1, Ordering::Relaxed);
    }
}

pub fn init() {
    // SAFETY: registering a callback from _PG_init; it only touches atomics.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(
            Some(on_relcache_invalidation),
            pg_sys::Datum::from(0),
        )
    };
}

/// Queues the invalidation that makes every backend reload; called by the table's trigger.
pub fn invalidate(relid: pg_sys::Oid) {
    // SAFETY: a plain catalog call; transactional (sent at commit, dropped at rollback).
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
}

/// Restores the caller's identity when dropped, also when an error unwinds through it.
struct AsOwner {
    user: pg_sys::Oid,
    sec: i32,
}

impl AsOwner {
    /// Switches to `owner` for a read the caller may not be allowed to do itself, the way
    /// a SECURITY DEFINER function would, with SECURITY_RESTRICTED_OPERATION so that nothing
    /// run meanwhile can change session state.
    fn switch(owner: pg_sys::Oid) -> AsOwner {
        let (mut user, mut sec) = (pg_sys::InvalidOid, 0);
        // SAFETY: plain getters/setters of the backend's current identity; Postgres also
        // restores it at (sub)transaction abort.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut sec);
            pg_sys::SetUserIdAndSecContext(
                owner,
                sec | (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION)
                    as i32,
            );
        }
        AsOwner { user, sec }
    }
}

impl Drop for AsOwner {
    fn drop(&mut self) {
        // SAFETY: restores what `switch` saved.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.sec) };
    }
}

/// Reads every row of `oidc.issuers` as the table's owner. Every role's claims are verified
/// against it, although only the owner and `oidc_admin` may read it (it can hold secrets).
pub fn load() -> TrustConfig {
    let found: Option<(pg_sys::Oid, pg_sys::Oid)> = Spi::connect(|client| {
        let row = client
            .select(
                "select c.oid, c.relowner from pg_catalog.pg_class c \
                 where c.oid = pg_catalog.to_regclass('oidc.issuers')",
                None,
                &[],
            )?
            .first();
        match row.get_two::<pg_sys::Oid, pg_sys::Oid>() {
            Ok((Some(oid), Some(owner))) => Ok::<_, pgrx::spi::SpiError>(Some((oid, owner))),
            _ => Ok(None),
        }
    })
    .unwrap_or(None);
    let Some((oid, owner)) = found else {
        return TrustConfig::default();
    };
    ISSUERS_OID.store(oid.to_u32(), Ordering::Relaxed);
    let rows: Vec<Value> = {
        let _owner = AsOwner::switch(owner);
        Spi::connect(|client| {
            let table = client.select(
                "select (pg_catalog.to_jsonb(i) operator(pg_catalog.||) pg_catalog.jsonb_build_object(\
                 'leeway_seconds', pg_catalog.date_part('epoch', i.leeway)))::pg_catalog.text \
                 from oidc.issuers as i",
                None,
                &[],
            )?;
            let mut rows = Vec::new();
            for row in table {
                if let Some(text) = row.get::<String>(1)? {
                    rows.push(serde_json::from_str(&text).unwrap_or(Value::Null));
                }
            }
            Ok::<_, pgrx::spi::SpiError>(rows)
        })
        .unwrap_or_else(|e| {
            pgrx::ereport!(
                PgLogLevel::ERROR,
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("could not read oidc.issuers: {e}")
            );
            unreachable!()
        })
    };
    let (config, errors) = TrustConfig::from_rows(&rows);
    for ConfigError(e) in errors {
        pgrx::warning!("pg_oidc_authz: skipping an invalid row of oidc.issuers: {e}");
    }
    config
}
