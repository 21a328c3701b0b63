"""Rules the planner can use: `oidc.allow()` with name/value pairs against the hand-written
policy a user would write for the same four rules, on 1M documents with b-tree indexes on
`owner` and `tenant` and a GIN index on `labels`, as a non-owner role that sees about 0.2%
of the rows. Both policies are on the same table (one per role), checked to return the same
rows; each query's median execution time and plan shape are printed, with the ratio.

    make bench            (installs the release build, starts the throwaway cluster)
"""

import statistics
import sys

import psycopg

from common import ROWS, RUNS, fresh_database, token

RULES = [
    ("owner", "permit", "{read}", "document", "resource.owner == claims.sub"),
    ("tenant-read", "permit", "{read}", "document",
     "'docs:read-all' in scopes && resource.tenant == claims.tenant"),
    ("label-share", "permit", "{read}", "document", "resource.labels.exists(l, l in claims.groups)"),
    ("suspended", "forbid", "{*}", "*", "has(claims.suspended) && claims.suspended"),
]
HAND = (
    "(owner = (select oidc.sub())"
    " or ((select oidc.has_scope('docs:read-all')) and tenant = (select oidc.claim_text('tenant')))"
    " or labels && (select array(select jsonb_array_elements_text(oidc.claim('groups'))))"
    ") and not coalesce((select oidc.claim('suspended') = 'true'::jsonb), false)"
)
RULES_POLICY = "oidc.allow('read', 'document', 'owner', owner, 'tenant', tenant, 'labels', labels)"
QUERIES = [
    ("count(*)", "select count(*) from docs"),
    ("order by id desc limit 50", "select id from docs order by id desc limit 50"),
]


def shape(plan: dict) -> str:
    """The plan's scan nodes, e.g. `BitmapOr(Bitmap Index Scan x3)`."""
    nodes = []

    def walk(p):
        t = p["Node Type"]
        if "Scan" in t or t in ("BitmapOr", "BitmapAnd"):
            nodes.append(t)
        for c in p.get("Plans", []):
            if c.get("Parent Relationship") != "InitPlan":
                walk(c)

    walk(plan["Plan"])
    return ", ".join(dict.fromkeys(nodes))


def main():
    conn = fresh_database("oidc_bench_residual")
    with conn.cursor() as cur:
        cur.executemany(
            "insert into oidc.rules (name, effect, actions, resource_type, condition) values (%s, %s, %s, %s, %s)",
            RULES,
        )
    conn.execute(
        "create table docs as select i as id, 'user-' || (i %% 1000) as owner, 'tenant-' || (i %% 7) as tenant,"
        " array['l' || (i %% 1000), 'm' || (i %% 13)] as labels from generate_series(1, %s) as i",
        (ROWS,),
    )
    conn.execute("alter table docs add primary key (id)")
    conn.execute("create index on docs (owner)")
    conn.execute("create index on docs (tenant)")
    conn.execute("create index on docs using gin (labels)")
    conn.execute("vacuum analyze docs")
    for role in ("bench_hand", "bench_rules"):
        conn.execute(f"drop role if exists {role}")
        conn.execute(f"create role {role}")
        conn.execute(f"grant select on docs to {role}")
    conn.execute("alter table docs enable row level security")
    conn.execute("alter table docs force row level security")
    conn.execute(f"create policy hand on docs for select to bench_hand using ({HAND})")
    conn.execute(f"create policy rules on docs for select to bench_rules using ({RULES_POLICY})")
    caller = token(sub="user-7", tenant="tenant-3", groups=["l42", "x"], scope="docs:read")
    conn.execute("set max_parallel_workers_per_gather = 0")
    conn.execute("set jit = off")
    results = {}
    with conn.transaction():
        conn.execute("select set_config('oidc.token', %s, true)", (caller,))
        rows = {}
        for role in ("bench_hand", "bench_rules"):
            conn.execute(f"set local role {role}")
            rows[role] = conn.execute("select array_agg(id order by id) from docs").fetchone()[0]
            conn.execute("reset role")
        if rows["bench_hand"] != rows["bench_rules"]:
            print("the two policies disagree", file=sys.stderr)
            return 1
        visible = len(rows["bench_hand"] or [])
        for _ in range(RUNS):
            for name, query in QUERIES:
                for role in ("bench_hand", "bench_rules"):
                    conn.execute(f"set local role {role}")
                    plan = conn.execute(f"explain (analyze, timing off, format json) {query}").fetchone()[0][0]
                    conn.execute("reset role")
                    r = results.setdefault((name, role), {"ms": [], "shape": shape(plan)})
                    r["ms"].append(plan["Execution Time"])
    print(f"residuals: {ROWS} rows, 4 rules, {visible} visible ({100 * visible / ROWS:.2f}%), median of {RUNS} runs")
    print(f"{'query':28} {'hand-written ms':>16} {'oidc.allow ms':>14} {'ratio':>7}  plans (hand | allow)")
    for name, _ in QUERIES:
        hand = statistics.median(results[(name, "bench_hand")]["ms"])
        allow = statistics.median(results[(name, "bench_rules")]["ms"])
        print(f"{name:28} {hand:16.1f} {allow:14.1f} {allow / hand:6.2f}x  "
              f"{results[(name, 'bench_hand')]['shape']} | {results[(name, 'bench_rules')]['shape']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
