//! `oidc.rule_tests`: expected decisions beside the rules (`oidc_authz_core::rules::cases`),
//! `oidc.test_rules()` to run them, and the gate: a transaction that changed `oidc.rules`
//! or `oidc.rule_tests` is refused at commit when a gated test fails, so that nothing of it
//! is stored (the states it passes through meanwhile are its own).

use crate::error::{Error, OrRaise};
use crate::trust;
use oidc_authz_core::rules::cases::{Outcome, RuleTest};
use oidc_authz_core::rules::RuleSet;
use oidc_authz_core::TrustConfig;
use pgrx::prelude::*;
use pgrx::JsonB;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by a change of `oidc.rules` or `oidc.rule_tests` in this transaction.
static GATE_AT_COMMIT: AtomicBool = AtomicBool::new(false);
/// Set by a change of `oidc.rules`, and of `oidc.issuers`, in this transaction: the gate
/// then runs even when the change left that table empty (see [`before_commit`]).
static RULES_CHANGED: AtomicBool = AtomicBool::new(false);
static ISSUERS_CHANGED: AtomicBool = AtomicBool::new(false);

/// Validates one row (`oidc._rule_test_json(NEW)`); raises 22023 naming the problem.
#[pg_extern(immutable, parallel_safe, name = "_check_rule_test_row")]
fn check_rule_test_row(row: JsonB) {
    RuleTest::from_row(&row.0)
        .map(drop)
        .map_err(Error::RuleTest)
        .or_raise()
}

/// Asks for the gate when this transaction commits (the tables' triggers); `changed` names
/// the table the caller's trigger is on (`rules`, `rule_tests`, `issuers`).
#[pg_extern(volatile, parallel_unsafe, name = "_gate_at_commit")]
fn gate_at_commit(changed: default!(Option<&str>, "NULL")) {
    GATE_AT_COMMIT.store(true, Ordering::Relaxed);
    match changed {
        Some("rules") => RULES_CHANGED.store(true, Ordering::Relaxed),
        Some("issuers") => ISSUERS_CHANGED.store(true, Ordering::Relaxed),
        _ => {}
    }
    trust::lock_at_commit(); // serialises the gates of concurrent writers
}

/// The time a test without `at` is decided at: the transaction's start, as `now()`.
fn now_ns() -> i128 {
    // SAFETY: a plain read of the transaction state.
    crate::policy::timestamptz_ns(unsafe { pg_sys::GetCurrentTransactionStartTimestamp() })
}

/// One test run: its name, whether it is gated, and the test with its outcome (or why its
/// row cannot be read).
struct Ran {
    name: String,
    gate: bool,
    result: Result<(RuleTest, Outcome), String>,
}

/// Every test with its outcome, decided by the rules and issuers this transaction sees
/// (read afresh, not from the session's cache). A row that cannot be read (written around
/// the validating trigger) is a failing test of that name.
fn run_all() -> Vec<Ran> {
    run_with(
        &trust::read_rule_rows(),
        &trust::read_issuer_rows(),
        Run::All,
    )
}

/// Which tests [`run_with`] runs.
#[derive(Copy, Clone, PartialEq)]
enum Run {
    All,
    /// Those whose outcome no issuer can change ([`RuleTest::needs_issuer`]).
    IssuerFree,
}

/// [`run_all`] with the rules' and the issuers' rows already read.
fn run_with(
    rule_rows: &[serde_json::Value],
    issuer_rows: &[serde_json::Value],
    which: Run,
) -> Vec<Ran> {
    let rows = trust::read_rule_tests();
    if rows.is_empty() {
        return Vec::new();
    }
    let rules: RuleSet = trust::compile_rules(rule_rows);
    let issuers: TrustConfig = trust::compile_issuers(issuer_rows);
    let now = now_ns();
    rows.iter()
        .filter_map(|row| {
            let name = row
                .get("name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?")
                .to_string();
            Some(match RuleTest::from_row(row) {
                Ok(test) if which == Run::IssuerFree && test.needs_issuer() => return None,
                Ok(test) => {
                    let outcome = test.run(&rules, &issuers, now);
                    Ran {
                        name,
                        gate: test.gate,
                        result: Ok((test, outcome)),
                    }
                }
                Err(e) => Ran {
                    name,
                    gate: true,
                    result: Err(e.to_string()),
                },
            })
        })
        .collect()
}

/// `oidc.test_rules()`: one row per test (admin only). (pgrx reads the column names from
/// this signature, so it cannot be a type alias.)
#[allow(clippy::type_complexity)]
#[pg_extern(stable, parallel_safe, name = "test_rules")]
fn test_rules() -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(passed, bool),
        name!(expected, String),
        name!(got, Option<String>),
        name!(deciding_rules, Vec<String>),
        name!(gate, bool),
        name!(explanation, JsonB),
    ),
> {
    TableIterator::new(
        run_all()
            .into_iter()
            .map(|Ran { name, gate, result }| match result {
                Ok((test, o)) => (
                    name,
                    o.passed,
                    expected(&test),
                    Some(o.got.name().to_string()),
                    o.deciding,
                    gate,
                    JsonB(o.explanation.to_json()),
                ),
                Err(e) => (
                    name,
                    false,
                    "a valid test".to_string(),
                    None,
                    Vec::new(),
                    gate,
                    JsonB(serde_json::json!({ "error": e })),
                ),
            }),
    )
}

fn expected(test: &RuleTest) -> String {
    match &test.expect_rule {
        Some(rule) => format!("{} by `{rule}`", test.expect.name()),
        None => test.expect.name().to_string(),
    }
}

/// Before this transaction commits or is prepared: if it changed the rules or the tests,
/// every gated test must pass, or the commit is refused (23514) naming the failures.
///
/// While `oidc.rules` or `oidc.issuers` has no rows at all, and this transaction did not
/// change that table, nothing is decided yet (no rule grants, no token verifies) and the
/// gate waits for the configuration to be whole: a database being set up, or restored by
/// `pg_restore` one table per transaction (`oidc.rule_tests`, sorted by name, arrives before
/// `oidc.rules`) or with parallel jobs (in any order). While only the issuers are missing,
/// the tests no issuer can change (anonymous, or claims without `iss`) still gate every
/// change. The transaction that completes the configuration runs every test. A transaction
/// that empties either table is gated as any change.
pub fn before_commit() {
    let rules_changed = RULES_CHANGED.swap(false, Ordering::Relaxed);
    let issuers_changed = ISSUERS_CHANGED.swap(false, Ordering::Relaxed);
    if !GATE_AT_COMMIT.swap(false, Ordering::Relaxed) {
        return;
    }
    // SAFETY: a plain read of a setting's variable.
    let role = unsafe { pg_sys::SessionReplicationRole };
    if role == pg_sys::SESSION_REPLICATION_ROLE_REPLICA as i32 {
        return; // a subscriber's apply worker, a restore with triggers off: gated upstream
    }
    // The newest snapshot (this transaction's changes, and what the writers before it, held
    // off by the commit-order lock, committed), also under REPEATABLE READ, where pre-commit
    // has no active snapshot at all.
    // SAFETY: inside the committing transaction; popped below, or by abort cleanup.
    unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot()) };
    let rule_rows = trust::read_rule_rows();
    let issuer_rows = trust::read_issuer_rows();
    let ran = if rule_rows.is_empty() && !rules_changed {
        Vec::new()
    } else if issuer_rows.is_empty() && !issuers_changed {
        run_with(&rule_rows, &issuer_rows, Run::IssuerFree)
    } else {
        run_with(&rule_rows, &issuer_rows, Run::All)
    };
    // SAFETY: pops what was pushed above (an error in the reads aborts, which pops it).
    unsafe { pg_sys::PopActiveSnapshot() };
    let failures: Vec<(String, String)> = ran
        .into_iter()
        .filter(|r| r.gate && !matches!(&r.result, Ok((_, o)) if o.passed))
        .map(|Ran { name, result, .. }| {
            let why = match result {
                Ok((test, o)) => format!(
                    "expected {}, got {}{}",
                    expected(&test),
                    o.got.name(),
                    if o.deciding.is_empty() {
                        String::new()
                    } else {
                        format!(" by `{}`", o.deciding.join("`, `"))
                    }
                ),
                Err(e) => e,
            };
            (name, why)
        })
        .collect();
    if !failures.is_empty() {
        Error::RuleTestsFailed(failures).raise();
    }
}

/// Drops a request for the gate when the transaction ends without committing.
pub fn at_transaction_end() {
    GATE_AT_COMMIT.store(false, Ordering::Relaxed);
    RULES_CHANGED.store(false, Ordering::Relaxed);
    ISSUERS_CHANGED.store(false, Ordering::Relaxed);
}

pgrx::extension_sql!(
    r#"
-- Expected decisions, pinned beside the rules (admin only; see README "Rule tests").
CREATE TABLE oidc.rule_tests (
    name          text PRIMARY KEY CONSTRAINT rule_tests_name CHECK (name OPERATOR(pg_catalog.<>) ''),
    claims        jsonb,
    action        text NOT NULL,
    resource_type text NOT NULL,
    resource      jsonb NOT NULL DEFAULT '{}',
    context       jsonb,
    at            timestamptz CONSTRAINT rule_tests_at CHECK (at IS NULL OR pg_catalog.isfinite(at)),
    expect        text NOT NULL CONSTRAINT rule_tests_expect CHECK (expect IN ('allow', 'deny')),
    expect_rule   text,
    gate          boolean NOT NULL DEFAULT true,
    description   text,
    updated_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE oidc.rule_tests IS 'Expected decisions: oidc.test_rules() runs them; a transaction that makes a gated test fail is refused at commit (admin only)';
COMMENT ON COLUMN oidc.rule_tests.claims IS 'The principal''s claims (NULL = anonymous); scopes and roles are mapped by the claims'' issuer, as oidc.replay() does';
COMMENT ON COLUMN oidc.rule_tests.context IS 'The request: {"method": ..., "path": ...}; NULL = none';
COMMENT ON COLUMN oidc.rule_tests.at IS 'When the request is decided; NULL = the transaction''s start';
COMMENT ON COLUMN oidc.rule_tests.expect_rule IS 'The rule that must decide: a forbid that holds when denied, a permit that holds when allowed';

CREATE FUNCTION oidc._rule_test_json(t oidc.rule_tests) RETURNS pg_catalog.jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('at_epoch_us',
           (EXTRACT(epoch FROM t.at) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8)
$$;

CREATE FUNCTION oidc._rule_test_validate() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM oidc._check_rule_test_row(oidc._rule_test_json(NEW));
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
CREATE FUNCTION oidc._rule_tests_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM oidc._gate_at_commit(TG_TABLE_NAME);  -- also oidc.rules' rules_gate
    RETURN NULL;
END
$$;
CREATE TRIGGER rule_tests_validate BEFORE INSERT OR UPDATE ON oidc.rule_tests
    FOR EACH ROW EXECUTE FUNCTION oidc._rule_test_validate();
CREATE TRIGGER rule_tests_changed AFTER INSERT OR UPDATE OR DELETE ON oidc.rule_tests
    FOR EACH STATEMENT EXECUTE FUNCTION oidc._rule_tests_changed();
CREATE TRIGGER rule_tests_truncated AFTER TRUNCATE ON oidc.rule_tests
    FOR EACH STATEMENT EXECUTE FUNCTION oidc._rule_tests_changed();
ALTER TABLE oidc.rule_tests ENABLE ALWAYS TRIGGER rule_tests_validate;
SELECT pg_catalog.pg_extension_config_dump('oidc.rule_tests', '');
-- The gate's trigger on oidc.rules and the privileges are in the final block (src/lib.rs),
-- after oidc.rules and oidc_admin exist.
"#,
    name = "rule_tests",
    requires = [check_rule_test_row, gate_at_commit],
);
