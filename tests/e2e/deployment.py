"""A database configured as a user's would be, for the tests that carry one across an upgrade
(test_upgrade.py) or a dump and restore (test_dump_restore.py), and the decisions it must
keep: issuers, rules, and tables protected by three kinds of policies.

`configure` writes only what the first release (0.1.0) already had, so that the upgrade
test can run it before ALTER EXTENSION UPDATE.
"""

from __future__ import annotations

from typing import Callable

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from helpers import APP_ROLE, DOCS, connect, mint, sub_with

# Who sees which of DOCS: owners their own, editors (a role mapped through the issuer's
# roles_claim, realm_access.roles) everything, and nobody carol's (a forbid).
RULES = [
    ("owners", "permit", ["read"], "doc", "resource.owner == claims.sub", None),
    ("editors", "permit", ["read"], "doc", '"editor" in roles', "mapped by the issuer's roles_claim"),
    ("frozen", "forbid", ["*"], "doc", 'resource.owner == "carol"', None),
]
SEES = {"alice": [1, 2], "bob": [3], "carol": []}
EDITOR_SEES = [1, 2, 3]

# Three policies over the same rows: the pair form (translated into SQL by oidc.allow's
# support function), the jsonb form, and claims compared once per statement.
TABLES = {
    "docs_pairs": "oidc.allow('read', 'doc', 'owner', owner)",
    "docs_jsonb": "oidc.allow('read', 'doc', pg_catalog.jsonb_build_object('owner', owner))",
    "docs_claim": "owner = (select oidc.sub()) and owner <> 'carol' or oidc.has_role('editor') and owner <> 'carol'",
}


def configure(su: psycopg.Connection) -> None:
    """Issuers (the first release's columns only), rules and the protected tables."""
    su.execute("insert into oidc.issuers (issuer, audiences, jwks, roles_claim, comment)"
               " values (%s, %s, %s, 'realm_access.roles', 'the test issuer')",
               (mint.ISSUER, [mint.AUDIENCE], Jsonb(mint.jwks(kids=mint.ASYMMETRIC_KIDS))))
    su.execute("insert into oidc.issuers (issuer, audiences, jwks, algorithms, leeway, required_typ)"
               " values (%s, %s, %s, %s, '10 seconds', 'at+jwt')",
               (mint.HMAC_ISSUER, [mint.AUDIENCE], Jsonb(mint.jwks(kids=mint.HMAC_KIDS)), mint.HMAC_ALGORITHMS))
    with su.cursor() as cur:
        cur.executemany("insert into oidc.rules (name, effect, actions, resource_type, condition, description)"
                        " values (%s, %s, %s, %s, %s, %s)", RULES)
    for table, using in TABLES.items():
        t = sql.Identifier(table)
        su.execute(sql.SQL("create table {} (id int primary key, owner text not null)").format(t))
        with su.cursor() as cur:
            cur.executemany(sql.SQL("insert into {} values (%s, %s)").format(t), DOCS)
        su.execute(sql.SQL("alter table {} enable row level security").format(t))
        su.execute(sql.SQL("alter table {} force row level security").format(t))
        su.execute(sql.SQL("create policy readers on {} for select using ({})").format(t, sql.SQL(using)))
        su.execute(sql.SQL("grant select on {} to {}").format(t, sql.Identifier(APP_ROLE)))


def recreate(db: str, **connection) -> None:
    drop(db, **connection)
    with connect("postgres", **connection) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(db)))


def drop(db: str, **connection) -> None:
    with connect("postgres", **connection) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(db)))


def visible(conn: psycopg.Connection, tok: str | None, table: str) -> list[int]:
    with conn.transaction():
        if tok is not None:
            conn.execute("select set_config('oidc.token', %s, true)", (tok,))
        return [r[0] for r in conn.execute(sql.SQL("select id from {} order by id").format(sql.Identifier(table)))]


def assert_decides(db: str, make_token: Callable[..., str], **connection) -> None:
    """The same tokens see the same rows in every table; forged and typ-less tokens fail."""
    with connect(db, user=APP_ROLE, **connection) as app:
        for table in TABLES:
            for sub, ids in SEES.items():
                assert visible(app, make_token(sub=sub), table) == ids, (table, sub)
            editor = make_token(sub="zed", realm_access={"roles": ["editor"]})
            assert visible(app, editor, table) == EDITOR_SEES, table
            assert visible(app, None, table) == [], table  # anonymous
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            visible(app, make_token(sub="alice", key=mint.attacker_key(), kid="rs256"), "docs_pairs")
        # The other issuer, with its HMAC keys, its leeway and required typ.
        assert sub_with(app, make_token("HS256", sub="alice", headers={"typ": "at+jwt"})) == "alice"
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            sub_with(app, make_token("HS256", sub="alice"))  # no typ
