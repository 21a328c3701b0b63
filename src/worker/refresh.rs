//! One round of a keys worker: which discovery issuers are due, fetching them (outside any
//! transaction), writing what changed, purging revocations that can no longer match.

use super::http::Client;
use super::{issuer_hash, settings};
use oidc_authz_core::discovery::{self, FetchError};
use oidc_authz_core::stats::Refresh;
use oidc_authz_core::token::alg::Alg;
use pgrx::bgworkers::BackgroundWorker;
use pgrx::prelude::*;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a keys worker remembers between rounds.
#[derive(Default)]
pub struct State {
    /// When each issuer was last refreshed early (the cooldown).
    early: HashMap<String, Instant>,
    last_purge: Option<Instant>,
}

/// The longest a worker sleeps: a new issuer row or a request wakes it sooner.
const MAX_SLEEP: Duration = Duration::from_secs(60);
const PURGE_EVERY: Duration = Duration::from_secs(60);

pub fn extension_present() -> bool {
    // SAFETY: a catalog lookup by a static name; missing_ok.
    unsafe { pg_sys::get_extension_oid(c"pg_oidc_authz".as_ptr(), true) != pg_sys::InvalidOid }
}

struct Due {
    issuer: String,
    algorithms: Vec<Alg>,
    /// Seconds until its next refresh (negative or `None`: due now).
    next_in: Option<f64>,
}

struct Tables {
    issuers: String,
    status: String,
    revocations: String,
}

fn tables() -> Option<Tables> {
    if !extension_present() {
        return None;
    }
    // Found by identity, never by name: this runs as a superuser.
    let t = |name| crate::trust::extension_table(name);
    Some(Tables {
        issuers: t("issuers")?,
        status: t("_fetch_status")?,
        revocations: t("revocations")?,
    })
}

fn read(tables: &Tables) -> Vec<Due> {
    let query = format!(
        "select i.issuer, i.algorithms, \
         pg_catalog.date_part('epoch', s.next_refresh operator(pg_catalog.-) pg_catalog.now()) \
         from {} i left join {} s on s.issuer operator(pg_catalog.=) i.issuer \
         where i.discovery and i.enabled",
        tables.issuers, tables.status
    );
    Spi::connect(|c| {
        let mut out = Vec::new();
        for row in c.select(&query, None, &[])? {
            let Some(issuer) = row.get::<String>(1)? else {
                continue;
            };
            let algorithms = match row.get::<Vec<String>>(2)? {
                None => Alg::ASYMMETRIC.to_vec(),
                Some(names) => names.iter().filter_map(|n| n.parse().ok()).collect(),
            };
            out.push(Due {
                issuer,
                algorithms,
                next_in: row.get::<f64>(3)?,
            });
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .unwrap_or_default()
}

struct Fetched {
    jwks: Value,
    jwks_uri: String,
    refresh_in: u64,
}

fn fetch(client: &Client, issuer: &str, algorithms: &[Alg]) -> Result<Fetched, FetchError> {
    let deadline = Instant::now() + settings::fetch_timeout();
    let (min, max) = settings::intervals();
    let (doc, _) = client.get(&discovery::discovery_url(issuer), deadline)?;
    let jwks_uri = discovery::jwks_uri(&doc, issuer, client.insecure_loopback)?;
    let (body, cache_control) = client.get(&jwks_uri, deadline)?;
    let (jwks, _kids) = discovery::key_set(&body, algorithms)?;
    Ok(Fetched {
        jwks,
        jwks_uri,
        refresh_in: discovery::refresh_after(cache_control.as_deref(), min, max),
    })
}

/// Writes one outcome: the key set when it changed (which every session then reloads),
/// and the status row.
fn write(tables: &Tables, issuer: &str, outcome: &Result<Fetched, FetchError>) {
    let (min, _) = settings::intervals();
    let result = Spi::connect_mut(|c| {
        match outcome {
            Ok(f) => {
                let changed = c
                    .update(
                        &format!(
                            "update {} set jwks = $2 where issuer operator(pg_catalog.=) $1 \
                             and discovery and jwks is distinct from $2 returning 1",
                            tables.issuers
                        ),
                        None,
                        &[issuer.into(), pgrx::JsonB(f.jwks.clone()).into()],
                    )?
                    .len();
                crate::stats::refreshed(if changed > 0 {
                    Refresh::Changed
                } else {
                    Refresh::Unchanged
                });
                c.update(
                    &format!(
                        "insert into {} as s (issuer, last_attempt, last_success, last_error, next_refresh, jwks_uri) \
                         values ($1, pg_catalog.now(), pg_catalog.now(), null, \
                         pg_catalog.now() operator(pg_catalog.+) pg_catalog.make_interval(secs => $2), $3) \
                         on conflict (issuer) do update set last_attempt = excluded.last_attempt, \
                         last_success = excluded.last_success, last_error = null, \
                         next_refresh = excluded.next_refresh, jwks_uri = excluded.jwks_uri",
                        tables.status
                    ),
                    None,
                    &[issuer.into(), (f.refresh_in as f64).into(), f.jwks_uri.as_str().into()],
                )?;
            }
            Err(e) => {
                crate::stats::refreshed(Refresh::Failed);
                c.update(
                    &format!(
                        "insert into {} as s (issuer, last_attempt, last_error, next_refresh) \
                         values ($1, pg_catalog.now(), $2, \
                         pg_catalog.now() operator(pg_catalog.+) pg_catalog.make_interval(secs => $3)) \
                         on conflict (issuer) do update set last_attempt = excluded.last_attempt, \
                         last_error = excluded.last_error, next_refresh = excluded.next_refresh",
                        tables.status
                    ),
                    None,
                    &[issuer.into(), e.0.as_str().into(), (min as f64).into()],
                )?;
            }
        }
        Ok::<_, pgrx::spi::SpiError>(())
    });
    if let Err(e) = result {
        pgrx::warning!("pg_oidc_authz: could not record the refresh of {issuer}: {e}");
    }
    if let Err(e) = outcome {
        pgrx::log!("pg_oidc_authz: refreshing the keys of {issuer} failed: {e}");
    }
}

fn purge(tables: &Tables) {
    let _ = Spi::connect_mut(|c| {
        c.update(
            &format!(
                "delete from {} where expires_at operator(pg_catalog.<) \
                 (pg_catalog.now() operator(pg_catalog.-) interval '5 minutes')",
                tables.revocations
            ),
            None,
            &[],
        )
        .map(drop)
    });
}

/// Runs `f` in a transaction of its own; a Postgres error in it (the database made
/// read-only by its owner, a statement timeout, a row refused by the validating trigger)
/// aborts that transaction and is logged, and the worker goes on.
fn guarded<R>(
    what: &str,
    f: impl FnOnce() -> R + std::panic::UnwindSafe + std::panic::RefUnwindSafe,
) -> Option<R> {
    use pgrx::pg_sys::panic::CaughtError;
    PgTryBuilder::new(|| Some(BackgroundWorker::transaction(f)))
        .catch_others(|e| {
            // SAFETY: the transaction the error left behind is aborted, as a background
            // worker's error recovery does.
            unsafe { pg_sys::AbortOutOfAnyTransaction() };
            let why = match &e {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
                    r.message().to_string()
                }
                CaughtError::RustPanic { ereport, .. } => ereport.message().to_string(),
            };
            pgrx::warning!("pg_oidc_authz: {what} failed: {why}");
            None
        })
        .execute()
}

/// The session settings of a keys worker, whatever its database's defaults say (its owner
/// may set them): writable transactions, no statement timeout, a bounded lock wait, the
/// search path of nothing but pg_catalog.
pub fn session_setup() {
    let _ = Spi::run(
        "select pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false), \
         pg_catalog.set_config('default_transaction_read_only', 'off', false), \
         pg_catalog.set_config('default_transaction_isolation', 'read committed', false), \
         pg_catalog.set_config('statement_timeout', '0', false), \
         pg_catalog.set_config('lock_timeout', '5s', false), \
         pg_catalog.set_config('idle_in_transaction_session_timeout', '0', false), \
         pg_catalog.set_config('exit_on_error', 'off', false), \
         pg_catalog.set_config('role', 'none', false)",
    );
}

/// One round; how long to sleep after it, or `None` when the extension is gone.
pub fn round(state: &mut State, early: &[u64]) -> Option<Duration> {
    let found = guarded("reading the discovery issuers", || {
        let tables = tables()?;
        let due = read(&tables);
        Some((tables, due))
    });
    let (tables, due) = match found {
        Some(found) => found?,
        None => return Some(Duration::from_secs(10)), // an error: try again
    };
    let cooldown = settings::refresh_cooldown();
    let mut client: Option<Result<Client, FetchError>> = None;
    let mut sleep = MAX_SLEEP;
    for d in &due {
        let asked = early.contains(&issuer_hash(&d.issuer))
            && state
                .early
                .get(&d.issuer)
                .is_none_or(|t| t.elapsed() >= cooldown);
        let is_due = d.next_in.is_none_or(|s| s <= 0.0);
        if !asked && !is_due {
            let left = Duration::from_secs_f64(d.next_in.unwrap_or(0.0).max(1.0));
            sleep = sleep.min(left);
            continue;
        }
        if asked {
            state.early.insert(d.issuer.clone(), Instant::now());
        }
        // No transaction, no lock, while on the network.
        let c = client.get_or_insert_with(|| {
            Client::new(
                settings::ca_file().as_deref(),
                settings::allow_insecure_loopback(),
            )
        });
        let outcome = match c {
            Ok(c) => fetch(c, &d.issuer, &d.algorithms),
            Err(e) => Err(e.clone()),
        };
        let next = match &outcome {
            Ok(f) => f.refresh_in,
            Err(_) => settings::intervals().0,
        };
        sleep = sleep.min(Duration::from_secs(next.max(1)));
        guarded("recording a refresh", || {
            write(&tables, &d.issuer, &outcome)
        });
    }
    if state.last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
        state.last_purge = Some(Instant::now());
        guarded("purging revocations", || purge(&tables));
    }
    Some(sleep.max(Duration::from_secs(1)))
}
