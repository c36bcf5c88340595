"""`deep`: the operators' one front door. Each group lives next to the part it drives."""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
import typer.main
from rich.console import Console
from typer.core import TyperGroup

from settings import get_settings

if TYPE_CHECKING:
    # The click typer carries (annotations only: where it keeps it is typer's own business).
    from typer import _click

# Each part's commands, imported only when one of them runs: importing every part of the platform took about
# five seconds of CPU, paid by every `deep` command (the demo starts four of its children through it).
# name -> (module, its typer app or command function, help).
PARTS: dict[str, tuple[str, str, str]] = {
    "stack": ("infra.stack.cli", "stack_app", "Install, start and stop the local stack."),
    "db": ("infra.stack.cli", "db_app", "PostgreSQL migrations."),
    "api": ("api.cli", "api_app", "The configuration API: serve, relay, create-admin."),
    "agents": ("api.cli", "agents_app", "Create, deploy, export and import agents (through the API)."),
    "presets": ("api.cli", "presets_app", "List and deploy preset agents (through the API)."),
    "tokens": ("api.cli", "tokens_app", "Bot tokens: add, list, revoke, rotate-key."),
    "ops": ("ops.cli", "ops_app", "Ops: topics, lag, dead letters, agent and token status."),
    "jobs": ("jobs.cli", "jobs_app", "Replay, backfill and Parquet export/import over history."),
    "users": ("ops.cli", "users_app", "A Discord user's data: erase it everywhere, export it."),
    "memory": ("memory.cli", "memory_app", "Long-term memory: the writer; list, search, delete memories."),
    "demo": (
        "demo.cli",
        "demo_command",
        "The whole platform in a demo world with a browser playground (Ctrl-C stops it).",
    ),
    "playground": ("demo.cli", "playground_command", "Follow real deployments read-only in the playground."),
    "processors": (
        "processors.cli",
        "processors_command",
        "Run a stream-processor worker; several share partitions.",
    ),
    "gateway": (
        "gateways.cli",
        "app",
        "Run a gateway runner (it holds the bots of its discord.actions partitions), or `interactions`.",
    ),
}


class _PartsGroup(TyperGroup):
    """The front door's group: the commands defined here, and each part's, mounted as it is asked for."""

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return [*PARTS, *super().list_commands(ctx)]

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name not in PARTS:
            return super().get_command(ctx, cmd_name)
        module, attribute, help_text = PARTS[cmd_name]
        part = getattr(importlib.import_module(module), attribute)
        # Mounted as `add_typer` or `command` on the root would, so its options and help are typer's.
        mount = typer.Typer()
        if isinstance(part, typer.Typer):
            mount.add_typer(part, name=cmd_name, help=help_text)
        else:
            mount.command(cmd_name, help=help_text)(part)
        return typer.main.get_group(mount).commands[cmd_name]


# Tracebacks must not print local variables: they can hold API keys or bot tokens.
app = typer.Typer(
    cls=_PartsGroup,
    help="The Deep System: agents for Discord on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
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
