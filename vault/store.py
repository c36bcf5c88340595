"""The token store: bot tokens encrypted at rest, validated against Discord, every access audited.

A token is plaintext only inside a `SecretStr` (its repr and str are masked), from the moment it is
read until the Authorization header is built; no model, log line, exception or topic ever holds it.
Ciphertexts are AES-256-GCM under a key named by its id; the token id is the associated data, so a
ciphertext copied onto another token's row does not decrypt. Status changes are announced on
`tokens.health` through the outbox, in the same transaction that records them.
"""

from __future__ import annotations

import logging
from typing import Literal
from uuid import UUID, uuid4

import asyncpg
import httpx
from pydantic import SecretStr

from models.common import utc_now
from models.tiers import TokenTier
from models.tokens import BotTokenState, TokenHealthEvent, TokenStatus
from settings import Settings
from streams.catalog import TOKENS_HEALTH
from streams.outbox import stage
from vault.discord_checks import bot_guild_ids, validate_token
from vault.errors import BotTaken, DiscordUnavailable, TokenNotFound, TokenRejected, TokenUnusable
from vault.keyring import KeyRing, Sealed, load_keyring

log = logging.getLogger(__name__)

# Three failed checks in a row mark a token failed; one success clears the count.
FAILURES_BEFORE_FAILED = 3
HEALTH_INTERVAL_S = {TokenTier.premium: 600, TokenTier.standard: 300, TokenTier.lite: 300}

# The reasons TokenHealthEvent accepts.
HealthReason = Literal["revoked_401", "close_4004", "health_check", "manual", "recovered", "rate_limited"]


# What `token_state` reads; never the ciphertext.
TOKEN_STATE_COLUMNS = """token_id, owner_id, bot_user_id, coalesce(bot_username, '') AS bot_username, tier,
    status, failure_count, rate_limit_hits, guilds_count, last_validated, created_at"""


def token_state(row: asyncpg.Record) -> BotTokenState:
    return BotTokenState(
        token_id=row["token_id"],
        owner_id=row["owner_id"],
        bot_user_id=row["bot_user_id"],
        bot_username=row["bot_username"][:200],
        tier=TokenTier(row["tier"]),
        status=TokenStatus(row["status"]),
        failure_count=row["failure_count"],
        rate_limit_hits=row["rate_limit_hits"],
        guilds_count=row["guilds_count"],
        last_validated=row["last_validated"],
        created_at=row["created_at"],
    )


async def audit(conn: asyncpg.Connection, token_id: UUID, actor: str, action: str) -> None:
    await conn.execute(
        "INSERT INTO token_access_audit (token_id, actor, action) VALUES ($1, $2, $3)",
        token_id,
        actor,
        action,
    )


class TokenVault:
    """Tokens in PostgreSQL (bot_tokens), sealed under the key ring; announcements through the outbox."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        keyring: KeyRing,
        *,
        discord_api_base: str,
        topic_namespace: str,
        http: httpx.AsyncClient,
    ) -> None:
        self._pool = pool
        self._keyring = keyring
        self._api_base = discord_api_base
        self._namespace = topic_namespace
        self._http = http

    @classmethod
    def from_settings(cls, pool: asyncpg.Pool, settings: Settings, http: httpx.AsyncClient) -> TokenVault:
        """The vault of this deployment: its key ring, its Discord, its topic namespace."""
        return cls(
            pool,
            load_keyring(settings),
            discord_api_base=settings.discord_api_base,
            topic_namespace=settings.topic_namespace,
            http=http,
        )

    async def add_token(self, owner_id: UUID, token: SecretStr, *, actor: str) -> BotTokenState:
        """Validate with Discord, seal, store. A token for a bot the owner already has replaces the old one
        (a token reset), keeping its token id so deployments keep working."""
        identity = await validate_token(token, self._api_base, self._http)
        async with self._pool.acquire() as conn, conn.transaction():
            existing = await conn.fetchval(
                "SELECT token_id FROM bot_tokens WHERE owner_id = $1 AND bot_user_id = $2 FOR UPDATE",
                owner_id,
                identity.bot_user_id,
            )
            token_id = existing or uuid4()
            sealed = self._keyring.encrypt(token_id, token)
            # Before the insert, which would also refuse it (bot_tokens_live_bot_uq): a clear message.
            if existing is None and await conn.fetchval(
                "SELECT true FROM bot_tokens WHERE bot_user_id = $1 AND status <> 'revoked'",
                identity.bot_user_id,
            ):
                raise BotTaken(f"bot {identity.bot_user_id} is registered by another account")
            row = await conn.fetchrow(
                f"""
                INSERT INTO bot_tokens (token_id, owner_id, bot_user_id, bot_username, key_id, ciphertext,
                                        nonce,
                                        tier, status, failure_count, guilds_count, last_validated,
                                        next_health_check)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', 0, $9, now(),
                        now() + make_interval(secs => $10))
                ON CONFLICT (token_id) DO UPDATE SET
                    bot_username = EXCLUDED.bot_username, key_id = EXCLUDED.key_id,
                    ciphertext = EXCLUDED.ciphertext, nonce = EXCLUDED.nonce, tier = EXCLUDED.tier,
                    status = 'active', failure_count = 0, guilds_count = EXCLUDED.guilds_count,
                    last_validated = now(), next_health_check = EXCLUDED.next_health_check, updated_at = now()
                RETURNING {TOKEN_STATE_COLUMNS}
                """,
                token_id,
                owner_id,
                identity.bot_user_id,
                identity.username,
                sealed.key_id,
                sealed.ciphertext,
                sealed.nonce,
                identity.tier.value,
                identity.guild_count,
                float(HEALTH_INTERVAL_S[identity.tier]),
            )
            await audit(conn, token_id, actor, "replace" if existing else "add")
        return token_state(row)

    async def decrypt_token(self, token_id: UUID, *, actor: str) -> SecretStr:
        """The token for a gateway runner (or a health check); refused once the token is revoked."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT status, key_id, nonce, ciphertext FROM bot_tokens WHERE token_id = $1", token_id
            )
            if row is None:
                raise TokenNotFound(f"no token {token_id}")
            if row["status"] == TokenStatus.revoked:
                raise TokenUnusable(f"token {token_id} is revoked")
            await audit(conn, token_id, actor, "decrypt")
        return self._keyring.decrypt(token_id, Sealed(row["key_id"], row["nonce"], row["ciphertext"]))

    async def bot_guilds(self, token_id: UUID, *, actor: str) -> set[str]:
        """The ids of the guilds the token's bot is in, as Discord says now."""
        return await bot_guild_ids(
            await self.decrypt_token(token_id, actor=actor), self._api_base, self._http
        )

    async def rotate_key(self, *, batch_size: int = 200, actor: str = "rotate-key") -> int:
        """Re-seal every token not under the current key; one transaction per batch, so a rotation that
        stops half-way resumes where it stopped. Returns how many tokens were re-sealed."""
        current = self._keyring.current.key_id
        rotated = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    """SELECT token_id, key_id, nonce, ciphertext FROM bot_tokens WHERE key_id <> $1
                       ORDER BY token_id LIMIT $2 FOR UPDATE SKIP LOCKED""",
                    current,
                    batch_size,
                )
                if not rows:
                    return rotated
                updates = []
                for row in rows:
                    token = self._keyring.decrypt(
                        row["token_id"], Sealed(row["key_id"], row["nonce"], row["ciphertext"])
                    )
                    sealed = self._keyring.encrypt(row["token_id"], token)
                    updates.append((row["token_id"], sealed.key_id, sealed.nonce, sealed.ciphertext))
                await conn.executemany(
                    """UPDATE bot_tokens SET key_id = $2, nonce = $3, ciphertext = $4, updated_at = now()
                       WHERE token_id = $1""",
                    updates,
                )
                await conn.executemany(
                    "INSERT INTO token_access_audit (token_id, actor, action) VALUES ($1, $2, 'rotate')",
                    [(update[0], actor) for update in updates],
                )
                rotated += len(updates)

    async def mark_revoked(
        self, token_id: UUID, *, reason: HealthReason, actor: str, detail: str = ""
    ) -> TokenHealthEvent | None:
        """A 401 or close code 4004: stop all use of the token and announce it (None if already revoked)."""
        async with self._pool.acquire() as conn, conn.transaction():
            return await self.revoke_in(conn, token_id, reason=reason, actor=actor, detail=detail)

    async def revoke_in(
        self, conn: asyncpg.Connection, token_id: UUID, *, reason: HealthReason, actor: str, detail: str = ""
    ) -> TokenHealthEvent | None:
        """mark_revoked inside the caller's transaction (the API revokes and reassigns in one)."""
        return await self._set_status(conn, token_id, TokenStatus.revoked, reason, detail, actor=actor)

    async def claim_due(self, limit: int = 50) -> list[UUID]:
        """Token ids whose health check is due, moved forward so no other replica takes them too."""
        rows = await self._pool.fetch(
            """
            UPDATE bot_tokens t SET next_health_check = now() + make_interval(
                secs => CASE WHEN t.tier = 'premium' THEN $2::float8 ELSE $3::float8 END)
            WHERE t.token_id IN (
                SELECT token_id FROM bot_tokens WHERE status <> 'revoked' AND next_health_check <= now()
                ORDER BY next_health_check LIMIT $1 FOR UPDATE SKIP LOCKED)
            RETURNING t.token_id
            """,
            limit,
            float(HEALTH_INTERVAL_S[TokenTier.premium]),
            float(HEALTH_INTERVAL_S[TokenTier.lite]),
        )
        return [row["token_id"] for row in rows]

    async def check_health(self, token_id: UUID, *, actor: str = "health-check") -> TokenHealthEvent | None:
        """Re-validate one token with Discord; the health event if its status changed."""
        try:
            token = await self.decrypt_token(token_id, actor=actor)
        except TokenUnusable:
            return None
        try:
            identity = await validate_token(token, self._api_base, self._http)
        except TokenRejected as exc:
            return await self.mark_revoked(token_id, reason="revoked_401", actor=actor, detail=str(exc))
        except DiscordUnavailable as exc:
            return await self._record_failure(token_id, exc, actor=actor)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE bot_tokens SET failure_count = 0, guilds_count = $2, tier = $3, bot_username = $4,
                       last_validated = now(), updated_at = now() WHERE token_id = $1""",
                token_id,
                identity.guild_count,
                identity.tier.value,
                identity.username,
            )
            return await self._set_status(conn, token_id, TokenStatus.active, "recovered", "", actor=actor)

    async def _record_failure(
        self, token_id: UUID, failure: DiscordUnavailable, *, actor: str
    ) -> TokenHealthEvent | None:
        async with self._pool.acquire() as conn, conn.transaction():
            failures = await conn.fetchval(
                """UPDATE bot_tokens SET failure_count = failure_count + 1,
                       rate_limit_hits = rate_limit_hits + $2::int, last_validated = now(), updated_at = now()
                   WHERE token_id = $1 AND status <> 'revoked' RETURNING failure_count""",
                token_id,
                int(failure.rate_limited),
            )
            if failures is None:
                return None
            status = TokenStatus.failed if failures >= FAILURES_BEFORE_FAILED else TokenStatus.degraded
            reason: HealthReason = "rate_limited" if failure.rate_limited else "health_check"
            return await self._set_status(conn, token_id, status, reason, str(failure), actor=actor)

    async def _set_status(
        self,
        conn: asyncpg.Connection,
        token_id: UUID,
        status: TokenStatus,
        reason: HealthReason,
        detail: str,
        *,
        actor: str,
    ) -> TokenHealthEvent | None:
        row = await conn.fetchrow(
            "SELECT owner_id, bot_user_id, status FROM bot_tokens WHERE token_id = $1 FOR UPDATE", token_id
        )
        if row is None:
            raise TokenNotFound(f"no token {token_id}")
        if row["status"] == status or row["status"] == TokenStatus.revoked:
            return None  # unchanged, and a revoked token never comes back (a new token is added instead)
        await conn.execute(
            "UPDATE bot_tokens SET status = $2, updated_at = now() WHERE token_id = $1",
            token_id,
            status.value,
        )
        await audit(conn, token_id, actor, f"status:{status.value}")
        # UUID(str()): a plain asyncpg pool returns its own UUID subclass, which the topic codec cannot write.
        event = TokenHealthEvent(
            token_id=UUID(str(token_id)),
            bot_user_id=row["bot_user_id"],
            owner_id=UUID(str(row["owner_id"])),
            status=status,
            reason=reason,
            detail=detail[:200],
            at=utc_now(),
        )
        await stage(conn, TOKENS_HEALTH, self._namespace, str(token_id), event)
        return event

    async def get_state(self, token_id: UUID) -> BotTokenState:
        row = await self._pool.fetchrow(
            f"SELECT {TOKEN_STATE_COLUMNS} FROM bot_tokens WHERE token_id = $1", token_id
        )
        if row is None:
            raise TokenNotFound(f"no token {token_id}")
        return token_state(row)
