"""Moderation: /ban, /unban, /kick, /timeout, /warn with permission checks, warn counts and escalation; and
the enforcement of automod violations, which warn and escalate the same way.

What Discord must do (ban, unban, kick, timeout, delete) is told only once Discord has answered: each such
action carries a Report that the gateway sends after Discord's answer, to where the command was given and to
the moderation log channel."""

from __future__ import annotations

import re
from dataclasses import dataclass

from models.actions import (
    Action,
    AnswerInChannel,
    AnswerInteraction,
    Ban,
    DeleteMessage,
    Kick,
    Report,
    Timeout,
    Unban,
    Warn,
)
from models.agent import AutomodAction, EscalationRule, channel_label
from models.discord import DiscordMessage
from models.processor_state import GuildDirectory, WarnRecord
from processors.automod import Violation, combined_actions
from processors.commands import Invocation, describe_duration, missing_permission
from processors.emit import Emitter, InteractionOrigin, MessageOrigin, Say
from processors.outcome import Outcome, remember_applied
from processors.permissions import top_role_position

# The commands that act on a member of the guild (an unban's target is not one).
_ACTS_ON_MEMBERS = frozenset({"ban", "kick", "timeout", "warn"})
DEFAULT_TIMEOUT_S = 600
_REASON_LIMIT = 200
_SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")
AUTOMOD_ACTOR = "automod"
# (what was done, what could not be done) per action kind, for the reports.
_VERBS = {
    "ban": ("Banned", "ban"),
    "unban": ("Unbanned", "unban"),
    "kick": ("Kicked", "kick"),
    "timeout": ("Timed out", "time out"),
}


def log_channel_id(log_channel: str, directory: GuildDirectory | None) -> str | None:
    """The moderation log channel of the agent's configuration: an id, or a name the directory resolves."""
    if not log_channel:
        return None
    if _SNOWFLAKE.match(log_channel):
        return log_channel
    wanted = channel_label(log_channel)
    names = directory.channel_names if directory is not None else {}
    return next((channel_id for channel_id, name in names.items() if channel_label(name) == wanted), None)


@dataclass(frozen=True)
class Audience:
    """Who is told of a moderation action: where it was asked for (None: nobody there) and the log."""

    answer: AnswerInteraction | AnswerInChannel | None
    log_channel_id: str | None
    # Who acted, for the log: the moderator's mention, or automod.
    actor: str
    # The agent's embed colour when it answers in embeds.
    embed_color: int | None = None

    def report(self, kind: str, user_id: str, reason: str, detail: str = "") -> Report:
        done, verb = _VERBS[kind]
        because = f": {reason}" if reason else ""
        return Report(
            done=f"{done} <@{user_id}>{detail}{because}",
            failed=f"Could not {verb} <@{user_id}>",
            answer=self.answer,
            log_channel_id=self.log_channel_id,
            actor=self.actor,
            embed_color=self.embed_color,
        )

    def logged(self, text: str) -> Report:
        """A report for the log only: what the edge says itself (a warning, a deletion)."""
        return Report(
            done=text, failed=f"Not done: {text}", log_channel_id=self.log_channel_id, actor=self.actor
        )


def escalation_for(rules: list[EscalationRule], count: int) -> EscalationRule | None:
    """The strictest rule the count has reached: with 3 -> timeout, the 3rd and later warnings time out."""
    reached = [rule for rule in rules if rule.warns <= count]
    return max(reached, key=lambda rule: rule.warns) if reached else None


def add_warning(record: WarnRecord | None, event_id: str, reason: str) -> WarnRecord | None:
    """The record with one more warning, or None when this event already warned."""
    current = record or WarnRecord()
    if event_id in current.applied:
        return None
    return WarnRecord(
        count=current.count + 1,
        last_reason=reason[:_REASON_LIMIT],
        applied=remember_applied(current.applied, event_id),
    )


def warned(user_id: str, reason: str, count: int) -> str:
    plural = "s" if count != 1 else ""
    return f"Warned <@{user_id}> ({count} warning{plural})" + (f": {reason}" if reason else "")


def warning(
    emit: Emitter, audience: Audience, channel_id: str, user_id: str, reason: str, count: int
) -> Warn:
    """The warning the gateway posts in the channel; the log hears of it once it is posted."""
    report = audience.logged(warned(user_id, reason, count))
    return emit.action(
        Warn, channel_id=channel_id, user_id=user_id, reason=reason, warn_count=count, report=report
    )


def timeout(emit: Emitter, audience: Audience, user_id: str, seconds: int, reason: str) -> Timeout:
    report = audience.report("timeout", user_id, reason, f" for {describe_duration(seconds)}")
    return emit.action(Timeout, user_id=user_id, duration_s=seconds, reason=reason, report=report)


def punishment(
    emit: Emitter, rule: EscalationRule, user_id: str, reason: str, audience: Audience
) -> Ban | Kick | Timeout:
    if rule.action == "timeout":
        return timeout(emit, audience, user_id, rule.duration_s, reason)
    report = audience.report(rule.action, user_id, reason)
    if rule.action == "ban":
        return emit.action(Ban, user_id=user_id, reason=reason, report=report)
    return emit.action(Kick, user_id=user_id, reason=reason, report=report)


def refusal(invocation: Invocation, directory: GuildDirectory | None, bot_id: str, shown: str) -> str | None:
    """Why the invoker may not run this moderation command on this target, or None."""
    if invocation.guild_id is None:
        return "Moderation commands work in servers only."
    refused = missing_permission(invocation, shown)
    if refused is not None:
        return refused
    target = invocation.text("user")
    if target == bot_id:
        return "I can't moderate myself."
    if invocation.name != "warnings" and target == invocation.user.id:
        return "You can't moderate yourself."
    if directory is not None and target == directory.owner_id:
        return "The server owner can't be moderated."
    return _outranked(invocation, directory, bot_id, target)


def _outranked(
    invocation: Invocation, directory: GuildDirectory | None, bot_id: str, target: str
) -> str | None:
    """Discord's hierarchy: nobody acts on a member whose highest role is at or above their own; the owner
    stands above all. Checked where the target's roles are known."""
    target_roles = invocation.named_member_roles.get(target)
    if directory is None or target_roles is None or invocation.name not in _ACTS_ON_MEMBERS:
        return None
    target_top = top_role_position(directory, target_roles)
    if invocation.user.id != directory.owner_id and target_top >= top_role_position(
        directory, invocation.role_ids
    ):
        return f"You can't moderate <@{target}>: their highest role is not below yours."
    bot_roles = directory.bot_roles.get(bot_id)
    if bot_roles is not None and target_top >= top_role_position(directory, bot_roles):
        return f"I can't moderate <@{target}>: their highest role is not below mine."
    return None


def handle_moderation(
    invocation: Invocation,
    target_record: WarnRecord | None,
    emit: Emitter,
    directory: GuildDirectory | None,
    escalation: list[EscalationRule],
    shown_prefix: str,
) -> Outcome[WarnRecord]:
    name = invocation.name
    why = refusal(invocation, directory, emit.deployed.deployment.bot_id, shown_prefix)
    if why is not None:
        return Outcome(Say(why, title="Moderation", ephemeral=True))
    target = invocation.text("user")
    reason = invocation.text("reason")[:_REASON_LIMIT]
    origin = invocation.origin
    log_to = log_channel_id(emit.agent.moderation.log_channel, directory)
    moderator = f"<@{invocation.user.id}>"
    if isinstance(origin, InteractionOrigin):
        answer: AnswerInteraction | AnswerInChannel = AnswerInteraction(
            interaction_id=origin.interaction_id, interaction_token=origin.token
        )
    else:
        answer = AnswerInChannel(channel_id=origin.channel_id, message_id=origin.message_id)
    style = emit.agent.response_style
    embed_color = style.embed_color if style.format == "embed" else None
    audience = Audience(answer, log_to, moderator, embed_color)

    def done(
        actions: list[Action], say: Say | None = None, state: WarnRecord | None = None
    ) -> Outcome[WarnRecord]:
        audit = emit.audit(
            name,
            channel_id=invocation.channel_id,
            user_id=target,
            moderator_id=invocation.user.id,
            source="command",
            actions=[action.kind for action in actions],
            reason=reason,
            message_id=origin.message_id if isinstance(origin, MessageOrigin) else None,
        )
        return Outcome(say, actions, [audit], state)

    if name == "ban":
        return done(
            [emit.action(Ban, user_id=target, reason=reason, report=audience.report(name, target, reason))]
        )
    if name == "unban":
        return done(
            [emit.action(Unban, user_id=target, reason=reason, report=audience.report(name, target, reason))]
        )
    if name == "kick":
        return done(
            [emit.action(Kick, user_id=target, reason=reason, report=audience.report(name, target, reason))]
        )
    if name == "timeout":
        seconds = invocation.number("duration") or DEFAULT_TIMEOUT_S
        return done([timeout(emit, audience, target, seconds, reason)])
    if name == "warnings":
        count = target_record.count if target_record is not None else 0
        plural = "s" if count != 1 else ""
        return Outcome(
            Say(f"<@{target}> has {count} warning{plural}.", title="Moderation", about_user_id=target)
        )
    if name == "warn":
        record = add_warning(target_record, emit.cause_id, reason)
        if record is None:
            return Outcome(None)
        warn = warning(emit, audience, invocation.channel_id, target, reason, record.count)
        actions: list[Action] = [warn]
        rule = escalation_for(escalation, record.count)
        if rule is not None:
            # The command is answered now; the escalation is told in the channel once Discord confirms it.
            in_channel = Audience(
                AnswerInChannel(channel_id=invocation.channel_id), log_to, moderator, embed_color
            )
            actions.append(punishment(emit, rule, target, f"{record.count} warnings", in_channel))
        said = Say(warned(target, reason, record.count), title="Moderation", about_user_id=target)
        return done(actions, said, record)
    raise ValueError(f"not a moderation command: {name}")


def enforce_automod(
    violations: list[Violation],
    message: DiscordMessage,
    emit: Emitter,
    record: WarnRecord | None,
    escalation: list[EscalationRule],
    timeout_s: int,
    directory: GuildDirectory | None,
) -> Outcome[WarnRecord]:
    """Each action once for all violated rules; one audit record per rule. Automod answers nobody: its
    actions go to the moderation log."""
    reason = "; ".join(v.reason for v in violations)[:_REASON_LIMIT]
    kinds = combined_actions(violations)
    audience = Audience(None, log_channel_id(emit.agent.moderation.log_channel, directory), AUTOMOD_ACTOR)
    user_id = message.author.id
    actions: list[Action] = []
    state: WarnRecord | None = None
    for kind in kinds:
        if kind is AutomodAction.delete:
            deleted = f"Deleted a message of <@{user_id}> in <#{message.channel_id}>: {reason}"
            actions.append(
                emit.action(
                    DeleteMessage,
                    channel_id=message.channel_id,
                    message_id=message.id,
                    reason=reason,
                    report=audience.logged(deleted),
                )
            )
        elif kind is AutomodAction.timeout:
            actions.append(timeout(emit, audience, user_id, timeout_s, reason))
        else:
            state = add_warning(record, emit.cause_id, reason)
            if state is None:
                continue
            actions.append(warning(emit, audience, message.channel_id, user_id, reason, state.count))
            rule = escalation_for(escalation, state.count)
            # A rule that already times out needs no second timeout from escalation.
            if rule is not None and not (rule.action == "timeout" and AutomodAction.timeout in kinds):
                actions.append(punishment(emit, rule, user_id, f"{state.count} warnings", audience))
    audits = [
        emit.audit(
            violation.rule,
            channel_id=message.channel_id,
            user_id=user_id,
            source="automod",
            actions=[a.value for a in violation.actions],
            reason=violation.reason,
            message_id=message.id,
        )
        for violation in violations
    ]
    return Outcome(None, actions, audits, state)
