"""Through pgbouncer in transaction mode, each transaction sees exactly its own token's rows:
a load test with many distinct tokens and concurrent clients on two shared server connections,
and the session-level SET misuse that does leak, shown happening."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from helpers import APP_ROLE, connect, mint
from pooler import app_password, pgbouncer, start_pgbouncer  # noqa: F401 - fixtures

USERS = 1000
CLIENTS = 4
PASSES = 2  # every token twice: once verified, once (usually) from a backend's cache
ALGS = ["RS256", "ES256", "EdDSA"]
# One statement per transaction besides set_config: who the backend thinks the caller is, which
# server connection ran it, the order of transactions, and the rows the policy let through.
QUERY = (
    "select oidc.sub(), (oidc.token_status() ->> 'present')::boolean, pg_backend_pid(),"
    " nextval('pool_seq'), array(select id from pool_docs order by id)"
)


def user(i: int) -> str:
    return f"u{i:04d}"


def owned_ids(i: int) -> list[int]:
    """User i owns 1 to 3 rows; ids are unique across users."""
    return [i * 10 + k for k in range(i % 3 + 1)]


@pytest.fixture(scope="module")
def pool_docs(database):
    with connect() as su:
        su.execute("drop table if exists pool_docs")
        su.execute("drop sequence if exists pool_seq")
        su.execute("create table pool_docs (id int primary key, owner text not null)")
        with su.cursor() as cur:
            cur.executemany("insert into pool_docs values (%s, %s)",
                            [(rid, user(i)) for i in range(USERS) for rid in owned_ids(i)])
        su.execute("alter table pool_docs enable row level security")
        su.execute("alter table pool_docs force row level security")
        su.execute("create policy own on pool_docs for select using (owner = oidc.sub())")
        su.execute("create sequence pool_seq")
        role = sql.Identifier(APP_ROLE)
        su.execute(sql.SQL("grant select on pool_docs to {}").format(role))
        su.execute(sql.SQL("grant usage on sequence pool_seq to {}").format(role))
    yield
    with connect() as su:
        su.execute("drop table pool_docs")
        su.execute("drop sequence pool_seq")


def fresh_token(i: int, now: int) -> str:
    alg = ALGS[i % len(ALGS)]
    return mint.token(alg, claims=mint.claims(user(i), iat=now, exp=now + 600))


@dataclass
class Txn:
    client: int
    expected: str | None  # the token's sub, None for an anonymous transaction
    sub: str | None
    present: bool
    pid: int
    seq: int
    ids: list[int]


def test_load_every_response_is_the_callers_own(issuer, pool_docs, pgbouncer):  # noqa: F811
    now = int(time.time())
    tokens = [fresh_token(i, now) for i in range(USERS)]
    assert len(set(tokens)) == USERS
    work = list(range(USERS))
    random.Random(4).shuffle(work)
    shares = [work[c::CLIENTS] for c in range(CLIENTS)]

    txns: list[Txn] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        rng = random.Random(c)
        mine: list[Txn] = []
        try:
            with pgbouncer.connect() as conn:
                for p in range(PASSES):
                    order = list(shares[c])
                    if p:
                        rng.shuffle(order)
                    for i in order:
                        try:
                            with conn.transaction():
                                conn.execute("select set_config('oidc.token', %s, true)", (tokens[i],))
                                mine.append(Txn(c, user(i), *conn.execute(QUERY).fetchone()))
                            if rng.random() < 0.5:  # one statement, its own transaction, no token
                                mine.append(Txn(c, None, *conn.execute(QUERY).fetchone()))
                        except psycopg.Error as err:
                            with lock:
                                errors.append(f"client {c}, {user(i)}: {err.sqlstate} {err}")
        except Exception as err:  # noqa: BLE001 - reported below, with the others
            with lock:
                errors.append(f"client {c}: {type(err).__name__}: {err}")
        with lock:
            txns.extend(mine)

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 90
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "the load test did not finish within 90 s"

    assert errors == [], f"{len(errors)} errors, first: {errors[:5]}"
    authed = [t for t in txns if t.expected is not None]
    anonymous = [t for t in txns if t.expected is None]
    assert len(authed) == USERS * PASSES
    assert {t.expected for t in authed} == {user(i) for i in range(USERS)}

    leaks = [t for t in authed
             if t.sub != t.expected or not t.present or t.ids != owned_ids(int(t.expected[1:]))]
    leaks += [t for t in anonymous if t.sub is not None or t.present or t.ids != []]
    assert leaks == [], f"{len(leaks)} responses with someone else's identity or rows, first: {leaks[:3]}"

    # The pooler really shared its two server connections among the four clients, and handed
    # a connection straight from one caller to another and to anonymous transactions.
    by_pid: dict[int, list[Txn]] = defaultdict(list)
    for t in txns:
        by_pid[t.pid].append(t)
    assert 1 <= len(by_pid) <= pgbouncer.pool_size, sorted(by_pid)
    assert any(len({t.client for t in ts}) > 1 for ts in by_pid.values())
    to_other_user = to_anonymous = 0
    for ts in by_pid.values():
        ts.sort(key=lambda t: t.seq)
        for before, after in zip(ts, ts[1:]):
            if before.expected is not None and after.expected is None:
                to_anonymous += 1
            elif before.expected is not None and after.expected != before.expected:
                to_other_user += 1
    assert to_anonymous > 100 and to_other_user > 100, (to_anonymous, to_other_user)
    print(f"\npgbouncer load: {USERS} tokens, {len(authed)} authenticated and {len(anonymous)} anonymous"
          f" transactions from {CLIENTS} clients on {len(by_pid)} server connections;"
          f" {to_other_user} handovers to another user, {to_anonymous} to an anonymous transaction;"
          f" 0 leaks, 0 errors")


@pytest.fixture
def single_connection_pooler(app_password):  # noqa: F811
    """One server connection: every client's transactions run on the same backend."""
    with start_pgbouncer(app_password, pool_size=1) as pooler:
        yield pooler


def seen_by(conn: psycopg.Connection) -> tuple[str | None, int, list[int]]:
    sub, _, pid, _, ids = conn.execute(QUERY).fetchone()
    return sub, pid, ids


def test_session_set_leaks_to_the_next_client_and_set_config_local_does_not(
        issuer, pool_docs, single_connection_pooler, make_token):
    alice = make_token(sub=user(7))
    with single_connection_pooler.connect() as a, single_connection_pooler.connect() as b:
        # The right way: the token ends with a's transaction; b, next on the same server
        # connection, is anonymous.
        with a.transaction():
            a.execute("select set_config('oidc.token', %s, true)", (alice,))
            sub, pid_a, ids = seen_by(a)
        assert (sub, ids) == (user(7), owned_ids(7))
        assert seen_by(b) == (None, pid_a, [])
        with a.transaction():
            a.execute(sql.SQL("set local oidc.token = {}").format(sql.Literal(alice)))
            assert seen_by(a)[0] == user(7)
        assert seen_by(b) == (None, pid_a, [])

        # The hazard: a session-level SET outlives a's transaction on the server connection,
        # which the pooler then hands to b. b acts as alice without ever sending her token.
        a.execute(sql.SQL("set oidc.token = {}").format(sql.Literal(alice)))
        assert seen_by(b) == (user(7), pid_a, owned_ids(7)), "session-level SET did not leak"
        # The same with set_config(..., false), which is what SET does.
        bob = make_token(sub=user(8))
        a.execute("select set_config('oidc.token', %s, false)", (bob,))
        assert seen_by(b) == (user(8), pid_a, owned_ids(8)), "set_config(..., false) did not leak"
