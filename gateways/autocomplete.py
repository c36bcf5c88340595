"""Autocomplete at the edge: the music library's titles offered while a member types in /play.

Discord sends an APPLICATION_COMMAND_AUTOCOMPLETE interaction (type 4) as a member types in an option
declared with `autocomplete`, and shows the choices that come back (callback type 8, at most 25) only within
its 3 s. The runner that receives it answers at once from the library's listing: one REST call, instead of
a round trip through Kafka and the processors, with no state beyond the file names. The processors ignore
these interactions (they act on slash commands only).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import discord

from gateways.actions import autocomplete_call
from gateways.rest import RestClients
from gateways.shard import BotCredentials
from models.commands import COMMAND_OPTIONS

log = logging.getLogger(__name__)

APPLICATION_COMMAND_AUTOCOMPLETE = 4
# Discord shows at most 25 choices, each name and value at most 100 characters.
MAX_CHOICES = 25
MAX_CHOICE_LENGTH = 100
AUDIO_SUFFIXES = frozenset({".mp3", ".ogg", ".opus", ".flac", ".wav", ".m4a", ".aac", ".webm"})
# A library changes rarely; listing it again at most this often keeps an answer to a file lookup in memory.
RESCAN_S = 30.0
# The (command, option) pairs whose choices come from the music library.
LIBRARY_OPTIONS = frozenset(
    (command, spec.name) for command, specs in COMMAND_OPTIONS.items() for spec in specs if spec.autocomplete
)


def library_files(root: Path) -> dict[str, Path]:
    """Every audio file under `root` by its title (its name without the extension, the first in path order
    where two share one); a missing folder is an empty library."""
    if not root.is_dir():
        return {}
    files: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file() and path.stem:
            files.setdefault(path.stem[:MAX_CHOICE_LENGTH], path)
    return files


def library_titles(root: Path) -> list[str]:
    """Every audio file's title under `root`, sorted, each once."""
    return sorted(library_files(root), key=lambda title: (title.casefold(), title))


def matching_titles(titles: list[str], typed: str, limit: int = MAX_CHOICES) -> list[str]:
    """The titles to offer for what the member typed so far: those starting with it first, then those
    containing it, case-insensitively; all of them (up to the limit) while nothing is typed."""
    needle = typed.strip().casefold()
    starting = [t for t in titles if t.casefold().startswith(needle)]
    containing = [t for t in titles if needle in t.casefold() and not t.casefold().startswith(needle)]
    return (starting + containing)[:limit]


def focused_value(interaction: dict[str, Any]) -> tuple[str, str, str] | None:
    """(command, option, typed text) of an autocomplete interaction for a library option; None otherwise."""
    data = interaction.get("data")
    if interaction.get("type") != APPLICATION_COMMAND_AUTOCOMPLETE or not isinstance(data, dict):
        return None
    command = str(data.get("name") or "").lower()
    for option in data.get("options") or []:
        if isinstance(option, dict) and option.get("focused"):
            name = str(option.get("name") or "")
            if (command, name) in LIBRARY_OPTIONS:
                return command, name, str(option.get("value") or "")
    return None


class MusicLibrary:
    """The titles under one folder, listed again when the last listing is older than `rescan_s`."""

    def __init__(self, root: Path, rescan_s: float = RESCAN_S) -> None:
        self.root = root
        self._rescan_s = rescan_s
        self._titles: list[str] = []
        self._listed_at: float | None = None

    async def titles(self) -> list[str]:
        now = time.monotonic()
        if self._listed_at is None or now - self._listed_at >= self._rescan_s:
            self._titles = await asyncio.to_thread(library_titles, self.root)
            self._listed_at = now
        return self._titles


class Autocompleter:
    """Answers the autocomplete interactions a runner receives for the library's options."""

    def __init__(self, rest: RestClients, library: MusicLibrary) -> None:
        self._rest = rest
        self._library = library
        self._answering: set[asyncio.Task[None]] = set()

    def received(self, bot: BotCredentials, interaction: dict[str, Any]) -> None:
        focused = focused_value(interaction)
        token = interaction.get("token")
        if focused is None or not interaction.get("id") or not isinstance(token, str):
            return
        task = asyncio.create_task(self._answer(bot, str(interaction["id"]), token, focused[2]))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, bot: BotCredentials, interaction_id: str, token: str, typed: str) -> None:
        choices = matching_titles(await self._library.titles(), typed)
        try:
            await self._rest.client(bot.bot_id, bot.token).request(
                autocomplete_call(interaction_id, token, choices)
            )
        except discord.HTTPException as exc:
            # 40060: answered already (a replay after a RESUME); 10062: the member typed on, it expired.
            log.info("bot %s: autocomplete %s not answered: %s", bot.bot_id, interaction_id, exc)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("bot %s: answering autocomplete %s failed: %r", bot.bot_id, interaction_id, exc)
