"""The decision engine: whether an agent answers a message, why, and how urgently.

Triggers in priority order, the first that fires deciding: mentioned, replied to, interest keyword,
conversation flow (the agent spoke in the channel in the last five minutes), random, bored. Triggers for
messages addressed to the agent fire with their configured probability; the unprompted ones with it
modulated by the character's extraversion and the affinity band of the author (processors/traits.py), and
the decision records the probability used. Interests match more widely the more open the character. Dice
come from a generator seeded by (event id, deployment id), so replaying history makes the same decisions.

Loop guards come first: an agent never answers itself, answers other bots only when configured, and
answers at most `max_consecutive_replies` times in a row in a channel without a person speaking. An
NSFW-rated character answers only in age-restricted channels and never in DMs (processors/safety.py).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.agent import AIUsage, MoodName, PersonalityTraits, Trigger
from models.decisions import Decision, DecisionReason, Priority
from models.deployments import DeployedAgent
from models.discord import DiscordMessage
from models.state import ChannelContext, MoodState, Relationship
from processors.context import author_of, spoke_since
from processors.ids import seeded_rng
from processors.safety import rating_gate
from processors.traits import (
    BAND_ODDS,
    affinity_band,
    interest_breadth,
    matches_interest,
    odds_scaled,
    sociability,
)

CONVERSATION_WINDOW = timedelta(minutes=5)
_QUESTION_WORDS = (
    "what why how who whom whose when where which can could is are am do does did will would should shall "
    "may might have has was were isn't aren't don't doesn't didn't won't can't"
)
QUESTION_WORDS = frozenset(_QUESTION_WORDS.split())
_MENTION = re.compile(r"<@[!&]?\d+>")


@dataclass(frozen=True)
class Situation:
    """Everything one decision depends on."""

    event_id: str
    deployed: DeployedAgent
    message: DiscordMessage
    # The channel's recent messages; the message being decided on may already be among them.
    context: ChannelContext | None
    mood: MoodState
    # Consecutive answers of this deployment in the channel since a person last spoke.
    streak: int
    at: datetime
    is_dm: bool = False
    # What the deployment knows of the author; None for a user it has not met (or does not track).
    relationship: Relationship | None = None
    # Discord marks the channel age-restricted (`nsfw`); never true of a DM.
    age_restricted: bool = False


def mentions(message: DiscordMessage, bot_id: str) -> bool:
    return any(user.id == bot_id for user in message.mentions)


def replies_to(message: DiscordMessage, bot_id: str, context: ChannelContext | None) -> bool:
    if message.referenced_message is not None:
        return message.referenced_message.author.id == bot_id
    reference = message.message_reference
    return (
        reference is not None
        and reference.message_id is not None
        and (author_of(context, reference.message_id) == bot_id)
    )


def is_question(text: str) -> bool:
    words = _MENTION.sub(" ", text).strip().lower().split()
    return "?" in text or (bool(words) and words[0].strip(",.!:") in QUESTION_WORDS)


def decide(situation: Situation) -> Decision:
    deployed, message = situation.deployed, situation.message
    deployment, agent = deployed.deployment, deployed.agent
    behavior = agent.behavior

    def decision(
        reason: DecisionReason, priority: Priority | None = None, probability: float | None = None
    ) -> Decision:
        return Decision(
            event_id=situation.event_id,
            deployment_id=deployment.deployment_id,
            agent_id=deployment.agent_id,
            guild_id=message.guild_id,
            channel_id=message.channel_id,
            message_id=message.id,
            author_id=message.author.id,
            respond=priority is not None,
            reason=reason,
            priority=priority,
            probability=probability,
        )

    bot_id = deployment.bot_id
    if message.author.id == bot_id:
        return decision(DecisionReason.own_message)
    if message.author.bot and not behavior.reply_to_bots:
        return decision(DecisionReason.other_bot)
    if agent.ai_config is None:
        return decision(DecisionReason.ai_disabled)
    silenced = rating_gate(agent, situation.is_dm, situation.age_restricted)
    if silenced is not None:
        return decision(silenced)
    if situation.streak >= behavior.max_consecutive_replies:
        return decision(DecisionReason.loop_cap)

    character = agent.character
    traits = character.personality if character is not None else PersonalityTraits()
    relationships = behavior.relationships
    affinity = situation.relationship.affinity if situation.relationship is not None else None
    band_odds = 1.0
    if affinity is not None and relationships.affinity_system:
        band_odds = BAND_ODDS[affinity_band(affinity, relationships.affinity_bands)]
    unprompted_odds = sociability(traits) * band_odds
    chance = 0.0
    # Seeded at the first throw (seeding takes a few microseconds): a decision that throws none, as a
    # question-only agent's, makes no generator. The throws, and so the decisions, are the same.
    dice: random.Random | None = None

    def fires(trigger: Trigger, odds: float = 1.0) -> bool:
        nonlocal chance, dice
        chance = odds_scaled(trigger.probability, odds)
        if not trigger.enabled:
            return False
        if dice is None:
            dice = seeded_rng(situation.event_id, deployment.deployment_id)
        return dice.random() < chance

    def unprompted(trigger: Trigger) -> bool:
        return fires(trigger, unprompted_odds)

    triggers = behavior.response_triggers
    mentioned = situation.is_dm or mentions(message, bot_id)
    replied = replies_to(message, bot_id, situation.context)
    if agent.ai_config.usage is AIUsage.questions_only:
        if (mentioned or replied) and is_question(message.content):
            return decision(
                DecisionReason.mentioned if mentioned else DecisionReason.replied_to, Priority.high
            )
        return decision(DecisionReason.not_a_question)

    if mentioned and fires(triggers.mentioned):
        return decision(DecisionReason.mentioned, Priority.high, chance)
    if replied and fires(triggers.replied_to):
        return decision(DecisionReason.replied_to, Priority.high, chance)
    interests = character.interests if character is not None else []
    breadth = interest_breadth(traits)
    if matches_interest(message.content, interests, breadth) and unprompted(triggers.keyword_match):
        return decision(DecisionReason.interest_match, Priority.medium, chance)
    # The agent's own messages are never the one decided on, so the context needs no filtering.
    if spoke_since(situation.context, bot_id, situation.at - CONVERSATION_WINDOW) and unprompted(
        triggers.conversation_flow
    ):
        return decision(DecisionReason.conversation_flow, Priority.medium, chance)
    if unprompted(triggers.random):
        return decision(DecisionReason.random, Priority.low, chance)
    if situation.mood.mood is MoodName.bored and unprompted(triggers.bored):
        return decision(DecisionReason.bored, Priority.low, chance)
    return decision(DecisionReason.no_trigger)


def addressed(message: DiscordMessage, bot_id: str, context: ChannelContext | None, is_dm: bool) -> bool:
    """The message speaks to the agent: a DM, a mention or a reply to it."""
    return is_dm or mentions(message, bot_id) or replies_to(message, bot_id, context)
