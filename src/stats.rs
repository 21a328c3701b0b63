//! `oidc.stats()` and `oidc.stats_reset()`: what the extension did, as counters with labels
//! (see `oidc_authz_core::stats`).
//!
//! Each backend counts into its own pending table, with no lock and no string work per row:
//! a row decision only bumps the count of the last decision key (the call site's rule list
//! and the verdict), and a different key is resolved to rule names once, when it replaces
//! the last. At the end of each transaction (also in parallel workers) the pending counts
//! go to a table in shared memory, under one short lock, when the library is preloaded:
//! the counters are then cluster-wide, from every backend and database, and survive until
//! the server stops or `oidc.stats_reset()`. Without preloading there is no shared memory:
//! each backend keeps its own totals, and `oidc.stats()` says so (`scope = 'backend'`).

use oidc_authz_core::rules::{RuleSet, ShadowDiff, Verdict};
use oidc_authz_core::stats::{Counter, Key, Refresh, Table};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Counters the cluster keeps (~330 KB of shared memory).
const SHARED_SLOTS: usize = 4096;
/// Counters a backend keeps when the library is not preloaded.
const LOCAL_SLOTS: usize = 1024;
/// Counters a transaction gathers before they are moved on (early when it fills).
const PENDING_SLOTS: usize = 256;

#[derive(Clone, Copy, Default)]
pub struct Shared {
    table: Table<SHARED_SLOTS>,
    /// When the counters were last reset; 0: never (they count from the server's start).
    since: pg_sys::TimestampTz,
}

// SAFETY: plain `Copy` data without pointers, the same in every process.
unsafe impl PGRXSharedMemory for Shared {}

// SAFETY: a static name; initialized by `pg_shmem_init!` in `init` when preloading.
static SHARED: PgLwLock<Shared> = unsafe { PgLwLock::new(c"pg_oidc_authz stats") };

/// Set in the postmaster when the library is preloaded (inherited by its children).
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// A row decision's identity, cheap to compare: the call site's rule list (its id in the
/// backend) and the verdict.
#[derive(Clone, Copy, PartialEq, Eq)]
struct DecisionKey {
    matching: u64,
    allowed: bool,
    deciding: Option<usize>,
    errored: Option<usize>,
}

struct Local {
    table: Box<Table<LOCAL_SLOTS>>,
    since: pg_sys::TimestampTz,
}

thread_local! {
    static LAST: Cell<Option<(DecisionKey, u64)>> = const { Cell::new(None) };
    static LAST_RULES: RefCell<Option<Rc<RuleSet>>> = const { RefCell::new(None) };
    static PENDING: RefCell<Option<Box<Table<PENDING_SLOTS>>>> = const { RefCell::new(None) };
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
    /// Databases this transaction drops (`object_access`).
    static DROPPED: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// From `_PG_init`: the shared table, when preloading.
pub fn init() {
    // SAFETY: a plain read of a flag the postmaster sets while preloading.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    pg_shmem_init!(SHARED);
    PRELOADED.store(true, Ordering::Relaxed);
    // SAFETY: _PG_init runs once per process, before any query: no concurrent access.
    unsafe {
        PREVIOUS_OBJECT_ACCESS = pg_sys::object_access_hook;
        pg_sys::object_access_hook = Some(object_access);
    }
}

static mut PREVIOUS_OBJECT_ACCESS: pg_sys::object_access_hook_type = None;

/// Notes a database that `DROP DATABASE` drops (by the oid `dropdb` locked, whatever name
/// the command gave): its counters are forgotten when the transaction commits.
#[pg_guard]
unsafe extern "C-unwind" fn object_access(
    access: pg_sys::ObjectAccessType::Type,
    class: pg_sys::Oid,
    object: pg_sys::Oid,
    sub: std::ffi::c_int,
    arg: *mut std::ffi::c_void,
) {
    // SAFETY: the previous hook, with the arguments as given.
    unsafe {
        if let Some(previous) = PREVIOUS_OBJECT_ACCESS {
            previous(access, class, object, sub, arg);
        }
    }
    if access == pg_sys::ObjectAccessType::OAT_DROP && class == pg_sys::DatabaseRelationId {
        DROPPED.with_borrow_mut(|d| d.push(object.to_u32()));
    }
}

fn database() -> u32 {
    // SAFETY: a plain read of the backend's database.
    u32::from(unsafe { pg_sys::MyDatabaseId })
}

fn pending_add(key: &Key, n: u64) {
    let full = PENDING.with_borrow_mut(|p| {
        let table = p.get_or_insert_with(Box::default);
        table.add(key, n);
        table.nearly_full()
    });
    if full {
        move_pending();
    }
}

/// Counts one event of a counter without a database (tokens, the cache).
pub fn count(counter: Counter, label: &str) {
    pending_add(&Key::new(counter, 0, label, 0), 1);
}

/// Counts one key-set refresh of this database's keys worker, straight into shared memory
/// (the worker runs only when preloaded, and may count outside a transaction).
pub fn refreshed(outcome: Refresh) {
    if PRELOADED.load(Ordering::Relaxed) {
        let key = Key::new(Counter::KeyRefreshes, database(), "", outcome as u8);
        SHARED.exclusive().table.add(&key, 1);
    }
}

/// Counts one row decision of `oidc.allow()` made with the rule list `matching` of `rules`.
#[inline]
pub fn decided(rules: &Rc<RuleSet>, matching: u64, verdict: Verdict) {
    let key = DecisionKey {
        matching,
        allowed: verdict.allowed,
        deciding: verdict.deciding,
        errored: verdict.errored,
    };
    if let Some((last, n)) = LAST.get() {
        if last == key {
            LAST.set(Some((key, n + 1)));
            return;
        }
    }
    settle_last();
    LAST_RULES.with_borrow_mut(|r| {
        if !r.as_ref().is_some_and(|r| Rc::ptr_eq(r, rules)) {
            *r = Some(rules.clone());
        }
    });
    LAST.set(Some((key, 1)));
}

/// Counts a row decision the shadow rules would have changed.
pub fn shadow(rules: &RuleSet, diff: &ShadowDiff) {
    let db = database();
    for &i in &diff.rules {
        let key = Key::new(
            Counter::ShadowDifferences,
            db,
            &rules.rule(i).name,
            u8::from(diff.allowed),
        );
        pending_add(&key, 1);
    }
}

/// The last decision key's count, with its rule names, into the pending table.
fn settle_last() {
    let Some((key, n)) = LAST.take() else {
        return;
    };
    let Some(rules) = LAST_RULES.with_borrow(Clone::clone) else {
        return;
    };
    let db = database();
    let name = |i: Option<usize>| i.map_or("", |i| rules.rule(i).name.as_str());
    pending_add(
        &Key::new(
            Counter::Decisions,
            db,
            name(key.deciding),
            u8::from(key.allowed),
        ),
        n,
    );
    if key.errored.is_some() {
        pending_add(&Key::new(Counter::RuleErrors, db, name(key.errored), 0), n);
    }
}

/// The pending counts to the shared table (preloaded) or the backend's totals.
fn move_pending() {
    let Some(pending) = PENDING.with_borrow_mut(Option::take) else {
        return;
    };
    if pending.is_empty() {
        return;
    }
    if PRELOADED.load(Ordering::Relaxed) {
        SHARED.exclusive().table.merge(&pending);
    } else {
        LOCAL.with_borrow_mut(|l| local(l).table.merge(&pending));
    }
}

fn local(l: &mut Option<Local>) -> &mut Local {
    l.get_or_insert_with(|| Local {
        table: Box::default(),
        // SAFETY: a plain read of the backend's start time.
        since: unsafe { pg_sys::MyStartTimestamp },
    })
}

/// At the end of every transaction (also aborted, prepared, or a parallel worker's);
/// `committed`: a top-level commit, which makes the databases it dropped gone.
pub fn at_transaction_end(committed: bool) {
    settle_last();
    LAST_RULES.with_borrow_mut(|r| *r = None);
    move_pending();
    for db in DROPPED.take() {
        if committed {
            forget_database(db);
        }
    }
}

/// Every counter, whether cluster-wide, and since when.
pub fn snapshot() -> (Vec<(Key, u64)>, u64, bool, pg_sys::TimestampTz) {
    settle_last();
    // This transaction's own counts so far are included: move them on first.
    move_pending();
    if PRELOADED.load(Ordering::Relaxed) {
        let shared = SHARED.share();
        let since = if shared.since == 0 {
            // SAFETY: a plain read of the postmaster's start time.
            unsafe { pg_sys::PgStartTime }
        } else {
            shared.since
        };
        (
            shared.table.iter().collect(),
            shared.table.dropped,
            true,
            since,
        )
    } else {
        LOCAL.with_borrow_mut(|l| {
            let l = local(l);
            (l.table.iter().collect(), l.table.dropped, false, l.since)
        })
    }
}

/// Forgets the counters of database `db`, dropped: their slots are free again (the cluster's
/// table; nothing without preloading, where each backend's table is its own database's).
fn forget_database(db: u32) {
    if PRELOADED.load(Ordering::Relaxed) {
        // (allocated before the lock is taken)
        let mut scratch = Vec::with_capacity(SHARED_SLOTS);
        SHARED.exclusive().table.remove_database(db, &mut scratch);
    }
}

/// Zeroes the counters of this database (`all`: every counter, and `since` moves), in the
/// cluster's table when preloaded, else in this backend's; this backend's pending counts
/// of those too.
pub fn reset(all: bool) {
    LAST.set(None);
    PENDING.with_borrow_mut(|p| match p {
        Some(p) if !all => p.reset_database(database()),
        _ => *p = None,
    });
    // SAFETY: reads the clock.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let db = database();
    fn zero<const N: usize>(
        table: &mut Table<N>,
        since: &mut pg_sys::TimestampTz,
        all: bool,
        db: u32,
        now: pg_sys::TimestampTz,
    ) {
        if all {
            table.reset();
            *since = now;
        } else {
            table.reset_database(db);
        }
    }
    if PRELOADED.load(Ordering::Relaxed) {
        let shared = &mut *SHARED.exclusive();
        zero(&mut shared.table, &mut shared.since, all, db, now);
    } else {
        LOCAL.with_borrow_mut(|l| {
            let l = local(l);
            zero(&mut l.table, &mut l.since, all, db, now);
        });
    }
}
