"""Per-row cost of the claim functions under a sequential scan, as ratios to a constant
predicate measured in the same run (never absolute times: the machine varies).

    make bench            (installs the release build, starts the throwaway cluster)

Each query is a 1M-row count(*) with parallelism off, so every row evaluates the predicate
once. The median server-side execution time of N runs is reported, with its ratio to
`owner = '<constant>'`. The Supabase-style row reads PostgREST's unverified claims setting
and parses its JSON on every row: the anchor this extension must beat.
"""

import json
import sys

from common import ROWS, fresh_database, measure, token

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


def main():
    conn = fresh_database("oidc_bench")
    conn.execute(
        "create table bench_docs as select i as id, "
        "case when i %% 1000 = 0 then %s else 'user-' || (i %% 1000) end as owner, "
        "case when i %% 1000 = 0 then %s::uuid else gen_random_uuid() end as owner_id, "
        "case when i %% 2 = 0 then 'read' else 'admin' end as required_scope "
        "from generate_series(1, %s) as i",
        (SUB, SUB, ROWS),
    )
    conn.execute("vacuum analyze bench_docs")
    claims = json.dumps({"sub": SUB, "role": "authenticated"})
    measure(conn, "bench_docs", QUERIES, token(sub=SUB, scope="read write"), "claim functions",
            settings=(f"select set_config('request.jwt.claims', '{claims}', true)",))
    return 0


if __name__ == "__main__":
    sys.exit(main())
