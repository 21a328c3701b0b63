"""Commands that need a database to themselves — DROP DATABASE, ALTER DATABASE … RENAME,
CREATE DATABASE … TEMPLATE — are not refused because the keys worker (the library is
preloaded in the test cluster) is connected to it: the extension stops that worker first and
the launcher serves the database again once the command is over. A role that may not run
the command cannot stop the worker with it."""

from __future__ import annotations

import time

import psycopg
import pytest

from helpers import APP_ROLE, connect

WORKER = "pg_oidc_authz keys"


def keys_worker(admin, db: str) -> int | None:
    row = admin.execute("select pid from pg_stat_activity where backend_type = %s and datname = %s",
                        (WORKER, db)).fetchone()
    return row[0] if row else None


def wait_for_worker(admin, db: str, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while (pid := keys_worker(admin, db)) is None:
        assert time.monotonic() < deadline, f"no keys worker for {db} within {timeout} s"
        time.sleep(0.05)
    return pid


@pytest.fixture
def served(database):
    with connect("postgres") as admin:
        for db in ("e2e_served", "e2e_served_renamed", "e2e_served_copy"):
            admin.execute(f"drop database if exists {db} with (force)")
        admin.execute("create database e2e_served")
        with connect("e2e_served") as conn:
            conn.execute("create extension pg_oidc_authz")  # wakes the launcher
        wait_for_worker(admin, "e2e_served")
        yield admin
        for db in ("e2e_served", "e2e_served_renamed", "e2e_served_copy"):
            admin.execute(f"drop database if exists {db} with (force)")


def test_a_served_database_can_be_copied_renamed_and_dropped(served):
    admin = served
    started = time.monotonic()
    admin.execute("create database e2e_served_copy template e2e_served")
    admin.execute("alter database e2e_served rename to e2e_served_renamed")
    # Served again once the rename is over: the launcher was woken at its end.
    wait_for_worker(admin, "e2e_served_renamed")
    admin.execute("drop database e2e_served_renamed")
    admin.execute("drop database e2e_served_copy")
    # Each command would otherwise wait 5 s for the worker and fail.
    assert time.monotonic() - started < 30
    assert admin.execute("select count(*) from pg_database where datname like 'e2e_served%'").fetchone()[0] == 0
    time.sleep(1)
    assert admin.execute("select count(*) from pg_stat_activity where backend_type = %s"
                         " and datname like 'e2e_served%%'", (WORKER,)).fetchone()[0] == 0


def test_a_role_that_may_not_drop_it_does_not_stop_its_worker(served):
    admin = served
    pid = keys_worker(admin, "e2e_served")
    with connect("postgres", user=APP_ROLE) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("drop database e2e_served")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("alter database e2e_served rename to e2e_served_renamed")
    time.sleep(0.5)
    assert keys_worker(admin, "e2e_served") == pid
