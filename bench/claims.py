"""Per-row cost of the claim functions under a sequential scan, as ratios to a constant
predicate measured in the same run (never absolute times: the machine varies).

    make bench            (installs the release build, starts the throwaway cluster)

Each query is a 1M-row count(*) with parallelism off, so every row evaluates the predicate
once. The median server-side execution time of N runs is reported, with its ratio to
`owner = '<constant>'`. The Supabase-style row reads PostgREST's unverified claims setting
and parses its JSON on every row: the anchor this extension must beat.
"""

import json
import os
import statistics
import sys
import time

import jwt
import psycopg

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
RUNS = int(os.environ.get("BENCH_RUNS", "7"))
SECRET = b"bench-secret-bench-secret-bench-secret!!"
ISS = "https://bench.test"
SUB = "6f1c1a52-33f0-4b5e-9a53-2d6c0f5b1a11"

QUERIES = [
    ("constant predicate (baseline)", f"owner = '{SUB}'"),
    ("required_scope = 'read' (constant baseline, other column)", "required_scope = 'read'"),
    ("owner = oidc.sub()", "owner = oidc.sub()"),
    ("owner = (select oidc.sub())", "owner = (select oidc.sub())"),
    ("owner_id = oidc.uid()", "owner_id = oidc.uid()"),
    # A column argument, so the call happens per row (a constant-argument call would be
    # planned as a one-time filter).
    ("oidc.has_scope(required_scope)", "oidc.has_scope(required_scope)"),
    (
        "Supabase-style: request.jwt.claims ->> 'sub' (unverified)",
        "owner = (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')",
    ),
]


def execution_ms(cur, predicate):
    cur.execute(
        f"explain (analyze, timing off, format json) select count(*) from bench_docs where {predicate}"
    )
    return cur.fetchone()[0][0]["Execution Time"]


def main():
    conn = psycopg.connect(autocommit=True)
    cur = conn.cursor()
    cur.execute("drop database if exists oidc_bench")
    cur.execute("create database oidc_bench")
    conn.close()
    conn = psycopg.connect(dbname="oidc_bench", autocommit=True)
    cur = conn.cursor()
    cur.execute("create extension pg_oidc_authz")
    k = jwt.utils.base64url_encode(SECRET).decode()
    cur.execute(
        "insert into oidc.issuers (issuer, audiences, jwks, algorithms) values (%s, '{bench}', %s, '{HS256}')",
        (ISS, json.dumps({"keys": [{"kty": "oct", "kid": "b", "k": k}]})),
    )
    cur.execute(
        "create table bench_docs as select i as id, "
        "case when i %% 1000 = 0 then %s else 'user-' || (i %% 1000) end as owner, "
        "case when i %% 1000 = 0 then %s::uuid else gen_random_uuid() end as owner_id, "
        "case when i %% 2 = 0 then 'read' else 'admin' end as required_scope "
        "from generate_series(1, %s) as i",
        (SUB, SUB, ROWS),
    )
    cur.execute("vacuum analyze bench_docs")
    token = jwt.encode(
        {"iss": ISS, "aud": "bench", "sub": SUB, "scope": "read write", "exp": int(time.time()) + 3600},
        SECRET,
        algorithm="HS256",
        headers={"kid": "b"},
    )
    cur.execute("set max_parallel_workers_per_gather = 0")
    cur.execute("set jit = off")
    cur.execute("begin")
    cur.execute("select set_config('oidc.token', %s, true)", (token,))
    cur.execute(
        "select set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": SUB, "role": "authenticated"}),)
    )
    for _, predicate in QUERIES:  # warm-up: caches, hint bits, the verification itself
        execution_ms(cur, predicate)
    times = {name: [] for name, _ in QUERIES}
    for _ in range(RUNS):  # interleaved, so drift hits every query alike
        for name, predicate in QUERIES:
            times[name].append(execution_ms(cur, predicate))
    cur.execute("commit")
    base = statistics.median(times[QUERIES[0][0]])
    print(f"{ROWS} rows, median of {RUNS} runs, sequential scan, no parallelism")
    print(f"{'predicate':58} {'ms':>9} {'ratio':>7}")
    for name, _ in QUERIES:
        ms = statistics.median(times[name])
        print(f"{name:58} {ms:9.1f} {ms / base:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
