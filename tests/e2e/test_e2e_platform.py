"""Issues 4 and 5 end to end: emulator -> gateway -> Kafka -> processors (Faust) -> Kafka -> inference ->
gateway -> emulator, with real Kafka, PostgreSQL and Redis, in the demo world (tests/e2e/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from models.decisions import Decision, DecisionReason
from models.inference import InferenceRequest
from streams.catalog import AGENT_DECISIONS, INFERENCE_LANES
from tests.e2e.conftest import COMPLETION, Demo, message_text

pytestmark = [pytest.mark.stack, pytest.mark.shared_demo]

# How long the lanes are read for a request that must not be there, after the decision was made.
ABSENCE_S = 3.0


def said_by(bot_id: str, text: str) -> Any:
    """Matches an interaction response, message or reply of `bot_id` whose text contains `text`."""

    def match(action: dict[str, Any]) -> bool:
        payload = action["payload"]
        shown = message_text(payload.get("data")) if action["kind"] == "interaction_response" else ""
        shown = shown or message_text(payload)
        return action["bot_id"] == bot_id and text.lower() in shown.lower()

    return match


async def slash(demo: Demo, bot: str, user: str, channel: str, name: str, /, **options: str) -> int:
    """Invoke a slash command as `user`; returns the action sequence number before it."""
    since = await demo.last_seq()
    values = [{"name": k, "type": 6 if k == "user" else 3, "value": v} for k, v in options.items()]
    await demo.control.invoke_command(demo.bots[bot], demo.users[user], demo.channels[channel], name, values)
    return since


async def test_music_commands_play_queue_and_skip(demo: Demo) -> None:
    music = demo.bots["Music Bot"]
    # Both are tracks of the demo's music library ("you" listens in the Lounge): a title the library lacks
    # would fail to play, and the queue would move past it by itself.
    since = await slash(demo, "Music Bot", "you", "music", "play", query="lofi")
    played = await demo.wait_action(since, said_by(music, "Playing: lofi"))
    assert played["kind"] == "interaction_response"
    since = await slash(demo, "Music Bot", "you", "music", "play", query="jazz")
    await demo.wait_action(since, said_by(music, "Queued: jazz"))
    since = await slash(demo, "Music Bot", "you", "music", "skip")
    await demo.wait_action(since, said_by(music, "Skipped: lofi. Playing: jazz"))
    since = await slash(demo, "Music Bot", "you", "music", "queue")
    queue = await demo.wait_action(since, said_by(music, "Now playing: jazz"))
    shown = message_text(queue["payload"].get("data"))
    assert "lofi" not in shown and "Up next" not in shown, shown


async def test_ban_needs_the_ban_members_permission(demo: Demo) -> None:
    mod, ben, carmen = demo.bots["Mod Bot"], demo.users["ben"], demo.users["carmen"]
    start = await demo.last_seq()
    # A member's interaction carries @everyone's permissions: refused, ephemerally, and nobody is banned.
    since = await slash(demo, "Mod Bot", "aiko", "general", "ban", user=ben, reason="testing")
    await demo.wait_action(since, said_by(mod, "You need the Ban Members permission to use /ban"))
    # The guild's owner has every permission (processors/permissions.py), here through the prefix command.
    since = await demo.last_seq()
    await demo.control.post_user_message(
        demo.users["owner"], f"!ban <@{carmen}> spamming", demo.channels["general"]
    )
    ban = await demo.wait_action(since, lambda a: a["kind"] == "ban" and a["payload"]["user_id"] == carmen)
    assert ban["bot_id"] == mod
    assert ban["payload"]["reason"] == "spamming"
    # Told once Discord has confirmed it, after the ban.
    banned = await demo.wait_action(since, said_by(mod, f"Banned <@{carmen}>: spamming"))
    assert banned["seq"] > ban["seq"]
    # Another bot's role is not below Mod Bot's: named by a bare id (no member roles come with the message),
    # Discord refuses the ban, and the channel is told why.
    luna = demo.bots["Luna"]
    since = await demo.last_seq()
    await demo.control.post_user_message(demo.users["owner"], f"!ban {luna} raid", demo.channels["general"])
    await demo.wait_action(since, said_by(mod, f"Could not ban <@{luna}>: Discord answered 403"))
    bans = await demo.control.actions(since=start, kind="ban")
    assert [b["payload"]["user_id"] for b in bans] == [carmen]


async def test_a_poll_is_discords_own_and_its_results_are_announced_when_it_ends(demo: Demo) -> None:
    luna = demo.bots["Luna"]
    since = await slash(demo, "Luna", "you", "general", "poll", question="Snack? | boba | mochi")
    # The message carrying the poll: the callback itself, or (deferred) the follow-up that replaces it.
    asked = await demo.wait_action(
        since,
        lambda a: (
            a["kind"] == "interaction_response"
            and a["bot_id"] == luna
            and bool((a["payload"].get("data") or {}).get("poll"))
        ),
    )
    poll_message = asked["payload"]["message_id"]
    general = demo.channels["general"]
    await demo.control.vote_poll(general, poll_message, demo.users["ben"], 2)
    since = await demo.last_seq()
    await demo.control.end_poll(general, poll_message)  # Discord closes it when its duration is up
    announced = await demo.wait_action(since, said_by(luna, "Poll closed: Snack?"))
    assert announced["kind"] == "reply"
    assert "Winner: mochi" in message_text(announced["payload"])


async def test_a_spammer_is_timed_out_by_the_auto_mod(demo: Demo) -> None:
    guardian, spammer = demo.bots["Guardian"], demo.users["dev"]
    since = await demo.last_seq()
    # Guardian's spam rule: more than 5 messages in 5 s in one channel (distinct lines, not the repeat rule).
    for n in range(8):
        await demo.control.post_user_message(spammer, f"buy my mixtape volume {n}", demo.channels["gaming"])
    timeout = await demo.wait_action(
        since, lambda a: a["kind"] == "timeout" and a["payload"]["user_id"] == spammer
    )
    assert timeout["bot_id"] == guardian


async def test_luna_answers_a_mention_through_the_inference_server(demo: Demo) -> None:
    luna, you = demo.bots["Luna"], demo.users["you"]
    calls_before = len(demo.inference.calls)
    since = await demo.last_seq()
    posted = await demo.control.post_user_message(
        you, f"<@{luna}> what are you playing tonight?", demo.channels["general"]
    )
    decision: Decision = await demo.wait_record(
        AGENT_DECISIONS,
        lambda d: d.deployment_id == demo.deployments["Luna"] and d.message_id == posted["id"],
    )
    assert decision.respond and decision.reason is DecisionReason.mentioned
    reply = await demo.wait_action(since, said_by(luna, COMPLETION.split()[1]))  # "nebula", styled around
    assert reply["kind"] in ("reply", "message")
    asked = [c for c in demo.inference.calls[calls_before:] if "what are you playing tonight" in c.last_user]
    assert asked, [c.last_user for c in demo.inference.calls]
    # The user's text reached the server in a user-role message only.
    assert all(
        "what are you playing" not in str(m.get("content"))
        for m in asked[0].messages
        if m["role"] == "system"
    )


async def test_a_mode_1_bot_mentioned_makes_no_inference_request(demo: Demo) -> None:
    music, deployment = demo.bots["Music Bot"], demo.deployments["Music Bot"]
    posted = await demo.control.post_user_message(
        demo.users["elif"], f"<@{music}> do you have feelings?", demo.channels["general"]
    )
    decision: Decision = await demo.wait_record(
        AGENT_DECISIONS, lambda d: d.deployment_id == deployment and d.message_id == posted["id"]
    )
    assert not decision.respond and decision.reason is DecisionReason.ai_disabled
    for lane in INFERENCE_LANES.values():
        requests: list[InferenceRequest] = await demo.read_records(
            lane, lambda r: r.deployment_id == deployment, ABSENCE_S
        )
        assert requests == [], lane.name
    # The server may still see this text: the AI characters in #general can answer it themselves.
