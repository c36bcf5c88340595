"""Sealing the personal fields of the other topics' records (streams/sealing.py: `seal_payload`), as their
topics name them (streams/catalog.py): inference requests and results, actions, decisions, audits."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from models.actions import AnswerInChannel, Ban, Reply, Report, SendMessage
from models.decisions import Decision, DecisionReason
from models.erasure import AnalyticsExportAnswer, AnalyticsExportRequest
from models.inference import ChatMessage, InferenceRequest
from models.memory import MemoryKind, RecalledNote
from models.operations import ModerationAudit, OwnerNotification
from processors.engine import Outputs
from streams.catalog import (
    AGENT_DECISIONS,
    DISCORD_ACTIONS,
    INFERENCE_LANES,
    INFERENCE_RESULTS,
    MODERATION_AUDIT,
    OWNER_NOTIFICATIONS,
    PRIVACY_EXPORT_ANSWERS,
    PRIVACY_EXPORTS,
    REPORT_BY_ERASED_MEMBER,
)
from streams.sealing import SealBroken, open_payload, seal_payload
from tests.ai.factories import inference_request, inference_result
from tests.data_keys import MemoryDataKeys

SAM, ALEX = "400000000000000004", "500000000000000005"
OWNER = UUID("00000000-0000-4000-8000-000000000001")


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


def in_a_channel(answered: str) -> InferenceRequest:
    """A request answering `answered` whose prompt holds Alex's, the agent's and the answered's turns."""
    request = asked_by(answered)
    system, current = request.messages
    history = [
        ChatMessage(role="user", name="alex", content="alex: my own words", author_id=ALEX),
        ChatMessage(role="assistant", content="Luna's own words"),
        ChatMessage(role="user", name="Bob", content="Bob: earlier", author_id=answered),
        ChatMessage(role="user", name="alex", content="alex: more of mine", author_id=ALEX),
    ]
    return request.model_copy(update={"messages": [system, *history, current]})


async def test_another_members_turns_in_a_prompt_are_sealed_under_their_key_and_left_out_once_erased() -> (
    None
):
    keys = MemoryDataKeys()
    request = in_a_channel(SAM)
    sealed = await seal_payload(request, LANE.sealing, keys)
    raw = LANE.codec.encode(sealed)
    assert b"my own words" not in raw and ALEX.encode() not in raw
    assert [part.key_id for part in sealed.sealed_references] == [keys.by_user[ALEX].key_id] * 2
    opened = await open_payload(LANE.codec.decode(raw), LANE.sealing, keys)
    assert opened == request
    # The model is sent no author ids.
    assert all("author_id" not in message.for_model() for message in request.messages)

    keys.destroy(ALEX)
    opened = await open_payload(sealed, LANE.sealing, keys)
    assert opened is not None
    assert [m.content for m in opened.messages] == [
        m.content for m in request.messages if m.author_id != ALEX
    ]


async def test_a_topics_sealed_value_is_its_sealed_payload_written_without_a_model_between() -> None:
    keys = MemoryDataKeys()
    request = in_a_channel(SAM)
    raw = await LANE.sealed_value(request, keys)
    assert b"my own words" not in raw and ALEX.encode() not in raw and b"my secret plan" not in raw
    decoded = LANE.codec.decode(raw)
    assert decoded.sealed is not None and len(decoded.sealed_references) == 2
    assert await open_payload(decoded, LANE.sealing, keys) == request
    # About no one person: the clear record, as the codec writes it.
    clear = decided(None)
    assert await AGENT_DECISIONS.sealed_value(clear, keys) == AGENT_DECISIONS.codec.encode(clear)


async def test_a_results_recalled_memory_of_another_member_is_left_out_once_they_are_erased() -> None:
    keys = MemoryDataKeys()
    result = inference_result("hi")
    notes = [
        RecalledNote(
            id=uuid4(),
            kind=MemoryKind.user_fact,
            author_id=author,
            text="likes tea",
            at=result.completed_at,
            score=0.5,
        )
        for author in (ALEX, SAM)
    ]
    target = result.target.model_copy(update={"author_id": SAM})
    result = result.model_copy(update={"target": target, "recalled": notes})
    sealed = await seal_payload(result, INFERENCE_RESULTS.sealing, keys)
    assert [part.key_id for part in sealed.sealed_references] == [keys.by_user[ALEX].key_id]
    assert await open_payload(sealed, INFERENCE_RESULTS.sealing, keys) == result
    keys.destroy(ALEX)
    opened = await open_payload(sealed, INFERENCE_RESULTS.sealing, keys)
    assert opened is not None and opened.recalled == notes[1:]


async def test_a_prompt_turn_moved_removed_or_swapped_does_not_open() -> None:
    keys = MemoryDataKeys()
    sealed = await seal_payload(in_a_channel(SAM), LANE.sealing, keys)
    first, second = sealed.sealed_references
    other = await seal_payload(in_a_channel(SAM), LANE.sealing, keys)
    tampered = [
        [second],
        [first.model_copy(update={"field": second.field}), second],
        [other.sealed_references[0], second],
    ]
    for references in tampered:
        with pytest.raises(SealBroken):
            await open_payload(
                sealed.model_copy(update={"sealed_references": references}), LANE.sealing, keys
            )


def test_a_clear_request_without_messages_is_rejected_naming_the_field() -> None:
    request = asked_by(None)
    with pytest.raises(ValidationError, match="messages"):
        InferenceRequest.model_validate({**request.model_dump(), "messages": []})


BOT, GUILD, CHANNEL, MESSAGE = (
    "300000000000000003",
    "100000000000000001",
    "200000000000000002",
    "600000000000006",
)


def reply_to(user: str | None, content: str = "Sam, my secret plan is safe") -> Reply:
    return Reply(
        action_id="reply-1",
        bot_id=BOT,
        guild_id=GUILD,
        channel_id=CHANNEL,
        message_id=MESSAGE,
        content=content,
        about_user_id=user,
    )


def ban(user: str) -> Ban:
    report = Report(
        done=f"<@{user}> was banned",
        failed=f"<@{user}> could not be banned",
        answer=AnswerInChannel(channel_id=CHANNEL),
    )
    return Ban(
        action_id="ban-1",
        bot_id=BOT,
        guild_id=GUILD,
        user_id=user,
        reason="my secret plan",
        report=report,
    )


async def test_a_reply_and_a_ban_round_trip_their_words_and_member_not_in_the_topic_bytes() -> None:
    keys = MemoryDataKeys()
    for action in (reply_to(SAM), ban(SAM)):
        raw = DISCORD_ACTIONS.codec.encode(await seal_payload(action, DISCORD_ACTIONS.sealing, keys))
        assert b"my secret plan" not in raw and SAM.encode() not in raw
        # What the gateway routes it by stays clear.
        assert BOT.encode() in raw and action.kind.encode() in raw
        assert await open_payload(DISCORD_ACTIONS.codec.decode(raw), DISCORD_ACTIONS.sealing, keys) == action


async def test_an_action_about_an_erased_member_opens_as_erased_and_one_about_no_one_stays_clear() -> None:
    keys = MemoryDataKeys()
    sealed = [
        await seal_payload(action, DISCORD_ACTIONS.sealing, keys) for action in (reply_to(SAM), ban(SAM))
    ]
    keys.destroy(SAM)
    assert [await open_payload(action, DISCORD_ACTIONS.sealing, keys) for action in sealed] == [None, None]
    announcement = SendMessage(
        action_id="a", bot_id=BOT, guild_id=GUILD, channel_id=CHANNEL, content="hi all"
    )
    assert await seal_payload(announcement, DISCORD_ACTIONS.sealing, keys) == announcement


def test_a_clear_ban_without_its_member_is_rejected_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="user_id"):
        Ban(action_id="b", bot_id=BOT, guild_id=GUILD)


def decided(author: str | None) -> Decision:
    request = asked_by(None)
    return Decision(
        event_id=request.event_id,
        deployment_id=request.deployment_id,
        agent_id=request.agent_id,
        guild_id=GUILD,
        channel_id=CHANNEL,
        message_id=MESSAGE,
        author_id=author,
        respond=True,
        reason=DecisionReason.mentioned,
    )


async def test_a_decision_seals_its_author_and_opens_as_erased_once_their_key_is_destroyed() -> None:
    keys = MemoryDataKeys()
    decision = decided(SAM)
    raw = AGENT_DECISIONS.codec.encode(await seal_payload(decision, AGENT_DECISIONS.sealing, keys))
    assert SAM.encode() not in raw and MESSAGE.encode() in raw
    sealed = AGENT_DECISIONS.codec.decode(raw)
    assert await open_payload(sealed, AGENT_DECISIONS.sealing, keys) == decision
    keys.destroy(SAM)
    assert await open_payload(sealed, AGENT_DECISIONS.sealing, keys) is None
    routine = decided(None)  # a routine's decision is about no one
    assert await seal_payload(routine, AGENT_DECISIONS.sealing, keys) is routine


async def test_an_audit_seals_the_member_the_moderator_and_the_reason_under_the_members_key() -> None:
    keys = MemoryDataKeys()
    audit = ModerationAudit(
        audit_id="audit-1",
        deployment_id=asked_by(None).deployment_id,
        guild_id=GUILD,
        user_id=SAM,
        moderator_id=ALEX,
        source="command",
        rule="ban",
        actions=["ban"],
        reason="my secret plan",
    )
    raw = MODERATION_AUDIT.codec.encode(await seal_payload(audit, MODERATION_AUDIT.sealing, keys))
    for personal in (SAM, ALEX, "my secret plan"):
        assert personal.encode() not in raw
    sealed = MODERATION_AUDIT.codec.decode(raw)
    assert await open_payload(sealed, MODERATION_AUDIT.sealing, keys) == audit
    keys.destroy(SAM)
    assert await open_payload(sealed, MODERATION_AUDIT.sealing, keys) is None
    with pytest.raises(ValidationError, match="user_id"):
        ModerationAudit.model_validate({**audit.model_dump(), "user_id": None})


async def test_an_access_exports_request_and_answer_name_their_user_only_under_the_users_key() -> None:
    keys = MemoryDataKeys()
    request = AnalyticsExportRequest(export_id=uuid4(), user_id=SAM)
    answer = AnalyticsExportAnswer(
        export_id=request.export_id,
        user_id=SAM,
        rows={"events": [{"author_id": SAM, "kind": "MESSAGE_CREATE"}]},
    )
    for spec, record in ((PRIVACY_EXPORTS, request), (PRIVACY_EXPORT_ANSWERS, answer)):
        raw = spec.codec.encode(await seal_payload(record, spec.sealing, keys))
        assert SAM.encode() not in raw and b"MESSAGE_CREATE" not in raw, spec.name
        assert await open_payload(spec.codec.decode(raw), spec.sealing, keys) == record
    sealed = await seal_payload(answer, PRIVACY_EXPORT_ANSWERS.sealing, keys)
    keys.destroy(SAM)
    assert await open_payload(sealed, PRIVACY_EXPORT_ANSWERS.sealing, keys) is None
    with pytest.raises(ValidationError, match="user_id"):
        AnalyticsExportRequest.model_validate({"export_id": str(uuid4()), "user_id": None})


async def test_the_processors_seal_the_requests_actions_and_decisions_they_publish() -> None:
    keys = MemoryDataKeys()
    outputs = Outputs(
        actions=[reply_to(SAM)], decisions=[decided(SAM)], requests=[asked_by(SAM), asked_by(None)]
    )
    [(_, _, reply), (_, _, decision), (_, _, answering), (_, _, proactive)] = list(
        await outputs.records("guild", keys)
    )
    assert SAM.encode() not in reply and b"my secret plan" not in reply
    assert SAM.encode() not in decision
    assert SAM.encode() not in answering and b"my secret plan" not in answering
    assert b"my secret plan" not in proactive  # a request answering no one, under its bot's key


async def test_a_post_an_agent_makes_on_its_own_is_sealed_under_its_bot_its_members_turns_under_theirs() -> (
    None
):
    """A routine's or a story beat's request answers no one, but carries the channel's recent history: the
    members' turns are erased with their authors, and the rest of it is sealed under the bot's own key."""
    keys = MemoryDataKeys()
    request = in_a_channel(SAM)
    request = request.model_copy(update={"target": request.target.model_copy(update={"author_id": None})})
    sealed = await seal_payload(request, LANE.sealing, keys)
    raw = LANE.codec.encode(sealed)
    for personal in (b"my own words", ALEX.encode(), b"Bob: earlier", SAM.encode(), b"Luna's own words"):
        assert personal not in raw
    assert sealed.sealed is not None and sealed.sealed.key_id == keys.by_user[request.target.bot_id].key_id
    assert {part.key_id for part in sealed.sealed_references} == {
        keys.by_user[ALEX].key_id,
        keys.by_user[SAM].key_id,
    }
    assert await open_payload(LANE.codec.decode(raw), LANE.sealing, keys) == request

    keys.destroy(ALEX)
    opened = await open_payload(sealed, LANE.sealing, keys)
    assert opened is not None
    assert [m.content for m in opened.messages] == [
        m.content for m in request.messages if m.author_id != ALEX
    ]

    result = inference_result("what alex said: my own words")
    result = result.model_copy(update={"target": result.target.model_copy(update={"author_id": None})})
    raw = INFERENCE_RESULTS.codec.encode(await seal_payload(result, INFERENCE_RESULTS.sealing, keys))
    assert b"my own words" not in raw
    assert await open_payload(INFERENCE_RESULTS.codec.decode(raw), INFERENCE_RESULTS.sealing, keys) == result


def notification(about: str | None, message: str) -> OwnerNotification:
    return OwnerNotification(
        notification_id="n-1",
        owner_id=OWNER,
        kind="message_reported" if about else "token_revoked",
        message=message,
        deployment_id=OWNER,
        about_user_id=about,
    )


async def test_a_report_is_sealed_under_its_reporter_and_a_token_notice_stays_clear() -> None:
    keys = MemoryDataKeys()
    sealing = OWNER_NOTIFICATIONS.sealing
    report = notification(SAM, f"User {SAM} reported a message because: my secret plan")
    raw = OWNER_NOTIFICATIONS.codec.encode(await seal_payload(report, sealing, keys))
    assert b"my secret plan" not in raw and SAM.encode() not in raw
    assert str(OWNER).encode() in raw  # the owner it is for routes it
    sealed = OWNER_NOTIFICATIONS.codec.decode(raw)
    assert await open_payload(sealed, sealing, keys) == report
    # The reporter erased: the clear part says a report was made, by no one named.
    keys.destroy(SAM)
    assert await open_payload(sealed, sealing, keys) is None
    assert sealed.message == REPORT_BY_ERASED_MEMBER and sealed.about_user_id is None
    revoked = notification(None, "the token of bot 1 was revoked")
    assert await seal_payload(revoked, sealing, keys) == revoked
