"""Fixtures for the end-to-end tests against the cluster of scripts/cluster.sh.

The tests own one database and one login role, recreated for each session; the issuer
configuration is reset for each test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from helpers import APP_ROLE, DB, DOCS, app_connect, connect, fresh_token, mint


@pytest.fixture(scope="session")
def database():
    db, role = sql.Identifier(DB), sql.Identifier(APP_ROLE)
    with connect("postgres") as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(db))
        admin.execute(sql.SQL("drop role if exists {}").format(role))
        admin.execute(sql.SQL("create role {} login").format(role))
        admin.execute(sql.SQL("create database {}").format(db))
    with connect() as su:
        su.execute("create extension pg_oidc_authz")
        su.execute("create table docs (id int primary key, owner text not null)")
        with su.cursor() as cur:
            cur.executemany("insert into docs values (%s, %s)", DOCS)
        su.execute("alter table docs enable row level security")
        su.execute("alter table docs force row level security")
        su.execute("create policy docs_read on docs for select using (owner = oidc.sub())")
        su.execute(sql.SQL("grant select on docs to {}").format(role))
    yield DB
    with connect("postgres") as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(db))
        admin.execute(sql.SQL("drop role if exists {}").format(role))


@pytest.fixture
def superuser(database):
    with connect() as conn:
        yield conn


@dataclass(frozen=True)
class Issuer:
    issuer: str
    audience: str
    leeway: int  # seconds


@pytest.fixture
def issuer(superuser) -> Issuer:
    """The test issuers, fresh for each test: the public keys under mint.ISSUER (default,
    asymmetric algorithms) and the HMAC secrets under mint.HMAC_ISSUER (HS* listed)."""
    superuser.execute("delete from oidc.issuers")
    rows = [
        (mint.ISSUER, Jsonb(mint.jwks(kids=mint.ASYMMETRIC_KIDS)), None),
        (mint.HMAC_ISSUER, Jsonb(mint.jwks(kids=mint.HMAC_KIDS)), mint.HMAC_ALGORITHMS),
    ]
    with superuser.cursor() as cur:
        cur.executemany(
            "insert into oidc.issuers (issuer, audiences, jwks, algorithms, leeway)"
            " values (%s, %s, %s, %s, '30 seconds')",
            [(iss, [mint.AUDIENCE], keys, algs) for iss, keys, algs in rows],
        )
    return Issuer(mint.ISSUER, mint.AUDIENCE, 30)


@pytest.fixture
def app(issuer):
    """A connection as the application role: not the table owner, no BYPASSRLS."""
    with app_connect() as conn:
        yield conn


@pytest.fixture
def permit_docs(superuser):
    """One rule: anyone may read any doc."""
    superuser.execute("delete from oidc.rules")
    superuser.execute("insert into oidc.rules (name, effect, actions, resource_type) values ('e2e-docs', 'permit', '{read}', 'doc')")
    yield
    superuser.execute("delete from oidc.rules")


@pytest.fixture
def rules_not_vacuumed(superuser):
    """For tests that count reloads as reads of oidc.rules: any relcache invalidation of the
    table makes backends reload, and autovacuum's VACUUM or ANALYZE of it sends one (a CI run
    on PostgreSQL 18 counted three extra reloads so). Kept off the table meanwhile."""
    superuser.execute("alter table oidc.rules set (autovacuum_enabled = off)")
    try:
        yield
    finally:
        superuser.execute("alter table oidc.rules reset (autovacuum_enabled)")


@pytest.fixture
def make_token() -> Callable[..., str]:
    """Mints a token at call time: iat = now and exp = now + 300 unless given."""
    return fresh_token
