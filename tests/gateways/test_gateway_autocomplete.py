"""/play's autocomplete: the music library's titles, offered by the runner that receives the request."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from emulator.discord import DiscordEmulator
from gateways.autocomplete import (
    Autocompleter,
    MusicLibrary,
    focused_value,
    library_titles,
    matching_titles,
)
from gateways.rest import RestClients
from gateways.shard import BotCredentials
from models.commands import builtin_command
from tests.gateways.conftest import World
from tests.waiting import wait_until


def library(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def test_titles_are_the_audio_files_names(tmp_path: Path) -> None:
    root = library(tmp_path, "Lofi Beats.mp3", "rain/Rain Sounds.ogg", "notes.txt", "rain/lofi beats.flac")
    assert library_titles(root) == ["Lofi Beats", "lofi beats", "Rain Sounds"]
    assert library_titles(tmp_path / "missing") == []


def test_titles_starting_with_the_text_come_first_and_there_are_at_most_25() -> None:
    titles = ["Deep Rain", "Rainbow", "Sunny", *(f"Track {n:02}" for n in range(40))]
    assert matching_titles(titles, "rain") == ["Rainbow", "Deep Rain"]
    assert matching_titles(titles, " RAIN ") == ["Rainbow", "Deep Rain"]
    assert len(matching_titles(titles, "")) == 25
    assert matching_titles(titles, "nothing like it") == []


def test_only_the_autocomplete_options_of_the_library_are_answered() -> None:
    typed = {"name": "query", "type": 3, "value": "lo", "focused": True}
    request = {"type": 4, "data": {"name": "play", "options": [typed]}}
    assert focused_value(request) == ("play", "query", "lo")
    assert focused_value({**request, "type": 2}) is None
    assert focused_value({"type": 4, "data": {"name": "roll", "options": [typed]}}) is None
    unfocused = {**typed, "focused": False}
    assert focused_value({"type": 4, "data": {"name": "play", "options": [unfocused]}}) is None


def test_play_declares_autocomplete_on_its_query() -> None:
    [query] = builtin_command("play").options
    assert query.name == "query" and query.autocomplete


@pytest.mark.stack
async def test_a_member_typing_in_play_is_offered_the_librarys_titles_within_the_deadline(
    emulator: DiscordEmulator, world: World, rest: RestClients, tmp_path: Path
) -> None:
    emulated = emulator.add_bot(f"dj-{uuid.uuid4().hex[:6]}", guild_ids=[world.guild_id])
    emulator.put_commands(
        emulated, emulated.application_id, world.guild_id, [builtin_command("play").model_dump(mode="json")]
    )
    bot = BotCredentials(bot_id=emulated.id, token_id=uuid.uuid4(), token=SecretStr(emulated.token))
    root = library(tmp_path, *(f"Lofi {n:02}.mp3" for n in range(30)), "Rain.ogg")
    autocompleter = Autocompleter(rest, MusicLibrary(root))
    focused = [{"name": "query", "type": 3, "value": "lofi", "focused": True}]
    request = emulator.invoke_command(
        emulated.id, world.user_id, world.channel_id, "play", focused, interaction_type=4
    )
    autocompleter.received(bot, request)

    def answered() -> list[dict[str, str]] | None:
        for action in emulator.actions(bot_id=emulated.id, kind="interaction_response"):
            if action.payload["interaction_id"] == request["id"]:
                assert action.payload["type"] == 8
                return list(action.payload["data"]["choices"])
        return None

    # The emulator refuses a callback after its 3 s window: an answer recorded at all was in time.
    choices = await wait_until(answered, "the autocomplete answer", timeout_s=10)
    assert choices is not None
    assert [c["name"] for c in choices] == [f"Lofi {n:02}" for n in range(25)]
    assert all(c["value"] == c["name"] for c in choices)
