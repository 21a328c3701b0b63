//! The extension's settings (GUCs) and their typed accessors.
//!
//! Safety-relevant settings are `PGC_SUSET`: a plain role can neither `SET` them nor put them
//! in `ALTER ROLE … SET` or `PGOPTIONS`. The caller's token settings are user-settable by
//! design (the token, not the setting, is what gets verified), and both carry an assign hook
//! that bumps [`TOKEN_GENERATION`], so the per-row claim functions notice a new token in O(1)
//! instead of comparing strings on every call.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bumped whenever `oidc.token`, `request.headers` or `oidc.header_fallback` is assigned,
/// including when a `set_config(…, true)` value is rolled back at transaction end.
pub static TOKEN_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Bumped whenever `request.method` or `request.path` is assigned (also when a local value
/// is rolled back), and at every transaction end: the rules' `context` is rebuilt when it
/// moves, so no statement sees another transaction's request.
pub static CONTEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Whether `request.method` and `request.path` are ours (hooked); if another module defined
/// one first, `context` is rebuilt for every call.
static CONTEXT_HOOKED: AtomicBool = AtomicBool::new(false);

/// `request.method`, `request.path`: PostgREST's request line, read into `context`.
static REQUEST_METHOD: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static REQUEST_PATH: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Whether `request.headers` is ours (hooked). If another module defined it first, the
/// fallback cannot be watched, and the token is resolved again on every call.
static HEADERS_HOOKED: AtomicBool = AtomicBool::new(false);

/// `oidc.token`: the caller's bearer token, set per transaction with
/// `set_config('oidc.token', $1, true)`. Empty means: look at `request.headers`.
static TOKEN: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// `request.headers`: PostgREST's per-request headers as JSON; its `authorization` bearer
/// token is used when `oidc.token` is empty.
static REQUEST_HEADERS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// `oidc.header_fallback` (superuser): read `request.headers` when `oidc.token` is empty. Default on.
static HEADER_FALLBACK: GucSetting<bool> = GucSetting::<bool>::new(true);

/// `oidc.max_token_bytes` (superuser): longer tokens are refused before any decoding. Default 16384.
static MAX_TOKEN_BYTES: GucSetting<i32> = GucSetting::<i32>::new(16 * 1024);

/// `oidc.audit` (superuser): which of each statement's distinct rule decisions are logged.
/// Default off. `on` (and the other boolean spellings), its values before levels existed,
/// still mean `all` and `off`.
static AUDIT: GucSetting<Audit> = GucSetting::<Audit>::new(Audit::Off);

#[derive(pgrx::PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Audit {
    #[name = c"off"]
    Off,
    /// Denials only (an erroring forbid denies).
    #[name = c"deny"]
    Deny,
    #[name = c"all"]
    All,
    #[name = c"on"]
    #[hidden = true]
    On,
    #[name = c"true"]
    #[hidden = true]
    True,
    #[name = c"yes"]
    #[hidden = true]
    Yes,
    #[name = c"1"]
    #[hidden = true]
    One,
    #[name = c"false"]
    #[hidden = true]
    False,
    #[name = c"no"]
    #[hidden = true]
    No,
    #[name = c"0"]
    #[hidden = true]
    Zero,
}

/// `oidc.residuals` (superuser): let the planner replace `oidc.allow()` pair calls by their
/// rules' residual (index-friendly SQL). Default on; off keeps every call per row (and keeps
/// rule literals out of `EXPLAIN`).
static RESIDUALS: GucSetting<bool> = GucSetting::<bool>::new(true);

/// `oidc.cache_size` (superuser): verified tokens kept per backend. Default 1000.
static CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1000);
static MAX_TOKEN_LIFETIME: GucSetting<i32> = GucSetting::<i32>::new(24 * 3600);

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn bump_token_generation(_new: *const c_char, _extra: *mut c_void) {
    TOKEN_GENERATION.fetch_add(1, Ordering::Relaxed);
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn bump_context_generation(_new: *const c_char, _extra: *mut c_void) {
    CONTEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// A transaction ended: the next one builds its own `context`.
pub fn at_transaction_end() {
    CONTEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn bump_on_bool(_new: bool, _extra: *mut c_void) {
    TOKEN_GENERATION.fetch_add(1, Ordering::Relaxed);
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn bump_on_int(_new: i32, _extra: *mut c_void) {
    TOKEN_GENERATION.fetch_add(1, Ordering::Relaxed);
}

pub fn init() {
    // SAFETY: called once from _PG_init; the hooks only bump an atomic counter and cannot fail.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"oidc.token",
            c"The caller's OIDC bearer token, verified before any claim is used.",
            c"Set it per transaction: select set_config('oidc.token', $1, true).",
            &TOKEN,
            GucContext::Userset,
            GucFlags::NO_SHOW_ALL | GucFlags::DISALLOW_IN_FILE,
            None,
            Some(bump_token_generation),
            None,
        );
        if !defined_elsewhere(c"request.headers") {
            GucRegistry::define_string_guc_with_hooks(
                c"request.headers",
                c"HTTP request headers as JSON (set by PostgREST); its bearer token is the fallback for oidc.token.",
                c"",
                &REQUEST_HEADERS,
                GucContext::Userset,
                GucFlags::NO_SHOW_ALL | GucFlags::DISALLOW_IN_FILE,
                None,
                Some(bump_token_generation),
                None,
            );
            HEADERS_HOOKED.store(true, Ordering::Relaxed);
        }
        if !defined_elsewhere(c"request.method") && !defined_elsewhere(c"request.path") {
            for (name, description, slot) in [
                (c"request.method", c"The HTTP method of the request (set by PostgREST); the rules' context.method.", &REQUEST_METHOD),
                (c"request.path", c"The path of the request (set by PostgREST); the rules' context.path.", &REQUEST_PATH),
            ] {
                GucRegistry::define_string_guc_with_hooks(
                    name,
                    description,
                    c"",
                    slot,
                    GucContext::Userset,
                    GucFlags::NO_SHOW_ALL | GucFlags::DISALLOW_IN_FILE,
                    None,
                    Some(bump_context_generation),
                    None,
                );
            }
            CONTEXT_HOOKED.store(true, Ordering::Relaxed);
        }
        GucRegistry::define_bool_guc_with_hooks(
            c"oidc.header_fallback",
            c"Use the bearer token of request.headers when oidc.token is empty.",
            c"",
            &HEADER_FALLBACK,
            GucContext::Suset,
            GucFlags::default(),
            None,
            Some(bump_on_bool),
            None,
        );
    }
    GucRegistry::define_enum_guc(
        c"oidc.audit",
        c"Log each statement's distinct rule decisions (who, what, decision, rule, rows) as JSON lines: off, deny (denials only) or all.",
        c"",
        &AUDIT,
        GucContext::Suset,
        GucFlags::default(),
    );
    // SAFETY: the hook only bumps an atomic counter: a lowered limit applies to the current
    // token (and to cached ones, whose size is checked before the cache is asked) at once.
    unsafe {
        GucRegistry::define_int_guc_with_hooks(
            c"oidc.max_token_bytes",
            c"Tokens longer than this many bytes are refused before decoding.",
            c"",
            &MAX_TOKEN_BYTES,
            1024,
            1024 * 1024,
            GucContext::Suset,
            GucFlags::UNIT_BYTE,
            None,
            Some(bump_on_int),
            None,
        );
    }
    GucRegistry::define_bool_guc(
        c"oidc.residuals",
        c"Let the planner replace oidc.allow() calls with name/value pairs by their rules' residual SQL.",
        c"",
        &RESIDUALS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"oidc.cache_size",
        c"How many verified tokens each backend keeps.",
        c"",
        &CACHE_SIZE,
        1,
        100_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"oidc.max_token_lifetime",
        c"How long a token of the issuers lives at most: a subject or session revocation is kept that long.",
        c"",
        &MAX_TOKEN_LIFETIME,
        60,
        366 * 24 * 3600,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    crate::worker::settings::define();
    // SAFETY: a static C string; refuses unknown `oidc.*` settings from here on.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"oidc".as_ptr()) };
}

/// True if `name` is a real setting of another module (not a placeholder).
fn defined_elsewhere(name: &CStr) -> bool {
    // SAFETY: a static C string; missing_ok = true returns 0 for an unknown name.
    let flags = unsafe { pg_sys::GetConfigOptionFlags(name.as_ptr(), true) };
    flags != 0 && flags & pg_sys::GUC_CUSTOM_PLACEHOLDER as i32 == 0
}

/// Whether a token change can be missed between calls: false only when every token source
/// carries our assign hook.
pub fn token_sources_watched() -> bool {
    HEADERS_HOOKED.load(Ordering::Relaxed) || !header_fallback()
}

/// Whether a change of `request.method`/`request.path` is always seen (both hooked).
pub fn context_watched() -> bool {
    CONTEXT_HOOKED.load(Ordering::Relaxed)
}

/// `request.method` and `request.path`, for the rules' `context`.
pub fn request_line() -> (Option<String>, Option<String>) {
    if CONTEXT_HOOKED.load(Ordering::Relaxed) {
        return (
            lossy_str(REQUEST_METHOD.as_ptr()),
            lossy_str(REQUEST_PATH.as_ptr()),
        );
    }
    (other(c"request.method"), other(c"request.path"))
}

/// A string setting's value: `None` when unset or empty, `Err` when its bytes are not UTF-8
/// (possible in a SQL_ASCII or LATIN1 database), which for a token means "present but
/// undecodable", never "no token".
pub type Raw = Option<Result<String, NotUtf8>>;

/// A setting's value is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf8;

/// The `oidc.token` value.
pub fn token() -> Raw {
    raw_str(TOKEN.as_ptr())
}

/// The raw `request.headers` value.
pub fn request_headers() -> Raw {
    if HEADERS_HOOKED.load(Ordering::Relaxed) {
        return raw_str(REQUEST_HEADERS.as_ptr());
    }
    other_raw(c"request.headers")
}

/// The value of a setting this extension does not define (PostgREST's `request.method`,
/// say), looked up by name; `None` when unset or empty; invalid UTF-8 replaced.
pub fn other(name: &CStr) -> Option<String> {
    other_raw(name).map(|v| v.unwrap_or_else(|NotUtf8| lossy(other_ptr(name))))
}

fn other_ptr(name: &CStr) -> *const c_char {
    // SAFETY: a NUL-terminated name; missing_ok; the value is copied before anything else runs.
    unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) }
}

fn other_raw(name: &CStr) -> Raw {
    decode(other_ptr(name))
}

/// Copies a string GUC's current value.
fn raw_str(slot: *mut *mut c_char) -> Raw {
    // SAFETY: the slot is a GUC variable, read in the backend's only thread; Postgres keeps
    // the string alive until the next assignment, and it is copied at once.
    decode(unsafe { *slot })
}

/// A string GUC's value, with invalid UTF-8 replaced (for `context`, which only reads it).
fn lossy_str(slot: *mut *mut c_char) -> Option<String> {
    // SAFETY: as in `raw_str`.
    let ptr = unsafe { *slot };
    decode(ptr).map(|v| v.unwrap_or_else(|NotUtf8| lossy(ptr)))
}

fn decode(ptr: *const c_char) -> Raw {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated, as every GUC string, owned by the GUC machinery.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    if bytes.is_empty() {
        return None;
    }
    Some(
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| NotUtf8),
    )
}

fn lossy(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated (checked by the caller's `decode`).
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// Whether decisions are audited at all (then every decision is made per row).
pub fn audit() -> bool {
    audit_level() != Audit::Off
}

/// The audit level, its boolean spellings folded into `off` and `all`.
pub fn audit_level() -> Audit {
    match AUDIT.get() {
        Audit::Off | Audit::False | Audit::No | Audit::Zero => Audit::Off,
        Audit::Deny => Audit::Deny,
        Audit::All | Audit::On | Audit::True | Audit::Yes | Audit::One => Audit::All,
    }
}

pub fn residuals() -> bool {
    RESIDUALS.get()
}

pub fn header_fallback() -> bool {
    HEADER_FALLBACK.get()
}

pub fn max_token_bytes() -> usize {
    usize::try_from(MAX_TOKEN_BYTES.get()).unwrap_or(16 * 1024)
}

pub fn cache_size() -> usize {
    usize::try_from(CACHE_SIZE.get()).unwrap_or(1000).max(1)
}

/// `oidc.max_token_lifetime`, in seconds.
pub fn max_token_lifetime() -> i32 {
    MAX_TOKEN_LIFETIME.get()
}
