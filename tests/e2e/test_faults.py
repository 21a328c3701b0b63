"""Limits and faults: many distinct tokens in one backend keep its memory bounded; a statement
cancelled in the middle of verification or of a configuration reload leaves the session whole
and never a partial configuration; a backend terminated while others serve affects no one
else. Large configurations' load times are measured by bench/, not asserted here."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

import psycopg
import pytest

from helpers import app_connect, connect, mint, sub_with

SECRET = mint.load_key("hmac-256.jwk.json")


def hs256_tokens(n: int, start: int = 0) -> list[str]:
    """n distinct HS256 tokens of the HMAC test issuer, cheap to make in bulk."""
    header = mint.b64url(mint.compact_json({"alg": "HS256", "kid": "hs256", "typ": "JWT"}))
    now = int(time.time())
    out = []
    for i in range(start, start + n):
        claims = mint.claims(f"user{i}", iss=mint.HMAC_ISSUER, iat=now, exp=now + 600)
        signing_input = f"{header}.{mint.b64url(mint.compact_json(claims))}"
        mac = hmac.new(SECRET, signing_input.encode(), hashlib.sha256).digest()
        out.append(f"{signing_input}.{mint.b64url(mac)}")
    return out


@pytest.fixture
def verify_all(superuser):
    superuser.execute("""
        create or replace function public.e2e_verify_all(tokens text[], rounds int) returns bigint
        language plpgsql volatile as $$
        declare n bigint := 0; t text;
        begin
            for r in 1 .. rounds loop
                foreach t in array tokens loop
                    perform set_config('oidc.token', t, true);
                    if oidc.sub() is not null then n := n + 1; end if;
                end loop;
            end loop;
            return n;
        end $$""")
    superuser.execute("grant execute on function public.e2e_verify_all(text[], int) to public")
    yield lambda conn, tokens, rounds=1: conn.execute(
        "select public.e2e_verify_all(%s, %s)", (tokens, rounds)).fetchone()[0]
    superuser.execute("drop function public.e2e_verify_all(text[], int)")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_a_hundred_thousand_tokens_keep_a_backend_bounded(issuer, verify_all):
    """The cache keeps oidc.cache_size verified tokens (1000 by default): past that, more
    distinct tokens cost no memory. An unbounded cache would grow by ~2 KB per token here."""
    with app_connect() as conn:
        pid = conn.execute("select pg_backend_pid()").fetchone()[0]
        for start in range(0, 20_000, 5_000):
            assert verify_all(conn, hs256_tokens(5_000, start)) == 5_000
        warm = rss_kib(pid)
        for start in range(20_000, 100_000, 5_000):
            assert verify_all(conn, hs256_tokens(5_000, start)) == 5_000
        grown = rss_kib(pid) - warm
        print(f"\nRSS after 20k tokens: {warm} KiB; 80k more tokens added {grown} KiB")
        assert grown < 16 * 1024, f"the backend grew by {grown} KiB over 80,000 more tokens"
        assert sub_with(conn, hs256_tokens(1, 7)[0]) == "user7"


def test_a_cancelled_verification_leaves_the_session_whole(issuer, verify_all, make_token):
    with app_connect() as conn:
        conn.execute("set statement_timeout = '300ms'")
        tokens = hs256_tokens(5_000)  # more than the cache holds: verified again each round
        with pytest.raises(psycopg.errors.QueryCanceled):
            verify_all(conn, tokens, 1000)
        conn.execute("reset statement_timeout")
        assert sub_with(conn, make_token(sub="bob")) == "bob"
        assert conn.execute("select oidc.sub()").fetchone()[0] is None
        other = connect()
        pid = conn.info.backend_pid
        result: dict[str, object] = {}

        def run() -> None:
            try:
                result["n"] = verify_all(conn, tokens, 1000)
            except psycopg.Error as e:
                result["error"] = e
        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 30
        while other.execute("select state <> 'active' or query not like '%%e2e_verify_all%%'"
                            " from pg_stat_activity where pid = %s", (pid,)).fetchone()[0]:
            assert time.monotonic() < deadline, "the verification never started"
            time.sleep(0.02)
        time.sleep(0.2)
        other.execute("select pg_cancel_backend(%s)", (pid,))
        thread.join(60)
        other.close()
        assert isinstance(result.get("error"), psycopg.errors.QueryCanceled), result
        assert sub_with(conn, make_token(sub="carol")) == "carol"


@pytest.fixture
def many_rules(superuser):
    """10,000 permits and, last by name, one forbid: a reload cut short must never leave the
    permits without the forbid."""
    superuser.execute("delete from oidc.rules")
    superuser.execute("""
        insert into oidc.rules (name, effect, actions, resource_type, condition)
        select 'p' || lpad(i::text, 5, '0'), 'permit', '{read}', 'doc', 'resource.n == ' || i
        from generate_series(1, 10000) i""")
    superuser.execute("insert into oidc.rules (name, effect, actions, resource_type, condition)"
                      " values ('zz-forbid', 'forbid', '{read}', 'doc', 'claims.sub == \"mallory\"')")
    yield
    superuser.execute("delete from oidc.rules")


def test_a_reload_cut_short_never_leaves_a_partial_configuration(issuer, superuser, many_rules, make_token):
    decision = "select oidc.allow('read', 'doc', 'n', 9999)"
    mallory, alice = make_token(sub="mallory"), make_token(sub="alice")
    with app_connect() as conn:
        cancelled = 0
        for timeout in ("1ms", "5ms", "20ms"):
            superuser.execute("update oidc.rules set description = %s where name = 'p00001'", (timeout,))
            conn.execute(f"set statement_timeout = '{timeout}'")
            try:
                sub_with(conn, mallory, decision)
            except psycopg.errors.QueryCanceled:
                cancelled += 1
            conn.execute("reset statement_timeout")
            assert sub_with(conn, mallory, decision) is False
            assert sub_with(conn, alice, decision) is True
        assert cancelled, "no reload was cut short: the test would prove nothing"


def test_a_terminated_backend_affects_no_other_session(issuer, superuser, make_token):
    with app_connect() as victim, app_connect() as bystander:
        assert sub_with(bystander, make_token(sub="bob")) == "bob"
        victim.execute("begin")
        victim.execute("select set_config('oidc.token', %s, true)", (make_token(sub="alice"),))
        assert victim.execute("select oidc.sub()").fetchone()[0] == "alice"
        assert superuser.execute("select pg_terminate_backend(%s, 10000)", (victim.info.backend_pid,)).fetchone()[0]
        with pytest.raises(psycopg.OperationalError):
            victim.execute("select oidc.sub()")
        assert sub_with(bystander, make_token(sub="bob")) == "bob"
        assert bystander.execute("select oidc.sub()").fetchone()[0] is None
    with app_connect() as fresh:
        assert sub_with(fresh, make_token(sub="carol")) == "carol"
