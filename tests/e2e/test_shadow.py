"""Shadow rules (`oidc.rules.mode = 'shadow'`): a staged rule decides nothing. Where counting
it would change a row's decision, the audit writes a `shadow` line (whenever the audit is
not off), `oidc.explain()` and `oidc.replay()` show what it would do, and `oidc.stats()`
counts the difference. Only statements whose (action, resource type) has shadow rules pay
for them: elsewhere the planner still uses the rules' residual."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import psycopg
import pytest

LOG = Path(os.environ.get("PGOIDC_LOG", "/tmp/pg_oidc_authz/postgres.log"))
PREFIX = "pg_oidc_authz shadow: "


def shadow_lines(marker: str, deadline: float = 5.0) -> list[dict]:
    end = time.monotonic() + deadline
    while True:
        found = [json.loads(line.split(PREFIX, 1)[1]) for line in LOG.read_text(errors="replace").splitlines()
                 if PREFIX in line and marker in line]
        if found or time.monotonic() > end:
            return found
        time.sleep(0.05)


@pytest.fixture
def staged(superuser, issuer):
    """Enforced: owners read their docs. Staged: a forbid for bob, and a permit for dave (who
    owns nothing) to read alice's docs."""
    superuser.execute("delete from oidc.rules")
    marker = f"read-{uuid.uuid4().hex[:8]}"
    superuser.execute(
        "insert into oidc.rules (name, effect, actions, resource_type, condition, mode) values "
        "('owners', 'permit', %(a)s, 'doc', 'resource.owner == claims.sub', 'enforce'), "
        "('staged-no-bob', 'forbid', %(a)s, 'doc', 'claims.sub == \"bob\"', 'shadow'), "
        "('staged-dave-reads-alice', 'permit', %(a)s, 'doc',"
        " 'claims.sub == \"dave\" && resource.owner == \"alice\"', 'shadow')",
        {"a": [marker]},
    )
    yield marker
    superuser.execute("delete from oidc.rules")


def decide(superuser, token: str, marker: str, audit: str = "off") -> list[int]:
    """The ids of docs allowed to the principal of `token` (decided per row, every row)."""
    with superuser.transaction():
        superuser.execute(f"set local oidc.audit = '{audit}'")
        superuser.execute("set local log_min_messages = log")
        superuser.execute("select set_config('oidc.token', %s, true)", (token,))
        return [r[0] for r in superuser.execute(
            "select id from docs d where oidc.allow(%s, 'doc', 'owner', d.owner) order by id", (marker,))]


def shadow_count(conn, rule: str, would: str) -> int:
    row = conn.execute("select coalesce(sum(value), 0) from oidc.stats() where counter = 'shadow_differences'"
                       " and labels ->> 'rule' = %s and labels ->> 'would' = %s", (rule, would)).fetchone()
    return int(row[0])


def test_shadow_rules_change_no_decision(staged, superuser, make_token):
    marker = staged
    with_shadow = {sub: decide(superuser, make_token(sub=sub), marker) for sub in ("alice", "bob", "dave")}
    superuser.execute("delete from oidc.rules where mode = 'shadow'")
    without = {sub: decide(superuser, make_token(sub=sub), marker) for sub in ("alice", "bob", "dave")}
    assert with_shadow == without == {"alice": [1, 2], "bob": [3], "dave": []}


def test_would_be_decisions_reach_the_audit_explain_and_stats(staged, superuser, make_token):
    marker = staged
    before = shadow_count(superuser, "staged-no-bob", "deny"), shadow_count(superuser, "staged-dave-reads-alice", "allow")
    # The audit at `deny` logs no allow, but it logs every shadow difference.
    assert decide(superuser, make_token(sub="bob"), marker, audit="deny") == [3]
    assert decide(superuser, make_token(sub="dave"), marker, audit="all") == []
    assert decide(superuser, make_token(sub="alice"), marker, audit="all") == [1, 2]
    lines = sorted(shadow_lines(marker), key=lambda l: l["sub"])
    assert [(l["sub"], l["decision"], l["would"], l["shadow_rules"], l["rows"]) for l in lines] == [
        ("bob", "allow", "deny", ["staged-no-bob"], 1),
        ("dave", "deny", "allow", ["staged-dave-reads-alice"], 2),
    ], lines
    assert all(l["iss"] == "https://issuer.test" and l["action"] == marker for l in lines)
    after = shadow_count(superuser, "staged-no-bob", "deny"), shadow_count(superuser, "staged-dave-reads-alice", "allow")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 2)

    with superuser.transaction():
        superuser.execute("select set_config('oidc.token', %s, true)", (make_token(sub="bob"),))
        ex = superuser.execute("select oidc.explain(%s, 'doc', '{\"owner\": \"bob\"}')", (marker,)).fetchone()[0]
    assert ex["decision"] == "allow" and ex["permits"] == ["owners"] and ex["forbids"] == []
    assert ex["shadow"] == {"decision": "deny", "differs": True, "permits": [], "forbids": ["staged-no-bob"],
                            "not_held": ["staged-dave-reads-alice"], "errors": []}
    replayed = superuser.execute(
        "select oidc.replay(%s, %s, 'doc', '{\"owner\": \"alice\"}')",
        (json.dumps({"iss": "https://issuer.test", "sub": "dave"}), marker)).fetchone()[0]
    assert replayed["decision"] == "deny"
    assert replayed["shadow"]["decision"] == "allow" and replayed["shadow"]["differs"] is True


def test_the_audit_off_writes_no_shadow_line(staged, superuser, make_token):
    marker = staged
    assert decide(superuser, make_token(sub="bob"), marker, audit="off") == [3]
    assert shadow_lines(marker, deadline=0.5) == []


def test_only_statements_with_shadow_rules_pay_for_them(staged, superuser, make_token):
    """The residual stays where no shadow rule matches (action `other`), and gives way to the
    per-row decision where one does."""
    marker = staged
    superuser.execute("insert into oidc.rules (name, effect, actions, resource_type, condition) values"
                      " ('other-owners', 'permit', '{other}', 'doc', 'resource.owner == claims.sub')")

    def plan(action: str) -> str:
        with superuser.transaction():
            superuser.execute("select set_config('oidc.token', %s, true)", (make_token(sub="alice"),))
            return "\n".join(r[0] for r in superuser.execute(
                f"explain (costs off) select id from docs d where oidc.allow('{action}', 'doc', 'owner', d.owner)"))

    assert "oidc.allow" not in plan("other") and "owner" in plan("other")
    assert "allow(" in plan(marker)
    superuser.execute("update oidc.rules set mode = 'enforce' where name = 'staged-no-bob'")
    assert decide(superuser, make_token(sub="bob"), marker) == [], "an enforced forbid denies"
    superuser.execute("update oidc.rules set mode = 'shadow' where name = 'staged-no-bob'")
    assert decide(superuser, make_token(sub="bob"), marker) == [3]


def test_a_mode_is_enforce_or_shadow_and_history_keeps_it(staged, superuser):
    # (the validating trigger refuses it before the column's CHECK, as any invalid rule: 22023)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="`mode` must be `enforce` or `shadow`"):
        superuser.execute("update oidc.rules set mode = 'dry-run' where name = 'owners'")
    modes = dict(superuser.execute("select name, mode from oidc.rules_history where valid_to is null"
                                   " and name like 'staged-%'").fetchall())
    assert modes == {"staged-no-bob": "shadow", "staged-dave-reads-alice": "shadow"}


def test_rule_tests_decide_by_enforced_rules_only(staged, superuser):
    """A staged forbid that would break a gated test does not block: it decides nothing."""
    marker = staged
    superuser.execute("delete from oidc.rule_tests")
    try:
        superuser.execute(
            "insert into oidc.rule_tests (name, claims, action, resource_type, resource, expect) values"
            " ('bob reads his doc', %s, %s, 'doc', '{\"owner\": \"bob\"}', 'allow')",
            (json.dumps({"iss": "https://issuer.test", "sub": "bob"}), marker))
        superuser.execute("update oidc.rules set condition = 'true' where name = 'staged-no-bob'")
        assert superuser.execute("select bool_and(passed) from oidc.test_rules()").fetchone()[0] is True
    finally:
        superuser.execute("delete from oidc.rule_tests")
