"""Tokens never reach the server log: with the library preloaded (as the test cluster does),
the emit_log_hook blots out anything shaped like a compact JWS in every line — statements
logged by log_statement or log_min_duration_statement, their bind parameters, error messages
and the STATEMENT line of a failing statement."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from helpers import connect, secrets_in

REDACTED = "[redacted token]"


def log_since(offset: int) -> str:
    path = Path(os.environ["PGOIDC_LOG"])
    deadline = time.monotonic() + 5
    # The logger writes asynchronously (logging collector off: the backend writes itself,
    # but give the file a moment).
    while True:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        if REDACTED in text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def log_size() -> int:
    return Path(os.environ["PGOIDC_LOG"]).stat().st_size


def test_the_library_is_preloaded(superuser):
    assert "pg_oidc_authz" in superuser.execute("show shared_preload_libraries").fetchone()[0]


@pytest.mark.parametrize("setting", ["log_statement = 'all'", "log_min_duration_statement = 0"])
def test_bound_and_inline_tokens_are_redacted(issuer, make_token, setting):
    tok = make_token()
    start = log_size()
    with connect() as conn:
        conn.execute(f"set {setting}")
        conn.execute("set log_parameter_max_length = -1")
        with conn.transaction():
            # A bind parameter (logged as DETAIL: parameters: $1 = '…').
            conn.execute("select set_config('oidc.token', %s, true)", (tok,))
            assert conn.execute("select oidc.sub()").fetchone()[0] == "alice"
        # Inline in the statement text, and in a request.headers value.
        conn.execute(sql.SQL("select set_config('oidc.token', {}, false)").format(sql.Literal(tok)))
        conn.execute("reset oidc.token")
        conn.execute(sql.SQL("select length({})").format(sql.Literal(f'{{"authorization": "Bearer {tok}"}}')))
        # Glued to what comes before it, without a separator.
        conn.execute(sql.SQL("select length({}), length({})").format(
            sql.Literal("x" + tok), sql.Literal("Bearer%20" + tok)))
    text = log_since(start)
    assert REDACTED in text, text
    assert not secrets_in(text, tok), text


def test_a_failing_statement_with_a_token_is_redacted(issuer, make_token):
    tok = make_token()
    start = log_size()
    with connect() as conn:
        # The error message quotes the value, and the STATEMENT line repeats the statement.
        with pytest.raises(psycopg.errors.InvalidTextRepresentation) as caught:
            conn.execute(sql.SQL("select {}::int").format(sql.Literal(tok)))
        # What the client gets is redacted as well.
        assert tok not in str(caught.value) and REDACTED in str(caught.value)
        # A statement error inside a function: the context and the internal query too.
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            conn.execute(sql.SQL("do $$ begin perform {}::int; end $$").format(sql.Literal(tok)))
    text = log_since(start)
    assert "STATEMENT:" in text and REDACTED in text, text
    assert not secrets_in(text, tok), text


def test_a_huge_log_line_costs_no_more_than_its_copy(superuser):
    """Redacting never allocates in proportion to dots (one pass, no per-segment state):
    a 5 MB value of dots in an error message is logged, and the backend survives."""
    with connect() as conn:
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            conn.execute("select repeat('.', 5000000)::int")
        assert conn.execute("select 1").fetchone()[0] == 1
    rss = superuser.execute("select 1").fetchone()[0]
    assert rss == 1


def test_redacting_frees_what_it_replaces(issuer, make_token):
    """A session that logs tokens and raises no error does not grow: each replaced text is
    freed (ErrorContext is otherwise reset only by the next ERROR)."""
    tok = make_token()
    with connect() as conn:
        conn.execute("set client_min_messages = error")

        def error_context() -> int:
            return conn.execute("select coalesce(sum(total_bytes), 0) from pg_backend_memory_contexts"
                                " where name = 'ErrorContext'").fetchone()[0]

        before = error_context()
        conn.execute(sql.SQL("do $$ begin for i in 1..5000 loop raise warning 'w %', {}; end loop; end $$")
                     .format(sql.Literal(tok)))
        assert error_context() - before < 256 * 1024
