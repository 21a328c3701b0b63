"""sql/supabase_compat.sql: Supabase-style policies run unchanged on verified claims, and the
claims settings they used to trust are ignored."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from helpers import APP_ROLE, assert_rejected, mint, sub_with

SHIM = Path(__file__).resolve().parents[2] / "sql" / "supabase_compat.sql"
ANN, BEN = str(uuid.UUID(int=0xA11CE)), str(uuid.UUID(int=0xBE4))
NOTES = [(1, ANN), (2, ANN), (3, BEN)]
MEMBERS = [(1, "ann@example.test"), (2, "ben@example.test"), (3, "ann@example.test")]
BOARD = [1, 2]
# Supabase-style policies, as their projects write them.
POLICIES = [
    ("notes", "auth.uid() = user_id"),
    ("members", "auth.email() = email"),
    ("board", "(auth.jwt() ->> 'role') = 'authenticated'"),
    ("feed", "auth.role() = 'authenticated'"),
    ("pgsj", "auth.user_id() = (auth.session() ->> 'sub') and owner = auth.user_id()"),
]
QUERY = """select auth.uid(), auth.role(), auth.email(), auth.user_id(), auth.jwt() ->> 'sub',
  array(select id from shim.notes order by id), array(select id from shim.members order by id),
  array(select id from shim.board order by id), array(select id from shim.feed order by id),
  array(select id from shim.pgsj order by id)"""
ALL = [1, 2, 3]


@pytest.fixture
def shim(superuser):
    role = sql.Identifier(APP_ROLE)
    superuser.execute("drop schema if exists shim cascade")
    superuser.execute("drop schema if exists auth cascade")
    superuser.execute(SHIM.read_text())
    superuser.execute(SHIM.read_text())  # idempotent
    superuser.execute("create schema shim")
    superuser.execute("create table shim.notes (id int primary key, user_id uuid not null)")
    superuser.execute("create table shim.members (id int primary key, email text not null)")
    superuser.execute("create table shim.board (id int primary key)")
    superuser.execute("create table shim.feed (id int primary key)")
    superuser.execute("create table shim.pgsj (id int primary key, owner text not null)")
    with superuser.cursor() as cur:
        cur.executemany("insert into shim.notes values (%s, %s)", NOTES)
        cur.executemany("insert into shim.members values (%s, %s)", MEMBERS)
        cur.executemany("insert into shim.board values (%s)", [(i,) for i in BOARD])
        cur.executemany("insert into shim.feed values (%s)", [(i,) for i in ALL])
        cur.executemany("insert into shim.pgsj values (%s, %s)", NOTES)
    for table, using in POLICIES:
        t = sql.Identifier("shim", table)
        superuser.execute(sql.SQL("alter table {} enable row level security").format(t))
        superuser.execute(sql.SQL("alter table {} force row level security").format(t))
        superuser.execute(sql.SQL("create policy p on {} for select using ({})").format(t, sql.SQL(using)))
        superuser.execute(sql.SQL("grant select on {} to {}").format(t, role))
    superuser.execute(sql.SQL("grant usage on schema shim to {}").format(role))
    yield
    superuser.execute("drop schema shim cascade")
    superuser.execute("drop schema auth cascade")


def as_caller(conn: psycopg.Connection, tok: str | None, spoof: dict | None = None):
    """QUERY in one transaction with tok (None: anonymous) and, if given, claims set by hand
    the way PostgREST and Supabase pass them."""
    with conn.transaction():
        if tok is not None:
            conn.execute("select set_config('oidc.token', %s, true)", (tok,))
        if spoof is not None:
            conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(spoof),))
            conn.execute("select set_config('request.jwt.claim.sub', %s, true)", (spoof["sub"],))
            conn.execute("select set_config('request.jwt.claim.role', %s, true)", (spoof["role"],))
        return conn.execute(QUERY).fetchone()


def test_supabase_policies_see_the_verified_claims(shim, app, make_token):
    ann = make_token(sub=ANN, email="ann@example.test", role="authenticated")
    ben = make_token("EdDSA", sub=BEN, email="ben@example.test")  # no role claim
    assert as_caller(app, ann) == (
        uuid.UUID(ANN), "authenticated", "ann@example.test", ANN, ANN, [1, 2], [1, 3], BOARD, ALL, [1, 2])
    assert as_caller(app, ben) == (
        uuid.UUID(BEN), "authenticated", "ben@example.test", BEN, BEN, [3], [2], [], ALL, [3])
    admin = make_token(sub=BEN, role="service_role")
    assert as_caller(app, admin)[1] == "service_role"
    # Anonymous: Supabase's 'anon', nothing else.
    assert as_caller(app, None) == (None, "anon", None, None, None, [], [], [], [], [])
    # A present but invalid token is refused, never treated as anonymous or as its claims.
    forged = make_token(sub=ANN, role="authenticated", key=mint.attacker_key(), kid="rs256")
    assert_rejected(app, forged, "select count(*) from shim.board")
    assert_rejected(app, forged, "select auth.role()")


def test_claims_set_by_hand_have_no_effect(shim, app, make_token):
    spoof = {"sub": ANN, "role": "authenticated", "email": "ann@example.test", "aud": mint.AUDIENCE}
    assert as_caller(app, None, spoof) == (None, "anon", None, None, None, [], [], [], [], [])
    ben = make_token("EdDSA", sub=BEN, email="ben@example.test")
    assert as_caller(app, ben, spoof) == as_caller(app, ben)
    assert as_caller(app, ben, spoof)[0] == uuid.UUID(BEN)
    # Session-level settings are ignored just the same.
    app.execute("select set_config('request.jwt.claims', %s, false)", (json.dumps(spoof),))
    assert as_caller(app, None) == (None, "anon", None, None, None, [], [], [], [], [])


def test_shim_functions_inline_and_read_no_claims_setting(shim, superuser, app, make_token):
    rows = superuser.execute(
        "select proname, provolatile, proparallel, prosecdef, proconfig, prosqlbody is not null,"
        " pg_get_functiondef(oid) from pg_proc where pronamespace = 'auth'::regnamespace order by proname"
    ).fetchall()
    assert [r[0] for r in rows] == ["email", "jwt", "role", "session", "uid", "user_id"]
    for name, volatility, parallel, secdef, config, parsed, definition in rows:
        # STABLE, PARALLEL SAFE, no SECURITY DEFINER, no SET clause (it would stop inlining),
        # the body parsed at creation (the caller's search_path cannot redirect it).
        assert (volatility, parallel, secdef, config, parsed) == ("s", "s", False, None, True), name
        assert "request." not in definition and "current_setting" not in definition, definition
    # The planner inlines them: the policy filter calls oidc.* directly.
    with app.transaction():
        app.execute("select set_config('oidc.token', %s, true)", (make_token(sub=ANN),))
        plan = "\n".join(r[0] for r in app.execute("explain (verbose, costs off) select * from shim.notes"))
    assert "oidc.uid()" in plan and "auth." not in plan, plan


def test_non_uuid_sub_raises_in_uid_but_not_in_user_id(shim, app, make_token):
    tok = make_token(sub="auth0|12345")
    assert sub_with(app, tok, "select auth.user_id()") == "auth0|12345"
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        sub_with(app, tok, "select auth.uid()")


SQUATTER = "e2e_shim_squatter"


@pytest.fixture
def squatter(superuser):
    """A role that got to `auth` first; dropped with what it owns afterwards."""
    role = sql.Identifier(SQUATTER)
    superuser.execute("drop schema if exists auth cascade")
    superuser.execute(sql.SQL("drop role if exists {}").format(role))
    superuser.execute(sql.SQL("create role {}").format(role))
    yield role
    superuser.execute(sql.SQL("drop owned by {}").format(role))
    superuser.execute("drop schema if exists auth cascade")
    superuser.execute(sql.SQL("drop role {}").format(role))


def run_shim_refused(database: str) -> psycopg.Error:
    """Runs the shim on a connection of its own (a refusal leaves its transaction aborted)."""
    from helpers import connect

    with connect(database) as conn:
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(SHIM.read_text())
    assert refused.value.sqlstate == "42501", refused.value
    return refused.value


def auth_functions(superuser) -> list[tuple[str, str]]:
    return superuser.execute(
        "select p.proname::text, pg_get_userbyid(p.proowner)::text from pg_proc p"
        " join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'auth' order by 1"
    ).fetchall()


def test_shim_refuses_an_auth_schema_owned_by_another_role(squatter, superuser, database):
    superuser.execute(sql.SQL("create schema auth authorization {}").format(squatter))
    err = run_shim_refused(database)
    assert f"schema auth (owned by {SQUATTER})" in str(err)
    assert auth_functions(superuser) == []


def test_shim_refuses_to_replace_a_function_another_role_owns(squatter, superuser, database):
    superuser.execute("create schema auth")
    superuser.execute(sql.SQL("grant create, usage on schema auth to {}").format(squatter))
    superuser.execute(sql.SQL("set role {}").format(squatter))
    superuser.execute("create function auth.uid() returns uuid language sql return null::uuid")
    superuser.execute("reset role")
    err = run_shim_refused(database)
    assert f"function auth.uid() (owned by {SQUATTER})" in str(err)
    # Nothing changed: the squatter's function is still the only one, and still its own.
    assert auth_functions(superuser) == [("uid", SQUATTER)]
    # Once the squatter's function is gone, the shim installs.
    superuser.execute("drop function auth.uid()")
    superuser.execute(SHIM.read_text())
    assert {owner for _, owner in auth_functions(superuser)} == {superuser.info.user}
