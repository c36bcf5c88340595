"""`deep ops agents status` and `tokens status`: counts from PostgreSQL, never a secret."""

from __future__ import annotations

from uuid import uuid4

import asyncpg
import pytest
from rich.console import Console

from ops.cli import agents_tables, tokens_table
from ops.status import agent_status, token_status
from tests.jobs.factories import SECRET_CIPHERTEXT, insert_deployment

pytestmark = pytest.mark.stack


def rendered(*tables: object) -> str:
    console = Console(record=True, width=200)
    for table in tables:
        console.print(table)
    return console.export_text()


async def test_agent_and_token_status_count_by_status_and_tier(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await insert_deployment(conn, uuid4(), guild_id="1", owner_tier="pro")
        await insert_deployment(conn, uuid4(), guild_id="2", owner_tier="pro", token_tier="standard")
        await insert_deployment(
            conn,
            uuid4(),
            guild_id="2",
            owner_tier="free",
            deployment_status="paused",
            config_status="paused",
            token_status="revoked",
        )
    finally:
        await conn.close()

    agents = await agent_status(pg_dsn)
    assert [(d.status, d.owner_tier, d.deployments, d.guilds) for d in agents.deployments] == [
        ("active", "pro", 2, 2),
        ("paused", "free", 1, 1),
    ]
    assert agents.agents == {"active": 2, "paused": 1}

    tokens = await token_status(pg_dsn)
    assert [(t.tier, t.status, t.tokens, t.guilds) for t in tokens] == [
        ("lite", "active", 1, 2),
        ("lite", "revoked", 1, 2),
        ("standard", "active", 1, 2),
    ]
    # Active tokens are due a health check at once (next_health_check defaults to now); revoked never are.
    assert [t.health_check_due for t in tokens] == [1, 0, 1]

    text = rendered(*agents_tables(agents), tokens_table(tokens))
    assert "3 deployments" in text and "3 bot tokens" in text
    assert SECRET_CIPHERTEXT.decode() not in text and "nonce" not in text
