"""The request ledger against the real Redis: a claim is taken once, its answer is what a redelivery gets, the
call is counted in the same round trip, and a claim still works when the server has lost the claim script."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

import inference.ledger
from inference.ledger import RequestLedger
from inference.quota import Charge

pytestmark = pytest.mark.stack


async def test_a_request_is_claimed_once_and_a_redelivery_gets_the_answer(
    redis: Redis, key_prefix: str
) -> None:
    ledger = RequestLedger(redis, key_prefix, lease_s=60, result_ttl_s=60)
    charge = Charge(f"{key_prefix}calls", limit=1)
    first = await ledger.claim("r1", charge)
    assert (first.owned, first.charged) == (True, True)
    assert (await ledger.claim("r1", charge)).owned is False  # claimed, not answered yet
    await ledger.answer("r1", b"the result")
    again = await ledger.claim("r1", charge)
    assert (again.owned, again.result) == (False, b"the result")
    # Over the limit of one call: claimed, not counted.
    assert (await ledger.claim("r2", charge)).charged is False
    assert await redis.get(charge.key) == b"1"


async def test_a_claim_works_when_the_server_has_lost_the_script(
    redis: Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A digest the server has never seen answers NOSCRIPT, as after a restart or SCRIPT FLUSH.
    monkeypatch.setattr(inference.ledger, "_CLAIM_SHA", "0" * 40)
    ledger = RequestLedger(redis, key_prefix, lease_s=60, result_ttl_s=60)
    claim = await ledger.claim("r1")
    assert (claim.owned, claim.charged) == (True, None)
    assert await redis.get(f"{key_prefix}request:r1") == b"pending"
