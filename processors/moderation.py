"""Moderation: /ban, /kick, /timeout, /warn with permission checks, warn counts and escalation; and the
enforcement of automod violations, which warn and escalate the same way."""

from __future__ import annotations

from models.actions import Action, Ban, DeleteMessage, Kick, Timeout, Warn
from models.agent import AutomodAction, EscalationRule
from models.discord import DiscordMessage
from models.processor_state import GuildDirectory, WarnRecord
from processors.automod import Violation, combined_actions
from processors.commands import Invocation, describe_duration
from processors.emit import Emitter, MessageOrigin, Say
from processors.outcome import Outcome, remember_applied
from processors.permissions import BAN_MEMBERS, KICK_MEMBERS, MODERATE_MEMBERS, PERMISSION_NAMES, granted

REQUIRED_PERMISSION = {
    "ban": BAN_MEMBERS,
    "unban": BAN_MEMBERS,
    "kick": KICK_MEMBERS,
    "timeout": MODERATE_MEMBERS,
    "warn": MODERATE_MEMBERS,
    "warnings": MODERATE_MEMBERS,
}
DEFAULT_TIMEOUT_S = 600
_REASON_LIMIT = 200


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


def punishment(emit: Emitter, rule: EscalationRule, user_id: str, reason: str) -> Ban | Kick | Timeout:
    if rule.action == "ban":
        return emit.action(Ban, user_id=user_id, reason=reason)
    if rule.action == "kick":
        return emit.action(Kick, user_id=user_id, reason=reason)
    return emit.action(Timeout, user_id=user_id, duration_s=rule.duration_s, reason=reason)


def _escalation_note(rule: EscalationRule) -> str:
    if rule.action == "timeout":
        return f" and timed out for {describe_duration(rule.duration_s)}"
    return " and kicked" if rule.action == "kick" else " and banned"


def refusal(invocation: Invocation, directory: GuildDirectory | None, bot_id: str, shown: str) -> str | None:
    """Why the invoker may not run this moderation command on this target, or None."""
    if invocation.guild_id is None:
        return "Moderation commands work in servers only."
    needed = REQUIRED_PERMISSION[invocation.name]
    if not granted(invocation.permissions, needed):
        return f"You need the {PERMISSION_NAMES[needed]} permission to use {shown}{invocation.name}."
    target = invocation.text("user")
    if target == bot_id:
        return "I can't moderate myself."
    if invocation.name != "warnings" and target == invocation.user.id:
        return "You can't moderate yourself."
    if directory is not None and target == directory.owner_id:
        return "The server owner can't be moderated."
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
    because = f": {reason}" if reason else ""
    origin = invocation.origin
    message_id = origin.message_id if isinstance(origin, MessageOrigin) else None

    def done(say: str, actions: list[Action], state: WarnRecord | None = None) -> Outcome[WarnRecord]:
        audit = emit.audit(
            name,
            channel_id=invocation.channel_id,
            user_id=target,
            moderator_id=invocation.user.id,
            source="command",
            actions=[action.kind for action in actions],
            reason=reason,
            message_id=message_id,
        )
        return Outcome(Say(say, title="Moderation"), actions, [audit], state)

    if name == "ban":
        return done(f"Banned <@{target}>{because}", [emit.action(Ban, user_id=target, reason=reason)])
    if name == "kick":
        return done(f"Kicked <@{target}>{because}", [emit.action(Kick, user_id=target, reason=reason)])
    if name == "timeout":
        seconds = invocation.number("duration") or DEFAULT_TIMEOUT_S
        action = emit.action(Timeout, user_id=target, duration_s=seconds, reason=reason)
        return done(f"Timed out <@{target}> for {describe_duration(seconds)}{because}", [action])
    if name == "warnings":
        count = target_record.count if target_record is not None else 0
        return Outcome(
            Say(f"<@{target}> has {count} warning{'s' if count != 1 else ''}.", title="Moderation")
        )
    if name == "unban":
        return Outcome(Say("Unbanning is not available yet.", ephemeral=True))
    if name == "warn":
        record = add_warning(target_record, emit.cause_id, reason)
        if record is None:
            return Outcome(None)
        warn = emit.action(
            Warn, channel_id=invocation.channel_id, user_id=target, reason=reason, warn_count=record.count
        )
        actions: list[Action] = [warn]
        rule = escalation_for(escalation, record.count)
        note = ""
        if rule is not None:
            actions.append(punishment(emit, rule, target, f"{record.count} warnings"))
            note = _escalation_note(rule)
        plural = "s" if record.count != 1 else ""
        return done(f"Warned <@{target}> ({record.count} warning{plural}){note}{because}", actions, record)
    raise ValueError(f"not a moderation command: {name}")


def enforce_automod(
    violations: list[Violation],
    message: DiscordMessage,
    emit: Emitter,
    record: WarnRecord | None,
    escalation: list[EscalationRule],
    timeout_s: int,
) -> Outcome[WarnRecord]:
    """Each action once for all violated rules; one audit record per rule."""
    reason = "; ".join(v.reason for v in violations)[:_REASON_LIMIT]
    kinds = combined_actions(violations)
    actions: list[Action] = []
    state: WarnRecord | None = None
    for kind in kinds:
        if kind is AutomodAction.delete:
            actions.append(
                emit.action(
                    DeleteMessage, channel_id=message.channel_id, message_id=message.id, reason=reason
                )
            )
        elif kind is AutomodAction.timeout:
            actions.append(
                emit.action(Timeout, user_id=message.author.id, duration_s=timeout_s, reason=reason)
            )
        else:
            state = add_warning(record, emit.cause_id, reason)
            if state is None:
                continue
            actions.append(
                emit.action(
                    Warn,
                    channel_id=message.channel_id,
                    user_id=message.author.id,
                    reason=reason,
                    warn_count=state.count,
                )
            )
            rule = escalation_for(escalation, state.count)
            # A rule that already times out needs no second timeout from escalation.
            if rule is not None and not (rule.action == "timeout" and AutomodAction.timeout in kinds):
                actions.append(punishment(emit, rule, message.author.id, f"{state.count} warnings"))
    audits = [
        emit.audit(
            violation.rule,
            channel_id=message.channel_id,
            user_id=message.author.id,
            source="automod",
            actions=[a.value for a in violation.actions],
            reason=violation.reason,
            message_id=message.id,
        )
        for violation in violations
    ]
    return Outcome(None, actions, audits, state)
