//! Loading the configuration tables (`oidc.issuers`, `oidc.rules`, `oidc.revocations`)
//! into the backend, and noticing changes.
//!
//! Writes to either table fire a statement trigger that queues a relcache invalidation for
//! it (`oidc._invalidate_config`). Postgres delivers it, at commit, to every backend (and,
//! through the WAL, to hot standbys), where [`on_relcache_invalidation`] bumps
//! [`CONFIG_GENERATION`]; each backend reloads at its next use, i.e. its next transaction.
//! A full cache reset (relid 0) counts too.
//!
//! Postgres makes a commit visible to other snapshots a moment before it sends that
//! commit's invalidations (`CommitTransaction`: `ProcArrayEndTransaction`, then
//! `AtEOXact_Inval`; `COMMIT PREPARED` does the same), so a transaction could see a change
//! and still decide with the cache from before it. A writer therefore holds a lock of its own
//! (an object lock on the extension with a sub-id no SQL command uses, so no other role can
//! take it) ACCESS EXCLUSIVE from just before its commit until its invalidations are sent
//! (it is released with the transaction's locks), and every transaction's first use of the
//! cache tries it ACCESS SHARE without waiting ([`config_generation`]): granted, any commit it
//! can see has sent its invalidations, which are then processed; refused, a writer is
//! committing, and the configuration is read again. Nobody waits but writers, for each
//! other. (A standby's replay has the same moment, inside the redo of one commit record; it
//! is not covered: a WAL-logged relation lock would let any role stall replay.)

use oidc_authz_core::rules::RuleSet;
use oidc_authz_core::TrustConfig;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgLogLevel, PgSqlErrorCode};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

static CONFIG_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Bumped by a change of `oidc.revocations` alone: what is revoked is checked again, but
/// the verified tokens stay cached (a burst of revocations verifies no signature again).
static REVOCATION_GENERATION: AtomicU64 = AtomicU64::new(1);

/// The extension's oid in this database as the last load found it (0 before): the lock tag
/// that orders readers after committing writers (see the module's documentation).
static SYNC_EXTENSION: AtomicU32 = AtomicU32::new(0);

/// Whether this transaction has synchronised with committing writers (reset at its end).
static SYNCED: AtomicBool = AtomicBool::new(false);

/// The extension to lock just before this transaction commits (0: it changed nothing).
static LOCK_BEFORE_COMMIT: AtomicU32 = AtomicU32::new(0);

/// The sub-id of the lock tag: no SQL command locks an object of `pg_extension` with one
/// (they lock sub-id 0), so no role can hold this lock but a committing writer, and only
/// from its pre-commit until its invalidations are sent.
const SYNC_SUBID: u16 = 0x6f69; // "oi"

fn sync_tag(extension: u32) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        // SAFETY: a read of this backend's database oid.
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: pg_sys::ExtensionRelationId.to_u32(),
        locktag_field3: extension,
        locktag_field4: SYNC_SUBID,
        locktag_type: pg_sys::LockTagType::LOCKTAG_OBJECT as u8,
        locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
    }
}

/// The configuration's generation: what is cached is current while it stays the same.
#[inline]
pub fn config_generation() -> u64 {
    sync_with_committing_writers();
    CONFIG_GENERATION.load(Ordering::Relaxed)
}

/// The revocations' generation (see [`config_generation`]).
#[inline]
pub fn revocation_generation() -> u64 {
    sync_with_committing_writers();
    REVOCATION_GENERATION.load(Ordering::Relaxed)
}

#[inline]
fn sync_with_committing_writers() {
    if !SYNCED.load(Ordering::Relaxed) {
        sync_slow();
    }
}

#[cold]
fn sync_slow() {
    let extension = SYNC_EXTENSION.load(Ordering::Relaxed);
    // SAFETY: a read of the transaction state.
    if extension == 0 || !unsafe { pg_sys::IsTransactionState() } {
        return; // nothing loaded yet (a load reads the newest snapshot), or no transaction
    }
    SYNCED.store(true, Ordering::Relaxed);
    let tag = sync_tag(extension);
    // SAFETY: a conditional lock (never waits) on a tag of this database, released at once.
    let got = unsafe { pg_sys::LockAcquire(&tag, pg_sys::AccessShareLock as _, false, true) };
    if got == pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL {
        // A writer is committing (or holds its change prepared): read everything again,
        // under the newest snapshot; its invalidation, when it comes, reads it once more.
        CONFIG_GENERATION.fetch_add(1, Ordering::Relaxed);
        REVOCATION_GENERATION.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // SAFETY: releases the lock just taken; then the invalidations sent before the writers
    // released theirs are processed (as LockRelationOid does after a lock).
    unsafe {
        pg_sys::LockRelease(&tag, pg_sys::AccessShareLock as _, false);
        pg_sys::AcceptInvalidationMessages();
    }
}

/// Asks for the commit-order lock at this transaction's commit (a configuration table, or a
/// rule test, changed).
pub fn lock_at_commit() {
    if LOCK_BEFORE_COMMIT.load(Ordering::Relaxed) == 0 {
        // SAFETY: a catalog lookup by a static name; missing_ok.
        let extension = unsafe { pg_sys::get_extension_oid(c"pg_oidc_authz".as_ptr(), true) };
        LOCK_BEFORE_COMMIT.store(extension.to_u32(), Ordering::Relaxed);
    }
}

/// Before this transaction commits or is prepared: if it changed the configuration, hold
/// the commit-order lock until its invalidations are sent (see the module's documentation).
/// Writers wait only for each other: no other role can hold the lock.
pub fn before_commit() {
    let extension = LOCK_BEFORE_COMMIT.swap(0, Ordering::Relaxed);
    if extension != 0 {
        let tag = sync_tag(extension);
        // SAFETY: in a transaction about to commit (or be prepared); the lock is released
        // with the transaction's, after its invalidations are sent (or by COMMIT PREPARED).
        unsafe { pg_sys::LockAcquire(&tag, pg_sys::AccessExclusiveLock as _, false, false) };
    }
}

/// OIDs of `oidc.issuers`, `oidc.rules` and `oidc.revocations` once seen; 0 before the
/// first load.
static WATCHED: [AtomicU32; 3] = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];

/// Invalidations of the configuration this backend has processed (the relcache callback
/// only), and their count when the last transaction ended: a load under an old snapshot is
/// stale only if one was processed during the current transaction.
static INVALIDATIONS: AtomicU64 = AtomicU64::new(0);
static INVALIDATIONS_AT_LAST_END: AtomicU64 = AtomicU64::new(0);

/// The next transaction id (its low 32 bits) when this backend's last transaction ended;
/// 0 before the first. A snapshot of a later transaction that misses a transaction below it
/// which has completed (a change this backend may have been told of) is older than that
/// moment: imported from an older transaction with `SET TRANSACTION SNAPSHOT`, say.
static NEXT_XID_AT_LAST_END: AtomicU32 = AtomicU32::new(0);

fn next_xid() -> u32 {
    // The shared transaction counters; PostgreSQL 17 renamed ShmemVariableCache.
    #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16"))]
    // SAFETY: copies the pointer Postgres set at startup and never changes.
    let shared = unsafe { pg_sys::ShmemVariableCache };
    #[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16")))]
    // SAFETY: copies the pointer Postgres set at startup and never changes.
    let shared = unsafe { pg_sys::TransamVariables };
    // SAFETY: an aligned 64-bit read of the shared counter (atomic on the platforms
    // Postgres supports for 64-bit builds), without taking XidGenLock at every commit.
    let next = unsafe { std::ptr::read_volatile(&raw const (*shared).nextXid) }.value;
    (next as u32).max(u32::from(pg_sys::FirstNormalTransactionId))
}

/// Whether the active snapshot may miss a transaction that had completed when this
/// backend's last transaction ended (see [`NEXT_XID_AT_LAST_END`]).
fn snapshot_may_be_old() -> bool {
    let reference = NEXT_XID_AT_LAST_END.load(Ordering::Relaxed);
    // SAFETY: reads of the active snapshot (checked to exist) and of the proc array.
    unsafe {
        if reference == 0 || !pg_sys::ActiveSnapshotSet() {
            return true; // the first transaction of a session: nothing to compare with
        }
        let snap = &*pg_sys::GetActiveSnapshot();
        if snap.suboverflowed {
            return true;
        }
        let xid = pg_sys::TransactionId::from;
        let precedes = |a: pg_sys::TransactionId, b: u32| pg_sys::TransactionIdPrecedes(a, xid(b));
        let completed = |x: pg_sys::TransactionId| !pg_sys::TransactionIdIsInProgress(x);
        // Below the reference, the snapshot misses what is at or past its xmax, and what it
        // saw running: old if one of those has completed since.
        let mut x = u32::from(snap.xmax);
        let mut span = 0;
        while precedes(xid(x), reference) {
            span += 1;
            if span > 64 || completed(xid(x)) {
                return true;
            }
            x = x
                .wrapping_add(1)
                .max(u32::from(pg_sys::FirstNormalTransactionId));
        }
        let listed = |ptr: *mut pg_sys::TransactionId, n: usize| {
            if !ptr.is_null() && n > 0 {
                std::slice::from_raw_parts(ptr, n)
            } else {
                &[]
            }
        };
        listed(snap.xip, snap.xcnt as usize)
            .iter()
            .chain(listed(snap.subxip, snap.subxcnt.max(0) as usize))
            .any(|&x| precedes(x, reference) && completed(x))
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let relid = relid.to_u32();
    let is = |t: Table| relid == 0 || WATCHED[t as usize].load(Ordering::Relaxed) == relid;
    let config = is(Table::Issuers) || is(Table::Rules);
    let revocations = is(Table::Revocations);
    if config || revocations {
        INVALIDATIONS.fetch_add(1, Ordering::Relaxed);
    }
    // Any relation while a table's oid is not known yet (not loaded in this session) may
    // have been that table: it counts for the staleness of a load, not for a reload.
    if !(config || revocations) && WATCHED.iter().any(|w| w.load(Ordering::Relaxed) == 0) {
        INVALIDATIONS.fetch_add(1, Ordering::Relaxed);
    }
    if config {
        CONFIG_GENERATION.fetch_add(1, Ordering::Relaxed);
    }
    if revocations {
        REVOCATION_GENERATION.fetch_add(1, Ordering::Relaxed);
    }
}

/// Set when the configuration was read under a transaction snapshot (REPEATABLE READ or
/// SERIALIZABLE), which can predate a change whose invalidation was already processed: what
/// was loaded is then dropped when the transaction ends, so the next one reads afresh.
static LOADED_UNDER_OLD_SNAPSHOT: AtomicBool = AtomicBool::new(false);

/// Drops a configuration loaded under an old snapshot (see `lib.rs`'s transaction hook).
pub fn at_transaction_end() {
    SYNCED.store(false, Ordering::Relaxed);
    LOCK_BEFORE_COMMIT.store(0, Ordering::Relaxed);
    INVALIDATIONS_AT_LAST_END.store(INVALIDATIONS.load(Ordering::Relaxed), Ordering::Relaxed);
    NEXT_XID_AT_LAST_END.store(next_xid(), Ordering::Relaxed);
    if LOADED_UNDER_OLD_SNAPSHOT.swap(false, Ordering::Relaxed) {
        CONFIG_GENERATION.fetch_add(1, Ordering::Relaxed);
        REVOCATION_GENERATION.fetch_add(1, Ordering::Relaxed);
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

/// Queues the invalidation that makes every backend reload, and the lock that orders it
/// before the commit is used (see the module's documentation); called by the table's trigger.
pub fn invalidate(relid: pg_sys::Oid) {
    // SAFETY: a plain catalog call; transactional (sent at commit, dropped at rollback).
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    lock_at_commit();
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
    Revocations,
    /// Read by `oidc.test_rules()` and the gate only: no session caches it.
    RuleTests,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Issuers => "oidc.issuers",
            Table::Rules => "oidc.rules",
            Table::Revocations => "oidc.revocations",
            Table::RuleTests => "oidc.rule_tests",
        }
    }

    /// Its slot in [`WATCHED`], for the tables sessions cache.
    fn watched(self) -> Option<&'static AtomicU32> {
        match self {
            Table::Issuers | Table::Rules | Table::Revocations => WATCHED.get(self as usize),
            Table::RuleTests => None,
        }
    }

    /// The table's name inside the extension (not a lookup key: see [`locate`]).
    fn relname(self) -> &'static str {
        match self {
            Table::Issuers => "issuers",
            Table::Rules => "rules",
            Table::Revocations => "revocations",
            Table::RuleTests => "rule_tests",
        }
    }

    /// The query over `relation` (the quoted, qualified name of the table found by
    /// identity); `$1` is its oid, so that a name resolving elsewhere reads nothing.
    fn query(self, relation: &str) -> String {
        // Schema-qualified names and operators only: this runs under the caller's search_path.
        let row = match self {
            Table::Issuers => {
                "(pg_catalog.to_jsonb(t) operator(pg_catalog.||) pg_catalog.jsonb_build_object(\
                 'leeway_seconds', pg_catalog.date_part('epoch', t.leeway)))::pg_catalog.text"
            }
            Table::Rules => "pg_catalog.to_jsonb(t)::pg_catalog.text",
            Table::Revocations => {
                "(pg_catalog.to_jsonb(t) operator(pg_catalog.||) pg_catalog.jsonb_build_object(\
                 'issued_before_epoch', pg_catalog.date_part('epoch', t.issued_before)))::pg_catalog.text"
            }
            Table::RuleTests => {
                "(pg_catalog.to_jsonb(t) operator(pg_catalog.||) pg_catalog.jsonb_build_object(\
                 'at_epoch_us', (EXTRACT(epoch FROM t.at) operator(pg_catalog.*) 1000000)::pg_catalog.int8))::pg_catalog.text"
            }
        };
        format!(
            "select {row} from only {relation} as t \
             where t.tableoid operator(pg_catalog.=) $1"
        )
    }
}

/// The extension's own table, found by identity: the relation that is a member of the
/// extension `pg_oidc_authz` (`pg_depend`, deptype `e`) with that name. A table of the same
/// name elsewhere (a schema renamed and replaced by its owner, a shadowing `search_path`)
/// is never read. Returns its oid, owner and qualified, quoted name; `None` when the
/// extension is not created in this database.
fn locate(table: Table) -> Option<(pg_sys::Oid, pg_sys::Oid, String)> {
    locate_relation(table.relname())
}

/// The qualified, quoted name of the extension's own table `relname`, found by identity
/// (see [`locate`]), for the worker's writes.
pub fn extension_table(relname: &str) -> Option<String> {
    locate_relation(relname).map(|(_, _, name)| name)
}

fn locate_relation(relname: &str) -> Option<(pg_sys::Oid, pg_sys::Oid, String)> {
    // SAFETY: a catalog lookup by a static name; missing_ok.
    let extension = unsafe { pg_sys::get_extension_oid(c"pg_oidc_authz".as_ptr(), true) };
    if extension == pg_sys::InvalidOid {
        return None;
    }
    Spi::connect(|client| {
        let row = client
            .select(
                // Run as the caller, under the caller's search_path: every name and
                // operator qualified, or a user's `=(oid, oid)` would run here.
                "select c.oid, c.relowner, \
                 pg_catalog.quote_ident(n.nspname::pg_catalog.text) operator(pg_catalog.||) '.' \
                 operator(pg_catalog.||) pg_catalog.quote_ident(c.relname::pg_catalog.text) \
                 from pg_catalog.pg_depend d \
                 join pg_catalog.pg_class c on c.oid operator(pg_catalog.=) d.objid \
                 join pg_catalog.pg_namespace n on n.oid operator(pg_catalog.=) c.relnamespace \
                 where d.refclassid operator(pg_catalog.=) $1 \
                 and d.refobjid operator(pg_catalog.=) $2 \
                 and d.classid operator(pg_catalog.=) $3 \
                 and d.deptype operator(pg_catalog.=) 'e'::pg_catalog.\"char\" \
                 and c.relkind operator(pg_catalog.=) 'r'::pg_catalog.\"char\" \
                 and c.relname operator(pg_catalog.=) $4::pg_catalog.name",
                Some(1),
                &[
                    pg_sys::ExtensionRelationId.into(),
                    extension.into(),
                    pg_sys::RelationRelationId.into(),
                    relname.into(),
                ],
            )?
            .first();
        let oid = row.get::<pg_sys::Oid>(1)?;
        let owner = row.get::<pg_sys::Oid>(2)?;
        let relation = row.get::<String>(3)?;
        Ok::<_, pgrx::spi::SpiError>(oid.zip(owner).zip(relation).map(|((o, w), r)| (o, w, r)))
    })
    .unwrap_or(None)
}

/// The oid of the extension's `oidc.rules` as the last load found it (by identity), for
/// plans that depend on it; call after loading the rules (`cache::rules()`).
pub fn rules_relation() -> Option<pg_sys::Oid> {
    let oid = WATCHED[Table::Rules as usize].load(Ordering::Relaxed);
    (oid != 0).then(|| pg_sys::Oid::from(oid))
}

/// Pushes the newest snapshot for the read, so that what is loaded includes every change
/// whose invalidation this backend has processed: under READ COMMITTED the statement's
/// snapshot (a cursor's, a long statement's) can predate a change whose invalidation was
/// processed since, and what is loaded is kept beyond the transaction. Where a new snapshot
/// cannot be taken (REPEATABLE READ / SERIALIZABLE, whose transaction snapshot is the view
/// the transaction must keep; parallel mode, which forbids new snapshots), the read uses the
/// active snapshot and what it loads is dropped when the transaction ends.
struct FreshSnapshot {
    pushed: bool,
}

impl FreshSnapshot {
    fn push() -> FreshSnapshot {
        // SAFETY: plain reads of the transaction state.
        let (isolation, parallel) = unsafe { (pg_sys::XactIsoLevel, pg_sys::IsInParallelMode()) };
        if isolation >= pg_sys::XACT_REPEATABLE_READ as i32 || parallel {
            // A load under the transaction's snapshot is dropped when the transaction ends
            // if an invalidation was processed during it, or if the snapshot may be older
            // than the transaction (imported with SET TRANSACTION SNAPSHOT).
            let old_snapshot = snapshot_may_be_old();
            if old_snapshot
                || INVALIDATIONS.load(Ordering::Relaxed)
                    != INVALIDATIONS_AT_LAST_END.load(Ordering::Relaxed)
            {
                LOADED_UNDER_OLD_SNAPSHOT.store(true, Ordering::Relaxed);
            }
            return FreshSnapshot { pushed: false };
        }
        // SAFETY: inside a transaction, not in parallel mode (checked above); the snapshot
        // is copied onto the active stack and popped by `drop` (or by abort cleanup).
        unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot()) };
        FreshSnapshot { pushed: true }
    }
}

impl Drop for FreshSnapshot {
    fn drop(&mut self) {
        if self.pushed && !std::thread::panicking() {
            // SAFETY: pops what `push` pushed; an error unwinding through here instead
            // leaves it to the (sub)transaction abort, which pops it.
            unsafe { pg_sys::PopActiveSnapshot() };
        }
    }
}

/// Reads every row of `table` as the table's owner. Every role's tokens and decisions use
/// these tables, although only their owner and `oidc_admin` may read them (issuers can hold
/// secrets; rules reveal policy). A missing table (the extension is not created in this
/// database) reads as empty.
fn read(table: Table) -> Vec<Value> {
    // Claims are UTF-8: in a database of another encoding (LATIN1, EUC_JP, ...) their bytes
    // would read as other characters, so nothing is trusted there (CREATE EXTENSION refuses
    // such a database; this covers one copied from a template).
    // SAFETY: reading the database's encoding.
    let encoding = unsafe { pg_sys::GetDatabaseEncoding() };
    if encoding != pg_sys::pg_enc::PG_UTF8 as i32 && encoding != pg_sys::pg_enc::PG_SQL_ASCII as i32
    {
        return Vec::new();
    }
    // The same snapshot finds the tables and reads them.
    let _snapshot = FreshSnapshot::push();
    let Some((oid, owner, relation)) = locate(table) else {
        return Vec::new();
    };
    if let Some(slot) = table.watched() {
        slot.store(oid.to_u32(), Ordering::Relaxed);
    }
    // SAFETY: a catalog lookup by a static name; missing_ok (found: `locate` succeeded).
    let extension = unsafe { pg_sys::get_extension_oid(c"pg_oidc_authz".as_ptr(), true) };
    SYNC_EXTENSION.store(extension.to_u32(), Ordering::Relaxed);
    let _owner = AsOwner::switch(owner);
    json_rows(&table.query(&relation), &[oid.into()], table.name())
}

/// Runs `query` (under the current identity and snapshot) and parses its first column, a row
/// as JSON text; raises XX000 naming `what` when the query fails.
fn json_rows(query: &str, args: &[pgrx::datum::DatumWithOid], what: &str) -> Vec<Value> {
    Spi::connect(|client| {
        let mut rows = Vec::new();
        for row in client.select(query, None, args)? {
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
            format!("could not read {what}: {e}")
        );
        unreachable!()
    })
}

/// Whether the current user may see configuration details: a superuser, or a role with
/// the privileges of `oidc_admin`.
fn may_see_configuration() -> bool {
    // SAFETY: catalog lookups for the current user and a static role name (missing_ok).
    unsafe {
        let user = pg_sys::GetUserId();
        if pg_sys::superuser_arg(user) {
            return true;
        }
        let admin = pg_sys::get_role_oid(c"oidc_admin".as_ptr(), true);
        admin != pg_sys::InvalidOid && pg_sys::has_privs_of_role(user, admin)
    }
}

/// Reports rows that failed to load (possible only if written around the validating
/// trigger): with the reason to those who may read the table, without it to anyone else.
fn report_invalid<E: std::fmt::Display>(table: Table, errors: &[E], consequence: &str) {
    if errors.is_empty() {
        return;
    }
    if may_see_configuration() {
        for e in errors {
            pgrx::warning!(
                "pg_oidc_authz: an invalid row of {} {consequence}: {e}",
                table.name()
            );
        }
    } else {
        pgrx::warning!(
            "pg_oidc_authz: {} invalid row(s) of {} {consequence} (details visible to oidc_admin)",
            errors.len(),
            table.name()
        );
    }
}

/// The trusted issuers. Invalid rows are left out, so their tokens fail closed.
pub fn load() -> TrustConfig {
    compile_issuers(&read_issuer_rows())
}

/// The issuers' rows as stored (the rule-test gate asks whether there are any).
pub fn read_issuer_rows() -> Vec<Value> {
    read(Table::Issuers)
}

/// Rows of [`read_issuer_rows`], loaded as [`load`] does.
pub fn compile_issuers(rows: &[Value]) -> TrustConfig {
    let (config, errors) = TrustConfig::from_rows(rows);
    report_invalid(
        Table::Issuers,
        &errors,
        "is skipped (its tokens are refused)",
    );
    config
}

/// The rules, compiled. An invalid permit is left out; an invalid forbid denies whatever
/// it may match (see [`RuleSet::from_rows`]).
pub fn load_rules() -> RuleSet {
    compile_rules(&read_rule_rows())
}

/// The rules' rows as stored (the rule-test gate asks whether there are any).
pub fn read_rule_rows() -> Vec<Value> {
    read(Table::Rules)
}

/// Rows of [`read_rule_rows`], compiled as [`load_rules`] does.
pub fn compile_rules(rows: &[Value]) -> RuleSet {
    let (rules, errors) = RuleSet::from_rows(rows);
    report_invalid_rules(&errors);
    rules
}

/// Reports rule rows that failed to load (see [`report_invalid`]); also for versions read
/// from `oidc.rules_history`.
pub fn report_invalid_rules(errors: &[oidc_authz_core::rules::RuleError]) {
    report_invalid(
        Table::Rules,
        errors,
        "cannot be evaluated (a permit grants nothing, a forbid denies what it may match)",
    );
}

/// Rows of the extension's own table `relname` (found by identity), read by its owner:
/// `query` builds the query from the table's quoted, qualified name; its `$1` is the
/// table's oid (to be compared with `tableoid`), `$2` is `at`. The first column is the row
/// as JSON text. Empty when the extension is not created in this database.
pub fn read_at(
    relname: &str,
    query: impl FnOnce(&str) -> String,
    at: pgrx::datum::TimestampWithTimeZone,
) -> Vec<Value> {
    let Some((oid, owner, relation)) = locate_relation(relname) else {
        return Vec::new();
    };
    let _owner = AsOwner::switch(owner);
    json_rows(
        &query(&relation),
        &[oid.into(), at.into()],
        &format!("oidc.{relname}"),
    )
}

/// The rows of `oidc.rule_tests`, as this transaction sees them, ordered by name.
pub fn read_rule_tests() -> Vec<Value> {
    let mut rows = read(Table::RuleTests);
    rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    rows
}

/// What `oidc.revocations` revokes. A row that cannot be read (possible only with the
/// table's constraints dropped) is reported; one revoking a subject then revokes all of it.
pub fn load_revocations() -> oidc_authz_core::revocation::Revocations {
    use oidc_authz_core::revocation::Revocations;
    let (revocations, errors) = Revocations::from_rows(&read(Table::Revocations));
    report_invalid(Table::Revocations, &errors, "is read as far as it can be");
    revocations
}
