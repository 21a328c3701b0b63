"""Revocation: `oidc.revoke_token/_subject/_session` make a still-unexpired token fail like an
invalid one (28000, check `revoked`) in every session from its next transaction — an open
connection, a hot standby after replay — while other tokens keep working; rows that can no
longer match are purged, and only oidc_admin may revoke."""

from __future__ import annotations

import time

import psycopg
import pytest

from helpers import APP_ROLE, app_connect, assert_rejected, error_text, mint, sub_with
from replica import replica  # noqa: F401 - fixture


@pytest.fixture
def revocations(superuser):
    superuser.execute("delete from oidc.revocations")
    yield superuser
    superuser.execute("delete from oidc.revocations")


def status(conn: psycopg.Connection, tok: str) -> dict:
    return sub_with(conn, tok, "select oidc.token_status()")


def test_a_revoked_token_is_refused_at_its_next_transaction(issuer, revocations, make_token):
    tok = make_token(sub="alice", jti="j-1")
    other = make_token(sub="alice", jti="j-2")
    with app_connect() as app:
        assert sub_with(app, tok) == "alice"
        row = revocations.execute(
            "select kind, issuer, value, expires_at > now() from oidc.revoke_token(%s, 'j-1', now() + interval '5 min')",
            (mint.ISSUER,)).fetchone()
        assert row == ("token", mint.ISSUER, "j-1", True)
        err = assert_rejected(app, tok)
        assert "revoked" in error_text(err)
        assert status(app, tok)["check"] == "revoked"
        assert sub_with(app, other) == "alice"
        # Policies see nothing of it: the row check raises, no row is returned.
        with pytest.raises(psycopg.Error) as caught:
            sub_with(app, tok, "select count(*) from docs")
        assert caught.value.sqlstate == "28000"
        # The same jti from another issuer is another token.
        hmac = make_token("HS256", sub="alice", jti="j-1")
        assert sub_with(app, hmac) == "alice"
        revocations.execute("delete from oidc.revocations")
        assert sub_with(app, tok) == "alice"


def test_a_subject_is_revoked_for_tokens_issued_before(issuer, revocations, make_token):
    now = int(time.time())
    old = make_token(sub="alice", iat=now - 60)
    bob = make_token(sub="bob", iat=now - 60)
    with app_connect() as app:
        assert sub_with(app, old) == "alice"
        row = revocations.execute("select kind, value, issued_before <= now(), expires_at - issued_before"
                                  " from oidc.revoke_subject(%s, 'alice')", (mint.ISSUER,)).fetchone()
        assert row[:3] == ("subject", "alice", True) and row[3].total_seconds() == 86400
        assert_rejected(app, old)
        assert sub_with(app, bob) == "bob"
        # Issued after the instant (logged in again): accepted.
        fresh = make_token(sub="alice", iat=now + 2)
        assert sub_with(app, fresh) == "alice"
        # A later instant widens it; an earlier one does not narrow it.
        revocations.execute("select oidc.revoke_subject(%s, 'alice', now() + interval '10 s')", (mint.ISSUER,))
        assert_rejected(app, fresh)
        revocations.execute("select oidc.revoke_subject(%s, 'alice', now() - interval '1 day')", (mint.ISSUER,))
        assert_rejected(app, fresh)


def test_a_session_is_revoked_by_sid(issuer, revocations, make_token):
    s1 = make_token(sub="alice", sid="sess-1")
    s2 = make_token(sub="alice", sid="sess-2")
    with app_connect() as app:
        assert sub_with(app, s1) == "alice"
        revocations.execute("select oidc.revoke_session(%s, 'sess-1')", (mint.ISSUER,))
        assert status(app, s1)["check"] == "revoked"
        assert sub_with(app, s2) == "alice"
        assert sub_with(app, make_token(sub="alice")) == "alice"


def test_revoking_is_for_oidc_admin_and_refuses_bad_input(issuer, revocations):
    with app_connect() as app:
        for call in ("select oidc.revoke_token('i', 'j', now())", "select oidc.revoke_subject('i', 's')",
                     "select oidc.revoke_session('i', 's')", "select oidc.purge_revocations()",
                     "select * from oidc.revocations"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), app.transaction():
                app.execute(call)
    for call, sqlstate in (("select oidc.revoke_token('i', '', now())", "23514"),
                           ("select oidc.revoke_token(null, 'j', now())", "23502"),
                           ("select oidc.revoke_token('i', 'j', 'infinity')", "23514"),
                           ("select oidc.revoke_subject('i', 's', null)", "23502"),
                           ("insert into oidc.revocations (kind, issuer, value, expires_at)"
                            " values ('all', 'i', 'v', now())", "23514")):
        with pytest.raises(psycopg.Error) as caught, revocations.transaction():
            revocations.execute(call)
        assert caught.value.sqlstate == sqlstate, (call, caught.value)
    assert revocations.execute("select count(*) from oidc.revocations").fetchone()[0] == 0


def test_rows_that_can_no_longer_match_are_purged(issuer, revocations):
    revocations.execute("insert into oidc.revocations (kind, issuer, value, expires_at) values"
                        " ('token', 'i', 'gone', now() - interval '6 min'),"
                        " ('session', 'i', 'gone', now() - interval '6 min')")
    revocations.execute("select oidc.revoke_token('i', 'kept', now() + interval '1 hour')")
    assert revocations.execute("select array_agg(value order by value) from oidc.revocations").fetchone()[0] == ["kept"]


def test_revocations_on_the_primary_reach_an_open_standby_connection(issuer, revocations, replica,  # noqa: F811
                                                                    make_token):
    tok = make_token(sub="alice", jti="standby-1", sid="sess-s")
    bob = make_token(sub="bob")
    replica.wait_for_replay()
    with replica.connect(APP_ROLE) as standby:
        assert sub_with(standby, tok) == "alice"
        for call in ("select oidc.revoke_token(%s, 'standby-1', now() + interval '5 min')",
                     "select oidc.revoke_session(%s, 'sess-s')",
                     "select oidc.revoke_subject(%s, 'alice')"):
            revocations.execute("delete from oidc.revocations")
            replica.wait_for_replay()
            assert sub_with(standby, tok) == "alice", call
            revocations.execute(call, (mint.ISSUER,))
            replica.wait_for_replay()
            assert status(standby, tok)["check"] == "revoked", call
            assert sub_with(standby, bob) == "bob"
    # Revoking needs the primary.
    with replica.connect() as su, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        su.execute("select oidc.revoke_session('i', 'x')")


EVENT = "http://schemas.openid.net/event/backchannel-logout"


def logout_token(sub: str | None = "alice", sid: str | None = "sess-1", typ: str | None = "logout+jwt",
                 **extra) -> str:
    now = int(time.time())
    claims = {"iss": mint.ISSUER, "aud": "backend", "iat": now, "exp": now + 120, "jti": f"lt-{time.monotonic_ns()}",
              "events": {EVENT: {}}, "sub": sub, "sid": sid, **extra}
    claims = {k: v for k, v in claims.items() if v is not None}
    return mint.token("RS256", claims=claims, headers={"typ": typ} if typ else None)


@pytest.fixture
def logout_role(issuer, revocations):
    from psycopg import sql

    revocations.execute("update oidc.issuers set logout_audiences = '{backend}' where issuer = %s", (mint.ISSUER,))
    revocations.execute(sql.SQL("grant execute on function oidc.logout(text) to {}").format(sql.Identifier(APP_ROLE)))
    yield
    revocations.execute(sql.SQL("revoke execute on function oidc.logout(text) from {}").format(sql.Identifier(APP_ROLE)))


def test_a_logout_token_revokes_its_session_or_its_subject(logout_role, revocations, make_token):
    alice = make_token(sub="alice", sid="sess-1")
    alice_other = make_token(sub="alice", sid="sess-2")
    bob = make_token(sub="bob", sid="sess-b")
    with app_connect() as backend, app_connect() as app:
        assert sub_with(app, alice) == "alice"
        out = backend.execute("select oidc.logout(%s)", (logout_token(),)).fetchone()[0]
        assert (out["revoked"], out["value"], out["issuer"], out["sub"]) == ("session", "sess-1", mint.ISSUER, "alice")
        assert status(app, alice)["check"] == "revoked"
        assert sub_with(app, alice_other) == "alice"
        assert sub_with(app, bob) == "bob"
        # Only a subject: every token of it issued before now.
        out = backend.execute("select oidc.logout(%s)", (logout_token(sid=None),)).fetchone()[0]
        assert (out["revoked"], out["value"]) == ("subject", "alice")
        assert status(app, alice_other)["check"] == "revoked"
        assert sub_with(app, bob) == "bob"


def test_an_invalid_logout_token_is_refused_and_stores_nothing(logout_role, revocations, make_token):
    forged = mint.token("RS256", key=mint.attacker_key(), claims={
        "iss": mint.ISSUER, "aud": "backend", "iat": int(time.time()), "jti": "x", "events": {EVENT: {}},
        "sid": "sess-1"})
    bad = {
        "signature": forged,
        "typ": logout_token(typ="at+jwt"),
        "aud": logout_token(aud="api://documents"),
        "events": logout_token(events={"other": {}}),
        "nonce": logout_token(nonce="n"),
        "neither": logout_token(sub=None, sid=None),
        "iat": logout_token(iat=int(time.time()) + 3600),
        "access token": make_token(sub="alice", sid="sess-1"),
    }
    with app_connect() as backend:
        for name, tok in bad.items():
            with pytest.raises(psycopg.Error) as caught, backend.transaction():
                backend.execute("select oidc.logout(%s)", (tok,))
            assert caught.value.sqlstate == "28000", (name, caught.value)
            assert tok not in error_text(caught.value)
        for empty in (None, ""):
            with pytest.raises(psycopg.Error) as caught, backend.transaction():
                backend.execute("select oidc.logout(%s)", (empty,))
            assert caught.value.sqlstate == "28000"
    assert revocations.execute("select count(*) from oidc.revocations").fetchone()[0] == 0
    # Without logout_audiences the issuer's logout tokens are refused.
    revocations.execute("update oidc.issuers set logout_audiences = null where issuer = %s", (mint.ISSUER,))
    with app_connect() as backend, pytest.raises(psycopg.Error) as caught:
        backend.execute("select oidc.logout(%s)", (logout_token(),))
    assert caught.value.sqlstate == "28000" and "logout_audiences" in str(caught.value)


def test_logout_is_granted_not_public(issuer, revocations):
    with app_connect() as app, pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("select oidc.logout(%s)", (logout_token(),))


def test_logout_ignores_the_callers_temporary_objects_and_a_replay_changes_nothing(logout_role, revocations):
    """oidc.logout runs as the extension's owner: a caller's pg_temp type named like one it
    uses is never picked up (search_path ends with pg_temp), and replaying the same logout
    token writes nothing (no reload anywhere)."""
    token = logout_token()
    with app_connect() as backend:
        backend.execute("create function pg_temp.boom(pg_catalog.jsonb) returns boolean"
                        " language plpgsql as $$ begin raise exception 'pwned'; end $$")
        backend.execute("create domain pg_temp.jsonb as pg_catalog.jsonb check (pg_temp.boom(value))")
        backend.execute("create domain pg_temp.interval as pg_catalog.interval check (pg_temp.boom(null))")
        assert backend.execute("select oidc.logout(%s)", (token,)).fetchone()[0]["revoked"] == "session"
        before = revocations.execute("select xmin::text, revoked_at from oidc.revocations").fetchall()
        assert backend.execute("select oidc.logout(%s)", (token,)).fetchone()[0]["revoked"] == "session"
        assert revocations.execute("select xmin::text, revoked_at from oidc.revocations").fetchall() == before


def test_a_session_logout_also_revokes_its_subjects_tokens_without_a_sid(logout_role, revocations, make_token):
    now = int(time.time())
    no_sid = make_token(sub="alice", iat=now - 30)
    other_session = make_token(sub="alice", sid="sess-other", iat=now - 30)
    with app_connect() as backend, app_connect() as app:
        backend.execute("select oidc.logout(%s)", (logout_token(sub="alice", sid="sess-1"),))
        assert status(app, no_sid)["check"] == "revoked"
        assert sub_with(app, other_session) == "alice"
        assert sub_with(app, make_token(sub="bob", iat=now - 30)) == "bob"


def test_an_oidc_admin_member_administers_issuers_and_revocations(issuer, revocations):
    from psycopg import sql

    from helpers import connect

    revocations.execute("drop role if exists e2e_admin")
    revocations.execute("create role e2e_admin login in role oidc_admin")
    try:
        with connect(user="e2e_admin") as admin:
            admin.execute("update oidc.issuers set enabled = false where issuer = %s", (mint.ISSUER,))
            admin.execute("update oidc.issuers set enabled = true where issuer = %s", (mint.ISSUER,))
            admin.execute("insert into oidc.issuers (issuer, audiences, discovery) values ('https://x.test', '{a}', true)")
            admin.execute("delete from oidc.issuers where issuer = 'https://x.test'")
            admin.execute("select oidc.revoke_subject(%s, 'alice')", (mint.ISSUER,))
            admin.execute("select oidc.revoke_session(%s, 's', 'alice')", (mint.ISSUER,))
            assert admin.execute("select count(*) from oidc.revocations").fetchone()[0] == 2
            assert admin.execute("select count(*) from oidc.issuer_status").fetchone()[0] >= 1
    finally:
        revocations.execute(sql.SQL("drop owned by e2e_admin"))
        revocations.execute("drop role e2e_admin")
