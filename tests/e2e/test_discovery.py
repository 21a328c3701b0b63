"""Keys from discovery: an issuer row with `discovery = true` and no keys gets its key set from
the background worker, over HTTPS (a CA made here, trusted through `oidc.fetch_ca_file`);
a token with a new `kid` verifies on an already-open connection (the worker refreshes
early), removed keys are gone after the next fetch, and every bad answer of the failure
policy changes nothing and shows in `oidc.issuer_status`."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from helpers import APP_ROLE, app_connect, assert_rejected, connect, error_text, mint, sub_with
from replica import replica  # noqa: F401 - fixture
from services import private_dir, remove_dir
from tls import StubIdp, make_ca

# Short intervals, so that the tests wait seconds, not the defaults' minutes.
SETTINGS = {"oidc.fetch_min_interval": "1", "oidc.fetch_max_interval": "2", "oidc.fetch_timeout": "1000",
            "oidc.refresh_cooldown": "1"}
WAIT = 20  # seconds for the worker to act


def alter_system(su: psycopg.Connection, settings: dict[str, str | None]) -> None:
    for name, value in settings.items():
        if value is None:
            su.execute(sql.SQL("alter system reset {}").format(sql.Identifier(name)))
        else:
            su.execute(sql.SQL("alter system set {} = {}").format(sql.Identifier(name), sql.Literal(value)))
    su.execute("select pg_reload_conf()")


@pytest.fixture(scope="module")
def ca(database):
    directory = private_dir("tls-")
    made = make_ca(directory)
    with connect() as su:
        alter_system(su, {**SETTINGS, "oidc.fetch_ca_file": str(made.ca)})
    yield made
    with connect() as su:
        alter_system(su, {name: None for name in [*SETTINGS, "oidc.fetch_ca_file"]})
    remove_dir(directory)


def status(su: psycopg.Connection, issuer: str) -> dict[str, Any]:
    row = su.execute("select last_attempt, last_success, last_error, kids, next_refresh"
                     " from oidc.issuer_status where issuer = %s", (issuer,)).fetchone()
    return dict(zip(("last_attempt", "last_success", "last_error", "kids", "next_refresh"), row))


def wait_for(check, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def stub(ca, superuser):
    s = StubIdp(ca, mint.jwks(kids=["rs256"]))
    superuser.execute("insert into oidc.issuers (issuer, audiences, discovery) values (%s, %s, true)",
                      (s.issuer, [mint.AUDIENCE]))
    yield s
    superuser.execute("delete from oidc.issuers where issuer = %s", (s.issuer,))
    s.stop()


def token(stub: StubIdp, kid: str, sub: str = "alice") -> str:
    alg = mint.KIDS[kid][1]
    return mint.token(alg, kid, mint.claims(sub, iss=stub.issuer))


def fetched(su: psycopg.Connection, issuer: str, kids: list[str]) -> bool:
    s = status(su, issuer)
    return s["last_success"] is not None and s["last_error"] is None and sorted(s["kids"]) == sorted(kids)


def test_keys_come_from_discovery_and_follow_rotation(stub, superuser):
    with app_connect() as app:
        # No keys yet: refused (nothing is hand-loaded).
        assert superuser.execute("select jwks from oidc.issuers where issuer = %s", (stub.issuer,)).fetchone()[0] is None
        wait_for(lambda: fetched(superuser, stub.issuer, ["rs256"]), "the first fetch")
        assert sub_with(app, token(stub, "rs256")) == "alice"
        # The provider adds a key and signs with it: the first token with the new kid makes
        # the worker refresh at once; it verifies on this already-open connection.
        stub.jwks = mint.jwks(kids=["rs256", "es256"])
        assert sub_with(app, token(stub, "es256", "bob")) == "bob"
        # The old key is retired: gone after the next fetch.
        stub.jwks = mint.jwks(kids=["es256"])
        wait_for(lambda: fetched(superuser, stub.issuer, ["es256"]), "the retired key to go")
        assert "kid" in error_text(assert_rejected(app, token(stub, "rs256")))
        assert sub_with(app, token(stub, "es256", "carol")) == "carol"
    s = status(superuser, stub.issuer)
    assert s["next_refresh"] is not None and stub.requests > 0


EXPECTED_ERRORS = {
    "timeout": "timed out",
    "http-error": "HTTP 503",
    "too-large": "over",
    "not-json": "not valid JSON",
    "wrong-issuer": "names issuer",
    "bad-keys": "refused",
    "redirect": "redirects are not followed",
    "no-jwks-uri": "no jwks_uri",
}


def test_a_bad_answer_changes_nothing_and_is_reported(stub, superuser):
    wait_for(lambda: fetched(superuser, stub.issuer, ["rs256"]), "the first fetch")
    good = token(stub, "rs256")
    with app_connect() as app:
        for mode, expected in EXPECTED_ERRORS.items():
            before = status(superuser, stub.issuer)["last_attempt"]
            stub.mode = mode
            if mode == "timeout":
                # While it waits on the network, the worker holds no transaction and no lock.
                assert stub.stalled.wait(WAIT)
                row = superuser.execute(
                    "select a.xact_start, (select count(*) from pg_locks l where l.pid = a.pid)"
                    " from pg_stat_activity a where a.backend_type = 'pg_oidc_authz keys'"
                    " and a.datname = current_database()").fetchone()
                assert row == (None, 0), row
            s = wait_for(lambda: (lambda s: s if s["last_attempt"] > before and s["last_error"] else None)(
                status(superuser, stub.issuer)), f"a failed fetch ({mode})")
            assert expected in s["last_error"], (mode, s["last_error"])
            assert s["kids"] == ["rs256"], mode
            assert sub_with(app, good) == "alice", mode
            stub.mode = "ok"
            wait_for(lambda: fetched(superuser, stub.issuer, ["rs256"]), f"recovery after {mode}")
        # The provider is gone (connection refused): the last good keys keep working.
        stub.stop()
        s = wait_for(lambda: (lambda s: s if s["last_error"] else None)(status(superuser, stub.issuer)),
                     "a refused connection")
        assert s["kids"] == ["rs256"]
        assert sub_with(app, good) == "alice"


def test_plain_http_needs_the_loopback_setting(ca, superuser):
    issuer = "http://127.0.0.1:9"
    superuser.execute("insert into oidc.issuers (issuer, audiences, discovery) values (%s, '{a}', true)", (issuer,))
    try:
        s = wait_for(lambda: (lambda s: s if s["last_error"] else None)(status(superuser, issuer)), "a refusal")
        assert "fetch_allow_insecure_loopback" in s["last_error"], s
        assert s["kids"] == []
    finally:
        superuser.execute("delete from oidc.issuers where issuer = %s", (issuer,))


def test_the_worker_idles_on_a_standby_which_follows_the_keys(stub, superuser, replica):  # noqa: F811
    wait_for(lambda: fetched(superuser, stub.issuer, ["rs256"]), "the first fetch")
    workers = "select count(*) from pg_stat_activity where backend_type like 'pg_oidc_authz%'"
    assert superuser.execute(workers).fetchone()[0] >= 2  # the launcher and this database's
    replica.wait_for_replay()
    with replica.connect() as su:
        assert su.execute(workers).fetchone()[0] == 0
    with replica.connect(APP_ROLE) as standby:
        assert sub_with(standby, token(stub, "rs256")) == "alice"


def test_status_is_for_oidc_admin(ca):
    with app_connect() as app, pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("select * from oidc.issuer_status")


def test_the_real_provider_over_https(ca, superuser, tmp_path, monkeypatch):
    """The Done-when of keys from discovery: the real OpenID Provider over HTTPS, no
    hand-loaded keys; its keys rotated (a restart with another key set) verify on an
    already-open connection without any loader; stopped, its last keys keep working and the
    status shows the error."""
    from idp import Provider

    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca))  # the Python clients trust the test CA
    provider = Provider(tmp_path, tls=ca)
    provider.start(provider.genkeys("one"))
    superuser.execute("insert into oidc.issuers (issuer, audiences, discovery, required_typ, roles_claim)"
                      " values (%s, '{api://documents}', true, 'at+jwt', 'authz.roles')", (provider.issuer,))
    try:
        with app_connect() as app:
            wait_for(lambda: status(superuser, provider.issuer)["last_success"], "the first fetch")
            first = provider.client_credentials("reports")
            assert sub_with(app, first) == "reports"
            provider.restart(provider.genkeys("two"))
            rotated = provider.client_credentials("reports")
            assert sub_with(app, rotated, "select oidc.roles()") == ["auditor"]
            assert sorted(status(superuser, provider.issuer)["kids"]) == ["es256-two", "rs256-two"]
            provider.stop()
            s = wait_for(lambda: (lambda s: s if s["last_error"] else None)(status(superuser, provider.issuer)),
                         "the stopped provider's error")
            assert sorted(s["kids"]) == ["es256-two", "rs256-two"], s
            assert sub_with(app, rotated) == "reports"
    finally:
        provider.stop()
        superuser.execute("delete from oidc.issuers where issuer = %s", (provider.issuer,))


def test_an_unknown_kid_refreshes_early_once_per_cooldown(stub, superuser):
    """With refreshes minutes apart, only the early refresh can bring a new key in time; a
    second unknown kid within the cooldown is refused at once; no wait refuses at once."""
    slow = {"oidc.fetch_min_interval": "300", "oidc.fetch_max_interval": "600", "oidc.refresh_cooldown": "60"}
    alter_system(superuser, slow)
    try:
        wait_for(lambda: fetched(superuser, stub.issuer, ["rs256"]), "the first fetch")
        time.sleep(0.5)  # the worker has read the slow settings (it reloads before each round)
        with app_connect() as app:
            stub.jwks = mint.jwks(kids=["rs256", "es256"])
            before = stub.requests
            assert sub_with(app, token(stub, "es256", "bob")) == "bob"
            assert stub.requests == before + 2  # one discovery document, one key set
            stub.jwks = mint.jwks(kids=["rs256", "es256", "es384"])
            assert "kid" in error_text(assert_rejected(app, token(stub, "es384")))
            assert stub.requests == before + 2  # the cooldown: no fetch
        # No wait: refused at once, and the refresh it asked for serves the next tokens.
        alter_system(superuser, {"oidc.refresh_cooldown": "1", "oidc.refresh_wait": "0"})
        time.sleep(1.5)
        stub.jwks = mint.jwks(kids=["rs256", "es256", "es384", "es512"])
        with app_connect() as app:
            assert "kid" in error_text(assert_rejected(app, token(stub, "es512")))
            wait_for(lambda: fetched(superuser, stub.issuer, ["rs256", "es256", "es384", "es512"]), "the refresh")
            assert sub_with(app, token(stub, "es512", "dan")) == "dan"
    finally:
        alter_system(superuser, {**SETTINGS, "oidc.refresh_wait": None})


def keys_worker(su: psycopg.Connection) -> int | None:
    row = su.execute("select pid from pg_stat_activity where backend_type = 'pg_oidc_authz keys'"
                     " and datname = current_database()").fetchone()
    return row[0] if row else None


def restart_keys_worker(su: psycopg.Connection) -> None:
    """Terminates this database's keys worker; the launcher starts another."""
    old = wait_for(lambda: keys_worker(su), "a keys worker")
    su.execute("select pg_terminate_backend(%s)", (old,))
    wait_for(lambda: (keys_worker(su) or old) != old, "a new keys worker")


def test_a_restarted_worker_purges_what_can_no_longer_match(ca, issuer, superuser):
    """Revocations past `expires_at` (by more than the largest leeway) are deleted by the
    worker (at its first round, then every minute); a keys worker that stopped is started
    again by the launcher."""
    superuser.execute("delete from oidc.revocations")
    superuser.execute("insert into oidc.revocations (kind, issuer, value, expires_at) values"
                      " ('token', 'i', 'gone', now() - interval '6 min'), ('token', 'i', 'late', now() - interval '1 min'),"
                      " ('token', 'i', 'kept', now() + interval '1 h')")
    restart_keys_worker(superuser)
    wait_for(lambda: superuser.execute("select array_agg(value order by value) from oidc.revocations").fetchone()[0]
             == ["kept", "late"], "the purge")
    superuser.execute("delete from oidc.revocations")


def test_a_database_owners_defaults_do_not_stop_the_worker(stub, superuser):
    """The worker sets its own session (writable, no statement timeout): a database made
    read-only by default, or given a tiny statement timeout, still gets its keys."""
    db = superuser.execute("select current_database()").fetchone()[0]
    ident = sql.Identifier(db)
    superuser.execute(sql.SQL("alter database {} set default_transaction_read_only = on").format(ident))
    superuser.execute(sql.SQL("alter database {} set statement_timeout = '1ms'").format(ident))
    try:
        wait_for(lambda: fetched(superuser, stub.issuer, ["rs256"]), "the first fetch")
        restart_keys_worker(superuser)
        since = superuser.execute("select now()").fetchone()[0]
        wait_for(lambda: (status(superuser, stub.issuer)["last_success"] or since) > since,
                 "a fetch by the restarted worker")
        assert status(superuser, stub.issuer)["last_error"] is None
    finally:
        superuser.execute(sql.SQL("alter database {} reset default_transaction_read_only").format(ident))
        superuser.execute(sql.SQL("alter database {} reset statement_timeout").format(ident))


def blocked_signals(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1], 16) for line in f if line.startswith("SigBlk:"))


def test_signals_during_a_fetch_wait_for_the_worker_thread(stub, superuser):
    """The HTTP client resolves names on threads of its own. A SIGHUP or SIGTERM handled on
    one of them aborted the worker (pgrx refuses Postgres calls off the main thread), and the
    postmaster restarted every backend: seen once in make test. While it fetches, the
    worker blocks every signal, so threads started meanwhile inherit the mask; the signals
    wait and are handled after the fetch."""
    wait_for(lambda: fetched(superuser, stub.issuer, ["rs256"]), "the first fetch")
    pid = wait_for(lambda: keys_worker(superuser), "a keys worker")
    sighup, sigterm = 1 << (1 - 1), 1 << (15 - 1)
    stub.mode = "timeout"
    assert stub.stalled.wait(WAIT)
    during = blocked_signals(pid)
    for _ in range(20):
        superuser.execute("select pg_reload_conf()")
    assert during & sighup and during & sigterm, hex(during)
    stub.mode = "ok"
    wait_for(lambda: fetched(superuser, stub.issuer, ["rs256"]), "a fetch after the stall")
    wait_for(lambda: not blocked_signals(pid) & sighup, "the worker's mask restored")
    assert keys_worker(superuser) == pid, "the worker restarted: a signal killed it"
    assert superuser.execute("select count(*) from pg_stat_activity where backend_type = 'pg_oidc_authz keys'"
                             " and pid = %s", (pid,)).fetchone()[0] == 1
