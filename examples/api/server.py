#!/usr/bin/env python3
"""A PostgREST-style API backend on pg_oidc_authz: the database decides who sees what.

    DATABASE_URL='dbname=app user=api_authenticator' API_ROLE=api_user server.py [--port 8080]

Each HTTP request runs in one transaction on a pooled connection:

    begin;
    select set_config('oidc.token', $1, true);   -- the bearer token, a bind parameter
    set local role api_user;                      -- like PostgREST's per-request role switch
    select oidc.issuer();                         -- with a token: verify it up front
    <the query>;                                  -- row-level security filters by oidc.*()
    commit;                                       -- token and role end with the transaction

The backend verifies nothing itself: a present but invalid token makes the query fail with
SQLSTATE 28000, answered as 401 with the database's reason; no token means anonymous.

Endpoints (schema: examples/api/schema.sql):
    GET  /documents   the rows the caller may see, as a JSON array
    POST /documents   {"title": ..., "body": ...} inserts one row (policy WITH CHECK); 201
    GET  /me          what the database knows of the caller: sub, issuer, scopes, roles
    POST /backchannel-logout
                      OIDC Back-Channel Logout: the provider posts a form-encoded
                      logout_token; the database verifies it and revokes the session
                      (oidc.logout). 200 when done, 400 for an invalid logout token.

Environment: DATABASE_URL (a libpq connection string or URI; empty: the PG* variables; may
point at a transaction-mode pooler), API_ROLE (default api_user), API_PORT (or --port),
API_POOL_SIZE (default 4). Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

MAX_BODY_BYTES = 64 * 1024
POOL_WAIT = 10.0  # seconds a request waits for a free connection


class Pool:
    """At most `size` connections, reused across requests. A connection goes back only when it
    is idle (no transaction left open); a broken one is closed and replaced on demand."""

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    def acquire(self) -> psycopg.Connection:
        if not self._slots.acquire(timeout=POOL_WAIT):
            raise TimeoutError("no database connection free")
        try:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                # prepare_threshold=None: no server-side prepared statements, which a
                # transaction-mode pooler could route to another server connection.
                return psycopg.connect(self._conninfo, autocommit=True, prepare_threshold=None,
                                       row_factory=dict_row)
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: psycopg.Connection) -> None:
        try:
            if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                self._idle.put(conn)
            else:
                conn.close()
        finally:
            self._slots.release()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None without the header."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise HttpError(HTTPStatus.UNAUTHORIZED, "invalid_request", "expected `Authorization: Bearer <token>`")
    return token


# SQLSTATE (or its class) -> HTTP status and error code.
SQLSTATE_STATUS = {
    "28000": (HTTPStatus.UNAUTHORIZED, "invalid_token"),
    "42501": (HTTPStatus.FORBIDDEN, "forbidden"),
    "22": (HTTPStatus.BAD_REQUEST, "bad_request"),
    "23": (HTTPStatus.BAD_REQUEST, "bad_request"),
}


class App:
    def __init__(self, pool: Pool, api_role: str) -> None:
        self.pool = pool
        self.set_role = sql.SQL("set local role {}").format(sql.Identifier(api_role))

    def run(self, token: str | None, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """query in one transaction as the API role, with the caller's token."""
        conn = self.pool.acquire()
        try:
            with conn.transaction():
                # Transaction-local (true): the next request on this connection starts anonymous.
                conn.execute("select set_config('oidc.token', %s, true)", (token or "",))
                conn.execute(self.set_role)
                if token:
                    # Verified now, so that a bad token is a 401 whatever the query reads
                    # (a per-row policy is never evaluated on an empty table). Raises 28000.
                    conn.execute("select oidc.issuer()")
                return conn.execute(query, params).fetchall()
        except psycopg.Error as err:
            state = err.sqlstate or ""
            status, code = SQLSTATE_STATUS.get(state) or SQLSTATE_STATUS.get(state[:2]) or (None, None)
            if status is None:
                raise
            raise HttpError(status, code, err.diag.message_primary or str(err)) from None
        finally:
            self.pool.release(conn)

    def list_documents(self, token: str | None) -> tuple[HTTPStatus, Any]:
        return HTTPStatus.OK, self.run(token, "select id, owner, title, body from documents order by id")

    def create_document(self, token: str | None, doc: Any) -> tuple[HTTPStatus, Any]:
        if not isinstance(doc, dict) or not isinstance(doc.get("title"), str):
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", 'expected {"title": "...", "body": "..."}')
        body = doc.get("body", "")
        # The owner defaults to oidc.sub(); one given explicitly must still pass WITH CHECK.
        if "owner" in doc:
            rows = self.run(token, "insert into documents (owner, title, body) values (%s, %s, %s)"
                            " returning id, owner, title, body", (doc["owner"], doc["title"], body))
        else:
            rows = self.run(token, "insert into documents (title, body) values (%s, %s)"
                            " returning id, owner, title, body", (doc["title"], body))
        return HTTPStatus.CREATED, rows[0]

    def backchannel_logout(self, form: dict[str, list[str]]) -> tuple[HTTPStatus, Any]:
        """OIDC Back-Channel Logout 1.0 section 2.8: 200 once the session is revoked, 400
        with an error for a logout token the database refuses (28000)."""
        tokens = form.get("logout_token", [])
        if len(tokens) != 1:
            raise HttpError(HTTPStatus.BAD_REQUEST, "invalid_request", "expected one logout_token")
        try:
            rows = self.run(None, "select oidc.logout(%s) as revoked", (tokens[0],))
        except HttpError as err:
            if err.status == HTTPStatus.UNAUTHORIZED:
                raise HttpError(HTTPStatus.BAD_REQUEST, "invalid_request", err.message) from None
            raise
        return HTTPStatus.OK, rows[0]["revoked"]

    def me(self, token: str | None) -> tuple[HTTPStatus, Any]:
        rows = self.run(token, "select oidc.sub() as sub, oidc.issuer() as issuer,"
                        " oidc.scopes() as scopes, oidc.roles() as roles, current_user as db_role")
        return HTTPStatus.OK, rows[0]


class Handler(BaseHTTPRequestHandler):
    app: App  # set by serve()
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        routes = {"/documents": self.app.list_documents, "/me": self.app.me}
        path = urllib.parse.urlsplit(self.path).path
        self.dispatch(lambda token: routes[path](token) if path in routes else self.not_found(path))

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/backchannel-logout":
            # No bearer token here: the logout token is the credential, verified by the database.
            self.dispatch(lambda token: self.app.backchannel_logout(self.form_body()), authenticate=False)
            return
        if path != "/documents":
            self.dispatch(lambda token: self.not_found(path))
            return
        self.dispatch(lambda token: self.app.create_document(token, self.json_body()))

    def not_found(self, path: str):
        raise HttpError(HTTPStatus.NOT_FOUND, "not_found", f"no route {self.command} {path}")

    def body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", "missing or too large Content-Length")
        return self.rfile.read(length)

    def json_body(self) -> Any:
        try:
            return json.loads(self.body() or b"null")
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", "the body is not JSON") from None

    def form_body(self) -> dict[str, list[str]]:
        if self.headers.get_content_type() != "application/x-www-form-urlencoded":
            raise HttpError(HTTPStatus.BAD_REQUEST, "invalid_request", "expected a form-encoded body")
        try:
            return urllib.parse.parse_qs(self.body().decode(), strict_parsing=True, max_num_fields=16)
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "invalid_request", "the body is not a form") from None

    def dispatch(self, handle, authenticate: bool = True) -> None:
        try:
            token = bearer_token(self.headers.get("Authorization")) if authenticate else None
            status, payload = handle(token)
        except HttpError as err:
            status, payload = err.status, {"error": err.error, "message": err.message}
        except Exception as err:  # noqa: BLE001 - any other failure is a 500, logged here
            self.log_error("internal error: %s: %s", type(err).__name__, err)
            status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal", "message": "internal error"}
        body = json.dumps(payload, default=str).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", f'Bearer error="{payload["error"]}"')
        if status >= 400:
            # A request body may be left unread: do not reuse the HTTP connection.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


def serve(port: int, conninfo: str, api_role: str, pool_size: int) -> None:
    pool = Pool(conninfo, pool_size)
    Handler.app = App(pool, api_role)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"api: listening on http://127.0.0.1:{server.server_port} (role {api_role}, pool {pool_size})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        pool.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("API_PORT", "8080")))
    args = parser.parse_args(argv)
    serve(args.port, os.environ.get("DATABASE_URL", ""), os.environ.get("API_ROLE", "api_user"),
          int(os.environ.get("API_POOL_SIZE", "4")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
