"""Time claims against the wall clock, with the issuer's leeway (30 s in these tests)."""

import time

import psycopg
import pytest

from helpers import assert_rejected, sub_with


def now() -> int:
    return int(time.time())


def test_expired_beyond_leeway_is_rejected(app, issuer, make_token):
    assert_rejected(app, make_token(iat=now() - 600, exp=now() - (issuer.leeway + 1)))


def test_expired_within_leeway_is_accepted(app, issuer, make_token):
    assert sub_with(app, make_token(iat=now() - 600, exp=now() - (issuer.leeway - 5))) == "alice"


def test_leeway_comes_from_the_issuer_row(superuser, app, make_token):
    tok = make_token(iat=now() - 600, exp=now() - 240)
    assert_rejected(app, tok)
    superuser.execute("update oidc.issuers set leeway = '5 minutes'")
    assert sub_with(app, tok) == "alice"


def test_not_yet_valid_is_rejected(app, issuer, make_token):
    assert_rejected(app, make_token(nbf=now() + issuer.leeway + 60))


def test_nbf_within_leeway_is_accepted(app, issuer, make_token):
    assert sub_with(app, make_token(nbf=now() + issuer.leeway - 5)) == "alice"


def test_issued_in_the_future_is_rejected(app, issuer, make_token):
    iat = now() + issuer.leeway + 60
    assert_rejected(app, make_token(iat=iat, exp=iat + 300))


def test_token_expiring_inside_an_open_transaction(superuser, app, make_token):
    # Expiry is checked at each use, not once per transaction or per cache entry.
    superuser.execute("update oidc.issuers set leeway = '0 seconds'")
    tok = make_token(exp=now() + 2)
    with pytest.raises(psycopg.Error) as caught:
        with app.transaction():
            app.execute("select set_config('oidc.token', %s, true)", (tok,))
            assert app.execute("select oidc.sub()").fetchone()[0] == "alice"
            time.sleep(3)
            app.execute("select oidc.sub()")
    assert caught.value.sqlstate == "28000"
