#!/usr/bin/env python3
"""Gets tokens from the test OpenID Provider (tests/provider/server.mjs), stdlib only.

Every request goes to the provider's own loopback address; nothing else is ever contacted.

CLI (prints the access token, or with --id-token the ID token):
    oidc_client.py client-credentials --issuer URL --client reports [--scope S] [--resource R]
    oidc_client.py login --issuer URL --user alice [--scope S] [--resource R] [--id-token]

The clients and their secrets are the fixed test ones of server.mjs. `login` runs the
authorization code flow through the provider's development login and consent pages
(devInteractions) with a cookie jar, as a browser would, without one.
"""

from __future__ import annotations

import argparse
import base64
import http.cookiejar
import ipaddress
import json
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

# The fixed test clients of server.mjs.
CLIENT_SECRETS = {"reports": "reports-secret", "billing": "billing-secret", "webapp": "webapp-secret"}
WEBAPP = "webapp"
WEBAPP_REDIRECT_URI = "http://127.0.0.1/callback"
TIMEOUT = 10  # seconds per request


class ProviderError(Exception):
    """The provider answered with an error (an OAuth error response or an unexpected page)."""


def require_loopback(url: str) -> str:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ProviderError(f"refusing to contact `{url}`: the test provider runs on loopback only")
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are followed by hand: the last one carries the code and must not be fetched."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _opener(jar: http.cookiejar.CookieJar | None = None) -> urllib.request.OpenerDirector:
    handlers: list[Any] = [_NoRedirect()]
    if jar is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(jar))
    return urllib.request.build_opener(*handlers)


def _request(opener, url: str, form: dict[str, str] | None = None,
             auth: tuple[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(require_loopback(url), data=data)
    if auth is not None:
        basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {basic}")
    try:
        with opener.open(req, timeout=TIMEOUT) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:  # 3xx (not followed) and 4xx/5xx
        with err:
            return err.code, dict(err.headers), err.read()


def _token_request(issuer: str, client: str, form: dict[str, str]) -> dict[str, Any]:
    status, _, body = _request(_opener(), f"{issuer}/token", form, (client, CLIENT_SECRETS[client]))
    try:
        answer = json.loads(body)
    except ValueError:
        raise ProviderError(f"token endpoint answered {status} with non-JSON") from None
    if status != 200:
        raise ProviderError(f"token endpoint: {answer.get('error')}: {answer.get('error_description')}")
    return answer


def client_credentials(issuer: str, client: str, scope: str = "documents:read",
                       resource: str | None = None) -> str:
    """An access token (a JWT, typ at+jwt) whose sub is the client's id."""
    form = {"grant_type": "client_credentials", "scope": scope}
    if resource:
        form["resource"] = resource
    return _token_request(issuer, client, form)["access_token"]


def login(issuer: str, user: str, scope: str = "openid profile documents:read",
          resource: str | None = None, jar: http.cookiejar.CookieJar | None = None) -> dict[str, Any]:
    """The token response of an authorization code flow in which `user` logs in to the web
    application and consents: access_token (JWT for the resource), id_token, scope, ...
    `jar` keeps the browser's cookies (the provider's session) for a later `logout`."""
    jar = http.cookiejar.CookieJar() if jar is None else jar
    opener = _opener(jar)
    state = secrets.token_urlsafe(16)
    params = {"client_id": WEBAPP, "response_type": "code", "redirect_uri": WEBAPP_REDIRECT_URI,
              "scope": scope, "state": state, "nonce": secrets.token_urlsafe(16)}
    if resource:
        params["resource"] = resource
    url = f"{issuer}/auth?{urllib.parse.urlencode(params)}"
    # /auth -> /interaction/<uid> (login) -> /auth/<uid> -> /interaction/<uid> (consent)
    # -> /auth/<uid> -> redirect_uri?code=...; a handful of hops, never a loop.
    for _ in range(10):
        status, headers, body = _request(opener, url)
        if status not in (302, 303):
            raise ProviderError(f"GET {urllib.parse.urlsplit(url).path} answered {status}, expected a redirect")
        location = urllib.parse.urljoin(url, headers["Location"])
        if location.startswith(WEBAPP_REDIRECT_URI):
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
            if "error" in query:
                raise ProviderError(f"authorization: {query['error']}: {query.get('error_description')}")
            if query.get("state") != state:
                raise ProviderError("authorization response with a wrong state")
            form = {"grant_type": "authorization_code", "code": query["code"],
                    "redirect_uri": WEBAPP_REDIRECT_URI}
            if resource:
                form["resource"] = resource
            return _token_request(issuer, WEBAPP, form)
        path = urllib.parse.urlsplit(location).path
        if path.startswith("/interaction/"):
            # The page itself is a form; what it would post is known, so post it directly.
            status, _, page = _request(opener, location)
            if status != 200:
                raise ProviderError(f"interaction page answered {status}")
            prompt = "login" if b'name="login"' in page else "consent"
            form = {"prompt": prompt, "login": user, "password": ""} if prompt == "login" else {"prompt": prompt}
            status, headers, _ = _request(opener, location, form)
            if status not in (302, 303):
                raise ProviderError(f"{prompt} form answered {status}, expected a redirect")
            location = urllib.parse.urljoin(location, headers["Location"])
        url = location
    raise ProviderError("authorization code flow did not finish within 10 redirects")


def logout(issuer: str, jar: http.cookiejar.CookieJar, id_token: str) -> None:
    """RP-initiated logout of the browser session in `jar`: GET /session/end with the ID
    token as hint, then the confirmation form the page holds, as a browser would post it. The
    provider ends the session and, before answering, posts Back-Channel Logout tokens to the
    clients that registered a backchannel_logout_uri."""
    import re

    opener = _opener(jar)
    query = urllib.parse.urlencode({"id_token_hint": id_token, "client_id": WEBAPP})
    status, _, page = _request(opener, f"{issuer}/session/end?{query}")
    if status != 200:
        raise ProviderError(f"GET /session/end answered {status}")
    action = re.search(rb'<form[^>]*action="([^"]+)"', page)
    xsrf = re.search(rb'name="xsrf" value="([^"]+)"', page)
    if action is None or xsrf is None:
        raise ProviderError("the logout page holds no confirmation form")
    url = urllib.parse.urljoin(f"{issuer}/session/end", action.group(1).decode())
    status, headers, _ = _request(opener, url, {"xsrf": xsrf.group(1).decode(), "logout": "yes"})
    if status not in (302, 303):
        raise ProviderError(f"logout confirmation answered {status}, expected a redirect")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cc = sub.add_parser("client-credentials")
    cc.add_argument("--client", required=True, choices=sorted(set(CLIENT_SECRETS) - {WEBAPP}))
    cc.add_argument("--scope", default="documents:read")
    lg = sub.add_parser("login")
    lg.add_argument("--user", required=True)
    lg.add_argument("--scope", default="openid profile documents:read")
    lg.add_argument("--id-token", action="store_true", help="print the ID token instead")
    for p in (cc, lg):
        p.add_argument("--issuer", required=True, help="e.g. http://127.0.0.1:PORT")
        p.add_argument("--resource", help="resource indicator (default: the provider's, api://documents)")
    args = parser.parse_args(argv)
    try:
        if args.command == "client-credentials":
            print(client_credentials(args.issuer, args.client, args.scope, args.resource))
        else:
            answer = login(args.issuer, args.user, args.scope, args.resource)
            print(answer["id_token"] if args.id_token else answer["access_token"])
    except (ProviderError, OSError) as err:
        print(f"oidc_client.py: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
