"""Processes the end-to-end tests start beside the cluster of scripts/cluster.sh: each runs as
the `postgres` OS user (Postgres and pgbouncer refuse root), on loopback only, in a private
directory under PGOIDC_DIR, and is waited for and stopped with a deadline."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest

OS_USER = "postgres"


def pg_bindir() -> Path:
    """The programs of the major under test (PG=15 or 18): scripts/cluster.sh exports
    PG_BINDIR from scripts/pg.sh, so a replica or a pg_dump is of the cluster's own major."""
    path = os.environ.get("PG_BINDIR")
    if not path:
        pytest.fail("PG_BINDIR is not set; run the tests through scripts/e2e.sh")
    return Path(path)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_dir(prefix: str) -> Path:
    """A fresh 0700 directory owned by postgres inside PGOIDC_DIR (itself 0700, so nothing
    in it, a trusted socket included, is reachable by other OS users)."""
    parent = os.environ.get("PGOIDC_DIR")
    if not parent:
        pytest.fail("PGOIDC_DIR is not set; run the tests through scripts/e2e.sh")
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    shutil.chown(path, OS_USER, OS_USER)
    return path


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def write_private(path: Path, text: str) -> None:
    """A file only postgres can read (configurations can hold passwords)."""
    path.write_text(text)
    path.chmod(0o600)
    shutil.chown(path, OS_USER, OS_USER)


def run_as_postgres(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Runs a command as postgres from / (a cwd postgres cannot enter breaks the PG tools);
    a nonzero exit fails the test with the command's output."""
    done = subprocess.run([str(a) for a in args], user=OS_USER, group=OS_USER, extra_groups=[],
                          cwd="/", capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


def spawn_as_postgres(args: list[str], log: Path) -> subprocess.Popen:
    """Starts a long-running process as postgres, output to log (owned by postgres)."""
    out = open(log, "ab")  # noqa: SIM115 - owned by the process object below
    try:
        return subprocess.Popen([str(a) for a in args], user=OS_USER, group=OS_USER, extra_groups=[],
                                cwd="/", stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        out.close()


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after timeout; always reaps the process."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def wait_until(ready: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    """Polls ready() until it returns true; fails the test (with the log's tail) at the deadline.
    Exceptions from ready() count as not ready yet."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception as err:  # noqa: BLE001 - retried until the deadline, then reported
            last = err
        time.sleep(0.05)
    pytest.fail(f"{what}: not ready after {timeout} s (last error: {last}){log_tail(log)}")


def log_tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    return "\nlast log lines:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
