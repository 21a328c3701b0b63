"""On a hot standby: tokens verify and claims answer on the read-only replica, and changes to
oidc.issuers committed on the primary reach an already-open replica connection once replayed
(the relcache invalidation travels in the commit record's WAL)."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from helpers import APP_ROLE, DOCS, app_connect, assert_rejected, error_text, mint, sub_with
from replica import replica  # noqa: F401 - fixture


def claims_of(conn: psycopg.Connection, tok: str):
    with conn.transaction():
        conn.execute("select set_config('oidc.token', %s, true)", (tok,))
        return conn.execute(
            "select oidc.sub(), oidc.issuer(), oidc.claims() ->> 'email', oidc.claim_text('tenant'),"
            " oidc.has_scope('read'), oidc.has_scope('admin'), oidc.roles(), oidc.token_status(),"
            " array(select id from docs order by id)"
        ).fetchone()


def test_tokens_verify_and_claims_answer_on_the_standby(issuer, replica, superuser, make_token):  # noqa: F811
    replica.wait_for_replay()
    tok = make_token("ES256", sub="bob", email="bob@example.test", tenant="acme", scope="read write",
                     roles=["auditor"])
    with replica.connect(APP_ROLE) as standby:
        assert standby.execute("select pg_is_in_recovery(), current_setting('transaction_read_only')"
                               ).fetchone() == (True, "on")
        sub, iss, email, tenant, read, admin, roles, status, ids = claims_of(standby, tok)
        assert (sub, iss, email, tenant, read, admin, roles) == (
            "bob", mint.ISSUER, "bob@example.test", "acme", True, False, ["auditor"])
        assert ids == [i for i, owner in DOCS if owner == "bob"]
        assert status["valid"] is True and status["sub"] == "bob" and status["kid"] == "es256", status
        # The next transaction on the same connection is anonymous again.
        assert standby.execute("select oidc.sub(), oidc.token_status() ->> 'present',"
                               " (select count(*) from docs)").fetchone() == (None, "false", 0)

        forged = make_token(key=mint.attacker_key(), kid="rs256")
        assert "signature" in error_text(assert_rejected(standby, forged))
        with standby.transaction():
            standby.execute("select set_config('oidc.token', %s, true)", (forged,))
            status = standby.execute("select oidc.token_status()").fetchone()[0]
        assert status["present"] is True and status["valid"] is False, status


def test_loading_the_configuration_writes_nothing(issuer, make_token):
    # A standby would refuse any write (the test above passes there); on the primary, a fresh
    # backend loads the configuration and verifies without even taking a transaction id.
    with app_connect() as conn, conn.transaction():
        conn.execute("select set_config('oidc.token', %s, true)", (make_token(),))
        assert conn.execute("select oidc.sub(), oidc.claims() ->> 'sub', count(*) from docs"
                            ).fetchone() == ("alice", "alice", 2)
        assert conn.execute("select pg_current_xact_id_if_assigned()").fetchone()[0] is None


def test_key_removal_on_the_primary_reaches_an_open_standby_connection(issuer, replica, superuser,  # noqa: F811
                                                                       make_token):
    replica.wait_for_replay()
    tok = make_token("RS384")
    with replica.connect(APP_ROLE) as standby:
        assert sub_with(standby, tok) == "alice"
        with superuser.transaction():
            superuser.execute(
                "update oidc.issuers set jwks = jsonb_build_object('keys', (select jsonb_agg(k)"
                " from jsonb_array_elements(jwks -> 'keys') k where k ->> 'kid' <> 'rs384'))"
                " where issuer = %s", (mint.ISSUER,))
            replica.wait_for_replay()
            assert sub_with(standby, tok) == "alice", "an uncommitted change must not be visible"
        replica.wait_for_replay()
        assert "kid" in error_text(assert_rejected(standby, tok))
        assert sub_with(standby, make_token("RS256")) == "alice"


def test_issuer_changes_on_the_primary_follow_replay(issuer, replica, superuser, make_token):  # noqa: F811
    replica.wait_for_replay()
    tok = make_token("EdDSA")
    rotated = make_token("RS256", kid="rs256-rotated")

    def on_primary(statement: str, *args) -> None:
        superuser.execute(statement, (*args, mint.ISSUER))
        replica.wait_for_replay()

    with replica.connect(APP_ROLE) as standby:
        assert sub_with(standby, tok) == "alice"
        assert_rejected(standby, rotated)

        on_primary("update oidc.issuers set audiences = '{api://elsewhere}' where issuer = %s")
        assert "audience" in error_text(assert_rejected(standby, tok))
        on_primary("update oidc.issuers set audiences = %s where issuer = %s", [mint.AUDIENCE])
        assert sub_with(standby, tok) == "alice"

        on_primary("update oidc.issuers set enabled = false where issuer = %s")
        assert_rejected(standby, tok)
        on_primary("update oidc.issuers set enabled = true where issuer = %s")
        assert sub_with(standby, tok) == "alice"

        on_primary("update oidc.issuers set jwks = jsonb_set(jwks, '{keys}', (jwks -> 'keys') || %s)"
                   " where issuer = %s", Jsonb([mint.jwk("rs256-rotated")]))
        assert sub_with(standby, rotated) == "alice"


def test_rules_decide_and_explain_on_the_standby_and_follow_replay(issuer, replica, superuser,  # noqa: F811
                                                                   make_token):
    superuser.execute("delete from oidc.rules")
    superuser.execute(
        "insert into oidc.rules (name, effect, actions, resource_type, condition) values "
        "('replica-owner', 'permit', '{read}', 'doc', 'resource.owner == claims.sub')"
    )
    replica.wait_for_replay()
    alice = make_token(sub="alice")
    query = ("select array(select id from docs d where oidc.allow('read', 'doc', 'owner', d.owner)"
             " order by id), oidc.explain('read', 'doc', '{\"owner\": \"carol\"}')")
    try:
        with replica.connect() as standby:  # as superuser: RLS aside, the rules decide alone
            with standby.transaction():
                standby.execute("select set_config('oidc.token', %s, true)", (alice,))
                ids, explained = standby.execute(query).fetchone()
            assert ids == [i for i, owner in DOCS if owner == "alice"]
            assert explained["decision"] == "deny" and explained["not_held"] == ["replica-owner"]

            # A rule change committed on the primary reaches the open standby connection.
            superuser.execute(
                "insert into oidc.rules (name, effect, actions, resource_type) "
                "values ('replica-all', 'permit', '{read}', 'doc')"
            )
            replica.wait_for_replay()
            with standby.transaction():
                standby.execute("select set_config('oidc.token', %s, true)", (alice,))
                ids, explained = standby.execute(query).fetchone()
            assert ids == [i for i, _ in DOCS]
            assert explained["permits"] == ["replica-all"], explained
    finally:
        superuser.execute("delete from oidc.rules")


def test_the_decision_audit_works_on_the_standby(issuer, replica, superuser, make_token):  # noqa: F811
    import json
    import time
    import uuid

    marker = f"audit-{uuid.uuid4().hex[:8]}"
    superuser.execute("delete from oidc.rules")
    superuser.execute(
        "insert into oidc.rules (name, effect, actions, resource_type, condition) "
        "values ('standby-owner', 'permit', %s, 'doc', 'resource.owner == claims.sub')",
        ([marker],),
    )
    replica.wait_for_replay()
    try:
        with replica.connect() as standby, standby.transaction():
            standby.execute("set local oidc.audit = on")
            standby.execute("set local log_min_messages = log")
            standby.execute("select set_config('oidc.token', %s, true)", (make_token(sub="alice"),))
            allowed = standby.execute(
                "select count(*) from docs d where oidc.allow(%s, 'doc', 'owner', d.owner)", (marker,)
            ).fetchone()[0]
        assert allowed == 2
        deadline = time.monotonic() + 5
        lines: list[dict] = []
        while not lines and time.monotonic() < deadline:
            lines = [json.loads(l.split("pg_oidc_authz audit: ", 1)[1])
                     for l in replica.log.read_text(errors="replace").splitlines()
                     if "pg_oidc_authz audit: " in l and marker in l]
            time.sleep(0.05)
        assert sorted((l["decision"], l["rows"]) for l in lines) == [("allow", 2), ("deny", 2)], lines
    finally:
        superuser.execute("delete from oidc.rules")


def test_a_prepared_change_reaches_the_standby_when_committed(issuer, replica, superuser, make_token):  # noqa: F811
    """A change held by PREPARE TRANSACTION is not seen on the standby; COMMIT PREPARED,
    once replayed, is (its invalidations are in its WAL record)."""
    replica.wait_for_replay()
    tok = make_token()
    with replica.connect(APP_ROLE) as standby:
        assert sub_with(standby, tok) == "alice"
        superuser.execute("begin")
        superuser.execute("update oidc.issuers set enabled = false where issuer = %s", (mint.ISSUER,))
        superuser.execute("prepare transaction 'e2e_standby_change'")
        try:
            replica.wait_for_replay()
            assert sub_with(standby, tok) == "alice", "a prepared change is not committed"
            superuser.execute("commit prepared 'e2e_standby_change'")
        finally:
            if superuser.execute("select count(*) from pg_prepared_xacts where gid = 'e2e_standby_change'"
                                 ).fetchone()[0]:
                superuser.execute("rollback prepared 'e2e_standby_change'")
        replica.wait_for_replay()
        assert_rejected(standby, tok)
