"""The configuration API over HTTP: agents, deployments, tokens, tiers, authorization, rate limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from unittest.mock import ANY

import asyncpg
import httpx
import pytest

from api.app import create_app
from api.ratelimit import RateLimit
from api.routing_records import dm_key
from models.agent import AgentMode
from models.deployments import RoutingRecord
from models.templates import mode_template
from models.tiers import Tier
from models.tools import IMPLEMENTED_TOOLS, Tool
from settings import REPO_ROOT, Settings
from streams.catalog import AGENT_DEPLOYMENTS
from tests.api.conftest import NewOwner, Recorder, auth, guild_id, started

pytestmark = pytest.mark.stack

AddToken = Callable[..., Awaitable[dict[str, Any]]]


def config(template: AgentMode = AgentMode.bare, **changes: Any) -> dict[str, Any]:
    return {**mode_template(template).model_dump(mode="json"), **changes}


async def staged_records(pool: asyncpg.Pool, namespace: str, key: str) -> list[RoutingRecord]:
    rows = await pool.fetch(
        "SELECT value FROM outbox WHERE topic = $1 AND key = $2 ORDER BY id",
        AGENT_DEPLOYMENTS.name_in(namespace),
        key.encode(),
    )
    return [AGENT_DEPLOYMENTS.codec.decode(row["value"]) for row in rows]


async def test_create_update_deploy_undeploy_delete(
    client: httpx.AsyncClient, new_owner: NewOwner, add_token: AddToken, pool: asyncpg.Pool, namespace: str
) -> None:
    owner = await new_owner(Tier.pro)
    created = await client.post("/agents", json=config(name="Tunes"), headers=owner)
    assert created.status_code == 201, created.text
    agent = created.json()
    agent_id = agent["agent_id"]
    assert agent["name"] == "Tunes" and agent["config"]["mode"] == "bare"

    listed = (await client.get("/agents", headers=owner)).json()
    assert [a["agent_id"] for a in listed] == [agent_id]

    token = await add_token(owner)
    guild = guild_id()
    deployed = await client.post(
        f"/agents/{agent_id}/deployments",
        json={"guild_id": guild, "token_id": token["token_id"], "text_channels": ["123"], "dm_enabled": True},
        headers=owner,
    )
    assert deployed.status_code == 201, deployed.text
    deployment = deployed.json()
    assert deployment["bot_id"] == token["bot_user_id"] and deployment["text_channels"] == ["123"]
    again = await client.post(
        f"/agents/{agent_id}/deployments",
        json={"guild_id": guild, "token_id": token["token_id"]},
        headers=owner,
    )
    assert again.status_code == 409 and "already deployed" in again.json()["detail"]

    updated = await client.put(f"/agents/{agent_id}", json=config(name="Tunes 2"), headers=owner)
    assert updated.status_code == 200 and updated.json()["name"] == "Tunes 2"
    paused = await client.patch(
        f"/deployments/{deployment['deployment_id']}", json={"status": "paused"}, headers=owner
    )
    assert paused.status_code == 200 and paused.json()["status"] == "paused"

    # Every change staged the guild's whole record, versions counting up; the DM record follows the bot.
    records = await staged_records(pool, namespace, guild)
    assert [r.version for r in records] == [1, 2, 3]
    assert [r.deployments[0].agent.name for r in records] == ["Tunes", "Tunes 2", "Tunes 2"]
    assert records[-1].deployments[0].deployment.status == "paused"
    assert records[-1].deployments[0].owner_tier is Tier.pro
    dm_records = await staged_records(pool, namespace, dm_key(token["bot_user_id"]))
    assert [r.version for r in dm_records] == [1, 2, 3] and len(dm_records[-1].deployments) == 1

    undeployed = await client.delete(f"/deployments/{deployment['deployment_id']}", headers=owner)
    assert undeployed.status_code == 204
    assert (await staged_records(pool, namespace, guild))[-1].deployments == []
    assert (await client.get(f"/deployments/{deployment['deployment_id']}", headers=owner)).status_code == 404

    redeployed = await client.post(
        f"/agents/{agent_id}/deployments",
        json={"guild_id": guild, "token_id": token["token_id"]},
        headers=owner,
    )
    assert redeployed.status_code == 201
    assert (await client.delete(f"/agents/{agent_id}", headers=owner)).status_code == 204
    assert (await client.get(f"/agents/{agent_id}", headers=owner)).status_code == 404
    final = (await staged_records(pool, namespace, guild))[-1]
    assert final.version == 6 and final.deployments == []


async def test_free_tier_slot_limit_refuses_one_agent_too_many(
    client: httpx.AsyncClient, new_owner: NewOwner
) -> None:
    owner = await new_owner(Tier.free)
    for index in range(5):
        response = await client.post("/agents", json=config(name=f"bot {index}"), headers=owner)
        assert response.status_code == 201, response.text
    refused = await client.post("/agents", json=config(name="one too many"), headers=owner)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "agent slot limit of free tier (5) reached"
    usage = (await client.get("/usage", headers=owner)).json()
    assert usage["agents"] == 5 and usage["agent_slots"] == 5


async def test_tier_refuses_features_and_token_tiers_naming_the_field(
    client: httpx.AsyncClient, new_owner: NewOwner, add_token: AddToken
) -> None:
    # Every implemented tool is on the free tier; the tier's tool rule is covered in test_tier_coverage.
    free = await new_owner(Tier.free)
    custom = config(AgentMode.semi_autonomous)
    custom["character"]["personality"]["openness"] = 99
    refused = await client.post("/agents", json=custom, headers=free)
    assert refused.status_code == 403 and refused.json()["errors"][0]["path"] == "character"
    stock = await client.post(
        "/agents", json=config(AgentMode.semi_autonomous, name="Helper 2"), headers=free
    )
    assert stock.status_code == 201, stock.text

    standard_token = await add_token(free, guilds=11)
    assert standard_token["tier"] == "standard"
    deploy = await client.post(
        f"/agents/{stock.json()['agent_id']}/deployments",
        json={"guild_id": guild_id(), "token_id": standard_token["token_id"]},
        headers=free,
    )
    assert deploy.status_code == 403 and deploy.json()["errors"][0]["path"] == "token_id"
    assert "needs the pro tier" in deploy.json()["detail"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (
            {"behavior": {"response_triggers": {"random": {"probability": 2}}}},
            "behavior.response_triggers.random.probability",
        ),
        ({"ai_config": {"text_model": "gpt-4"}}, "ai_config"),
        ({"enabled_commands": ["nope"]}, "enabled_commands.0"),
        ({"colour": "red"}, "colour"),
        ({"mode": "telepathic"}, "mode"),
    ],
)
async def test_invalid_configuration_is_422_naming_the_field(
    client: httpx.AsyncClient, new_owner: NewOwner, change: dict[str, Any], path: str
) -> None:
    owner = await new_owner(Tier.business)
    response = await client.post("/agents", json=config(**change), headers=owner)
    assert response.status_code == 422
    body = response.json()
    assert path in [error["path"] for error in body["errors"]] and path in body["detail"]


@pytest.mark.parametrize("tool", sorted(set(Tool) - IMPLEMENTED_TOOLS))
async def test_a_tool_without_behaviour_is_refused_naming_it(
    client: httpx.AsyncClient, new_owner: NewOwner, tool: Tool
) -> None:
    owner = await new_owner(Tier.enterprise)
    plan = config(enabled_tools=["music", tool.value])
    expected = {"path": "enabled_tools.1", "message": ANY}
    created = await client.post("/agents", json=plan, headers=owner)
    assert created.status_code == 422 and created.json()["errors"] == [expected]
    assert f"the {tool.value} tool is not implemented" in created.json()["detail"]
    agent = (await client.post("/agents", json=config(), headers=owner)).json()
    updated = await client.put(f"/agents/{agent['agent_id']}", json=plan, headers=owner)
    assert updated.status_code == 422 and updated.json()["errors"] == [expected]
    imported = await client.post("/agents/import", json=plan, headers=owner)
    assert imported.status_code == 422 and imported.json()["errors"] == [expected]
    assert (await client.get(f"/agents/{agent['agent_id']}", headers=owner)).json()["config"] == config()


async def test_story_arcs_show_the_beat_of_a_local_date(
    client: httpx.AsyncClient, new_owner: NewOwner
) -> None:
    owner = await new_owner(Tier.business)
    luna = json.loads((REPO_ROOT / "api" / "presets" / "luna.json").read_text())
    beats = [{"days": 1, "situation": "bought flour"}, {"days": 3, "situation": "cakes collapse"}]
    luna["behavior"]["story_arcs"] = [{"name": "baking", "starts_on": "2026-01-14", "beats": beats}]
    created = (await client.post("/agents", json=luna, headers=owner)).json()
    path = f"/agents/{created['agent_id']}/arcs"
    [during] = (await client.get(path, params={"on": "2026-01-16"}, headers=owner)).json()
    assert (during["beat"], during["situation"], during["ends_on"]) == (1, "cakes collapse", "2026-01-17")
    [after] = (await client.get(path, params={"on": "2026-01-18"}, headers=owner)).json()
    assert after["beat"] is None and after["situation"] is None
    luna["behavior"]["story_arcs"][0]["beats"][0]["days"] = 0
    response = await client.post("/agents", json=luna, headers=owner)
    assert response.status_code == 422
    assert "behavior.story_arcs.0.beats.0.days" in [error["path"] for error in response.json()["errors"]]


async def test_owner_a_gets_404_for_everything_of_owner_b(
    client: httpx.AsyncClient, new_owner: NewOwner, add_token: AddToken
) -> None:
    owner_a, owner_b = await new_owner(Tier.pro, "a"), await new_owner(Tier.pro, "b")
    agent = (await client.post("/agents", json=config(), headers=owner_b)).json()
    token = await add_token(owner_b)
    deployment = (
        await client.post(
            f"/agents/{agent['agent_id']}/deployments",
            json={"guild_id": guild_id(), "token_id": token["token_id"]},
            headers=owner_b,
        )
    ).json()
    agent_url, deployment_url = f"/agents/{agent['agent_id']}", f"/deployments/{deployment['deployment_id']}"
    attempts = [
        client.get(agent_url, headers=owner_a),
        client.put(agent_url, json=config(name="stolen"), headers=owner_a),
        client.delete(agent_url, headers=owner_a),
        client.get(f"{agent_url}/export", headers=owner_a),
        client.get(f"{agent_url}/deployments", headers=owner_a),
        client.post(
            f"{agent_url}/deployments",
            json={"guild_id": guild_id(), "token_id": token["token_id"]},
            headers=owner_a,
        ),
        client.get(deployment_url, headers=owner_a),
        client.patch(deployment_url, json={"status": "paused"}, headers=owner_a),
        client.delete(deployment_url, headers=owner_a),
        client.get(f"/tokens/{token['token_id']}", headers=owner_a),
        client.delete(f"/tokens/{token['token_id']}", headers=owner_a),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 404, (response.request.method, response.request.url, response.text)
    # A's own agent cannot use B's token either.
    own = (await client.post("/agents", json=config(), headers=owner_a)).json()
    borrowed = await client.post(
        f"/agents/{own['agent_id']}/deployments",
        json={"guild_id": guild_id(), "token_id": token["token_id"]},
        headers=owner_a,
    )
    assert borrowed.status_code == 404
    assert (await client.get(agent_url, headers=owner_b)).json()["name"] == "Music Bot"
    assert (await client.get("/agents", headers=owner_a)).json()[0]["agent_id"] == own["agent_id"]


async def test_operators_only_and_unauthenticated(
    client: httpx.AsyncClient, new_owner: NewOwner, admin_key: str
) -> None:
    owner = await new_owner()
    assert (await client.get("/agents")).status_code == 401
    assert (await client.get("/agents", headers=auth("dsk_wrong"))).status_code == 401
    assert (await client.get("/owners", headers=owner)).status_code == 403
    assert (await client.post("/owners", json={"name": "x"}, headers=owner)).status_code == 403
    assert (await client.get("/admin/outbox", headers=auth(admin_key))).status_code == 200
    me = (await client.get("/me", headers=owner)).json()
    assert me["owner"]["tier"] == "free" and me["limits"]["agent_slots"] == 5


async def test_tokens_are_listed_without_secrets_and_revoking_moves_deployments(
    client: httpx.AsyncClient, new_owner: NewOwner, add_token: AddToken, pool: asyncpg.Pool, namespace: str
) -> None:
    owner = await new_owner(Tier.pro)
    first, second = await add_token(owner), await add_token(owner)
    listed = (await client.get("/tokens", headers=owner)).json()
    assert {t["token_id"] for t in listed} == {first["token_id"], second["token_id"]}
    assert all(set(t) == set(first) for t in listed)  # the same secret-free shape
    agent = (await client.post("/agents", json=config(), headers=owner)).json()
    guild = guild_id()
    deployment = (
        await client.post(
            f"/agents/{agent['agent_id']}/deployments",
            json={"guild_id": guild, "token_id": first["token_id"]},
            headers=owner,
        )
    ).json()
    revoked = await client.delete(f"/tokens/{first['token_id']}", headers=owner)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    moved = (await client.get(f"/deployments/{deployment['deployment_id']}", headers=owner)).json()
    assert moved["token_id"] == second["token_id"] and moved["bot_id"] == second["bot_user_id"]
    assert (await staged_records(pool, namespace, guild))[-1].deployments[0].deployment.bot_id == second[
        "bot_user_id"
    ]
    refused = await client.post(
        f"/agents/{agent['agent_id']}/deployments",
        json={"guild_id": guild_id(), "token_id": first["token_id"]},
        headers=owner,
    )
    assert refused.status_code == 409 and "revoked" in refused.json()["detail"]


async def test_a_rejected_or_malformed_token_is_422_and_never_echoed(
    client: httpx.AsyncClient, new_owner: NewOwner, recorder: Recorder
) -> None:
    owner = await new_owner()
    fake = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs"
    recorder.tokens.update({fake, "x" * 300})
    rejected = await client.post("/tokens", json={"token": fake}, headers=owner)
    assert rejected.status_code == 422 and rejected.json()["errors"][0]["path"] == "token"
    too_long = await client.post("/tokens", json={"token": "x" * 300}, headers=owner)
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["path"] == "token"


async def test_a_bot_belongs_to_one_owner_until_its_registration_is_revoked(
    client: httpx.AsyncClient, new_owner: NewOwner, new_bot: Callable[..., tuple[str, str]]
) -> None:
    first, second = await new_owner(Tier.pro), await new_owner(Tier.pro)
    bot_id, token = new_bot()
    held = await client.post("/tokens", json={"token": token}, headers=first)
    assert held.status_code == 201
    # The same owner adding it again replaces the token (a reset); another owner is refused.
    assert (await client.post("/tokens", json={"token": token}, headers=first)).status_code == 201
    taken = await client.post("/tokens", json={"token": token}, headers=second)
    assert taken.status_code == 409
    assert taken.json()["detail"] == f"bot {bot_id} is registered by another account"
    assert (await client.get("/tokens", headers=second)).json() == []
    revoked = await client.delete(f"/tokens/{held.json()['token_id']}", headers=first)
    assert revoked.status_code == 200
    moved = await client.post("/tokens", json={"token": token}, headers=second)
    assert moved.status_code == 201 and moved.json()["bot_user_id"] == bot_id


async def test_a_downgrade_pauses_what_the_tier_does_not_cover_until_the_agents_fit(
    client: httpx.AsyncClient, new_owner: NewOwner, add_token: AddToken, admin_key: str
) -> None:
    owner = await new_owner(Tier.pro)
    owner_id = (await client.get("/me", headers=owner)).json()["owner"]["owner_id"]
    token = await add_token(owner)
    # Pro: a custom personality, and six agents (free has five slots, and no custom personalities).
    custom = config(AgentMode.semi_autonomous, name="custom")
    custom["character"]["personality"]["openness"] = 99
    plans = [config(name=f"music {index}") for index in range(4)]
    plans += [custom, config(name="newest")]
    deployments = {}
    for plan in plans:
        agent = (await client.post("/agents", json=plan, headers=owner)).json()
        deployed = await client.post(
            f"/agents/{agent['agent_id']}/deployments",
            json={"guild_id": guild_id(), "token_id": token["token_id"]},
            headers=owner,
        )
        assert deployed.status_code == 201, deployed.text
        deployments[plan["name"]] = (agent["agent_id"], deployed.json()["deployment_id"])

    downgraded = await client.patch(f"/owners/{owner_id}", json={"tier": "free"}, headers=auth(admin_key))
    assert downgraded.status_code == 200 and downgraded.json()["tier"] == "free"
    listed = (await client.get("/deployments", headers=owner)).json()
    states = {d["deployment_id"]: d["status"] for d in listed}
    assert {name: states[deployment] for name, (_, deployment) in deployments.items()} == {
        "music 0": "active",
        "music 1": "active",
        "music 2": "active",
        "music 3": "active",
        "custom": "paused",  # not on the free tier: a custom personality
        "newest": "paused",  # the sixth agent: past the free tier's five slots
    }

    custom_agent, custom_deployment = deployments["custom"]
    refused = await client.patch(
        f"/deployments/{custom_deployment}", json={"status": "active"}, headers=owner
    )
    assert refused.status_code == 403 and refused.json()["errors"][0]["path"] == "character"
    stock = config(AgentMode.semi_autonomous, name="custom")
    fitted = await client.put(f"/agents/{custom_agent}", json=stock, headers=owner)
    assert fitted.status_code == 200, fitted.text
    resumed = await client.patch(
        f"/deployments/{custom_deployment}", json={"status": "active"}, headers=owner
    )
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"

    newest = deployments["newest"][1]
    refused = await client.patch(f"/deployments/{newest}", json={"status": "active"}, headers=owner)
    assert refused.status_code == 403 and "slot limit of free tier (5)" in refused.json()["detail"]
    deleted = await client.delete(f"/agents/{deployments['music 0'][0]}", headers=owner)
    assert deleted.status_code == 204
    resumed = await client.patch(f"/deployments/{newest}", json={"status": "active"}, headers=owner)
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"


async def test_rate_limit_answers_429_with_retry_after(
    api_settings: Settings, pg_dsn: str, recorder: Recorder, new_owner: NewOwner
) -> None:
    headers = await new_owner()
    app = create_app(api_settings, postgres_dsn=pg_dsn, background=False, rate_limit=RateLimit(3, 3600))
    async for limited in started(app, recorder):
        answers = [await limited.get("/agents", headers=headers) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert 1 <= int(answers[-1].headers["Retry-After"]) <= 3600
        assert answers[0].headers["X-RateLimit-Remaining"] == "2"


async def test_concurrent_changes_to_one_guild_get_consecutive_versions_and_complete_records(
    client: httpx.AsyncClient, new_owner: NewOwner, add_token: AddToken, pool: asyncpg.Pool, namespace: str
) -> None:
    owner = await new_owner(Tier.pro)
    guild = guild_id()
    agents = [
        (await client.post("/agents", json=config(name=f"c{i}"), headers=owner)).json() for i in range(5)
    ]
    tokens = [await add_token(owner) for _ in agents]
    answers = await asyncio.gather(
        *(
            client.post(
                f"/agents/{agent['agent_id']}/deployments",
                json={"guild_id": guild, "token_id": token["token_id"]},
                headers=owner,
            )
            for agent, token in zip(agents, tokens, strict=True)
        )
    )
    assert [a.status_code for a in answers] == [201] * 5
    records = await staged_records(pool, namespace, guild)
    # The key's version row serialises the writers: each record saw every deployment committed before it.
    assert [r.version for r in records] == [1, 2, 3, 4, 5]
    assert [len(r.deployments) for r in records] == [1, 2, 3, 4, 5]
