//! `oidc.stats()` and `oidc.stats_reset()` (see `crate::stats`): one row per counter and
//! labels, for a metrics exporter's custom query.

use crate::error::Error;
use crate::stats;
use oidc_authz_core::stats::{Counter, Key};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{Map, Value};
use std::collections::HashMap;

type Row = (String, JsonB, i64, String, Option<TimestampWithTimeZone>);

/// The name of database `oid`, or its number when it no longer exists.
fn database_name(oid: u32, names: &mut HashMap<u32, String>) -> String {
    names
        .entry(oid)
        .or_insert_with(|| {
            // SAFETY: a catalog lookup inside a transaction; NULL when there is no such
            // database, else a palloc'd C string read at once.
            unsafe {
                let name = pg_sys::get_database_name(pg_sys::Oid::from(oid));
                if name.is_null() {
                    oid.to_string()
                } else {
                    std::ffi::CStr::from_ptr(name)
                        .to_string_lossy()
                        .into_owned()
                }
            }
        })
        .clone()
}

/// A counter's labels; `database`: its database's name, for a per-database counter.
fn labels(key: &Key, database: Option<&str>) -> Value {
    let mut m = Map::new();
    if let Some(database) = database {
        m.insert("database".into(), Value::String(database.to_owned()));
    }
    if let Some(label) = key.counter.label_name() {
        let value = if key.label.is_empty() {
            Value::Null
        } else {
            Value::String(key.label.as_str().to_string())
        };
        m.insert(label.into(), value);
    }
    if let Some((name, value)) = key.counter.variant(key.variant) {
        m.insert(name.into(), Value::String(value.into()));
    }
    Value::Object(m)
}

/// Whether the current role may see the counters of other databases (their rule names):
/// a role with the privileges of `pg_read_all_stats` (`pg_monitor`, a superuser), as for
/// Postgres's own statistics.
fn sees_all_databases() -> bool {
    Spi::get_one::<bool>("select pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')")
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Every counter with its labels and value, in a stable order; `scope` is `cluster` when
/// the library is preloaded (shared memory, every backend), else `backend` (this one's).
/// Those of other databases only for [`sees_all_databases`]. `cache_hits`, `cache_misses`
/// and `stats_dropped` (counts that found no free counter) are always there, zero or not.
#[pg_extern(volatile, parallel_restricted)]
fn stats() -> TableIterator<
    'static,
    (
        name!(counter, String),
        name!(labels, JsonB),
        name!(value, i64),
        name!(scope, String),
        name!(since, Option<TimestampWithTimeZone>),
    ),
> {
    let (mut counters, dropped, cluster, since) = stats::snapshot();
    if !sees_all_databases() {
        // SAFETY: a plain read of the backend's database.
        let here = u32::from(unsafe { pg_sys::MyDatabaseId });
        counters.retain(|(k, _)| k.database == 0 || k.database == here);
    }
    for always in [Counter::CacheHits, Counter::CacheMisses] {
        if !counters.iter().any(|(k, _)| k.counter == always) {
            counters.push((Key::new(always, 0, "", 0), 0));
        }
    }
    let mut names = HashMap::new();
    let mut rows: Vec<(Key, String, Value, u64)> = counters
        .into_iter()
        .map(|(key, n)| {
            let db = if key.database == 0 {
                String::new()
            } else {
                database_name(key.database, &mut names)
            };
            let labels = labels(&key, (key.database != 0).then_some(db.as_str()));
            (key, db, labels, n)
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.0.counter, &a.1, a.0.label.as_str(), a.0.variant).cmp(&(
            b.0.counter,
            &b.1,
            b.0.label.as_str(),
            b.0.variant,
        ))
    });
    let scope = if cluster { "cluster" } else { "backend" };
    let since = TimestampWithTimeZone::try_from(since).ok();
    let value = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut out: Vec<Row> = rows
        .into_iter()
        .map(|(key, _, labels, n)| {
            (
                key.counter.name().to_string(),
                JsonB(labels),
                value(n),
                scope.to_string(),
                since,
            )
        })
        .collect();
    out.push((
        "stats_dropped".into(),
        JsonB(Value::Object(Map::new())),
        value(dropped),
        scope.to_string(),
        since,
    ));
    TableIterator::new(out)
}

/// Zeroes this database's counters (cluster-wide when preloaded, else this backend's), as
/// `pg_stat_reset()` does; `all_databases`: every counter, and `since` (superuser only).
#[pg_extern(volatile, parallel_unsafe)]
fn stats_reset(all_databases: default!(bool, false)) {
    // SAFETY: a plain read of the current role's attribute.
    if all_databases && !unsafe { pg_sys::superuser() } {
        Error::SuperuserOnly("reset the counters of every database").raise();
    }
    stats::reset(all_databases);
}
