"""A configuration change must reach a session at its next transaction whatever snapshot a
reload ran under: inside a REPEATABLE READ transaction, whose snapshot predates the change
(what it loaded is dropped at its end), or under READ COMMITTED inside a cursor or a long
statement (the reload reads the newest configuration)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from helpers import app_connect, connect, mint, sub_with


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_a_reload_under_an_old_snapshot_does_not_outlive_its_transaction(issuer, superuser, make_token, isolation):
    tok = make_token()
    with app_connect() as conn:
        with conn.transaction():
            conn.execute(f"set transaction isolation level {isolation}")
            conn.execute("select set_config('oidc.token', %s, true)", (tok,))
            assert conn.execute("select oidc.sub()").fetchone()[0] == "alice"
            superuser.execute("update oidc.issuers set enabled = false where issuer = %s", (mint.ISSUER,))
            # A lock on a relation not used yet processes the invalidation; the reload that
            # follows sees the transaction's snapshot, from before the change.
            conn.execute("select count(*) from pg_catalog.pg_am").fetchone()
            assert conn.execute("select oidc.sub()").fetchone()[0] == "alice"
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification) as refused:
            with conn.transaction():
                conn.execute("select set_config('oidc.token', %s, true)", (tok,))
                conn.execute("select oidc.sub()")
        assert "not configured" in str(refused.value)


# READ COMMITTED: a statement's snapshot (a cursor's, a long statement's) can predate a change
# whose invalidation the backend processes meanwhile. The reload that follows must read the
# newest configuration, or what it loads outlives the transaction: a disabled issuer, a
# removed key or a missing forbid would stay in force on that connection.

CHANGES = {
    "disable issuer": "update oidc.issuers set enabled = false where issuer = %(iss)s",
    "remove key": "update oidc.issuers set jwks = jsonb_build_object('keys',"
                  " (select jsonb_agg(k) from jsonb_array_elements(jwks -> 'keys') k where k ->> 'kid' <> 'rs256'))"
                  " where issuer = %(iss)s",
    "forbid all": "insert into oidc.rules (name, effect, actions, resource_type) values ('e2e-stop', 'forbid', '{*}', '*')",
}
DECISION = "select oidc.sub(), oidc.allow('read', 'doc', 'owner', 'alice')"


def assert_change_applies(conn: psycopg.Connection, change: str, tokens: list[str]) -> None:
    """The next transactions see the change, for the token used before and a new one."""
    for tok in tokens:
        if change == "forbid all":
            assert sub_with(conn, tok, DECISION.replace("oidc.sub(), ", "")) is False
        else:
            with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
                sub_with(conn, tok)


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_reload_under_a_cursor_snapshot_does_not_outlive_its_transaction(
        issuer, superuser, permit_docs, make_token, change):
    tok, fresh = make_token(), make_token(sub="alice", jti="never-seen-before")
    with app_connect() as conn:
        try:
            with conn.transaction():
                conn.execute("select set_config('oidc.token', %s, true)", (tok,))
                assert conn.execute(DECISION).fetchone() == ("alice", True)
                conn.execute(f"declare c cursor for {DECISION} from generate_series(1, 3)")
                superuser.execute(CHANGES[change], {"iss": mint.ISSUER})
                # A relation not locked yet: the invalidation is processed here.
                conn.execute("select count(*) from pg_catalog.pg_am").fetchone()
                conn.execute("fetch all from c").fetchall()
        except psycopg.errors.InvalidAuthorizationSpecification:
            pass  # the reload inside the cursor already saw the change: stricter, fine
        assert_change_applies(conn, change, [tok, fresh])
        conn.execute("discard all")
        assert_change_applies(conn, change, [tok, fresh])


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_reload_inside_a_stable_function_does_not_outlive_its_transaction(
        issuer, superuser, permit_docs, make_token, change):
    """A STABLE PL/pgSQL function runs under its statement's snapshot; it locks a new
    relation (processing the invalidation) after the change is committed mid-statement."""
    superuser.execute("""
        create or replace function public.e2e_mid_statement() returns boolean
        language plpgsql stable as $$
        begin
            perform pg_catalog.pg_advisory_xact_lock_shared(4242);
            perform count(*) from pg_catalog.pg_am;
            return oidc.allow('read', 'doc', 'owner', 'alice');
        end
        $$""")
    superuser.execute("grant execute on function public.e2e_mid_statement() to public")
    tok = make_token()
    result: dict[str, object] = {}
    with app_connect() as conn, connect() as locker:
        locker.execute("select pg_advisory_lock(4242)")
        app_pid = conn.info.backend_pid

        def run() -> None:
            try:
                with conn.transaction():
                    conn.execute("select set_config('oidc.token', %s, true)", (tok,))
                    result["row"] = conn.execute(
                        "select oidc.allow('read', 'doc', 'owner', 'alice'), public.e2e_mid_statement()").fetchone()
            except psycopg.Error as e:  # the change seen inside: stricter, fine
                result["error"] = e

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 30
        while superuser.execute("select wait_event_type is distinct from 'Lock' from pg_stat_activity where pid = %s",
                                (app_pid,)).fetchone()[0]:
            assert time.monotonic() < deadline, "the app's statement never reached the lock"
            time.sleep(0.05)
        superuser.execute(CHANGES[change], {"iss": mint.ISSUER})
        locker.execute("select pg_advisory_unlock(4242)")
        thread.join(30)
        assert not thread.is_alive()
        assert result, "the statement neither returned nor failed"
        assert_change_applies(conn, change, [tok])
    superuser.execute("drop function public.e2e_mid_statement()")


def test_repeatable_read_reloads_only_after_a_change(issuer, superuser, permit_docs, make_token,
                                                     rules_not_vacuumed):
    """A REPEATABLE READ session reloads the configuration in the transaction after a change,
    not in every transaction after it: counted as this session's own sequential scans of
    oidc.rules, per transaction (autovacuum kept off the table: its VACUUM or ANALYZE makes
    backends reload, as any relcache invalidation of the table does)."""
    tok = make_token()
    with connect() as conn:
        def transaction() -> int:
            """This session's scans of oidc.rules in one decision's transaction: its
            counts not yet flushed to the shared statistics, which are flushed after each
            transaction (when the session is next idle)."""
            with conn.transaction():
                conn.execute("set transaction isolation level repeatable read")
                conn.execute("select set_config('oidc.token', %s, true)", (tok,))
                assert conn.execute(DECISION).fetchone() == ("alice", True)
                n = conn.execute("select pg_stat_get_xact_numscans('oidc.rules'::regclass)").fetchone()[0]
            conn.execute("select pg_stat_force_next_flush()")
            return n

        transaction()
        superuser.execute("update oidc.rules set description = 'changed'")
        assert transaction() >= 1, "the reload is not counted: the test would prove nothing"
        later = [transaction() for _ in range(20)]
        assert sum(later) <= 1, later


def import_then_check(snapshot: str, exporter: psycopg.Connection, b: psycopg.Connection, tok: str) -> None:
    """Three REPEATABLE READ transactions of `b` import `snapshot` and resolve `tok` (each
    keeps its own view); then the exporter ends, and `b`'s next transaction must refuse it."""
    from psycopg import sql

    for _ in range(3):
        b.execute("begin isolation level repeatable read")
        b.execute(sql.SQL("set transaction snapshot {}").format(sql.Literal(snapshot)))
        b.execute("select set_config('oidc.token', %s, true)", (tok,))
        b.execute("select oidc.token_status()")
        b.execute("commit")
    exporter.execute("commit")
    with b.transaction():
        b.execute("select set_config('oidc.token', %s, true)", (tok,))
        assert b.execute("select oidc.token_status() ->> 'check'").fetchone()[0] == "revoked"


def test_an_imported_old_snapshot_does_not_keep_a_revocation_out(issuer, superuser, make_token):
    """REPEATABLE READ transactions that import a snapshot older than a revocation keep their
    own view, but what they load never outlives them: the next transaction refuses."""
    from helpers import APP_ROLE

    superuser.execute("delete from oidc.revocations")
    tok = make_token(sub="alice", jti="imported-1")
    try:
        with connect(user=APP_ROLE) as old, connect(user=APP_ROLE) as b:
            old.execute("begin isolation level repeatable read")
            snapshot = old.execute("select pg_export_snapshot()").fetchone()[0]
            superuser.execute("select oidc.revoke_token(%s, 'imported-1', now() + interval '5 min')", (mint.ISSUER,))
            import_then_check(snapshot, old, b, tok)
    finally:
        superuser.execute("delete from oidc.revocations")


def test_a_snapshot_that_saw_the_revocation_running_does_not_keep_it_out(issuer, superuser, make_token):
    """The revoking transaction had its xid, and a later one committed, before the snapshot
    was exported: the snapshot's xmax is past the revocation, which it saw running."""
    from helpers import APP_ROLE

    superuser.execute("delete from oidc.revocations")
    tok = make_token(sub="alice", jti="running-1")
    try:
        with connect() as revoker, connect() as other, connect(user=APP_ROLE) as old, \
                connect(user=APP_ROLE) as b:
            revoker.execute("begin")
            revoker.execute("select oidc.revoke_token(%s, 'running-1', now() + interval '5 min')", (mint.ISSUER,))
            other.execute("select pg_current_xact_id()")  # a later xid, committed
            old.execute("begin isolation level repeatable read")
            snapshot = old.execute("select pg_export_snapshot()").fetchone()[0]
            revoker.execute("commit")
            import_then_check(snapshot, old, b, tok)
    finally:
        superuser.execute("delete from oidc.revocations")
