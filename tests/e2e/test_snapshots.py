"""A configuration change must reach a session at its next transaction also when the session
reloaded the configuration inside a REPEATABLE READ transaction, whose snapshot predates the
change: what such a transaction loaded is dropped at its end."""

from __future__ import annotations

import psycopg
import pytest

from helpers import app_connect, mint


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_a_reload_under_an_old_snapshot_does_not_outlive_its_transaction(issuer, superuser, make_token, isolation):
    tok = make_token()
    with app_connect() as conn:
        with conn.transaction():
            conn.execute(f"set transaction isolation level {isolation}")
            conn.execute("select set_config('oidc.token', %s, true)", (tok,))
            assert conn.execute("select oidc.sub()").fetchone()[0] == "alice"
            superuser.execute("update oidc.issuers set enabled = false where issuer = %s", (mint.ISSUER,))
            # A lock on a relation not used yet processes the invalidation; the reload that
            # follows sees the transaction's snapshot, from before the change.
            conn.execute("select count(*) from pg_catalog.pg_am").fetchone()
            assert conn.execute("select oidc.sub()").fetchone()[0] == "alice"
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification) as refused:
            with conn.transaction():
                conn.execute("select set_config('oidc.token', %s, true)", (tok,))
                conn.execute("select oidc.sub()")
        assert "not configured" in str(refused.value)
