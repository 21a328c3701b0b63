"""What the benchmarks share: a fresh database with the extension and an HMAC test issuer,
tokens for it, and the measurement — each query's median server-side execution time over a
1M-row sequential scan (parallelism and JIT off, queries interleaved so drift hits all
alike), reported as ratios to the first query, a baseline measured in the same run."""

from __future__ import annotations

import json
import os
import statistics
import time

import jwt
import psycopg

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
RUNS = int(os.environ.get("BENCH_RUNS", "7"))
SECRET = b"bench-secret-bench-secret-bench-secret!!"
ISS = "https://bench.test"


def fresh_database(name: str) -> psycopg.Connection:
    """A new database `name` with the extension and the bench issuer; autocommit."""
    with psycopg.connect(autocommit=True) as admin:
        admin.execute(f"drop database if exists {name}")
        admin.execute(f"create database {name}")
    conn = psycopg.connect(dbname=name, autocommit=True)
    conn.execute("create extension pg_oidc_authz")
    k = jwt.utils.base64url_encode(SECRET).decode()
    conn.execute(
        "insert into oidc.issuers (issuer, audiences, jwks, algorithms) values (%s, '{bench}', %s, '{HS256}')",
        (ISS, json.dumps({"keys": [{"kty": "oct", "kid": "b", "k": k}]})),
    )
    return conn


def token(**claims) -> str:
    claims = {"iss": ISS, "aud": "bench", "exp": int(time.time()) + 3600, **claims}
    return jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "b"})


def measure(conn: psycopg.Connection, table: str, queries: list[tuple[str, str]], token: str,
            title: str, settings: tuple[str, ...] = ()) -> None:
    """Runs `select count(*) from table where <predicate>` for each query under `token` and
    prints rows, median milliseconds and the ratio to the first query."""
    conn.execute("set max_parallel_workers_per_gather = 0")
    conn.execute("set jit = off")
    with conn.transaction():
        conn.execute("select set_config('oidc.token', %s, true)", (token,))
        for setting in settings:
            conn.execute(setting)
        counts = {}
        for name, predicate in queries:  # warm-up: caches, hint bits, the verification itself
            counts[name] = conn.execute(f"select count(*) from {table} where {predicate}").fetchone()[0]
        times: dict[str, list[float]] = {name: [] for name, _ in queries}
        for _ in range(RUNS):
            for name, predicate in queries:
                plan = conn.execute(
                    f"explain (analyze, timing off, format json) select count(*) from {table} where {predicate}"
                ).fetchone()[0]
                times[name].append(plan[0]["Execution Time"])
    base = statistics.median(times[queries[0][0]])
    width = max(len(name) for name, _ in queries)
    print(f"{title}: {ROWS} rows, median of {RUNS} runs, sequential scan, no parallelism")
    print(f"{'predicate':{width}} {'rows':>8} {'ms':>8} {'ratio':>7}")
    for name, _ in queries:
        ms = statistics.median(times[name])
        print(f"{name:{width}} {counts[name]:8} {ms:8.1f} {ms / base:6.2f}x")
