"""A replay over the same history makes the same proactive decisions as the live timer: the live engine
ticks every minute of a morning while the guild chats; the re-run (jobs/rerun.py) sees only the recorded
events and fires the due routines before each of them. The same for a hosted trivia night's actions."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from aiokafka import ConsumerRecord

from jobs.replay import comparable
from jobs.rerun import DEPLOYMENTS, EVENTS, Rerun
from jobs.timeline import to_ms
from models.actions import (
    Action,
    CreateScheduledEvent,
    Reply,
    ScheduledEventStatus,
    SendMessage,
    SetScheduledEventStatus,
)
from models.agent import AgentConfig
from models.decisions import Decision, DecisionReason
from models.events import EventEnvelope
from models.table_keys import HostedEventsKey
from processors.engine import Engine, Tables
from streams.catalog import AGENT_DEPLOYMENTS, DISCORD_EVENTS, TopicSpec
from streams.codec import encode_key
from streams.sealing import seal_envelope
from tests.data_keys import MemoryDataKeys
from tests.processors.factories import (
    deployed,
    envelope,
    guild_create,
    luna,
    message_data,
    routing,
    snowflake,
    user,
)
from tests.processors.test_proc_events import START as TRIVIA_START
from tests.processors.test_proc_events import host_agent

DAY = date(2026, 1, 15)
GUILD, GENERAL, BOT = snowflake(), snowflake(), snowflake()
KAI = user(snowflake(), "kai")
LOUNGE, SCHEDULED_ID = snowflake(), snowflake()


def utc(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(DAY, time(hour, minute), tzinfo=UTC)


def luna_in_berlin() -> AgentConfig:
    data = luna().model_dump(mode="json")
    data["behavior"].update(
        {
            "schedule": {"time_zone": "Europe/Berlin", "quiet_hours": {"start": "23:00", "end": "08:00"}},
            "proactive_actions": {
                "morning_greeting": {"enabled": True, "time": "10:00", "message_template": "Good morning~"},
                "random_thoughts": {"enabled": True, "frequency": "every 1-2 hours", "daily_budget": 24},
            },
        }
    )
    return AgentConfig.model_validate(data)


def history() -> list[EventEnvelope]:
    """The guild announced, then Kai writing every twenty minutes from 07:00 to 12:00 UTC."""
    created = guild_create(GUILD, owner_id=snowflake(), channels={GENERAL: "general"})
    events = [envelope("GUILD_CREATE", created, bot_id=BOT, guild_id=GUILD, at=utc(6, 59))]
    for minute in range(0, 5 * 60 + 1, 20):
        at = utc(7) + timedelta(minutes=minute)
        data = message_data(guild_id=GUILD, channel_id=GENERAL, author=KAI, content=f"note {minute}", at=at)
        events.append(envelope("MESSAGE_CREATE", data, bot_id=BOT, guild_id=GUILD, channel_id=GENERAL, at=at))
    return events


def record(spec: TopicSpec, key: str, value: Any, at: datetime, offset: int) -> ConsumerRecord[bytes, bytes]:
    raw = spec.codec.encode(value)
    return ConsumerRecord(spec.name, 0, offset, to_ms(at), 0, encode_key(key), raw, None, 0, len(raw), [])


def proactive(decisions: list[Decision]) -> list[dict[str, Any]]:
    return [comparable(d) for d in decisions if d.routine is not None]


async def test_the_replay_makes_the_proactive_decisions_the_live_timer_made() -> None:
    companion = deployed(
        luna_in_berlin(),
        guild_id=GUILD,
        bot_id=BOT,
        text_channels=[GENERAL],
        deployed_at=utc(0),
        deployment_id=UUID("00000000-0000-4000-8000-0000000000cc"),
    )
    config = routing(GUILD, companion)
    events = history()

    live = Engine(Tables(*({} for _ in fields(Tables))))
    live.apply_routing(config)
    live_decisions: list[Decision] = []
    pending = list(events)
    now = utc(6, 59)
    while now <= utc(12):
        while pending and pending[0].received_at <= now:
            live_decisions.extend(live.handle_event(pending.pop(0)).decisions)
        live_decisions.extend(live.fire_routines(GUILD, now).decisions)
        now += timedelta(minutes=1)

    # Recorded as the gateway records them: sealed, and opened by the re-run.
    keys = MemoryDataKeys()
    rerun = Rerun(keys)
    replayed: list[Decision] = []
    sealed_count = 0
    await rerun.apply(DEPLOYMENTS, record(AGENT_DEPLOYMENTS, GUILD, config, utc(0), 0))
    for offset, event in enumerate(events):
        sealed = await seal_envelope(event, keys)
        sealed_count += sealed.sealed is not None
        applied = await rerun.apply(EVENTS, record(DISCORD_EVENTS, GUILD, sealed, event.received_at, offset))
        assert applied is not None
        replayed.extend(applied[2].decisions)

    assert sealed_count > 0
    made = proactive(live_decisions)
    assert made == proactive(replayed)
    routines = [d["routine"] for d in made]
    assert "morning_greeting" in routines and routines.count("random_thoughts") >= 2
    assert all(d["reason"] is DecisionReason.proactive for d in made)


def echoes(action: Action, at: datetime, bot: dict[str, Any], channel: str) -> list[EventEnvelope]:
    """What the gateway records a second after it performs a hosted event's action: the bot's own message,
    Discord's dispatch of the scheduled event created or changed."""
    later = at + timedelta(seconds=1)
    if isinstance(action, SendMessage | Reply):
        data = message_data(guild_id=GUILD, channel_id=channel, author=bot, content=action.content, at=later)
        return [envelope("MESSAGE_CREATE", data, bot_id=BOT, guild_id=GUILD, channel_id=channel, at=later)]
    if isinstance(action, CreateScheduledEvent | SetScheduledEventStatus):
        status = (
            action.status if isinstance(action, SetScheduledEventStatus) else ScheduledEventStatus.scheduled
        )
        scheduled = {
            "id": SCHEDULED_ID,
            "guild_id": GUILD,
            "creator_id": BOT,
            "name": "Trivia night",
            "scheduled_start_time": TRIVIA_START.isoformat(),
            "status": int(status),
            "entity_type": 2,
            "channel_id": LOUNGE,
        }
        created = isinstance(action, CreateScheduledEvent)
        kind = "GUILD_SCHEDULED_EVENT_CREATE" if created else "GUILD_SCHEDULED_EVENT_UPDATE"
        return [envelope(kind, scheduled, bot_id=BOT, guild_id=GUILD, at=later)]
    return []


async def test_the_replay_hosts_the_trivia_night_the_live_timer_hosted() -> None:
    """Live, the events timer ticks every second around a trivia night (every minute before) while the
    gateway records the steps' echoes and Kai's right answer; the re-run, seeing only that history, makes the
    same actions: created, reminded, started, asked, answered, revealed, completed."""
    host = deployed(host_agent(), guild_id=GUILD, bot_id=BOT, deployed_at=TRIVIA_START - timedelta(days=3))
    config = routing(GUILD, host)
    bot = user(BOT, "host", bot=True)
    created = guild_create(GUILD, owner_id=snowflake(), channels={GENERAL: "general", LOUNGE: "lounge"})
    first_at = TRIVIA_START - timedelta(hours=25)
    pending = [envelope("GUILD_CREATE", created, bot_id=BOT, guild_id=GUILD, at=first_at)]

    live = Engine(Tables(*({} for _ in fields(Tables))))
    live.apply_routing(config)
    history: list[EventEnvelope] = []
    live_actions: list[Action] = []
    now = first_at
    while now <= TRIVIA_START + timedelta(minutes=2):
        pending.sort(key=lambda event: event.received_at)
        while pending and pending[0].received_at <= now:
            event = pending.pop(0)
            history.append(event)
            live_actions.extend(live.handle_event(event).actions)
        made = live.fire_events(GUILD, now).actions
        live_actions.extend(made)
        for action in made:
            pending.extend(echoes(action, now, bot, GENERAL))
            if isinstance(action, SendMessage) and "Question 1/" in action.content:
                book = live.tables.hosted_events[HostedEventsKey(GUILD).encode()]
                round_ = book.runs[0].trivia
                assert round_ is not None
                answer = round_.questions[0].answers[0]
                at = now + timedelta(seconds=3)
                data = message_data(guild_id=GUILD, channel_id=GENERAL, author=KAI, content=answer, at=at)
                pending.append(
                    envelope("MESSAGE_CREATE", data, bot_id=BOT, guild_id=GUILD, channel_id=GENERAL, at=at)
                )
        near = abs(now - TRIVIA_START) <= timedelta(minutes=1)
        now += timedelta(seconds=1) if near else timedelta(minutes=1)

    rerun = Rerun(MemoryDataKeys())
    replayed: list[Action] = []
    await rerun.apply(DEPLOYMENTS, record(AGENT_DEPLOYMENTS, GUILD, config, first_at - timedelta(days=3), 0))
    for offset, event in enumerate(history):
        applied = await rerun.apply(EVENTS, record(DISCORD_EVENTS, GUILD, event, event.received_at, offset))
        assert applied is not None
        replayed.extend(applied[2].actions)

    def shown(actions: list[Action]) -> list[dict[str, Any]]:
        return [action.model_dump(exclude={"created_at"}) for action in actions]

    assert shown(replayed) == shown(live_actions)
    kinds = [type(action).__name__ for action in live_actions]
    # Created, reminded, started, two questions, Kai congratulated, the second revealed, completed.
    assert kinds.count("SendMessage") == 5 and kinds.count("SetScheduledEventStatus") == 2
    assert kinds.count("CreateScheduledEvent") == 1
    [run] = rerun.engine.tables.hosted_events[HostedEventsKey(GUILD).encode()].runs
    assert run.trivia is not None and run.trivia.scores == {KAI["id"]: 1}
