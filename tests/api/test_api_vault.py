"""The token vault: AES-GCM with key ids, validation against the Discord emulator, rotation, health."""

from __future__ import annotations

import dataclasses
import logging
import stat
from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from api.schemas import OwnerCreate
from api.store import create_owner
from emulator.discord.server import DiscordEmulator
from models.tiers import TokenTier
from models.tokens import TokenStatus
from settings import Settings
from streams.catalog import TOKENS_HEALTH
from vault.discord_checks import classify_tier
from vault.errors import KeyRingError, TokenRejected, TokenUnusable
from vault.keyring import KEY_FILE_NAME, KeyRing, generate_key_spec, load_keyring
from vault.store import TokenVault

pytestmark = pytest.mark.stack

K1, K2 = generate_key_spec("k1"), generate_key_spec("k2")


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def vault_with(
    pool: asyncpg.Pool, http: httpx.AsyncClient, api_settings: Settings
) -> Callable[[str], TokenVault]:
    def make(keys: str) -> TokenVault:
        return TokenVault(
            pool,
            KeyRing.parse(keys),
            discord_api_base=api_settings.discord_api_base,
            topic_namespace=api_settings.topic_namespace,
            http=http,
        )

    return make


@pytest.fixture(scope="module")
async def owner_id(pool: asyncpg.Pool) -> object:
    return (await create_owner(pool, OwnerCreate(name="vault owner"))).owner.owner_id


def test_keyring_round_trip_binds_ciphertext_to_its_token_id() -> None:
    ring = KeyRing.parse(K1)
    token_id, other = uuid4(), uuid4()
    sealed = ring.encrypt(token_id, SecretStr("MTIz.abc.secret-token"))
    assert sealed.key_id == "k1" and b"secret-token" not in sealed.ciphertext
    assert ring.decrypt(token_id, sealed).get_secret_value() == "MTIz.abc.secret-token"
    with pytest.raises(KeyRingError, match="does not decrypt"):
        ring.decrypt(other, sealed)  # the same ciphertext on another token's row


def test_wrong_key_id_and_wrong_key_fail_without_showing_keys() -> None:
    sealed = KeyRing.parse(K1).encrypt(uuid4(), SecretStr("tok"))
    with pytest.raises(KeyRingError, match="'k1', not in the key ring"):
        KeyRing.parse(K2).decrypt(uuid4(), sealed)
    impostor = KeyRing.parse("k1:" + K2.split(":", 1)[1])
    with pytest.raises(KeyRingError, match="wrong key"):
        impostor.decrypt(uuid4(), sealed)
    secret = K1.split(":", 1)[1]
    with pytest.raises(KeyRingError) as caught:
        KeyRing.parse(f"k1:{secret[:-4]}")
    assert secret[:-4] not in str(caught.value) and "'k1'" in str(caught.value)
    with pytest.raises(KeyRingError, match="more than once"):
        KeyRing.parse(f"{K1},{K1}")


@pytest.mark.parametrize(
    ("guilds", "verified", "tier"),
    [
        (0, False, "lite"),
        (10, True, "lite"),
        (11, False, "standard"),
        (101, False, "standard"),
        (101, True, "premium"),
    ],
)
def test_classify_tier_by_reach_and_verification(guilds: int, verified: bool, tier: str) -> None:
    assert classify_tier(guilds, verified) is TokenTier(tier)


def test_local_key_is_generated_once_private_and_never_logged(
    api_settings: Settings, tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    settings = dataclasses.replace(api_settings, token_keys="", state_dir=tmp_path)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="vault.keyring"):
        first = load_keyring(settings)
    path = settings.state_dir / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key_b64 = path.read_text().strip().split(":", 1)[1]
    assert "generated local key" in caplog.text and key_b64 not in caplog.text
    second = load_keyring(settings)
    assert first.key_ids == second.key_ids
    sealed = first.encrypt(token_id := uuid4(), SecretStr("t"))
    assert second.decrypt(token_id, sealed).get_secret_value() == "t"


async def test_add_token_validates_classifies_and_stores_nothing_in_clear(
    vault_with: Callable[[str], TokenVault],
    new_bot: Callable[..., tuple[str, str]],
    pool: asyncpg.Pool,
    owner_id: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    vault = vault_with(K1)
    bot_id, token = new_bot(guilds=11, username="standard-bot")
    with caplog.at_level(logging.DEBUG):
        state = await vault.add_token(owner_id, SecretStr(token), actor="test")  # type: ignore[arg-type]
    assert caplog.records and token not in caplog.text  # httpx and httpcore log every request at DEBUG
    assert state.bot_user_id == bot_id and state.tier is TokenTier.standard and state.guilds_count == 11
    assert token not in repr(state) and token not in state.model_dump_json()
    row = await pool.fetchrow("SELECT * FROM bot_tokens WHERE token_id = $1", state.token_id)
    assert row["key_id"] == "k1"
    assert all(token.encode() not in (v if isinstance(v, bytes) else str(v).encode()) for v in row.values())
    decrypted = await vault.decrypt_token(state.token_id, actor="runner-1")
    assert decrypted.get_secret_value() == token and token not in repr(decrypted)
    actions = await pool.fetch(
        "SELECT actor, action FROM token_access_audit WHERE token_id = $1 ORDER BY id", state.token_id
    )
    assert [(a["actor"], a["action"]) for a in actions] == [("test", "add"), ("runner-1", "decrypt")]


async def test_rejected_token_error_never_contains_the_token(
    vault_with: Callable[[str], TokenVault], owner_id: object
) -> None:
    token = "MTIzNDU2Nzg5.fake.not-a-real-token-at-all"
    with pytest.raises(TokenRejected) as caught:
        await vault_with(K1).add_token(owner_id, SecretStr(token), actor="test")  # type: ignore[arg-type]
    assert "401" in str(caught.value) and token not in str(caught.value) and token not in repr(caught.value)


async def test_rotate_key_reencrypts_everything_and_old_tokens_still_decrypt(
    vault_with: Callable[[str], TokenVault],
    new_bot: Callable[..., tuple[str, str]],
    pool: asyncpg.Pool,
) -> None:
    owner = (await create_owner(pool, OwnerCreate(name="rotating owner"))).owner.owner_id
    tokens = {}
    for _ in range(3):
        _, token = new_bot()
        state = await vault_with(K1).add_token(owner, SecretStr(token), actor="test")
        tokens[state.token_id] = token
    before = {
        r["token_id"]: r["ciphertext"]
        for r in await pool.fetch("SELECT token_id, ciphertext FROM bot_tokens")
    }
    rotated = await vault_with(f"{K2},{K1}").rotate_key(batch_size=2)
    assert rotated >= 3
    rows = await pool.fetch("SELECT token_id, key_id, ciphertext FROM bot_tokens")
    assert {row["key_id"] for row in rows} == {"k2"}
    assert all(row["ciphertext"] != before[row["token_id"]] for row in rows)
    only_new = vault_with(K2)
    for token_id, token in tokens.items():
        assert (await only_new.decrypt_token(token_id, actor="t")).get_secret_value() == token
    with pytest.raises(KeyRingError, match="'k2', not in the key ring"):
        await vault_with(K1).decrypt_token(next(iter(tokens)), actor="t")
    assert await vault_with(K2).rotate_key() == 0
    # Let the other tests of this module keep using k1.
    assert await vault_with(f"{K1},{K2}").rotate_key() >= 3


async def test_health_check_marks_a_dead_token_revoked_and_announces_it(
    vault_with: Callable[[str], TokenVault],
    new_bot: Callable[..., tuple[str, str]],
    emulator: DiscordEmulator,
    pool: asyncpg.Pool,
    owner_id: object,
    api_settings: Settings,
) -> None:
    vault = vault_with(K1)
    bot_id, token = new_bot()
    state = await vault.add_token(owner_id, SecretStr(token), actor="test")  # type: ignore[arg-type]
    assert await vault.check_health(state.token_id) is None  # healthy and unchanged: no event
    await emulator.revoke_token(bot_id)
    event = await vault.check_health(state.token_id)
    assert event is not None and event.status is TokenStatus.revoked and event.reason == "revoked_401"
    assert token not in event.model_dump_json()
    assert (await vault.get_state(state.token_id)).status is TokenStatus.revoked
    with pytest.raises(TokenUnusable):
        await vault.decrypt_token(state.token_id, actor="runner")
    assert await vault.check_health(state.token_id) is None
    rows = await pool.fetch(
        "SELECT key, value FROM outbox WHERE topic = $1 ORDER BY id",
        TOKENS_HEALTH.name_in(api_settings.topic_namespace),
    )
    announced = [
        TOKENS_HEALTH.codec.decode(row["value"]) for row in rows if row["key"] == str(state.token_id).encode()
    ]
    assert [(e.status, e.reason) for e in announced] == [(TokenStatus.revoked, "revoked_401")]


async def test_claim_due_hands_each_token_to_one_checker(
    vault_with: Callable[[str], TokenVault], pool: asyncpg.Pool
) -> None:
    await pool.execute(
        "UPDATE bot_tokens SET next_health_check = now() - interval '1 minute' WHERE status <> 'revoked'"
    )
    due = await pool.fetchval("SELECT count(*) FROM bot_tokens WHERE status <> 'revoked'")
    first = await vault_with(K1).claim_due(limit=1000)
    second = await vault_with(K1).claim_due(limit=1000)
    assert len(first) == due and second == []
