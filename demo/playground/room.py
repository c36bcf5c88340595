"""The demo server as the playground's person sees it, through the emulator's control API: channels,
messages (with the answers only they can see), members, the bots' presence; and acting as that person."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime

import aiohttp

from demo.playground.compose import (
    EPHEMERAL_FLAG,
    BotAction,
    ComposeError,
    HistoryMessage,
    InteractionAnswer,
    Presence,
    message_view,
    parse_slash,
    pick_agent,
    slash_options,
    with_mentions,
)
from demo.playground.live import Names
from demo.playground.views import (
    AgentView,
    AnswerView,
    ChannelView,
    ComposeRequest,
    ComposeResult,
    EmbedView,
    GuildView,
    MessageView,
    PersonView,
)
from demo.seed import DemoWorld
from demo.world import GUILD_NAME, IN_VOICE
from emulator.discord import EmulatorControl, EmulatorError

EPHEMERAL_KEPT = 20
STATS_INTERVAL_S = 2.0
ACTIONS_WAIT_S = 10.0


class DemoRoom:
    def __init__(self, control: EmulatorControl, world: DemoWorld, names: Names) -> None:
        self.control = control
        self.world = world
        self.names = names
        ids = world.ids
        names.users.update({p.user_id: p.display_name for p in (ids.you, *ids.members)})
        names.users.update({a.bot_id: a.plan.name for a in world.agents})
        names.channels.update({c.channel_id: c.name for c in ids.channels})
        # The slash commands this page ran, by interaction id: their responses are labelled with them.
        self.commands: dict[str, str] = {}
        self.ephemeral: dict[str, deque[MessageView]] = {}
        self.connected: dict[str, bool] = {}
        self.status_text: dict[str, str] = {}

    @property
    def you(self) -> PersonView:
        you = self.world.ids.you
        return PersonView(id=you.user_id, name=you.display_name)

    def guild(self) -> GuildView:
        ids = self.world.ids
        return GuildView(
            id=ids.guild_id,
            name=GUILD_NAME,
            channels=[
                ChannelView(id=c.channel_id, name=c.name, voice=c.voice, topic=c.topic) for c in ids.channels
            ],
            members=[
                self.you,
                *(
                    PersonView(id=p.user_id, name=p.display_name, in_voice=p.username in IN_VOICE)
                    for p in ids.members
                ),
            ],
        )

    def presence(self, bot_id: str) -> tuple[str, str]:
        return ("online" if self.connected.get(bot_id) else "offline"), self.status_text.get(bot_id, "")

    async def messages(
        self, channel_id: str, answers: Mapping[tuple[str, str], AnswerView], limit: int = 50
    ) -> list[MessageView]:
        """The channel's latest messages, oldest first, with this page's ephemeral answers among them and
        its AI replies labelled with the path that wrote them."""
        history = await self.control.history(channel_id, limit)
        you = self.world.ids.you.user_id
        shown = [
            message_view(HistoryMessage.model_validate(raw), self.names, you, self.commands, answers)
            for raw in history
        ]
        shown += self.ephemeral.get(channel_id, ())
        shown.sort(key=lambda m: m.at)
        return shown[-limit:]

    async def compose(
        self, channel_id: str, request: ComposeRequest, agents: list[AgentView]
    ) -> ComposeResult:
        you = self.world.ids.you.user_id
        slash = parse_slash(request.content)
        try:
            if slash is None:
                people = {p.display_name: p.user_id for p in self.world.ids.members}
                people |= {a.name: a.bot_id for a in agents}
                posted = await self.control.post_user_message(
                    you, with_mentions(request.content, people), channel_id
                )
                return ComposeResult(kind="message", message_id=posted["id"])
            name, text = slash
            agent = pick_agent(name, agents, request.bot_id)
            options = slash_options(agent, name, text)
            interaction = await self.control.invoke_command(
                agent.bot_id, you, channel_id, name, [o.model_dump(exclude_defaults=True) for o in options]
            )
        except EmulatorError as error:
            raise ComposeError(f"Discord refused it: {error.body}") from None
        self.commands[interaction["id"]] = request.content.strip()
        return ComposeResult(kind="command", bot_id=agent.bot_id)

    async def run(self) -> None:
        """Follow what the bots do (answers only the person sees, custom statuses) and who is connected."""
        await asyncio.gather(self._follow_actions(), self._follow_sessions())

    async def _follow_sessions(self) -> None:
        while True:
            with contextlib.suppress(EmulatorError, aiohttp.ClientError, OSError):
                for agent in self.world.agents:
                    stats = await self.control.stats(agent.bot_id)
                    self.connected[agent.bot_id] = stats["connected_sessions"] > 0
            await asyncio.sleep(STATS_INTERVAL_S)

    async def _follow_actions(self) -> None:
        since = 0
        while True:
            try:
                records = await self.control.actions(since, wait_s=ACTIONS_WAIT_S)
            except (EmulatorError, aiohttp.ClientError, OSError):
                await asyncio.sleep(STATS_INTERVAL_S)
                continue
            for record in records:
                action = BotAction.model_validate(record)
                since = max(since, action.seq)
                if action.kind == "interaction_response":
                    self._ephemeral_answer(action, InteractionAnswer.model_validate(action.payload))
                elif action.kind == "presence":
                    activities = Presence.model_validate(action.payload).activities
                    self.status_text[action.bot_id] = activities[0].shown if activities else ""

    def _ephemeral_answer(self, action: BotAction, answer: InteractionAnswer) -> None:
        command = self.commands.get(answer.interaction_id)
        data = answer.data
        if command is None or data is None or action.channel_id is None or not data.flags & EPHEMERAL_FLAG:
            return  # not this page's command, or a public answer (that one is in the channel's history)
        shown = MessageView(
            id=f"ephemeral-{action.seq}",
            channel_id=action.channel_id,
            author_id=action.bot_id,
            author_name=self.names.user(action.bot_id),
            bot=True,
            content=data.content,
            embeds=[EmbedView(title=e.title, description=e.description) for e in data.embeds],
            at=datetime.fromtimestamp(action.at, UTC),
            command=command,
            ephemeral=True,
        )
        self.ephemeral.setdefault(action.channel_id, deque(maxlen=EPHEMERAL_KEPT)).append(shown)
