"""Decision audit: with `oidc.audit = all` (or `on`), each statement's distinct decisions reach
the server log as one JSON line each (who, what, decision, deciding rule, rows) — never a line
per row, never the token; `deny` logs denials only; off by default and superuser-only."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import psycopg
import pytest

LOG = Path(os.environ.get("PGOIDC_LOG", "/tmp/pg_oidc_authz/postgres.log"))
PREFIX = "pg_oidc_authz audit: "


def audit_lines(marker: str, deadline: float = 5.0) -> list[dict]:
    """The audit lines whose action carries `marker`, once the log has them."""
    end = time.monotonic() + deadline
    while True:
        found = []
        for line in LOG.read_text(errors="replace").splitlines():
            if PREFIX in line and marker in line:
                found.append(json.loads(line.split(PREFIX, 1)[1]))
        if found or time.monotonic() > end:
            return found
        time.sleep(0.05)


@pytest.fixture
def audited(superuser, issuer):
    superuser.execute("delete from oidc.rules")
    marker = f"read-{uuid.uuid4().hex[:8]}"
    superuser.execute(
        "insert into oidc.rules (name, effect, actions, resource_type, condition) values "
        "('audit-owner', 'permit', %s, 'doc', 'resource.owner == claims.sub'), "
        "('audit-no-bob', 'forbid', %s, 'doc', 'claims.sub == \"bob\"')",
        ([marker], [marker]),
    )
    yield marker
    superuser.execute("delete from oidc.rules")


def run_as_app(superuser, token: str, marker: str, audit: str | None = "on") -> int:
    """Decides over every row of docs (the superuser is not filtered by RLS), for the
    principal of `token`, with `oidc.audit` at `audit` (None: as configured)."""
    with superuser.transaction():
        if audit:
            superuser.execute(f"set local oidc.audit = '{audit}'")
        superuser.execute("set local log_min_messages = log")
        superuser.execute("select set_config('oidc.token', %s, true)", (token,))
        return superuser.execute(
            "select count(*) from docs d where oidc.allow(%s, 'doc', 'owner', d.owner)", (marker,)
        ).fetchone()[0]


def test_one_line_per_distinct_decision_with_row_counts(audited, superuser, make_token):
    marker = audited
    alice = make_token(sub="alice")
    assert run_as_app(superuser, alice, marker) == 2
    lines = sorted(audit_lines(marker), key=lambda l: l["decision"])
    assert [(l["decision"], l["rule"], l["rows"]) for l in lines] == [
        ("allow", "audit-owner", 2),
        ("deny", None, 2),
    ], lines
    for line in lines:
        assert line["sub"] == "alice" and line["iss"] == "https://issuer.test"
        assert line["resource_type"] == "doc" and line["statement_start"].endswith("Z")
    text = LOG.read_text(errors="replace")
    assert alice not in text and alice.split(".")[2] not in text


def test_a_forbid_is_named_as_the_deciding_rule(audited, superuser, make_token):
    marker = audited
    assert run_as_app(superuser, make_token(sub="bob"), marker) == 0
    lines = audit_lines(marker)
    assert [(l["decision"], l["rule"], l["rows"]) for l in lines] == [("deny", "audit-no-bob", 4)]


def test_off_by_default(audited, superuser, make_token):
    marker = audited
    run_as_app(superuser, make_token(sub="alice"), marker, audit=None)
    assert audit_lines(marker, deadline=0.5) == []


def test_the_deny_level_logs_denials_only(audited, superuser, make_token):
    marker = audited
    assert run_as_app(superuser, make_token(sub="alice"), marker, audit="deny") == 2
    assert [(l["decision"], l["rule"], l["rows"]) for l in audit_lines(marker)] == [("deny", None, 2)]
    assert run_as_app(superuser, make_token(sub="alice"), marker, audit="off") == 2
    with superuser.transaction():
        for value, shown in [("all", "all"), ("on", "on"), ("deny", "deny"), ("false", "false")]:
            superuser.execute(f"set local oidc.audit = '{value}'")  # `all` is a keyword
            assert superuser.execute("show oidc.audit").fetchone()[0] == shown
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            superuser.execute("set local oidc.audit = loud")


def test_a_plain_role_cannot_turn_it_off_or_on(app):
    # Once the library is loaded (before that, a value set by anyone is a placeholder that
    # loading discards; test_sessions.py shows that) the setting is superuser-only.
    app.execute("select oidc.sub()")
    for value in ("on", "off"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with app.transaction():
                app.execute(f"set oidc.audit = {value}")
    assert app.execute("show oidc.audit").fetchone()[0] == "off"
