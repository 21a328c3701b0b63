#!/usr/bin/env python3
"""Fills fuzz/corpus/<target>/ with the seed corpus every fuzz target starts from.

Seeds come from what the tests already hold: the regression tokens (tests/fixtures/mint.py,
signed by PyJWT with the committed test keys), a few more minted here for the fuzz
configuration's other issuers and for Back-Channel Logout, the Wycheproof JOSE vectors
(../shared/vectors/wycheproof), key sets and issuer rows, and every string literal of the
rule tests and every SQL string of the regression tests and examples that reads like a
condition. Structure-aware targets get a few fixed byte strings (the fuzzer grows their
corpus from nothing well enough).

Deterministic: signatures are RSASSA-PKCS1-v1_5, EdDSA or HMAC, times are fixed, and file
names are the SHA-1 of the content (as libFuzzer names its own). Rewrites the corpus folders
whole. Run with the project's venv:  .venv/bin/python fuzz/seed.py
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
WYCHEPROOF = ROOT.parent / "shared" / "vectors" / "wycheproof"
if not WYCHEPROOF.is_dir():
    WYCHEPROOF = ROOT / "core" / "tests" / "data" / "wycheproof"

sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import jwt  # noqa: E402
import mint  # noqa: E402

# The fuzz harness's clock and issuers (fuzz/src/keys.rs).
NOW = 1_800_000_000
NOKID_ISSUER = "https://nokid.test"
LOGOUT_AUD = "client-1"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
VARIABLES = ("claims", "scopes", "roles", "resource", "context")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fixed_bytes(label: str, n: int) -> bytes:
    """n bytes that depend only on label."""
    out = b""
    block = label.encode()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return out[:n]


# ------------------------------------------------------------------------------ tokens


def regression_tokens() -> list[str]:
    return list(mint.regression_tokens().values())


def extra_tokens() -> list[str]:
    """Tokens of the fuzz configuration's other issuers, and logout tokens."""
    rotated = mint.load_key("rsa-2048-rotated.pem")
    iat, exp = NOW - 600, NOW + 3600
    out = [
        jwt.encode(
            {"iss": NOKID_ISSUER, "sub": "carol", "aud": "api://other", "iat": iat, "exp": exp},
            rotated,
            algorithm="RS256",
        ),
        mint.token(
            "EdDSA",
            claims={
                "iss": mint.OTHER_ISSUER, "sub": "dave", "aud": mint.OTHER_AUDIENCE, "iat": iat,
                "exp": exp, "scp": ["read"], "realm_access": {"roles": ["editor"]},
            },
            headers={"typ": "at+jwt"},
        ),
    ]
    for iss, alg in ((mint.ISSUER, "RS256"), (mint.HMAC_ISSUER, "HS256"), (mint.ISSUER, "EdDSA")):
        claims = {
            "iss": iss, "aud": LOGOUT_AUD, "iat": iat, "exp": exp, "jti": "logout-1",
            "sid": "session-1", "sub": "alice", "events": {LOGOUT_EVENT: {}},
        }
        out.append(mint.token(alg, claims=claims, headers={"typ": "logout+jwt"}))
    out.append(
        mint.token("RS256", claims={**mint._fixed("alice"), "jti": "j-1", "sid": "s-1", "nonce": "n"})
    )
    return out


def wycheproof_tokens() -> list[str]:
    """One token per distinct comment and flags of the JWS and JWK vectors."""
    out, seen = [], set()
    for name in ("json_web_signature_test.json", "json_web_key_test.json"):
        data = json.loads((WYCHEPROOF / name).read_text())
        for group in data["testGroups"]:
            for test in group["tests"]:
                jws = test.get("jws")
                key = (test.get("comment"), tuple(test.get("flags", [])), test.get("result"))
                if isinstance(jws, str) and key not in seen:
                    seen.add(key)
                    out.append(jws)
    return out


def token_parts(tokens: list[str]) -> list[bytes]:
    """The decoded header and payload of each compact token."""
    out = []
    for t in tokens:
        for segment in t.split(".")[:2]:
            try:
                out.append(b64url_decode(segment))
            except ValueError:
                pass
    return out


# ---------------------------------------------------------------------------- key sets


def key_sets() -> list[dict]:
    out = [
        mint.jwks(),
        mint.jwks(kids=mint.ASYMMETRIC_KIDS),
        mint.jwks(kids=mint.HMAC_KIDS),
        mint.jwks(kids=["eddsa", "es256", "rs256-rotated"]),
        mint.jwks(public=False, kids=["es256"]),
        {"keys": [mint.weak_rsa_jwk()]},
        {"keys": [{**mint.jwk("rs256"), "use": "enc"}, {**mint.jwk("es384"), "key_ops": ["verify"]}]},
        {"keys": [{k: v for k, v in mint.jwk("ps256").items() if k != "alg"}]},
    ]
    for name in ("json_web_signature_test.json", "json_web_key_test.json"):
        data = json.loads((WYCHEPROOF / name).read_text())
        for group in data["testGroups"]:
            for part in ("public", "private"):
                keys = group.get(part)
                if isinstance(keys, dict):
                    out.append(keys if "keys" in keys else {"keys": [keys]})
    unique = {json.dumps(k, sort_keys=True): k for k in out}
    return list(unique.values())


def issuer_rows() -> list[dict]:
    base = {"issuer": mint.ISSUER, "audiences": [mint.AUDIENCE]}
    return [
        {**base, "jwks": mint.jwks(kids=mint.ASYMMETRIC_KIDS), "leeway_seconds": 30,
         "logout_audiences": [LOGOUT_AUD], "enabled": True},
        {**base, "issuer": mint.HMAC_ISSUER, "algorithms": mint.HMAC_ALGORITHMS,
         "jwks": mint.jwks(kids=mint.HMAC_KIDS)},
        {**base, "issuer": mint.OTHER_ISSUER, "audiences": [mint.OTHER_AUDIENCE],
         "jwks": mint.jwks(kids=["eddsa"]), "required_typ": "at+jwt",
         "roles_claim": "realm_access.roles", "scopes_claim": "/scp"},
        {**base, "issuer": "https://id.example.com/realms/x", "discovery": True, "jwks": None},
        {**base, "issuer": "http://127.0.0.1:8080", "discovery": True},
        {**base, "leeway_seconds": 301, "jwks": mint.jwks(kids=["rs256"])},
        {**base, "algorithms": ["RS256", "none"], "jwks": mint.jwks(kids=["rs256"])},
        {**base, "audiences": [], "jwks": mint.jwks(kids=["rs256"]), "enabled": False},
    ]


def discovery_documents() -> list[bytes]:
    docs = [
        {"issuer": mint.ISSUER, "jwks_uri": "https://issuer.test/jwks"},
        {"issuer": "http://127.0.0.1:8080/realms/x",
         "jwks_uri": "http://127.0.0.1:8080/realms/x/protocol/openid-connect/certs"},
        {"issuer": mint.ISSUER + "/", "jwks_uri": "https://issuer.test/jwks"},
        {"issuer": mint.ISSUER, "jwks_uri": "https://user:pw@issuer.test/jwks"},
        {"issuer": mint.ISSUER, "jwks_uri": "http://[::1]:9/jwks"},
    ]
    texts = [
        "https://issuer.test", "http://localhost:8080/x", "http://10.0.0.1/x", "https://a b/",
        "https://issuer.test/?x#y", "max-age=300", "no-cache, max-age=60", 'max-age="86400"',
        "public, max-age=18446744073709551616", "",
    ]
    return [json.dumps(d).encode() for d in docs] + [t.encode() for t in texts]


# --------------------------------------------------------------------------- conditions

RUST_STRING = re.compile(r'r(#+)"(.*?)"\1|"((?:[^"\\\n]|\\.)*)"', re.S)
# A string literal, or a line comment (skipped: an apostrophe in one would pair with the next
# literal's and make a "string" of the SQL between).
SQL_STRING = re.compile(r"'((?:[^']|'')*)'|--[^\n]*")


def rust_unescape(body: str) -> str:
    def one(m: re.Match) -> str:
        e = m.group(1)
        if e.startswith("u{"):
            return chr(int(e[2:-1], 16))
        return {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}.get(e, e)

    return re.sub(r"\\(u\{[0-9a-fA-F]+\}|.)", one, body)


def conditions() -> list[str]:
    out: set[str] = set()
    for path in sorted((ROOT / "core" / "tests").glob("rules*.rs")) + [
        ROOT / "core" / "tests" / "residual.rs",
        ROOT / "core" / "tests" / "rules_differential" / "gen.rs",
    ]:
        for m in RUST_STRING.finditer(path.read_text()):
            text = m.group(2) if m.group(2) is not None else rust_unescape(m.group(3))
            if 2 <= len(text) <= 4096 and "\0" not in text:
                out.add(text)
    sql = sorted((ROOT / "tests" / "pg_regress" / "sql").glob("*.sql"))
    sql += sorted((ROOT / "examples").rglob("*.sql"))
    for path in sql:
        for m in SQL_STRING.finditer(path.read_text()):
            if m.group(1) is None:
                continue
            text = m.group(1).replace("''", "'")
            if any(v in text for v in VARIABLES) and len(text) <= 4096:
                out.add(text)
    # Only what mentions a variable or calls something: the rest are messages and names.
    return sorted(t for t in out if any(v in t for v in VARIABLES) or "(" in t)


# --------------------------------------------------------------------------------- main


def write(target: str, seeds: list[bytes]) -> int:
    folder = CORPUS / target
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for data in dict.fromkeys(seeds):
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
    return sum(len(s) for s in dict.fromkeys(seeds))


def main() -> int:
    tokens = regression_tokens() + extra_tokens()
    all_tokens = tokens + wycheproof_tokens()
    structured = [b""] + [fixed_bytes(f"seed-{n}", n) for n in (8, 32, 64, 128, 256, 512)]
    sets = key_sets()
    conds = conditions()
    corpus = {
        "token": [t.encode() for t in all_tokens],
        "token_structured": structured,
        "logout": structured,
        "jwks": [json.dumps(s).encode() for s in sets] + [json.dumps(r).encode() for r in issuer_rows()],
        "discovery": discovery_documents() + [json.dumps(s).encode() for s in sets[:4]],
        "json": token_parts(tokens) + [
            b'{"a":1,"b":[true,null,"x"],"c":{"d":1.5}}', b'{"sub":"a","sub":"b"}',
            rb'{"s":"\\u0000","t":"\u0000","t":"\u0001\t0001\t"}',
            b"[" * 32 + b"]" * 32, b"[" * 33 + b"]" * 33, b"1e400", b"-0.0", b"18446744073709551616",
            # A U+0000 in a member that a later duplicate hides from serde_json.
            rb'{"s":"\\u0000","t":"\u0000","t":"\u0001\t0001\t"}',
        ],
        "claim_path": structured,
        "revocation": structured,
        "rule_compile": [c.encode() for c in conds],
        "rule_eval": [c.encode() + b"\0" + fixed_bytes(c, 48) for c in conds],
        "redact": [t.encode() for t in tokens[:8]] + [
            b"LOG:  statement: select set_config('oidc.token', '" + tokens[0].encode() + b"', true)",
            b"Bearer%20" + tokens[1].encode(), b"x" + tokens[2].encode() + b".y.z",
            b"eyJ.a.b", b"ICAgICAgICB7.e30.x", b"a.b.c.d.e",
        ] + structured,
    }
    total = 0
    for target, seeds in corpus.items():
        size = write(target, seeds)
        total += size
        print(f"{target:>16}: {len(set(seeds)):4} seeds, {size:7} bytes")
    print(f"{'total':>16}: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
