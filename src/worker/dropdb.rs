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
//! So that nobody can keep a database's keys from being refreshed with it, the hook acts only
//! when the command is likely to succeed and its transaction is the command alone:
//! - a statement sent by the client (not from a function), outside a transaction block (the
//!   pause then lasts one command, and a caught error cannot leave it behind);
//! - run by a role that could run the command on that database: a superuser, or a member of
//!   the database's owner;
//! - whose cheap checks pass: not the current database; a new name (rename, copy) not taken;
//!   the tablespace exists.
//!
//! Otherwise the command runs (and fails) as it would, and the worker keeps running. A pause
//! is never extended: a restarted worker first refreshes what is due. A worker the launcher
//! started just before the pause, connected but not yet serving, finds the pause when it
//! registers and exits (the command waits up to 5 s for the database's other sessions).

use super::{alive, set_latch, PRELOADED, SHARED};
use crate::residual::nodes::list_nodes;
use pgrx::prelude::*;
use std::cell::Cell;
use std::ffi::CStr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A database whose keys worker must not be started, paused by backend `pid` (until `until`,
/// in seconds, at the latest: a backend that paused it and died without ending its
/// transaction).
#[derive(Copy, Clone, Default)]
pub(super) struct Pause {
    pub db: u32,
    pub pid: i32,
    pub until: i64,
}

/// Longest pause, should the pausing backend never end its transaction.
const MAX_PAUSE_SECS: i64 = 120;

thread_local! {
    /// Whether this backend holds a pause, to end at its transaction's end.
    static PAUSED_HERE: Cell<bool> = const { Cell::new(false) };
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
    unsafe { before_utility((*pstmt).utilityStmt, context) };
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
unsafe extern "C-unwind" fn before_utility(
    stmt: *mut pg_sys::Node,
    context: pg_sys::ProcessUtilityContext::Type,
) {
    if !PRELOADED.load(Ordering::Relaxed)
        || context != pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL
        // SAFETY: a plain read of the transaction state.
        || unsafe { pg_sys::IsTransactionBlock() }
    {
        return;
    }
    // SAFETY: per the caller: the statement's parse node, or null.
    let Some(command) = (unsafe { exclusive_database(stmt) }) else {
        return;
    };
    if let Some(db) = may_run(&command) {
        stop_worker_of(db);
    }
}

/// A command that needs database `db` to itself (see the module docs).
struct Command {
    db: String,
    check: Check,
}

/// What else the command needs, checked before its worker is stopped.
enum Check {
    /// `DROP DATABASE`: not the current database.
    Drop,
    /// `ALTER DATABASE … RENAME TO new`: not the current database, `new` not taken, CREATEDB.
    Rename(Option<String>),
    /// `ALTER DATABASE … SET TABLESPACE ts`: not the current database, `ts` exists and the
    /// role may create in it.
    Tablespace(String),
    /// `CREATE DATABASE new … TEMPLATE db`: `new` not taken, CREATEDB.
    Copy(Option<String>),
}

/// The command's database, when the current role may run the command on it (a superuser, or
/// a member of the database's owner) and its cheap checks pass (the command checks the rest
/// itself).
fn may_run(command: &Command) -> Option<pg_sys::Oid> {
    let (not_current, new_name, createdb, tablespace) = match &command.check {
        Check::Drop => (true, None, false, None),
        Check::Rename(new) => (true, Some(new.as_deref()?), true, None),
        Check::Tablespace(ts) => (true, None, false, Some(ts.as_str())),
        Check::Copy(new) => (false, Some(new.as_deref()?), true, None),
    };
    Spi::get_one_with_args::<pg_sys::Oid>(
        "select d.oid from pg_catalog.pg_database d \
          where d.datname operator(pg_catalog.=) $1 \
            and pg_catalog.pg_has_role(d.datdba, 'USAGE') \
            and (not $2 or d.datname operator(pg_catalog.<>) pg_catalog.current_database()) \
            and ($3 is null or not exists (select from pg_catalog.pg_database n \
                  where n.datname operator(pg_catalog.=) $3)) \
            and (not $4 or (select r.rolcreatedb or r.rolsuper from pg_catalog.pg_roles r \
                  where r.rolname operator(pg_catalog.=) current_user)) \
            and ($5 is null or exists (select from pg_catalog.pg_tablespace t \
                  where t.spcname operator(pg_catalog.=) $5 \
                    and pg_catalog.has_tablespace_privilege(t.oid, 'CREATE')))",
        &[
            command.db.as_str().into(),
            not_current.into(),
            new_name.into(),
            createdb.into(),
            tablespace.into(),
        ],
    )
    .ok()
    .flatten()
}

/// The database a command needs to itself, if it is one of those (see the module docs).
///
/// # Safety
/// `stmt` is null or a parse node.
unsafe fn exclusive_database(stmt: *mut pg_sys::Node) -> Option<Command> {
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
        let command = |db: Option<String>, check: Check| db.map(|db| Command { db, check });
        match (*stmt).type_ {
            pg_sys::NodeTag::T_DropdbStmt => command(
                text((*(stmt as *mut pg_sys::DropdbStmt)).dbname),
                Check::Drop,
            ),
            pg_sys::NodeTag::T_RenameStmt => {
                let r = stmt as *mut pg_sys::RenameStmt;
                if (*r).renameType != pg_sys::ObjectType::OBJECT_DATABASE {
                    return None;
                }
                command(text((*r).subname), Check::Rename(text((*r).newname)))
            }
            pg_sys::NodeTag::T_AlterDatabaseStmt => {
                let a = stmt as *mut pg_sys::AlterDatabaseStmt;
                let ts = option((*a).options, "tablespace")?;
                command(text((*a).dbname), Check::Tablespace(ts))
            }
            pg_sys::NodeTag::T_CreatedbStmt => {
                let c = stmt as *mut pg_sys::CreatedbStmt;
                command(
                    option((*c).options, "template"),
                    Check::Copy(text((*c).dbname)),
                )
            }
            _ => None,
        }
    }
}

/// Pauses database `db` for this transaction and stops its keys worker, waiting for it to
/// exit. Nothing when every pause slot is held by others (the command then runs as it would).
fn stop_worker_of(db: pg_sys::Oid) {
    let db = db.to_u32();
    let now = super::now_secs();
    // SAFETY: a plain read of the process id.
    let me = unsafe { pg_sys::MyProcPid };
    let pid = {
        let mut s = SHARED.exclusive();
        let mine = s.paused.iter().position(|p| p.db == db && p.pid == me);
        // An empty slot first; else one whose pause expired (its backend may still run and
        // look for it at its transaction's end: the launcher then finds the database by its
        // own deferral or rescan).
        let free = || {
            let empty = s.paused.iter().position(|p| p.db == 0);
            empty.or_else(|| s.paused.iter().position(|p| p.until <= now))
        };
        let Some(slot) = mine.or_else(free) else {
            return;
        };
        if mine.is_none() {
            // Never longer than a pause of this database that another backend holds.
            let until = s
                .paused
                .iter()
                .filter(|p| p.db == db && p.until > now)
                .map(|p| p.until)
                .fold(now + MAX_PAUSE_SECS, i64::min);
            s.paused[slot] = Pause { db, pid: me, until };
        }
        PAUSED_HERE.set(true);
        let pid = s.live(db).map(|w| w.pid);
        if let Some(pid) = pid {
            // Under the lock: the worker's exit clears its slot with it, so `pid` is still
            // that worker's.
            // SAFETY: SIGTERM to one of this server's keys workers: it ends its loop and exits.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        pid
    };
    let Some(pid) = pid else {
        return;
    };
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
    if !PAUSED_HERE.take() {
        return;
    }
    // SAFETY: a plain read of the process id.
    let me = unsafe { pg_sys::MyProcPid };
    let launcher = {
        let mut s = SHARED.exclusive();
        let mut ended = Vec::new();
        for p in s.paused.iter_mut().filter(|p| p.pid == me && p.db != 0) {
            ended.push(p.db);
            *p = Pause::default();
        }
        // (also when its worker was stopped before the launcher counted it as serving)
        for db in ended {
            s.want(db);
        }
        s.launcher
    };
    set_latch(launcher);
}
