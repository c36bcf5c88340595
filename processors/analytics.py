"""`/stats`: checked and turned into a request for the sinks process, which holds ClickHouse and answers it
(sinks/stats.py). The processors never query ClickHouse: the embedded engine admits one process."""

from __future__ import annotations

from models.actions import AnswerInChannel, AnswerInteraction
from models.analytics import StatsRequest, StatsWindow
from processors.commands import Invocation, missing_permission
from processors.emit import Emitter, InteractionOrigin, Say
from processors.ids import stable_id

WINDOWS = ", ".join(window.value for window in StatsWindow)


def stats_window(text: str) -> StatsWindow | None:
    """The window an option names ("24h", "7d", "30d"; empty: 7 days), or None for anything else."""
    chosen = text.strip().lower()
    if not chosen:
        return StatsWindow.week
    return next((window for window in StatsWindow if window.value == chosen), None)


def handle_stats(invocation: Invocation, emit: Emitter, shown: str) -> Say | StatsRequest:
    """An ephemeral refusal, or the request whose answer (embed and chart) the sinks process sends."""
    if invocation.guild_id is None:
        return Say("Server statistics work in servers only.", ephemeral=True)
    refused = missing_permission(invocation, shown)
    if refused is not None:
        return Say(refused, ephemeral=True)
    window = stats_window(invocation.text("window"))
    if window is None:
        return Say(f"window: {invocation.text('window')!r} is not one of {WINDOWS}.", ephemeral=True)
    deployment = emit.deployed.deployment
    answer: AnswerInteraction | AnswerInChannel
    if isinstance(invocation.origin, InteractionOrigin):
        answer = AnswerInteraction(
            interaction_id=invocation.origin.interaction_id, interaction_token=invocation.origin.token
        )
    else:
        answer = AnswerInChannel(
            channel_id=invocation.origin.channel_id, message_id=invocation.origin.message_id
        )
    return StatsRequest(
        action_id=stable_id(emit.cause_id, deployment.deployment_id, "stats"),
        bot_id=deployment.bot_id,
        guild_id=invocation.guild_id,
        deployment_id=str(deployment.deployment_id),
        cause_event_id=emit.cause_id,
        window=window,
        until=invocation.at,
        answer=answer,
        embed_color=emit.agent.response_style.embed_color,
    )
