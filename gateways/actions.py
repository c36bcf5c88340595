"""What each action of `discord.actions` is on Discord's wire: a REST call, a gateway command, or work for
the bot's voice connection.

Pure: `plan(action, now)` is tested without a server; gateways/perform.py sends what it returns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from gateways import protocol
from models.actions import (
    Action,
    AnswerInChannel,
    AnswerInteraction,
    Attachment,
    Ban,
    CreateScheduledEvent,
    DeleteMessage,
    Embed,
    InteractionResponse,
    Kick,
    MemberPersonaUpdate,
    NativePoll,
    PresenceUpdate,
    React,
    Reply,
    Report,
    ReportedAction,
    SendMessage,
    SetScheduledEventStatus,
    Timeout,
    TypingIndicator,
    Unban,
    VoiceJoin,
    VoiceLeave,
    VoicePlay,
    VoiceSpeak,
    Warn,
)

# Interaction callback types 4: CHANNEL_MESSAGE_WITH_SOURCE, 5: its deferred form; message flag 64: EPHEMERAL.
CHANNEL_MESSAGE_WITH_SOURCE = 4
DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
# Callback type 8: the choices offered for the option a member is typing in.
APPLICATION_COMMAND_AUTOCOMPLETE_RESULT = 8
EPHEMERAL = 1 << 6
NONCE_LENGTH = 24  # Discord accepts nonces of up to 25 characters
# Discord shows a typing indicator for 10 s; a longer pause triggers it again before it fades.
TYPING_REFRESH_S = 8.0
MESSAGE_LIMIT = 2000
# Guild scheduled events: privacy level 2 (GUILD_ONLY), entity types 2 (VOICE) and 3 (EXTERNAL).
GUILD_ONLY = 2
ENTITY_VOICE = 2
ENTITY_EXTERNAL = 3


class InvalidAction(ValueError):
    """An action that is well-formed but cannot be performed as it is (e.g. a voice join without a guild)."""


@dataclass(frozen=True)
class RestCall:
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    # A discord.py Route path template; `params` fill it (and name the rate-limit bucket's major parameter).
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    reason: str = ""
    # Interaction callbacks do not count against the 50 requests/s a token may make.
    counts_globally: bool = True
    # The body carries a nonce with enforce_nonce: Discord itself drops a repeat.
    deduplicated: bool = False
    # Avatar or banner URLs to fetch and inline as data URIs before sending (body key -> URL).
    images: dict[str, str] = field(default_factory=dict)
    # A file uploaded with the message: the request goes as multipart (payload_json and files[0]).
    attachment: Attachment | None = None


@dataclass(frozen=True)
class GatewayCommand:
    """A payload sent on every gateway connection of the bot (a presence)."""

    payload: dict[str, Any]


@dataclass(frozen=True)
class VoiceCommand:
    """Work for the bot's voice connection in a guild (gateways/voice): join, leave, playback, speech."""

    guild_id: str
    action: VoiceJoin | VoiceLeave | VoicePlay | VoiceSpeak


Plan = RestCall | GatewayCommand | VoiceCommand


def message_nonce(action_id: str) -> str:
    """A nonce Discord accepts (<= 25 chars) that is the same every time the action is retried."""
    return hashlib.blake2b(action_id.encode(), digest_size=NONCE_LENGTH // 2).hexdigest()


def embed_json(embed: Embed) -> dict[str, Any]:
    body: dict[str, Any] = {"color": embed.color}
    if embed.title:
        body["title"] = embed.title
    if embed.description:
        body["description"] = embed.description
    if embed.footer:
        body["footer"] = {"text": embed.footer}
    if embed.fields:
        body["fields"] = [field.model_dump() for field in embed.fields]
    if embed.image_url:
        body["image"] = {"url": embed.image_url}
    return body


def attachments_json(attachment: Attachment | None) -> list[dict[str, Any]]:
    """The payload's description of the uploaded files: files[0] is attachment 0."""
    if attachment is None:
        return []
    described: dict[str, Any] = {"id": 0, "filename": attachment.filename}
    if attachment.description:
        described["description"] = attachment.description
    return [described]


def poll_json(poll: NativePoll) -> dict[str, Any]:
    return {
        "question": {"text": poll.question},
        "answers": [{"poll_media": {"text": answer}} for answer in poll.answers],
        "duration": poll.duration_hours,
        "allow_multiselect": False,
    }


def _message_body(
    action_id: str,
    content: str,
    embed: Embed | None,
    poll: NativePoll | None = None,
    attachment: Attachment | None = None,
) -> dict[str, Any]:
    if not content and embed is None and poll is None and attachment is None:
        raise InvalidAction("content: a message needs content, an embed, a poll or an attachment")
    body: dict[str, Any] = {
        "content": content,
        "nonce": message_nonce(action_id),
        "enforce_nonce": True,
        # Generated text must never ping @everyone, @here or a role; users it names may be pinged.
        "allowed_mentions": {"parse": ["users"]},
    }
    if embed is not None:
        body["embeds"] = [embed_json(embed)]
    if poll is not None:
        body["poll"] = poll_json(poll)
    if attachment is not None:
        body["attachments"] = attachments_json(attachment)
    return body


def _guild(action: Action) -> str:
    if action.guild_id is None:
        raise InvalidAction(f"guild_id: {action.kind} needs the guild it acts in")
    return action.guild_id


def _post_message(channel_id: str, body: dict[str, Any], attachment: Attachment | None = None) -> RestCall:
    return RestCall(
        "POST",
        "/channels/{channel_id}/messages",
        {"channel_id": channel_id},
        body,
        deduplicated=True,
        attachment=attachment,
    )


def _send(action: SendMessage) -> RestCall:
    body = _message_body(action.action_id, action.content, action.embed, action.poll, action.attachment)
    return _post_message(action.channel_id, body, action.attachment)


def crosspost(channel_id: str, message_id: str) -> RestCall:
    """Publish a message of an announcement channel to the channels following it."""
    return RestCall(
        "POST",
        "/channels/{channel_id}/messages/{message_id}/crosspost",
        {"channel_id": channel_id, "message_id": message_id},
    )


def _reply(action: Reply) -> RestCall:
    body = _message_body(action.action_id, action.content, action.embed, action.poll, action.attachment)
    body["message_reference"] = {
        "message_id": action.message_id,
        "channel_id": action.channel_id,
        # A reply to a message deleted meanwhile is still said, just without the reference.
        "fail_if_not_exists": False,
    }
    body["allowed_mentions"] = {"parse": ["users"], "replied_user": True}
    return _post_message(action.channel_id, body, action.attachment)


def _warn(action: Warn) -> RestCall:
    reason = f": {action.reason}" if action.reason else ""
    content = f"<@{action.member}> warning {action.warn_count}{reason}"
    body = _message_body(action.action_id, content, None)
    body["allowed_mentions"] = {"users": [action.member]}
    return _post_message(action.channel_id, body)


def _react(action: React) -> RestCall:
    return RestCall(
        "PUT",
        "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
        {"channel_id": action.channel_id, "message_id": action.message_id, "emoji": action.emoji},
    )


def _delete(action: DeleteMessage) -> RestCall:
    return RestCall(
        "DELETE",
        "/channels/{channel_id}/messages/{message_id}",
        {"channel_id": action.channel_id, "message_id": action.message_id},
        reason=action.reason,
    )


def _ban(action: Ban) -> RestCall:
    return RestCall(
        "PUT",
        "/guilds/{guild_id}/bans/{user_id}",
        {"guild_id": _guild(action), "user_id": action.member},
        {"delete_message_seconds": action.delete_message_seconds},
        reason=action.reason,
    )


def _unban(action: Unban) -> RestCall:
    return RestCall(
        "DELETE",
        "/guilds/{guild_id}/bans/{user_id}",
        {"guild_id": _guild(action), "user_id": action.member},
        reason=action.reason,
    )


def _kick(action: Kick) -> RestCall:
    return RestCall(
        "DELETE",
        "/guilds/{guild_id}/members/{user_id}",
        {"guild_id": _guild(action), "user_id": action.member},
        reason=action.reason,
    )


def _timeout(action: Timeout, now: datetime) -> RestCall:
    until = now + timedelta(seconds=action.duration_s)
    return RestCall(
        "PATCH",
        "/guilds/{guild_id}/members/{user_id}",
        {"guild_id": _guild(action), "user_id": action.member},
        {"communication_disabled_until": until.isoformat()},
        reason=action.reason,
    )


def _answer_data(action: InteractionResponse) -> dict[str, Any]:
    data: dict[str, Any] = {"content": action.content}
    if action.embed is not None:
        data["embeds"] = [embed_json(action.embed)]
    if action.poll is not None:
        data["poll"] = poll_json(action.poll)
    if action.attachment is not None:
        data["attachments"] = attachments_json(action.attachment)
    if action.ephemeral:
        data["flags"] = EPHEMERAL
    data["allowed_mentions"] = {"parse": ["users"]}
    return data


# Interaction routes name their ids webhook_id and webhook_token, as discord.py's own do: those are a route's
# major parameters, so each interaction gets a rate-limit bucket of its own. Under any other name all of a
# bot's interactions share one bucket, and at 20 commands/s its 5 per 5 s push deferrals past Discord's 3 s.
WEBHOOK_CALLBACK = "/interactions/{webhook_id}/{webhook_token}/callback"
WEBHOOK_ORIGINAL = "/webhooks/{webhook_id}/{webhook_token}/messages/@original"
WEBHOOK_FOLLOWUP = "/webhooks/{webhook_id}/{webhook_token}"


def _callback(
    interaction_id: str, token: str, body: dict[str, Any], attachment: Attachment | None = None
) -> RestCall:
    params = {"webhook_id": interaction_id, "webhook_token": token}
    return RestCall("POST", WEBHOOK_CALLBACK, params, body, counts_globally=False, attachment=attachment)


def interaction_callback(action: InteractionResponse) -> RestCall:
    """The answer as the interaction's own response, before anything acknowledged it."""
    body = {"type": CHANNEL_MESSAGE_WITH_SOURCE, "data": _answer_data(action)}
    return _callback(action.interaction_id, action.interaction_token, body, action.attachment)


# Acknowledge now, answer later: Discord shows the bot thinking.
DEFERRAL: dict[str, Any] = {"type": DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE}


def deferral_call(interaction_id: str, token: str) -> RestCall:
    return _callback(interaction_id, token, DEFERRAL)


def autocomplete_result(choices: list[str]) -> dict[str, Any]:
    """The choices offered while a member types; each is shown and sent back as itself."""
    return {
        "type": APPLICATION_COMMAND_AUTOCOMPLETE_RESULT,
        "data": {"choices": [{"name": choice, "value": choice} for choice in choices]},
    }


def autocomplete_call(interaction_id: str, token: str, choices: list[str]) -> RestCall:
    return _callback(interaction_id, token, autocomplete_result(choices))


def deferred_answer(action: InteractionResponse, application_id: str) -> list[RestCall]:
    """The answer to an interaction already acknowledged (deferred): it edits the thinking message. An
    ephemeral answer, or a poll, cannot be made of an edit: the thinking message goes and a follow-up
    carries it (deleted first, so a retry after a crash repeats neither)."""
    params = {"webhook_id": application_id, "webhook_token": action.interaction_token}
    data = _answer_data(action)
    file = action.attachment
    if not action.ephemeral and action.poll is None:
        return [RestCall("PATCH", WEBHOOK_ORIGINAL, params, data, counts_globally=False, attachment=file)]
    return [
        RestCall("DELETE", WEBHOOK_ORIGINAL, params, counts_globally=False),
        RestCall("POST", WEBHOOK_FOLLOWUP, params, data, counts_globally=False, attachment=file),
    ]


def _persona(action: MemberPersonaUpdate) -> RestCall:
    body: dict[str, Any] = {}
    images: dict[str, str] = {}
    if action.nick is not None:
        body["nick"] = action.nick
    if action.bio is not None:
        body["bio"] = action.bio
    for key, url in (("avatar", action.avatar_url), ("banner", action.banner_url)):
        if url is not None:
            # Discord takes image data, not a URL; an empty URL removes the image.
            if url:
                images[key] = url
            else:
                body[key] = None
    if not body and not images:
        raise InvalidAction("nick: a persona update sets at least one of nick, avatar_url, banner_url, bio")
    return RestCall(
        "PATCH", "/guilds/{guild_id}/members/@me", {"guild_id": _guild(action)}, body, images=images
    )


def _create_event(action: CreateScheduledEvent) -> RestCall:
    body: dict[str, Any] = {
        "name": action.name,
        "privacy_level": GUILD_ONLY,
        "scheduled_start_time": action.scheduled_start_time.isoformat(),
        "scheduled_end_time": action.scheduled_end_time.isoformat(),
    }
    if action.description:
        body["description"] = action.description
    if action.voice_channel_id is not None:
        body.update(entity_type=ENTITY_VOICE, channel_id=action.voice_channel_id)
    elif action.location:
        body.update(entity_type=ENTITY_EXTERNAL, entity_metadata={"location": action.location})
    else:
        raise InvalidAction("location: an event happens in a voice channel or at a location")
    return RestCall("POST", "/guilds/{guild_id}/scheduled-events", {"guild_id": _guild(action)}, body)


def created_before(call: RestCall, listed: list[dict[str, Any]], bot_id: str) -> bool:
    """Whether a scheduled event the create `call` describes is among the guild's `listed` events, made by
    the bot: Discord takes no nonce for events, so a retried create looks for the first attempt's event."""
    body = call.body or {}
    start = datetime.fromisoformat(str(body.get("scheduled_start_time")))
    return any(
        event.get("creator_id") == bot_id
        and event.get("name") == body.get("name")
        and datetime.fromisoformat(str(event.get("scheduled_start_time"))) == start
        for event in listed
    )


def _event_status(action: SetScheduledEventStatus) -> RestCall:
    return RestCall(
        "PATCH",
        "/guilds/{guild_id}/scheduled-events/{event_id}",
        {"guild_id": _guild(action), "event_id": action.event_id},
        {"status": int(action.status)},
    )


def _typing(action: TypingIndicator) -> RestCall:
    return RestCall("POST", "/channels/{channel_id}/typing", {"channel_id": action.channel_id})


def typing_pauses(delay_ms: int) -> list[float]:
    """The waits, in seconds, after each typing trigger of a pause of `delay_ms`: the indicator is
    triggered again after every TYPING_REFRESH_S until the pause is over."""
    pauses = []
    left = delay_ms / 1000
    while left > 0:
        pauses.append(min(left, TYPING_REFRESH_S))
        left -= TYPING_REFRESH_S
    return pauses


def plan(action: Action, now: datetime) -> Plan:
    """The wire form of an action; `now` is when it is performed (a timeout runs from then)."""
    match action:
        case SendMessage():
            return _send(action)
        case Reply():
            return _reply(action)
        case Warn():
            return _warn(action)
        case React():
            return _react(action)
        case DeleteMessage():
            return _delete(action)
        case Ban():
            return _ban(action)
        case Unban():
            return _unban(action)
        case Kick():
            return _kick(action)
        case Timeout():
            return _timeout(action, now)
        case InteractionResponse():
            return interaction_callback(action)
        case MemberPersonaUpdate():
            return _persona(action)
        case TypingIndicator():
            return _typing(action)
        case CreateScheduledEvent():
            return _create_event(action)
        case SetScheduledEventStatus():
            return _event_status(action)
        case VoiceJoin() | VoiceLeave() | VoicePlay() | VoiceSpeak():
            return VoiceCommand(_guild(action), action)
        case PresenceUpdate():
            return GatewayCommand(protocol.presence_payload(action.status, action.activity))


def report_text(report: Report, refusal: str | None) -> str:
    """The report of an action Discord confirmed (refusal None) or refused for `refusal`."""
    text = report.done if refusal is None else f"{report.failed}: {refusal}"
    return text[:MESSAGE_LIMIT]


def report_calls(action: ReportedAction, report: Report, text: str) -> list[RestCall | InteractionResponse]:
    """The answer where the command was given (an interaction's is answered like any, deferred or not), and
    the moderation log's line, each with an id derived from the action's, so a retry sends neither twice."""
    answer_id, bot_id, guild_id = f"{action.action_id}/answer", action.bot_id, action.guild_id
    content, embed = text, None
    if report.embed_color is not None:
        content, embed = "", Embed(title="Moderation", description=text, color=report.embed_color)
    said: dict[str, Any] = {
        "action_id": answer_id,
        "bot_id": bot_id,
        "guild_id": guild_id,
        "content": content,
        "embed": embed,
    }
    calls: list[RestCall | InteractionResponse] = []
    match report.answer:
        case AnswerInteraction(interaction_id=interaction_id, interaction_token=token):
            calls.append(InteractionResponse(interaction_id=interaction_id, interaction_token=token, **said))
        case AnswerInChannel(channel_id=channel_id, message_id=None):
            calls.append(_send(SendMessage(channel_id=channel_id, **said)))
        case AnswerInChannel(channel_id=channel_id, message_id=message_id):
            calls.append(_reply(Reply(channel_id=channel_id, message_id=message_id, **said)))
    if report.log_channel_id is not None:
        line = f"{text} · {report.actor}" if report.actor else text
        log = _send(
            SendMessage(
                action_id=f"{action.action_id}/log",
                bot_id=bot_id,
                guild_id=guild_id,
                channel_id=report.log_channel_id,
                content=line[:MESSAGE_LIMIT],
            )
        )
        # The log names members without pinging them.
        calls.append(replace(log, body={**(log.body or {}), "allowed_mentions": {"parse": []}}))
    return calls
