"""`deep`: the operators' one front door. Each group lives next to the part it drives."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.console import Console

from api.cli import agents_app, api_app, presets_app, tokens_app
from demo.cli import demo_command, playground_command
from gateways.cli import app as gateway_app
from infra.stack.cli import db_app, stack_app
from jobs.cli import jobs_app
from memory.cli import memory_app
from ops.cli import ops_app, users_app
from processors.cli import processors_command
from settings import get_settings

# Tracebacks must not print local variables: they can hold API keys or bot tokens.
app = typer.Typer(
    help="The Deep System: agents for Discord on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(stack_app, name="stack", help="Install, start and stop the local stack.")
app.add_typer(db_app, name="db", help="PostgreSQL migrations.")
app.add_typer(api_app, name="api", help="The configuration API: serve, relay, create-admin.")
app.add_typer(agents_app, name="agents", help="Create, deploy, export and import agents (through the API).")
app.add_typer(presets_app, name="presets", help="List and deploy preset agents (through the API).")
app.add_typer(tokens_app, name="tokens", help="Bot tokens: add, list, revoke, rotate-key.")
app.add_typer(ops_app, name="ops", help="Ops: topics, lag, dead letters, agent and token status.")
app.add_typer(jobs_app, name="jobs", help="Replay, backfill and Parquet export/import over history.")
app.add_typer(users_app, name="users", help="A Discord user's data: erase it everywhere, export it.")
app.add_typer(memory_app, name="memory", help="Long-term memory: the writer; list, search, delete memories.")
app.command("demo", help="The whole platform in a demo world with a browser playground (Ctrl-C stops it).")(
    demo_command
)
app.command("playground", help="Follow real deployments read-only in the playground.")(playground_command)
app.command("processors", help="Run a stream-processor worker; several share partitions.")(processors_command)
app.add_typer(
    gateway_app,
    name="gateway",
    help="Run a gateway runner (it holds the bots of its discord.actions partitions), or `interactions`.",
)

topics_app = typer.Typer(help="The topic catalog on the broker.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")

console = Console()


@topics_app.command("apply")
def topics_apply() -> None:
    """Create or alter every topic of the catalog; a second run changes nothing."""
    from streams.admin import apply_catalog

    settings = get_settings()
    plans = asyncio.run(apply_catalog(settings.kafka_bootstrap, settings.topic_namespace))
    if not plans:
        console.print("topics: nothing changed, the broker matches the catalog")
    for plan in plans:
        for change in plan.changes:
            console.print(f"{plan.topic}: {change}")


@app.command("schema")
def schema(out: Path = typer.Option(Path("docs/schema"), help="Directory to write the schemas to.")) -> None:
    """Write the JSON Schema of every model."""
    from models.schemas import json_schemas

    out.mkdir(parents=True, exist_ok=True)
    documents = json_schemas()
    for name, document in documents.items():
        (out / f"{name}.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    console.print(f"wrote {len(documents)} schemas to {out}")


@app.command("emulator")
def emulator(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(7990, help="Port for REST, gateway and the control API."),
    world: Path | None = typer.Option(None, help="JSON world spec: users, guilds, channels, bots."),
) -> None:
    """Serve the Discord emulator (gateway v10 + REST + control API) until Ctrl-C."""
    from emulator.discord.cli import serve

    serve(host, port, world)


@app.command("inference")
def inference(
    group: str = typer.Option("deep-inference", help="Consumer group of the workers."),
    instance_id: str | None = typer.Option(
        None,
        help="Stable group instance id (static membership): a restart takes its partitions back at once.",
    ),
) -> None:
    """Run an inference worker on the priority lanes (premium > standard > free)."""
    from inference.cli import run_worker

    settings = get_settings()
    run_worker(
        settings,
        endpoints=settings.inference_endpoints,
        endpoint_api_key=settings.inference_api_key,
        group_id=group,
        instance_id=instance_id,
    )


@app.command("sinks")
def sinks(database: str = typer.Option("deep", help="ClickHouse database.")) -> None:
    """Copy the analytics topics into ClickHouse until Ctrl-C."""
    from sinks.cli import run_sinks

    run_sinks(database=database)
