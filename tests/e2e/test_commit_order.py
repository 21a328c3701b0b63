"""A configuration change is visible to other snapshots a moment before Postgres sends its
invalidations (CommitTransaction: ProcArrayEndTransaction, then AtEOXact_Inval; a standby's
replay and COMMIT PREPARED do the same). A session starting a transaction in that moment
could see the change and still decide with its cache from before it; test_logical.py caught
that once. The writer therefore holds oidc._config_sync ACCESS EXCLUSIVE from just before its
commit until its locks are released, after the invalidations; a session's first use of its
cache in a transaction tries the lock without waiting and reads the configuration again when
it is refused. These tests hold a writer inside that moment, by a lock or a prepared
transaction, and check what sessions do meanwhile."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from helpers import app_connect, connect, sub_with

DECISION = "select oidc.allow('read', 'doc', 'owner', 'alice')"
FORBID = "insert into oidc.rules (name, effect, actions, resource_type) values ('e2e-stop', 'forbid', '{*}', '*')"


@pytest.fixture(autouse=True)
def _counted(rules_not_vacuumed):
    """Every test here counts reloads as reads of oidc.rules."""


def rule_reads(superuser: psycopg.Connection) -> int:
    superuser.execute("select pg_stat_force_next_flush()")  # its own scans, reported now
    superuser.execute("select pg_stat_clear_snapshot()")
    return superuser.execute(
        "select coalesce(seq_scan, 0) from pg_stat_user_tables where relid = 'oidc.rules'::regclass").fetchone()[0]


def decide(conn: psycopg.Connection, superuser: psycopg.Connection, tok: str) -> tuple[bool, int]:
    """The decision in one transaction, and how often that transaction read oidc.rules."""
    before = rule_reads(superuser)
    with conn.transaction():
        conn.execute("set local statement_timeout = '10s'")  # a session never waits here
        conn.execute("select set_config('oidc.token', %s, true)", (tok,))
        allowed = conn.execute(DECISION).fetchone()[0]
    conn.execute("select pg_stat_force_next_flush()")  # reported before the session is idle
    return allowed, rule_reads(superuser) - before


def sync_lock_modes(superuser: psycopg.Connection, granted: bool) -> list[str]:
    return [m for (m,) in superuser.execute(
        "select mode from pg_locks where locktype = 'object' and classid = 'pg_extension'::regclass"
        " and objid = (select oid from pg_extension where extname = 'pg_oidc_authz')"
        " and objsubid = 28521 and granted = %s", (granted,)).fetchall()]


def test_a_committing_writer_holds_sessions_to_the_newest_configuration(issuer, superuser, permit_docs,
                                                                        make_token):
    tok = make_token()
    with app_connect() as session, connect() as first, connect() as writer:
        assert decide(session, superuser, tok) == (True, 1)
        assert decide(session, superuser, tok) == (True, 0), "nothing changed: the cache serves"
        # A prepared configuration change holds the lock: the next writer waits inside its
        # commit, before its change is visible: the moment a session must not trust its cache.
        first.execute("begin")
        first.execute("update oidc.rules set description = 'first' where name = 'e2e-docs'")
        first.execute("prepare transaction 'e2e_first_writer'")
        try:
            done = threading.Event()
            thread = threading.Thread(target=lambda: (writer.execute(FORBID), done.set()))
            thread.start()
            deadline = time.monotonic() + 30
            while "AccessExclusiveLock" not in sync_lock_modes(superuser, granted=False):
                assert time.monotonic() < deadline, "the writer never asked for the lock"
                time.sleep(0.02)
            assert not done.is_set()
            assert superuser.execute("select count(*) from oidc.rules where name = 'e2e-stop'").fetchone()[0] == 0
            for _ in range(3):
                # Not committed yet: still allowed, read afresh every time, and nobody waits.
                assert decide(session, superuser, tok) == (True, 1)
            superuser.execute("commit prepared 'e2e_first_writer'")
        finally:
            if superuser.execute("select count(*) from pg_prepared_xacts where gid = 'e2e_first_writer'").fetchone()[0]:
                superuser.execute("rollback prepared 'e2e_first_writer'")
        thread.join(30)
        assert done.is_set()
        assert decide(session, superuser, tok) == (False, 1)
        assert decide(session, superuser, tok) == (False, 0)


def test_a_prepared_change_is_read_afresh_until_it_commits(issuer, superuser, permit_docs, make_token):
    tok = make_token()
    with app_connect() as session, connect() as writer:
        assert decide(session, superuser, tok)[0] is True
        writer.execute("begin")
        writer.execute(FORBID)
        writer.execute("prepare transaction 'e2e_config_change'")
        try:
            # The prepared transaction keeps the sync lock until COMMIT PREPARED has sent its
            # invalidations; the sessions meanwhile read the configuration every transaction.
            assert sync_lock_modes(superuser, granted=True) == ["AccessExclusiveLock"]
            assert decide(session, superuser, tok) == (True, 1)
            assert decide(session, superuser, tok) == (True, 1)
            superuser.execute("commit prepared 'e2e_config_change'")
        finally:
            if superuser.execute("select count(*) from pg_prepared_xacts where gid = 'e2e_config_change'").fetchone()[0]:
                superuser.execute("rollback prepared 'e2e_config_change'")
        assert decide(session, superuser, tok) == (False, 1)
        assert decide(session, superuser, tok) == (False, 0)
        assert sync_lock_modes(superuser, granted=True) == []


def test_a_plain_role_cannot_hold_back_configuration_changes(issuer, superuser, permit_docs, make_token):
    """Review finding: a lock on a relation (a view revoked from PUBLIC) could still be held
    by anyone, through the parser (PREPARE of a query naming it) or LOCK. The extension's
    lock has no relation; sessions that decide hold it for an instant only."""
    with app_connect() as app:
        app.execute("begin")
        app.execute("select set_config('oidc.token', %s, true)", (make_token(),))
        assert app.execute("select oidc.allow('read', 'doc', 'owner', 'alice')").fetchone()[0] is True
        for attempt in ("prepare p1 as select * from oidc.issuers", "prepare p2 as select * from oidc.rules"):
            app.execute("savepoint s")
            try:
                app.execute(attempt)
            except psycopg.Error:
                app.execute("rollback to savepoint s")
        superuser.execute("set lock_timeout = '5s'")
        try:
            superuser.execute(FORBID)  # commits at once: nothing the app holds is in its way
        finally:
            superuser.execute("reset lock_timeout")
        assert sync_lock_modes(superuser, granted=True) == []
        app.execute("rollback")
