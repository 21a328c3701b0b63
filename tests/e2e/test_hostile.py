"""Hostile SQL as a plain role: settings set around the library, views and leaky functions
over an RLS table, held cursors, roles, prepared transactions, savepoints, DISCARD, NOTIFY and
COPY. Whatever the session does, it reads no row beyond what its token grants (the `docs`
policy: owner = oidc.sub()). Search-path shadowing of the extension's own SQL is in
tests/pg_regress/sql/40_search_path.sql."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from helpers import APP_ROLE, DOCS, app_connect, connect, mint, sub_with

IDS = "select coalesce(array_agg(id order by id), '{}') from docs"


def own(sub: str) -> list[int]:
    return [i for i, owner in DOCS if owner == sub]


def forged(make_token) -> str:
    return make_token(key=mint.attacker_key(), kid="rs256")


@pytest.fixture
def cleanup(superuser):
    statements: list[str] = []
    yield statements
    for s in reversed(statements):
        superuser.execute(s)


def test_a_token_from_the_connection_options_is_verified_like_any(issuer, make_token):
    with app_connect(options=f"-c oidc.token={make_token(sub='bob')}") as conn:
        assert conn.execute(f"select oidc.sub(), ({IDS})").fetchone() == ("bob", own("bob"))
    with app_connect(options=f"-c oidc.token={forged(make_token)}") as conn:
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            conn.execute(IDS)


def test_claims_cannot_be_passed_as_settings(issuer):
    # The `oidc` prefix is reserved once the library is loaded (preloaded here): no placeholder.
    with pytest.raises(psycopg.OperationalError):
        app_connect(options="-c oidc.sub=bob").close()
    with app_connect() as conn:
        for name in ("oidc.sub", "oidc.claims", "oidc.verified"):
            with pytest.raises(psycopg.errors.InvalidName):
                conn.execute(f"set {name} = 'bob'")
        assert conn.execute(f"select oidc.sub(), ({IDS})").fetchone() == (None, [])


def test_a_role_default_token_is_verified_like_any(issuer, superuser, make_token, cleanup):
    cleanup.append(f"alter role {APP_ROLE} reset oidc.token")
    with app_connect() as conn:  # a role may set its own defaults
        conn.execute(f"alter role {APP_ROLE} set oidc.token = '{forged(make_token)}'")
    with app_connect() as conn:
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            conn.execute(IDS)
    superuser.execute(f"alter role {APP_ROLE} set oidc.token = '{make_token(sub='carol')}'")
    with app_connect() as conn:
        assert conn.execute(IDS).fetchone()[0] == own("carol")
        # A transaction's own token replaces the default for that transaction only.
        assert sub_with(conn, make_token(sub="alice"), IDS) == own("alice")
        assert conn.execute(IDS).fetchone()[0] == own("carol")


def test_views_and_leaky_functions_see_only_the_tokens_rows(issuer, superuser, make_token, cleanup):
    cleanup += ["drop view public.e2e_docs_invoker", "drop view public.e2e_docs_barrier",
                "drop function public.e2e_leak(text)"]
    superuser.execute("create view public.e2e_docs_invoker with (security_invoker) as select * from docs")
    superuser.execute("create view public.e2e_docs_barrier with (security_barrier, security_invoker)"
                      " as select * from docs where id > 0")
    superuser.execute(f"grant select on public.e2e_docs_invoker, public.e2e_docs_barrier to {APP_ROLE}")
    # A cheap function that is not LEAKPROOF runs after the policy's quals, never before.
    superuser.execute("create function public.e2e_leak(o text) returns boolean language plpgsql cost 0.0001"
                      " as $$ begin raise notice 'saw %', o; return true; end $$")
    superuser.execute(f"grant execute on function public.e2e_leak(text) to {APP_ROLE}")
    tok = make_token(sub="alice")
    with app_connect() as conn:
        seen: list[str] = []
        conn.add_notice_handler(lambda d: seen.append(d.message_primary or ""))
        for relation in ("docs", "public.e2e_docs_invoker", "public.e2e_docs_barrier"):
            query = f"select coalesce(array_agg(id order by id), '{{}}') from {relation} where public.e2e_leak(owner)"
            assert sub_with(conn, tok, query) == own("alice"), relation
        assert seen and set(seen) == {"saw alice"}, seen


def test_a_held_cursor_keeps_the_rows_its_own_token_granted(issuer, make_token):
    with app_connect() as conn:
        with conn.transaction():
            conn.execute("select set_config('oidc.token', %s, true)", (make_token(sub="alice"),))
            conn.execute("declare held cursor with hold for select id from docs order by id")
        # Materialized at commit, while alice's token was in force; bob's token reads only bob's.
        with conn.transaction():
            conn.execute("select set_config('oidc.token', %s, true)", (make_token(sub="bob"),))
            assert [i for (i,) in conn.execute("fetch all from held").fetchall()] == own("alice")
            assert conn.execute(IDS).fetchone()[0] == own("bob")
        conn.execute("close held")
        assert conn.execute(IDS).fetchone()[0] == []


def test_roles_and_security_definer_functions_keep_the_tokens_identity(issuer, superuser, make_token, cleanup):
    cleanup += ["drop role e2e_definer", "drop owned by e2e_definer"]
    superuser.execute("create role e2e_definer nologin")
    superuser.execute("grant select on docs to e2e_definer")
    superuser.execute("create function public.e2e_definer_docs() returns int[] language sql security definer"
                      " set search_path = pg_catalog, public"
                      " as $$ select coalesce(array_agg(id order by id), '{}') from public.docs $$")
    superuser.execute("alter function public.e2e_definer_docs() owner to e2e_definer")
    superuser.execute(f"grant execute on function public.e2e_definer_docs() to {APP_ROLE}")
    with app_connect() as conn:
        assert sub_with(conn, make_token(sub="bob"), "select public.e2e_definer_docs()") == own("bob")
        assert conn.execute("select public.e2e_definer_docs()").fetchone()[0] == []
    # SET ROLE changes privileges, not the principal.
    with connect() as su:
        with su.transaction():
            su.execute("select set_config('oidc.token', %s, true)", (make_token(sub="carol"),))
            su.execute(f"set local role {APP_ROLE}")
            assert su.execute(f"select oidc.sub(), ({IDS})").fetchone() == ("carol", own("carol"))
            su.execute("reset role")
            assert su.execute("select oidc.sub()").fetchone()[0] == "carol"


def test_savepoints_prepare_and_discard_restore_the_token(issuer, superuser, make_token):
    alice, bob = make_token(sub="alice"), make_token(sub="bob")
    with app_connect() as conn:
        with conn.transaction():
            conn.execute("select set_config('oidc.token', %s, true)", (alice,))
            with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
                with conn.transaction():  # a savepoint
                    conn.execute("select set_config('oidc.token', %s, true)", (forged(make_token),))
                    conn.execute(IDS)
            assert conn.execute(f"select oidc.sub(), ({IDS})").fetchone() == ("alice", own("alice"))
            with conn.transaction():
                conn.execute("select set_config('oidc.token', %s, true)", (bob,))
                assert conn.execute(IDS).fetchone()[0] == own("bob")
            assert conn.execute("select oidc.sub()").fetchone()[0] == "bob"  # released: kept
        conn.execute(sql.SQL("set oidc.token = {}").format(sql.Literal(alice)))
        assert conn.execute("select oidc.sub()").fetchone()[0] == "alice"
        conn.execute("discard all")
        assert conn.execute(f"select oidc.sub(), ({IDS})").fetchone() == (None, [])
    with connect() as su:
        su.execute("begin")
        su.execute("select set_config('oidc.token', %s, true)", (bob,))
        assert su.execute("select oidc.sub()").fetchone()[0] == "bob"
        su.execute("prepare transaction 'e2e_hostile'")
        try:
            assert su.execute("select oidc.sub()").fetchone()[0] is None
        finally:
            su.execute("rollback prepared 'e2e_hostile'")


def test_notifications_and_copy_follow_the_token(issuer, make_token):
    with app_connect() as listener, app_connect() as sender:
        listener.execute("listen e2e_channel")
        with sender.transaction():
            sender.execute("select set_config('oidc.token', %s, true)", (make_token(sub="bob"),))
            sender.execute("select pg_notify('e2e_channel', oidc.sub())")
        assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == ["bob"]
        assert listener.execute("select oidc.sub()").fetchone()[0] is None
        with listener.transaction():
            listener.execute("select set_config('oidc.token', %s, true)", (make_token(sub="alice"),))
            for statement in ("copy docs to stdout", "copy (select * from docs) to stdout"):
                with listener.cursor().copy(statement) as copy:
                    rows = [bytes(row).decode() for row in copy]
                assert "".join(rows).splitlines() == [f"{i}\talice" for i in own("alice")], statement
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            with listener.transaction():
                listener.execute("select set_config('oidc.token', %s, true)", (forged(make_token),))
                with listener.cursor().copy("copy docs to stdout") as copy:
                    list(copy)
