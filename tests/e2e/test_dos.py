"""Oversized and deeply nested tokens are refused cleanly: SQLSTATE 28000, no crash, no hang.

statement_timeout guards against a hang without asserting on elapsed time."""

import re
import time

import psycopg
import pytest

from helpers import APP_ROLE, assert_rejected, error_text, mint, sub_with

SIZE_WORDS = re.compile(r"size|bytes|too (large|long|big)", re.IGNORECASE)
DEPTH = 10_000


def test_one_megabyte_token_is_rejected_by_size(app, make_token):
    tok = make_token(padding="x" * 1_000_000)
    app.execute("set statement_timeout = '5s'")
    err = assert_rejected(app, tok)
    assert SIZE_WORDS.search(error_text(err)), error_text(err)
    assert app.execute("select 1").fetchone()[0] == 1


@pytest.fixture
def big_limit_app(superuser, issuer):
    """The superuser connection acting as the app role with a raised size limit, so that depth,
    not size, is what a nested token runs into."""
    superuser.execute("set oidc.max_token_bytes = 100000")
    superuser.execute("set statement_timeout = '5s'")
    superuser.execute(f"set role {APP_ROLE}")
    yield superuser
    superuser.execute("reset role")


def test_raised_limit_accepts_a_large_flat_token(big_limit_app, make_token):
    assert sub_with(big_limit_app, make_token(padding="x" * 40_000)) == "alice"


@pytest.mark.parametrize("where", ["payload", "header"])
def test_deeply_nested_json_is_rejected(big_limit_app, where):
    nested = "[" * DEPTH + "]" * DEPTH
    t = int(time.time())
    payload = (f'{{"iss":"{mint.ISSUER}","sub":"alice","aud":"{mint.AUDIENCE}","iat":{t},"exp":{t + 300}'
               + (f',"deep":{nested}}}' if where == "payload" else "}"))
    header = '{"alg":"RS256","kid":"rs256"' + (f',"deep":{nested}}}' if where == "header" else "}")
    tok = mint.assemble(header.encode(), payload.encode(), "RS256", mint.signing_key("rs256"))
    assert len(tok) < 100_000
    assert_rejected(big_limit_app, tok)
    assert big_limit_app.execute("select 1").fetchone()[0] == 1


def test_a_lowered_size_limit_applies_to_an_already_verified_token(superuser, issuer, make_token):
    tok = make_token(padding="p" * 1500)
    assert len(tok) > 1024
    with superuser.transaction():
        superuser.execute("select set_config('oidc.token', %s, true)", (tok,))
        assert superuser.execute("select oidc.sub()").fetchone()[0] == "alice"
        superuser.execute("set local oidc.max_token_bytes = 1024")
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification) as refused:
            superuser.execute("select oidc.sub()")
        assert "over the limit of 1024" in str(refused.value)
