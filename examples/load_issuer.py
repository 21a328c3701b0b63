#!/usr/bin/env python3
"""Loads an OpenID Provider's signing keys into oidc.issuers: the extension does no HTTP, so
this (or whatever runs your deployment) fetches them and writes them into the table.

    load_issuer.py --issuer URL [--audience AUD ...] [--required-typ at+jwt | --no-required-typ]
                   [--roles-claim PATH] [--scopes-claim PATH] [--logout-audience CLIENT ...]
                   [--comment TEXT] [--dsn CONNINFO]

It reads URL/.well-known/openid-configuration (OpenID Connect Discovery), checks that the
document names exactly that issuer, fetches its jwks_uri and upserts the row in one
transaction. The extension validates the key set as it is written: a bad one is refused with
SQLSTATE 22023 and the row stays as it was. Sessions see the new keys at their next
transaction, without restart.

Run it on every key rotation (or periodically, e.g. from cron): a provider publishes a new key
before signing with it and keeps the old one until its tokens have expired, so loading the
current key set is all a rotation takes. Options left out keep the row's current values (or
the column defaults for a new row); --audience is required for a new row.

Only https URLs are fetched, or http on a loopback address (a provider on the same host, as in
the tests); redirects are not followed. The database connection comes from --dsn or the libpq
environment (PGHOST, PGDATABASE, ...) and must be allowed to write oidc.issuers (its owner or
a member of oidc_admin).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

MAX_DOCUMENT_BYTES = 1 << 20
TIMEOUT = 10  # seconds per request


class LoadError(Exception):
    pass


def check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http":
        try:
            if ipaddress.ip_address(host).is_loopback:
                return url
        except ValueError:
            if host == "localhost":
                return url
    raise LoadError(f"refusing to fetch `{url}`: only https, or http on a loopback address")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise LoadError(f"`{req.full_url}` redirects to `{newurl}`; give the final URL instead")


def fetch_json(url: str) -> Any:
    opener = urllib.request.build_opener(_NoRedirect())
    req = urllib.request.Request(check_url(url), headers={"Accept": "application/json"})
    try:
        with opener.open(req, timeout=TIMEOUT) as resp:
            body = resp.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as err:
        raise LoadError(f"GET `{url}`: HTTP {err.code}") from None
    except urllib.error.URLError as err:
        raise LoadError(f"GET `{url}`: {err.reason}") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise LoadError(f"GET `{url}`: larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise LoadError(f"GET `{url}`: not JSON") from None


def discover(issuer: str) -> tuple[dict[str, Any], str]:
    """The provider's key set and its jwks_uri, after checking the discovery document."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    doc = fetch_json(url)
    if not isinstance(doc, dict):
        raise LoadError(f"`{url}` is not a JSON object")
    # OpenID Connect Discovery 1.0 section 4.3: the document must name exactly this issuer.
    if doc.get("issuer") != issuer:
        raise LoadError(f"the discovery document names issuer `{doc.get('issuer')}`, not `{issuer}`")
    jwks_uri = doc.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise LoadError("the discovery document has no jwks_uri")
    jwks = fetch_json(jwks_uri)
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise LoadError(f"`{jwks_uri}` is not a JWK set")
    return jwks, jwks_uri


def upsert(conn: psycopg.Connection, issuer: str, jwks: dict[str, Any], options: dict[str, Any]) -> str:
    """Inserts or updates the row; returns "inserted", "updated" or "unchanged"."""
    values = {"jwks": jwks, **options}
    columns = list(values)
    params = [Jsonb(v) if c == "jwks" else v for c, v in values.items()]
    with conn.transaction():
        old = conn.execute(
            sql.SQL("select {} from oidc.issuers where issuer = %s for update").format(
                sql.SQL(", ").join(map(sql.Identifier, columns))),
            (issuer,),
        ).fetchone()
        if old is None:
            if "audiences" not in values:
                raise LoadError(f"issuer `{issuer}` is not configured yet: give at least one --audience")
            conn.execute(
                sql.SQL("insert into oidc.issuers (issuer, {}) values (%s, {})").format(
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.SQL(", ").join([sql.Placeholder()] * len(columns)),
                ),
                [issuer, *params],
            )
            return "inserted"
        if list(old) == list(values.values()):
            return "unchanged"  # no write: sessions keep their verified tokens cached
        conn.execute(
            sql.SQL("update oidc.issuers set {} where issuer = %s").format(
                sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns)
            ),
            [*params, issuer],
        )
        return "updated"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--issuer", required=True, help="the exact `iss` of the tokens, e.g. https://id.example.com")
    parser.add_argument("--audience", action="append", dest="audiences", metavar="AUD",
                        help="an accepted `aud` (repeat for several; replaces the stored list)")
    typ = parser.add_mutually_exclusive_group()
    typ.add_argument("--required-typ", metavar="TYP", help="e.g. at+jwt: refuse ID tokens and other types")
    typ.add_argument("--no-required-typ", action="store_true", help="accept any `typ`")
    parser.add_argument("--roles-claim", metavar="PATH", help="e.g. realm_access.roles")
    parser.add_argument("--scopes-claim", metavar="PATH", help="e.g. scp")
    parser.add_argument("--logout-audience", action="append", dest="logout_audiences", metavar="CLIENT",
                        help="the `aud` (client id) of its Back-Channel Logout tokens (repeat for several)")
    parser.add_argument("--comment")
    parser.add_argument("--dsn", default="", help="libpq connection string (default: the PG* environment)")
    args = parser.parse_args(argv)

    options: dict[str, Any] = {}
    if args.audiences:
        options["audiences"] = args.audiences
    if args.required_typ is not None or args.no_required_typ:
        options["required_typ"] = args.required_typ
    if args.logout_audiences:
        options["logout_audiences"] = args.logout_audiences
    for column in ("roles_claim", "scopes_claim", "comment"):
        if getattr(args, column) is not None:
            options[column] = getattr(args, column)

    try:
        jwks, jwks_uri = discover(args.issuer)
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            outcome = upsert(conn, args.issuer, jwks, options)
    except LoadError as err:
        print(f"load_issuer: {err}", file=sys.stderr)
        return 1
    except psycopg.Error as err:
        print(f"load_issuer: the database refused the row: {err.sqlstate}: {err}", file=sys.stderr)
        return 1
    kids = ", ".join(str(k.get("kid")) for k in jwks["keys"] if isinstance(k, dict))
    print(f"load_issuer: {outcome} {args.issuer}: {len(jwks['keys'])} keys from {jwks_uri} ({kids})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
