"""Console sign-ins and sessions: owners linked to their Discord account, sessions kept server-side with
an expiry, the cookie holding only a random secret whose hash is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import asyncpg
from pydantic import TypeAdapter

from api.db import in_transaction
from api.schemas import Role
from api.signin import SIGN_IN_TTL, new_secret, secret_hash
from api.store.keys import Principal
from models.discord import DiscordUser, DiscordUserGuild
from models.tiers import Tier

_GUILDS = TypeAdapter(list[DiscordUserGuild])
# owners.name's limit (models.common.NonEmptyName).
_NAME_LIMIT = 100


@dataclass(frozen=True)
class PendingSignIn:
    code_verifier: str
    next_path: str


@dataclass(frozen=True)
class ConsoleSessions:
    pool: asyncpg.Pool

    async def begin_sign_in(self, state: str, code_verifier: str, next_path: str) -> None:
        # Abandoned sign-ins are swept here: every login adds one row and removes the stale ones.
        await self.pool.execute("DELETE FROM console_sign_ins WHERE expires_at < now()")
        await self.pool.execute(
            """INSERT INTO console_sign_ins (state_hash, code_verifier, next_path, expires_at)
               VALUES ($1, $2, $3, now() + $4::interval)""",
            secret_hash(state),
            code_verifier,
            next_path,
            SIGN_IN_TTL,
        )

    async def take_sign_in(self, state: str) -> PendingSignIn | None:
        """The sign-in `state` started, once: a replayed callback finds nothing."""
        row = await self.pool.fetchrow(
            """DELETE FROM console_sign_ins WHERE state_hash = $1
               RETURNING code_verifier, next_path, expires_at > now() AS live""",
            secret_hash(state),
        )
        if row is None or not row["live"]:
            return None
        return PendingSignIn(row["code_verifier"], row["next_path"])

    async def start(self, user: DiscordUser, guilds: list[DiscordUserGuild], lifetime: timedelta) -> str:
        """A session for the owner linked to `user`, created as a free-tier owner on first sign-in; the
        cookie's secret."""
        secret = new_secret()
        name = (user.display_name.strip() or f"Discord user {user.id}")[:_NAME_LIMIT]

        async def work(conn: asyncpg.Connection) -> None:
            owner_id = await conn.fetchval(
                """INSERT INTO owners (name, discord_user_id) VALUES ($1, $2)
                   ON CONFLICT (discord_user_id) DO UPDATE SET discord_user_id = excluded.discord_user_id
                   RETURNING owner_id""",
                name,
                user.id,
            )
            # Expired sessions are swept here, as sign-ins are at login.
            await conn.execute("DELETE FROM console_sessions WHERE expires_at < now()")
            await conn.execute(
                """INSERT INTO console_sessions (session_hash, owner_id, guilds, expires_at)
                   VALUES ($1, $2, $3, now() + $4::interval)""",
                secret_hash(secret),
                owner_id,
                [guild.model_dump(mode="json") for guild in guilds],
                lifetime,
            )

        await in_transaction(self.pool, work)
        return secret

    async def principal(self, secret: str) -> Principal | None:
        row = await self.pool.fetchrow(
            """SELECT s.session_id, o.owner_id, o.role, o.tier
               FROM console_sessions s JOIN owners o USING (owner_id)
               WHERE s.session_hash = $1 AND s.expires_at > now()""",
            secret_hash(secret),
        )
        if row is None:
            return None
        return Principal(
            owner_id=row["owner_id"],
            key_id=row["session_id"],
            role=Role(row["role"]),
            tier=Tier(row["tier"]),
            session=True,
        )

    async def guilds(self, session_id: UUID) -> list[DiscordUserGuild]:
        guilds = await self.pool.fetchval(
            "SELECT guilds FROM console_sessions WHERE session_id = $1", session_id
        )
        return _GUILDS.validate_python(guilds or [])

    async def end(self, secret: str) -> None:
        await self.pool.execute("DELETE FROM console_sessions WHERE session_hash = $1", secret_hash(secret))
