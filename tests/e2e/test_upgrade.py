"""ALTER EXTENSION pg_oidc_authz UPDATE from 0.1.0 (the first release, sql/pg_oidc_authz--0.1.0.sql
as pgrx generated it) gives the schema a fresh install of today's version has, keeps the
configuration, and decides as before: the same tokens see the same rows through the same
policies, which were never dropped (the configuration is tests/e2e/deployment.py's).

A schema change that the upgrade script does not make shows here as a difference between
the two catalogs (tests/e2e/catalog.py): every schema change extends
sql/pg_oidc_authz--<previous>--<next>.sql and, where it adds behaviour worth keeping across
an upgrade, this test (README "Upgrade").
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from catalog import extension_schema
from deployment import RULES, assert_decides, configure, drop, recreate, visible
from helpers import APP_ROLE, connect, fresh_token, mint

UPGRADED = "oidc_e2e_upgraded"
FRESH = "oidc_e2e_fresh"
FIRST_RELEASE = "0.1.0"

ISSUER_COLUMNS = ("issuer, audiences, jwks, algorithms, leeway, required_typ, roles_claim, scopes_claim,"
                  " enabled, comment, updated_at")
RULE_COLUMNS = "name, effect, actions, resource_type, condition, description, enabled, updated_at"


@dataclass(frozen=True)
class Upgraded:
    issuers: list[tuple]
    rules: list[tuple]
    policies: list[tuple]


@pytest.fixture(scope="module")
def upgraded(database) -> Iterator[Upgraded]:
    """A database installed at 0.1.0, configured, then updated to today's version."""
    recreate(UPGRADED)
    try:
        with connect(UPGRADED) as su:
            su.execute(sql.SQL("create extension pg_oidc_authz version {}").format(sql.Literal(FIRST_RELEASE)))
            configure(su)
            issuers = su.execute(f"select {ISSUER_COLUMNS} from oidc.issuers order by issuer").fetchall()
            rules = su.execute(f"select {RULE_COLUMNS} from oidc.rules order by name").fetchall()
            policies = su.execute("select tablename, policyname, qual from pg_policies"
                                  " where schemaname = 'public' order by tablename").fetchall()
        # The window between installing the new library and the update: the old schema on
        # the new library still verifies and decides.
        assert_decides(UPGRADED, fresh_token)
        with connect(UPGRADED) as su:
            su.execute("alter extension pg_oidc_authz update")
        yield Upgraded(issuers, rules, policies)
    finally:
        drop(UPGRADED)


def test_the_first_release_installs_beside_the_current_one(database):
    with connect() as su:
        versions = dict(su.execute("select version, superuser from pg_available_extension_versions"
                                   " where name = 'pg_oidc_authz'").fetchall())
        default = su.execute("select default_version from pg_available_extensions"
                             " where name = 'pg_oidc_authz'").fetchone()[0]
        assert FIRST_RELEASE in versions and default in versions and default != FIRST_RELEASE
        path = su.execute("select array_agg(v order by ord) from pg_extension_update_paths('pg_oidc_authz') p,"
                          " unnest(string_to_array(p.path, '--')) with ordinality as u(v, ord)"
                          " where p.source = %s and p.target = %s", (FIRST_RELEASE, default)).fetchone()[0]
        assert path is not None and path[0] == FIRST_RELEASE and path[-1] == default, path


def test_the_updated_schema_is_a_fresh_install(upgraded):
    recreate(FRESH)
    try:
        with connect(FRESH) as su:
            su.execute("create extension pg_oidc_authz")
            fresh = extension_schema(su)
        with connect(UPGRADED) as su:
            assert su.execute("select extversion from pg_extension where extname = 'pg_oidc_authz'"
                              ).fetchone()[0] == su.execute("select default_version from pg_available_extensions"
                                                            " where name = 'pg_oidc_authz'").fetchone()[0]
            updated = extension_schema(su)
    finally:
        drop(FRESH)
    diff = list(difflib.unified_diff(fresh, updated, "fresh install", "updated from 0.1.0", lineterm="", n=1))
    assert not diff, "the upgrade script does not give a fresh install's schema:\n" + "\n".join(diff)


def test_rows_and_policies_are_kept(upgraded):
    with connect(UPGRADED) as su:
        assert su.execute(f"select {ISSUER_COLUMNS} from oidc.issuers order by issuer").fetchall() == upgraded.issuers
        assert su.execute(f"select {RULE_COLUMNS} from oidc.rules order by name").fetchall() == upgraded.rules
        # The new columns have the defaults that mean what 0.1.0 did: keys from the table,
        # no logout tokens.
        assert su.execute("select bool_and(not discovery and logout_audiences is null) from oidc.issuers"
                          ).fetchone()[0] is True
        assert su.execute("select tablename, policyname, qual from pg_policies"
                          " where schemaname = 'public' order by tablename").fetchall() == upgraded.policies


def test_tokens_and_rules_still_decide(upgraded, make_token):
    assert_decides(UPGRADED, make_token)


def test_what_0_2_0_adds_works_on_the_kept_configuration(upgraded, make_token):
    """History starts with the rules in force, rule tests gate changes, revocation refuses."""
    with connect(UPGRADED) as su:
        now = su.execute("select now()").fetchone()[0]
        replay = ("select oidc.replay(%s, 'read', 'doc', %s, %s, %s) ->> 'decision'")
        for rules in ("at", "current"):
            assert su.execute(replay, (Jsonb({"sub": "alice"}), Jsonb({"owner": "alice"}), now, rules)
                              ).fetchone()[0] == "allow", rules
        # Each rule's history starts at its last change (0.1.0 kept nothing older).
        assert su.execute("select count(*) from oidc.rules_history h join oidc.rules r using (name)"
                          " where h.valid_from = r.updated_at and h.valid_to is null").fetchone()[0] == len(RULES)
        su.execute("insert into oidc.rule_tests (name, claims, action, resource_type, resource, expect, expect_rule)"
                   " values ('carol is frozen', '{\"sub\": \"carol\"}', 'read', 'doc', '{\"owner\": \"carol\"}',"
                   " 'deny', 'frozen')")
        assert su.execute("select bool_and(passed), count(*) from oidc.test_rules()").fetchone() == (True, 1)
        with pytest.raises(psycopg.errors.CheckViolation):
            su.execute("delete from oidc.rules where name = 'frozen'")
        su.execute("delete from oidc.rule_tests")
        su.execute("select oidc.revoke_subject(%s, 'bob')", (mint.ISSUER,))
    with connect(UPGRADED, user=APP_ROLE) as app:
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            visible(app, make_token(sub="bob", iat=int(now.timestamp()) - 60), "docs_pairs")
    with connect(UPGRADED) as su:
        su.execute("delete from oidc.revocations")
    assert_decides(UPGRADED, make_token)
