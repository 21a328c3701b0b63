//! The background worker: keys from discovery, kept fresh (README "Keys from discovery").
//!
//! With the library in `shared_preload_libraries`, the postmaster starts a *launcher* (once
//! recovery is over: nothing runs on a hot standby, which follows the primary's rows by
//! replication). The launcher connects to the `postgres` database, lists the databases that
//! accept connections, and starts one dynamic *keys worker* per database; a keys worker
//! whose database has no `pg_oidc_authz` exits at once and is tried again a minute later, or
//! at once when `CREATE EXTENSION` (or a change of `oidc.issuers`) wakes the launcher.
//!
//! A keys worker refreshes, when due, every enabled issuer with `discovery = true`: it fetches
//! the discovery document and the key set without holding a transaction or a lock
//! (`refresh.rs`), then writes the key set into the row (when it changed) and the outcome
//! into `oidc._fetch_status` in one short transaction. Sessions use a new key set from their
//! next transaction, hot standbys after replay. A backend that meets an unknown `kid` of a
//! discovery issuer asks its database's keys worker for an early refresh through shared
//! memory and its latch, and may wait for it (`oidc.refresh_wait`); backends never make a
//! network call.

mod dropdb;
pub(crate) mod http;
mod refresh;
pub(crate) mod settings;

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SLOTS: usize = 32;

/// A running keys worker: its database, pid, and how many refresh rounds it completed.
#[derive(Copy, Clone, Default)]
struct Worker {
    db: u32,
    pid: i32,
    rounds: u64,
    /// Between taking the requests and finishing the round.
    busy: bool,
}

/// An early refresh asked by a backend: database, issuer (hashed), when (seconds).
#[derive(Copy, Clone, Default)]
struct Request {
    db: u32,
    issuer: u64,
    at: i64,
    /// The worker's `rounds` when it was asked; done once they moved past it.
    round: u64,
}

#[derive(Copy, Clone, Default)]
pub struct Shared {
    launcher: i32,
    /// Databases without a keys worker whose backends asked for one (`CREATE EXTENSION`, a
    /// change of `oidc.issuers`): the launcher starts theirs next.
    wanted: [u32; 8],
    workers: [Worker; SLOTS],
    requests: [Request; SLOTS],
    /// Databases whose keys worker a command stopped (see `dropdb`): not started meanwhile.
    paused: [dropdb::Pause; 8],
}

impl Shared {
    /// Asks the launcher to probe database `db` next (once; nothing when the list is full:
    /// the launcher's rescan finds it).
    fn want(&mut self, db: u32) {
        if !self.wanted.contains(&db) {
            if let Some(free) = self.wanted.iter().position(|w| *w == 0) {
                self.wanted[free] = db;
            }
        }
    }

    /// The live keys worker of database `db`, if any.
    fn live(&self, db: u32) -> Option<Worker> {
        self.workers
            .iter()
            .find(|w| w.db == db && alive(w.pid))
            .copied()
    }
}

// SAFETY: plain `Copy` data without pointers, the same in every process.
unsafe impl PGRXSharedMemory for Shared {}

// SAFETY: a static name; initialized by `pg_shmem_init!` in `init` when preloading.
static SHARED: PgLwLock<Shared> = unsafe { PgLwLock::new(c"pg_oidc_authz workers") };

/// Set in the postmaster when the library is preloaded (and inherited by its children):
/// only then is there shared memory and a worker.
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// From `_PG_init`: shared memory and the launcher, when preloading.
pub fn init() {
    // SAFETY: a plain read of a flag the postmaster sets while preloading.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    pg_shmem_init!(SHARED);
    PRELOADED.store(true, Ordering::Relaxed);
    dropdb::install();
    BackgroundWorkerBuilder::new("pg_oidc_authz launcher")
        .set_type("pg_oidc_authz launcher")
        .set_library("pg_oidc_authz")
        .set_function("oidc_launcher_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
}

fn issuer_hash(issuer: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    issuer.hash(&mut h);
    h.finish()
}

fn now_secs() -> i64 {
    crate::cache::now()
}

/// Sets the latch of process `pid`, if it is still one of ours.
fn set_latch(pid: i32) {
    if pid == 0 {
        return;
    }
    // SAFETY: BackendPidGetProc takes ProcArrayLock; a PGPROC's latch lives in shared memory.
    unsafe {
        let proc_ = pg_sys::BackendPidGetProc(pid);
        if !proc_.is_null() {
            pg_sys::SetLatch(&mut (*proc_).procLatch);
        }
    }
}

/// Wakes this database's keys worker (a change of `oidc.issuers`), or the launcher when
/// there is none yet (`CREATE EXTENSION`). Nothing without preloading.
pub fn wake() {
    if !PRELOADED.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: a plain read of the backend's database.
    let db = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let s = SHARED.exclusive();
    match s.live(db) {
        Some(w) => {
            drop(s);
            set_latch(w.pid);
        }
        None => ask_launcher(s, db),
    }
}

/// Asks the launcher to start a keys worker for `db` (`Shared::want`) and wakes it, once the
/// lock is released.
fn ask_launcher(mut s: pgrx::lwlock::PgLwLockExclusiveGuard<'_, Shared>, db: u32) {
    s.want(db);
    let launcher = s.launcher;
    drop(s);
    set_latch(launcher);
}

/// Asks this database's keys worker to refresh `issuer` now, at most once per
/// `oidc.refresh_cooldown`, and waits up to `oidc.refresh_wait` for it (0: not at all, the
/// refresh then serves the next tokens). True when a refresh round finished (the caller then
/// reloads the configuration and verifies again).
pub fn refresh_and_wait(issuer: &str) -> bool {
    if !PRELOADED.load(Ordering::Relaxed) {
        return false;
    }
    let wait = settings::refresh_wait();
    // SAFETY: a plain read of the backend's database.
    let db = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let hash = issuer_hash(issuer);
    let now = now_secs();
    let cooldown = settings::refresh_cooldown().as_secs() as i64;
    let (pid, round) = {
        let mut s = SHARED.exclusive();
        let pending = s
            .requests
            .iter()
            .position(|r| r.db == db && r.issuer == hash && r.at > now - cooldown);
        // False when every slot holds a request of the cooldown: the refresh is then refused
        // (it serves later), so that requests never come faster than one per slot and
        // cooldown, whatever issuers and databases the tokens name.
        let record = |s: &mut Shared, round: u64| {
            let Some(slot) = s
                .requests
                .iter()
                .position(|r| r.db == 0 || r.at <= now - cooldown)
            else {
                return false;
            };
            s.requests[slot] = Request {
                db,
                issuer: hash,
                at: now,
                round,
            };
            true
        };
        let Some(w) = s.live(db) else {
            // None serves this database (one left during a pause, or no worker slot was
            // free): the launcher is asked for one, as `wake` does, once per cooldown (a
            // token's unknown `kid` is the client's choice). The new worker's first round
            // serves the request (`register_worker`).
            let round = current_round(&s, db);
            if pending.is_none() && record(&mut s, round) {
                ask_launcher(s, db);
            }
            return false;
        };
        // A request made while a round runs is served by the next one.
        let next_round = if w.busy { w.rounds + 1 } else { w.rounds };
        match pending {
            // Asked recently: wait for that round if it is still running, else refuse.
            Some(i) if s.requests[i].round < w.rounds => return false,
            Some(i) => (w.pid, s.requests[i].round),
            None if record(&mut s, next_round) => (w.pid, next_round),
            None => return false,
        }
    };
    set_latch(pid);
    if wait.is_zero() {
        return false; // refused at once; the refresh serves the next tokens
    }
    let deadline = Instant::now() + wait;
    loop {
        let done = SHARED
            .share()
            .workers
            .iter()
            .any(|w| w.db == db && w.pid == pid && w.rounds > round);
        if done {
            // SAFETY: processing invalidations at a safe point (between statements' work).
            unsafe { pg_sys::AcceptInvalidationMessages() };
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        // SAFETY: waiting on the backend's own latch; interrupts are checked after.
        unsafe {
            pg_sys::WaitLatch(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                left.as_millis().min(20) as std::ffi::c_long,
                pg_sys::PG_WAIT_EXTENSION,
            );
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
        pgrx::check_for_interrupts!();
    }
}

/// The issuers (hashes) this database's backends asked to refresh early.
fn take_requests(db: u32) -> Vec<u64> {
    let mut s = SHARED.exclusive();
    let round = current_round(&s, db);
    for w in s.workers.iter_mut().filter(|w| w.db == db) {
        w.busy = true;
    }
    s.requests
        .iter()
        .filter(|r| r.db == db && r.round == round)
        .map(|r| r.issuer)
        .collect()
}

/// Whether a backend asked, during the round just finished, for a refresh the next serves.
fn requests_pending(db: u32) -> bool {
    let s = SHARED.share();
    let round = current_round(&s, db);
    s.requests.iter().any(|r| r.db == db && r.round == round)
}

fn current_round(s: &Shared, db: u32) -> u64 {
    s.workers
        .iter()
        .find(|w| w.db == db)
        .map_or(0, |w| w.rounds)
}

fn finish_round(db: u32) {
    let mut s = SHARED.exclusive();
    for w in s.workers.iter_mut().filter(|w| w.db == db) {
        w.rounds += 1;
        w.busy = false;
    }
}

fn register_worker(db: u32) -> bool {
    // SAFETY: a plain read of the process id.
    let pid = unsafe { pg_sys::MyProcPid };
    let mut s = SHARED.exclusive();
    if s.workers
        .iter()
        .any(|w| w.db == db && w.pid != pid && alive(w.pid))
    {
        return false; // another one serves this database
    }
    // A command that needs the database to itself paused it after this worker connected
    // (the launcher started it before): it found no worker to stop, so this one must not
    // stay. Checked under the lock the pause is taken with: either the command sees this
    // worker registered and stops it, or this worker sees the pause and leaves.
    if dropdb::paused(&s, db, now_secs()) {
        // Asked for again, under the lock the refusal is decided with: the launcher defers
        // the database while the pause lasts and probes it once it ends, even when the
        // pause ended before the launcher saw this worker leave.
        ask_launcher(s, db);
        return false;
    }
    let slot = s
        .workers
        .iter()
        .position(|w| w.db == db)
        .or_else(|| s.workers.iter().position(|w| !alive(w.pid)));
    match slot {
        Some(i) => {
            let rounds = s.workers[i].rounds;
            // Requests made while none served this database were counted in another
            // slot's rounds, perhaps: this worker's first round serves them.
            for r in s.requests.iter_mut().filter(|r| r.db == db) {
                r.round = rounds;
            }
            s.workers[i] = Worker {
                db,
                pid,
                rounds,
                busy: false,
            };
            true
        }
        None => false,
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_exit(_code: std::ffi::c_int, db: pg_sys::Datum) {
    unregister_worker(db.value() as u32);
}

/// Whether `pid` is a live process of this server (a slot of a dead worker is free).
fn alive(pid: i32) -> bool {
    // SAFETY: BackendPidGetProc takes ProcArrayLock itself.
    pid != 0 && !unsafe { pg_sys::BackendPidGetProc(pid) }.is_null()
}

fn unregister_worker(db: u32) {
    // SAFETY: a plain read of the process id.
    let pid = unsafe { pg_sys::MyProcPid };
    let mut s = SHARED.exclusive();
    for w in s.workers.iter_mut().filter(|w| w.db == db && w.pid == pid) {
        w.pid = 0;
    }
}

/// The launcher: keeps one keys worker per database that has the extension.
///
/// It probes databases one at a time (a keys worker started for a database without the
/// extension exits at once), so that it never holds more worker slots than one per database
/// served plus one: every database when it starts and every ten minutes, a database at once
/// when one of its backends asks (`CREATE EXTENSION`, a change of `oidc.issuers`).
///
/// # Safety
/// Started by the postmaster as a background worker.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn oidc_launcher_main(_arg: pg_sys::Datum) {
    use pgrx::bgworkers::DynamicBackgroundWorker;
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(Some("postgres"), None);
    // SAFETY: a plain read of the process id.
    SHARED.exclusive().launcher = unsafe { pg_sys::MyProcPid };
    const RESCAN: Duration = Duration::from_secs(600);
    let mut queue: VecDeque<u32> = VecDeque::new();
    let mut probe: Option<(u32, DynamicBackgroundWorker)> = None;
    let mut serving: HashMap<u32, DynamicBackgroundWorker> = HashMap::new();
    let mut last_scan: Option<Instant> = None;
    // Databases whose worker a command stopped (`dropdb`), until it ends.
    let mut deferred: Vec<u32> = Vec::new();
    let mut last_warning: Option<Instant> = None;
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the standard reload, between units of work.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        if last_scan.is_none_or(|t| t.elapsed() >= RESCAN) {
            last_scan = Some(Instant::now());
            for db in databases() {
                if !queue.contains(&db) {
                    queue.push_back(db);
                }
            }
        }
        let wanted: Vec<u32> = std::mem::take(&mut SHARED.exclusive().wanted)
            .into_iter()
            .filter(|db| *db != 0)
            .collect();
        queue_first(&mut queue, wanted);
        if !deferred.is_empty() {
            let now = now_secs();
            let resumed: Vec<u32> = {
                let s = SHARED.share();
                deferred
                    .iter()
                    .copied()
                    .filter(|db| !dropdb::paused(&s, *db, now))
                    .collect()
            };
            deferred.retain(|db| !resumed.contains(db));
            queue_first(&mut queue, resumed);
        }
        let registered = |db: u32| SHARED.share().live(db).is_some();
        // A keys worker that stopped (terminated, failed, or its database dropped the
        // extension) is probed again: a database without the extension is then not served.
        serving.retain(|db, w| {
            let gone = stopped(w);
            if gone && !queue.contains(db) {
                queue.push_back(*db);
            }
            !gone
        });
        if let Some((db, w)) = probe.take() {
            if registered(db) {
                serving.insert(db, w);
            } else if !stopped(&w) {
                probe = Some((db, w)); // still starting
            } else if dropdb::paused(&SHARED.share(), db, now_secs()) && !deferred.contains(&db) {
                // It saw a pause when it registered and left (and asked for its database
                // again, `register_worker`): served again once the pause ends.
                deferred.push(db);
            }
        }
        while probe.is_none() {
            let Some(db) = queue.pop_front() else { break };
            if serving.contains_key(&db) {
                continue;
            }
            if dropdb::paused(&SHARED.share(), db, now_secs()) {
                if !deferred.contains(&db) {
                    deferred.push(db);
                }
                continue;
            }
            match start_keys_worker(db) {
                Some(w) => probe = Some((db, w)),
                None => {
                    // Tried again at the next wake (every ten seconds at least); said once a
                    // minute at most.
                    queue.push_front(db);
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        last_warning = Some(Instant::now());
                        pgrx::warning!(
                            "pg_oidc_authz: no background worker slot for the keys of database {db} (raise max_worker_processes)"
                        );
                    }
                    break;
                }
            }
        }
        let nap = if probe.is_some() { 100 } else { 10_000 };
        if !BackgroundWorker::wait_latch(Some(Duration::from_millis(nap))) {
            break;
        }
    }
}

fn stopped(w: &pgrx::bgworkers::DynamicBackgroundWorker) -> bool {
    use pgrx::bgworkers::BackgroundWorkerStatus::{PostmasterDied, Stopped};
    matches!(w.pid(), Err(Stopped | PostmasterDied))
}

/// Puts those of `dbs` that still exist at the front of the launcher's queue: a database
/// asked for by a command that dropped it, or whose pause ended with it, is gone and not
/// probed (its worker could not even connect).
fn queue_first(queue: &mut VecDeque<u32>, dbs: Vec<u32>) {
    if dbs.is_empty() {
        return;
    }
    let existing = databases();
    for db in dbs.into_iter().filter(|db| existing.contains(db)) {
        if !queue.contains(&db) {
            queue.push_front(db);
        }
    }
}

fn databases() -> Vec<u32> {
    BackgroundWorker::transaction(|| {
        Spi::connect(|c| {
            let rows = c.select(
                "select oid from pg_catalog.pg_database where datallowconn and not datistemplate",
                None,
                &[],
            )?;
            let mut out = Vec::new();
            for row in rows {
                if let Some(oid) = row.get::<pg_sys::Oid>(1)? {
                    out.push(oid.to_u32());
                }
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
        .unwrap_or_else(|e| {
            pgrx::warning!("pg_oidc_authz launcher: cannot list the databases: {e}");
            Vec::new()
        })
    })
}

fn start_keys_worker(db: u32) -> Option<pgrx::bgworkers::DynamicBackgroundWorker> {
    BackgroundWorkerBuilder::new(&format!("pg_oidc_authz keys {db}"))
        .set_type("pg_oidc_authz keys")
        .set_library("pg_oidc_authz")
        .set_function("oidc_keys_worker_main")
        .set_argument(Some(pg_sys::Datum::from(db)))
        .enable_spi_access()
        // SAFETY: a plain read of the process id.
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic()
        .ok()
}

/// A keys worker: refreshes this database's discovery issuers (see the module docs).
///
/// # Safety
/// Started by the launcher as a dynamic background worker, its argument a database oid.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn oidc_keys_worker_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let db = arg.value() as u32;
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(db)), None);
    BackgroundWorker::transaction(refresh::session_setup);
    if !BackgroundWorker::transaction(refresh::extension_present) || !register_worker(db) {
        return;
    }
    // SAFETY: registering a callback that only clears this process's slot, however it ends.
    unsafe { pg_sys::before_shmem_exit(Some(on_exit), pg_sys::Datum::from(db)) };
    let mut state = refresh::State::default();
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the standard reload, between units of work.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let early = take_requests(db);
        let next = match refresh::round(&mut state, &early) {
            Some(next) => next,
            None => {
                pgrx::log!("pg_oidc_authz: database {db} no longer has the extension's tables");
                break;
            }
        };
        finish_round(db);
        if requests_pending(db) {
            continue; // asked during the round: at once
        }
        if !BackgroundWorker::wait_latch(Some(next)) {
            break;
        }
    }
    unregister_worker(db);
}

/// Set by `oidc._worker_wake()` in a transaction that changed `oidc.issuers` (or created
/// the extension): the worker is woken when it commits, once the change is visible.
static WAKE_AT_COMMIT: AtomicBool = AtomicBool::new(false);

/// `oidc._worker_wake()`: run by `CREATE EXTENSION` and by changes of `oidc.issuers`.
#[pg_extern(volatile, parallel_unsafe, name = "_worker_wake")]
fn worker_wake() {
    WAKE_AT_COMMIT.store(true, Ordering::Relaxed);
}

/// From the transaction callback: wakes the worker after a commit that asked for it.
pub fn at_transaction_end(committed: bool) {
    if WAKE_AT_COMMIT.swap(false, Ordering::Relaxed) && committed {
        wake();
    }
    dropdb::at_transaction_end();
}
