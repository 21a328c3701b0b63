"""Per-row cost of `oidc.allow()` with 10 rules under a sequential scan, as ratios to a
constant predicate measured in the same run.

    make bench            (installs the release build, starts the throwaway cluster)

The rules are a realistic mix: owner access, tenant-wide read by scope, label sharing,
role-based edit, a suspended-user forbid, business hours, and a few rules for other actions
or types that must be matched out. `jsonb_build_object(...)` alone is measured too: it is
what a policy pays per row to hand the row's attributes to any function.
"""

import json
import os
import statistics
import sys
import time

import jwt
import psycopg

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
SECRET = b"bench-secret-bench-secret-bench-secret!!"
ISS = "https://bench.test"

RULES = [
    ("owner", "permit", "{read,update,delete}", "document", "resource.owner == claims.sub"),
    ("tenant-read", "permit", "{read}", "document",
     "'docs:read-all' in scopes && resource.tenant == claims.tenant"),
    ("label-share", "permit", "{read}", "document",
     "resource.labels.exists(l, l in claims.groups)"),
    ("editors", "permit", "{update}", "document", "'editor' in roles && resource.tenant == claims.tenant"),
    ("suspended", "forbid", "{*}", "*", "has(claims.suspended) && claims.suspended"),
    ("business-hours", "forbid", "{update,delete}", "document",
     "context.time.getHours('Europe/Berlin') < 7 || context.time.getHours('Europe/Berlin') >= 20"),
    ("archived", "forbid", "{update,delete}", "document", "has(resource.archived) && resource.archived"),
    ("folders", "permit", "{read}", "folder", "resource.owner == claims.sub"),
    ("admins", "permit", "{*}", "*", "'admin' in roles"),
    ("public", "permit", "{read}", "document", "has(resource.public) && resource.public == true"),
]

RESOURCE = "jsonb_build_object('owner', owner, 'tenant', tenant, 'labels', labels)"
QUERIES = [
    ("constant predicate (baseline)", "owner = 'user-7'"),
    (f"{RESOURCE} is not null", f"{RESOURCE} is not null"),
    (f"oidc.allow('read', 'document', {RESOURCE})", f"oidc.allow('read', 'document', {RESOURCE})"),
    ("oidc.allow('read', 'document', 'owner', owner, 'tenant', tenant, 'labels', labels)",
     "oidc.allow('read', 'document', 'owner', owner, 'tenant', tenant, 'labels', labels)"),
]


def execution_ms(cur, predicate):
    cur.execute(f"explain (analyze, timing off, format json) select count(*) from bench_docs where {predicate}")
    return cur.fetchone()[0][0]["Execution Time"]


def main():
    conn = psycopg.connect(autocommit=True)
    conn.execute("drop database if exists oidc_bench_rules")
    conn.execute("create database oidc_bench_rules")
    conn.close()
    conn = psycopg.connect(dbname="oidc_bench_rules", autocommit=True)
    cur = conn.cursor()
    cur.execute("create extension pg_oidc_authz")
    k = jwt.utils.base64url_encode(SECRET).decode()
    cur.execute(
        "insert into oidc.issuers (issuer, audiences, jwks, algorithms) values (%s, '{bench}', %s, '{HS256}')",
        (ISS, json.dumps({"keys": [{"kty": "oct", "kid": "b", "k": k}]})),
    )
    for rule in RULES:
        cur.execute(
            "insert into oidc.rules (name, effect, actions, resource_type, condition) values (%s, %s, %s, %s, %s)",
            rule,
        )
    cur.execute(
        "create table bench_docs as select i as id, 'user-' || (i %% 1000) as owner, "
        "'tenant-' || (i %% 7) as tenant, array['l' || (i %% 50), 'l' || (i %% 13)] as labels "
        "from generate_series(1, %s) as i",
        (ROWS,),
    )
    cur.execute("vacuum analyze bench_docs")
    token = jwt.encode(
        {"iss": ISS, "aud": "bench", "sub": "user-7", "tenant": "tenant-3", "groups": ["l42", "x"],
         "scope": "docs:read", "exp": int(time.time()) + 3600},
        SECRET, algorithm="HS256", headers={"kid": "b"},
    )
    cur.execute("set max_parallel_workers_per_gather = 0")
    cur.execute("set jit = off")
    cur.execute("begin")
    cur.execute("select set_config('oidc.token', %s, true)", (token,))
    counts = {}
    for name, predicate in QUERIES:  # warm-up, and the row counts for the record
        cur.execute(f"select count(*) from bench_docs where {predicate}")
        counts[name] = cur.fetchone()[0]
    times = {name: [] for name, _ in QUERIES}
    for _ in range(RUNS):
        for name, predicate in QUERIES:
            times[name].append(execution_ms(cur, predicate))
    cur.execute("commit")
    base = statistics.median(times[QUERIES[0][0]])
    print(f"{ROWS} rows, {len(RULES)} rules, median of {RUNS} runs, sequential scan, no parallelism")
    print(f"{'predicate':92} {'rows':>8} {'ms':>8} {'ratio':>7}")
    for name, _ in QUERIES:
        ms = statistics.median(times[name])
        print(f"{name:92} {counts[name]:8} {ms:8.1f} {ms / base:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
