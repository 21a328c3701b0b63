"""Rules the planner can use: `oidc.allow(action, type, 'name', value, …)` in a policy is
replaced, when planned, by its rules' residual — SQL over the columns, with the principal's
values computed at execution — so indexes serve it. It decides exactly as the evaluator
(the jsonb form, which is never replaced, decides the same rows), across principals of one
generic plan, and by the new rules after a change."""

from __future__ import annotations

import itertools

import psycopg
import pytest
from psycopg import sql

from helpers import APP_ROLE, app_connect, mint

RULES = [
    ("owner", "permit", "{read}", "rdoc", "resource.owner == claims.sub"),
    ("tenant-read", "permit", "{read}", "rdoc", "'docs:read' in scopes && resource.tenant == claims.tenant"),
    ("label-share", "permit", "{read}", "rdoc", "resource.labels.exists(l, l in claims.groups)"),
    ("team", "permit", "{read}", "rdoc", "claims.team in resource.labels"),
    ("staff", "permit", "{read}", "rdoc", "resource.owner in ['root', 'ops'] && 'staff' in roles"),
    ("not-t3", "permit", "{read}", "rdoc", "claims.level > 3 ? !(resource.tenant == 't3') : false"),
    ("suspended", "forbid", "{*}", "*", "has(claims.suspended) && claims.suspended"),
    ("hidden", "forbid", "{read}", "rdoc", "'hidden' in resource.labels && !('auditor' in roles)"),
    ("archived", "forbid", "{read}", "rdoc", "has(resource.archived) && resource.archived && !('auditor' in roles)"),
    ("no-such", "permit", "{read}", "rdoc", "resource.missing == claims.sub"),
    ("prefix", "permit", "{read}", "rdoc", "resource.owner.startsWith(claims.team) || resource.tenant.startsWith('t2')"),
    # Shapes that do not translate: each is decided per row, alone, inside the residual.
    ("two-labels", "permit", "{read}", "rdoc", "size(resource.labels) > 1 && resource.owner == claims.sub"),
    ("secret", "forbid", "{read}", "rdoc", "resource.labels.exists(l, l.startsWith('hid')) && claims.level == 1"),
]
PAIRS = "'owner', owner, 'tenant', tenant, 'labels', labels, 'archived', archived"
JSONB = "jsonb_build_object('owner', owner, 'tenant', tenant, 'labels', labels, 'archived', archived)"


@pytest.fixture(scope="module")
def docs(database):
    from helpers import connect

    role = sql.Identifier(APP_ROLE)
    with connect() as su:
        su.execute("drop table if exists rdocs, rdocs_ref")
        su.execute("create table rdocs (id int primary key, owner text, tenant text, labels text[], archived boolean)")
        # Edge values: NULL columns, NULL elements, empty arrays, the empty string, non-ASCII.
        owners = ["alice", "bob", "carol", "root", "ops", "", None, "Ålice", "alice "]
        tenants = ["t1", "t2", "t3", None, ""]
        labels = [["eng"], ["ops", "x"], [], None, [None, "eng"], ["hidden", "eng"], ["hidden"], ["é", "l42"],
                  [["eng", "x"], ["ops", None]]]  # two dimensions: the evaluator flattens them
        archived = [False, True, None]
        rows = [(i, o, t, l, a) for i, (o, t, l, a) in enumerate(itertools.product(owners, tenants, labels, archived))]
        with su.cursor() as cur:
            cur.executemany("insert into rdocs values (%s, %s, %s, %s, %s)", rows)
        su.execute("insert into rdocs select i + 10000, 'user-' || (i % 500), 't' || (i % 7),"
                   " array['l' || (i % 50)], false from generate_series(1, 20000) i")
        su.execute("create table rdocs_ref as select * from rdocs")
        su.execute("create index on rdocs (owner)")
        su.execute("create index on rdocs (tenant)")
        su.execute("create index on rdocs using gin (labels)")
        su.execute("analyze rdocs")
        su.execute("alter table rdocs enable row level security")
        su.execute("alter table rdocs force row level security")
        su.execute(f"create policy p on rdocs for select using (oidc.allow('read', 'rdoc', {PAIRS}))")
        su.execute(sql.SQL("grant select on rdocs, rdocs_ref to {}").format(role))
    yield
    with connect() as su:
        su.execute("drop table if exists rdocs, rdocs_ref")


@pytest.fixture
def rules(superuser, docs):
    superuser.execute("delete from oidc.rules")
    with superuser.cursor() as cur:
        cur.executemany("insert into oidc.rules (name, effect, actions, resource_type, condition)"
                        " values (%s, %s, %s, %s, %s)", RULES)
    yield
    superuser.execute("delete from oidc.rules")


PRINCIPALS = [
    dict(sub="alice", tenant="t1", groups=["eng"], scope="docs:read", team="ops", level=5),
    dict(sub="bob", tenant="t3", groups=["l42", "x"], scope="other", roles=["staff"], level=1),
    dict(sub="carol", groups=[], roles=["auditor"], team=None, level="high"),
    dict(sub="root", tenant=None, groups="eng", suspended=False),
    dict(sub="ops", tenant="t2", scope="docs:read", suspended=True),
    dict(sub="", tenant="", groups=[None, "hidden"]),
]


def visible(conn: psycopg.Connection, tok: str, query: str) -> list[int]:
    with conn.transaction():
        conn.execute("select set_config('oidc.token', %s, true)", (tok,))
        return conn.execute(query).fetchone()[0] or []


POLICY = "select array_agg(id order by id) from rdocs"
# The evaluator per row, with the pair form's conversions: names that are not constants
# (concat() is STABLE, not folded) keep the planner from replacing the call.
UNREPLACED = "concat('owner'), owner, concat('tenant'), tenant, concat('labels'), labels, concat('archived'), archived"
REFERENCE = f"select array_agg(id order by id) from rdocs_ref where oidc.allow('read', 'rdoc', {UNREPLACED})"
# The jsonb form (never replaced) agrees on one-dimensional arrays.
JSONB_REFERENCE = (f"select array_agg(id order by id) from rdocs_ref where oidc.allow('read', 'rdoc', {JSONB})"
                   " and coalesce(array_ndims(labels), 1) = 1")
ONE_DIM = "select array_agg(id order by id) from rdocs where coalesce(array_ndims(labels), 1) = 1"


def test_the_residual_decides_as_the_evaluator(issuer, rules, make_token):
    with app_connect() as app:
        # The policy is a residual; the two rules that do not translate are evaluated alone.
        plan = "\n".join(r[0] for r in app.execute(f"explain (verbose, costs off) {POLICY}"))
        assert "oidc.allow" not in plan and "oidc._fixed_bool" in plan, plan
        assert plan.count("oidc._rule(") == 2, plan
        reference_plan = "\n".join(r[0] for r in app.execute(f"explain (costs off) {REFERENCE}"))
        assert "oidc.allow" in reference_plan, reference_plan
        for claims in PRINCIPALS:
            tok = make_token(**claims)
            assert visible(app, tok, POLICY) == visible(app, tok, REFERENCE), claims
            assert visible(app, tok, ONE_DIM) == visible(app, tok, JSONB_REFERENCE), claims
        assert visible(app, make_token(sub="nobody"), POLICY) == visible(app, make_token(sub="nobody"), REFERENCE)


# The rules of the benchmark: each translates to an indexable arm (a hand-written policy
# with a principal-only permit or `tenant <> 't3'` could not use an index either).
INDEXABLE = [r for r in RULES if r[0] in ("owner", "tenant-read", "label-share", "team", "suspended", "hidden",
                                          "archived", "no-such")]


def test_indexes_serve_the_policy(issuer, rules, superuser, make_token):
    superuser.execute("delete from oidc.rules where name <> all(%s)", ([r[0] for r in INDEXABLE],))
    with app_connect() as app:
        with app.transaction():
            app.execute("select set_config('oidc.token', %s, true)", (make_token(**PRINCIPALS[1]),))
            plan = "\n".join(r[0] for r in app.execute("explain (costs off) select count(*) from rdocs"))
    assert "oidc.allow" not in plan, plan
    assert "Bitmap Index Scan" in plan or "Index Scan" in plan, plan


def test_a_plan_follows_a_rule_change(issuer, rules, superuser, make_token):
    tok = make_token(**PRINCIPALS[0])
    with app_connect() as app:
        app.execute(f"prepare q as {POLICY}")
        before = visible(app, tok, "execute q")
        assert before == visible(app, tok, REFERENCE)
        superuser.execute("delete from oidc.rules where name in ('owner', 'label-share')")
        after = visible(app, tok, "execute q")
        assert after == visible(app, tok, REFERENCE)
        assert after != before


def test_one_generic_plan_decides_for_each_token(issuer, rules, make_token):
    with app_connect() as app:
        app.execute("set plan_cache_mode = force_generic_plan")
        app.execute(f"prepare g as {POLICY}")
        for claims in PRINCIPALS:
            tok = make_token(**claims)
            assert visible(app, tok, "execute g") == visible(app, tok, REFERENCE), claims


def test_partitions_are_pruned_and_parallel_scans_agree(issuer, superuser, make_token, database):
    """The residual's principal values are initplan parameters: a table partitioned by
    tenant scans only the caller's tenant's partition (runtime pruning), and a forced
    parallel scan returns what the serial one does."""
    role = sql.Identifier(APP_ROLE)
    superuser.execute("drop table if exists pdocs")
    superuser.execute("create table pdocs (id int, owner text, tenant text not null) partition by list (tenant)")
    for t in ("t1", "t2", "t3"):
        superuser.execute(f"create table pdocs_{t} partition of pdocs for values in ('{t}')")
    superuser.execute("insert into pdocs select i, 'user-' || (i % 50), 't' || (1 + i % 3) from generate_series(1, 30000) i")
    superuser.execute("analyze pdocs")
    superuser.execute("alter table pdocs enable row level security")
    superuser.execute("alter table pdocs force row level security")
    superuser.execute("create policy p on pdocs for select using (oidc.allow('read', 'pdoc', 'tenant', tenant, 'owner', owner))")
    superuser.execute(sql.SQL("grant select on pdocs to {}").format(role))
    superuser.execute("delete from oidc.rules")
    superuser.execute("insert into oidc.rules (name, effect, actions, resource_type, condition) values"
                      " ('tenant', 'permit', '{read}', 'pdoc', 'resource.tenant == claims.tenant'),"
                      " ('stop', 'forbid', '{read}', 'pdoc', 'resource.owner == \"user-7\" && claims.level < 2')")
    tok = make_token(tenant="t2", level=1)
    try:
        with app_connect() as app:
            with app.transaction():
                app.execute("select set_config('oidc.token', %s, true)", (tok,))
                plan = "\n".join(r[0] for r in app.execute(
                    "explain (analyze, costs off, timing off, summary off) select count(*) from pdocs"))
                serial = app.execute("select count(*), sum(id) from pdocs").fetchone()
                app.execute("set local parallel_setup_cost = 0")
                app.execute("set local parallel_tuple_cost = 0")
                app.execute("set local min_parallel_table_scan_size = 0")
                app.execute("set local max_parallel_workers_per_gather = 2")
                parallel_plan = "\n".join(r[0] for r in app.execute(
                    "explain (costs off) select count(*), sum(id) from pdocs"))
                parallel = app.execute("select count(*), sum(id) from pdocs").fetchone()
            # Only the caller's partition is scanned; the others are never executed.
            assert "pdocs_t2" in plan and "(never executed)" in plan, plan
            assert "Gather" in parallel_plan, parallel_plan
            assert serial == parallel and serial[0] == 10000 - 200, (serial, parallel)
    finally:
        superuser.execute("drop table pdocs")


def test_plpgsql_expressions_keep_the_call(issuer, rules, superuser, make_token):
    """A PL/pgSQL expression without a table is run as a "simple expression", without
    initplans: the call is not replaced there (it was, once, and crashed the backend)."""
    superuser.execute("delete from oidc.rules where name <> 'owner'")
    superuser.execute("""
        create or replace function public.e2e_may_read(o text) returns boolean
        language plpgsql stable as $$ begin return oidc.allow('read', 'rdoc', 'owner', o); end $$""")
    try:
        with app_connect() as app:
            tok = make_token(sub="alice")
            assert visible(app, tok, "select array[public.e2e_may_read('alice'), public.e2e_may_read('bob')]") == [
                True, False]
            with app.transaction():
                app.execute("select set_config('oidc.token', %s, true)", (tok,))
                app.execute("do $$ declare o text := 'alice'; b bool; begin"
                            " b := oidc.allow('read', 'rdoc', 'owner', o);"
                            " if not b then raise exception 'denied'; end if; end $$")
            assert app.execute("select 1").fetchone()[0] == 1
    finally:
        superuser.execute("drop function public.e2e_may_read(text)")
