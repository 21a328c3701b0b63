"""A backend killed with SIGKILL: Postgres cannot know what the dead process left half-written
in shared memory, so the postmaster terminates every other backend, reinitialises shared
memory and starts again (restart_after_crash). These tests kill, on a cluster of their own
that preloads the library, a backend in the middle of rule evaluation, a writer blocked
inside its commit, and the keys worker, and check that the server comes back by itself,
that the configuration in force afterwards is exactly the committed one (never part of a
transaction, and a prepared change still held back until COMMIT PREPARED), and that tokens
and rules decide as before. That every other session is cut off is Postgres's design, not
the extension's: the tests check that it happens, then reconnect."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

import mint
from services import free_port, pg_bindir, log_tail, private_dir, remove_dir, run_as_postgres, wait_until

DB = "crash"
APP = "crash_app"
RESTART_TIMEOUT = 60  # seconds for the postmaster to come back after a crash


@dataclass(frozen=True)
class Cluster:
    host: Path
    port: int
    data: Path
    log: Path

    def connect(self, user: str = "postgres", dbname: str = DB, **kwargs) -> psycopg.Connection:
        return psycopg.connect(host=str(self.host), port=self.port, dbname=dbname, user=user,
                               autocommit=True, connect_timeout=10, **kwargs)

    def accepting(self) -> bool:
        try:
            with self.connect() as conn:
                return conn.execute("select not pg_is_in_recovery()").fetchone()[0]
        except psycopg.OperationalError:
            return False

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])


SETUP = f"""
create extension pg_oidc_authz;
create role {APP} login;
create table docs (id int primary key, owner text not null);
insert into docs select i, case i % 3 when 0 then 'alice' when 1 then 'bob' else 'carol' end
    from generate_series(1, 300) i;
alter table docs enable row level security;
create policy by_rules on docs for select using (oidc.allow('read', 'doc', 'owner', owner));
grant select on docs to {APP};
insert into oidc.rules (name, effect, actions, resource_type, condition) values
    ('owners-read', 'permit', '{{read}}', 'doc', 'resource.owner == claims.sub');
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    base = private_dir("crash-")
    data, log, port = base / "data", base / "postgres.log", free_port()
    bindir = pg_bindir()
    pg_ctl = bindir / "pg_ctl"
    started = False
    try:
        run_as_postgres([bindir / "initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C",
                         "--auth-local=trust", "--auth-host=reject", "--no-sync", "--no-instructions"],
                        timeout=120)
        with open(data / "postgresql.auto.conf", "a") as conf:
            conf.write(f"listen_addresses = ''\nport = {port}\nunix_socket_directories = '{base}'\n"
                       "shared_preload_libraries = 'pg_oidc_authz'\nmax_prepared_transactions = 4\n"
                       "restart_after_crash = on\nfsync = off\nlog_min_messages = warning\n")
        run_as_postgres([pg_ctl, "start", "-D", data, "-l", log, "-w", "-t", "60", "-s"], timeout=90)
        started = True
        node = Cluster(base, port, data, log)
        with node.connect(dbname="postgres") as admin:
            admin.execute(f"create database {DB}")
        with node.connect() as conn:
            conn.execute(SETUP)
            conn.execute("insert into oidc.issuers (issuer, audiences, jwks, algorithms) values (%s, %s, %s, %s)",
                         (mint.HMAC_ISSUER, [mint.AUDIENCE], json.dumps(mint.jwks(kids=mint.HMAC_KIDS)),
                          mint.HMAC_ALGORITHMS))
        yield node
    finally:
        if started:
            run_as_postgres([pg_ctl, "stop", "-D", data, "-m", "immediate", "-s", "-t", "60"], timeout=90)
        remove_dir(base)


def token(sub: str) -> str:
    now = int(time.time())
    return mint.token("HS256", None, mint.claims(sub, iss=mint.HMAC_ISSUER, iat=now, exp=now + 600))


def visible_owners(conn: psycopg.Connection, sub: str) -> set[str]:
    with conn.transaction():
        conn.execute("select set_config('oidc.token', %s, true)", (token(sub),))
        return {owner for (owner,) in conn.execute("select distinct owner from docs")}


def sub_of(conn: psycopg.Connection, sub: str) -> str | None:
    with conn.transaction():
        conn.execute("select set_config('oidc.token', %s, true)", (token(sub),))
        return conn.execute("select oidc.sub()").fetchone()[0]


def wait_active(watcher: psycopg.Connection, pid: int, what: str, wait_event: str | None = None) -> None:
    """Until backend `pid` runs its statement (and, given one, waits on `wait_event`)."""
    def running() -> bool:
        row = watcher.execute("select state, wait_event from pg_stat_activity where pid = %s", (pid,)).fetchone()
        return row is not None and row[0] == "active" and (wait_event is None or row[1] == wait_event)
    wait_until(running, 30, what)


def crash(node: Cluster, pid: int, survivors: list[psycopg.Connection]) -> None:
    """SIGKILL `pid`, then wait until the postmaster (the same one: nothing restarts it from
    outside) has reset and accepts connections again; every survivor was cut off."""
    postmaster = node.postmaster_pid()
    os.kill(pid, signal.SIGKILL)
    for conn in survivors:
        def cut_off(conn: psycopg.Connection = conn) -> bool:
            try:
                conn.execute("select 1")
                return False
            except psycopg.OperationalError:
                return True
        wait_until(cut_off, RESTART_TIMEOUT, "the crash restart to end other sessions", node.log)
    wait_until(node.accepting, RESTART_TIMEOUT, "the server after the crash", node.log)
    assert node.postmaster_pid() == postmaster
    assert f"(PID {pid}) was terminated by signal 9" in node.log.read_text(), log_tail(node.log)


def keys_worker_pid(conn: psycopg.Connection) -> int | None:
    row = conn.execute("select pid from pg_stat_activity where backend_type = 'pg_oidc_authz keys'"
                       " and datname = %s", (DB,)).fetchone()
    return row[0] if row else None


def test_a_backend_killed_mid_decision_and_a_writer_killed_mid_commit_leave_only_committed_configuration(cluster):
    admin, watcher = cluster.connect(), cluster.connect()
    serving = cluster.connect(user=APP)
    assert visible_owners(serving, "alice") == {"alice"}

    # Committed before the crash: carol may read everything.
    admin.execute("insert into oidc.rules (name, effect, actions, resource_type, condition) values"
                  " ('carol-reads-all', 'permit', '{read}', 'doc', 'claims.sub == \"carol\"')")
    # Prepared before the crash: a forbid for bob. Its lock and its rows outlive the crash.
    preparer = cluster.connect()
    preparer.execute("begin")
    preparer.execute("insert into oidc.rules (name, effect, actions, resource_type, condition) values"
                     " ('forbid-bob', 'forbid', '{read}', 'doc', 'claims.sub == \"bob\"')")
    preparer.execute("prepare transaction 'crash-forbid-bob'")
    # A writer inside its commit, waiting behind the prepared writer's commit-order lock.
    writer = cluster.connect()
    writer.execute("begin")
    writer.execute("delete from oidc.rules where name = 'owners-read'")
    writer.execute("delete from oidc.issuers")
    writer_pid = writer.info.backend_pid
    commit = threading.Thread(target=lambda: _swallow(lambda: writer.execute("commit")))
    commit.start()
    wait_active(watcher, writer_pid, "the writer's commit to wait on the lock", "object")
    # A backend in the middle of rule evaluation over many rows.
    victim = cluster.connect(user=APP)
    victim_pid = victim.info.backend_pid
    decide = threading.Thread(target=lambda: _swallow(lambda: victim.execute(
        "select count(*) from generate_series(1, 100000000) i where oidc.allow('read', 'doc', 'owner', i::text)")))
    decide.start()
    wait_active(watcher, victim_pid, "the victim's evaluation")

    crash(cluster, victim_pid, [admin, watcher, serving, preparer])
    commit.join(30)
    decide.join(30)

    with cluster.connect() as conn, cluster.connect(user=APP) as app:
        rules = {name for (name,) in conn.execute("select name from oidc.rules")}
        assert rules == {"owners-read", "carol-reads-all"}, "the killed writer's change or the prepared one leaked"
        assert conn.execute("select count(*) from oidc.issuers").fetchone()[0] == 1
        assert conn.execute("select gid from pg_prepared_xacts").fetchall() == [("crash-forbid-bob",)]
        assert sub_of(app, "alice") == "alice"
        assert visible_owners(app, "alice") == {"alice"}
        assert visible_owners(app, "bob") == {"bob"}, "the prepared forbid is in force before COMMIT PREPARED"
        assert visible_owners(app, "carol") == {"alice", "bob", "carol"}
        conn.execute("commit prepared 'crash-forbid-bob'")
        assert visible_owners(app, "bob") == set()
        assert visible_owners(app, "alice") == {"alice"}


def test_a_killed_keys_worker_comes_back_with_the_server(cluster):
    with cluster.connect() as conn:
        wait_until(lambda: keys_worker_pid(conn) is not None, RESTART_TIMEOUT, "the keys worker", cluster.log)
        pid = keys_worker_pid(conn)
    serving = cluster.connect(user=APP)
    assert sub_of(serving, "alice") == "alice"
    crash(cluster, pid, [serving])
    with cluster.connect() as conn, cluster.connect(user=APP) as app:
        wait_until(lambda: keys_worker_pid(conn) not in (None, pid), RESTART_TIMEOUT,
                   "the keys worker after the crash", cluster.log)
        assert sub_of(app, "alice") == "alice"
        assert visible_owners(app, "alice") == {"alice"}
        # The shared state the worker and backends use was rebuilt, not left half-written:
        # a refresh request and the status view work as before the crash.
        assert conn.execute("select count(*) from oidc.issuer_status").fetchone()[0] == 1


def _swallow(run) -> None:
    try:
        run()
    except psycopg.Error:
        pass
