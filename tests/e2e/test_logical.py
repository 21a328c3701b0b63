"""Configuration arriving by logical replication: the subscriber's apply worker runs with
session_replication_role = replica, where only ENABLE ALWAYS triggers fire. Rows of
oidc.issuers and oidc.rules published by one database and applied in another must be
validated there and reach the subscriber's open sessions at their next transaction.
Both databases live in the test cluster (wal_level = logical, scripts/cluster.sh)."""

from __future__ import annotations

import os
import time

import psycopg
import pytest
from psycopg.types.json import Jsonb

from helpers import connect, mint

PUB, SUB, SLOT = "oidc_logical_pub", "oidc_logical_sub", "oidc_logical_slot"


def wait_for(check, seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while not check():
        if time.monotonic() > end:
            raise AssertionError("logical replication did not deliver in time")
        time.sleep(0.05)


@pytest.fixture
def logical():
    with connect("postgres") as admin:
        for db in (SUB, PUB):
            admin.execute(f"drop database if exists {db} with (force)")
        admin.execute(f"create database {PUB}")
        admin.execute(f"create database {SUB}")
    with connect(PUB) as pub:
        pub.execute("create extension pg_oidc_authz")
        pub.execute("create publication oidc_config for table oidc.issuers, oidc.rules")
        pub.execute("select pg_create_logical_replication_slot(%s, 'pgoutput')", (SLOT,))
    conninfo = f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} user=postgres dbname={PUB}"
    with connect(SUB) as sub:
        sub.execute("create extension pg_oidc_authz")
        # Within one cluster, the slot is made beforehand (CREATE SUBSCRIPTION would wait on
        # its own transaction otherwise).
        sub.execute(
            f"create subscription oidc_config connection '{conninfo}' publication oidc_config"
            f" with (create_slot = false, slot_name = '{SLOT}')"
        )
    try:
        yield
    finally:
        with connect(SUB) as sub:
            sub.execute("alter subscription oidc_config disable")
            sub.execute("alter subscription oidc_config set (slot_name = none)")
            sub.execute("drop subscription oidc_config")
        with connect(PUB) as pub:
            pub.execute("select pg_drop_replication_slot(%s)", (SLOT,))
        with connect("postgres") as admin:
            for db in (SUB, PUB):
                admin.execute(f"drop database if exists {db} with (force)")


def verify(conn: psycopg.Connection, token: str):
    with conn.transaction():
        conn.execute("select set_config('oidc.token', %s, true)", (token,))
        return conn.execute("select oidc.sub(), oidc.allow('read', 'doc', 'owner', 'alice')").fetchone()


def test_replicated_configuration_reaches_open_sessions(logical, make_token):
    token = make_token()
    with connect(SUB) as session, connect(PUB) as pub:
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            verify(session, token)
        pub.execute(
            "insert into oidc.issuers (issuer, audiences, jwks) values (%s, %s, %s)",
            (mint.ISSUER, [mint.AUDIENCE], Jsonb(mint.jwks(kids=mint.ASYMMETRIC_KIDS))),
        )
        wait_for(lambda: session.execute("select count(*) from oidc.issuers").fetchone()[0] == 1)
        # The open session's next transaction trusts the replicated issuer …
        assert verify(session, token) == ("alice", False)
        # … and the rules that follow it.
        pub.execute(
            "insert into oidc.rules (name, effect, actions, resource_type, condition)"
            " values ('owner', 'permit', '{read}', 'doc', 'resource.owner == claims.sub')"
        )
        wait_for(lambda: session.execute("select count(*) from oidc.rules").fetchone()[0] == 1)
        assert verify(session, token) == ("alice", True)
        pub.execute("delete from oidc.issuers")
        wait_for(lambda: session.execute("select count(*) from oidc.issuers").fetchone()[0] == 0)
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            verify(session, token)
