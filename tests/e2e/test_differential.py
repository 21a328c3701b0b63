"""The extension and PyJWT, configured with the same keys and checks, agree on accepting or
refusing every generated token, except where differential.EXCEPTIONS names why (see there).
DIFFERENTIAL_CASES and DIFFERENTIAL_SEED choose the run; `make differential` runs more."""

from __future__ import annotations

import collections
import os
import random

import pytest

import differential
from helpers import connect

CASES = int(os.environ.get("DIFFERENTIAL_CASES", "3000"))
SEED = int(os.environ.get("DIFFERENTIAL_SEED", "7515"))
BATCH = 500


@pytest.fixture
def status_of(issuer, superuser):
    """Each token's oidc.token_status() in one transaction per batch, as a session sees it."""
    superuser.execute("""
        create or replace function public.e2e_status_of(tok text) returns jsonb
        language plpgsql volatile as $$
        begin
            perform set_config('oidc.token', tok, true);
            return oidc.token_status();
        end $$""")

    with connect() as conn:
        def run(tokens: list[str]) -> list[dict]:
            with conn.transaction():
                return [r for (r,) in conn.execute(
                    "select public.e2e_status_of(t) from unnest(%s::text[]) with ordinality u(t, n) order by n",
                    (tokens,)).fetchall()]
        yield run
    superuser.execute("drop function public.e2e_status_of(text)")


def decided(status_of):
    """(case, extension's status, PyJWT's answer), a batch at a time so that both decide
    within seconds of the tokens' making."""
    rng = random.Random(SEED)
    for start in range(0, CASES, BATCH):
        batch = differential.cases(min(BATCH, CASES - start), rng, start)
        for case, status in zip(batch, status_of([c.token for c in batch]), strict=True):
            yield case, status, differential.reference(case.token)


def test_the_extension_agrees_with_pyjwt(status_of):
    unexplained, explained = [], collections.Counter()
    accepted = 0
    for case, status, (theirs, why) in decided(status_of):
        ours = bool(status["valid"])
        accepted += ours
        if ours == theirs:
            continue
        exception = differential.explain(case.token, extension_accepts=ours)
        if exception is None:
            unexplained.append(f"{case.mutations}: extension {'accepts' if ours else 'refuses (' + str(status.get('check')) + ')'},"
                               f" PyJWT {'accepts' if theirs else 'refuses (' + why + ')'}: {case.token[:120]}")
        else:
            explained[exception.name] += 1
    print(f"\n{CASES} cases (seed {SEED}): {accepted} accepted; explained differences: {dict(explained)}")
    assert not unexplained, f"{len(unexplained)} unexplained disagreements:\n" + "\n".join(unexplained[:40])
    # The run must exercise both answers and the exceptions, or it proves little.
    assert CASES // 10 < accepted < CASES - CASES // 10
    if CASES >= 3000:
        assert len(explained) >= len(differential.EXCEPTIONS) // 2, explained
