-- pg_oidc_authz 0.1.0 -> 0.2.0, run by ALTER EXTENSION pg_oidc_authz UPDATE [TO '0.2.0'].
--
-- Brings a 0.1.0 schema to exactly what CREATE EXTENSION pg_oidc_authz makes at 0.2.0
-- (tests/e2e/test_upgrade.py compares the two catalogs object by object), keeping the rows
-- of oidc.issuers and oidc.rules. The library is already the new one when this runs: every
-- 0.1.0 function names a symbol it still exports, and each whose definition changed is
-- replaced here. Functions keep their oids where the signature is unchanged (CREATE OR
-- REPLACE), so the policies, views and functions that call them stay valid; only
-- oidc.replay, which gained a parameter, is dropped and created again.
--
-- Until 0.2.0 is released, every schema change adds to this script (after: to
-- pg_oidc_authz--0.2.0--<next>.sql), and where needed to test_upgrade.py, in the same
-- commit (README "Upgrade").

\echo Use "ALTER EXTENSION pg_oidc_authz UPDATE TO '0.2.0'" to load this file. \quit

-- Functions 0.1.0 created with the search_path pg_catalog alone: pg_temp goes last, so a
-- caller's temporary objects can never stand in for catalog ones.
CREATE OR REPLACE FUNCTION oidc._issuer_row_json(i oidc.issuers) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT to_jsonb(i) || jsonb_build_object('leeway_seconds', extract(epoch FROM i.leeway))
$$;
CREATE OR REPLACE FUNCTION oidc._validate_row() RETURNS trigger
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

-- oidc.issuers: keys from discovery (jwks NULL until the worker's first fetch) and the
-- audiences of Back-Channel Logout tokens. ADD COLUMN puts them after updated_at, where a
-- fresh install has them before enabled: name the columns in INSERTs (COPY and pg_dump do).
ALTER TABLE oidc.issuers ALTER COLUMN jwks DROP NOT NULL;
ALTER TABLE oidc.issuers ADD COLUMN logout_audiences text[];
ALTER TABLE oidc.issuers ADD COLUMN discovery boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN oidc.issuers.discovery IS 'Keep jwks from <issuer>/.well-known/openid-configuration (the extension''s background worker; NULL jwks until its first fetch)';
COMMENT ON COLUMN oidc.issuers.logout_audiences IS 'The aud of its Back-Channel Logout tokens (the relying parties'' client ids); NULL = oidc.logout() refuses them';

-- The background worker (keys from discovery): woken by the issuers' trigger.
CREATE FUNCTION oidc."_worker_wake"() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'worker_wake_wrapper';

CREATE OR REPLACE FUNCTION oidc._config_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM oidc._invalidate_config(TG_RELID);
    IF TG_TABLE_NAME = 'issuers' THEN
        PERFORM oidc._worker_wake();  -- a discovery issuer may be new (after commit)
    END IF;
    RETURN NULL;
END
$$;

-- Shadow rules (new in 0.2.0): a rule staged with mode = 'shadow' decides nothing (README
-- "Shadow rules"). Every 0.1.0 rule is enforced. ADD COLUMN puts it last, as a fresh install has it.
ALTER TABLE oidc.rules ADD COLUMN mode text NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'shadow'));
COMMENT ON COLUMN oidc.rules.mode IS 'enforce: the rule decides; shadow: it never changes a decision, only records where it would (audit, explain, stats)';

-- Decision stats (new in 0.2.0, src/api/stats.rs).
CREATE FUNCTION oidc."stats"() RETURNS TABLE (
	"counter" TEXT,
	"labels" jsonb,
	"value" bigint,
	"scope" TEXT,
	"since" timestamp with time zone
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'stats_wrapper';
CREATE FUNCTION oidc."stats_reset"(
	"all_databases" bool DEFAULT false
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'stats_reset_wrapper';

-- History (new in 0.2.0), as src/history.rs creates it.
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

-- The history starts with the versions in force now, each from its last change (the rows'
-- updated_at, which the validating trigger has always set), so that oidc.replay(..., at)
-- decides as before for any instant since then. Who made those changes 0.1.0 did not
-- record: changed_by is the role running this upgrade.
INSERT INTO oidc.rules_history (name, effect, actions, resource_type, condition, description,
                                enabled, valid_from, changed_by)
SELECT name, effect, actions, resource_type, condition, description, enabled, updated_at, session_user
  FROM oidc.rules;
INSERT INTO oidc.issuers_history (issuer, scopes_claim, roles_claim, enabled, valid_from, changed_by)
SELECT issuer, scopes_claim, roles_claim, enabled, updated_at, session_user
  FROM oidc.issuers;

-- Residuals in the planner: oidc.allow's pair forms get a support function.
-- Helpers of residual expressions (see src/residual.rs); found by identity, not by name.
CREATE FUNCTION oidc._allow_support(internal) RETURNS internal
LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'oidc_allow_support';
-- (any number of dimensions: the evaluator flattens arrays)
CREATE FUNCTION oidc._has_null(pg_catalog.text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN EXISTS (SELECT FROM pg_catalog.unnest($1) AS e(x) WHERE e.x IS NULL);
CREATE FUNCTION oidc._nonempty(pg_catalog.text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.cardinality($1) OPERATOR(pg_catalog.>) 0;

-- Two declarations, one and more pairs, so that a three-argument call always means the
-- jsonb form (an untyped literal '{...}' stays unambiguous).
CREATE OR REPLACE FUNCTION oidc.allow(action text, resource_type text, name text, value "any")
RETURNS boolean
STABLE PARALLEL SAFE SUPPORT oidc._allow_support
LANGUAGE c AS 'MODULE_PATHNAME', 'oidc_allow_attributes';
CREATE OR REPLACE FUNCTION oidc.allow(action text, resource_type text, name text, value "any",
                           VARIADIC more_attributes "any")
RETURNS boolean
STABLE PARALLEL SAFE SUPPORT oidc._allow_support
LANGUAGE c AS 'MODULE_PATHNAME', 'oidc_allow_attributes';
-- One rule's condition per row, where a residual cannot translate it (src/residual): true
-- when it holds as `want` says ('true': the condition is true; 'not false': true or an error).
CREATE FUNCTION oidc._rule(key text, want text, name text, value "any")
RETURNS boolean
STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'oidc_rule_attributes';
CREATE FUNCTION oidc._rule(key text, want text, name text, value "any",
                           VARIADIC more_attributes "any")
RETURNS boolean
STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'oidc_rule_attributes';
-- The actions the current principal may do on a resource (src/attrs.rs).
CREATE FUNCTION oidc.allowed_actions(resource_type text, name text, value "any")
RETURNS text[]
STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'oidc_allowed_actions_attributes';
CREATE FUNCTION oidc.allowed_actions(resource_type text, name text, value "any",
                                     VARIADIC more_attributes "any")
RETURNS text[]
STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'oidc_allowed_actions_attributes';
COMMENT ON FUNCTION oidc.allow(text, text, text, "any") IS
    'The decision for the current principal; the resource given as name/value pairs';
COMMENT ON FUNCTION oidc.allow(text, text, text, "any", "any") IS
    'The decision for the current principal; the resource given as name/value pairs';

-- Rule tests, residual helpers and the gate (new in 0.2.0).
CREATE FUNCTION oidc."_check_rule_test_row"(
	"row" jsonb /* JsonB */
) RETURNS void
IMMUTABLE STRICT PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'check_rule_test_row_wrapper';

CREATE FUNCTION oidc."_fixed_bool"(
	"key" TEXT, /* & str */
	"slot" INT, /* i32 */
	"test" TEXT /* & str */
) RETURNS bool /* bool */
STRICT STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fixed_bool_wrapper';

CREATE FUNCTION oidc."_fixed_int8"(
	"key" TEXT, /* & str */
	"slot" INT, /* i32 */
	"query" TEXT /* & str */
) RETURNS bigint /* Option < i64 > */
STRICT STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fixed_int8_wrapper';

CREATE FUNCTION oidc."_fixed_probe"(
	"key" TEXT, /* & str */
	"slot" INT, /* i32 */
	"test" TEXT /* & str */
) RETURNS TEXT[] /* :: std :: option :: Option < Vec < String > > */
STRICT STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fixed_probe_wrapper';

CREATE FUNCTION oidc."_fixed_text"(
	"key" TEXT, /* & str */
	"slot" INT /* i32 */
) RETURNS TEXT /* Option < String > */
STRICT STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fixed_text_wrapper';

CREATE FUNCTION oidc."_fixed_texts"(
	"key" TEXT, /* & str */
	"slot" INT /* i32 */
) RETURNS TEXT[] /* :: std :: option :: Option < Vec < String > > */
STRICT STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fixed_texts_wrapper';

CREATE FUNCTION oidc."_fixed_timestamp"(
	"key" TEXT, /* & str */
	"slot" INT, /* i32 */
	"query" TEXT /* & str */
) RETURNS timestamp /* Option < Timestamp > */
STRICT STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fixed_timestamp_wrapper';

CREATE FUNCTION oidc."_fixed_timestamptz"(
	"key" TEXT, /* & str */
	"slot" INT, /* i32 */
	"query" TEXT /* & str */
) RETURNS timestamp with time zone /* Option < TimestampWithTimeZone > */
STRICT STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fixed_timestamptz_wrapper';

CREATE FUNCTION oidc."_gate_at_commit"(
	"changed" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS void
VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'gate_at_commit_wrapper';

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

-- The lint (new in 0.2.0).
CREATE FUNCTION oidc."_lint_calls"() RETURNS TABLE (
	"schema_name" TEXT,  /* String */
	"table_name" TEXT,  /* String */
	"policy_name" TEXT,  /* String */
	"severity" TEXT,  /* core::option::Option<&str> */
	"problem" TEXT,  /* String */
	"suggestion" TEXT  /* String */
)
STRICT STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'lint_calls_wrapper';

CREATE FUNCTION oidc."_lint_rule_tests"() RETURNS TABLE (
	"problem" TEXT,  /* String */
	"suggestion" TEXT  /* String */
)
STRICT STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'lint_rule_tests_wrapper';



CREATE FUNCTION oidc.lint()
RETURNS TABLE (schema_name text, table_name text, policy_name text, severity text,
               problem text, suggestion text)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $lint$
WITH tables AS (
    SELECT c.oid, c.relname::text AS relname, n.nspname::text AS nspname, c.relkind,
           c.relrowsecurity, c.relforcerowsecurity, c.relowner, c.reloptions, n.oid AS nsp,
           -- Estimated rows; -1 unknown (never analyzed; a partitioned table: its leaves').
           CASE WHEN c.relkind <> 'p' THEN c.reltuples
                ELSE coalesce((SELECT CASE WHEN bool_or(l.reltuples < 0) THEN -1 ELSE sum(l.reltuples) END
                                 FROM pg_partition_tree(c.oid) pt JOIN pg_class l ON l.oid = pt.relid
                                WHERE pt.isleaf), -1) END AS estimate
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'oidc')
       AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
), policies AS (
    SELECT t.nspname, t.relname, p.polname::text AS polname, p.polcmd, t.estimate,
           coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' '
           || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') AS expr,
           p.polwithcheck IS NULL AS no_check
      FROM pg_policy p JOIN tables t ON t.oid = p.polrelid
)
-- A claim call with no row argument, outside a scalar subquery, runs on every row.
SELECT DISTINCT p.nspname, p.relname, p.polname,
       CASE WHEN p.estimate > 10000 OR p.estimate < 0 THEN 'warning' ELSE 'info' END,
       'a claim function is called on every row: ' || m[1],
       'wrap it in a scalar subquery, (select ' || m[1] || '), so that it runs once per statement'
  FROM policies p
 CROSS JOIN LATERAL regexp_matches(p.expr,
       '(?<!SELECT )(oidc\.(?:sub|uid|issuer|claims|scopes|roles)\(\)|oidc\.(?:claim|claim_text|has_scope|has_role)\(''[^'']*''::text\))',
       'g') AS m
UNION ALL
SELECT l.schema_name, l.table_name, l.policy_name,
       coalesce(l.severity, CASE WHEN t.estimate > 10000 OR t.estimate < 0 THEN 'warning' ELSE 'info' END),
       l.problem, l.suggestion
  FROM oidc._lint_calls() AS l
  LEFT JOIN tables t ON t.nspname = l.schema_name AND t.relname = l.table_name
UNION ALL
SELECT 'oidc', 'rule_tests', NULL, 'warning', l.problem, l.suggestion
  FROM oidc._lint_rule_tests() AS l
UNION ALL
SELECT t.nspname, t.relname, NULL, 'warning',
       'row-level security is enabled but not forced: the table''s owner bypasses its policies',
       'ALTER TABLE ' || quote_ident(t.nspname) || '.' || quote_ident(t.relname)
       || ' FORCE ROW LEVEL SECURITY, and query as a role that does not own the table'
  FROM tables t
 WHERE t.relkind IN ('r', 'p') AND t.relrowsecurity AND NOT t.relforcerowsecurity
UNION ALL
SELECT t.nspname, t.relname, NULL,
       -- A warning where the schema protects other tables (a check looks missing here).
       CASE WHEN EXISTS (SELECT FROM tables o WHERE o.nsp = t.nsp AND o.relrowsecurity)
            THEN 'warning' ELSE 'info' END,
       'login role ' || r.rolname || ' can read this table, which has no row-level security',
       'enable and force row level security with a policy, or revoke SELECT from ' || r.rolname
  FROM tables t
  JOIN pg_roles r ON r.rolcanlogin AND NOT r.rolsuper AND NOT r.rolbypassrls AND r.oid <> t.relowner
 WHERE t.relkind IN ('r', 'p', 'm') AND NOT t.relrowsecurity
   AND has_schema_privilege(r.oid, t.nsp, 'USAGE') AND has_table_privilege(r.oid, t.oid, 'SELECT')
UNION ALL
SELECT p.nspname, p.relname, p.polname, 'info',
       CASE p.polcmd WHEN '*' THEN 'an ALL' ELSE 'an UPDATE' END
       || ' policy without WITH CHECK: new row versions are checked with its USING expression',
       'state WITH CHECK explicitly, so that what may be written is not an accident of what may be read'
  FROM policies p
 WHERE p.polcmd IN ('*', 'w') AND p.no_check
UNION ALL
SELECT DISTINCT v.nspname, v.relname, NULL, 'warning',
       'a view over ' || t.nspname || '.' || t.relname
       || ' (row-level security) runs as its owner: the policies see the owner, not the caller',
       'ALTER VIEW ' || quote_ident(v.nspname) || '.' || quote_ident(v.relname)
       || ' SET (security_invoker = true)'
  FROM tables v
  JOIN pg_rewrite rw ON rw.ev_class = v.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                  AND d.refclassid = 'pg_class'::regclass
  JOIN tables t ON t.oid = d.refobjid AND t.relrowsecurity AND t.oid <> v.oid
 WHERE v.relkind = 'v'
   AND NOT coalesce((SELECT o.option_value::boolean FROM pg_options_to_table(v.reloptions) o
                      WHERE o.option_name = 'security_invoker'), false)
$lint$;
COMMENT ON FUNCTION oidc.lint() IS
    'Likely mistakes in this database''s row-level security, oidc.allow() call sites and rule tests';

-- Revocation and Back-Channel Logout (new in 0.2.0).
CREATE FUNCTION oidc."_max_token_lifetime"() RETURNS INT /* i32 */
STRICT STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'max_token_lifetime_wrapper';

CREATE FUNCTION oidc."_verify_logout"(
	"logout_token" TEXT /* Option < & str > */
) RETURNS jsonb /* JsonB */
STABLE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'verify_logout_wrapper';



-- Revoked tokens (admin only): a token by its jti, a subject's tokens issued before an
-- instant, a session's tokens by sid. `expires_at` is when the row can no longer match a
-- valid token; the revoke functions purge the rows past it.
CREATE TABLE oidc.revocations (
    kind          text NOT NULL CONSTRAINT revocations_kind CHECK (kind IN ('token', 'subject', 'session')),
    issuer        text NOT NULL CONSTRAINT revocations_issuer CHECK (issuer OPERATOR(pg_catalog.<>) ''),
    value         text NOT NULL CONSTRAINT revocations_value CHECK (value OPERATOR(pg_catalog.<>) ''),
    issued_before timestamptz,
    -- A session's subject: its tokens without a sid, issued before issued_before, are
    -- refused too (an access token need not carry the session id).
    sub           text CONSTRAINT revocations_sub CHECK (sub OPERATOR(pg_catalog.<>) ''),
    expires_at    timestamptz NOT NULL CONSTRAINT revocations_expires_at CHECK (pg_catalog.isfinite(expires_at)),
    revoked_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (kind, issuer, value),
    CONSTRAINT revocations_issued_before CHECK (CASE kind
        WHEN 'subject' THEN issued_before IS NOT NULL AND pg_catalog.isfinite(issued_before) AND sub IS NULL
        WHEN 'session' THEN (sub IS NULL) OPERATOR(pg_catalog.=) (issued_before IS NULL)
                            AND (issued_before IS NULL OR pg_catalog.isfinite(issued_before))
        ELSE issued_before IS NULL AND sub IS NULL END)
);
COMMENT ON TABLE oidc.revocations IS 'Revoked tokens: refused (28000, check revoked) from each session''s next transaction (admin only)';
COMMENT ON COLUMN oidc.revocations.kind IS 'token: the token whose jti is value; subject: tokens of sub = value issued before issued_before; session: tokens whose sid is value';
COMMENT ON COLUMN oidc.revocations.expires_at IS 'When the row can no longer match an unexpired token (then purged)';

CREATE FUNCTION oidc._revocations_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM oidc._invalidate_config(TG_RELID);
    RETURN NULL;
END
$$;
CREATE TRIGGER revocations_changed AFTER INSERT OR UPDATE OR DELETE ON oidc.revocations
    FOR EACH ROW EXECUTE FUNCTION oidc._revocations_changed();
CREATE TRIGGER revocations_truncated AFTER TRUNCATE ON oidc.revocations
    FOR EACH STATEMENT EXECUTE FUNCTION oidc._revocations_changed();
ALTER TABLE oidc.revocations ENABLE ALWAYS TRIGGER revocations_changed;
ALTER TABLE oidc.revocations ENABLE ALWAYS TRIGGER revocations_truncated;
SELECT pg_catalog.pg_extension_config_dump('oidc.revocations', '');

-- Rows that can no longer match anything (past expires_at by more than the largest leeway
-- an issuer may have, 5 minutes); run by each revoke function and by the worker.
CREATE FUNCTION oidc.purge_revocations() RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    WITH gone AS (DELETE FROM oidc.revocations
                   WHERE expires_at OPERATOR(pg_catalog.<) (now() OPERATOR(pg_catalog.-) interval '5 minutes')
                   RETURNING 1)
    SELECT count(*) FROM gone
$$;

-- Stores a revocation, or widens the existing one (the later instant, the later expiry);
-- writes nothing when nothing changes (no session reloads for a repeated revocation).
CREATE FUNCTION oidc._revoke(kind text, issuer text, value text, issued_before timestamptz,
                             sub text, expires_at timestamptz)
RETURNS oidc.revocations
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT oidc.purge_revocations();
    INSERT INTO oidc.revocations AS r (kind, issuer, value, issued_before, sub, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (kind, issuer, value) DO UPDATE
        SET issued_before = greatest(r.issued_before, excluded.issued_before),
            sub = coalesce(excluded.sub, r.sub),
            expires_at = greatest(r.expires_at, excluded.expires_at)
        WHERE r.issued_before IS DISTINCT FROM greatest(r.issued_before, excluded.issued_before)
           OR r.sub IS DISTINCT FROM coalesce(excluded.sub, r.sub)
           OR r.expires_at OPERATOR(pg_catalog.<) excluded.expires_at;
    SELECT * FROM oidc.revocations r
     WHERE r.kind OPERATOR(pg_catalog.=) $1 AND r.issuer OPERATOR(pg_catalog.=) $2
       AND r.value OPERATOR(pg_catalog.=) $3
$$;

CREATE FUNCTION oidc.revoke_token(issuer text, jti text, expires_at timestamptz)
RETURNS oidc.revocations
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT oidc._revoke('token', $1, $2, NULL, NULL, $3)
$$;

CREATE FUNCTION oidc.revoke_subject(issuer text, sub text, issued_before timestamptz DEFAULT now())
RETURNS oidc.revocations
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT oidc._revoke('subject', $1, $2, $3, NULL,
                        $3 OPERATOR(pg_catalog.+) make_interval(secs => oidc._max_token_lifetime()))
$$;

-- With `sub`: also that subject's tokens without a sid issued before now.
CREATE FUNCTION oidc.revoke_session(issuer text, sid text, sub text DEFAULT NULL)
RETURNS oidc.revocations
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT oidc._revoke('session', $1, $2, CASE WHEN $3 IS NOT NULL THEN now() END, $3,
                        now() OPERATOR(pg_catalog.+) make_interval(secs => oidc._max_token_lifetime()))
$$;

-- OIDC Back-Channel Logout: a verified logout token revokes its session (when it names
-- one: with its subject's tokens that carry no sid) or its subject's tokens issued before
-- it. The instant and the expiry come from the logout token itself (its iat, plus a second
-- for the tokens issued within that second), so a replay changes nothing. Runs as the
-- extension's owner; EXECUTE is for oidc_admin, who grants it to the API backend's role.
CREATE FUNCTION oidc.logout(logout_token text) RETURNS pg_catalog.jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    l pg_catalog.jsonb := oidc._verify_logout(logout_token);
    at pg_catalog.timestamptz := pg_catalog.to_timestamp((l OPERATOR(pg_catalog.->>) 'iat')::pg_catalog.float8)
                                 OPERATOR(pg_catalog.+) interval '1 second';
    lifetime pg_catalog.interval := pg_catalog.make_interval(secs => oidc._max_token_lifetime());
    r oidc.revocations;
BEGIN
    IF l OPERATOR(pg_catalog.->>) 'sid' IS NOT NULL THEN
        r := oidc._revoke('session', l OPERATOR(pg_catalog.->>) 'issuer', l OPERATOR(pg_catalog.->>) 'sid',
                          CASE WHEN l OPERATOR(pg_catalog.->>) 'sub' IS NOT NULL THEN at END,
                          l OPERATOR(pg_catalog.->>) 'sub', at OPERATOR(pg_catalog.+) lifetime);
    ELSE
        r := oidc._revoke('subject', l OPERATOR(pg_catalog.->>) 'issuer', l OPERATOR(pg_catalog.->>) 'sub',
                          at, NULL, at OPERATOR(pg_catalog.+) lifetime);
    END IF;
    RETURN pg_catalog.jsonb_build_object('issuer', r.issuer, 'revoked', r.kind, 'value', r.value,
                              'issued_before', r.issued_before, 'expires_at', r.expires_at,
                              'sub', l OPERATOR(pg_catalog.->) 'sub', 'jti', l OPERATOR(pg_catalog.->) 'jti');
END
$$;

-- The SQL surface: NULL arguments now deny (or raise, for require) instead of returning
-- NULL, so these are no longer STRICT; replay gained `rules`.
CREATE OR REPLACE FUNCTION oidc."allow"(
	"action" TEXT, /* Option < & str > */
	"resource_type" TEXT, /* Option < & str > */
	"resource" jsonb DEFAULT '{}' /* Option < RawJsonb > */
) RETURNS bool /* bool */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'allow_wrapper';
CREATE OR REPLACE FUNCTION oidc."explain"(
	"action" TEXT, /* Option < & str > */
	"resource_type" TEXT, /* Option < & str > */
	"resource" jsonb DEFAULT '{}' /* Option < RawJsonb > */
) RETURNS jsonb /* JsonB */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'explain_wrapper';
CREATE OR REPLACE FUNCTION oidc."require"(
	"action" TEXT, /* Option < & str > */
	"resource_type" TEXT, /* Option < & str > */
	"resource" jsonb DEFAULT '{}' /* Option < RawJsonb > */
) RETURNS void
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'require_wrapper';
CREATE OR REPLACE FUNCTION oidc."has_scope"(
	"scope" TEXT /* Option < & str > */
) RETURNS bool /* bool */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'has_scope_wrapper';
CREATE OR REPLACE FUNCTION oidc."has_any_scope"(
	"wanted" TEXT[] /* :: std :: option :: Option < Array < & str > > */
) RETURNS bool /* bool */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'has_any_scope_wrapper';
CREATE OR REPLACE FUNCTION oidc."has_all_scopes"(
	"wanted" TEXT[] /* :: std :: option :: Option < Array < & str > > */
) RETURNS bool /* bool */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'has_all_scopes_wrapper';
CREATE OR REPLACE FUNCTION oidc."has_role"(
	"role" TEXT /* Option < & str > */
) RETURNS bool /* bool */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'has_role_wrapper';
-- New in 0.2.0.
CREATE FUNCTION oidc."allowed_actions"(
	"resource_type" TEXT, /* Option < & str > */
	"resource" jsonb DEFAULT '{}' /* Option < RawJsonb > */
) RETURNS TEXT[] /* Vec < String > */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'allowed_actions_wrapper';
CREATE FUNCTION oidc."residual"(
	"action" TEXT, /* & str */
	"resource_type" TEXT /* & str */
) RETURNS jsonb /* JsonB */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'residual_wrapper';
CREATE FUNCTION oidc."test_rules"() RETURNS TABLE (
	"name" TEXT,  /* String */
	"passed" bool,  /* bool */
	"expected" TEXT,  /* String */
	"got" TEXT,  /* Option < String > */
	"deciding_rules" TEXT[],  /* Vec < String > */
	"gate" bool,  /* bool */
	"explanation" jsonb  /* JsonB */
)
STRICT STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'test_rules_wrapper';
-- `rules`: decide with the rules in force at `at` (the default) or with today's.
DROP FUNCTION oidc.replay(jsonb, text, text, jsonb, timestamptz);
CREATE FUNCTION oidc."replay"(
	"claims" jsonb, /* JsonB */
	"action" TEXT, /* & str */
	"resource_type" TEXT, /* & str */
	"resource" jsonb DEFAULT '{}', /* RawJsonb */
	"at" timestamp with time zone DEFAULT now(), /* pgrx :: datum :: TimestampWithTimeZone */
	"rules" TEXT DEFAULT 'at' /* & str */
) RETURNS jsonb /* JsonB */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'replay_wrapper';

-- What the background worker last did per discovery issuer.
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
SELECT oidc._worker_wake();  -- the worker starts serving this database after the update

-- oidc_admin was made by 0.1.0 without the comment by which a later CREATE EXTENSION, in
-- another database, knows it as the extension's own; 0.2.0 refuses to adopt a role that
-- can do more than administer the extension, and an upgrade warns instead (the role is
-- already in use).
DO $$
DECLARE
    r pg_catalog.pg_roles;
BEGIN
    SELECT * INTO r FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'oidc_admin';
    IF r.rolcanlogin OR r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication
       OR r.rolbypassrls
       OR EXISTS (SELECT FROM pg_catalog.pg_auth_members m WHERE m.member OPERATOR(pg_catalog.=) r.oid) THEN
        RAISE WARNING 'role oidc_admin has privileges of its own'
            USING DETAIL = 'pg_oidc_authz 0.2.0 refuses to install with such a role; its members administer the trust configuration',
                  HINT = 'remove its LOGIN, attributes and memberships';
    ELSIF pg_catalog.shobj_description(r.oid, 'pg_authid') IS NULL THEN
        COMMENT ON ROLE oidc_admin IS 'pg_oidc_authz: administrators of the trust configuration';
    END IF;
END
$$;

-- Privileges, as 0.2.0's final block (src/lib.rs) grants them.
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
