"""Differential testing of token verification against PyJWT, an implementation independent of
the extension's verifier (test_differential.py runs it; `make differential` runs more).

`cases(n, seed)` builds tokens for every algorithm and mutates them: header members, `alg`,
`kid`, `crit`, `typ`, claim types and values, times around the leeway, base64 and segment
tricks, flipped signature bits, re-encoded JSON. `reference(token)` decides each with PyJWT
configured like the test issuers (same keys, algorithms, audience, leeway, required claims,
kid selection). Where the two disagree by design, `EXCEPTIONS` names the difference and the
property of the token that justifies it, computed here from the token's bytes; any other
disagreement is a bug."""

from __future__ import annotations

import base64
import json
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

import jwt
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import mint

LEEWAY = 30  # the `issuer` fixture's leeway
MAX_TOKEN_BYTES = 16384  # oidc.max_token_bytes' default
MAX_DEPTH = 32  # of the extension's strict JSON (core/src/json.rs)
# Time claims within this many seconds of a leeway boundary are never generated: the two
# verifiers read the clock apart (a batch is generated, verified by both, then the next).
MARGIN = 8
ISSUERS = {
    mint.ISSUER: ([k for k in mint.ASYMMETRIC_KIDS], [mint.KIDS[k][1] for k in mint.ASYMMETRIC_KIDS]),
    mint.HMAC_ISSUER: ([k for k in mint.HMAC_KIDS], mint.HMAC_ALGORITHMS),
}


@dataclass
class Case:
    token: str
    mutations: list[str]


# ------------------------------------------------------------------------------- generation


@dataclass
class Draft:
    """A token before signing: header and payload as dicts, or as raw JSON bytes."""
    alg: str
    kid: str
    header: dict[str, Any]
    payload: dict[str, Any]
    raw_header: bytes | None = None
    raw_payload: bytes | None = None
    sign_as: str | None = None  # sign with another algorithm than the header says
    post: list[Callable[[str, random.Random], str]] | None = None

    def header_bytes(self) -> bytes:
        return self.raw_header if self.raw_header is not None else mint.compact_json(self.header)

    def payload_bytes(self) -> bytes:
        return self.raw_payload if self.raw_payload is not None else mint.compact_json(self.payload)


def loose_b64(seg: str) -> bytes | None:
    """Python's lenient decoding (what PyJWT does), None where even that fails."""
    try:
        return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))
    except ValueError:
        return None


def seconds_away(rng: random.Random, inside: bool) -> int:
    """An offset from a boundary: inside the leeway, or beyond it, never near its edge."""
    return rng.randint(MARGIN, LEEWAY - MARGIN) if inside else rng.randint(LEEWAY + MARGIN, 10 * LEEWAY)


def segment(tok: str, i: int, f: Callable[[str], str]) -> str:
    parts = tok.split(".")
    if len(parts) <= i:
        return tok  # an earlier mutation took the segment away
    parts[i] = f(parts[i])
    return ".".join(parts)


def flip_bit(seg: str, rng: random.Random) -> str:
    raw = bytearray(loose_b64(seg) or b"")
    if not raw:
        return seg
    raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    return mint.b64url(bytes(raw))


def der_signature(seg: str) -> str:
    raw = loose_b64(seg)
    if not raw:
        return seg
    half = len(raw) // 2
    return mint.b64url(encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")))


def raw_json_with(obj: dict[str, Any], rng: random.Random, kind: str) -> bytes:
    """obj re-encoded: whitespace, escapes, key order, or a member appended."""
    items = list(obj.items())
    if kind == "order":
        rng.shuffle(items)
    if kind == "whitespace":
        return json.dumps(dict(items), indent=rng.choice([None, 1, 2]), separators=(" , ", " : ")).encode()
    if kind == "escapes":
        return json.dumps(dict(items), ensure_ascii=True).encode().replace(b'"iss"', b'"\\u0069ss"')
    return json.dumps(dict(items), separators=(",", ":")).encode()


def appended(obj: dict[str, Any], member: str) -> bytes:
    """obj's JSON with raw text for one more member, e.g. a duplicate or a NaN."""
    body = mint.compact_json(obj)
    return body[:-1] + b"," + member.encode() + b"}"


def post(f: Callable[[str, random.Random], str]) -> Callable[[Draft, random.Random], None]:
    def add(d: Draft, rng: random.Random) -> None:
        d.post = (d.post or []) + [f]
    return add


def set_claim(name: str, value: Callable[[Draft, random.Random], Any]) -> Callable[[Draft, random.Random], None]:
    def mutate(d: Draft, rng: random.Random) -> None:
        d.payload[name] = value(d, rng)
    return mutate


def set_header(name: str, value: Callable[[Draft, random.Random], Any]) -> Callable[[Draft, random.Random], None]:
    def mutate(d: Draft, rng: random.Random) -> None:
        d.header[name] = value(d, rng)
    return mutate


def drop(where: str, name: str) -> Callable[[Draft, random.Random], None]:
    def mutate(d: Draft, rng: random.Random) -> None:
        getattr(d, where).pop(name, None)
    return mutate


def now() -> int:
    return int(time.time())


def other_kid(d: Draft, rng: random.Random) -> str:
    return rng.choice([k for k in mint.MAIN_KIDS if k != d.kid])


def switch_alg(d: Draft, rng: random.Random) -> None:
    d.sign_as = d.alg
    d.header["alg"] = rng.choice([a for a in mint.ALGORITHMS if a != d.alg])


def sign_with_other_alg(d: Draft, rng: random.Random) -> None:
    """Header and kid say another algorithm; the signature is still of the first key."""
    d.sign_as = d.alg
    d.header["alg"] = rng.choice(mint.ALGORITHMS)
    d.header["kid"] = next(k for k in mint.MAIN_KIDS if mint.KIDS[k][1] == d.header["alg"])


def oversize(d: Draft, rng: random.Random) -> None:
    d.payload["pad"] = "x" * rng.choice([MAX_TOKEN_BYTES // 2, MAX_TOKEN_BYTES])


MUTATIONS: dict[str, Callable[[Draft, random.Random], None]] = {
    # header
    "kid dropped": drop("header", "kid"),
    "kid unknown": set_header("kid", lambda d, r: r.choice(["nope", "", "RS256", d.kid.upper(), d.kid + " "])),
    "kid of another key": set_header("kid", other_kid),
    "kid not a string": set_header("kid", lambda d, r: r.choice([1, None, ["x"], {"k": d.kid}, True])),
    "alg in other case": set_header("alg", lambda d, r: d.alg.lower()),
    "alg none": set_header("alg", lambda d, r: r.choice(["none", "None", "NONE"])),
    "alg unknown": set_header("alg", lambda d, r: r.choice(["HS1", "RS1", "ES256K", "Ed25519", "", "RSA-OAEP"])),
    "alg not a string": set_header("alg", lambda d, r: r.choice([1, None, [d.alg]])),
    "alg dropped": drop("header", "alg"),
    "alg switched": switch_alg,
    "alg and kid of another key": sign_with_other_alg,
    "crit": set_header("crit", lambda d, r: r.choice([["exp"], [], ["b64"], "exp"])),
    "typ": set_header("typ", lambda d, r: r.choice(["JWT", "jwt", "at+jwt", "application/at+jwt", "logout+jwt", "x", 5])),
    "b64": set_header("b64", lambda d, r: r.choice([True, False, "true"])),
    "enc or zip": lambda d, r: d.header.__setitem__(r.choice(["enc", "zip"]), "A256GCM"),
    "embedded key": set_header("jwk", lambda d, r: mint.key_to_jwk(mint.attacker_key())),
    "jku or x5u": set_header("jku", lambda d, r: "https://attacker.test/jwks"),
    "extra header member": set_header("x-extra", lambda d, r: r.choice([1, "v", [1, {"a": None}]])),
    "header whitespace": lambda d, r: setattr(d, "raw_header", raw_json_with(d.header, r, "whitespace")),
    "header key order": lambda d, r: setattr(d, "raw_header", raw_json_with(d.header, r, "order")),
    "header duplicate alg": lambda d, r: setattr(d, "raw_header", appended(d.header, f'"alg":"{r.choice(mint.ALGORITHMS)}"')),
    "header not an object": lambda d, r: setattr(d, "raw_header", r.choice([b"[]", b'"x"', b"1", b"null", b""])),
    # payload
    "exp dropped": drop("payload", "exp"),
    "aud dropped": drop("payload", "aud"),
    "iss dropped": drop("payload", "iss"),
    "iss other": set_claim("iss", lambda d, r: r.choice([mint.OTHER_ISSUER, mint.ISSUER + "/", "", 7,
                                                         mint.HMAC_ISSUER if d.payload.get("iss") == mint.ISSUER else mint.ISSUER])),
    "aud list": set_claim("aud", lambda d, r: r.sample([mint.AUDIENCE, mint.OTHER_AUDIENCE, "x"], r.randint(0, 3))),
    "aud other": set_claim("aud", lambda d, r: r.choice([mint.OTHER_AUDIENCE, "", mint.AUDIENCE.upper()])),
    "aud not a string": set_claim("aud", lambda d, r: r.choice([1, None, {"a": mint.AUDIENCE}, [mint.AUDIENCE, 1]])),
    "expired": set_claim("exp", lambda d, r: now() - seconds_away(r, inside=False)),
    "expired within leeway": set_claim("exp", lambda d, r: now() - seconds_away(r, inside=True)),
    "nbf future": set_claim("nbf", lambda d, r: now() + seconds_away(r, inside=False)),
    "nbf within leeway": set_claim("nbf", lambda d, r: now() + seconds_away(r, inside=True)),
    "nbf past": set_claim("nbf", lambda d, r: now() - r.randint(0, 10**6)),
    "iat future": set_claim("iat", lambda d, r: now() + seconds_away(r, inside=False)),
    "iat within leeway": set_claim("iat", lambda d, r: now() + seconds_away(r, inside=True)),
    "iat dropped": drop("payload", "iat"),
    "exp float": set_claim("exp", lambda d, r: now() + 300 + r.random()),
    "time claim not a number": lambda d, r: d.payload.__setitem__(
        r.choice(["exp", "nbf", "iat"]), r.choice([str(now() + 300), True, None, [now() + 300], {"t": 1}])),
    "time claim out of range": lambda d, r: d.payload.__setitem__(
        r.choice(["exp", "nbf", "iat"]), r.choice([-1, -(10**6), 253402300800, 10**15, 1e300])),
    "sub not a string": set_claim("sub", lambda d, r: r.choice([1, None, ["alice"], {"id": 1}, True])),
    "jti not a string": set_claim("jti", lambda d, r: r.choice([1, None, ["j"], {"id": 1}])),
    "sid not a string": set_claim("sid", lambda d, r: r.choice([1, None, ["s"]])),
    "nul in a claim": lambda d, r: d.payload.__setitem__(r.choice(["sub", "x", "name\u0000"]), "al\u0000ice"),
    "logout event": set_claim("events", lambda d, r: {"http://schemas.openid.net/event/backchannel-logout": {}}),
    "payload duplicate member": lambda d, r: setattr(d, "raw_payload", appended(
        d.payload, r.choice([f'"iss":"{mint.OTHER_ISSUER}"', '"sub":"mallory"', f'"aud":"{mint.AUDIENCE}"',
                             f'"exp":{now() + 300}']))),
    "payload NaN or Infinity": lambda d, r: setattr(d, "raw_payload", appended(d.payload, r.choice(
        ['"x":NaN', '"x":Infinity', '"x":-Infinity']))),
    "payload big numbers": lambda d, r: setattr(d, "raw_payload", appended(d.payload, r.choice(
        ['"x":18446744073709551616', '"x":1e400', '"x":-0', '"x":1.0e2', '"x":123456789012345678901234567890']))),
    "payload lone surrogate": lambda d, r: setattr(d, "raw_payload", appended(d.payload, r.choice(
        ['"x":"\\ud800"', '"x":"\\udfff\\ud800"', '"\\ud800":1']))),
    "payload deep nesting": lambda d, r: setattr(d, "raw_payload", appended(d.payload, '"x":' + (lambda n: "[" * n + "]" * n)(r.choice([50, 200, 5000])))),
    "payload not an object": lambda d, r: setattr(d, "raw_payload", r.choice([b"[]", b'"x"', b"1", b"null", b""])),
    "payload whitespace": lambda d, r: setattr(d, "raw_payload", raw_json_with(d.payload, r, "whitespace")),
    "payload escapes": lambda d, r: setattr(d, "raw_payload", raw_json_with(d.payload, r, "escapes")),
    "payload key order": lambda d, r: setattr(d, "raw_payload", raw_json_with(d.payload, r, "order")),
    "payload trailing data": lambda d, r: setattr(d, "raw_payload", mint.compact_json(d.payload) + r.choice([b" ", b"x", b"{}", b"\n"])),
    "oversize": oversize,
    # segments and signature, after signing
    "signature bit flipped": post(lambda t, r: segment(t, 2, lambda s: flip_bit(s, r))),
    "payload bit flipped": post(lambda t, r: segment(t, 1, lambda s: flip_bit(s, r))),
    "signature truncated": post(lambda t, r: segment(t, 2, lambda s: s[: r.randrange(len(s))] if s else s)),
    "signature extended": post(lambda t, r: segment(t, 2, lambda s: s + r.choice(["A", "AA", "AAAA"]))),
    "signature empty": post(lambda t, r: segment(t, 2, lambda s: "")),
    "signature DER": post(lambda t, r: segment(t, 2, der_signature)),
    "padding": post(lambda t, r: segment(t, r.randrange(3), lambda s: s + "=" * r.randint(1, 2))),
    "standard base64": post(lambda t, r: t.replace("-", "+").replace("_", "/")),
    "junk character": post(lambda t, r: segment(t, r.randrange(3), lambda s: (
        lambda i, c: s[:i] + c + s[i:])(r.randrange(len(s) + 1), r.choice([" ", "\n", "!", "*", "\t", "."])))),
    "trailing bits": post(lambda t, r: segment(t, r.randrange(3), lambda s: s[:-1] + chr(ord(s[-1]) + 1)
                                               if s and len(s) % 4 in (2, 3) and s[-1] not in "z9_-Z" else s)),
    "segments": post(lambda t, r: r.choice([t + ".", t + ".x.y", "." + t, t.split(".", 1)[1],
                                           ".".join(t.split(".")[:2]), t.replace(".", "..", 1)])),
    "segments swapped": post(lambda t, r: ".".join((lambda p: [p[1], p[0]] + p[2:])(t.split(".")))
                               if t.count(".") >= 1 else t),
}
NAMES = sorted(MUTATIONS)


def cases(n: int, rng: random.Random, start: int = 0) -> list[Case]:
    """Cases start .. start + n of the sequence rng draws (generate batches in order)."""
    out = []
    for i in range(start, start + n):
        alg = mint.ALGORITHMS[i % len(mint.ALGORITHMS)]
        kid = next(k for k in mint.MAIN_KIDS if mint.KIDS[k][1] == alg)
        t = now()
        d = Draft(alg, kid, {"alg": alg, "kid": kid, "typ": "JWT"},
                  mint.claims(f"user{rng.randrange(100)}", iss=mint.issuer_for(alg), iat=t - 5, exp=t + 300))
        chosen = [] if i % 10 == 0 else rng.sample(NAMES, rng.choice([1, 1, 1, 2, 2, 3]))
        for name in chosen:
            MUTATIONS[name](d, rng)
        out.append(Case(sign(d, rng), chosen))
    return out


def sign(d: Draft, rng: random.Random) -> str:
    alg = d.sign_as or d.alg
    kid = d.kid
    header, payload = d.header_bytes(), d.payload_bytes()
    tok = mint.assemble(header, payload, alg, mint.signing_key(kid))
    for f in d.post or []:
        tok = f(tok, rng)
    return tok


# -------------------------------------------------------------------------------- reference


def select_key(kids: list[str], kid: Any, alg: str):
    """The extension's documented choice: the exact kid (which must allow alg), or the one
    key able to verify alg when the token names none."""
    if kid is None:
        able = [k for k in kids if mint.KIDS[k][1] == alg]
        return able[0] if len(able) == 1 else None
    if not isinstance(kid, str) or kid not in kids or mint.KIDS[kid][1] != alg:
        return None
    return kid


def reference(token: str) -> tuple[bool, str]:
    """PyJWT's decision, configured as the test issuers are."""
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError) as e:
        return False, type(e).__name__
    iss = unverified.get("iss")
    if not isinstance(iss, str) or iss not in ISSUERS:
        return False, "issuer"
    kids, algorithms = ISSUERS[iss]
    alg = header.get("alg")
    if alg not in algorithms:
        return False, "algorithm"
    kid = select_key(kids, header.get("kid"), alg)
    if kid is None:
        return False, "key"
    key = jwt.PyJWK(mint.jwk(kid)).key
    try:
        jwt.decode(token, key, algorithms=[alg], audience=mint.AUDIENCE, issuer=iss, leeway=LEEWAY,
                   options={"require": ["exp", "iss", "aud"]})
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError) as e:
        return False, type(e).__name__
    return True, ""


# ------------------------------------------------------------------------------- exceptions


def segments(token: str) -> list[str]:
    return token.split(".")


def decoded(token: str, i: int) -> bytes | None:
    parts = segments(token)
    return loose_b64(parts[i]) if len(parts) > i else None


STRICT_SEGMENT = re.compile(r"^[A-Za-z0-9_-]*$")


def strict_b64(seg: str) -> bool:
    """Unpadded url-safe alphabet, a possible length and zero trailing bits."""
    if not STRICT_SEGMENT.match(seg) or len(seg) % 4 == 1:
        return False
    raw = loose_b64(seg)
    return raw is not None and mint.b64url(raw) == seg


def json_of(token: str, i: int) -> Any:
    raw = decoded(token, i)
    try:
        return json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):
        return None


def has_duplicates(raw: bytes | None) -> bool:
    found = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        found |= len({k for k, _ in pairs}) != len(pairs)
        return dict(pairs)
    try:
        json.loads(raw or b"", object_pairs_hook=hook)
    except (ValueError, RecursionError):
        return False
    return found


def walk_strings(v: Any):
    if isinstance(v, str):
        yield v
    elif isinstance(v, list):
        for x in v:
            yield from walk_strings(x)
    elif isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from walk_strings(x)


def non_strict_json(raw: bytes | None) -> bool:
    """What Python's json accepts and a strict (RFC 8259, I-JSON) parser refuses: NaN and
    Infinity, lone surrogates, numbers beyond a double."""
    text = (raw or b"").decode("utf-8", "replace")
    if re.search(r"\bNaN\b|Infinity", text) or re.search(r"\\u[dD][89a-fA-F]", text):
        return True
    try:
        value = json.loads(raw or b"", parse_constant=lambda c: None)
    except (ValueError, RecursionError):
        return False

    def big(v: Any) -> bool:
        if isinstance(v, bool):
            return False
        if isinstance(v, (int, float)):
            return abs(float(v)) == float("inf") if isinstance(v, float) else abs(v) > 2**64
        if isinstance(v, list):
            return any(big(x) for x in v)
        if isinstance(v, dict):
            return any(big(x) for x in v.values())
        return False
    return big(value)


def time_claim_not_a_json_number(token: str) -> bool:
    p = json_of(token, 1)
    return isinstance(p, dict) and any(
        k in p and (isinstance(p[k], bool) or not isinstance(p[k], (int, float))) for k in ("exp", "nbf", "iat"))


def time_claim_out_of_range(token: str) -> bool:
    p = json_of(token, 1)
    return isinstance(p, dict) and any(
        isinstance(p.get(k), (int, float)) and not isinstance(p.get(k), bool)
        and not 0 <= p[k] <= 253402300799 for k in ("exp", "nbf", "iat"))


def depth(v: Any) -> int:
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    return 0


def sid_not_a_string(token: str) -> bool:
    p = json_of(token, 1)
    return isinstance(p, dict) and "sid" in p and not isinstance(p["sid"], str)


@dataclass(frozen=True)
class Exception_:
    name: str
    why: str
    extension_accepts: bool  # the direction of the disagreement it explains
    applies: Callable[[str], bool]


EXCEPTIONS = [
    Exception_("lenient base64", "PyJWT decodes padded, standard-alphabet and junk-laden segments and ignores"
               " trailing bits; the extension accepts one encoding per byte string (RFC 7515 §2)", False,
               lambda t: len(segments(t)) == 3 and not all(strict_b64(s) for s in segments(t))),
    Exception_("duplicate members", "PyJWT keeps the last of a repeated member; the extension refuses the"
               " token (RFC 7515 §5.2 allows either; a repeated `iss` or `sub` must not be chosen from)", False,
               lambda t: has_duplicates(decoded(t, 0)) or has_duplicates(decoded(t, 1))),
    Exception_("non-strict JSON", "NaN, Infinity, lone surrogates and numbers beyond a double are not"
               " JSON (RFC 8259, I-JSON); Python's parser takes them", False,
               lambda t: non_strict_json(decoded(t, 0)) or non_strict_json(decoded(t, 1))),
    Exception_("trailing data", "the extension refuses bytes after the JSON value; Python skips whitespace", False,
               lambda t: (lambda raw: raw is not None and raw != raw.strip())(decoded(t, 1))),
    Exception_("NUL in a string", "Postgres text cannot hold U+0000: a claim would end there", False,
               lambda t: any("\u0000" in s for i in (0, 1) for s in walk_strings(json_of(t, i)))),
    Exception_("time claim not a JSON number", "NumericDate is a JSON number (RFC 7519 §2); PyJWT runs"
               " int() over strings and booleans", False, time_claim_not_a_json_number),
    Exception_("time claim out of range", "the extension refuses NumericDates before 1970 or after 9999", False,
               time_claim_out_of_range),
    Exception_("logout token", "a Back-Channel Logout token is never an access token", False,
               lambda t: isinstance(json_of(t, 1), dict) and "events" in json_of(t, 1)
               or isinstance(json_of(t, 0), dict) and str(json_of(t, 0).get("typ", "")).lower().endswith("logout+jwt")),
    Exception_("oversize", "tokens over oidc.max_token_bytes are refused before decoding", False,
               lambda t: len(t) > MAX_TOKEN_BYTES),
    Exception_("b64 header", "the extension refuses `b64` other than true, even without `crit`", False,
               lambda t: isinstance(json_of(t, 0), dict) and "b64" in json_of(t, 0) and json_of(t, 0)["b64"] is not True),
    Exception_("crit", "the extension implements no critical extension and refuses every `crit`"
               " (RFC 7515 §4.1.11); PyJWT implements `b64` (RFC 7797)", False,
               lambda t: isinstance(json_of(t, 0), dict) and "crit" in json_of(t, 0)),
    Exception_("enc or zip header", "a JWS header with `enc` or `zip` is refused as a JWE", False,
               lambda t: isinstance(json_of(t, 0), dict) and ("enc" in json_of(t, 0) or "zip" in json_of(t, 0))),
    Exception_("sid not a string", "a session id is a string (OIDC Front- and Back-Channel Logout); a"
               " session revocation could not match another type", False, sid_not_a_string),
    Exception_("nesting depth", f"the extension refuses JSON nested deeper than {MAX_DEPTH} levels", False,
               lambda t: any(depth(json_of(t, i)) > MAX_DEPTH for i in (0, 1))),
    Exception_("typ not a string", "the extension refuses a non-string `typ`", False,
               lambda t: isinstance(json_of(t, 0), dict) and "typ" in json_of(t, 0) and not isinstance(json_of(t, 0)["typ"], str)),
]


def explain(token: str, extension_accepts: bool) -> Exception_ | None:
    return next((e for e in EXCEPTIONS if e.extension_accepts == extension_accepts and e.applies(token)), None)
