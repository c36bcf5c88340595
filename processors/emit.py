"""Building outputs: actions with deterministic ids, and answers in the deployment's response style."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from models.actions import ActionBase, Embed, InteractionResponse, NativePoll, Reply, SendMessage
from models.agent import AgentConfig
from models.deployments import DeployedAgent
from models.operations import ModerationAudit
from processors.ids import stable_id

ActionT = TypeVar("ActionT", bound=ActionBase)

_CONTENT_LIMIT = 2000
_TITLE_LIMIT = 256


@dataclass(frozen=True)
class Say:
    """What a command or rule answers, before it is shaped by the response style."""

    text: str
    title: str = ""
    ephemeral: bool = False
    poll: NativePoll | None = None
    # The member the answer is about when not the one answered: a moderation command's target ("Warned
    # @X"), whose key then seals it, so erasing them shreds what was said of them.
    about_user_id: str | None = None


@dataclass(frozen=True)
class InteractionOrigin:
    interaction_id: str
    token: str


@dataclass(frozen=True)
class MessageOrigin:
    channel_id: str
    message_id: str


Origin = InteractionOrigin | MessageOrigin


@dataclass(frozen=True)
class Notice:
    """A message a timer sends for a deployment, outside any event; its action ids derive from `cause_id`.
    `about_user_id` is the member it is for (a reminder's), whose key seals it; None: it is about no one."""

    cause_id: str
    deployment_id: str
    guild_id: str | None
    channel_id: str
    say: Say
    about_user_id: str | None


class Emitter:
    """Makes the actions of one deployment for one event. Ids derive from (event id, deployment id, index),
    so reprocessing the event yields the same ids and the gateway performs each action once.

    `about_user_id` is the member the event is about (a message's author, a command's invoker): every action
    answering it carries their id and is sealed under their data key (streams/catalog.py: ACTION_SEALING), so
    erasing them shreds what was said to or of them. An action on a member (`user_id`: ban, warn) is about
    the member acted on. None: the event is about no one member (a timer's, a track's end)."""

    def __init__(
        self, cause_id: str, deployed: DeployedAgent, guild_id: str | None, about_user_id: str | None
    ) -> None:
        self.cause_id = cause_id
        self.deployed = deployed
        self.guild_id = guild_id
        self.about_user_id = about_user_id
        self._index = 0

    @property
    def agent(self) -> AgentConfig:
        return self.deployed.agent

    def action(self, kind: type[ActionT], about_user_id: str | None = None, **fields: Any) -> ActionT:
        """An action of `kind`, about `about_user_id`, else the member it acts on, else the event's member."""
        deployment = self.deployed.deployment
        action_id = stable_id(self.cause_id, deployment.deployment_id, self._index)
        self._index += 1
        return kind(
            action_id=action_id,
            bot_id=deployment.bot_id,
            guild_id=self.guild_id,
            deployment_id=str(deployment.deployment_id),
            cause_event_id=self.cause_id,
            about_user_id=about_user_id or fields.get("user_id", self.about_user_id),
            **fields,
        )

    def audit(self, rule: str, **fields: Any) -> ModerationAudit:
        deployment = self.deployed.deployment
        return ModerationAudit(
            audit_id=stable_id(self.cause_id, deployment.deployment_id, "audit", rule),
            deployment_id=deployment.deployment_id,
            guild_id=self.guild_id or deployment.guild_id,
            rule=rule,
            **fields,
        )

    def styled(self, say: Say) -> tuple[str, Embed | None]:
        """Plain text ("Playing: lofi"), or an embed in the agent's colour under the answer's title."""
        style = self.agent.response_style
        if style.format == "embed":
            embed = Embed(
                title=say.title[:_TITLE_LIMIT], description=say.text[:4096], color=style.embed_color
            )
            return "", embed
        return say.text[:_CONTENT_LIMIT], None

    def answer(self, say: Say, origin: Origin) -> InteractionResponse | Reply:
        """A slash command is answered through its interaction, a prefix command by replying to it."""
        content, embed = self.styled(say)
        if isinstance(origin, InteractionOrigin):
            return self.action(
                InteractionResponse,
                about_user_id=say.about_user_id,
                interaction_id=origin.interaction_id,
                interaction_token=origin.token,
                content=content,
                embed=embed,
                ephemeral=say.ephemeral,
                poll=say.poll,
            )
        return self.action(
            Reply,
            about_user_id=say.about_user_id,
            channel_id=origin.channel_id,
            message_id=origin.message_id,
            content=content,
            embed=embed,
            poll=say.poll,
        )

    def send(self, say: Say, channel_id: str) -> SendMessage:
        content, embed = self.styled(say)
        return self.action(SendMessage, channel_id=channel_id, content=content, embed=embed, poll=say.poll)
