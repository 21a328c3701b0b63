"""pg_dump and pg_restore of a database with the extension, its issuers, rules, rule tests,
history, revocations and RLS tables: the restored database decides as the dumped one did,
and no validating trigger or gate refuses a row of the restore, whether it runs as one
transaction, table by table (each table's data in its own transaction, oidc.rule_tests before
oidc.rules: the rule-test gate waits for the first rules) or in parallel.

Into the same major by default. With PGOIDC_RESTORE_BINDIR (the bin directory of another
major, e.g. PostgreSQL 18) and PGOIDC_RESTORE_HOST/PGOIDC_RESTORE_PORT (a running cluster of
that major with the extension installed), the same cases also restore there, dumped with
that major's pg_dump as PostgreSQL's upgrade path by dump asks (the application role the
dump grants to is created there when missing, and dropped after).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from deployment import assert_decides, configure, drop, recreate, visible
from helpers import APP_ROLE, connect, mint

SOURCE = "oidc_e2e_dumped"
RESTORED = "oidc_e2e_restored"
THIS_BINDIR = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")


@dataclass(frozen=True)
class Target:
    """Where a dump is restored: a cluster and the bin directory of its major."""
    name: str
    bindir: str
    connection: dict[str, str] = field(default_factory=dict)  # host, port; empty: libpq's environment

    def args(self) -> list[str]:
        return [f"--{k}={v}" for k, v in self.connection.items()]


def targets() -> list[Target]:
    found = [Target("same major", THIS_BINDIR)]
    other = os.environ.get("PGOIDC_RESTORE_BINDIR")
    if other:
        connection = {k: os.environ[f"PGOIDC_RESTORE_{k.upper()}"]
                      for k in ("host", "port") if os.environ.get(f"PGOIDC_RESTORE_{k.upper()}")}
        found.append(Target(f"into {Path(other).parent.name}", other, connection))
    return found


# How pg_restore runs: as one transaction, one transaction per object (the default), and two
# jobs in parallel (a directory-format dump).
MODES = {
    "single transaction": ("custom", ["--single-transaction"]),
    "table by table": ("custom", []),
    "parallel": ("directory", ["--jobs=2"]),
}


def instant(conn):
    """A moment strictly between two transactions."""
    time.sleep(0.01)
    at = conn.execute("select clock_timestamp()").fetchone()[0]
    time.sleep(0.01)
    return at


def replay(conn, claims: dict, at, rules: str = "at") -> str:
    return conn.execute("select oidc.replay(%s, 'read', 'doc', %s, %s, %s) ->> 'decision'",
                        (Jsonb(claims), Jsonb({"owner": "alice", "team": "red"}), at, rules)).fetchone()[0]


@dataclass(frozen=True)
class Dumped:
    before_team_rule: object  # an instant at which the rule `team` did not exist yet
    with_team_rule: object  # and one at which it did
    rule_tests: int


@pytest.fixture(scope="module")
def dumped(database) -> Iterator[Dumped]:
    """The deployment, with history (a rule that came and went), gated rule tests that pass
    and a revocation."""
    recreate(SOURCE)
    try:
        with connect(SOURCE) as su:
            su.execute("create extension pg_oidc_authz")
            configure(su)
            before = instant(su)
            su.execute("insert into oidc.rules (name, effect, actions, resource_type, condition)"
                       " values ('team', 'permit', '{read}', 'doc', 'resource.team in claims.teams')")
            during = instant(su)
            su.execute("delete from oidc.rules where name = 'team'")
            tests = [("alice reads hers", {"sub": "alice"}, {"owner": "alice"}, "allow", "owners"),
                     ("bob does not", {"sub": "bob"}, {"owner": "alice"}, "deny", None),
                     ("carol is frozen", {"sub": "carol"}, {"owner": "carol"}, "deny", "frozen"),
                     ("editors read", {"iss": mint.ISSUER, "sub": "zed", "realm_access": {"roles": ["editor"]}},
                      {"owner": "bob"}, "allow", "editors")]
            with su.transaction():
                for name, claims, resource, expect, rule in tests:
                    su.execute("insert into oidc.rule_tests (name, claims, action, resource_type, resource, expect,"
                               " expect_rule) values (%s, %s, 'read', 'doc', %s, %s, %s)",
                               (name, Jsonb(claims), Jsonb(resource), expect, rule))
            assert su.execute("select bool_and(passed and gate), count(*) from oidc.test_rules()"
                              ).fetchone() == (True, len(tests))
            su.execute("select oidc.revoke_subject(%s, 'dave')", (mint.ISSUER,))
        yield Dumped(before, during, len(tests))
    finally:
        drop(SOURCE)


@pytest.fixture(params=targets(), ids=lambda t: t.name)
def target(request) -> Iterator[Target]:
    t: Target = request.param
    # Another cluster needs the application role the dump grants to (roles are not dumped).
    made_role = False
    if t.connection:
        with connect("postgres", **t.connection) as admin:
            if admin.execute("select count(*) from pg_roles where rolname = %s", (APP_ROLE,)).fetchone()[0] == 0:
                admin.execute(sql.SQL("create role {} login").format(sql.Identifier(APP_ROLE)))
                made_role = True
    recreate(RESTORED, **t.connection)
    yield t
    drop(RESTORED, **t.connection)
    if made_role:
        with connect("postgres", **t.connection) as admin:
            admin.execute(sql.SQL("drop role {}").format(sql.Identifier(APP_ROLE)))


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PGUSER": "postgres"}
    done = subprocess.run(cmd, env=env, timeout=300, capture_output=True, text=True)
    assert done.returncode == 0 and "error" not in done.stderr.lower(), f"{cmd[0]} failed:\n{done.stderr}"
    return done


@pytest.mark.parametrize("mode", MODES)
def test_a_restore_decides_as_the_dumped_database(dumped, target, mode, tmp_path, make_token):
    fmt, restore_args = MODES[mode]
    dump = tmp_path / "dump"
    # The target's pg_dump: a newer major's reads the older server.
    run([f"{target.bindir}/pg_dump", f"--format={fmt}", "--file", str(dump), SOURCE])
    run([f"{target.bindir}/pg_restore", *target.args(), *restore_args, "--exit-on-error",
         "--dbname", RESTORED, str(dump)])
    with connect(RESTORED, **target.connection) as su:
        assert su.execute("select bool_and(passed), count(*) from oidc.test_rules()"
                          ).fetchone() == (True, dumped.rule_tests)
        # History: what was in force then, and today's rules at the same instant.
        teammate = {"sub": "zed", "teams": ["red"]}
        assert replay(su, teammate, dumped.before_team_rule) == "deny"
        assert replay(su, teammate, dumped.with_team_rule) == "allow"
        assert replay(su, teammate, dumped.with_team_rule, "current") == "deny"
        assert su.execute("select count(*) from oidc.revocations").fetchone()[0] == 1
    assert_decides(RESTORED, make_token, **target.connection)
    with connect(RESTORED, user=APP_ROLE, **target.connection) as app:
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            visible(app, make_token(sub="dave", iat=int(time.time()) - 60), "docs_pairs")
