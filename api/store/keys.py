"""API keys: an owner's credentials, kept as hashes, and the caller each one resolves to."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from api.db import in_transaction
from api.schemas import ApiKeyCreated, Role
from api.store.shared import in_scope
from models.tiers import Tier

API_KEY_PREFIX = "dsk_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from the API key, or the console session, on every request."""

    owner_id: UUID
    # The API key's id, or the console session's.
    key_id: UUID
    role: Role
    tier: Tier
    # Signed in to the console (a session cookie) rather than calling with an API key.
    session: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    @property
    def scope(self) -> UUID | None:
        """The owner whose resources this caller may touch; None: an operator, every owner's."""
        return None if self.is_admin else self.owner_id


def hash_api_key(api_key: str) -> str:
    # The key is 256 random bits: a plain SHA-256 cannot be brute-forced, and lookups stay indexable.
    return hashlib.sha256(api_key.encode()).hexdigest()


async def new_key(conn: asyncpg.Connection, owner_id: UUID) -> ApiKeyCreated:
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = await conn.fetchval(
        "INSERT INTO api_keys (owner_id, key_hash) VALUES ($1, $2) RETURNING key_id",
        owner_id,
        hash_api_key(api_key),
    )
    return ApiKeyCreated(key_id=key_id, owner_id=owner_id, api_key=api_key)


@dataclass(frozen=True)
class ApiKeys:
    pool: asyncpg.Pool

    async def create(self, owner_id: UUID, scope: UUID | None) -> ApiKeyCreated:
        async def work(conn: asyncpg.Connection) -> ApiKeyCreated:
            owner = await conn.fetchrow("SELECT owner_id FROM owners WHERE owner_id = $1 FOR SHARE", owner_id)
            in_scope(owner, scope, f"owner {owner_id}")
            return await new_key(conn, owner_id)

        return await in_transaction(self.pool, work)

    async def revoke(self, key_id: UUID, scope: UUID | None) -> None:
        row = await self.pool.fetchrow("SELECT owner_id FROM api_keys WHERE key_id = $1", key_id)
        in_scope(row, scope, f"API key {key_id}")
        await self.pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
        )

    async def principal(self, api_key: str) -> Principal | None:
        row = await self.pool.fetchrow(
            """SELECT k.key_id, o.owner_id, o.role, o.tier FROM api_keys k JOIN owners o USING (owner_id)
               WHERE k.key_hash = $1 AND k.revoked_at IS NULL""",
            hash_api_key(api_key),
        )
        if row is None:
            return None
        return Principal(
            owner_id=row["owner_id"], key_id=row["key_id"], role=Role(row["role"]), tier=Tier(row["tier"])
        )
