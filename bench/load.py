"""Load time of large configurations: a backend's first statement after a change to
oidc.issuers or oidc.rules reads and validates every row again (issuers: JWKS parsing and key
import; rules: CEL compilation); each later statement of the transaction, and of the next
ones until the next change, uses the loaded copy. Reported per size: the first statement
after a change, and the same statement with the configuration loaded (the baseline).

    make bench            (installs the release build, starts the throwaway cluster)

Every issuer has the same realistic key set (two RSA-2048 keys and one P-256 key, as a
provider publishes during a rotation) under its own issuer URL; every rule has its own
condition. A change to one row (from another connection) invalidates the whole set."""

import base64
import json
import statistics
import time

import psycopg
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from common import ISS, RUNS, fresh_database, token

SIZES = (100, 1_000, 10_000)


def b64(n: int, size: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(size, "big")).rstrip(b"=").decode()


def key_set() -> str:
    keys = []
    for i in range(2):
        pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers()
        keys.append({"kty": "RSA", "kid": f"r{i}", "alg": "RS256", "use": "sig",
                     "n": b64(pub.n, 256), "e": b64(pub.e, 3)})
    pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    keys.append({"kty": "EC", "kid": "e0", "crv": "P-256", "alg": "ES256", "use": "sig",
                 "x": b64(pub.x, 32), "y": b64(pub.y, 32)})
    return json.dumps({"keys": keys})


def timed(conn: psycopg.Connection, sql: str) -> float:
    """Wall-clock milliseconds of one statement over the socket (the load happens inside it)."""
    start = time.perf_counter()
    conn.execute(sql)
    return (time.perf_counter() - start) * 1000


def first_and_warm(reader: psycopg.Connection, writer: psycopg.Connection, change: str,
                   statement: str) -> tuple[float, float]:
    firsts, warms = [], []
    for run in range(RUNS):
        writer.execute(change, (f"run {run}",))
        with reader.transaction():
            reader.execute("select set_config('oidc.token', %s, true)", (token(sub="load"),))
            firsts.append(timed(reader, statement))
        with reader.transaction():
            reader.execute("select set_config('oidc.token', %s, true)", (token(sub="load"),))
            warms.append(timed(reader, statement))
    return statistics.median(firsts), statistics.median(warms)


def main():
    conn = fresh_database("oidc_bench_load")
    jwks = key_set()
    print(f"configuration load: median of {RUNS} changes, first statement after a change"
          " vs the same statement with the configuration loaded")
    print(f"{'table':8} {'rows':>7} {'first ms':>9} {'loaded ms':>10} {'per row µs':>11}")
    with psycopg.connect(dbname="oidc_bench_load", autocommit=True) as reader:
        for size in SIZES:
            conn.execute("delete from oidc.issuers where issuer <> %s", (ISS,))
            conn.execute(
                "insert into oidc.issuers (issuer, audiences, jwks) select 'https://issuer-' || i || '.test',"
                " '{bench}', %s::jsonb from generate_series(2, %s) i", (jwks, size))
            first, warm = first_and_warm(reader, conn, "update oidc.issuers set audiences = audiences"
                                         " where issuer = 'https://issuer-2.test' and %s::text is not null",
                                         "select oidc.sub()")
            print(f"{'issuers':8} {size:7} {first:9.1f} {warm:10.2f} {1000 * (first - warm) / size:11.1f}")
        conn.execute("delete from oidc.issuers where issuer <> %s", (ISS,))
        for size in SIZES:
            conn.execute("delete from oidc.rules")
            conn.execute(
                "insert into oidc.rules (name, effect, actions, resource_type, condition)"
                " select 'r' || lpad(i::text, 5, '0'), 'permit', '{read}', 'doc',"
                " 'resource.n == ' || i || ' && claims.sub.startsWith(\"user-' || i || '\")'"
                " from generate_series(1, %s) i", (size,))
            first, warm = first_and_warm(reader, conn, "update oidc.rules set description = %s where name = 'r00001'",
                                         "select oidc.allow('read', 'doc', 'n', 1)")
            print(f"{'rules':8} {size:7} {first:9.1f} {warm:10.2f} {1000 * (first - warm) / size:11.1f}")
        conn.execute("delete from oidc.rules")


if __name__ == "__main__":
    main()
