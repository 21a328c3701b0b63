"""Connections and assertions shared by the end-to-end tests."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import mint  # noqa: E402

DB = os.environ.get("PGOIDC_E2E_DB", "oidc_e2e")
# Not `app_user`: roles are cluster-wide and the regression tests own that name.
APP_ROLE = "e2e_app"
SUPERUSER = os.environ.get("PGUSER", "postgres")
DOCS = [(1, "alice"), (2, "alice"), (3, "bob"), (4, "carol")]


def fresh_token(alg: str = "RS256", sub: str = "alice", *, kid: str | None = None, key: Any = None,
                headers: dict[str, Any] | None = None, **claims: Any) -> str:
    """A token minted now: iat = now and exp = now + 300 unless given (the make_token fixture)."""
    now = int(time.time())
    claims.setdefault("iss", mint.issuer_for(alg))
    iat, exp = claims.pop("iat", now), claims.pop("exp", now + 300)
    return mint.token(alg, kid, mint.claims(sub, iat=iat, exp=exp, **claims), headers, key)


def connect(dbname: str = DB, user: str = SUPERUSER, **kwargs: Any) -> psycopg.Connection:
    """Host and port come from the libpq environment that scripts/e2e.sh exports."""
    return psycopg.connect(dbname=dbname, user=user, autocommit=True, **kwargs)


def app_connect(**kwargs: Any) -> psycopg.Connection:
    return connect(user=APP_ROLE, **kwargs)


def sub_with(conn: psycopg.Connection, tok: str, query: str = "select oidc.sub()") -> Any:
    """Runs query in one transaction whose token is tok; returns the first column."""
    with conn.transaction():
        conn.execute("select set_config('oidc.token', %s, true)", (tok,))
        return conn.execute(query).fetchone()[0]


def secrets_in(text: str, tok: str) -> list[str]:
    """The pieces of tok, or of any test key, that appear in text."""
    pieces = [tok] + [seg for seg in tok.split(".") if len(seg) >= 16]
    keys = mint.jwks(public=False, kids=list(mint.KIDS))["keys"]
    keys.append(mint.key_to_jwk(mint.attacker_key(), public=False))
    for key in keys:
        pieces += [v for k, v in key.items()
                   if k not in ("kid", "alg", "use", "kty", "crv") and isinstance(v, str) and len(v) >= 16]
    return [p for p in pieces if p in text]


def error_text(err: psycopg.Error) -> str:
    d = err.diag
    return "\n".join(filter(None, [str(err), d.message_primary, d.message_detail, d.message_hint, d.context]))


def assert_rejected(conn: psycopg.Connection, tok: str, query: str = "select oidc.sub()") -> psycopg.Error:
    """tok is refused with SQLSTATE 28000, and the error gives away neither it nor a key."""
    with pytest.raises(psycopg.Error) as caught:
        sub_with(conn, tok, query)
    err = caught.value
    assert err.sqlstate == "28000", f"expected SQLSTATE 28000, got {err.sqlstate}: {err}"
    assert not secrets_in(error_text(err), tok), "the error text leaks the token or key material"
    return err


def server_log() -> str:
    path = os.environ.get("PGOIDC_LOG")
    if not path:
        pytest.fail("PGOIDC_LOG is not set; run the tests through scripts/e2e.sh")
    return Path(path).read_text(errors="replace")
