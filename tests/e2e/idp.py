"""The real parts around the database, as processes the tests start and stop: the OpenID
Provider (tests/provider/server.mjs, the npm package oidc-provider), the issuer loader
(examples/load_issuer.py) and the example API backend (examples/api/server.py).

Everything listens on 127.0.0.1 on a free port; every wait is bounded; every process is killed
at teardown. The provider's npm packages come from `make setup` (npm ci in tests/provider).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jwt
import pytest
from jwt.algorithms import RSAAlgorithm
from psycopg import sql

from helpers import DB, connect
from services import stop_process

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_DIR = ROOT / "tests" / "provider"
sys.path.insert(0, str(PROVIDER_DIR))
import oidc_client  # noqa: E402  (tests/provider/oidc_client.py)

IDP_DB = f"{DB}_idp"
API_SCHEMA = ROOT / "examples" / "api" / "schema.sql"
LOADER = ROOT / "examples" / "load_issuer.py"
API_SERVER = ROOT / "examples" / "api" / "server.py"
API_AUDIENCES = ["api://documents", "api://documents-es256"]
ROLES_CLAIM = "authz.roles"
START_TIMEOUT = 20.0  # seconds for a process to answer
STOP_TIMEOUT = 5.0


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not installed; run 'make setup'")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("tests/provider/node_modules is missing; run 'make setup'")
    return path


class Service:
    """A child process that is ready once `ready_url` answers 200."""

    def __init__(self, name: str, argv: list[str], ready_url: str, log: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.ready_url, self.log, self.env = name, argv, ready_url, log, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None, f"{self.name} is already running"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=self.env, cwd=ROOT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                pytest.fail(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"{self.name} did not answer {self.ready_url} within {START_TIMEOUT} s:\n{self.log_tail()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, STOP_TIMEOUT)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Provider:
    """tests/provider/server.mjs on one port for its whole life, so that its issuer (which
    contains the port) stays the same across restarts with other keys."""

    def __init__(self, workdir: Path, tls: Any = None) -> None:
        """`tls` (a `tls.Ca`): serve HTTPS with its server certificate; clients must trust its
        CA (SSL_CERT_FILE for the Python ones)."""
        self.workdir = workdir
        self.port = free_port()
        self.tls = tls
        self.issuer = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.keys: Path | None = None
        self.service: Service | None = None

    def genkeys(self, tag: str) -> Path:
        """A new private JWKS file: one RS256 key `rs256-<tag>` and one ES256 key `es256-<tag>`."""
        path = self.workdir / f"keys-{tag}.json"
        subprocess.run([node(), str(PROVIDER_DIR / "server.mjs"), "genkeys", str(path), "--tag", tag],
                       check=True, timeout=30, capture_output=True)
        return path

    def start(self, keys: Path, backchannel_logout_uri: str | None = None) -> None:
        """Serves with the private key set `keys`; with `backchannel_logout_uri`, the web
        application's logouts are posted there (OIDC Back-Channel Logout)."""
        self.keys = keys
        env = dict(os.environ)
        env.pop("PROVIDER_BACKCHANNEL_LOGOUT_URI", None)
        if backchannel_logout_uri:
            env["PROVIDER_BACKCHANNEL_LOGOUT_URI"] = backchannel_logout_uri
        tls = ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)] if self.tls else []
        self.service = Service(
            "provider", [node(), str(PROVIDER_DIR / "server.mjs"), "serve", "--port", str(self.port),
                         "--keys", str(keys), *tls],
            f"{self.issuer}/.well-known/openid-configuration", self.workdir / "provider.log", env)
        self.service.start()

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()

    def restart(self, keys: Path) -> None:
        """A key rotation at the provider: the same issuer, another key set."""
        self.stop()
        self.start(keys)

    def client_credentials(self, client: str, scope: str = "documents:read", resource: str | None = None) -> str:
        return oidc_client.client_credentials(self.issuer, client, scope, resource)

    def login(self, user: str, scope: str = "openid profile documents:read",
              resource: str | None = None, jar: Any = None) -> dict[str, Any]:
        return oidc_client.login(self.issuer, user, scope, resource, jar)

    def logout(self, jar: Any, id_token: str) -> None:
        """The browser session in `jar` logs out at the provider (RP-initiated logout)."""
        oidc_client.logout(self.issuer, jar, id_token)

    def sign(self, claims: dict[str, Any], kid: str | None = None, key: Any = None) -> str:
        """A token signed with one of the provider's own private keys (by default its current
        RS256 key), for what the provider will not mint (an expired token); `key` overrides the
        signer but keeps the kid (a forgery)."""
        keys = json.loads(self.keys.read_text())["keys"]
        jwk = next(k for k in keys if k["kid"] == kid) if kid else next(k for k in keys if k["alg"] == "RS256")
        signer = key if key is not None else RSAAlgorithm.from_jwk(jwk)
        return jwt.encode(claims, signer, algorithm="RS256", headers={"kid": jwk["kid"], "typ": "at+jwt"})


def load_issuer(issuer: str, *args: str, dbname: str = IDP_DB) -> subprocess.CompletedProcess[str]:
    """Runs examples/load_issuer.py as a deployment would; the caller checks the outcome."""
    return subprocess.run([sys.executable, str(LOADER), "--issuer", issuer, "--dsn", f"dbname={dbname}", *args],
                          capture_output=True, text=True, timeout=60)


def load_provider(provider: Provider, *args: str) -> str:
    """Loads the provider's current keys with the API's audiences and roles claim; its output."""
    done = load_issuer(provider.issuer, *[f"--audience={a}" for a in API_AUDIENCES],
                       f"--roles-claim={ROLES_CLAIM}", *args)
    assert done.returncode == 0, f"load_issuer failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def start_api(workdir: Path, dbname: str = IDP_DB, pool_size: int = 2,
              port: int | None = None) -> tuple[Service, str]:
    """examples/api/server.py against dbname as api_authenticator; (service, base URL)."""
    port = free_port() if port is None else port
    env = dict(os.environ, DATABASE_URL=f"dbname={dbname} user=api_authenticator", API_ROLE="api_user",
               API_POOL_SIZE=str(pool_size), PYTHONUNBUFFERED="1")
    base = f"http://127.0.0.1:{port}"
    # /me answers 200 to an anonymous caller once the database is reachable too.
    service = Service("api", [sys.executable, str(API_SERVER), "--port", str(port)], f"{base}/me",
                      workdir / "api.log", env)
    service.start()
    return service, base


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def idp_db():
    """A database with the example API's schema (examples/api/schema.sql), for the tests with
    the real provider; recreated for each session."""
    db = sql.Identifier(IDP_DB)
    with connect("postgres") as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(db))
        admin.execute(sql.SQL("create database {}").format(db))
    with connect(IDP_DB) as su:
        su.execute(API_SCHEMA.read_text())
    yield IDP_DB
    with connect("postgres") as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(db))
