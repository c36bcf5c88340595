"""Announcements: /announce for moderators and the owner, now or at a local time, templates filled in when
posted, crossposted in an announcement channel only; a scheduled one posted once by the timer, and a
redelivered /announce scheduling nothing again."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from models.actions import InteractionResponse, Reply, SendMessage
from models.agent import AgentConfig, AgentMode
from models.common import error_paths
from models.events import EventEnvelope
from models.permissions import MODERATE_MEMBERS
from models.processor_state import TABLE_VALUE_MAX_BYTES
from processors.announcements import next_time
from processors.engine import Engine, Outputs, Tables
from tests.processors.factories import (
    Where,
    agent_with,
    deployed,
    envelope,
    guild_create,
    message_event,
    routing,
    slash_event,
    snowflake,
    user,
)

BERLIN = ZoneInfo("Europe/Berlin")
# Thursday 15 January 2026, 10:00 in Berlin.
MORNING = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
MOD, MEMBER = user(snowflake(), "mia"), user(snowflake(), "kai")
TEMPLATES = {"weekly": "{server} weekly, {weekday} {date} {time}, by {user}: {text}"}


def host(channel: str = "#news", **announcements: Any) -> AgentConfig:
    return agent_with(
        AgentMode.utility,
        enabled_tools=["announcements"],
        enabled_commands=["announce"],
        behavior={"schedule": {"time_zone": "Europe/Berlin"}},
        announcements={"channel": channel, "templates": TEMPLATES, **announcements},
    )


class Guild:
    def __init__(self, agent: AgentConfig) -> None:
        self.id, self.general, self.news, self.bot = snowflake(), snowflake(), snowflake(), snowflake()
        self.where = Where(self.bot, self.id, self.general)
        self.engine = Engine(Tables(*({} for _ in fields(Tables))))
        assert self.engine.apply_routing(routing(self.id, deployed(agent, guild_id=self.id, bot_id=self.bot)))
        self.owner = user(snowflake(), "owner")
        channels = {self.general: "general", self.news: "news"}
        created = guild_create(self.id, owner_id=self.owner["id"], channels=channels)
        created["channels"][1]["type"] = 5  # an announcement channel
        self.engine.handle_event(envelope("GUILD_CREATE", created, bot_id=self.bot, guild_id=self.id))

    def announce(
        self, message: str, at: str | None = None, permissions: int = MODERATE_MEMBERS
    ) -> EventEnvelope:
        options = {"message": message, **({"at": at} if at else {})}
        return slash_event(self.where, MOD, "announce", options, permissions=permissions, at=MORNING)

    def run(self, event: EventEnvelope) -> Outputs:
        return self.engine.handle_event(event)


def answer(out: Outputs) -> InteractionResponse:
    [said] = [a for a in out.actions if isinstance(a, InteractionResponse)]
    return said


def posted(out: Outputs) -> SendMessage:
    [sent] = [a for a in out.actions if isinstance(a, SendMessage)]
    return sent


def text_of(said: SendMessage | Reply | InteractionResponse) -> str:
    """The text, whether the response style made it content or an embed."""
    return said.content or (said.embed.description if said.embed is not None else "") or ""


def test_only_moderators_and_the_owner_announce() -> None:
    guild = Guild(host())
    refused = guild.run(guild.announce("hello", permissions=0))
    assert text_of(answer(refused)) == "You need the Moderate Members permission to use /announce."
    assert not [a for a in refused.actions if isinstance(a, SendMessage)]


def test_now_in_the_announcement_channel_crossposted_with_the_template_filled_in() -> None:
    guild = Guild(host())
    out = guild.run(guild.announce("weekly pizza on friday"))
    sent = posted(out)
    assert sent.channel_id == guild.news and sent.crosspost
    assert (
        text_of(sent)
        == f"Anime Hangout weekly, Thursday 2026-01-15 10:00, by <@{MOD['id']}>: pizza on friday"
    )
    assert answer(out).ephemeral and guild.news in text_of(answer(out))


def test_a_plain_text_channel_gets_no_crosspost_and_text_is_posted_as_written() -> None:
    guild = Guild(host(channel=""))  # no channel configured: where /announce is used
    sent = posted(guild.run(guild.announce("{date} stays as written")))
    assert sent.channel_id == guild.general and not sent.crosspost
    assert text_of(sent) == "{date} stays as written"


def test_an_unknown_announcement_channel_is_said() -> None:
    guild = Guild(host(channel="#missing"))
    said = text_of(answer(guild.run(guild.announce("hi"))))
    assert said == "I can't find the announcement channel #missing."


def test_scheduled_for_a_local_time_it_is_posted_once_by_the_timer() -> None:
    guild = Guild(host())
    take = guild.announce("weekly doors open", at="18:00")
    out = guild.run(take)
    assert not [a for a in out.actions if isinstance(a, SendMessage)]
    assert "18:00 on 2026-01-15 (Europe/Berlin)" in text_of(answer(out))
    due = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)  # 18:00 in Berlin
    assert not guild.engine.fire_announcements(guild.id, due - timedelta(seconds=1))
    sent = posted(guild.engine.fire_announcements(guild.id, due))
    assert sent.crosspost and text_of(sent).startswith("Anime Hangout weekly, Thursday 2026-01-15 18:00")
    assert not guild.engine.fire_announcements(guild.id, due + timedelta(minutes=1))
    # The /announce event redelivered after the post schedules nothing again.
    assert not [a for a in guild.run(take).actions if isinstance(a, SendMessage)]
    assert not guild.engine.fire_announcements(guild.id, due + timedelta(days=1))


def test_the_next_time_is_today_when_still_ahead_else_tomorrow_in_the_agents_zone() -> None:
    assert next_time(MORNING, "18:00", BERLIN) == datetime(2026, 1, 15, 18, 0, tzinfo=BERLIN)
    assert next_time(MORNING, "10:00", BERLIN) == datetime(2026, 1, 16, 10, 0, tzinfo=BERLIN)
    assert next_time(MORNING, "09:30", BERLIN) == datetime(2026, 1, 16, 9, 30, tzinfo=BERLIN)


def test_the_owner_announces_with_the_prefix_command_the_time_first() -> None:
    guild = Guild(host())
    out = guild.run(message_event(guild.where, guild.owner, "!announce 7:30 weekly early birds", at=MORNING))
    [said] = [a for a in out.actions if isinstance(a, Reply)]
    assert "07:30 on 2026-01-16" in text_of(said)
    sent = posted(guild.engine.fire_announcements(guild.id, datetime(2026, 1, 16, 6, 30, tzinfo=UTC)))
    assert text_of(sent).endswith(f"by <@{guild.owner['id']}>: early birds")


def test_templates_name_only_known_placeholders() -> None:
    with pytest.raises(ValidationError) as caught:
        AgentConfig.model_validate(
            {**host().model_dump(mode="json"), "announcements": {"templates": {"bad": "hello {servr}"}}}
        )
    assert error_paths(caught.value) == ["announcements.templates"]
    assert "{servr}" in str(caught.value)


def test_an_announcement_that_would_take_the_schedule_past_a_changelog_record_is_refused() -> None:
    """A hundred scheduled announcements of 1,990 emoji (8 KB each as JSON) would make a record of 800 KB
    and more, past what a table value may take."""
    guild = Guild(host())
    said = [text_of(answer(guild.run(guild.announce("🎉" * 1990, at="18:00")))) for _ in range(100)]
    assert said[0].startswith("I'll announce it")
    assert said[-1] == "The announcements scheduled hold too much text already."
    [book] = guild.engine.tables.announcements.values()
    assert 90 < len(book.scheduled) < 100
    assert len(book.model_dump_json().encode()) <= TABLE_VALUE_MAX_BYTES
