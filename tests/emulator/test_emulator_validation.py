"""Request bodies refused field by field, in Discord's error shape (50035 with the nested `errors` tree)."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.discord import validation
from emulator.discord.errors import ApiError


def refusal(check: validation.Check, body: Any) -> dict[str, Any]:
    with pytest.raises(ApiError) as caught:
        validation.checked(check, body)
    assert (caught.value.status, caught.value.code, caught.value.message) == (400, 50035, "Invalid Form Body")
    assert caught.value.errors is not None
    return caught.value.errors


def codes(tree: dict[str, Any], *path: str) -> list[str]:
    node = tree
    for part in path:
        node = node[part]
    return [error["code"] for error in node["_errors"]]


def test_a_valid_message_passes() -> None:
    validation.checked(
        validation.message,
        {
            "content": "x" * 2000,
            "embeds": [{"title": "t", "fields": [{"name": "n", "value": "v"}]}],
            "allowed_mentions": {"parse": ["roles"], "users": ["1"], "replied_user": False},
            "message_reference": {"message_id": "5"},
        },
    )


def test_every_faulty_field_of_a_message_is_named_at_once() -> None:
    tree = refusal(
        validation.message,
        {
            "content": "x" * 2001,
            "embeds": [{"title": "t" * 257, "fields": [{"name": "", "value": "v"}]}],
            "allowed_mentions": {"parse": ["users", "channels"], "users": ["1"]},
            "message_reference": {"message_id": "not-a-snowflake"},
        },
    )
    assert codes(tree, "content") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes(tree, "embeds", "0", "title") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes(tree, "embeds", "0", "fields", "0", "name") == ["BASE_TYPE_BAD_LENGTH"]
    assert codes(tree, "allowed_mentions", "parse", "1") == ["BASE_TYPE_CHOICES"]
    assert codes(tree, "allowed_mentions", "parse") == ["MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE"]
    assert codes(tree, "message_reference", "message_id") == ["NUMBER_TYPE_COERCE"]


def test_embeds_count_and_total_size() -> None:
    assert codes(refusal(validation.message, {"embeds": [{"title": "t"}] * 11}), "embeds") == [
        "BASE_TYPE_MAX_LENGTH"
    ]
    big = [{"description": "d" * 4000}, {"description": "d" * 2001}]
    assert codes(refusal(validation.message, {"embeds": big}), "embeds") == ["MESSAGE_EMBEDS_TOO_LONG"]


def option(name: str, required: bool = False, **extra: Any) -> dict[str, Any]:
    return {"type": 3, "name": name, "description": name, "required": required, **extra}


def test_application_commands_are_checked_as_discord_does() -> None:
    validation.checked(
        validation.commands,
        [{"name": "play", "description": "p", "options": [option("query", True, autocomplete=True)]}],
    )
    tree = refusal(
        validation.commands,
        [
            {"name": "Play!", "description": "", "options": [option("a"), option("b", True)]},
            {"name": "ok", "description": "d", "options": [option(f"o{i}") for i in range(26)]},
            {"name": "ok", "description": "d"},
            {
                "name": "pick",
                "description": "d",
                "options": [option("x", choices=[{"name": "n", "value": "v"}] * 26, autocomplete=True)],
            },
        ],
    )
    assert codes(tree, "0", "name") == ["APPLICATION_COMMAND_INVALID_NAME"]
    assert codes(tree, "0", "description") == ["BASE_TYPE_BAD_LENGTH"]
    assert codes(tree, "0", "options", "1", "required") == ["APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID"]
    assert codes(tree, "1", "options") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes(tree, "2", "name") == ["APPLICATION_COMMANDS_DUPLICATE_NAME"]
    assert codes(tree, "3", "options", "0", "choices") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes(tree, "3", "options", "0", "autocomplete") == [
        "APPLICATION_COMMAND_AUTOCOMPLETE_CHOICES_EXCLUSIVE"
    ]


def test_a_callback_type_must_suit_the_interaction() -> None:
    slash = validation.interaction_callback(validation.INTERACTION_COMMAND)
    validation.checked(slash, {"type": 5})
    assert codes(refusal(slash, {"type": 8, "data": {"choices": []}}), "type") == [
        "INTERACTION_RESPONSE_TYPE_INVALID"
    ]
    assert codes(refusal(slash, {"type": 4, "data": {"content": "x" * 2001}}), "data", "content") == [
        "BASE_TYPE_MAX_LENGTH"
    ]
    autocomplete = validation.interaction_callback(validation.INTERACTION_AUTOCOMPLETE)
    choices = [{"name": f"t{i}", "value": f"t{i}"} for i in range(25)]
    validation.checked(autocomplete, {"type": 8, "data": {"choices": choices}})
    too_many = {"type": 8, "data": {"choices": [*choices, {"name": "x", "value": "x"}]}}
    assert codes(refusal(autocomplete, too_many), "data", "choices") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes(refusal(autocomplete, {"type": 4, "data": {"content": "hi"}}), "type") == [
        "INTERACTION_RESPONSE_TYPE_INVALID"
    ]


def test_member_modify_and_ban_bodies() -> None:
    tree = refusal(validation.member_modify, {"nick": "n" * 33, "roles": ["x"], "mute": "yes"})
    assert set(tree) == {"nick", "roles", "mute"}
    assert codes(refusal(validation.ban, {"delete_message_seconds": 604_801}), "delete_message_seconds") == [
        "NUMBER_TYPE_MAX"
    ]
    assert codes(refusal(validation.ban, {"delete_message_days": -1}), "delete_message_days") == [
        "NUMBER_TYPE_MIN"
    ]
    validation.checked(validation.ban, {"delete_message_seconds": 604_800})
