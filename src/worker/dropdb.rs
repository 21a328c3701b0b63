//! Commands that need a database without other sessions — `DROP DATABASE`, `ALTER DATABASE
//! … RENAME` or `SET TABLESPACE`, `CREATE DATABASE … TEMPLATE` — must not be refused because
//! of the keys worker connected to it ("database is being accessed by other users"). Postgres
//! 15 has no way to mark a background worker as one such commands may end, so a
//! `ProcessUtility` hook (installed when preloading) does it before the command runs: it
//! pauses the launcher for that database, stops its keys worker and waits for it to exit
//! (at most `oidc.fetch_timeout` plus a second: a fetch in progress finishes first). The
//! pause ends with the command's transaction, which also wakes the launcher: a renamed or
//! copied database is served again at once, a dropped one is gone.
//!
//! Only a role that could run the command on that database may stop its worker: a
//! superuser, or a member of the database's owner (else the command fails as it would,
//! and the worker keeps running).

use super::{alive, set_latch, PRELOADED, SHARED};
use crate::residual::nodes::list_nodes;
use pgrx::prelude::*;
use std::cell::Cell;
use std::ffi::CStr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A database whose keys worker must not be started (until `until`, in seconds, at the
/// latest: a backend that paused it and died without ending its transaction).
#[derive(Copy, Clone, Default)]
pub(super) struct Pause {
    pub db: u32,
    pub until: i64,
}

/// Longest pause, should the pausing backend never end its transaction.
const MAX_PAUSE_SECS: i64 = 120;

thread_local! {
    /// The database this backend paused, to resume at its transaction's end.
    static PAUSED_HERE: Cell<Option<u32>> = const { Cell::new(None) };
}

static mut PREVIOUS: pg_sys::ProcessUtility_hook_type = None;

/// From `worker::init`, while preloading.
pub(super) fn install() {
    // SAFETY: _PG_init runs once per process, before any query: no concurrent access.
    unsafe {
        PREVIOUS = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

// The C function itself, not pgrx's binding: that one catches an error of the command and
// turns it into a Rust panic, which a guard would then raise again as a new error (without
// the original's context, with a Rust backtrace).
extern "C-unwind" {
    #[link_name = "standard_ProcessUtility"]
    fn standard_process_utility(
        pstmt: *mut pg_sys::PlannedStmt,
        query: *const std::ffi::c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        query_env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
}

/// The hook. Not `#[pg_guard]`: an error of the command itself passes through as Postgres
/// raised it (a longjmp over this frame, which holds nothing to drop when it calls on);
/// only our own part, [`before_utility`], is guarded.
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: the planner's statement, valid for the call.
    unsafe { before_utility((*pstmt).utilityStmt) };
    // SAFETY: the previous hook or the standard function, with the arguments as given.
    unsafe {
        match PREVIOUS {
            Some(previous) => previous(
                pstmt,
                query,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => standard_process_utility(
                pstmt,
                query,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn before_utility(stmt: *mut pg_sys::Node) {
    // SAFETY: per the caller: the statement's parse node, or null.
    if let Some(name) = unsafe { exclusive_database(stmt) } {
        stop_worker_of(&name);
    }
}

/// The database a command needs to itself, if it is one of those (see the module docs).
///
/// # Safety
/// `stmt` is null or a parse node.
unsafe fn exclusive_database(stmt: *mut pg_sys::Node) -> Option<String> {
    let text = |p: *const std::ffi::c_char| {
        // SAFETY: a NUL-terminated string of the parse tree, or null.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    // SAFETY: each cast follows the node's tag; option lists hold DefElems.
    unsafe {
        if stmt.is_null() {
            return None;
        }
        let option = |options: *mut pg_sys::List, name: &str| {
            list_nodes(options).into_iter().find_map(|n| {
                let def = n as *mut pg_sys::DefElem;
                (text((*def).defname).as_deref() == Some(name) && !(*def).arg.is_null())
                    .then(|| text(pg_sys::defGetString(def)))
                    .flatten()
            })
        };
        match (*stmt).type_ {
            pg_sys::NodeTag::T_DropdbStmt => text((*(stmt as *mut pg_sys::DropdbStmt)).dbname),
            pg_sys::NodeTag::T_RenameStmt => {
                let r = stmt as *mut pg_sys::RenameStmt;
                ((*r).renameType == pg_sys::ObjectType::OBJECT_DATABASE)
                    .then(|| text((*r).subname))
                    .flatten()
            }
            pg_sys::NodeTag::T_AlterDatabaseStmt => {
                let a = stmt as *mut pg_sys::AlterDatabaseStmt;
                option((*a).options, "tablespace").and(text((*a).dbname))
            }
            pg_sys::NodeTag::T_CreatedbStmt => {
                option((*(stmt as *mut pg_sys::CreatedbStmt)).options, "template")
            }
            _ => None,
        }
    }
}

/// Whether the current role may run such a command on database `db`: a superuser or a
/// member of its owner (the command checks the rest itself).
fn may_stop(db: pg_sys::Oid) -> bool {
    Spi::get_one_with_args::<bool>(
        "select pg_catalog.pg_has_role(d.datdba, 'USAGE') from pg_catalog.pg_database d \
         where d.oid operator(pg_catalog.=) $1",
        &[db.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

fn stop_worker_of(name: &str) {
    if !PRELOADED.load(Ordering::Relaxed) {
        return;
    }
    let Ok(cname) = std::ffi::CString::new(name) else {
        return;
    };
    // SAFETY: a catalog lookup inside the command's transaction; InvalidOid when missing.
    let db = unsafe { pg_sys::get_database_oid(cname.as_ptr(), true) };
    if db == pg_sys::InvalidOid || !may_stop(db) {
        return;
    }
    let db = db.to_u32();
    let now = super::now_secs();
    let pid = {
        let mut s = SHARED.exclusive();
        let slot = s
            .paused
            .iter()
            .position(|p| p.db == db)
            .or_else(|| s.paused.iter().position(|p| p.db == 0 || p.until <= now))
            .unwrap_or(0);
        s.paused[slot] = Pause {
            db,
            until: now + MAX_PAUSE_SECS,
        };
        s.live(db).map(|w| w.pid)
    };
    PAUSED_HERE.set(Some(db));
    let Some(pid) = pid else {
        return;
    };
    // SAFETY: SIGTERM to one of this server's keys workers: it ends its loop and exits.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + super::settings::fetch_timeout() + Duration::from_secs(1);
    while alive(pid) && Instant::now() < deadline {
        // SAFETY: waiting on the backend's own latch; interrupts are checked after.
        unsafe {
            pg_sys::WaitLatch(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                10,
                pg_sys::PG_WAIT_EXTENSION,
            );
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
        pgrx::check_for_interrupts!();
    }
}

/// Whether the launcher must not start a keys worker for `db` now.
pub(super) fn paused(s: &super::Shared, db: u32, now: i64) -> bool {
    s.paused.iter().any(|p| p.db == db && p.until > now)
}

/// At the end of the transaction that paused a database: the launcher may serve it again
/// (woken, it probes the database unless it was dropped).
pub(super) fn at_transaction_end() {
    let Some(db) = PAUSED_HERE.take() else {
        return;
    };
    let launcher = {
        let mut s = SHARED.exclusive();
        for p in s.paused.iter_mut().filter(|p| p.db == db) {
            *p = Pause::default();
        }
        // (also when its worker was stopped before the launcher counted it as serving)
        s.want(db);
        s.launcher
    };
    set_latch(launcher);
}
