"""Residuals over integer and timestamp columns: `resource.n < claims.level`,
`resource.created > timestamp(claims.since)` become `n <= (select bound)` over the column,
so a b-tree index serves them, and decide exactly as the evaluator does — CEL compares
numbers across int, uint and double (an int8 converted to double is rounded), a NULL column
is CEL's null (equal only to null, never ordered), and a timestamp outside CEL's years
1–9999 (`±infinity` included) is its first or last instant."""

from __future__ import annotations

import itertools

import psycopg
import pytest
from psycopg import sql

from helpers import APP_ROLE, app_connect, sub_with

RULES = [
    ("rank-ge", "permit", "{read}", "num", "resource.rank >= claims.level"),
    ("rank-eq", "permit", "{read}", "num", "resource.rank == claims.level && 'eq' in scopes"),
    ("big-eq", "permit", "{read}", "num", "resource.big == claims.big"),
    ("big-ne", "forbid", "{read}", "num", "has(claims.strict) && resource.big != claims.big"),
    ("small-lt", "permit", "{read}", "num", "resource.small < 0 || 5 <= resource.small"),
    ("floor", "forbid", "{read}", "num", "has(claims.floor) && resource.rank < claims.floor"),
    ("since", "permit", "{read}", "num", "resource.created > timestamp(claims.since)"),
    ("until", "forbid", "{read}", "num", "has(claims.until) && timestamp(claims.until) <= resource.created"),
    ("local", "permit", "{read}", "num", "resource.local == timestamp('2026-01-01T00:00:00Z')"),
    ("past", "permit", "{read}", "num", "resource.local < context.time && claims.sub == 'past'"),
    # Strings order by code point whatever the column's collation (here a linguistic one,
    # where 'Ålice' < 'bob'; by code point it is after every ASCII string).
    ("name", "permit", "{read}", "num", "resource.name < claims.sub && resource.name >= 'a'"),
]
PAIRS = "'rank', rank, 'big', big, 'small', small, 'created', created, 'local', local, 'name', name"
UNREPLACED = ("concat('rank'), rank, concat('big'), big, concat('small'), small,"
              " concat('created'), created, concat('local'), local, concat('name'), name")
POLICY = "select array_agg(id order by id) from nums"
REFERENCE = f"select array_agg(id order by id) from nums_ref where oidc.allow('read', 'num', {UNREPLACED})"

TWO53 = 2 ** 53
RANKS = [None, -2147483648, -1, 0, 1, 2, 3, 5, 2147483647]
BIGS = [None, -(2 ** 63), 0, 3, TWO53 - 1, TWO53, TWO53 + 1, TWO53 + 2, 2 ** 63 - 1]
SMALLS = [None, -32768, -1, 0, 4, 5, 32767]
NAMES = [None, "", "a", "alice", "alice ", "Ålice", "bob", "bob\u00e9", "zed", "\U0001f600"]
TIMES = [None, "-infinity", "infinity", "4713-01-01 00:00:00+00 BC", "0001-01-01 00:00:00+00",
         "1970-01-01 00:00:00+00", "2025-12-31 23:59:59.999999+00", "2026-01-01 00:00:00+00",
         "2026-01-01 00:00:00.000001+00", "9999-12-31 23:59:59.999999+00", "10000-01-01 00:00:00+00"]


def linguistic_collation(su: psycopg.Connection) -> sql.Identifier:
    """A collation that does not order by code point: ICU's English where the server has ICU
    (Debian's PostgreSQL 15), else glibc's en_US.UTF-8 (the PostgreSQL 18 of scripts/pg.sh is
    built without ICU; scripts/setup.sh generates that locale). The residual must ignore
    either: it compares under "C", as CEL does."""
    if su.execute("select 1 from pg_collation where collname = 'en-x-icu'").fetchone():
        name = "en-x-icu"
    else:
        name = "e2e_en_us"
        su.execute("create collation if not exists e2e_en_us (provider = libc, locale = 'en_US.UTF-8')")
    collation = sql.Identifier(name)
    assert su.execute(sql.SQL("select 'Ålice' < 'bob' collate {}").format(collation)).fetchone()[0], name
    return collation


@pytest.fixture(scope="module")
def nums(database):
    from helpers import connect

    role = sql.Identifier(APP_ROLE)
    with connect() as su:
        su.execute("set timezone = 'UTC'")
        su.execute("drop table if exists nums, nums_ref")
        su.execute(sql.SQL("create table nums (id int primary key, rank int, big int8, small int2,"
                           " created timestamptz, local timestamp, name text collate {})")
                   .format(linguistic_collation(su)))
        columns = itertools.product(RANKS, BIGS, SMALLS[:4], TIMES[:6])
        rows = [(i, r, b, s, t, t, NAMES[i % len(NAMES)]) for i, (r, b, s, t) in enumerate(columns)]
        rows += [(len(rows) + i, r, None, s, t, t, n) for i, (r, s, t, n) in
                 enumerate(itertools.product(RANKS[:3], SMALLS, TIMES, NAMES[:3]))]
        with su.cursor() as cur:
            cur.executemany("insert into nums values (%s, %s, %s, %s, %s::timestamptz,"
                            " %s::timestamptz at time zone 'UTC', %s)", rows)
        su.execute("insert into nums select 100000 + i, i % 1000, i, (i % 7)::int2,"
                   " '2020-01-01'::timestamptz + i * interval '1 hour', '2020-01-01'::timestamp + i * interval '1 hour',"
                   " 'user-' || i from generate_series(1, 20000) i")
        su.execute("create table nums_ref as select * from nums")
        for column in ("rank", "big", "created", "local"):
            su.execute(f"create index on nums ({column})")
        su.execute("analyze nums")
        su.execute("alter table nums enable row level security")
        su.execute("alter table nums force row level security")
        su.execute(f"create policy p on nums for select using (oidc.allow('read', 'num', {PAIRS}))")
        su.execute(sql.SQL("grant select on nums, nums_ref to {}").format(role))
    yield
    with connect() as su:
        su.execute("drop table if exists nums, nums_ref")


@pytest.fixture
def rules(superuser, nums):
    superuser.execute("delete from oidc.rules")
    with superuser.cursor() as cur:
        cur.executemany("insert into oidc.rules (name, effect, actions, resource_type, condition)"
                        " values (%s, %s, %s, %s, %s)", RULES)
    yield
    superuser.execute("delete from oidc.rules")


# Numbers of every CEL type and edge (a double beyond 2^53 equals two int8 values), values
# that are no number, timestamps between microseconds and a string that is no timestamp.
PRINCIPALS = [
    dict(sub="a", level=2, big=TWO53, floor=0, since="2026-01-01T00:00:00Z", scope="eq"),
    dict(sub="b", level=2.0, big=float(TWO53), strict=True, until="2026-01-01T00:00:00.0000005Z"),
    dict(sub="c", level=2.5, big=TWO53 + 1, floor=-1.5, since="0001-01-01T00:00:00Z", scope="eq"),
    dict(sub="d", level="high", big="3", floor="x", since="not a time", until="9999-12-31T23:59:59.999999999Z"),
    dict(sub="e", level=None, big=None, strict=None, floor=None),
    dict(sub="f", level=18446744073709551615, big=-(2 ** 63), floor=1e300, since="1969-12-31T23:59:59.999999999Z"),
    dict(sub="g", level=-1e300, big=9.3e18, floor=-9223372036854775808, until="2025-12-31T23:59:59.999999Z"),
    dict(sub="past", level=True, big=3.0, scope="eq"),
    dict(sub="h"),
    dict(sub="\u00c5lice", level=3),
    dict(sub="bob", level=3, floor=2),
    dict(sub="zzz", level=0),
]


def visible(conn: psycopg.Connection, tok: str, query: str) -> list[int]:
    return sub_with(conn, tok, query) or []


def test_ordered_columns_decide_as_the_evaluator(issuer, rules, make_token):
    with app_connect() as app:
        plan = "\n".join(r[0] for r in app.execute(f"explain (verbose, costs off) {POLICY}"))
        assert "oidc.allow" not in plan and "oidc._rule(" not in plan, plan
        assert "oidc._fixed_int8" in plan and "oidc._fixed_timestamptz" in plan, plan
        assert "oidc._fixed_timestamp(" in plan, plan
        for claims in PRINCIPALS:
            tok = make_token(**claims)
            got = visible(app, tok, POLICY)
            assert got == visible(app, tok, REFERENCE), claims
        # Under another session time zone (timestamptz bounds are instants, timestamp ones
        # are read as UTC by both).
        app.execute("set timezone = 'America/St_Johns'")
        app.execute("set plan_cache_mode = force_generic_plan")
        app.execute(f"prepare g as {POLICY}")
        for claims in PRINCIPALS:
            tok = make_token(**claims)
            assert visible(app, tok, "execute g") == visible(app, tok, REFERENCE), claims


def test_a_btree_index_serves_a_comparison(issuer, rules, superuser, make_token):
    superuser.execute("delete from oidc.rules where name not in ('rank-eq', 'since')")
    with app_connect() as app:
        with app.transaction():
            app.execute("select set_config('oidc.token', %s, true)", (make_token(**PRINCIPALS[0]),))
            plan = "\n".join(r[0] for r in app.execute("explain (costs off) select count(*) from nums"))
            count = app.execute("select count(*) from nums").fetchone()[0]
    assert "oidc.allow" not in plan, plan
    assert "nums_rank_idx" in plan and "nums_created_idx" in plan, plan
    with app_connect() as app:
        assert count == len(visible(app, make_token(**PRINCIPALS[0]), REFERENCE))
