"""A hot-standby streaming replica of the test cluster, made with pg_basebackup -R.

The primary needs nothing beyond initdb's defaults (scripts/cluster.sh raises wal_level to
logical, for test_logical.py, which streaming needs no more than replica): max_wal_senders = 10,
and `local replication all trust` in pg_hba.conf (the backup and the replica's walreceiver
connect over the primary's socket directory, reachable only by postgres).

Test modules import the fixture (`from replica import replica`)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

from helpers import DB, SUPERUSER, connect
from services import free_port, log_tail, pg_bindir, private_dir, remove_dir, run_as_postgres, wait_until

REPLAY_TIMEOUT = 30  # seconds


@dataclass(frozen=True)
class Replica:
    host: Path  # its socket directory
    port: int
    log: Path

    def connect(self, user: str = SUPERUSER, **kwargs) -> psycopg.Connection:
        return psycopg.connect(host=str(self.host), port=self.port, dbname=DB, user=user,
                               autocommit=True, connect_timeout=10, **kwargs)

    def wait_for_replay(self) -> None:
        """Until the replica has replayed everything inserted into the primary's WAL so far,
        committed or not. The walsender only sends flushed WAL, and with the cluster's
        asynchronous commit an inserted record can wait unflushed for seconds, so a small
        transaction with synchronous_commit = on flushes it first."""
        with connect() as primary:
            target = primary.execute("select pg_current_wal_insert_lsn()").fetchone()[0]
            primary.execute("set synchronous_commit = on")
            with primary.transaction():
                primary.execute("select pg_current_xact_id()")  # a commit record to flush
        deadline = time.monotonic() + REPLAY_TIMEOUT
        with self.connect() as standby:
            while not standby.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()[0]:
                if time.monotonic() > deadline:
                    pytest.fail(f"replica did not replay up to {target} within {REPLAY_TIMEOUT} s"
                                f"{log_tail(self.log)}")
                time.sleep(0.02)


@pytest.fixture(scope="module")
def replica(database) -> Iterator[Replica]:
    base = private_dir("replica-")
    data, log, port = base / "data", base / "postgres.log", free_port()
    bindir = pg_bindir()
    pg_ctl = bindir / "pg_ctl"
    try:
        run_as_postgres([bindir / "pg_basebackup", "-D", data, "-R", "-X", "stream", "-c", "fast",
                         "--no-sync", "-h", os.environ["PGHOST"], "-p", os.environ["PGPORT"], "-U", SUPERUSER],
                        timeout=120)
        # postgresql.auto.conf is read last: these override the primary's copied settings.
        with open(data / "postgresql.auto.conf", "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                       f"unix_socket_directories = '{base}'\nhot_standby = on\n")
        run_as_postgres([pg_ctl, "start", "-D", data, "-l", log, "-w", "-t", "60", "-s"], timeout=90)
        standby = Replica(base, port, log)

        def streaming() -> bool:
            with standby.connect() as conn:
                return conn.execute("select pg_is_in_recovery() and exists"
                                    " (select from pg_stat_wal_receiver where status = 'streaming')").fetchone()[0]

        wait_until(streaming, 30, "replica", log)
        standby.wait_for_replay()
        yield standby
    finally:
        if (data / "postmaster.pid").exists():
            try:
                run_as_postgres([pg_ctl, "stop", "-D", data, "-m", "fast", "-t", "30", "-s"], timeout=60)
            except BaseException:
                run_as_postgres([pg_ctl, "stop", "-D", data, "-m", "immediate", "-t", "30", "-s"], timeout=60)
                raise
        remove_dir(base)
