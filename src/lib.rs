//! pg_oidc_authz: verifies OIDC tokens inside Postgres and exposes their claims to RLS.
//!
//! This crate is the thin Postgres skin; token parsing, key sets, validation and claims
//! live in the pure `oidc_authz_core` crate. Modules: `settings` (GUCs), `trust` (loading
//! `oidc.issuers` and noticing changes), `cache` (the per-backend current token), `error`
//! (the one SQLSTATE mapping) and `api` (the SQL functions).

use pgrx::prelude::*;

mod api;
mod attrs;
mod audit;
mod cache;
mod error;
mod history;
mod jsonb;
mod lint;
mod log;
mod policy;
mod residual;
mod revocation;
mod rule_tests;
mod settings;
mod stats;
mod trust;
mod worker;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

::pgrx::pg_module_magic!();

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::init();
    trust::init();
    worker::init();
    log::init();
    stats::init();
    // SAFETY: registering a callback from _PG_init; it writes log lines and touches atomics.
    unsafe { pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut()) };
}

/// What happens when a transaction ends (committed, aborted or prepared, also in a
/// parallel worker): the audit writes the last statement's decisions, and a configuration
/// loaded under an old snapshot is dropped.
#[pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    if matches!(event, XACT_EVENT_PRE_COMMIT | XACT_EVENT_PRE_PREPARE) {
        // The commit-order lock first: it also serialises the rule-test gates of concurrent
        // writers, each of which then sees what the others committed.
        trust::before_commit();
        rule_tests::before_commit();
    }
    if matches!(
        event,
        XACT_EVENT_COMMIT
            | XACT_EVENT_ABORT
            | XACT_EVENT_PARALLEL_COMMIT
            | XACT_EVENT_PARALLEL_ABORT
            | XACT_EVENT_PREPARE
    ) {
        audit::at_transaction_end();
        trust::at_transaction_end();
        rule_tests::at_transaction_end();
        settings::at_transaction_end();
        worker::at_transaction_end(matches!(event, XACT_EVENT_COMMIT));
        stats::at_transaction_end(matches!(event, XACT_EVENT_COMMIT));
    }
}

// First, before anything is created: the schema `oidc` must be the one this CREATE
// EXTENSION made (the control file names it; Postgres creates it, owned by the installing
// superuser, when it does not exist). A schema that existed before, owned by someone else,
// with more than USAGE granted to others or objects in it, is refused: its owner could later
// rename it and put its own tables and functions in their place. (What DROP EXTENSION leaves,
// the empty schema with USAGE for PUBLIC, is reused.)
extension_sql!(
    r#"
DO $$
DECLARE
    nsp pg_catalog.pg_namespace;
BEGIN
    -- Claims are UTF-8; another server encoding would read their bytes as other characters.
    IF pg_catalog.getdatabaseencoding() NOT IN ('UTF8', 'SQL_ASCII') THEN
        RAISE EXCEPTION 'pg_oidc_authz needs a UTF8 (or SQL_ASCII) database, not %',
            pg_catalog.getdatabaseencoding()
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'create the database with ENCODING ''UTF8''';
    END IF;
    SELECT * INTO nsp FROM pg_catalog.pg_namespace
     WHERE nspname OPERATOR(pg_catalog.=) 'oidc';
    IF nsp.nspowner OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles r
                                             WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
       OR EXISTS (SELECT FROM pg_catalog.aclexplode(nsp.nspacl) a
                   WHERE a.grantee OPERATOR(pg_catalog.<>) nsp.nspowner
                     AND (a.privilege_type OPERATOR(pg_catalog.<>) 'USAGE' OR a.is_grantable))
       OR EXISTS (SELECT FROM pg_catalog.pg_collation WHERE collnamespace OPERATOR(pg_catalog.=) nsp.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_conversion WHERE connamespace OPERATOR(pg_catalog.=) nsp.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_opclass WHERE opcnamespace OPERATOR(pg_catalog.=) nsp.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_opfamily WHERE opfnamespace OPERATOR(pg_catalog.=) nsp.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_ts_config WHERE cfgnamespace OPERATOR(pg_catalog.=) nsp.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_ts_dict WHERE dictnamespace OPERATOR(pg_catalog.=) nsp.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_ts_parser WHERE prsnamespace OPERATOR(pg_catalog.=) nsp.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_ts_template WHERE tmplnamespace OPERATOR(pg_catalog.=) nsp.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_statistic_ext WHERE stxnamespace OPERATOR(pg_catalog.=) nsp.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_class WHERE relnamespace OPERATOR(pg_catalog.=) nsp.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_proc WHERE pronamespace OPERATOR(pg_catalog.=) nsp.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_type WHERE typnamespace OPERATOR(pg_catalog.=) nsp.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_operator WHERE oprnamespace OPERATOR(pg_catalog.=) nsp.oid)
    THEN
        RAISE EXCEPTION 'pg_oidc_authz must create its own schema "oidc", but one already exists (owned by %)',
            pg_catalog.pg_get_userbyid(nsp.nspowner)
            USING ERRCODE = 'duplicate_schema',
                  HINT = 'drop or rename the existing schema oidc, then run CREATE EXTENSION again';
    END IF;
END
$$;
"#,
    name = "own_schema",
    bootstrap
);

extension_sql!(
    r#"
-- Trust configuration: one row per issuer. Holds public keys, and may hold HMAC secrets,
-- so only its owner and oidc_admin may read or write it.
CREATE TABLE oidc.issuers (
    issuer          text PRIMARY KEY,
    audiences       text[] NOT NULL,
    jwks            jsonb,
    algorithms      text[],
    leeway          interval NOT NULL DEFAULT '30 seconds',
    required_typ    text,
    roles_claim     text NOT NULL DEFAULT 'roles',
    scopes_claim    text NOT NULL DEFAULT 'scope',
    logout_audiences text[],
    discovery       boolean NOT NULL DEFAULT false,
    enabled         boolean NOT NULL DEFAULT true,
    comment         text,
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE oidc.issuers IS 'Trusted OIDC issuers and their keys (admin only; see README "Configuration")';
COMMENT ON COLUMN oidc.issuers.issuer IS 'Exact value of the tokens'' iss claim';
COMMENT ON COLUMN oidc.issuers.audiences IS 'A token''s aud must contain one of these';
COMMENT ON COLUMN oidc.issuers.jwks IS 'JWK set {"keys": [...]}: RSA, EC P-256/384/521, OKP Ed25519, or oct (HMAC) public keys';
COMMENT ON COLUMN oidc.issuers.algorithms IS 'Allowed header alg values; NULL = RS*, PS*, ES*, EdDSA (HS* must be listed)';
COMMENT ON COLUMN oidc.issuers.leeway IS 'Clock skew tolerated for exp/nbf/iat: whole seconds, at most 5 minutes, default 30 seconds';
COMMENT ON COLUMN oidc.issuers.required_typ IS 'If set (e.g. at+jwt), the token header typ must match: ID tokens are refused';
COMMENT ON COLUMN oidc.issuers.roles_claim IS 'Claim path of the roles list, e.g. realm_access.roles (Keycloak) or roles (Entra)';
COMMENT ON COLUMN oidc.issuers.scopes_claim IS 'Claim path of the scopes: scope (space-separated) or scp (array)';
COMMENT ON COLUMN oidc.issuers.discovery IS 'Keep jwks from <issuer>/.well-known/openid-configuration (the extension''s background worker; NULL jwks until its first fetch)';
COMMENT ON COLUMN oidc.issuers.logout_audiences IS 'The aud of its Back-Channel Logout tokens (the relying parties'' client ids); NULL = oidc.logout() refuses them';

-- One row as the JSON the validator and the loader read; the interval as seconds, because
-- its text form depends on IntervalStyle.
CREATE FUNCTION oidc._issuer_row_json(i oidc.issuers) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT to_jsonb(i) || jsonb_build_object('leeway_seconds', extract(epoch FROM i.leeway))
$$;

-- Both configuration tables: a row is validated by the same Rust code that later loads it,
-- so a refused row stores nothing, and an accepted one always loads.
CREATE FUNCTION oidc._validate_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_TABLE_NAME = 'issuers' THEN
        PERFORM oidc._check_issuer_row(oidc._issuer_row_json(NEW));
    ELSE
        PERFORM oidc._check_rule_row(to_jsonb(NEW));
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE FUNCTION oidc._config_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM oidc._invalidate_config(TG_RELID);
    IF TG_TABLE_NAME = 'issuers' THEN
        PERFORM oidc._worker_wake();  -- a discovery issuer may be new (after commit)
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER issuers_validate BEFORE INSERT OR UPDATE ON oidc.issuers
    FOR EACH ROW EXECUTE FUNCTION oidc._validate_row();
-- Row-level (with TRUNCATE apart): logical replication fires row triggers only.
CREATE TRIGGER issuers_changed AFTER INSERT OR UPDATE OR DELETE ON oidc.issuers
    FOR EACH ROW EXECUTE FUNCTION oidc._config_changed();
CREATE TRIGGER issuers_truncated AFTER TRUNCATE ON oidc.issuers
    FOR EACH STATEMENT EXECUTE FUNCTION oidc._config_changed();

SELECT pg_catalog.pg_extension_config_dump('oidc.issuers', '');

-- Fine-grained rules: permit/forbid with CEL conditions (see README "Rules").
CREATE TABLE oidc.rules (
    name            text PRIMARY KEY,
    effect          text NOT NULL CHECK (effect IN ('permit', 'forbid')),
    actions         text[] NOT NULL DEFAULT '{*}',
    resource_type   text NOT NULL,
    condition       text,
    description     text,
    enabled         boolean NOT NULL DEFAULT true,
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    mode            text NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'shadow'))
);
COMMENT ON TABLE oidc.rules IS 'Authorization rules: default deny; allowed iff a matching permit holds and no matching forbid does (admin only)';
COMMENT ON COLUMN oidc.rules.actions IS 'Actions the rule applies to, e.g. {read} or {update,delete}; {*} = all';
COMMENT ON COLUMN oidc.rules.resource_type IS 'Resource type the rule applies to, e.g. document; * = all';
COMMENT ON COLUMN oidc.rules.condition IS 'CEL over claims, scopes, roles, resource, context; NULL or empty = always';
COMMENT ON COLUMN oidc.rules.mode IS 'enforce: the rule decides; shadow: it never changes a decision, only records where it would (audit, explain, stats)';

CREATE TRIGGER rules_validate BEFORE INSERT OR UPDATE ON oidc.rules
    FOR EACH ROW EXECUTE FUNCTION oidc._validate_row();
CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE ON oidc.rules
    FOR EACH ROW EXECUTE FUNCTION oidc._config_changed();
CREATE TRIGGER rules_truncated AFTER TRUNCATE ON oidc.rules
    FOR EACH STATEMENT EXECUTE FUNCTION oidc._config_changed();

SELECT pg_catalog.pg_extension_config_dump('oidc.rules', '');

-- What the background worker last did per discovery issuer (no trigger: sessions do not
-- reload for it). Not dumped: it is state, rebuilt by the next refresh.
CREATE TABLE oidc._fetch_status (
    issuer       text PRIMARY KEY,
    last_attempt timestamptz,
    last_success timestamptz,
    last_error   text,
    next_refresh timestamptz,
    jwks_uri     text
);
CREATE VIEW oidc.issuer_status AS
    SELECT i.issuer, i.discovery, i.enabled, s.last_attempt, s.last_success, s.last_error,
           s.next_refresh, s.jwks_uri,
           ARRAY(SELECT k OPERATOR(pg_catalog.->>) 'kid'
                   FROM pg_catalog.jsonb_array_elements(
                        CASE WHEN pg_catalog.jsonb_typeof(i.jwks OPERATOR(pg_catalog.->) 'keys') OPERATOR(pg_catalog.=) 'array'
                             THEN i.jwks OPERATOR(pg_catalog.->) 'keys' ELSE '[]' END) AS k) AS kids
      FROM oidc.issuers i LEFT JOIN oidc._fetch_status s ON s.issuer OPERATOR(pg_catalog.=) i.issuer;
COMMENT ON VIEW oidc.issuer_status IS 'Per issuer: discovery, the worker''s last attempt, success, error and next refresh, and the kids in use (oidc_admin)';
SELECT oidc._worker_wake();  -- the worker starts serving this database after CREATE EXTENSION

-- Also when rows arrive by logical replication (session_replication_role = replica): a
-- subscriber validates them and its sessions reload.
ALTER TABLE oidc.issuers ENABLE ALWAYS TRIGGER issuers_validate;
ALTER TABLE oidc.issuers ENABLE ALWAYS TRIGGER issuers_changed;
ALTER TABLE oidc.issuers ENABLE ALWAYS TRIGGER issuers_truncated;
ALTER TABLE oidc.rules ENABLE ALWAYS TRIGGER rules_validate;
ALTER TABLE oidc.rules ENABLE ALWAYS TRIGGER rules_changed;
ALTER TABLE oidc.rules ENABLE ALWAYS TRIGGER rules_truncated;

-- The admin role is cluster-wide, so a second database reuses the one the first created;
-- an existing role that can do more than administer this extension (log in, hold role
-- attributes, inherit other roles' rights) is refused rather than silently made the admin.
DO $$
DECLARE
    r pg_catalog.pg_roles;
BEGIN
    SELECT * INTO r FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'oidc_admin';
    IF NOT FOUND THEN
        CREATE ROLE oidc_admin NOLOGIN;
        -- (shared across databases: a later install knows the role as the extension's)
        COMMENT ON ROLE oidc_admin IS 'pg_oidc_authz: administrators of the trust configuration';
    ELSIF r.rolcanlogin OR r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication
          OR r.rolbypassrls
          OR EXISTS (SELECT FROM pg_catalog.pg_auth_members m
                      WHERE m.member OPERATOR(pg_catalog.=) r.oid) THEN
        RAISE EXCEPTION 'role oidc_admin already exists and has privileges of its own'
            USING ERRCODE = 'duplicate_object',
                  DETAIL = 'pg_oidc_authz makes oidc_admin the administrator of its trust configuration; an existing role may only be reused if it is NOLOGIN, has no role attributes and is a member of no other role',
                  HINT = 'remove its LOGIN, attributes and memberships, or drop it, then run CREATE EXTENSION again';
    ELSIF pg_catalog.shobj_description(r.oid, 'pg_authid') IS DISTINCT FROM
          'pg_oidc_authz: administrators of the trust configuration' THEN
        RAISE WARNING 'reusing the existing role oidc_admin: its members administer pg_oidc_authz in this database too'
            USING DETAIL = 'the role was not created by pg_oidc_authz';
    END IF;
END
$$;

REVOKE ALL ON oidc.issuers, oidc.rules, oidc.revocations, oidc._fetch_status, oidc.issuer_status FROM PUBLIC;
GRANT SELECT ON oidc.issuer_status TO oidc_admin;
-- The issuers trigger wakes the worker as whoever writes the table: its owner or an admin.
REVOKE ALL ON FUNCTION oidc._worker_wake() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oidc._worker_wake() TO oidc_admin;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON oidc.issuers, oidc.rules, oidc.revocations TO oidc_admin;
REVOKE ALL ON FUNCTION oidc.revoke_token(text, text, timestamptz),
    oidc.revoke_subject(text, text, timestamptz), oidc.revoke_session(text, text, text),
    oidc._revoke(text, text, text, timestamptz, text, timestamptz),
    oidc.purge_revocations(), oidc._revocations_changed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oidc.revoke_token(text, text, timestamptz),
    oidc.revoke_subject(text, text, timestamptz), oidc.revoke_session(text, text, text),
    oidc._revoke(text, text, text, timestamptz, text, timestamptz),
    oidc.purge_revocations() TO oidc_admin;
REVOKE ALL ON FUNCTION oidc.logout(text), oidc._verify_logout(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oidc.logout(text), oidc._verify_logout(text) TO oidc_admin WITH GRANT OPTION;
GRANT USAGE ON SCHEMA oidc TO PUBLIC;
REVOKE ALL ON FUNCTION oidc._check_issuer_row(jsonb), oidc._invalidate_config(oid),
    oidc._issuer_row_json(oidc.issuers), oidc._check_rule_row(jsonb),
    oidc._validate_row(), oidc._config_changed(),
    oidc.replay(jsonb, text, text, jsonb, timestamptz, text) FROM PUBLIC;
-- The lint reveals rules and policies: admins only.
REVOKE ALL ON FUNCTION oidc.lint(), oidc._lint_calls(), oidc._lint_rule_tests(), oidc.residual(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oidc.lint(), oidc._lint_calls(), oidc._lint_rule_tests(), oidc.residual(text, text) TO oidc_admin;
GRANT EXECUTE ON FUNCTION oidc._check_issuer_row(jsonb), oidc._invalidate_config(oid),
    oidc._issuer_row_json(oidc.issuers), oidc._check_rule_row(jsonb),
    oidc.replay(jsonb, text, text, jsonb, timestamptz, text) TO oidc_admin;

-- History (src/history.rs): every version of the rules and of the issuers' mapping; also
-- for rows applied by logical replication.
CREATE TRIGGER rules_history AFTER INSERT OR UPDATE OR DELETE ON oidc.rules
    FOR EACH ROW EXECUTE FUNCTION oidc._rules_history();
CREATE TRIGGER rules_history_truncated AFTER TRUNCATE ON oidc.rules
    FOR EACH STATEMENT EXECUTE FUNCTION oidc._rules_history();
CREATE TRIGGER issuers_history AFTER INSERT OR UPDATE OR DELETE ON oidc.issuers
    FOR EACH ROW EXECUTE FUNCTION oidc._issuers_history();
CREATE TRIGGER issuers_history_truncated AFTER TRUNCATE ON oidc.issuers
    FOR EACH STATEMENT EXECUTE FUNCTION oidc._issuers_history();
ALTER TABLE oidc.rules ENABLE ALWAYS TRIGGER rules_history;
ALTER TABLE oidc.rules ENABLE ALWAYS TRIGGER rules_history_truncated;
ALTER TABLE oidc.issuers ENABLE ALWAYS TRIGGER issuers_history;
ALTER TABLE oidc.issuers ENABLE ALWAYS TRIGGER issuers_history_truncated;
REVOKE ALL ON oidc.rules_history, oidc.issuers_history FROM PUBLIC;
GRANT SELECT ON oidc.rules_history, oidc.issuers_history TO oidc_admin;
REVOKE ALL ON FUNCTION oidc._rules_history(), oidc._issuers_history() FROM PUBLIC;

-- Rule tests (src/rule_tests.rs): a change of the rules asks for the gate at commit.
CREATE TRIGGER rules_gate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON oidc.rules
    FOR EACH STATEMENT EXECUTE FUNCTION oidc._rule_tests_changed();
REVOKE ALL ON oidc.rule_tests FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON oidc.rule_tests TO oidc_admin;
REVOKE ALL ON FUNCTION oidc.test_rules(), oidc._check_rule_test_row(jsonb), oidc._gate_at_commit(text),
    oidc._rule_test_json(oidc.rule_tests), oidc._rule_test_validate(), oidc._rule_tests_changed() FROM PUBLIC;
-- The triggers run as whoever writes the tables: their owner or an admin.
GRANT EXECUTE ON FUNCTION oidc.test_rules(), oidc._check_rule_test_row(jsonb), oidc._gate_at_commit(text),
    oidc._rule_test_json(oidc.rule_tests) TO oidc_admin;

-- Stats (src/stats.rs): for admins and monitoring; resetting, for admins.
REVOKE ALL ON FUNCTION oidc.stats(), oidc.stats_reset(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oidc.stats() TO oidc_admin, pg_monitor;
GRANT EXECUTE ON FUNCTION oidc.stats_reset(boolean) TO oidc_admin;
"#,
    name = "issuers",
    finalize
);

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
