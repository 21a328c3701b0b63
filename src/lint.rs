//! `oidc.lint()`: what in this database's row-level security is likely wrong or slow —
//! claim calls evaluated on every row, `oidc.allow()` call sites that never pass an
//! attribute a matching rule reads (that rule, enforced or shadow, then errors on every row
//! and fails closed, silently), call sites that shadow rules keep from the planner, row-level
//! security enabled but not forced, tables a login role can read without any, write policies
//! without `WITH CHECK`, views over protected tables that run as their owner, gated rule
//! tests that decide by the clock. It reads the catalogs, the rules and the rule tests; it
//! changes nothing.

use crate::cache;
use crate::residual::helpers::helpers;
use crate::residual::nodes::list_nodes;
use oidc_authz_core::rules::lint::resource_attributes;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CString;

pgrx::extension_sql!(
    r#"
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
"#,
    name = "lint",
    requires = [lint_calls, lint_rule_tests],
);

/// One `oidc.allow()` call with pairs found in a policy.
struct Call {
    action: String,
    resource_type: String,
    names: Vec<String>,
    /// Of the form the planner support function rewrites (`crate::residual`): an even
    /// number of arguments, at least four, every name a constant, no explicit VARIADIC.
    rewritable: bool,
    /// Called with an explicit VARIADIC array, which `oidc.allow()` refuses when it runs.
    variadic: bool,
}

struct Walk {
    allow: [pg_sys::Oid; 2],
    calls: Vec<Call>,
}

#[pg_guard]
unsafe extern "C-unwind" fn find_calls(
    node: *mut pg_sys::Node,
    context: *mut std::ffi::c_void,
) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: `context` is the Walk of `calls_in`; nodes are those of a policy expression.
    unsafe {
        // (subqueries are not walked: a Query is no expression node)
        if pgrx::is_a(node, pg_sys::NodeTag::T_Query) {
            return false;
        }
        let walk = &mut *(context as *mut Walk);
        if pgrx::is_a(node, pg_sys::NodeTag::T_FuncExpr) {
            let f = &*(node as *mut pg_sys::FuncExpr);
            if walk.allow.contains(&f.funcid) {
                let args = list_nodes(f.args);
                if let (Some(action), Some(resource_type)) = (
                    args.first().and_then(|a| stored_text(*a)),
                    args.get(1).and_then(|a| stored_text(*a)),
                ) {
                    let names: Vec<String> = args
                        .iter()
                        .skip(2)
                        .step_by(2)
                        .filter_map(|a| stored_text(*a))
                        .collect();
                    let rewritable = !f.funcvariadic
                        && args.len() >= 4
                        && args.len().is_multiple_of(2)
                        && names.len() == (args.len() - 2) / 2;
                    walk.calls.push(Call {
                        action,
                        resource_type,
                        names,
                        rewritable,
                        variadic: f.funcvariadic,
                    });
                }
            }
        }
        pg_sys::expression_tree_walker(node, Some(find_calls), context)
    }
}

/// A constant text argument as a policy stores it: a literal, perhaps under a binary
/// coercion (`'owner'::varchar` passed as text), which the planner folds into the constant
/// that `crate::residual` reads. (Expressions of constants, `'ow' || 'ner'`, are folded
/// only when planned; folding them here could raise a policy's error in the lint.)
///
/// # Safety
/// `n` is null or a node of a policy expression.
unsafe fn stored_text(mut n: *mut pg_sys::Node) -> Option<String> {
    // SAFETY: per the caller; a RelabelType's argument is an expression node.
    unsafe {
        while !n.is_null() && pgrx::is_a(n, pg_sys::NodeTag::T_RelabelType) {
            n = (*(n as *mut pg_sys::RelabelType)).arg.cast();
        }
        crate::residual::nodes::const_text(n)
    }
}

/// The `oidc.allow()` pair calls of a stored expression (`pg_node_tree` text).
fn calls_in(tree: &str, allow: [pg_sys::Oid; 2]) -> Vec<Call> {
    let Ok(tree) = CString::new(tree) else {
        return Vec::new();
    };
    let mut walk = Walk {
        allow,
        calls: Vec::new(),
    };
    // SAFETY: a node tree as the catalog stores it, read back into the current context.
    unsafe {
        let node = pg_sys::stringToNode(tree.as_ptr()) as *mut pg_sys::Node;
        find_calls(node, (&mut walk as *mut Walk).cast());
    }
    walk.calls
}

/// A policy: schema, table, name, and its USING and WITH CHECK trees.
type PolicyRow = (String, String, String, Option<String>, Option<String>);

/// A row of `oidc._lint_calls()`: schema, table, policy, severity (`None`: by the table's
/// size, which `oidc.lint()` knows), problem, suggestion.
type LintRow = (String, String, String, Option<&'static str>, String, String);

/// What a rule that errors on every row does: its effect, enforced or shadow.
fn errors_on_every_row(rule: &oidc_authz_core::rules::Rule) -> &'static str {
    use oidc_authz_core::rules::Effect;
    match (rule.effect, rule.shadow) {
        (Effect::Permit, false) => "it never grants",
        (Effect::Forbid, false) => "it denies every row",
        // (a shadow rule's differences are what it is for)
        (Effect::Permit, true) => "as a shadow rule it never records a difference",
        (Effect::Forbid, true) => "as a shadow rule it records a difference for every row allowed",
    }
}

/// Policies whose `oidc.allow()` calls never pass an attribute a matching rule reads, and
/// those whose calls shadow rules match (the planner support function leaves such a call to
/// be decided per row: `crate::residual`).
#[allow(clippy::type_complexity)] // (the columns' names are part of the type)
#[pg_extern(stable, parallel_safe, name = "_lint_calls")]
fn lint_calls() -> TableIterator<
    'static,
    (
        name!(schema_name, String),
        name!(table_name, String),
        name!(policy_name, String),
        name!(severity, Option<&'static str>),
        name!(problem, String),
        name!(suggestion, String),
    ),
> {
    let mut out: Vec<LintRow> = Vec::new();
    let Some(h) = helpers() else {
        return TableIterator::new(out);
    };
    let rules = cache::rules();
    let policies: Vec<PolicyRow> = Spi::connect(|client| {
        let rows = client.select(
            "select n.nspname::pg_catalog.text, c.relname::pg_catalog.text, p.polname::pg_catalog.text, \
             p.polqual::pg_catalog.text, p.polwithcheck::pg_catalog.text \
             from pg_catalog.pg_policy p join pg_catalog.pg_class c on c.oid operator(pg_catalog.=) p.polrelid \
             join pg_catalog.pg_namespace n on n.oid operator(pg_catalog.=) c.relnamespace \
             order by 1, 2, 3",
            None,
            &[],
        )?;
        let mut v = Vec::new();
        for row in rows {
            v.push((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<String>(3)?.unwrap_or_default(),
                row.get::<String>(4)?,
                row.get::<String>(5)?,
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(v)
    })
    .unwrap_or_default();
    for (schema, table, policy, qual, check) in policies {
        for (i_tree, tree) in [qual, check].into_iter().enumerate() {
            let Some(tree) = tree else { continue };
            // (only a USING expression filters what a scan reads; WITH CHECK tests each row
            // written whatever it is)
            let filters = i_tree == 0;
            for call in calls_in(&tree, [h.allow, h.allow_variadic]) {
                let mut found = Vec::new();
                if call.variadic {
                    found.push((
                        Some("warning"),
                        format!(
                            "oidc.allow('{}', '{}', …) is called with a VARIADIC array, which it refuses: every statement that evaluates it errors",
                            call.action, call.resource_type
                        ),
                        "pass the resource as name/value pairs: oidc.allow(action, type, 'name', <column>, …)".to_owned(),
                    ));
                }
                let matching = rules.matching(&call.action, &call.resource_type);
                // (a VARIADIC call's names are not known here, and it errors anyway)
                for i in matching
                    .permits()
                    .iter()
                    .chain(matching.forbids())
                    .copied()
                    .chain(matching.shadows())
                    .filter(|_| !call.variadic)
                {
                    let rule = rules.rule(i);
                    let Some(program) = &rule.program else {
                        continue;
                    };
                    let attrs = resource_attributes(program);
                    for missing in attrs
                        .read
                        .iter()
                        .filter(|a| !call.names.contains(a) && !attrs.tested.contains(*a))
                    {
                        found.push((
                            Some("warning"),
                            format!(
                                "{}rule `{}` ({}) reads resource.{missing}, which oidc.allow('{}', '{}', …) does not pass: it errors on every row ({})",
                                if rule.shadow { "shadow " } else { "" },
                                rule.name,
                                rule.effect.name(),
                                call.action,
                                call.resource_type,
                                errors_on_every_row(rule),
                            ),
                            format!("pass '{missing}', <column> in the call, or guard the rule with has(resource.{missing})"),
                        ));
                    }
                }
                // Only where the call would otherwise be rewritten: a call of another form
                // is decided per row anyway (and a small table is read whole anyway).
                for i in matching.shadows().filter(|_| filters && call.rewritable) {
                    found.push((
                        None, // (a warning on a large table, or one of unknown size)
                        format!(
                            "shadow rule `{}` matches oidc.allow('{}', '{}', …): while it does, the call is decided row by row, never turned into a condition an index can serve",
                            rules.rule(i).name,
                            call.action,
                            call.resource_type,
                        ),
                        "once its differences are reviewed (oidc.stats(), oidc.explain()), enforce or drop it; meanwhile give it the narrowest actions and resource_type it is meant to try".to_owned(),
                    ));
                }
                for (severity, problem, suggestion) in found {
                    let row = (
                        schema.clone(),
                        table.clone(),
                        policy.clone(),
                        severity,
                        problem,
                        suggestion,
                    );
                    // (a policy calling oidc.allow() twice for one action and type)
                    if !out.contains(&row) {
                        out.push(row);
                    }
                }
            }
        }
    }
    TableIterator::new(out)
}

/// Gated rule tests without `at` that a matching enforced rule decides by the clock: they
/// pass or fail by when they run, and one failing refuses the next change of the rules.
#[pg_extern(stable, parallel_safe, name = "_lint_rule_tests")]
fn lint_rule_tests() -> TableIterator<'static, (name!(problem, String), name!(suggestion, String))>
{
    use oidc_authz_core::rules::cases::RuleTest;
    let rules = cache::rules();
    let mut out = Vec::new();
    for row in crate::trust::read_rule_tests() {
        let Ok(test) = RuleTest::from_row(&row) else {
            continue; // (oidc.test_rules() reports it)
        };
        let clock = test.clock_rules(&rules);
        if !test.gate || clock.is_empty() {
            continue;
        }
        out.push((
            format!(
                "gated rule test `{}` has no `at`, and {} `{}` read{} the clock: it is decided at the time it runs, so it can pass now and fail later, refusing every change of the rules until it is fixed",
                test.name,
                if clock.len() == 1 { "rule" } else { "rules" },
                clock.join("`, `"),
                if clock.len() == 1 { "s" } else { "" },
            ),
            format!(
                "give it a fixed time, UPDATE oidc.rule_tests SET at = '<when>' WHERE name = {}, and a test on each side of the rule's boundary",
                quote_literal(&test.name)
            ),
        ));
    }
    TableIterator::new(out)
}

/// `s` as an SQL literal that reads back as `s` whatever `standard_conforming_strings` is,
/// as PostgreSQL's `quote_literal()` makes it: quotes and backslashes doubled, `E` before
/// one holding a backslash.
fn quote_literal(s: &str) -> String {
    let body = s.replace('\\', "\\\\").replace('\'', "''");
    if s.contains('\\') {
        format!("E'{body}'")
    } else {
        format!("'{body}'")
    }
}
