"""Reports reach the owner: a reaction report from the processors' engine, through `owner.notifications`
(sealed under the reporter's key), is opened, stored once and listed to its owner (and operators) by the API,
never to another owner; a report whose reporter was erased is listed without them."""

from __future__ import annotations

import asyncio
from dataclasses import fields
from typing import Any
from uuid import UUID

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from api.background import consume_owner_notifications
from api.store import Store
from models.tiers import Tier
from ops.erasure import UserKeys
from processors.engine import Engine, Outputs, Tables
from settings import Settings
from streams.catalog import OWNER_NOTIFICATIONS, REPORT_BY_ERASED_MEMBER
from streams.codec import encode_key
from tests.api.conftest import auth
from tests.processors.factories import deployed, envelope, luna, routing, snowflake
from tests.waiting import wait_until

pytestmark = pytest.mark.stack


async def create_owner(client: httpx.AsyncClient, admin_key: str) -> tuple[UUID, dict[str, str]]:
    response = await client.post(
        "/owners", json={"name": "owner", "tier": Tier.pro.value}, headers=auth(admin_key)
    )
    assert response.status_code == 201, response.text
    created = response.json()
    return UUID(created["owner"]["owner_id"]), auth(created["key"]["api_key"])


def report(engine: Engine, guild: str, bot: str, reporter: str, message_id: str) -> Outputs:
    data: dict[str, Any] = {
        "user_id": reporter,
        "channel_id": snowflake(),
        "message_id": message_id,
        "guild_id": guild,
        "message_author_id": bot,
        "emoji": {"id": None, "name": "\u26a0\ufe0f"},
    }
    return engine.handle_event(envelope("MESSAGE_REACTION_ADD", data, bot_id=bot, guild_id=guild))


async def test_a_reported_message_reaches_its_owner_once_and_no_other_owner(
    client: httpx.AsyncClient, admin_key: str, api_settings: Settings
) -> None:
    owner_id, owner = await create_owner(client, admin_key)
    other_id, other = await create_owner(client, admin_key)
    guild, bot, message_id = snowflake(), snowflake(), snowflake()
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    engine.apply_routing(routing(guild, deployed(luna(), guild_id=guild, bot_id=bot, owner_id=owner_id)))
    reporters = [snowflake() for _ in range(3)]
    first, second, by_erased = (report(engine, guild, bot, reporter, message_id) for reporter in reporters)
    [notification] = first.notifications
    ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]
    store: Store = ctx.store
    keys: UserKeys = ctx.erasures.stores.user_keys
    records = [
        record for outputs in (first, second, by_erased) for record in await outputs.records(guild, keys)
    ]
    await keys.destroy_user_keys(reporters[2])
    assert [spec for spec, _, _ in records] == [OWNER_NOTIFICATIONS] * 3
    # The reporter's id travels sealed; what routes it (the owner) stays clear.
    for (_, key, value), reporter in zip(records, reporters, strict=True):
        assert reporter.encode() not in value and key == str(owner_id)

    producer = AIOKafkaProducer(bootstrap_servers=api_settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        # The first report twice, as a redelivery would; the others after it on the owner's partition.
        for spec, key, value in [records[0], *records]:
            await producer.send_and_wait(spec.name_in(api_settings.topic_namespace), value, encode_key(key))
    finally:
        await producer.stop()

    stop = asyncio.Event()
    consumer = asyncio.create_task(
        consume_owner_notifications(store, keys, api_settings.kafka_bootstrap, stop)
    )

    async def listed() -> list[dict[str, Any]]:
        response = await client.get(f"/owners/{owner_id}/notifications", headers=owner)
        assert response.status_code == 200, response.text
        body: list[dict[str, Any]] = response.json()
        return body if len(body) >= 3 else []

    try:
        shown = await wait_until(listed, "the three reports in the owner's notifications")
    finally:
        stop.set()
        await asyncio.wait_for(consumer, 30)
    assert len(shown) == 3 and notification.notification_id in {n["notification_id"] for n in shown}
    assert all(n["kind"] == "message_reported" for n in shown)
    messages = {n["notification_id"]: n["message"] for n in shown}
    # Opened with the reporters' keys: the owner reads who reported which message.
    for outputs, reporter in zip((first, second), reporters[:2], strict=True):
        [sent] = outputs.notifications
        assert reporter in messages[sent.notification_id] and message_id in messages[sent.notification_id]
    [erased] = by_erased.notifications
    assert messages[erased.notification_id] == REPORT_BY_ERASED_MEMBER

    assert (await client.get(f"/owners/{owner_id}/notifications", headers=other)).status_code == 404
    assert (await client.get(f"/owners/{other_id}/notifications", headers=other)).json() == []
    assert (await client.get("/notifications", headers=other)).status_code == 403
    operators = (await client.get("/notifications", headers=auth(admin_key))).json()
    assert {n["notification_id"] for n in shown} <= {n["notification_id"] for n in operators}
