//! Decision audit (opt-in, `oidc.audit`, superuser-only): for each statement, every
//! distinct decision — who (iss, sub), what (action, resource type), the decision, the rule
//! that decided it, and on how many rows — as one JSON line in the server log. Never one
//! line per row, never the token. Writes no table, so it works on a hot standby.
//!
//! Decisions are counted per backend under a small key (no strings per row) and written
//! when the statement changes or the transaction ends. A parallel worker writes its own
//! lines for the rows it decided.
//!
//! Where counting the shadow rules would change a decision, a `shadow` line (prefix
//! `pg_oidc_authz shadow:`) says so whenever the audit is not off, whatever its level: the
//! enforced decision and rule, the decision the shadow rules would make (`would`), the
//! shadow rules that would make it, and on how many rows.

use crate::cache::Entry;
use oidc_authz_core::rules::{RuleSet, ShadowDiff, Verdict};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use serde_json::json;
use std::cell::RefCell;
use std::collections::HashMap;

/// Identity of a decision within a statement: the principal (token generation and cache
/// entry), the matching rule list (action and type), and the verdict.
#[derive(Hash, PartialEq, Eq, Clone)]
struct Key {
    token_generation: u64,
    principal: usize,
    matching: u64,
    allowed: bool,
    deciding: Option<usize>,
    /// For a shadow line: the decision the shadow rules would make, and those rules.
    shadow: Option<(bool, Vec<usize>)>,
}

/// What a line says, captured at the first occurrence of its key.
struct Line {
    issuer: Option<String>,
    sub: Option<String>,
    action: String,
    resource_type: String,
    allowed: bool,
    rule: Option<String>,
    /// For a shadow line: `would` and the shadow rules' names.
    shadow: Option<(bool, Vec<String>)>,
    rows: u64,
}

struct Pending {
    statement: pg_sys::TimestampTz,
    lines: HashMap<Key, Line>,
}

thread_local! {
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// One decision, as `oidc.allow()` made it.
pub struct Decided<'a> {
    pub statement: pg_sys::TimestampTz,
    pub token_generation: u64,
    pub entry: Option<&'a Entry>,
    /// Id of the statement's rule list for (action, resource type).
    pub matching: u64,
    pub rules: &'a RuleSet,
    pub action: &'a str,
    pub resource_type: &'a str,
    pub verdict: Verdict,
    /// Whether the decision itself is logged (the audit's level).
    pub logged: bool,
    /// What the shadow rules would change, if anything.
    pub shadow: Option<&'a ShadowDiff>,
}

/// Counts one decision of the current statement.
pub fn record(d: Decided) {
    let Decided {
        statement,
        token_generation,
        entry,
        matching,
        rules,
        action,
        resource_type,
        verdict,
        logged,
        shadow,
    } = d;
    let previous = PENDING.with_borrow_mut(|p| match p {
        Some(pending) if pending.statement == statement => None,
        _ => p.replace(Pending {
            statement,
            lines: HashMap::new(),
        }),
    });
    if let Some(previous) = previous {
        write(previous);
    }
    let key = Key {
        token_generation,
        principal: entry.map_or(0, |e| e as *const Entry as usize),
        matching,
        allowed: verdict.allowed,
        deciding: verdict.deciding,
        shadow: None,
    };
    let shadow_key = shadow.map(|d| Key {
        shadow: Some((d.allowed, d.rules.clone())),
        ..key.clone()
    });
    PENDING.with_borrow_mut(|p| {
        let Some(pending) = p.as_mut() else { return };
        let line = |shadow: Option<&ShadowDiff>| Line {
            issuer: entry.map(|e| e.verified.issuer.clone()),
            sub: entry.and_then(|e| e.verified.sub.clone()),
            action: action.to_string(),
            resource_type: resource_type.to_string(),
            allowed: verdict.allowed,
            rule: verdict.deciding.map(|i| rules.rule(i).name.clone()),
            shadow: shadow.map(|d| {
                let names = d.rules.iter().map(|&i| rules.rule(i).name.clone());
                (d.allowed, names.collect())
            }),
            rows: 0,
        };
        if logged {
            pending.lines.entry(key).or_insert_with(|| line(None)).rows += 1;
        }
        if let Some(k) = shadow_key {
            pending.lines.entry(k).or_insert_with(|| line(shadow)).rows += 1;
        }
    });
}

fn write(pending: Pending) {
    let at = oidc_authz_core::rules::value::Val::Timestamp(crate::policy::timestamptz_ns(
        pending.statement,
    ));
    let mut lines: Vec<Line> = pending.lines.into_values().collect();
    lines.sort_by(|a, b| {
        (&a.action, &a.resource_type, &a.sub).cmp(&(&b.action, &b.resource_type, &b.sub))
    });
    let decision = |allowed| if allowed { "allow" } else { "deny" };
    for line in lines {
        let mut text = json!({
            "statement_start": at.to_string(),
            "iss": line.issuer,
            "sub": line.sub,
            "action": line.action,
            "resource_type": line.resource_type,
            "decision": decision(line.allowed),
            "rule": line.rule,
            "rows": line.rows,
        });
        let kind = match line.shadow {
            None => "audit",
            Some((would, rules)) => {
                text["would"] = json!(decision(would));
                text["shadow_rules"] = json!(rules);
                "shadow"
            }
        };
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
            format!("pg_oidc_authz {kind}: {text}"),
            "pg_oidc_authz",
        )
        .report(PgLogLevel::LOG);
    }
}

/// Writes what the transaction's last statement decided (see `lib.rs`'s transaction hook).
pub fn at_transaction_end() {
    if let Some(pending) = PENDING.with_borrow_mut(Option::take) {
        write(pending);
    }
}
