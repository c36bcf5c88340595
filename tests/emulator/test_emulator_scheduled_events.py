"""Guild scheduled events in the emulator: created as the gateway plans them, validated naming the field,
moved through their statuses (and not beyond), users interested, deleted, each change dispatched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from emulator_helpers import DEFAULT_INTENTS, RawGateway, Scene, scene

from emulator.discord import DiscordEmulator, EmulatorControl, Intent
from gateways.actions import RestCall, plan
from models.actions import CreateScheduledEvent, ScheduledEventStatus, SetScheduledEventStatus

pytestmark = pytest.mark.stack

SOON = datetime.now(UTC) + timedelta(days=1)


class Api:
    def __init__(self, http: aiohttp.ClientSession, emu: DiscordEmulator, s: Scene) -> None:
        self.http, self.emu, self.s = http, emu, s

    async def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bot {self.s.bot.token}"}
        async with self.http.request(method, self.emu.api_url + path, json=body, headers=headers) as r:
            return r.status, (await r.json(content_type=None) if r.status != 204 else None)

    async def call(self, call: RestCall) -> tuple[int, Any]:
        """A call as the gateway plans it (gateways/actions.py)."""
        return await self(call.method, call.path.format(**call.params), call.body)


def voice_event(s: Scene, **changes: Any) -> dict[str, Any]:
    return {
        "name": "Trivia night",
        "privacy_level": 2,
        "scheduled_start_time": SOON.isoformat(),
        "scheduled_end_time": (SOON + timedelta(hours=1)).isoformat(),
        "entity_type": 2,
        "channel_id": s.voice.id,
        **changes,
    }


async def test_the_gateways_create_and_status_calls_drive_an_event_through_its_life(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    api = Api(http, emu, s)
    watcher = RawGateway(http, emu.gateway_url)
    await watcher.connect()
    await watcher.identify(s.bot.token, DEFAULT_INTENTS)
    common = {"bot_id": s.bot.id, "guild_id": s.guild.id, "action_id": "a1"}
    create = CreateScheduledEvent(
        name="Trivia night",
        description="Questions!",
        scheduled_start_time=SOON,
        scheduled_end_time=SOON + timedelta(hours=1),
        voice_channel_id=s.voice.id,
        **common,
    )
    plan_create = plan(create, datetime.now(UTC))
    assert isinstance(plan_create, RestCall)
    status, created = await api.call(plan_create)
    assert status == 200, created
    assert (created["creator_id"], created["entity_type"], created["status"]) == (s.bot.id, 2, 1)
    assert created["channel_id"] == s.voice.id and created["privacy_level"] == 2
    dispatched = (await watcher.dispatch("GUILD_SCHEDULED_EVENT_CREATE"))["d"]
    assert dispatched["id"] == created["id"] and dispatched["name"] == "Trivia night"

    async with EmulatorControl(emu.base_url) as control:
        await control.mark_interested(s.guild.id, created["id"], s.alice.id)
        added = (await watcher.dispatch("GUILD_SCHEDULED_EVENT_USER_ADD"))["d"]
        assert added == {
            "guild_scheduled_event_id": created["id"],
            "user_id": s.alice.id,
            "guild_id": s.guild.id,
        }
        [listed] = await control.scheduled_events(s.guild.id)
        assert listed["user_count"] == 1
    status, users = await api("GET", f"/guilds/{s.guild.id}/scheduled-events/{created['id']}/users")
    assert status == 200 and [u["user"]["id"] for u in users] == [s.alice.id]

    def set_status(value: ScheduledEventStatus) -> RestCall:
        action = SetScheduledEventStatus(event_id=created["id"], status=value, **common)
        planned = plan(action, datetime.now(UTC))
        assert isinstance(planned, RestCall)
        return planned

    # SCHEDULED cannot jump to COMPLETED.
    status, refused = await api.call(set_status(ScheduledEventStatus.completed))
    assert status == 400 and refused["code"] == 50035 and "status" in refused["errors"]
    for value in (ScheduledEventStatus.active, ScheduledEventStatus.completed):
        status, changed = await api.call(set_status(value))
        assert status == 200 and changed["status"] == value
        assert (await watcher.dispatch("GUILD_SCHEDULED_EVENT_UPDATE"))["d"]["status"] == value
    status, finished = await api.call(set_status(ScheduledEventStatus.canceled))
    assert status == 400 and finished["code"] == 180000
    kinds = [a.kind for a in emu.actions(bot_id=s.bot.id) if a.kind.startswith("scheduled_event")]
    assert kinds == ["scheduled_event_create", "scheduled_event_update", "scheduled_event_update"]

    status, _ = await api("DELETE", f"/guilds/{s.guild.id}/scheduled-events/{created['id']}")
    assert status == 204
    assert (await watcher.dispatch("GUILD_SCHEDULED_EVENT_DELETE"))["d"]["id"] == created["id"]
    status, gone = await api("GET", f"/guilds/{s.guild.id}/scheduled-events/{created['id']}")
    assert status == 404 and gone["code"] == 10070
    await watcher.close()


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"name": None}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"privacy_level": 1}, "privacy_level"),
        ({"entity_type": 9}, "entity_type"),
        ({"scheduled_start_time": "tomorrow"}, "scheduled_start_time"),
        (
            {"scheduled_start_time": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
            "scheduled_start_time",
        ),
        ({"scheduled_end_time": (SOON - timedelta(hours=1)).isoformat()}, "scheduled_end_time"),
        ({"channel_id": None}, "channel_id"),
        ({"entity_type": 3}, "channel_id"),
        ({"entity_type": 3, "channel_id": None}, "entity_metadata.location"),
        (
            {
                "entity_type": 3,
                "channel_id": None,
                "entity_metadata": {"location": "Park"},
                "scheduled_end_time": None,
            },
            "scheduled_end_time",
        ),
        ({"status": 2}, "status"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_a_bad_body_is_refused_naming_the_field(
    emu: DiscordEmulator, http: aiohttp.ClientSession, changes: dict[str, Any], path: str
) -> None:
    s = scene(emu)
    body = {k: v for k, v in voice_event(s, **changes).items() if v is not None}
    status, refused = await Api(http, emu, s)("POST", f"/guilds/{s.guild.id}/scheduled-events", body)
    assert status == 400 and refused["code"] == 50035
    errors = refused["errors"]
    for part in path.split("."):
        errors = errors[part]
    assert errors["_errors"]
    assert not s.guild.scheduled_events


async def test_a_voice_event_needs_a_voice_channel_and_an_external_one_a_place(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    api = Api(http, emu, s)
    status, refused = await api(
        "POST", f"/guilds/{s.guild.id}/scheduled-events", voice_event(s, channel_id=s.text.id)
    )
    assert status == 400 and "channel_id" in refused["errors"]
    external = voice_event(s, entity_type=3, entity_metadata={"location": "Cinema Paradiso"})
    del external["channel_id"]
    status, created = await api("POST", f"/guilds/{s.guild.id}/scheduled-events", external)
    assert status == 200 and created["entity_metadata"] == {"location": "Cinema Paradiso"}
    status, listed = await api("GET", f"/guilds/{s.guild.id}/scheduled-events?with_user_count=true")
    assert status == 200 and [e["user_count"] for e in listed] == [0]


async def test_only_sessions_with_the_scheduled_events_intent_hear_of_them(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    deaf = RawGateway(http, emu.gateway_url)
    await deaf.connect()
    await deaf.identify(s.bot.token, DEFAULT_INTENTS & ~Intent.GUILD_SCHEDULED_EVENTS)
    status, _ = await Api(http, emu, s)("POST", f"/guilds/{s.guild.id}/scheduled-events", voice_event(s))
    assert status == 200
    # A message after the event: everything the session gets up to the message, and no event among it.
    emu.post_user_message(s.alice.id, "hello", channel_id=s.text.id)
    heard: list[str] = []
    while not heard or heard[-1] != "MESSAGE_CREATE":
        frame = await deaf.frame()
        if frame.get("t"):
            heard.append(frame["t"])
    assert not [kind for kind in heard if kind.startswith("GUILD_SCHEDULED_EVENT")]
    await deaf.close()
