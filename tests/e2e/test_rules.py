"""Rules as data, end to end: the multi-tenant document store of examples/rules with real
tokens (PyJWT) under RLS as the application role; each rule shown deciding; rule changes
crossing sessions; explain, replay, require; who may touch the rules."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from helpers import APP_ROLE, DB, app_connect
from services import pg_bindir

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rules" / "documents.sql"
ROWS = [
    # tenant, owner, title, labels
    ("acme", "alice", "alice plan", ["finance"]),
    ("acme", "alice", "alice notes", []),
    ("acme", "bob", "bob draft", ["eng"]),
    ("acme", "carol", "carol memo", ["eng", "finance"]),
    ("globex", "alice", "other tenant, same sub", ["finance"]),
]


@pytest.fixture
def documents(superuser, issuer):
    superuser.execute("delete from oidc.rule_tests")
    superuser.execute("delete from oidc.rules")
    superuser.execute("drop table if exists documents")
    subprocess.run(
        [pg_bindir() / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"app_role={APP_ROLE}", "-d", DB, "-f", str(EXAMPLE)],
        check=True, timeout=60, capture_output=True,
    )
    # The example's own rule tests, run once (test_the_example_ships_passing_rule_tests),
    # then set aside: the tests below change the rules.
    EXAMPLE_RULE_TESTS[:] = superuser.execute(
        "select name, passed, got from oidc.test_rules() order by name").fetchall()
    superuser.execute("delete from oidc.rule_tests")
    with superuser.cursor() as cur:
        cur.executemany(
            "insert into documents (tenant, owner, title, labels) values (%s, %s, %s, %s)", ROWS
        )
    # Writes are tested apart from the business-hours rule, whose decision depends on the
    # clock; that rule is shown deciding by replay at fixed times below.
    superuser.execute("update oidc.rules set enabled = false where name = 'business-hours'")
    yield
    superuser.execute("drop table if exists documents")
    superuser.execute("delete from oidc.rules")


EXAMPLE_RULE_TESTS: list[tuple] = []


def test_the_example_ships_passing_rule_tests(documents):
    assert len(EXAMPLE_RULE_TESTS) >= 10
    assert [name for name, passed, _ in EXAMPLE_RULE_TESTS if not passed] == []
    assert {got for _, _, got in EXAMPLE_RULE_TESTS} == {"allow", "deny"}


def titles(conn, token) -> list[str]:
    with conn.transaction():
        conn.execute("select set_config('oidc.token', %s, true)", (token,))
        return [r[0] for r in conn.execute("select title from documents order by title")]


def test_owner_access(documents, app, make_token):
    assert titles(app, make_token(sub="alice", tenant="acme")) == ["alice notes", "alice plan"]
    # Same sub in another tenant: owner-access requires the tenant to match too.
    assert titles(app, make_token(sub="alice", tenant="globex")) == ["other tenant, same sub"]


def test_tenant_wide_read_needs_the_scope(documents, app, make_token):
    reader = make_token(sub="dave", tenant="acme", scope="documents:read-all")
    assert titles(app, reader) == ["alice notes", "alice plan", "bob draft", "carol memo"]
    assert titles(app, make_token(sub="dave", tenant="acme", scope="documents:read")) == []


def test_label_sharing(documents, app, make_token):
    eng = make_token(sub="erin", tenant="acme", groups=["eng"])
    assert titles(app, eng) == ["bob draft", "carol memo"]
    fin = make_token(sub="frank", tenant="acme", groups=["finance", "x"])
    assert titles(app, fin) == ["alice plan", "carol memo"]


def test_suspended_users_are_forbidden_everything(documents, app, make_token):
    suspended = make_token(sub="alice", tenant="acme", suspended=True, scope="documents:read-all")
    assert titles(app, suspended) == []


def test_anonymous_sees_nothing(documents, app):
    with app.transaction():
        assert app.execute("select count(*) from documents").fetchone()[0] == 0


def test_writes_are_checked(documents, app, make_token):
    alice = make_token(sub="alice", tenant="acme")
    with app.transaction():
        app.execute("select set_config('oidc.token', %s, true)", (alice,))
        app.execute("insert into documents (tenant, owner, title) values ('acme', 'alice', 'new')")
        assert app.execute("update documents set body = 'x' where title = 'alice plan'").rowcount == 1
        # bob's document is invisible to alice's update (USING) ...
        assert app.execute("update documents set body = 'x' where title = 'bob draft'").rowcount == 0
    # ... and creating one in bob's name fails WITH CHECK.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with app.transaction():
            app.execute("select set_config('oidc.token', %s, true)", (alice,))
            app.execute("insert into documents (tenant, owner, title) values ('acme', 'bob', 'forged')")
    # A reader with the tenant-wide scope reads but cannot update.
    reader = make_token(sub="dave", tenant="acme", scope="documents:read-all")
    with app.transaction():
        app.execute("select set_config('oidc.token', %s, true)", (reader,))
        assert app.execute("update documents set body = 'y'").rowcount == 0


def test_a_rule_change_reaches_other_sessions_next_transaction(documents, superuser, make_token):
    eng = make_token(sub="erin", tenant="acme", groups=["eng"])
    with app_connect() as other:
        assert titles(other, eng) == ["bob draft", "carol memo"]
        superuser.execute("update oidc.rules set enabled = false where name = 'label-sharing'")
        assert titles(other, eng) == []
        superuser.execute("update oidc.rules set enabled = true where name = 'label-sharing'")
        assert titles(other, eng) == ["bob draft", "carol memo"]


def test_an_uncommitted_rule_change_is_not_seen(documents, superuser, make_token):
    eng = make_token(sub="erin", tenant="acme", groups=["eng"])
    with app_connect() as other:
        with superuser.transaction():
            superuser.execute("delete from oidc.rules where name = 'label-sharing'")
            assert titles(other, eng) == ["bob draft", "carol memo"]
            raise_rollback = psycopg.Rollback()
            raise raise_rollback
        assert titles(other, eng) == ["bob draft", "carol memo"]


def test_business_hours_by_replay_at_fixed_times(documents, superuser):
    superuser.execute("update oidc.rules set enabled = true where name = 'business-hours'")
    claims = Jsonb({"iss": "https://issuer.test", "sub": "alice", "tenant": "acme"})
    resource = Jsonb({"owner": "alice", "tenant": "acme", "labels": []})

    def decision(at: str) -> dict:
        return superuser.execute(
            "select oidc.replay(%s, 'update', 'document', %s, %s::timestamptz, rules => 'current')",
            (claims, resource, at)
        ).fetchone()[0]

    open_ = decision("2026-11-27T10:00:00+01:00")  # Friday 10:00 Berlin
    assert open_["decision"] == "allow", open_
    late = decision("2026-11-27T19:30:00+01:00")  # Friday 19:30 Berlin
    assert late["decision"] == "deny" and late["forbids"] == ["business-hours"], late
    weekend = decision("2026-11-28T10:00:00+01:00")  # Saturday
    assert weekend["forbids"] == ["business-hours"], weekend
    assert late["at"] == "2026-11-27T18:30:00Z"


def test_explain_says_why_and_never_contains_the_token(documents, app, make_token):
    erin = make_token(sub="erin", tenant="acme", groups=["eng"])
    with app.transaction():
        app.execute("select set_config('oidc.token', %s, true)", (erin,))
        ex = app.execute(
            "select oidc.explain('read', 'document', jsonb_build_object("
            "'owner', 'bob', 'tenant', 'acme', 'labels', array['eng']))"
        ).fetchone()[0]
    assert ex["decision"] == "allow"
    assert ex["permits"] == ["label-sharing"]
    assert "owner-access" in ex["not_held"]
    assert ex["principal"] == {"issuer": "https://issuer.test", "sub": "erin"}
    assert "claims.groups" in ex["reads"] and "resource.labels" in ex["reads"]
    assert erin not in str(ex) and erin.split(".")[2] not in str(ex)


def test_an_erroring_forbid_denies_and_explain_reports_it(documents, superuser, app, make_token):
    # Without the has() guard, a token lacking the optional claim makes the forbid error.
    superuser.execute(
        "insert into oidc.rules (name, effect, actions, resource_type, condition) "
        "values ('unguarded', 'forbid', '{read}', 'document', 'claims.banned == true')"
    )
    alice = make_token(sub="alice", tenant="acme")
    assert titles(app, alice) == []
    with app.transaction():
        app.execute("select set_config('oidc.token', %s, true)", (alice,))
        ex = app.execute(
            "select oidc.explain('read', 'document', '{\"owner\":\"alice\",\"tenant\":\"acme\",\"labels\":[]}')"
        ).fetchone()[0]
    assert ex["decision"] == "deny" and "unguarded" in ex["forbids"]
    assert ex["errors"] == [{"rule": "unguarded", "effect": "forbid", "error": "no such key `banned`"}]


def test_require_raises_42501_with_the_explanation(documents, app, make_token):
    bob = make_token(sub="bob", tenant="acme")
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as denied:
        with app.transaction():
            app.execute("select set_config('oidc.token', %s, true)", (bob,))
            app.execute("select oidc.require('delete', 'document', '{\"owner\":\"alice\",\"tenant\":\"acme\"}')")
    assert "permission denied: `delete` on `document`" in str(denied.value)
    assert '"decision":"deny"' in (denied.value.diag.message_detail or "")
    with app.transaction():
        app.execute("select set_config('oidc.token', %s, true)", (bob,))
        app.execute("select oidc.require('delete', 'document', '{\"owner\":\"bob\",\"tenant\":\"acme\"}')")


def test_rules_are_admin_only(documents, app):
    for statement in [
        "select * from oidc.rules",
        "insert into oidc.rules (name, effect, resource_type) values ('mine', 'permit', '*')",
        "update oidc.rules set enabled = false",
        "delete from oidc.rules",
        "select oidc.replay('{}', 'read', 'document')",
    ]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with app.transaction():
                app.execute(statement)


def test_a_bad_rule_is_refused_with_its_position_and_stores_nothing(documents, superuser):
    with pytest.raises(psycopg.errors.InvalidParameterValue) as bad:
        superuser.execute(
            "insert into oidc.rules (name, effect, actions, resource_type, condition) "
            "values ('typo', 'permit', '{read}', 'document', 'resource.owner == user.sub')"
        )
    assert "unknown variable `user`" in str(bad.value) and "line 1, column 19" in str(bad.value)
    assert superuser.execute("select count(*) from oidc.rules where name = 'typo'").fetchone()[0] == 0


def test_pairs_and_jsonb_resources_decide_alike(superuser, issuer, make_token):
    """The name/value-pair form reads arrays in place for label checks; the jsonb form
    converts them. Same rules, same resources: the same decisions, errors included."""
    superuser.execute("delete from oidc.rules")
    conditions = {
        "any": "resource.labels.exists(l, l in claims.groups)",
        "every": "resource.labels.all(l, l in claims.groups)",
        "literal": "resource.labels.exists(l, l in ['eng', 'ops'])",
        "map": "resource.labels.exists(l, l in {'eng': 1})",
        "bad-set": "resource.labels.exists(l, l in claims.sub)",
        "missing-set": "resource.labels.all(l, l in claims.nope)",
        "numbers": "resource.levels.exists(n, n in [2, 3])",
        "eq": "resource.owner == claims.sub",
        "ne": "'alice' != resource.owner",
        "eq-int": "resource.owner == 1",
        # The same checks in shapes no shortcut takes: the general path, for comparison.
        "any-general": "resource.labels.exists(l, l in claims.groups || false)",
        "every-general": "resource.labels.all(l, l in claims.groups && true)",
        "eq-general": "dyn(resource.owner) == claims.sub",
    }
    general = {"any": "any-general", "every": "every-general", "eq": "eq-general"}
    with superuser.cursor() as cur:
        cur.executemany(
            "insert into oidc.rules (name, effect, actions, resource_type, condition) values (%s, 'permit', %s, 'doc', %s)",
            [(name, [name], cond) for name, cond in conditions.items()],
        )
    arrays = ["array['eng']", "array['x', 'ops']", "array['x']", "array[]::text[]",
              "array['eng', null]", "array[null]::text[]", "array['ops', 'eng']", "null::text[]"]
    owners = ["'alice'::text", "'bob'::varchar", "'alice'::name", "'alice'::bpchar", "null::text", "1"]
    tok = make_token(sub="alice", groups=["eng", "ops"])
    try:
        with superuser.transaction():
            superuser.execute("select set_config('oidc.token', %s, true)", (tok,))
            for action in conditions:
                for arr, owner in [(a, o) for a in arrays for o in owners]:
                    pairs, as_jsonb = superuser.execute(
                        f"select oidc.allow(%s, 'doc', 'labels', {arr}, 'levels', array[1, 3], 'owner', {owner}),"
                        f" oidc.allow(%s, 'doc', jsonb_build_object('labels', {arr}, 'levels', array[1, 3],"
                        f" 'owner', {owner}))",
                        (action, action),
                    ).fetchone()
                    assert pairs == as_jsonb, (action, arr, owner, pairs, as_jsonb)
                    if action in general:
                        reference = superuser.execute(
                            f"select oidc.allow(%s, 'doc', jsonb_build_object('labels', {arr},"
                            f" 'levels', array[1, 3], 'owner', {owner}))",
                            (general[action],),
                        ).fetchone()[0]
                        assert pairs == reference, (action, arr, owner, pairs, reference)
    finally:
        superuser.execute("delete from oidc.rules")


def test_plpgsql_variables_are_read_on_every_call(superuser, issuer):
    """A PL/pgSQL variable is a parameter that changes between calls of one cached expression
    (loops, trigger invocations): only literal actions, types and names may be kept at the
    call site."""
    superuser.execute("delete from oidc.rules")
    superuser.execute(
        "insert into oidc.rules (name, effect, actions, resource_type, condition) values "
        "('reads', 'permit', '{read}', 'doc', 'has(resource.owner)')"
    )
    superuser.execute(
        "create or replace function pg_temp.decide_each(actions text[], names text[]) returns text[] "
        "language plpgsql as $$ declare a text; n text; r text[] := '{}'; begin "
        "foreach a in array actions loop foreach n in array names loop "
        "r := r || (a || '/' || n || '=' || oidc.allow(a, 'doc', n, 'bob'::text)); "
        "end loop; end loop; return r; end $$"
    )
    try:
        for actions in (["read", "delete"], ["delete", "read"]):
            got = superuser.execute(
                "select pg_temp.decide_each(%s, array['owner', 'x'])", (actions,)
            ).fetchone()[0]
            want = {"read/owner=true", "read/x=false", "delete/owner=false", "delete/x=false"}
            assert set(got) == want, (actions, got)
    finally:
        superuser.execute("delete from oidc.rules")


def test_infinite_timestamps_compare_as_the_ends_of_time(superuser, issuer):
    superuser.execute("delete from oidc.rules")
    superuser.execute(
        "insert into oidc.rules (name, effect, actions, resource_type, condition) values "
        "('embargo', 'permit', '{read}', 'doc', 'resource.until < context.time')"
    )
    try:
        got = superuser.execute(
            "select oidc.allow('read', 'doc', 'until', 'infinity'::timestamptz),"
            " oidc.allow('read', 'doc', 'until', '-infinity'::timestamptz),"
            " oidc.allow('read', 'doc', 'until', '2999-01-01'::timestamptz),"
            " oidc.allow('read', 'doc', 'until', '2000-01-01'::timestamptz),"
            " oidc.replay('{}', 'read', 'doc', '{\"until\": \"x\"}', 'infinity', 'current') ->> 'at'"
        ).fetchone()
        assert got == (False, True, False, True, "9999-12-31T23:59:59.999999999Z"), got
    finally:
        superuser.execute("delete from oidc.rules")


def test_allowed_actions_agrees_with_allow_for_every_action(documents, superuser, make_token):
    """For UIs that show or hide buttons: the actions `allow` grants, per principal and row,
    in both resource forms; none for an anonymous caller, a NULL type or an unknown type."""
    actions = ["create", "delete", "read", "update"]
    principals = [
        make_token(sub="alice", tenant="acme"),
        make_token(sub="dave", tenant="acme", scope="documents:read-all"),
        make_token(sub="erin", tenant="acme", groups=["eng"]),
        make_token(sub="alice", tenant="acme", suspended=True),
        None,
    ]
    pairs = "'owner', owner, 'tenant', tenant, 'labels', labels"
    obj = "jsonb_build_object('owner', owner, 'tenant', tenant, 'labels', labels)"
    checked = set()
    for tok in principals:
        with superuser.transaction():
            if tok:
                superuser.execute("select set_config('oidc.token', %s, true)", (tok,))
            rows = superuser.execute(
                f"select title, oidc.allowed_actions('document', {pairs}), oidc.allowed_actions('document', {obj}),"
                f" array[{', '.join(f'oidc.allow({a!r}, {chr(39)}document{chr(39)}, {pairs})' for a in actions)}]"
                " from (select * from documents) d order by title").fetchall()
            # Every row (a superuser is not subject to RLS), decided per action above.
            for title, by_pairs, by_object, allowed in rows:
                expected = [a for a, ok in zip(actions, allowed) if ok]
                assert by_pairs == expected and by_object == expected, (title, tok and tok[:20])
                checked.add(tuple(expected))
            assert superuser.execute("select oidc.allowed_actions(null), oidc.allowed_actions('nothing', '{}')"
                               ).fetchone() == ([], [])
    assert len(checked) >= 2, checked
