"""pgbouncer in transaction mode between the tests and the cluster, the way an API backend
would use it: few server connections shared by many clients, each server connection handed
to whichever client starts the next transaction.

Test modules import the fixtures they use (`from pooler import pgbouncer`)."""

from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import psycopg
import pytest
from psycopg import sql

from helpers import APP_ROLE, DB, connect
from services import free_port, private_dir, remove_dir, spawn_as_postgres, stop_process, wait_until, write_private

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@dataclass(frozen=True)
class Pooler:
    port: int
    password: str
    pool_size: int

    def connect(self) -> psycopg.Connection:
        """A client connection as the app role. prepare_threshold=None: this pgbouncer (1.18)
        does not carry server-side prepared statements across server connections."""
        return psycopg.connect(host="127.0.0.1", port=self.port, dbname=DB, user=APP_ROLE,
                               password=self.password, autocommit=True, prepare_threshold=None,
                               connect_timeout=10)


@contextmanager
def start_pgbouncer(password: str, pool_size: int) -> Iterator[Pooler]:
    """pgbouncer on a free loopback port, pool_mode = transaction, at most pool_size server
    connections to the cluster (over TCP 127.0.0.1, SCRAM with the app role's password)."""
    workdir = private_dir("pgbouncer-")
    port = free_port()
    log = workdir / "pgbouncer.log"
    write_private(workdir / "userlist.txt", f'"{APP_ROLE}" "{password}"\n')
    write_private(workdir / "pgbouncer.ini", f"""\
[databases]
{DB} = host=127.0.0.1 port={os.environ["PGPORT"]} dbname={DB}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {workdir}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 50
; only the defaults matter here: no reset query runs between clients in transaction mode
server_reset_query_always = 0
logfile = {log}
pidfile = {workdir}/pgbouncer.pid
""")
    proc = spawn_as_postgres([PGBOUNCER, "-q", workdir / "pgbouncer.ini"], workdir / "stdout.log")
    try:
        pooler = Pooler(port, password, pool_size)

        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"pgbouncer exited with {proc.returncode}"
                            f"\n{(workdir / 'stdout.log').read_text(errors='replace')}")
            with pooler.connect() as conn:
                return conn.execute("select 1").fetchone()[0] == 1

        wait_until(ready, 15, "pgbouncer", log)
        yield pooler
    finally:
        stop_process(proc)
        remove_dir(workdir)


@pytest.fixture(scope="module")
def app_password(database) -> Iterator[str]:
    """A password for the app role, which otherwise logs in only over the trusted socket."""
    password = secrets.token_urlsafe(24)
    with connect() as su:
        su.execute(sql.SQL("alter role {} password {}").format(sql.Identifier(APP_ROLE), sql.Literal(password)))
    yield password
    with connect() as su:
        su.execute(sql.SQL("alter role {} password null").format(sql.Identifier(APP_ROLE)))


@pytest.fixture(scope="module")
def pgbouncer(app_password) -> Iterator[Pooler]:
    """Two server connections shared by every client of the module."""
    with start_pgbouncer(app_password, pool_size=2) as pooler:
        yield pooler
