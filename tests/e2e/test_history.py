"""Rule history (oidc.rules_history, oidc.issuers_history): every version of every rule and of
the issuers' scope and role mapping, kept by triggers nobody can bypass or edit; replay as of a
time decides with what was in force then, and `rules => 'current'` with today's. History
survives pg_dump and pg_restore."""

from __future__ import annotations

import os
import subprocess
import time

import psycopg
import pytest
from psycopg.types.json import Jsonb

from helpers import DB, app_connect, connect, mint
from services import pg_bindir

RESOURCE = Jsonb({"owner": "alice", "team": "red"})


def replay(conn, claims: dict, at, rules: str = "at", action: str = "read") -> str:
    return conn.execute("select oidc.replay(%s, %s, 'doc', %s, %s, %s) ->> 'decision'",
                        (Jsonb(claims), action, RESOURCE, at, rules)).fetchone()[0]


def instant(conn):
    """A moment strictly between two transactions."""
    time.sleep(0.01)
    at = conn.execute("select clock_timestamp()").fetchone()[0]
    time.sleep(0.01)
    return at


@pytest.fixture
def history(superuser, issuer):
    superuser.execute("delete from oidc.rule_tests")
    superuser.execute("delete from oidc.rules")
    yield superuser
    superuser.execute("delete from oidc.rule_tests")
    superuser.execute("delete from oidc.rules")


def test_replay_decides_with_the_rules_in_force_then(history):
    su = history
    before = instant(su)
    su.execute("insert into oidc.rules (name, effect, actions, resource_type, condition)"
               " values ('owner', 'permit', '{read}', 'doc', 'resource.owner == claims.sub')")
    sunday = instant(su)
    su.execute("update oidc.rules set condition = 'resource.team in claims.teams' where name = 'owner'")
    monday = instant(su)
    su.execute("insert into oidc.rules (name, effect, actions, resource_type) values ('freeze', 'forbid', '{*}', '*')")
    tuesday = instant(su)
    su.execute("delete from oidc.rules where name = 'freeze'")
    alice, teammate = {"sub": "alice"}, {"sub": "zed", "teams": ["red"]}
    assert [replay(su, alice, t) for t in (before, sunday, monday, tuesday)] == ["deny", "allow", "deny", "deny"]
    assert [replay(su, teammate, t) for t in (before, sunday, monday, tuesday)] == ["deny", "deny", "allow", "deny"]
    # What-if: today's rules at any instant.
    assert [replay(su, teammate, t, "current") for t in (before, sunday, tuesday)] == ["allow"] * 3
    out = su.execute("select oidc.replay(%s, 'read', 'doc', %s, %s)", (Jsonb(alice), RESOURCE, sunday)).fetchone()[0]
    assert out["rules"] == "at" and out["permits"] == ["owner"]
    rows = su.execute("select name, condition is null, valid_to is null, changed_by, ended_by"
                      " from oidc.rules_history where valid_from > %s order by valid_from, name", (before,)).fetchall()
    assert rows == [("owner", False, False, "postgres", "postgres"), ("owner", False, True, "postgres", None),
                    ("freeze", True, False, "postgres", "postgres")], rows
    # An update that changes nothing a decision or its description depends on keeps the version.
    su.execute("update oidc.rules set updated_at = now()")
    assert su.execute("select count(*) from oidc.rules_history where valid_from > %s", (before,)).fetchone()[0] == 3
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        replay(su, alice, sunday, "yesterday")


def test_replay_maps_scopes_and_roles_as_the_issuer_did_then(history):
    su = history
    su.execute("insert into oidc.rules (name, effect, actions, resource_type, condition)"
               " values ('editors', 'permit', '{read}', 'doc', '\"editor\" in roles')")
    claims = {"iss": mint.ISSUER, "sub": "x", "roles": ["editor"], "realm_access": {"roles": []}}
    then = instant(su)
    su.execute("update oidc.issuers set roles_claim = 'realm_access.roles' where issuer = %s", (mint.ISSUER,))
    now = instant(su)
    assert replay(su, claims, then) == "allow"
    assert replay(su, claims, now) == "deny"
    assert replay(su, claims, then, "current") == "deny"
    # Key changes are not what replay uses: no new version.
    versions = su.execute("select count(*) from oidc.issuers_history where issuer = %s", (mint.ISSUER,)).fetchone()[0]
    su.execute("update oidc.issuers set jwks = jwks where issuer = %s", (mint.ISSUER,))
    assert su.execute("select count(*) from oidc.issuers_history where issuer = %s",
                      (mint.ISSUER,)).fetchone()[0] == versions


def test_history_is_read_only_and_admin_only(history, superuser):
    su = history
    su.execute("insert into oidc.rules (name, effect, actions, resource_type) values ('all', 'permit', '{*}', '*')")
    su.execute("drop role if exists e2e_rule_admin")
    su.execute("create role e2e_rule_admin login in role oidc_admin")
    try:
        with connect(user="e2e_rule_admin") as admin:
            assert admin.execute("select count(*) from oidc.rules_history").fetchone()[0] >= 1
            admin.execute("update oidc.rules set condition = 'true' where name = 'all'")  # an admin changes rules
            assert admin.execute("select changed_by from oidc.rules_history where valid_to is null"
                                 ).fetchone()[0] == "e2e_rule_admin"
            for statement in ("delete from oidc.rules_history", "update oidc.rules_history set valid_to = null",
                              "insert into oidc.rules_history select * from oidc.rules_history",
                              "truncate oidc.issuers_history"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    admin.execute(statement)
        with app_connect() as app:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("select * from oidc.rules_history")
    finally:
        su.execute("drop owned by e2e_rule_admin")
        su.execute("drop role e2e_rule_admin")


def test_history_and_rule_tests_survive_dump_and_restore(history, tmp_path):
    su = history
    su.execute("insert into oidc.rules (name, effect, actions, resource_type, condition)"
               " values ('owner', 'permit', '{read}', 'doc', 'resource.owner == claims.sub')")
    su.execute("insert into oidc.rule_tests (name, claims, action, resource_type, resource, expect)"
               " values ('alice reads hers', '{\"sub\": \"alice\"}', 'read', 'doc', '{\"owner\": \"alice\"}', 'allow')")
    sunday = instant(su)
    with su.transaction():  # the gate: a rule change and the test it breaks, together
        su.execute("update oidc.rules set condition = 'false' where name = 'owner'")
        su.execute("update oidc.rule_tests set expect = 'deny'")
    dump = tmp_path / "db.dump"
    bindir = pg_bindir()  # the cluster's own major: a pg_dump refuses a newer server
    env = {**os.environ, "PGUSER": "postgres"}
    restored = "oidc_e2e_restored"
    with connect("postgres") as admin:
        admin.execute(f"drop database if exists {restored} with (force)")
        admin.execute(f"create database {restored}")
    try:
        subprocess.run([f"{bindir}/pg_dump", "-Fc", "-f", str(dump), DB], check=True, env=env, timeout=120,
                       capture_output=True)
        subprocess.run([f"{bindir}/pg_restore", "--single-transaction", "-d", restored, str(dump)],
                       check=True, env=env, timeout=120, capture_output=True)
        with connect(restored) as conn:
            assert replay(conn, {"sub": "alice"}, sunday) == "allow"
            assert replay(conn, {"sub": "alice"}, sunday, "current") == "deny"
            assert conn.execute("select bool_and(passed), count(*) from oidc.test_rules()").fetchone() == (True, 1)
    finally:
        with connect("postgres") as admin:
            admin.execute(f"drop database if exists {restored} with (force)")
