//! Tokens never reach the server log through this backend: an `emit_log_hook` blots out
//! anything shaped like a compact JWS or JWE ([`oidc_authz_core::redact`]) in every log
//! line's message, detail, hint, context and internal query, and in the statement Postgres
//! prints beside it (`debug_query_string`).
//!
//! Complete only when the library is in `shared_preload_libraries`: otherwise a backend
//! installs the hook when it first loads the library, and what it logged before that (the
//! first statement itself, with `log_statement = all`) is not redacted.
//!
//! The hook runs inside error reporting, where raising an error would recurse: it never
//! raises, and a panic in it is caught and ignored (the line is then logged unredacted
//! rather than not at all).

use oidc_authz_core::redact::{redact_bytes, OutOfMemory, REDACTED};
use pgrx::pg_sys;
use std::cell::Cell;
use std::ffi::{c_char, CStr};

static mut PREVIOUS: pg_sys::emit_log_hook_type = None;

thread_local! {
    /// The redacted copy of the statement that `debug_query_string` points to, in
    /// TopMemoryContext; freed when the next one replaces it (by then `debug_query_string`
    /// points elsewhere: a redacted statement holds no token, so it is never replaced).
    static STATEMENT_COPY: Cell<*mut c_char> = const { Cell::new(std::ptr::null_mut()) };
}

/// Installs the hook (from `_PG_init`, once per process).
pub fn init() {
    // SAFETY: _PG_init runs once per process, before any log line of ours; the previous
    // hook is kept and called first.
    unsafe {
        PREVIOUS = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(redact_log_line);
    }
}

unsafe extern "C-unwind" fn redact_log_line(edata: *mut pg_sys::ErrorData) {
    // SAFETY: PREVIOUS is written once in `init`, before the hook is installed.
    if let Some(previous) = unsafe { PREVIOUS } {
        // SAFETY: the hook chain's contract: the same edata.
        unsafe { previous(edata) };
    }
    if edata.is_null() {
        return;
    }
    // Nothing here may raise or unwind into Postgres' error reporting.
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: edata is the error being reported; its strings live in ErrorContext,
        // where the replacements are allocated too.
        unsafe { redact_fields(edata) };
    });
}

unsafe fn redact_fields(edata: *mut pg_sys::ErrorData) {
    // SAFETY: per the caller.
    unsafe {
        // elog.c pallocs these strings; another hook before ours may have put in strings
        // of its own, which are then left alone (not freed).
        let previous = PREVIOUS;
        let ours = previous.is_none();
        let e = &mut *edata;
        for field in [
            &mut e.message,
            &mut e.detail,
            &mut e.detail_log,
            &mut e.hint,
            &mut e.context,
            &mut e.internalquery,
        ] {
            if let Some(copy) = redacted(*field, pg_sys::ErrorContext) {
                let old = std::mem::replace(field, copy);
                if ours {
                    // The replaced text would otherwise stay in ErrorContext until the
                    // next ERROR: a session logging tokens would grow without bound.
                    pg_sys::pfree(old.cast());
                }
            }
        }
        let statement = pg_sys::debug_query_string;
        if let Some(copy) = redacted(statement, pg_sys::TopMemoryContext) {
            let old = STATEMENT_COPY.replace(copy);
            pg_sys::debug_query_string = copy;
            if !old.is_null() {
                pg_sys::pfree(old.cast());
            }
        }
    }
}

/// A redacted copy of `text` in `context`, when it holds a token; the bytes are scanned as
/// they are (any server encoding is a superset of ASCII, and tokens are ASCII).
unsafe fn redacted(text: *const c_char, context: pg_sys::MemoryContext) -> Option<*mut c_char> {
    if text.is_null() || context.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string of the error report or the statement.
    let original = unsafe { CStr::from_ptr(text) }.to_bytes();
    let clean = match redact_bytes(original)? {
        Ok(clean) => clean,
        // Too large to copy: the whole text goes, rather than a token with it.
        Err(OutOfMemory) => REDACTED.as_bytes().to_vec(),
    };
    // SAFETY: a copy into a live memory context with its terminating NUL. Raising an error
    // here would recurse into error reporting: the allocation returns NULL instead, and the
    // text is then replaced whole.
    unsafe {
        let flags = (pg_sys::MCXT_ALLOC_HUGE | pg_sys::MCXT_ALLOC_NO_OOM) as i32;
        let mut copy =
            pg_sys::MemoryContextAllocExtended(context, clean.len() + 1, flags) as *mut u8;
        let mut bytes = &clean[..];
        if copy.is_null() {
            bytes = REDACTED.as_bytes();
            copy = pg_sys::MemoryContextAllocExtended(context, bytes.len() + 1, flags) as *mut u8;
            if copy.is_null() {
                return None;
            }
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
        *copy.add(bytes.len()) = 0;
        Some(copy.cast())
    }
}
