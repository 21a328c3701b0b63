"""Trust anchors by identity: the extension refuses to install into a schema it did not
create, and the loader reads the tables that belong to the extension, never whatever a name
resolves to (a schema renamed and replaced keeps nothing of its own trusted)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from helpers import APP_ROLE, connect, mint, sub_with

DB = "oidc_e2e_install"
OWNER = "e2e_db_owner"


@pytest.fixture
def owned_database(database) -> Iterator[str]:
    """A database owned by a plain role (the usual set-up of a hosted database)."""
    db, owner = sql.Identifier(DB), sql.Identifier(OWNER)
    with connect("postgres") as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(db))
        admin.execute(sql.SQL("drop role if exists {}").format(owner))
        admin.execute(sql.SQL("create role {} login").format(owner))
        admin.execute(sql.SQL("create database {} owner {}").format(db, owner))
    yield DB
    with connect("postgres") as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(db))
        admin.execute(sql.SQL("drop role if exists {}").format(owner))


def test_refuses_a_schema_someone_else_created(owned_database):
    with connect(owned_database, user=OWNER) as owner:
        owner.execute("create schema oidc")
    with connect(owned_database) as su:
        with pytest.raises(psycopg.errors.DuplicateSchema) as refused:
            su.execute("create extension pg_oidc_authz")
        assert f"owned by {OWNER}" in str(refused.value)
        assert su.execute("select count(*) from pg_extension where extname = 'pg_oidc_authz'").fetchone()[0] == 0
        assert su.execute("select count(*) from pg_class where relnamespace = 'oidc'::regnamespace").fetchone()[0] == 0
        # Its own empty schema with only USAGE granted (what DROP EXTENSION leaves) is fine.
        su.execute("drop schema oidc")
        su.execute("create extension pg_oidc_authz")
        su.execute("drop extension pg_oidc_authz")
        su.execute("create extension pg_oidc_authz")


def configure(su: psycopg.Connection) -> None:
    su.execute("insert into oidc.issuers (issuer, audiences, jwks) values (%s, %s, %s)",
               (mint.ISSUER, [mint.AUDIENCE], Jsonb(mint.jwks(kids=mint.ASYMMETRIC_KIDS))))
    su.execute("insert into oidc.rules (name, effect, actions, resource_type, condition)"
               " values ('owners', 'permit', '{read}', 'doc', 'resource.owner == claims.sub')")


def test_a_replaced_schema_is_never_trusted(owned_database, make_token):
    with connect(owned_database) as su:
        su.execute("create extension pg_oidc_authz")
        configure(su)
    # The database owner cannot move the extension's schema out of the way …
    with connect(owned_database, user=OWNER) as owner:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            owner.execute("alter schema oidc rename to oidc_old")
    # … and if it is moved (here by a superuser) and replaced by tables of the same names,
    # holding an attacker's key and a permit-all rule, the loader still reads the
    # extension's own tables, wherever they are now.
    attacker = {"keys": [mint.key_to_jwk(mint.attacker_key()) | {"kid": "rs256", "alg": "RS256", "use": "sig"}]}
    with connect(owned_database) as su:
        su.execute("alter schema oidc rename to oidc_moved")
        su.execute(sql.SQL("create schema oidc authorization {}").format(sql.Identifier(OWNER)))
    with connect(owned_database, user=OWNER) as owner:
        owner.execute("create table oidc.issuers (issuer text, audiences text[], jwks jsonb, algorithms text[],"
                      " leeway interval default '30 seconds', required_typ text, roles_claim text default 'roles',"
                      " scopes_claim text default 'scope', enabled boolean default true)")
        owner.execute("create table oidc.rules (name text, effect text, actions text[], resource_type text,"
                      " condition text, enabled boolean default true)")
        owner.execute("insert into oidc.issuers (issuer, audiences, jwks) values (%s, %s, %s)",
                      (mint.ISSUER, [mint.AUDIENCE], Jsonb(attacker)))
        owner.execute("insert into oidc.rules (name, effect, actions, resource_type) values ('all', 'permit', '{*}', '*')")
        owner.execute(sql.SQL("grant usage on schema oidc to {}").format(sql.Identifier(APP_ROLE)))
        owner.execute(sql.SQL("grant select on oidc.issuers, oidc.rules to {}").format(sql.Identifier(APP_ROLE)))
    forged = make_token(sub="bob", key=mint.attacker_key(), kid="rs256")
    genuine = make_token(sub="alice")
    decision = "select oidc_moved.allow('read', 'doc', 'owner', 'bob')"
    with connect(owned_database, user=APP_ROLE) as app:
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            sub_with(app, forged, "select oidc_moved.sub()")
        assert sub_with(app, genuine, "select oidc_moved.sub()") == "alice"
        # The extension's rule decides (bob's document is not alice's), not the permit-all.
        assert sub_with(app, genuine, decision) is False
        assert sub_with(app, make_token(sub="bob"), decision) is True
