"""The example API backend (examples/api/server.py) driven over HTTP with tokens from the real
provider: each caller gets exactly their rows, writes pass the policy's WITH CHECK or are
refused, and invalid tokens are answered 401 with the database's reason."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from helpers import connect, mint, secrets_in
from idp import IDP_DB, Provider, idp_db, load_provider, start_api  # noqa: F401

# (owner, title) seeded for each module run; ids follow this order.
SEED = [("alice", "Alice's roadmap"), ("alice", "Alice's notes"), ("bob", "Bob's budget"),
        ("carol", "Carol's draft")]
WRITE = "openid documents:read documents:write"


@pytest.fixture(scope="module")
def provider(idp_db, tmp_path_factory):
    p = Provider(tmp_path_factory.mktemp("provider"))
    p.start(p.genkeys("api"))
    try:
        load_provider(p)
        yield p
    finally:
        p.stop()
        with connect(IDP_DB) as su:
            su.execute("delete from oidc.issuers where issuer = %s", (p.issuer,))


def seed(rows: list[tuple[str, str]] = SEED) -> None:
    with connect(IDP_DB) as su:
        su.execute("truncate documents restart identity")
        with su.cursor() as cur:
            cur.executemany("insert into documents (owner, title) values (%s, %s)", rows)


@pytest.fixture(scope="module")
def api(provider, tmp_path_factory) -> str:
    """The backend's base URL; documents reseeded."""
    seed()
    service, base = start_api(tmp_path_factory.mktemp("api"), pool_size=2)
    try:
        yield base
    finally:
        service.stop()


@pytest.fixture(scope="module")
def tokens(provider) -> dict[str, str]:
    """Access tokens of two users (authorization code flow) and two clients (client credentials)."""
    return {
        "alice": provider.login("alice")["access_token"],
        "bob": provider.login("bob")["access_token"],
        "bob_writer": provider.login("bob", scope=WRITE)["access_token"],
        "reports": provider.client_credentials("reports"),  # role auditor, read only
        "billing": provider.client_credentials("billing", scope="documents:read documents:write"),
    }


def call(base: str, method: str, path: str, token: str | None = None, body: Any = None,
         authorization: str | None = None) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(base + path, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if authorization is not None:
        req.add_header("Authorization", authorization)
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), json.loads(err.read())


def titles(base: str, token: str | None) -> list[str]:
    status, _, rows = call(base, "GET", "/documents", token)
    assert status == 200, rows
    return [row["title"] for row in rows]


def all_titles() -> list[str]:
    with connect(IDP_DB) as su:
        return [r[0] for r in su.execute("select title from documents order by id")]


def test_each_user_sees_their_own_rows(api, tokens):
    assert titles(api, tokens["alice"]) == ["Alice's roadmap", "Alice's notes"]
    assert titles(api, tokens["bob"]) == ["Bob's budget"]
    status, _, me = call(api, "GET", "/me", tokens["alice"])
    assert status == 200
    assert me["sub"] == "alice" and me["roles"] == ["editor"] and me["db_role"] == "api_user"


def test_a_client_with_the_auditor_role_sees_every_row(api, tokens):
    assert titles(api, tokens["reports"]) == all_titles()
    status, _, me = call(api, "GET", "/me", tokens["reports"])
    assert me["sub"] == "reports" and me["roles"] == ["auditor"] and me["scopes"] == ["documents:read"]


def test_no_token_is_anonymous(api):
    assert titles(api, None) == []
    status, _, me = call(api, "GET", "/me")
    assert status == 200 and me["sub"] is None and me["db_role"] == "api_user"


def test_writes_pass_the_policy_or_are_refused(api, tokens):
    status, _, row = call(api, "POST", "/documents", tokens["billing"], {"title": "Invoice 7"})
    assert status == 201 and row["owner"] == "billing", row
    assert "Invoice 7" in titles(api, tokens["billing"])
    assert "Invoice 7" not in titles(api, tokens["alice"])

    # Without the documents:write scope, in someone else's name, or anonymously: 403.
    for token, body in [(tokens["reports"], {"title": "x"}), (tokens["bob"], {"title": "x"}),
                        (tokens["bob_writer"], {"title": "x", "owner": "alice"}), (None, {"title": "x"})]:
        status, _, answer = call(api, "POST", "/documents", token, body)
        assert status == 403 and "row-level security" in answer["message"], answer
    status, _, row = call(api, "POST", "/documents", tokens["bob_writer"], {"title": "Bob's plan"})
    assert status == 201 and row["owner"] == "bob"
    assert titles(api, tokens["bob"]) == ["Bob's budget", "Bob's plan"]


def test_invalid_tokens_get_401_with_the_reason(api, provider):
    now = int(time.time())
    claims = {"iss": provider.issuer, "sub": "alice", "aud": "api://documents", "scope": "documents:read"}
    cases = {
        # the provider's kid, an attacker's key
        "bad signature": provider.sign({**claims, "iat": now, "exp": now + 300}, key=mint.attacker_key()),
        # the provider's own key, but expired beyond the leeway
        "expired": provider.sign({**claims, "iat": now - 900, "exp": now - 600}),
        "malformed": "not-a-jwt",
    }
    for reason, token in cases.items():
        status, headers, answer = call(api, "GET", "/documents", token)
        assert status == 401, answer
        assert headers.get("WWW-Authenticate") == 'Bearer error="invalid_token"'
        assert answer["error"] == "invalid_token" and reason in answer["message"], answer
        assert not secrets_in(json.dumps(answer), token)
    # The same key's unexpired token is fine: the failures above were the claims.
    assert titles(api, provider.sign({**claims, "iat": now, "exp": now + 300})) == ["Alice's roadmap", "Alice's notes"]


def test_a_bad_token_is_401_even_without_rows(api, provider, tokens):
    # The backend checks the token before its query: the answer must not depend on whether
    # the query's plan happens to evaluate a claim function (on an empty table, say).
    forged = provider.sign({"iss": provider.issuer, "sub": "alice", "aud": "api://documents",
                            "iat": int(time.time()), "exp": int(time.time()) + 300}, key=mint.attacker_key())
    seed([])
    try:
        assert titles(api, tokens["alice"]) == []
        status, _, answer = call(api, "GET", "/documents", forged)
        assert status == 401 and "bad signature" in answer["message"], answer
    finally:
        seed()  # the rows the other tests expect


def test_a_malformed_authorization_header_is_401(api, tokens):
    for header in ["Basic dXNlcjpwYXNz", "Bearer", f"Bearer {tokens['alice']} extra"]:
        status, _, answer = call(api, "GET", "/documents", authorization=header)
        assert status == 401 and answer["error"] == "invalid_request", answer


def test_concurrent_requests_on_pooled_connections_never_mix_callers(api, tokens):
    # Two pooled connections, four threads, callers interleaved: every answer is the caller's.
    expected = {name: titles(api, tokens[name]) for name in ("alice", "bob", "billing")}
    expected["anonymous"] = []
    callers = list(expected) * 15

    def one(name: str) -> tuple[str, list[str]]:
        return name, titles(api, tokens.get(name))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, callers))
    assert len(results) == len(callers)
    for name, got in results:
        assert got == expected[name], name
