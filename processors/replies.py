"""From an inference result to the Discord actions that deliver it: safety filter, persona styling, a typing
indicator, then the text in messages under Discord's limit."""

from __future__ import annotations

import re
from typing import Any

from models.actions import Action, Reply, SendMessage, TypingIndicator
from models.agent import AgentConfig, PersonalityTraits, SpeechStyle
from models.inference import InferenceResult
from models.state import MoodState
from processors.knowledge import knowledge_fallback, with_source
from processors.persona import persona_reply
from processors.safety import check_output
from processors.styling import Manner, style_text, typing_delay_ms
from processors.traits import typo_rate, warmth

DISCORD_MESSAGE_LIMIT = 2_000
# Said instead of a reply the safety filter blocked, so the person who asked is not left without an answer.
BLOCKED_REPLY = "Let's talk about something else."
GREETINGS = {"casual": "Hey {name}!", "neutral": "Hi {name}!", "formal": "Hello {name}."}
_SENTENCE_BOUNDARY = re.compile(r"[.!?~…](?=\s)")


def mood_emoji(agent: AgentConfig, mood: MoodState) -> str:
    """The emoji that shows the agent's mood in what it says; none when moods are off."""
    config = agent.behavior.mood
    definition = config.moods.get(mood.mood) if config.enabled else None
    return definition.emoji if definition is not None else ""


def compose_reply(
    result: InferenceResult, agent: AgentConfig, mood: MoodState, affinity: int | None = None
) -> list[Action]:
    """Typing indicator first, then the reply (answering the target message when there is one) and any
    continuation messages. Deterministic: ids and styling derive from the request id. `affinity` is the
    author's, when the agent tracks it: it warms the reply.

    The typing pause is the time a person would take to type the first message, less the time the model
    already took: a slow model does not make the agent slower still.

    A fallback result without text (over quota, no endpoint, every endpoint failed) is answered by the
    offline persona responder, or for a factual question from the lookup alone (never invented). A found
    article's link ends the reply."""
    generated = result.text
    if result.fallback and not generated.strip():
        generated = (
            persona_reply(agent, mood, seed=result.request_id)
            if result.knowledge is None
            else knowledge_fallback(result.knowledge)
        )
    verdict = check_output(strip_speaker_prefix(generated, agent.name), agent.safety)
    text = (verdict.replacement or BLOCKED_REPLY) if verdict.blocked else verdict.text
    if not text.strip():
        return []
    character = agent.character
    style = character.speech_style if character is not None else SpeechStyle()
    traits = character.personality if character is not None else PersonalityTraits()
    manner = Manner(warmth=warmth(traits, affinity), typo_rate=typo_rate(traits))
    if result.target.greet_as:
        text = greeted(text, result.target.greet_as, style)
    styled = style_text(
        text, style, mood.mood, mood_emoji(agent, mood), seed=result.request_id, manner=manner
    )
    chunks = split_message(with_source(styled, result.knowledge))

    target = result.target
    common: dict[str, Any] = {
        "bot_id": target.bot_id,
        "guild_id": target.guild_id,
        "deployment_id": str(result.deployment_id),
        "cause_event_id": result.event_id,
        "created_at": result.completed_at,
        "about_user_id": target.author_id,
    }
    actions: list[Action] = [
        TypingIndicator(
            action_id=f"{result.request_id}:typing",
            channel_id=target.channel_id,
            delay_ms=max(0, typing_delay_ms(chunks[0]) - round(result.latency_ms)),
            **common,
        )
    ]
    for index, chunk in enumerate(chunks):
        action_id = f"{result.request_id}:{index}"
        if index == 0 and target.message_id is not None:
            actions.append(
                Reply(
                    action_id=action_id,
                    channel_id=target.channel_id,
                    message_id=target.message_id,
                    content=chunk,
                    **common,
                )
            )
        else:
            actions.append(
                SendMessage(action_id=action_id, channel_id=target.channel_id, content=chunk, **common)
            )
    return actions


def greeted(text: str, name: str, style: SpeechStyle) -> str:
    """The reply opening with the user's name, unless it already says it."""
    if name.casefold() in text.casefold():
        return text
    return f"{GREETINGS[style.formality].format(name=name)} {text}"


def strip_speaker_prefix(text: str, name: str) -> str:
    """Models imitating the "Name: text" user turns sometimes sign their own reply; drop the signature."""
    stripped = text.strip()
    prefix = f"{name}:"
    if stripped[: len(prefix)].casefold() == prefix.casefold():
        return stripped[len(prefix) :].lstrip()
    return stripped


def split_message(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> list[str]:
    """`text` in chunks of at most `limit` UTF-16 code units (what Discord counts), cut at a paragraph,
    line, sentence or word boundary when one lies in the second half of the window, else hard."""
    chunks = []
    rest = text.strip()
    while _utf16_len(rest) > limit:
        window = rest[: _prefix_within(rest, limit)]
        cut = _boundary(window)
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        chunks.append(rest)
    return chunks


def _boundary(window: str) -> int:
    floor = len(window) // 2
    for separator in ("\n\n", "\n"):
        at = window.rfind(separator)
        if at >= floor:
            return at + len(separator)
    sentence_ends = [m.end() for m in _SENTENCE_BOUNDARY.finditer(window, floor)]
    if sentence_ends:
        return sentence_ends[-1]
    space = window.rfind(" ")
    return space + 1 if space > 0 else len(window)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _prefix_within(text: str, limit: int) -> int:
    """The longest prefix, in code points, whose UTF-16 length is at most `limit`."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)
