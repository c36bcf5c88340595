"""What a bot without the privileged MESSAGE_CONTENT intent still does, and telling its owner.

The fleet learns the intents a bot may identify with from the application's flags (GET /applications/@me)
or from a 4014 close. Such a bot still works through slash commands, mentions and DMs, which Discord
delivers with their content; the features that read other guild messages do not
(models/agent.py: message_content_features). The state is kept on the bot's token row, where the API shows
it with every deployment, and the owner is notified once each time the intent goes missing.
"""

from __future__ import annotations

import logging
from uuid import UUID, uuid4

import asyncpg
from pydantic import ValidationError

from gateways.shard import BotCredentials
from models.agent import AgentConfig, message_content_features
from models.operations import OwnerNotice, OwnerNotification
from streams.catalog import OWNER_NOTIFICATIONS
from streams.outbox import stage

log = logging.getLogger(__name__)

# Flips the token's state; a row comes back only when it changed, so concurrent runners notify once.
_RECORD_SQL = """
UPDATE bot_tokens SET message_content = $2
WHERE token_id = $1 AND message_content IS DISTINCT FROM $2
RETURNING owner_id, bot_username
"""
_AGENTS_SQL = """
SELECT c.agent_name, c.config::text AS config
FROM agent_deployments d JOIN agent_configurations c ON c.config_id = d.config_id
WHERE d.token_id = $1 AND d.status = 'active' AND c.status = 'active'
ORDER BY c.agent_name
"""


def missing_content_notice(bot_name: str, features: dict[str, list[str]]) -> OwnerNotice:
    """What the owner hears when their bot lacks MESSAGE_CONTENT: which agents' features need it."""
    needing = "; ".join(f"{agent}: {', '.join(names)}" for agent, names in features.items() if names)
    what = f"needed by {needing}" if needing else "none of its agents' features needs it"
    message = (
        f"Bot {bot_name} lacks the MESSAGE_CONTENT intent (slash commands, mentions and DMs still work); "
        f"{what}. Enable it in the Discord developer portal."
    )
    return OwnerNotice(kind="message_content_missing", message=_shorten(message))


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def record_message_content(
    pool: asyncpg.Pool, namespace: str, bot: BotCredentials, granted: bool
) -> None:
    """Store whether the bot has MESSAGE_CONTENT; when it just went missing, notify the owner in the same
    transaction (the outbox publishes it)."""
    async with pool.acquire() as conn, conn.transaction():
        changed = await conn.fetchrow(_RECORD_SQL, bot.token_id, granted)
        if changed is None or granted:
            return
        features: dict[str, list[str]] = {}
        for row in await conn.fetch(_AGENTS_SQL, bot.token_id):
            try:
                agent = AgentConfig.model_validate_json(row["config"])
            except ValidationError:
                continue  # written before a validation rule existed: nothing to say about it
            features[row["agent_name"]] = message_content_features(agent)
        notice = missing_content_notice(changed["bot_username"] or bot.bot_id, features)
        # asyncpg's own UUID type (rows, the roster's token ids) is not one the topic codec serialises.
        owner_id = UUID(str(changed["owner_id"]))
        notification = OwnerNotification(
            notification_id=str(uuid4()),
            owner_id=owner_id,
            kind=notice.kind,
            message=notice.message,
            token_id=UUID(str(bot.token_id)),
        )
        await stage(conn, OWNER_NOTIFICATIONS, namespace, str(owner_id), notification)
    log.warning("bot %s: no MESSAGE_CONTENT intent; owner %s notified", bot.bot_id, owner_id)
