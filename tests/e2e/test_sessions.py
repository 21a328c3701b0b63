"""The token belongs to one transaction; cached plans and configuration changes respect that;
a login role cannot loosen the superuser-only settings."""

import psycopg
import pytest
from psycopg.types.json import Jsonb

from helpers import APP_ROLE, app_connect, assert_rejected, mint, sub_with

SUPERUSER_SETTINGS = [
    ("oidc.max_token_bytes", "10", "16384"),
    ("oidc.header_fallback", "off", "on"),
    ("oidc.cache_size", "0", "1000"),
]


def setting(conn, name):
    """The raw value (no unit); a leftover placeholder's value if the library defined nothing."""
    return conn.execute(
        "select coalesce((select setting from pg_settings where name = %s), current_setting(%s, true))",
        (name, name),
    ).fetchone()[0]


def visible_ids(conn, tok, query="select array_agg(id order by id) from docs"):
    return sub_with(conn, tok, query)


def test_token_is_gone_in_the_next_transaction(app, make_token):
    assert sub_with(app, make_token(sub="alice")) == "alice"
    assert app.execute("select oidc.sub()").fetchone()[0] is None
    assert app.execute("select count(*) from docs").fetchone()[0] == 0


def test_generic_plan_sees_each_tokens_rows(app, make_token):
    app.execute("set plan_cache_mode = force_generic_plan")
    app.execute("prepare my_docs as select array_agg(id order by id) from docs")
    assert visible_ids(app, make_token(sub="alice"), "execute my_docs") == [1, 2]
    assert visible_ids(app, make_token(sub="bob"), "execute my_docs") == [3]
    assert app.execute("execute my_docs").fetchone()[0] is None
    # the same through the driver's own server-side prepared statement
    for sub, ids in [("alice", [1, 2]), ("bob", [3]), ("carol", [4])]:
        with app.transaction():
            app.execute("select set_config('oidc.token', %s, true)", (make_token(sub=sub),))
            row = app.execute("select array_agg(id order by id) from docs where id > %s", (0,),
                              prepare=True).fetchone()
        assert row[0] == ids


PAR_ROWS = 40_000
PAR_OWNERS = ["alice", "bob", "carol", "dave"]  # row i belongs to PAR_OWNERS[i % 4]
PARALLEL = [("parallel_setup_cost", "0"), ("parallel_tuple_cost", "0"), ("min_parallel_table_scan_size", "0"),
            ("max_parallel_workers_per_gather", "2"),
            # only the workers scan, so only the workers evaluate the policy
            ("parallel_leader_participation", "off")]
PAR_QUERY = "select count(*), sum(id) from par_docs"


@pytest.fixture
def par_docs(superuser):
    superuser.execute("drop table if exists par_docs")
    superuser.execute("create table par_docs (id int not null, owner text not null)")
    superuser.execute("insert into par_docs select i, (%s::text[])[i %% 4 + 1] from generate_series(1, %s) i",
                      (PAR_OWNERS, PAR_ROWS))
    superuser.execute("alter table par_docs enable row level security")
    superuser.execute("alter table par_docs force row level security")
    superuser.execute("create policy own on par_docs for select using (owner = oidc.sub())")
    superuser.execute(f"grant select on par_docs to {APP_ROLE}")
    superuser.execute("analyze par_docs")
    yield
    superuser.execute("drop table par_docs")


def expected_par(sub):
    ids = [i for i in range(1, PAR_ROWS + 1) if PAR_OWNERS[i % 4] == sub]
    return (len(ids), sum(ids)) if ids else (0, None)


def nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def test_parallel_workers_see_the_same_token(app, make_token, par_docs):
    # Settings, the token among them, are copied into parallel workers; the accessors are
    # PARALLEL SAFE, so a worker must verify the same token and filter the same rows.
    assert app.execute("select bool_and(proparallel = 's') from pg_proc where pronamespace = 'oidc'::regnamespace"
                       " and proname in ('sub', 'uid', 'claims', 'claim', 'has_scope', 'roles')").fetchone()[0]
    for sub in ["alice", "bob"]:
        tok = make_token(sub=sub)
        with app.transaction():
            app.execute("select set_config('oidc.token', %s, true)", (tok,))
            app.execute("set local max_parallel_workers_per_gather = 0")
            serial_plan = app.execute("explain (format json) " + PAR_QUERY).fetchone()[0][0]["Plan"]
            serial = app.execute(PAR_QUERY).fetchone()
        with app.transaction():
            app.execute("select set_config('oidc.token', %s, true)", (tok,))
            for name, value in PARALLEL:
                app.execute("select set_config(%s, %s, true)", (name, value))
            plan = app.execute("explain (analyze, verbose, format json) " + PAR_QUERY).fetchone()[0][0]["Plan"]
            parallel = app.execute(PAR_QUERY).fetchone()
        assert not any("Gather" in n["Node Type"] for n in nodes(serial_plan)), serial_plan
        assert serial == parallel == expected_par(sub), (sub, serial, parallel)

        gather = next(n for n in nodes(plan) if n["Node Type"] == "Gather")
        scan = next(n for n in nodes(plan) if n["Node Type"] == "Seq Scan")
        assert gather["Workers Launched"] > 0, plan
        assert scan["Parallel Aware"] and scan["Relation Name"] == "par_docs", scan
        assert "oidc.sub()" in scan["Filter"], scan
        # Every matching row was found by a worker (the leader did not scan).
        assert sum(w["Actual Rows"] for w in scan["Workers"]) == expected_par(sub)[0], scan

    # Anonymous and rejected tokens behave the same in a parallel plan.
    for name, value in PARALLEL:
        app.execute(f"set {name} = {value}")
    assert app.execute(PAR_QUERY).fetchone() == (0, None)
    err = assert_rejected(app, make_token(key=mint.attacker_key(), kid="rs256"), PAR_QUERY)
    assert "signature" in str(err)


def without_kid(conn, kid):
    conn.execute(
        "update oidc.issuers set jwks = jsonb_build_object('keys',"
        " (select jsonb_agg(k) from jsonb_array_elements(jwks -> 'keys') k where k ->> 'kid' <> %s))"
        " where issuer = %s",
        (kid, mint.ISSUER),
    )


def test_removed_key_is_refused_by_other_connections_once_committed(superuser, app, make_token):
    tok = make_token("RS384")
    assert sub_with(app, tok) == "alice"
    with superuser.transaction():
        without_kid(superuser, "rs384")
        assert sub_with(app, tok) == "alice", "an uncommitted change must not be visible"
    assert_rejected(app, tok)
    assert sub_with(app, make_token("RS256")) == "alice"


def test_added_key_is_accepted_by_other_connections(superuser, app, make_token):
    tok = make_token("RS256", kid="rs256-rotated")
    assert_rejected(app, tok)
    superuser.execute(
        "update oidc.issuers set jwks = jsonb_set(jwks, '{keys}', (jwks -> 'keys') || %s) where issuer = %s",
        (Jsonb([mint.jwk("rs256-rotated")]), mint.ISSUER),
    )
    assert sub_with(app, tok) == "alice"


@pytest.mark.parametrize("name, value, default", SUPERUSER_SETTINGS)
def test_pgoptions_cannot_change_superuser_settings(issuer, make_token, name, value, default):
    try:
        conn = app_connect(options=f"-c {name}={value}")
    except psycopg.OperationalError as err:  # refused outright (library preloaded)
        assert "permission denied" in str(err)
        return
    with conn:
        # Until the library loads, the value is a placeholder; loading must discard it.
        conn.execute("select oidc.sub()")
        assert setting(conn, name) == default
        assert sub_with(conn, make_token()) == "alice"


@pytest.mark.parametrize("name, value, default", SUPERUSER_SETTINGS)
def test_set_before_the_library_loads_is_discarded(issuer, name, value, default):
    with app_connect() as conn:
        try:
            conn.execute(f"set {name} = {value}")
        except psycopg.errors.InsufficientPrivilege:
            pass
        conn.execute("select oidc.sub()")
        assert setting(conn, name) == default


@pytest.mark.parametrize("name, value, default", SUPERUSER_SETTINGS)
def test_login_role_cannot_set_superuser_settings(app, name, value, default):
    app.execute("select oidc.sub()")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute(f"set {name} = {value}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute(f"alter role {APP_ROLE} set {name} = {value}")
    assert setting(app, name) == default
