"""Sealing the personal fields of the other topics' records (streams/sealing.py: `seal_payload`), as their
topics name them (streams/catalog.py): inference requests and results."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from models.inference import InferenceRequest
from processors.engine import Outputs
from streams.catalog import INFERENCE_LANES, INFERENCE_RESULTS
from streams.sealing import SealBroken, open_payload, seal_payload
from tests.ai.factories import inference_request, inference_result
from tests.data_keys import MemoryDataKeys

SAM, ALEX = "400000000000000004", "500000000000000005"


def asked_by(author_id: str | None, text: str = "my secret plan") -> InferenceRequest:
    request = inference_request(text=text, author_id=author_id)
    return request.model_copy(update={"target": request.target.model_copy(update={"greet_as": "Samwise"})})


LANE = INFERENCE_LANES[asked_by(None).lane]


async def test_a_request_round_trips_and_its_prompt_and_user_are_not_in_the_topic_bytes() -> None:
    keys = MemoryDataKeys()
    request = asked_by(SAM)
    sealed = await seal_payload(request, LANE.sealing, keys)
    raw = LANE.codec.encode(sealed)
    for personal in (b"my secret plan", SAM.encode(), b"Bob", b"Samwise"):
        assert personal not in raw
    # What routes and bills it stays clear.
    assert str(request.owner_id).encode() in raw and request.target.channel_id.encode() in raw
    assert await open_payload(LANE.codec.decode(raw), LANE.sealing, keys) == request


async def test_a_result_round_trips_and_its_text_and_user_are_not_in_the_topic_bytes() -> None:
    keys = MemoryDataKeys()
    result = inference_result("Bob: my secret plan, you said")
    result = result.model_copy(update={"target": result.target.model_copy(update={"author_id": SAM})})
    sealed = await seal_payload(result, INFERENCE_RESULTS.sealing, keys)
    raw = INFERENCE_RESULTS.codec.encode(sealed)
    assert b"my secret plan" not in raw and SAM.encode() not in raw
    opened = await open_payload(INFERENCE_RESULTS.codec.decode(raw), INFERENCE_RESULTS.sealing, keys)
    assert opened == result


async def test_a_request_answering_no_one_stays_clear() -> None:
    request = asked_by(None)
    assert await seal_payload(request, LANE.sealing, MemoryDataKeys()) == request


async def test_a_request_whose_key_is_destroyed_opens_as_erased_and_another_users_still_opens() -> None:
    keys = MemoryDataKeys()
    mine, theirs = [await seal_payload(asked_by(user), LANE.sealing, keys) for user in (SAM, ALEX)]
    keys.destroy(SAM)
    assert await open_payload(mine, LANE.sealing, keys) is None
    opened = await open_payload(theirs, LANE.sealing, keys)
    assert opened is not None and opened.target.author_id == ALEX


async def test_a_sealed_part_moved_to_another_record_does_not_open() -> None:
    keys = MemoryDataKeys()
    request = await seal_payload(asked_by(SAM), LANE.sealing, keys)
    other = await seal_payload(asked_by(SAM, "something else"), LANE.sealing, keys)
    moved = other.model_copy(update={"sealed": request.sealed})
    with pytest.raises(SealBroken):
        await open_payload(moved, LANE.sealing, keys)
    # Its result has the same request id, and its own kind of sealed part.
    result = inference_result("hi", request_id=request.request_id)
    with pytest.raises(SealBroken):
        await open_payload(
            result.model_copy(update={"sealed": request.sealed}), INFERENCE_RESULTS.sealing, keys
        )


def test_a_clear_request_without_messages_is_rejected_naming_the_field() -> None:
    request = asked_by(None)
    with pytest.raises(ValidationError, match="messages"):
        InferenceRequest.model_validate({**request.model_dump(), "messages": []})


async def test_the_processors_seal_the_requests_they_publish() -> None:
    keys = MemoryDataKeys()
    outputs = await Outputs(requests=[asked_by(SAM), asked_by(None)]).sealed(keys)
    [(_spec, _key, answering), (_, _, proactive)] = list(outputs.records("guild"))
    assert SAM.encode() not in answering and b"my secret plan" not in answering
    assert b"my secret plan" in proactive  # a request answering no one is about no one person
