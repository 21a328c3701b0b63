"""OIDC Back-Channel Logout end to end: alice logs out at the real provider, which posts a
logout token to the example API backend's endpoint; the backend hands it to the database
(`oidc.logout`), and alice's still-unexpired access token is refused at her next request
while bob's keeps working."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.request

import pytest

from helpers import connect
from idp import IDP_DB, Provider, free_port, idp_db, load_provider, start_api  # noqa: F401


@pytest.fixture
def stack(idp_db, tmp_path):
    """The provider, whose web application logs out to the API backend's endpoint."""
    api_port = free_port()
    p = Provider(tmp_path)
    p.start(p.genkeys("logout"), backchannel_logout_uri=f"http://127.0.0.1:{api_port}/backchannel-logout")
    api = None
    try:
        load_provider(p, "--logout-audience=webapp")
        api, base = start_api(tmp_path, port=api_port)
        yield p, base
    finally:
        if api is not None:
            api.stop()
        p.stop()
        with connect(IDP_DB) as su:
            su.execute("delete from oidc.issuers where issuer = %s", (p.issuer,))
            su.execute("delete from oidc.revocations")


def me(base: str, token: str) -> tuple[int, dict]:
    req = urllib.request.Request(f"{base}/me", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def post_form(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        with err:
            return err.code


def test_logging_out_at_the_provider_revokes_the_session_in_the_database(stack):
    provider, base = stack
    jar = http.cookiejar.CookieJar()
    alice = provider.login("alice", jar=jar)
    bob = provider.login("bob")
    assert me(base, alice["access_token"])[0] == 200
    assert me(base, bob["access_token"])[0] == 200

    provider.logout(jar, alice["id_token"])

    status, answer = me(base, alice["access_token"])
    assert status == 401 and "revoked" in answer["message"], answer
    assert me(base, bob["access_token"])[1]["sub"] == "bob"
    with connect(IDP_DB) as su:
        rows = su.execute("select kind, issuer from oidc.revocations").fetchall()
    assert rows == [("session", provider.issuer)], rows
    # A new login of alice is another session: accepted.
    again = provider.login("alice")
    assert me(base, again["access_token"])[1]["sub"] == "alice"


def test_the_endpoint_refuses_what_is_no_logout_token(stack):
    provider, base = stack
    alice = provider.login("alice")
    url = f"{base}/backchannel-logout"
    # An ID token and an access token of the same provider are no logout tokens.
    for token in (alice["id_token"], alice["access_token"]):
        assert post_form(url, f"logout_token={token}".encode()) == 400
    assert post_form(url, b"") == 400
    assert post_form(url, b"logout_token=a&logout_token=b") == 400
    assert me(base, alice["access_token"])[0] == 200
    with connect(IDP_DB) as su:
        assert su.execute("select count(*) from oidc.revocations").fetchone()[0] == 0
