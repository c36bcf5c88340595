"""The token vault: bot tokens encrypted at rest, validated against Discord, every access audited.

A token is plaintext only inside a `SecretStr` (its repr and str are masked), from the moment it is
read until the Authorization header is built; no model, log line, exception or topic ever holds it.
Ciphertexts are AES-256-GCM under a key named by its id; the token id is the associated data, so a
ciphertext copied onto another token's row does not decrypt. Status changes are announced on
`tokens.health` through the outbox, in the same transaction that records them.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from uuid import UUID, uuid4

import asyncpg
import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from deep.settings import Settings
from models.common import Snowflake, utc_now
from models.tiers import TokenTier
from models.tokens import BotTokenState, TokenHealthEvent, TokenStatus
from streams.catalog import TOKENS_HEALTH
from streams.outbox import stage

log = logging.getLogger(__name__)

NONCE_BYTES = 12
KEY_FILE_NAME = "token-keys"
# Discord's user flag for a verified bot (public_flags bit 16).
VERIFIED_BOT_FLAG = 1 << 16
# As in the seed's healthCheckLoop: three failed checks in a row mark a token failed.
FAILURES_BEFORE_FAILED = 3
HEALTH_INTERVAL_S = {TokenTier.premium: 600, TokenTier.standard: 300, TokenTier.lite: 300}

# The reasons TokenHealthEvent accepts.
HealthReason = Literal["revoked_401", "close_4004", "health_check", "manual", "recovered", "rate_limited"]


class VaultError(Exception):
    """Base of the vault's errors. No message ever contains a token."""


class KeyRingError(VaultError):
    pass


class TokenNotFound(VaultError):
    pass


class TokenUnusable(VaultError):
    """The token is revoked: Discord rejected it, and every further use counts toward an IP ban."""


class TokenRejected(VaultError):
    """Discord answered 401: the token is wrong or was reset."""


class BotTaken(VaultError):
    """Another owner has this bot registered (a bot belongs to one owner at a time)."""


class DiscordUnavailable(VaultError):
    """Discord could not be asked (network error, 5xx, 429); the token may be fine."""

    def __init__(self, message: str, *, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited


@dataclass(frozen=True)
class VaultKey:
    key_id: str
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class Sealed:
    key_id: str
    nonce: bytes
    ciphertext: bytes


def _associated_data(token_id: UUID) -> bytes:
    return b"deep-bot-token:" + token_id.bytes


class KeyRing:
    """The vault's keys: the first encrypts, every one decrypts."""

    def __init__(self, keys: Sequence[VaultKey]) -> None:
        if not keys:
            raise KeyRingError("the key ring needs at least one key")
        ids = [key.key_id for key in keys]
        duplicates = sorted({key_id for key_id in ids if ids.count(key_id) > 1})
        if duplicates:
            raise KeyRingError(f"key id(s) {', '.join(duplicates)} appear more than once")
        self._keys = {key.key_id: key for key in keys}
        self.current = keys[0]

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """`kid:base64key,kid2:base64key` (DEEP_TOKEN_KEYS). Errors name the key id, never the key."""
        keys = []
        for position, item in enumerate(part.strip() for part in spec.split(",") if part.strip()):
            key_id, sep, encoded = item.partition(":")
            if not sep or not key_id:
                raise KeyRingError(f"token key #{position + 1} must be written kid:base64key")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise KeyRingError(f"token key {key_id!r} is not valid base64") from None
            if len(raw) != 32:
                raise KeyRingError(f"token key {key_id!r} must be 32 bytes (AES-256), got {len(raw)}")
            keys.append(VaultKey(key_id, raw))
        return cls(keys)

    def encrypt(self, token_id: UUID, token: SecretStr) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        key = self.current
        ciphertext = AESGCM(key.key).encrypt(
            nonce, token.get_secret_value().encode(), _associated_data(token_id)
        )
        return Sealed(key.key_id, nonce, ciphertext)

    def decrypt(self, token_id: UUID, sealed: Sealed) -> SecretStr:
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise KeyRingError(
                f"token {token_id} is sealed under key id {sealed.key_id!r}, not in the key ring"
            )
        try:
            plaintext = AESGCM(key.key).decrypt(sealed.nonce, sealed.ciphertext, _associated_data(token_id))
        except InvalidTag:
            raise KeyRingError(
                f"token {token_id} does not decrypt under key {sealed.key_id!r} (wrong key or tampered row)"
            ) from None
        return SecretStr(plaintext.decode())


def generate_key_spec(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def load_keyring(settings: Settings) -> KeyRing:
    """Keys from DEEP_TOKEN_KEYS; without them a local key generated once under the state directory."""
    if settings.token_keys:
        return KeyRing.parse(settings.token_keys)
    path = settings.state_dir / KEY_FILE_NAME
    if not path.exists():
        _create_local_keys(path)
    return KeyRing.parse(path.read_text())


def _create_local_keys(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    key_id = f"local-{secrets.token_hex(3)}"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it first; use theirs
    with os.fdopen(descriptor, "w") as handle:
        handle.write(generate_key_spec(key_id) + "\n")
    log.warning(
        "token vault: DEEP_TOKEN_KEYS is empty; generated local key %s in %s (set it in production)",
        key_id,
        path,
    )


def classify_tier(guild_count: int, verified: bool) -> TokenTier:
    """The seed's classifyTier: premium needs reach and verification, standard needs reach."""
    if guild_count > 100 and verified:
        return TokenTier.premium
    if guild_count > 10:
        return TokenTier.standard
    return TokenTier.lite


@dataclass(frozen=True)
class BotIdentity:
    bot_user_id: Snowflake
    username: str
    application_id: Snowflake
    guild_count: int
    verified: bool

    @property
    def tier(self) -> TokenTier:
        return classify_tier(self.guild_count, self.verified)


async def _discord_get(http: httpx.AsyncClient, base: str, route: str, token: SecretStr) -> dict[str, object]:
    try:
        response = await http.get(
            f"{base.rstrip('/')}/{route}",
            headers={"Authorization": f"Bot {token.get_secret_value()}"},
        )
    except httpx.HTTPError as exc:
        raise DiscordUnavailable(f"GET {route} failed: {type(exc).__name__}") from None
    if response.status_code == 401:
        raise TokenRejected(f"Discord rejected the bot token (401 Unauthorized on {route})")
    if response.status_code == 429:
        raise DiscordUnavailable(f"GET {route} was rate limited (429)", rate_limited=True)
    if response.status_code != 200:
        raise DiscordUnavailable(f"GET {route} answered {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise DiscordUnavailable(f"GET {route} answered something other than a JSON object")
    return body


async def validate_token(token: SecretStr, api_base: str, http: httpx.AsyncClient) -> BotIdentity:
    """Ask Discord who the token belongs to (users/@me) and how far the application reaches."""
    user = await _discord_get(http, api_base, "users/@me", token)
    application = await _discord_get(http, api_base, "oauth2/applications/@me", token)
    if not user.get("bot"):
        raise TokenRejected("the token belongs to a user account, not a bot")
    if not isinstance(user.get("id"), str) or not str(user["id"]).isdigit():
        raise DiscordUnavailable("users/@me answered without a user id")
    flags = user.get("public_flags") or user.get("flags") or 0
    guild_count = application.get("approximate_guild_count") or 0
    return BotIdentity(
        bot_user_id=str(user["id"]),
        username=str(user.get("username", "")),
        application_id=str(application.get("id", user["id"])),
        guild_count=int(guild_count) if isinstance(guild_count, int) else 0,
        verified=bool(int(flags) & VERIFIED_BOT_FLAG) if isinstance(flags, int) else False,
    )


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
        """Re-validate one token as the seed's healthCheckLoop does; the event if its status changed."""
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
