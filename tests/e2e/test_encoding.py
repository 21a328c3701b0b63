"""Encodings. Claims are UTF-8: the extension refuses a database of another encoding
(LATIN1, EUC_JP, …), where their bytes would read as other characters. A SQL_ASCII database
lets a setting hold bytes that are not UTF-8: a token (or request.headers value) like that
is present but undecodable, refused with 28000, never taken for "no token"."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from helpers import APP_ROLE, connect, mint


@pytest.fixture(params=["SQL_ASCII"])
def legacy_database(request, database) -> Iterator[str]:
    name = f"oidc_e2e_{request.param.lower()}"
    db = sql.Identifier(name)
    with connect("postgres") as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(db))
        admin.execute(sql.SQL("create database {} encoding {} locale 'C' template template0").format(
            db, sql.Literal(request.param)))
    with connect(name) as su:
        su.execute("create extension pg_oidc_authz")
        su.execute("insert into oidc.issuers (issuer, audiences, jwks) values (%s, %s, %s)",
                   (mint.ISSUER, [mint.AUDIENCE], Jsonb(mint.jwks(kids=mint.ASYMMETRIC_KIDS))))
    yield name
    with connect("postgres") as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(db))


def status_and_sub(conn: psycopg.Connection, setting: str, value: bytes):
    with conn.cursor() as cur:
        # The value's bytes as they are, in the database's encoding.
        cur.execute("select set_config(%s, convert_from(%s::bytea, getdatabaseencoding()), true)",
                    (setting, value))
        status = cur.execute("select oidc.token_status()").fetchone()[0]
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification) as refused:
            cur.execute("select oidc.sub()")
    return status, refused.value


@pytest.mark.parametrize("setting, value", [
    ("oidc.token", b"eyJhbGciOiJSUzI1NiJ9.\xff\xfe.c2ln"),
    ("request.headers", b'{"authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.\xff.c2ln"}'),
])
def test_an_undecodable_token_is_refused(legacy_database, make_token, setting, value):
    with connect(legacy_database, user=APP_ROLE) as conn:
        # (text comes back as bytes under SQL_ASCII: compare on the server)
        assert conn.execute("select getdatabaseencoding() = 'SQL_ASCII'").fetchone()[0]
        conn.autocommit = False
        status, err = status_and_sub(conn, setting, value)
        conn.rollback()
        assert status["present"] is True and status["valid"] is False, status
        assert status["check"] == "encoding", status
        assert status["source"] == setting, status
        assert "failed check: encoding" in (err.diag.message_detail or "")
        # A UTF-8 token still works there, and no token is still anonymous.
        conn.autocommit = True
        with conn.transaction():
            conn.execute("select set_config('oidc.token', %s, true)", (make_token(),))
            assert conn.execute("select oidc.sub() = 'alice'").fetchone()[0] is True
        assert conn.execute("select oidc.sub() is null, oidc.token_status() -> 'present'").fetchone() == (True, False)


@pytest.mark.parametrize("encoding", ["LATIN1", "EUC_JP"])
def test_a_database_of_another_encoding_is_refused(database, encoding):
    name = f"oidc_e2e_{encoding.lower()}"
    db = sql.Identifier(name)
    with connect("postgres") as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(db))
        admin.execute(sql.SQL("create database {} encoding {} locale 'C' template template0").format(
            db, sql.Literal(encoding)))
    try:
        with connect(name) as su:
            with pytest.raises(psycopg.errors.FeatureNotSupported) as refused:
                su.execute("create extension pg_oidc_authz")
            assert encoding in str(refused.value)
            assert su.execute("select count(*) from pg_extension where extname = 'pg_oidc_authz'").fetchone()[0] == 0
    finally:
        with connect("postgres") as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(db))
