//! `oidc.rules_history` and `oidc.issuers_history`: every version of every rule, and of the
//! issuers' scope and role mapping, with when it was in force and who changed it; written by
//! triggers (SECURITY DEFINER: admins read it, nobody edits it). `oidc.replay(…, at)` decides
//! with the rules and the mapping in force at `at` ([`rules_at`], [`mapping_at`]).

use crate::trust;
use oidc_authz_core::rules::RuleSet;
use pgrx::datum::TimestampWithTimeZone;
use serde_json::Value;

/// The rules in force at `at`: for each name, the version whose validity covers it (the
/// latest to start, should two: a restore writes the versions it restores beside its own).
pub fn rules_at(at: TimestampWithTimeZone) -> RuleSet {
    let rows = trust::read_at(
        "rules_history",
        |relation| {
            format!(
                "select distinct on (h.name) pg_catalog.jsonb_build_object(\
                 'name', h.name, 'effect', h.effect, 'actions', h.actions, \
                 'resource_type', h.resource_type, 'condition', h.condition, \
                 'description', h.description, 'enabled', h.enabled, 'mode', h.mode)::pg_catalog.text \
                 from only {relation} as h where h.tableoid operator(pg_catalog.=) $1 \
                 and h.valid_from operator(pg_catalog.<=) $2 \
                 and (h.valid_to is null or h.valid_to operator(pg_catalog.>) $2) \
                 order by h.name, h.valid_from desc"
            )
        },
        at,
    );
    // A version that cannot load (written around the validating trigger) decides as such a
    // current row does: a forbid denies what it may match, a permit grants nothing.
    let (rules, errors) = RuleSet::from_rows(&rows);
    trust::report_invalid_rules(&errors);
    rules
}

/// The scope and role claim paths of `issuer` in force at `at`; `None` when it was not
/// configured then (its claims then map as an unknown issuer's: `scope`, `roles`).
pub fn mapping_at(issuer: &str, at: TimestampWithTimeZone) -> Option<(String, String)> {
    let rows = trust::read_at(
        "issuers_history",
        |relation| {
            format!(
                "select pg_catalog.jsonb_build_object('issuer', h.issuer, \
                 'scopes_claim', h.scopes_claim, 'roles_claim', h.roles_claim, \
                 'enabled', h.enabled)::pg_catalog.text \
                 from only {relation} as h where h.tableoid operator(pg_catalog.=) $1 \
                 and h.valid_from operator(pg_catalog.<=) $2 \
                 and (h.valid_to is null or h.valid_to operator(pg_catalog.>) $2) \
                 order by h.valid_from desc"
            )
        },
        at,
    );
    let row = rows
        .iter()
        .find(|r| r["issuer"].as_str() == Some(issuer) && r["enabled"] != Value::Bool(false))?;
    let path = |k: &str, default: &str| row[k].as_str().unwrap_or(default).to_string();
    Some((path("scopes_claim", "scope"), path("roles_claim", "roles")))
}

pgrx::extension_sql!(
    r#"
-- Every version of every rule (admin only, append-only): in force from valid_from until
-- valid_to (NULL: still), the instants the changes were written (clock_timestamp(): writers
-- of one rule are serialised by its row lock, so versions never overlap).
CREATE TABLE oidc.rules_history (
    name          text NOT NULL,
    effect        text NOT NULL,
    actions       text[] NOT NULL,
    resource_type text NOT NULL,
    condition     text,
    description   text,
    enabled       boolean NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz,
    changed_by    name NOT NULL,
    ended_by      name,
    mode          text NOT NULL DEFAULT 'enforce',
    CONSTRAINT rules_history_validity CHECK (valid_to IS NULL OR valid_to OPERATOR(pg_catalog.>=) valid_from)
);
CREATE INDEX rules_history_name ON oidc.rules_history (name, valid_from);
COMMENT ON TABLE oidc.rules_history IS 'Every version of every rule and when it was in force; oidc.replay(..., at) decides with it (admin only)';
-- The issuers' columns that decide how claims map to scopes and roles.
CREATE TABLE oidc.issuers_history (
    issuer        text NOT NULL,
    scopes_claim  text,
    roles_claim   text,
    enabled       boolean NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz,
    changed_by    name NOT NULL,
    ended_by      name,
    CONSTRAINT issuers_history_validity CHECK (valid_to IS NULL OR valid_to OPERATOR(pg_catalog.>=) valid_from)
);
CREATE INDEX issuers_history_issuer ON oidc.issuers_history (issuer, valid_from);
COMMENT ON TABLE oidc.issuers_history IS 'Every version of each issuer''s scope and role mapping and when it was in force (admin only)';
SELECT pg_catalog.pg_extension_config_dump('oidc.rules_history', '');
SELECT pg_catalog.pg_extension_config_dump('oidc.issuers_history', '');

-- Writes the history as the extension's owner: admins change rules, nobody edits history.
-- A new version first ends any open one of its name (a restore's inserts, a rename).
CREATE FUNCTION oidc._rules_history() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE oidc.rules_history SET valid_to = clock_timestamp(), ended_by = session_user WHERE valid_to IS NULL;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.name, OLD.effect, OLD.actions, OLD.resource_type, OLD.condition,
                              OLD.description, OLD.enabled, OLD.mode)
            IS NOT DISTINCT FROM (NEW.name, NEW.effect, NEW.actions, NEW.resource_type,
                                  NEW.condition, NEW.description, NEW.enabled, NEW.mode) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE oidc.rules_history SET valid_to = clock_timestamp(), ended_by = session_user
         WHERE name = OLD.name AND valid_to IS NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE oidc.rules_history SET valid_to = clock_timestamp(), ended_by = session_user
         WHERE name = NEW.name AND valid_to IS NULL;
        INSERT INTO oidc.rules_history (name, effect, actions, resource_type, condition, description,
                                        enabled, valid_from, changed_by, mode)
        VALUES (NEW.name, NEW.effect, NEW.actions, NEW.resource_type, NEW.condition, NEW.description,
                NEW.enabled, clock_timestamp(), session_user, NEW.mode);
    END IF;
    RETURN NULL;
END
$$;
CREATE FUNCTION oidc._issuers_history() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE oidc.issuers_history SET valid_to = clock_timestamp(), ended_by = session_user WHERE valid_to IS NULL;
        PERFORM oidc._gate_at_commit('issuers');
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.issuer, OLD.scopes_claim, OLD.roles_claim, OLD.enabled)
            IS NOT DISTINCT FROM (NEW.issuer, NEW.scopes_claim, NEW.roles_claim, NEW.enabled) THEN
        RETURN NULL;  -- keys and other columns: not what replay uses
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE oidc.issuers_history SET valid_to = clock_timestamp(), ended_by = session_user
         WHERE issuer = OLD.issuer AND valid_to IS NULL;
    END IF;
    PERFORM oidc._gate_at_commit('issuers');  -- rule tests map scopes and roles by the issuer
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE oidc.issuers_history SET valid_to = clock_timestamp(), ended_by = session_user
         WHERE issuer = NEW.issuer AND valid_to IS NULL;
        INSERT INTO oidc.issuers_history (issuer, scopes_claim, roles_claim, enabled, valid_from, changed_by)
        VALUES (NEW.issuer, NEW.scopes_claim, NEW.roles_claim, NEW.enabled, clock_timestamp(), session_user);
    END IF;
    RETURN NULL;
END
$$;
-- The triggers on oidc.rules and oidc.issuers and the privileges are in the final block
-- (src/lib.rs), after those tables and oidc_admin exist.
"#,
    name = "history",
);
