//! Loading the configuration tables (`oidc.issuers`, `oidc.rules`) into the backend, and
//! noticing changes.
//!
//! Writes to either table fire a statement trigger that queues a relcache invalidation for
//! it (`oidc._invalidate_config`). Postgres delivers it, at commit, to every backend (and,
//! through the WAL, to hot standbys), where [`on_relcache_invalidation`] bumps
//! [`CONFIG_GENERATION`]; each backend reloads at its next use, i.e. its next transaction.
//! A full cache reset (relid 0) counts too.

use oidc_authz_core::rules::{RuleError, RuleSet};
use oidc_authz_core::{ConfigError, TrustConfig};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgLogLevel, PgSqlErrorCode};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

pub static CONFIG_GENERATION: AtomicU64 = AtomicU64::new(1);

/// OIDs of `oidc.issuers` and `oidc.rules` once seen; 0 before the first load.
static WATCHED: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let relid = relid.to_u32();
    if relid == 0 || WATCHED.iter().any(|w| w.load(Ordering::Relaxed) == relid) {
        CONFIG_GENERATION.fetch_add(1, Ordering::Relaxed);
    }
}

/// Set when the configuration was read under a transaction snapshot (REPEATABLE READ or
/// SERIALIZABLE), which can predate a change whose invalidation was already processed: what
/// was loaded is then dropped when the transaction ends, so the next one reads afresh.
static LOADED_UNDER_OLD_SNAPSHOT: AtomicBool = AtomicBool::new(false);

/// Drops a configuration loaded under an old snapshot (see `lib.rs`'s transaction hook).
pub fn at_transaction_end() {
    if LOADED_UNDER_OLD_SNAPSHOT.swap(false, Ordering::Relaxed) {
        CONFIG_GENERATION.fetch_add(1, Ordering::Relaxed);
    }
}

pub fn init() {
    // SAFETY: registering a callback from _PG_init; it only touches atomics.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(
            Some(on_relcache_invalidation),
            pg_sys::Datum::from(0),
        );
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

/// The configuration tables: each is read whole, as JSON rows, by its owner.
#[derive(Clone, Copy)]
enum Table {
    Issuers,
    Rules,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Issuers => "oidc.issuers",
            Table::Rules => "oidc.rules",
        }
    }

    fn query(self) -> &'static str {
        // Schema-qualified names and operators only: this runs under the caller's search_path.
        match self {
            Table::Issuers => {
                "select (pg_catalog.to_jsonb(t) operator(pg_catalog.||) pg_catalog.jsonb_build_object(\
                 'leeway_seconds', pg_catalog.date_part('epoch', t.leeway)))::pg_catalog.text \
                 from oidc.issuers as t"
            }
            Table::Rules => "select pg_catalog.to_jsonb(t)::pg_catalog.text from oidc.rules as t",
        }
    }
}

/// Reads every row of `table` as the table's owner. Every role's tokens and decisions use
/// these tables, although only their owner and `oidc_admin` may read them (issuers can hold
/// secrets; rules reveal policy). A missing table (the extension is not created in this
/// database) reads as empty.
fn read(table: Table) -> Vec<Value> {
    let found: Option<(pg_sys::Oid, pg_sys::Oid)> = Spi::connect(|client| {
        let row = client
            .select(
                // Run as the caller, under the caller's search_path: every name and
                // operator qualified, or a user's `=(oid, regclass)` would run here.
                "select c.oid, c.relowner from pg_catalog.pg_class c \
                 where c.oid operator(pg_catalog.=) pg_catalog.to_regclass($1)",
                None,
                &[table.name().into()],
            )?
            .first();
        match row.get_two::<pg_sys::Oid, pg_sys::Oid>() {
            Ok((Some(oid), Some(owner))) => Ok::<_, pgrx::spi::SpiError>(Some((oid, owner))),
            _ => Ok(None),
        }
    })
    .unwrap_or(None);
    let Some((oid, owner)) = found else {
        return Vec::new();
    };
    WATCHED[table as usize].store(oid.to_u32(), Ordering::Relaxed);
    // SAFETY: reading the backend's isolation level.
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        LOADED_UNDER_OLD_SNAPSHOT.store(true, Ordering::Relaxed);
    }
    let _owner = AsOwner::switch(owner);
    Spi::connect(|client| {
        let mut rows = Vec::new();
        for row in client.select(table.query(), None, &[])? {
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
            format!("could not read {}: {e}", table.name())
        );
        unreachable!()
    })
}

/// The trusted issuers. Invalid rows (possible only if written around the validating
/// trigger) are skipped with a warning, so their tokens fail closed.
pub fn load() -> TrustConfig {
    let (config, errors) = TrustConfig::from_rows(&read(Table::Issuers));
    for ConfigError(e) in errors {
        pgrx::warning!("pg_oidc_authz: skipping an invalid row of oidc.issuers: {e}");
    }
    config
}

/// The rules, compiled.
pub fn load_rules() -> RuleSet {
    let (rules, errors) = RuleSet::from_rows(&read(Table::Rules));
    for RuleError(e) in errors {
        pgrx::warning!("pg_oidc_authz: skipping an invalid row of oidc.rules: {e}");
    }
    rules
}
