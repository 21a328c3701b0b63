"""Tokens from a real OpenID Provider (oidc-provider on loopback), its keys loaded by
examples/load_issuer.py: they verify, a key rotation at the provider takes effect without a
Postgres restart, and an ID token is refused where an access token is required."""

from __future__ import annotations

import base64
import json
from typing import Any

import psycopg
import pytest

from helpers import connect, secrets_in
from idp import API_AUDIENCES, IDP_DB, Provider, idp_db, load_issuer, load_provider  # noqa: F401

CLAIMS_QUERY = """
    select oidc.sub() as sub, oidc.issuer() as issuer, oidc.scopes() as scopes,
           oidc.roles() as roles, oidc.has_role('auditor') as auditor,
           oidc.claim_text('tenant') as tenant, oidc.token_status() as status
"""


@pytest.fixture
def provider(idp_db, tmp_path):
    p = Provider(tmp_path)
    p.start(p.genkeys("one"))
    yield p
    p.stop()
    with connect(IDP_DB) as su:
        su.execute("delete from oidc.issuers where issuer = %s", (p.issuer,))


@pytest.fixture
def api_conn(idp_db):
    """A connection as the example API's login role; queries run as api_user (see claims_of)."""
    with connect(IDP_DB, user="api_authenticator") as conn:
        yield conn


def claims_of(conn: psycopg.Connection, token: str, query: str = CLAIMS_QUERY) -> dict[str, Any]:
    """One transaction as api_user with this token, as the API backend runs each request."""
    with conn.transaction():
        conn.execute("select set_config('oidc.token', %s, true)", (token,))
        conn.execute("set local role api_user")
        cur = conn.execute(query)
        return dict(zip([c.name for c in cur.description], cur.fetchone()))


def refused(conn: psycopg.Connection, token: str) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        claims_of(conn, token, "select oidc.sub()")
    err = caught.value
    assert err.sqlstate == "28000", f"expected SQLSTATE 28000, got {err.sqlstate}: {err}"
    assert not secrets_in(str(err), token)
    return err


def header(token: str) -> dict[str, Any]:
    seg = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def test_loader_stores_the_discovered_key_set(provider):
    out = load_provider(provider)
    assert "inserted" in out and "rs256-one" in out and "es256-one" in out
    with connect(IDP_DB) as su:
        row = su.execute("select audiences, roles_claim, required_typ, jwks from oidc.issuers where issuer = %s",
                         (provider.issuer,)).fetchone()
    audiences, roles_claim, required_typ, jwks = row
    assert audiences == API_AUDIENCES and roles_claim == "authz.roles" and required_typ is None
    assert sorted(k["kid"] for k in jwks["keys"]) == ["es256-one", "rs256-one"]
    assert all("d" not in k for k in jwks["keys"]), "private key members in the published JWKS"
    # Loading the same keys again changes nothing.
    assert "unchanged" in load_provider(provider)


def test_loader_refuses_a_discovery_document_for_another_issuer(provider):
    # Same server, but the document names http://127.0.0.1:PORT, not http://localhost:PORT.
    other = provider.issuer.replace("127.0.0.1", "localhost")
    done = load_issuer(other, "--audience=api://documents")
    assert done.returncode == 1 and "names issuer" in done.stderr, done.stderr
    # Plain http only on loopback (0.0.0.0 is not; were the check missing, it would still only
    # reach this host).
    done = load_issuer(provider.issuer.replace("127.0.0.1", "0.0.0.0"), "--audience=api://documents")
    assert done.returncode == 1 and "only https, or http on a loopback address" in done.stderr, done.stderr
    with connect(IDP_DB) as su:
        assert su.execute("select count(*) from oidc.issuers where issuer <> %s", (provider.issuer,)).fetchone()[0] == 0


def test_client_credentials_tokens_verify(provider, api_conn):
    load_provider(provider)
    token = provider.client_credentials("reports", scope="documents:read")
    assert header(token)["typ"] == "at+jwt"
    got = claims_of(api_conn, token)
    assert got["sub"] == "reports" and got["issuer"] == provider.issuer
    assert got["scopes"] == ["documents:read"]
    # The custom claim authz.roles, found through the issuer's roles_claim.
    assert got["roles"] == ["auditor"] and got["auditor"] is True
    assert got["tenant"] == "acme"
    assert got["status"]["valid"] is True
    assert got["status"]["kid"] == "rs256-one" and got["status"]["alg"] == "RS256"

    token = provider.client_credentials("billing", scope="documents:read documents:write",
                                        resource="api://documents-es256")
    got = claims_of(api_conn, token)
    assert got["sub"] == "billing" and got["scopes"] == ["documents:read", "documents:write"]
    assert got["roles"] == ["billing"] and got["auditor"] is False
    assert got["status"]["kid"] == "es256-one" and got["status"]["alg"] == "ES256"


def test_roles_come_from_the_configured_claim_only(provider, api_conn):
    load_provider(provider, "--roles-claim=roles")  # the default path: no such claim here
    got = claims_of(api_conn, provider.client_credentials("reports"))
    assert got["sub"] == "reports" and got["roles"] == [] and got["auditor"] is False


def test_user_access_token_from_a_login(provider, api_conn):
    load_provider(provider)
    answer = provider.login("alice", scope="openid profile documents:read documents:write")
    got = claims_of(api_conn, answer["access_token"])
    assert got["sub"] == "alice"
    assert got["scopes"] == ["documents:read", "documents:write"]
    assert got["roles"] == ["editor"]


def test_key_rotation_without_restarting_postgres(provider, api_conn):
    load_provider(provider)
    pid, started = api_conn.execute("select pg_backend_pid(), pg_postmaster_start_time()").fetchone()
    old_rs = provider.client_credentials("reports")
    old_es = provider.client_credentials("reports", resource="api://documents-es256")
    assert claims_of(api_conn, old_rs)["sub"] == claims_of(api_conn, old_es)["sub"] == "reports"

    # 1. The provider starts signing with new keys and still publishes the old ones.
    two = provider.genkeys("two")
    both = provider.workdir / "keys-two+one.json"
    both.write_text(json.dumps({"keys": json.loads(two.read_text())["keys"]
                                + json.loads(provider.keys.read_text())["keys"]}))
    provider.restart(both)
    new_rs = provider.client_credentials("reports")
    assert header(new_rs)["kid"] == "rs256-two"
    # Not loaded yet: the database never fetches keys by itself.
    err = refused(api_conn, new_rs)
    assert "kid" in str(err), err
    assert "updated" in load_provider(provider)
    # The same connection, its next transaction: old and new tokens verify.
    for token in (old_rs, old_es, new_rs):
        assert claims_of(api_conn, token)["sub"] == "reports"

    # 2. The old keys are withdrawn: tokens they signed are refused from the next reload on.
    provider.restart(two)
    assert claims_of(api_conn, old_rs)["sub"] == "reports"  # still loaded
    load_provider(provider)
    for token in (old_rs, old_es):
        err = refused(api_conn, token)
        assert "unknown kid" in str(err), err
    new_es = provider.client_credentials("reports", resource="api://documents-es256")
    assert claims_of(api_conn, new_rs)["status"]["kid"] == "rs256-two"
    assert claims_of(api_conn, new_es)["status"]["kid"] == "es256-two"

    assert api_conn.execute("select pg_backend_pid(), pg_postmaster_start_time()").fetchone() == (pid, started)


def test_id_token_refused_where_an_access_token_is_required(provider, api_conn):
    answer = provider.login("alice")
    id_token, access_token = answer["id_token"], answer["access_token"]
    assert header(access_token)["typ"] == "at+jwt" and "typ" not in header(id_token)

    # Trusting the web application's client id as an audience too, and any typ: the ID token
    # (aud webapp) verifies, so what refuses it below is its type alone.
    load_provider(provider, "--audience=webapp", "--no-required-typ")
    assert claims_of(api_conn, id_token)["sub"] == "alice"

    load_provider(provider, "--audience=webapp", "--required-typ=at+jwt")
    err = refused(api_conn, id_token)
    assert "typ" in str(err), err
    assert claims_of(api_conn, access_token)["sub"] == "alice"
