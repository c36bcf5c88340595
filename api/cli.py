"""Command line: `deep api` (the server, its relay, the first operator), and the client commands
`deep agents`, `deep presets` and `deep tokens`, which talk to the API over HTTP with DEEP_API_KEY."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from api.schemas import CharacterFormat, Container, OwnerCreate, Role
from models.tiers import Tier
from settings import get_settings

console = Console()
err = Console(stderr=True)


def _typer(help: str) -> typer.Typer:
    # Tracebacks must not print local variables: they can hold an API key or a bot token.
    return typer.Typer(help=help, no_args_is_help=True, pretty_exceptions_show_locals=False)


api_app = _typer("The configuration API.")
agents_app = _typer("Agents: create, inspect, deploy, import and export.")
presets_app = _typer("The premium agents and mode templates.")
tokens_app = _typer("Bot tokens in the vault.")


def serve(host: str | None = None, port: int | None = None) -> None:
    """Run the API (with its outbox relay, token health checks and tokens.health consumer)."""
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level=settings.log_level.lower(),
    )


@api_app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option(help="Default: DEEP_API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default: DEEP_API_PORT")] = None,
) -> None:
    """Run the API server."""
    serve(host, port)


@api_app.command("relay")
def relay_command(
    dsn: Annotated[str | None, typer.Option(help="Default: the settings' PostgreSQL")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 500,
    crash_after_publish: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Run the outbox relay alone (the API runs one too; only one publishes at a time)."""
    from streams.outbox import run_relay

    settings = get_settings()
    asyncio.run(
        run_relay(
            dsn or settings.postgres_dsn,
            settings.kafka_bootstrap,
            batch_size=batch_size,
            crash_after_publish=crash_after_publish,
        )
    )


@api_app.command("create-admin")
def create_admin(name: Annotated[str, typer.Option(help="The operator's name")] = "operator") -> None:
    """Bootstrap an operator (admin role) directly in the database and print their API key, once."""
    from api.db import create_pool
    from api.store import create_owner
    from infra.migrate import migrate

    async def run() -> str:
        dsn = get_settings().postgres_dsn
        await migrate(dsn)
        pool = await create_pool(dsn, max_size=1)
        try:
            created = await create_owner(pool, OwnerCreate(name=name, tier=Tier.enterprise, role=Role.admin))
        finally:
            await pool.close()
        return created.key.api_key

    api_key = asyncio.run(run())
    # Plain echo: rich would wrap the key across lines.
    typer.echo(f"operator {name!r} created; API key (shown once): {api_key}")


@api_app.command("billing-sync")
def billing_sync() -> None:
    """Create the paid tiers' Stripe products and prices once and store their ids (the API does it on first
    need too); prints each tier's price id."""
    from api.db import create_pool
    from api.store.billing import Billing
    from api.stripe_billing import StripeBilling
    from infra.migrate import migrate

    async def run() -> dict[Tier, str]:
        settings = get_settings()
        await migrate(settings.postgres_dsn)
        pool = await create_pool(settings.postgres_dsn, max_size=1)
        stripe = StripeBilling(settings)
        try:
            prices = await stripe.ensure_prices(Billing(pool, settings.topic_namespace))
        finally:
            await stripe.close()
            await pool.close()
        return {tier: price.price_id for tier, price in prices.items()}

    for tier, price_id in asyncio.run(run()).items():
        typer.echo(f"{tier.value}: {price_id}")


# The HTTP client of the commands below.


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


ApiKey = Annotated[
    str, typer.Option(envvar="DEEP_API_KEY", help="API key (env DEEP_API_KEY)", show_default=False)
]
ApiUrl = Annotated[str | None, typer.Option(help="Default: http://DEEP_API_HOST:DEEP_API_PORT")]


def _client(api_key: str, api_url: str | None) -> httpx.Client:
    settings = get_settings()
    base = api_url or f"http://{settings.api_host}:{settings.api_port}"
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {api_key}"}, timeout=30.0)


def _call(api_key: str, api_url: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        with _client(api_key, api_url) as client:
            response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the API: {type(exc).__name__}")
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        _fail(f"{response.status_code}: {detail}")
    return response


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data))


def _table(columns: list[str], rows: list[list[str]]) -> None:
    table = Table(*columns)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@agents_app.command("create")
def agents_create(
    config_file: Annotated[Path, typer.Argument(help="AgentConfig JSON file", exists=True, dir_okay=False)],
    api_key: ApiKey,
    api_url: ApiUrl = None,
) -> None:
    """Create an agent from an AgentConfig JSON file."""
    agent = _call(
        api_key,
        api_url,
        "POST",
        "/agents",
        content=config_file.read_bytes(),
        headers={"Content-Type": "application/json"},
    ).json()
    console.print(f"created agent {agent['agent_id']} ({agent['name']})")


@agents_app.command("list")
def agents_list(api_key: ApiKey, api_url: ApiUrl = None) -> None:
    agents = _call(api_key, api_url, "GET", "/agents").json()
    _table(
        ["agent id", "name", "mode", "imported from", "updated"],
        [
            [a["agent_id"], a["name"], a["config"]["mode"], a["import_format"] or "", a["updated_at"]]
            for a in agents
        ],
    )


@agents_app.command("show")
def agents_show(agent_id: str, api_key: ApiKey, api_url: ApiUrl = None) -> None:
    _print_json(_call(api_key, api_url, "GET", f"/agents/{agent_id}").json())


@agents_app.command("arcs")
def agents_arcs(
    agent_id: str,
    api_key: ApiKey,
    on: Annotated[
        str | None, typer.Option(help="A local date of the agent (YYYY-MM-DD); default: today")
    ] = None,
    api_url: ApiUrl = None,
) -> None:
    """The agent's story arcs and the beat each is at (edit them in behavior.story_arcs of its config)."""
    params = {"on": on} if on else {}
    arcs = _call(api_key, api_url, "GET", f"/agents/{agent_id}/arcs", params=params).json()
    _table(
        ["arc", "from", "to", "on", "beat", "situation"],
        [
            [
                a["name"],
                a["starts_on"],
                a["ends_on"],
                a["on"],
                "by conditions"
                if a["conditional"]
                else "-"
                if a["beat"] is None
                else f"{a['beat'] + 1}/{a['beats']}",
                a["situation"] or "",
            ]
            for a in arcs
        ],
    )


@agents_app.command("deploy")
def agents_deploy(
    agent_id: str,
    api_key: ApiKey,
    guild: Annotated[str, typer.Option(help="Guild id")],
    token: Annotated[str, typer.Option(help="Token id (see `deep tokens list`)")],
    channel: Annotated[list[str] | None, typer.Option(help="Restrict to these text channel ids")] = None,
    dm: Annotated[bool | None, typer.Option(help="Answer DMs (default: the agent's setting)")] = None,
    api_url: ApiUrl = None,
) -> None:
    """Deploy an agent in a guild through one of your bots."""
    body = {"guild_id": guild, "token_id": token, "text_channels": channel or [], "dm_enabled": dm}
    deployment = _call(api_key, api_url, "POST", f"/agents/{agent_id}/deployments", json=body).json()
    console.print(
        f"deployed as {deployment['deployment_id']} in guild {guild} through bot {deployment['bot_id']}"
    )


@agents_app.command("undeploy")
def agents_undeploy(
    agent_id: str,
    api_key: ApiKey,
    guild: Annotated[str, typer.Option(help="Guild id")],
    api_url: ApiUrl = None,
) -> None:
    """Remove an agent from a guild."""
    deployments = _call(api_key, api_url, "GET", f"/agents/{agent_id}/deployments").json()
    match = [d for d in deployments if d["guild_id"] == guild]
    if not match:
        _fail(f"agent {agent_id} is not deployed in guild {guild}")
    _call(api_key, api_url, "DELETE", f"/deployments/{match[0]['deployment_id']}")
    console.print(f"undeployed agent {agent_id} from guild {guild}")


@agents_app.command("export")
def agents_export(
    agent_id: str,
    api_key: ApiKey,
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout for JSON)")] = None,
    format: Annotated[
        CharacterFormat | None, typer.Option(help="Default: the format it was imported from")
    ] = None,
    container: Container = Container.json,
    api_url: ApiUrl = None,
) -> None:
    """Export as a Character Card V2/V3 (JSON or PNG), ElizaOS character or AgentConfig."""
    params = {"container": container.value, **({"format": format.value} if format else {})}
    response = _call(api_key, api_url, "GET", f"/agents/{agent_id}/export", params=params)
    if out is None:
        if container is Container.png:
            _fail("a PNG needs --out")
        sys.stdout.write(response.text + "\n")
        return
    out.write_bytes(response.content)
    console.print(f"wrote {out}")


@agents_app.command("import")
def agents_import(
    file: Annotated[
        Path, typer.Argument(help="Card JSON/PNG, ElizaOS JSON or AgentConfig JSON", exists=True)
    ],
    api_key: ApiKey,
    format: Annotated[CharacterFormat | None, typer.Option(help="Default: detected")] = None,
    api_url: ApiUrl = None,
) -> None:
    """Import a character as a new agent."""
    content = file.read_bytes()
    media = "image/png" if content.startswith(b"\x89PNG") else "application/json"
    params = {"format": format.value} if format else {}
    agent = _call(
        api_key,
        api_url,
        "POST",
        "/agents/import",
        content=content,
        params=params,
        headers={"Content-Type": media},
    ).json()
    console.print(
        f"imported agent {agent['agent_id']} ({agent['name']}) from {agent['import_format'] or 'AgentConfig'}"
    )


@presets_app.command("list")
def presets_list(api_key: ApiKey, api_url: ApiUrl = None) -> None:
    presets = _call(api_key, api_url, "GET", "/presets").json()
    _table(
        ["name", "kind", "mode", "description"],
        [[p["name"], p["kind"], p["config"]["mode"], p["description"]] for p in presets],
    )


@presets_app.command("deploy")
def presets_deploy(
    name: str,
    api_key: ApiKey,
    guild: Annotated[str, typer.Option(help="Guild id")],
    token: Annotated[str, typer.Option(help="Token id")],
    rename: Annotated[str | None, typer.Option("--name", help="Name of your copy")] = None,
    api_url: ApiUrl = None,
) -> None:
    """Copy a preset into your agents and deploy it, in one call."""
    body = {"guild_id": guild, "token_id": token, "name": rename}
    deployed = _call(api_key, api_url, "POST", f"/presets/{name}/deploy", json=body).json()
    console.print(
        f"agent {deployed['agent']['agent_id']} ({deployed['agent']['name']}) deployed as "
        f"{deployed['deployment']['deployment_id']} in guild {guild}"
    )


@tokens_app.command("add")
def tokens_add(api_key: ApiKey, api_url: ApiUrl = None) -> None:
    """Add a bot token: asked for without echo, validated with Discord, stored encrypted, never shown."""
    token = SecretStr(typer.prompt("bot token", hide_input=True))
    state = _call(api_key, api_url, "POST", "/tokens", json={"token": token.get_secret_value()}).json()
    del token
    console.print(
        f"token {state['token_id']}: bot {state['bot_username']} ({state['bot_user_id']}), {state['tier']}"
    )


@tokens_app.command("list")
def tokens_list(api_key: ApiKey, api_url: ApiUrl = None) -> None:
    tokens = _call(api_key, api_url, "GET", "/tokens").json()
    _table(
        ["token id", "bot", "tier", "status", "guilds", "failures"],
        [
            [
                t["token_id"],
                f"{t['bot_username']} ({t['bot_user_id']})",
                t["tier"],
                t["status"],
                str(t["guilds_count"]),
                str(t["failure_count"]),
            ]
            for t in tokens
        ],
    )


@tokens_app.command("revoke")
def tokens_revoke(token_id: str, api_key: ApiKey, api_url: ApiUrl = None) -> None:
    state = _call(api_key, api_url, "DELETE", f"/tokens/{token_id}").json()
    console.print(f"token {token_id} is {state['status']}")


@tokens_app.command("rotate-key")
def tokens_rotate_key() -> None:
    """Re-encrypt every token under the first key of DEEP_TOKEN_KEYS (run after prepending a new key)."""
    from api.db import create_pool
    from vault.store import TokenVault

    async def run() -> int:
        settings = get_settings()
        pool = await create_pool(settings.postgres_dsn, max_size=2)
        try:
            async with httpx.AsyncClient() as http:
                vault = TokenVault.from_settings(pool, settings, http)
                return await vault.rotate_key()
        finally:
            await pool.close()

    console.print(f"re-encrypted {asyncio.run(run())} token(s) under the current key")


if __name__ == "__main__":
    api_app()
