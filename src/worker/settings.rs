//! The worker's settings: `postgresql.conf` (or `ALTER SYSTEM`) only, read again on SIGHUP.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;
use std::time::Duration;

static FETCH_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(5000);
static FETCH_MIN_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(60);
static FETCH_MAX_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(3600);
static FETCH_CA_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static FETCH_ALLOW_INSECURE_LOOPBACK: GucSetting<bool> = GucSetting::<bool>::new(false);
static REFRESH_COOLDOWN: GucSetting<i32> = GucSetting::<i32>::new(30);
static REFRESH_WAIT: GucSetting<i32> = GucSetting::<i32>::new(2000);

pub fn define() {
    GucRegistry::define_int_guc(
        c"oidc.fetch_timeout",
        c"How long one refresh of an issuer's discovery document and key set may take in all.",
        c"",
        &FETCH_TIMEOUT,
        100,
        60_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"oidc.fetch_min_interval",
        c"The shortest time between two refreshes of an issuer's keys (also after a failure).",
        c"",
        &FETCH_MIN_INTERVAL,
        1,
        86_400,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"oidc.fetch_max_interval",
        c"The longest time between two refreshes of an issuer's keys (Cache-Control max-age is honoured within the bounds).",
        c"",
        &FETCH_MAX_INTERVAL,
        1,
        7 * 86_400,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_string_guc(
        c"oidc.fetch_ca_file",
        c"A PEM file of the CAs trusted for fetching keys; empty: the system's CA store.",
        c"",
        &FETCH_CA_FILE,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_bool_guc(
        c"oidc.fetch_allow_insecure_loopback",
        c"Also fetch plain http:// URLs of loopback addresses (local identity providers, tests).",
        c"",
        &FETCH_ALLOW_INSECURE_LOOPBACK,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"oidc.refresh_cooldown",
        c"How often, at most, a token with an unknown kid makes the worker refresh its issuer's keys early.",
        c"",
        &REFRESH_COOLDOWN,
        1,
        3600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"oidc.refresh_wait",
        c"How long a session meeting an unknown kid waits for the early refresh; 0 refuses at once.",
        c"",
        &REFRESH_WAIT,
        0,
        10_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
}

pub fn fetch_timeout() -> Duration {
    Duration::from_millis(FETCH_TIMEOUT.get().max(0) as u64)
}

pub fn intervals() -> (u64, u64) {
    (
        FETCH_MIN_INTERVAL.get().max(1) as u64,
        FETCH_MAX_INTERVAL.get().max(1) as u64,
    )
}

pub fn ca_file() -> Option<String> {
    FETCH_CA_FILE
        .get()
        .and_then(|c| c.into_string().ok())
        .filter(|s| !s.is_empty())
}

pub fn allow_insecure_loopback() -> bool {
    FETCH_ALLOW_INSECURE_LOOPBACK.get()
}

pub fn refresh_cooldown() -> Duration {
    Duration::from_secs(REFRESH_COOLDOWN.get().max(1) as u64)
}

pub fn refresh_wait() -> Duration {
    Duration::from_millis(REFRESH_WAIT.get().max(0) as u64)
}
