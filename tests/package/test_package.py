"""The Debian package of `make package`: its control fields and files, and an install of it
that works with no Rust toolchain anywhere in the PATH.

The package is unpacked into a scratch copy of the server (scripts/scratch-root.sh: the
system's PostgreSQL directories are never written), a cluster of that copy runs as postgres
on its own port, and the extension is created from the package's files, at this version and
at the first release followed by ALTER EXTENSION UPDATE; a signed token is verified and a
rule decides. Run by scripts/package-test.sh (make package-test).

The package's files are at Debian's (and PGDG's) paths for the major, whatever the layout of
the server it was built against (PostgreSQL 18 here is a relocatable build under /opt, copied
into that layout by scratch-root.sh).

PGOIDC_DEB: the package (default: target/package/postgresql-<major>-pg-oidc-authz_*.deb);
PG_CONFIG: the server it is for (default PostgreSQL 15's); PGOIDC_PACKAGE_PORT: the
cluster's port (default 55442). PGOIDC_PACKAGE_INSTALLED=1: the package was installed with
dpkg -i (scripts/package-install-test.sh, on a disposable CI machine only): the cluster runs
the system's server instead of a scratch copy, and dpkg's own records are checked too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
import mint  # noqa: E402

PG_CONFIG = os.environ.get("PG_CONFIG", "/usr/lib/postgresql/15/bin/pg_config")
PORT = os.environ.get("PGOIDC_PACKAGE_PORT", "55442")
# What the test's processes may run: the system's tools, nothing of a Rust install.
SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
INSTALLED = os.environ.get("PGOIDC_PACKAGE_INSTALLED") == "1"


def pg_config(flag: str) -> str:
    return subprocess.run([PG_CONFIG, flag], check=True, capture_output=True, text=True).stdout.strip()


MAJOR = re.match(r"PostgreSQL (\d+)", pg_config("--version")).group(1)
with open(REPO / "Cargo.toml", "rb") as f:
    VERSION = tomllib.load(f)["package"]["version"]
NAME = f"postgresql-{MAJOR}-pg-oidc-authz"
# Where a Debian postgresql-<major> has its programs, modules and shared files.
BINDIR = f"/usr/lib/postgresql/{MAJOR}/bin"
PKGLIBDIR = f"/usr/lib/postgresql/{MAJOR}/lib"
SHAREDIR = f"/usr/share/postgresql/{MAJOR}"
ARCH = subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True, text=True).stdout.strip()
DEB = Path(os.environ.get("PGOIDC_DEB", REPO / "target" / "package" / f"{NAME}_{VERSION}_{ARCH}.deb"))
SQL = sorted(p.name for p in (REPO / "sql").glob("pg_oidc_authz--*.sql"))


def dpkg_deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args, str(DEB)], check=True, capture_output=True, text=True).stdout


def test_the_control_fields():
    fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", dpkg_deb("--field"), re.M))
    assert fields["Package"] == NAME
    assert fields["Version"] == VERSION
    assert fields["Architecture"] == ARCH
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert f"postgresql-{MAJOR}" in depends
    assert any(d.startswith("libc6 ") for d in depends), depends
    assert fields["Section"] == "database" and fields["Maintainer"] and fields["Description"]


def packaged_files() -> set[str]:
    return {line.split()[-1].removeprefix(".") for line in dpkg_deb("--contents").splitlines()
            if line.startswith("-")}


def test_the_files_and_nothing_else():
    files = packaged_files()
    extension = f"{SHAREDIR}/extension"
    expected = {f"{PKGLIBDIR}/pg_oidc_authz.so", f"{extension}/pg_oidc_authz.control",
                f"{extension}/pg_oidc_authz--{VERSION}.sql",
                f"{SHAREDIR}/contrib/pg_oidc_authz/supabase_compat.sql",
                f"/usr/share/doc/{NAME}/README.md.gz", f"/usr/share/doc/{NAME}/copyright"}
    # Every install and upgrade script of sql/: each earlier release installs and updates.
    expected |= {f"{extension}/{name}" for name in SQL}
    assert files == expected
    assert any("--" in name.removeprefix("pg_oidc_authz--") for name in SQL), "no upgrade script in sql/"


def as_postgres(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *cmd], cwd="/", check=True,
                          env={"PATH": SAFE_PATH, "LANG": "C"}, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, str]]:
    """A cluster of the scratch root's server, preloading the packaged library."""
    assert DEB.is_file(), f"no package at {DEB}; run make package"
    work = Path(tempfile.mkdtemp(prefix="pg_oidc_authz-package-", dir="/tmp"))
    work.chmod(0o755)
    root, data = ("" if INSTALLED else work / "root"), work / "data"
    if not INSTALLED:
        made = subprocess.run([str(REPO / "scripts" / "scratch-root.sh"), str(DEB), str(root), PG_CONFIG],
                              env={"PATH": SAFE_PATH, "LANG": "C"}, capture_output=True, text=True)
        if made.returncode != 0:
            shutil.rmtree(work)
            pytest.fail(f"scratch-root.sh failed ({made.returncode}):\n{made.stderr}")
    bindir = f"{root}{BINDIR}"
    socket = work / "run"  # the socket and the server log, written by postgres
    socket.mkdir()
    shutil.chown(socket, "postgres", "postgres")
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    data.chmod(0o700)
    as_postgres(f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "-E", "UTF8", "--locale=C",
                "--auth-local=trust", "--no-sync", "--no-instructions")
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(f"port = {PORT}\nlisten_addresses = ''\nunix_socket_directories = '{socket}'\n"
                   "shared_preload_libraries = 'pg_oidc_authz'\nfsync = off\n")
    log = socket / "postgres.log"
    try:
        as_postgres(f"{bindir}/pg_ctl", "start", "-D", str(data), "-l", str(log), "-w", "-t", "60")
    except subprocess.CalledProcessError:
        text = log.read_text() if log.exists() else "(no log)"
        shutil.rmtree(work)
        pytest.fail("the server did not start:\n" + text)
    try:
        yield {"host": str(socket), "port": PORT, "user": "postgres", "root": str(root), "bindir": bindir}
    finally:
        as_postgres(f"{bindir}/pg_ctl", "stop", "-D", str(data), "-m", "fast", "-w", "-t", "60")
        shutil.rmtree(work)


def connect(cluster, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(host=cluster["host"], port=cluster["port"], user="postgres", dbname=dbname,
                           autocommit=True)


def assert_dpkg_installed() -> None:
    """dpkg's own records of an install with dpkg -i: status, version and every file."""
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", NAME],
                            check=True, capture_output=True, text=True).stdout
    assert status == f"install ok installed {VERSION}"
    listed = subprocess.run(["dpkg-query", "-L", NAME], check=True, capture_output=True, text=True).stdout.split()
    assert packaged_files() <= set(listed)


def test_no_rust_toolchain_is_reachable():
    for tool in ("cargo", "rustc", "cargo-pgrx"):
        assert shutil.which(tool, path=SAFE_PATH) is None, f"{tool} is in {SAFE_PATH}"


def test_the_server_reads_the_packaged_files(cluster):
    with connect(cluster) as conn:
        paths = dict(conn.execute("select name, setting from pg_config where name in ('SHAREDIR', 'PKGLIBDIR')"))
        # Through the scratch root's link for a relocatable server (its share beside its bin).
        assert {name: os.path.realpath(path) for name, path in paths.items()} == {
            "SHAREDIR": os.path.realpath(f"{cluster['root']}{SHAREDIR}"),
            "PKGLIBDIR": os.path.realpath(f"{cluster['root']}{PKGLIBDIR}")}
        versions = {r[0] for r in conn.execute("select version from pg_available_extension_versions"
                                               " where name = 'pg_oidc_authz'")}
        assert versions == {name.removeprefix("pg_oidc_authz--").removesuffix(".sql")
                            for name in SQL + [f"pg_oidc_authz--{VERSION}.sql"] if name.count("--") == 1}
    if INSTALLED:
        assert_dpkg_installed()


def decide(cluster, db: str) -> None:
    """A signed token is verified, and a rule decides for it."""
    with connect(cluster, db) as su:
        su.execute("insert into oidc.issuers (issuer, audiences, jwks) values (%s, %s, %s)",
                   (mint.ISSUER, [mint.AUDIENCE], Jsonb(mint.jwks(kids=mint.ASYMMETRIC_KIDS))))
        su.execute("insert into oidc.rules (name, effect, actions, resource_type, condition)"
                   " values ('owners', 'permit', '{read}', 'doc', 'resource.owner == claims.sub')")
        now = int(time.time())
        token = mint.token("RS256", None, mint.claims("alice", iat=now, exp=now + 300))
        forged = mint.token("RS256", "rs256", mint.claims("alice", iat=now, exp=now + 300), None, mint.attacker_key())
        with su.transaction():
            su.execute("select set_config('oidc.token', %s, true)", (token,))
            assert su.execute("select oidc.sub(), oidc.allow('read', 'doc', '{\"owner\": \"alice\"}'),"
                              " oidc.allow('read', 'doc', '{\"owner\": \"bob\"}')").fetchone() == ("alice", True, False)
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            with su.transaction():
                su.execute("select set_config('oidc.token', %s, true)", (forged,))
                su.execute("select oidc.sub()")


@pytest.mark.parametrize("first", [None, "0.1.0"], ids=["current version", "first release, then updated"])
def test_create_extension_from_the_package(cluster, first):
    db = "package_current" if first is None else "package_updated"
    with connect(cluster) as admin:
        admin.execute(f"drop database if exists {db} with (force)")
        admin.execute(f"create database {db}")
    try:
        with connect(cluster, db) as su:
            if first is None:
                su.execute("create extension pg_oidc_authz")
            else:
                su.execute(f"create extension pg_oidc_authz version '{first}'")
                su.execute("alter extension pg_oidc_authz update")
            assert su.execute("select extversion from pg_extension where extname = 'pg_oidc_authz'"
                              ).fetchone()[0] == VERSION
        decide(cluster, db)
    finally:
        with connect(cluster) as admin:
            admin.execute(f"drop database if exists {db} with (force)")
