"""Decision stats: `oidc.stats()` counts what a scripted workload did — tokens verified by
algorithm, refused by the check that failed, cache hits and misses, row decisions per rule,
rule errors, shadow differences — across backends (the test cluster preloads the library,
so the counters are in shared memory: `scope = 'cluster'`); `oidc.stats_reset()` zeroes
the database's, `oidc.stats_reset(all_databases => true)` every one (superuser only). A role
without `pg_read_all_stats` sees its own database's counters only. Without preloading each backend counts its own (`scope = 'backend'`, see the pg_test
`stats_are_per_backend_without_preloading`)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from helpers import connect


def stats(conn) -> dict[tuple, int]:
    """The counters as {(counter, labels as sorted tuples): value}."""
    rows = conn.execute("select counter, labels, value, scope from oidc.stats()").fetchall()
    assert {r[3] for r in rows} == {"cluster"}
    return {(r[0], tuple(sorted(r[1].items()))): r[2] for r in rows}


def use(conn, token: str, query: str = "select oidc.sub()"):
    with conn.transaction():
        conn.execute("select set_config('oidc.token', %s, true)", (token,))
        return conn.execute(query).fetchall()


@pytest.fixture
def counted(superuser, issuer):
    superuser.execute("delete from oidc.rules")
    marker = f"read-{uuid.uuid4().hex[:8]}"
    superuser.execute(
        "insert into oidc.rules (name, effect, actions, resource_type, condition, mode) values "
        "('stats-owner', 'permit', %(a)s, 'doc', 'resource.owner == claims.sub', 'enforce'), "
        "('stats-no-bob', 'forbid', %(a)s, 'doc', 'claims.sub == \"bob\"', 'enforce'), "
        "('stats-broken', 'permit', %(a)s, 'doc', 'claims.level > 3', 'enforce'), "
        "('stats-staged', 'forbid', %(a)s, 'doc', 'resource.owner == \"alice\"', 'shadow')",
        {"a": [marker]},
    )
    yield marker
    superuser.execute("delete from oidc.rules")


def test_stats_count_a_scripted_workload_across_backends(counted, superuser, make_token):
    marker = counted
    decide = f"select count(*) from docs d where oidc.allow('{marker}', 'doc', 'owner', d.owner)"
    superuser.execute("select oidc.stats_reset(all_databases => true)")
    one, two = connect(), connect()
    try:
        alice_rs, alice_es = make_token("RS256", sub="alice"), make_token("ES256", sub="alice")
        bob_hs = make_token("HS256", sub="bob")
        # (the signature's last character, which holds unused bits, is kept: canonical)
        forged = alice_rs[:-9] + ("A" * 8 if alice_rs[-9:-1] != "A" * 8 else "B" * 8) + alice_rs[-1]
        expired = make_token("RS256", sub="carol", iat=1700000000, exp=1700000300)
        # Backend one: alice over RS256 (a miss, then a hit in a later transaction) and
        # ES256, bob over HS256; 4 docs each, decided per row.
        assert use(one, alice_rs, decide) == [(2,)]
        assert use(one, alice_rs, decide) == [(2,)]
        assert use(one, alice_es) == [("alice",)]
        assert use(one, bob_hs, decide) == [(0,)]
        # Backend two: the same RS256 token (its cache is its own: a miss), a forged one
        # twice (refused tokens are not cached), an expired one.
        assert use(two, alice_rs) == [("alice",)]
        for _ in range(2):
            with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
                use(two, forged)
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            use(two, expired)
    finally:
        one.close()
        two.close()
    got = stats(superuser)
    db = (("database", "oidc_e2e"),)

    def value(counter: str, **labels) -> int:
        key = (counter, tuple(sorted({**dict(db if counter not in TOKEN_COUNTERS else ()), **labels}.items())))
        return got.get(key, 0)

    assert value("tokens_verified", alg="RS256") == 3  # one's alice, two's alice, carol (expired later)
    assert value("tokens_verified", alg="ES256") == 1
    assert value("tokens_verified", alg="HS256") == 1
    assert value("tokens_refused", check="signature") == 2
    assert value("tokens_refused", check="exp") == 1
    assert value("cache_misses") == 7  # 5 verified + 2 forged
    assert value("cache_hits") == 1
    # alice: 2 docs by the owner permit, 2 denied by default (the broken permit errors on
    # each row); twice. bob: 4 denied by the forbid.
    assert value("decisions", rule="stats-owner", decision="allow") == 4
    assert value("decisions", rule=None, decision="deny") == 4
    assert value("decisions", rule="stats-no-bob", decision="deny") == 4
    assert value("rule_errors", rule="stats-broken") == 8
    assert value("shadow_differences", rule="stats-staged", would="deny") == 4  # alice's own, twice
    assert value("stats_dropped") == 0

    since = superuser.execute("select distinct since from oidc.stats()").fetchall()
    superuser.execute("select oidc.stats_reset()")
    after = stats(superuser)
    # This database's counters (key refreshes are the keys worker's, which runs beside the
    # test); the tokens' and the cache's, which have no database, stay, and so does `since`.
    assert {k: v for k, v in after.items() if v and k[0] not in TOKEN_COUNTERS | {"key_refreshes"}} == {}, after
    assert after[("cache_hits", ())] == 1
    assert superuser.execute("select distinct since from oidc.stats()").fetchall() == since
    superuser.execute("select oidc.stats_reset(all_databases => true)")
    after = stats(superuser)
    assert {k: v for k, v in after.items() if v and k[0] != "key_refreshes"} == {}, after
    assert superuser.execute("select count(distinct since) from oidc.stats()").fetchone()[0] == 1
    assert superuser.execute("select distinct since from oidc.stats()").fetchall() != since


TOKEN_COUNTERS = {"tokens_verified", "tokens_refused", "cache_hits", "cache_misses", "stats_dropped"}


def test_stats_are_for_admins_and_monitoring(superuser, app):
    for fn in ("oidc.stats()", "oidc.stats_reset()", "oidc.stats_reset(true)"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(f"select * from {fn}")
    acl = dict(superuser.execute(
        "select p.proname, array_to_string(p.proacl, ',') from pg_proc p"
        " where p.pronamespace = 'oidc'::regnamespace and p.proname in ('stats', 'stats_reset')").fetchall())
    assert "pg_monitor=X" in acl["stats"] and "oidc_admin=X" in acl["stats"]
    assert "pg_monitor" not in acl["stats_reset"] and "oidc_admin=X" in acl["stats_reset"]


ADMIN, MONITOR, OTHER = "e2e_stats_admin", "e2e_stats_monitor", "e2e_stats_other"


@pytest.fixture
def two_databases(superuser, issuer, make_token):
    """A decision counted in another database with the extension (rule `stats-elsewhere`),
    an oidc_admin and a pg_monitor login role."""
    with connect("postgres") as admin:
        admin.execute(f"drop database if exists {OTHER} with (force)")
        admin.execute(f"create database {OTHER}")
    for role in (ADMIN, MONITOR):
        superuser.execute(f"drop role if exists {role}")
    superuser.execute(f"create role {ADMIN} login in role oidc_admin")
    superuser.execute(f"create role {MONITOR} login in role pg_monitor")
    try:
        with connect(OTHER) as other:
            other.execute("create extension pg_oidc_authz")
            other.execute("insert into oidc.rules (name, effect, actions, resource_type)"
                          " values ('stats-elsewhere', 'permit', '{read}', 'doc')")
            other.execute("set oidc.residuals = off")  # decided (and counted) per row
            assert other.execute("select oidc.allow('read', 'doc', '{}'::jsonb)").fetchone() == (True,)
        yield
    finally:
        with connect("postgres") as admin:
            admin.execute(f"drop database if exists {OTHER} with (force)")
        for role in (ADMIN, MONITOR):
            superuser.execute(f"drop role if exists {role}")


def test_other_databases_counters_are_for_monitoring_and_superusers(two_databases, superuser):
    elsewhere = ("select coalesce(sum(value), 0) from oidc.stats()"
                 f" where labels ->> 'database' = '{OTHER}' and labels ->> 'rule' = 'stats-elsewhere'")
    assert superuser.execute(elsewhere).fetchone()[0] == 1
    with connect(user=MONITOR) as monitor:
        assert monitor.execute(elsewhere).fetchone()[0] == 1
    with connect(user=ADMIN) as admin:
        assert admin.execute(elsewhere).fetchone()[0] == 0, "an oidc_admin sees its database's only"
        assert admin.execute("select count(*) from oidc.stats() where labels ? 'database'"
                             " and labels ->> 'database' <> current_database()").fetchone()[0] == 0
        # Its reset is its database's; every database's is a superuser's.
        admin.execute("select oidc.stats_reset()")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            admin.execute("select oidc.stats_reset(all_databases => true)")
    assert superuser.execute(elsewhere).fetchone()[0] == 1


def test_a_dropped_databases_counters_are_forgotten(two_databases, superuser):
    """Their slots are freed with the database (shown by number until then): a cluster that
    creates and drops a database per test run would otherwise fill the table."""
    oid = superuser.execute("select oid::text from pg_database where datname = %s", (OTHER,)).fetchone()[0]
    by_name = f"select count(*) from oidc.stats() where labels ->> 'database' = '{OTHER}'"
    assert superuser.execute(by_name).fetchone()[0] >= 1
    here = "select count(*) from oidc.stats() where labels ->> 'database' = current_database()"
    kept = superuser.execute(here).fetchone()[0]
    with connect("postgres") as admin:
        admin.execute(f"drop database {OTHER} with (force)")
    gone = superuser.execute("select count(*) from oidc.stats() where labels ->> 'database' = %s",
                             (oid,)).fetchone()[0]
    assert gone == 0
    assert superuser.execute(here).fetchone()[0] >= kept, "this database's counters stay"
