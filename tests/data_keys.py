"""Data keys held in memory, for in-process tests of sealing and opening (the vault keeps them in
PostgreSQL)."""

from __future__ import annotations

import os
import secrets

from streams.sealing import DATA_KEY_BYTES, DataKey


class MemoryDataKeys:
    def __init__(self) -> None:
        self.by_user: dict[str, DataKey] = {}

    async def data_key_for(self, user_id: str) -> DataKey:
        if user_id not in self.by_user:
            self.by_user[user_id] = DataKey(secrets.token_urlsafe(18), os.urandom(DATA_KEY_BYTES))
        return self.by_user[user_id]

    async def data_key_by_id(self, key_id: str) -> DataKey | None:
        return next((key for key in self.by_user.values() if key.key_id == key_id), None)

    def destroy(self, user_id: str) -> None:
        self.by_user.pop(user_id, None)
