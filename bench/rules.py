"""Per-row cost of `oidc.allow()` with 10 rules under a sequential scan, as ratios to a
constant predicate measured in the same run.

    make bench            (installs the release build, starts the throwaway cluster)

The rules are a realistic mix: owner access, tenant-wide read by scope, label sharing,
role-based edit, a suspended-user forbid, business hours, and a few rules for other actions
or types that must be matched out. `jsonb_build_object(...)` alone is measured too: it is
what a policy pays per row to hand the row's attributes to any function.
"""

import sys

from common import ROWS, fresh_database, measure, token

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
    # What a user would write by hand for the rules matching (read, document).
    ("hand-written equivalent (owner = (select oidc.sub()) or … labels && (select …) …)",
     "(owner = (select oidc.sub())"
     " or ((select oidc.has_scope('docs:read-all')) and tenant = (select oidc.claim_text('tenant')))"
     " or labels && (select array(select jsonb_array_elements_text(oidc.claim('groups'))))"
     " or (select oidc.has_role('admin')))"
     " and not coalesce((select oidc.claim('suspended') = 'true'::jsonb), false)"),
]


def main():
    conn = fresh_database("oidc_bench_rules")
    with conn.cursor() as cur:
        cur.executemany(
            "insert into oidc.rules (name, effect, actions, resource_type, condition) values (%s, %s, %s, %s, %s)",
            RULES,
        )
    conn.execute(
        "create table bench_docs as select i as id, 'user-' || (i %% 1000) as owner, "
        "'tenant-' || (i %% 7) as tenant, array['l' || (i %% 50), 'l' || (i %% 13)] as labels "
        "from generate_series(1, %s) as i",
        (ROWS,),
    )
    conn.execute("vacuum analyze bench_docs")
    caller = token(sub="user-7", tenant="tenant-3", groups=["l42", "x"], scope="docs:read")
    measure(conn, "bench_docs", QUERIES, caller, f"{len(RULES)} rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
