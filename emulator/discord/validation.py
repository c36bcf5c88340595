"""Request bodies checked field by field as Discord documents them, answered as Discord answers a bad one.

Discord refuses an invalid body with 400, code 50035 "Invalid Form Body" and an `errors` tree that mirrors
the body down to the offending field (list items keyed by their index), each leaf holding `_errors`:
{"embeds": {"0": {"title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "..."}]}}}}.
Every check here collects into one tree, so a body with several faults names them all at once.

Limits (https://discord.com/developers/docs): message content 2,000 characters; at most 10 embeds, each with
title 256, description 4,096, 25 fields (name 256, value 1,024), footer text 2,048, author name 256, and
6,000 characters across all of a message's embeds; allowed_mentions parses only roles/users/everyone, names
at most 100 roles and 100 users, and a type both parsed and listed is refused; application commands: name
1-32 of lowercase letters, digits, - and _; description 1-100; at most 25 options, required ones first,
names unique; at most 25 choices (name 1-100, value a string of at most 100 or a number), not with
autocomplete; autocomplete results: at most 25 choices; nick 32 characters; ban message deletion 0-604,800 s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from .errors import ApiError

Path = tuple[str | int, ...]

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
MAX_EMBED_FIELDS = 25
EMBED_TEXT_LIMITS = {"title": 256, "description": 4096}
MAX_MENTIONS = 100
MENTION_PARSE = frozenset({"roles", "users", "everyone"})
COMMAND_NAME = re.compile(r"^[-_a-z0-9]{1,32}$")
MAX_COMMAND_OPTIONS = 25
MAX_CHOICES = 25
MAX_COMMANDS = 100
MAX_NICK = 32
MAX_BAN_DELETE_S = 604_800

# Application command option types (1 and 2 are subcommands and groups, which carry options themselves).
OPTION_SUBCOMMAND = 1
OPTION_SUBCOMMAND_GROUP = 2
OPTION_STRING = 3
OPTION_INTEGER = 4
OPTION_NUMBER = 10
OPTION_TYPES = range(1, 12)
AUTOCOMPLETE_OPTION_TYPES = frozenset({OPTION_STRING, OPTION_INTEGER, OPTION_NUMBER})

# Interaction types and the callback types each accepts.
INTERACTION_PING = 1
INTERACTION_COMMAND = 2
INTERACTION_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4
INTERACTION_MODAL_SUBMIT = 5
CALLBACK_PONG = 1
CALLBACK_MESSAGE = 4
CALLBACK_DEFERRED_MESSAGE = 5
CALLBACK_DEFERRED_UPDATE = 6
CALLBACK_UPDATE = 7
CALLBACK_AUTOCOMPLETE_RESULT = 8
CALLBACK_MODAL = 9
CALLBACKS_FOR: dict[int, frozenset[int]] = {
    INTERACTION_PING: frozenset({CALLBACK_PONG}),
    INTERACTION_COMMAND: frozenset({CALLBACK_MESSAGE, CALLBACK_DEFERRED_MESSAGE, CALLBACK_MODAL}),
    INTERACTION_COMPONENT: frozenset(
        {
            CALLBACK_MESSAGE,
            CALLBACK_DEFERRED_MESSAGE,
            CALLBACK_DEFERRED_UPDATE,
            CALLBACK_UPDATE,
            CALLBACK_MODAL,
        }
    ),
    INTERACTION_AUTOCOMPLETE: frozenset({CALLBACK_AUTOCOMPLETE_RESULT}),
    INTERACTION_MODAL_SUBMIT: frozenset(
        {CALLBACK_MESSAGE, CALLBACK_DEFERRED_MESSAGE, CALLBACK_DEFERRED_UPDATE, CALLBACK_UPDATE}
    ),
}


class FormErrors:
    """The `errors` tree of one request body."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: Path, code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def raise_if_any(self) -> None:
        if self.tree:
            raise ApiError(400, 50035, "Invalid Form Body", self.tree)


Check = Callable[[FormErrors, Any, Path], None]


def checked(check: Check, body: Any) -> None:
    """Raises Discord's 50035 answer when `check` finds anything wrong with `body`."""
    found = FormErrors()
    check(found, body, ())
    found.raise_if_any()


def _max_length(found: FormErrors, path: Path, value: Any, limit: int) -> int:
    """Checks an optional string; returns its length (0 when absent)."""
    if value is None:
        return 0
    if not isinstance(value, str):
        found.add(path, "BASE_TYPE_STRING", "Could not interpret value as string.")
        return 0
    if len(value) > limit:
        found.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
    return len(value)


def _length_between(found: FormErrors, path: Path, value: Any, low: int, high: int) -> None:
    if value is None:
        found.add(path, "BASE_TYPE_REQUIRED", "This field is required")
    elif not isinstance(value, str):
        found.add(path, "BASE_TYPE_STRING", "Could not interpret value as string.")
    elif not low <= len(value) <= high:
        found.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def _items(found: FormErrors, path: Path, value: Any, limit: int) -> Iterator[tuple[int, Any]]:
    """The items of an optional list of at most `limit` objects."""
    if value is None:
        return
    if not isinstance(value, list):
        found.add(path, "BASE_TYPE_ARRAY", "Must be an array.")
        return
    if len(value) > limit:
        found.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
    for index, item in enumerate(value):
        if isinstance(item, dict):
            yield index, item
        else:
            found.add((*path, index), "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")


def _is_snowflake(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | str) and str(value).isdigit()


def _embed(found: FormErrors, embed: dict[str, Any], path: Path) -> int:
    """Checks one embed; returns the characters it counts towards the 6,000 of the message."""
    total = sum(_max_length(found, (*path, k), embed.get(k), n) for k, n in EMBED_TEXT_LIMITS.items())
    for key, limit in (("footer", 2048), ("author", 256)):
        part = embed.get(key)
        if isinstance(part, dict):
            text_key = "text" if key == "footer" else "name"
            total += _max_length(found, (*path, key, text_key), part.get(text_key), limit)
        elif part is not None:
            found.add((*path, key), "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    for index, field in _items(found, (*path, "fields"), embed.get("fields"), MAX_EMBED_FIELDS):
        field_path = (*path, "fields", index)
        _length_between(found, (*field_path, "name"), field.get("name"), 1, 256)
        _length_between(found, (*field_path, "value"), field.get("value"), 1, 1024)
        total += len(str(field.get("name") or "")) + len(str(field.get("value") or ""))
    return total


def _allowed_mentions(found: FormErrors, value: Any, path: Path) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        found.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return
    parse = value.get("parse") or []
    if not isinstance(parse, list):
        found.add((*path, "parse"), "BASE_TYPE_ARRAY", "Must be an array.")
        parse = []
    for index, kind in enumerate(parse):
        if kind not in MENTION_PARSE:
            found.add(
                (*path, "parse", index),
                "BASE_TYPE_CHOICES",
                f"Value must be one of {sorted(MENTION_PARSE)}.",
            )
    for kind in ("roles", "users"):
        listed = value.get(kind)
        if listed is None:
            continue
        if not isinstance(listed, list) or not all(_is_snowflake(i) for i in listed):
            found.add((*path, kind), "BASE_TYPE_ARRAY", "Must be an array of snowflakes.")
            continue
        if len(listed) > MAX_MENTIONS:
            found.add((*path, kind), "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_MENTIONS} or fewer in length.")
        if listed and kind in parse:
            found.add(
                (*path, "parse"),
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
            )
    replied = value.get("replied_user")
    if replied is not None and not isinstance(replied, bool):
        found.add((*path, "replied_user"), "BASE_TYPE_BOOLEAN", "Must be either true or false.")


def _message_reference(found: FormErrors, value: Any, path: Path) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        found.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return
    if value.get("type", 0) not in (0, 1):
        found.add((*path, "type"), "BASE_TYPE_CHOICES", "Value must be one of (0, 1).")
    for key in ("message_id", "channel_id", "guild_id"):
        if value.get(key) is not None and not _is_snowflake(value[key]):
            found.add((*path, key), "NUMBER_TYPE_COERCE", f'Value "{value[key]}" is not snowflake.')
    if value.get("type", 0) == 0 and value.get("message_id") is None:
        found.add((*path, "message_id"), "BASE_TYPE_REQUIRED", "This field is required")


def message(found: FormErrors, body: Any, path: Path) -> None:
    """A message create or edit body (also an interaction response's data, a follow-up, an original edit)."""
    if not isinstance(body, dict):
        found.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return
    _max_length(found, (*path, "content"), body.get("content"), MAX_CONTENT)
    total = sum(
        _embed(found, embed, (*path, "embeds", i))
        for i, embed in _items(found, (*path, "embeds"), body.get("embeds"), MAX_EMBEDS)
    )
    if total > MAX_EMBED_TOTAL:
        found.add(
            (*path, "embeds"),
            "MESSAGE_EMBEDS_TOO_LONG",
            f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}",
        )
    _allowed_mentions(found, body.get("allowed_mentions"), (*path, "allowed_mentions"))
    _message_reference(found, body.get("message_reference"), (*path, "message_reference"))


def _choices(found: FormErrors, value: Any, path: Path) -> None:
    for index, choice in _items(found, path, value, MAX_CHOICES):
        _length_between(found, (*path, index, "name"), choice.get("name"), 1, 100)
        choice_value = choice.get("value")
        if isinstance(choice_value, str):
            _max_length(found, (*path, index, "value"), choice_value, 100)
        elif isinstance(choice_value, bool) or not isinstance(choice_value, int | float):
            found.add((*path, index, "value"), "BASE_TYPE_REQUIRED", "Must be a string or a number.")


def _name(found: FormErrors, path: Path, name: Any) -> None:
    if not isinstance(name, str) or not COMMAND_NAME.match(name):
        found.add(path, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")


def _options(found: FormErrors, value: Any, path: Path) -> None:
    seen_optional = False
    names: set[str] = set()
    for index, option in _items(found, path, value, MAX_COMMAND_OPTIONS):
        option_path = (*path, index)
        kind = option.get("type")
        if kind not in OPTION_TYPES:
            found.add((*option_path, "type"), "BASE_TYPE_CHOICES", "Value must be one of 1 to 11.")
        _name(found, (*option_path, "name"), option.get("name"))
        if option.get("name") in names:
            found.add(
                (*option_path, "name"), "APPLICATION_COMMAND_OPTION_NAME_NOT_UNIQUE", "Name must be unique"
            )
        names.add(str(option.get("name")))
        _length_between(found, (*option_path, "description"), option.get("description"), 1, 100)
        required = bool(option.get("required"))
        if required and seen_optional:
            found.add(
                (*option_path, "required"),
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options",
            )
        seen_optional = seen_optional or not required
        _choices(found, option.get("choices"), (*option_path, "choices"))
        if option.get("autocomplete"):
            if option.get("choices"):
                found.add(
                    (*option_path, "autocomplete"),
                    "APPLICATION_COMMAND_AUTOCOMPLETE_CHOICES_EXCLUSIVE",
                    "Autocomplete and choices are mutually exclusive.",
                )
            if kind not in AUTOCOMPLETE_OPTION_TYPES:
                found.add(
                    (*option_path, "autocomplete"),
                    "APPLICATION_COMMAND_AUTOCOMPLETE_TYPE_INVALID",
                    "Autocomplete is only for string, integer and number options.",
                )
        if kind in (OPTION_SUBCOMMAND, OPTION_SUBCOMMAND_GROUP):
            _options(found, option.get("options"), (*option_path, "options"))


def command(found: FormErrors, body: Any, path: Path) -> None:
    """One application command as POST or the bulk overwrite takes it (a CHAT_INPUT one checked fully)."""
    if not isinstance(body, dict):
        found.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return
    kind = body.get("type", 1)
    if kind not in (1, 2, 3, 4):
        found.add((*path, "type"), "BASE_TYPE_CHOICES", "Value must be one of (1, 2, 3, 4).")
    if kind == 1:
        _name(found, (*path, "name"), body.get("name"))
        _length_between(found, (*path, "description"), body.get("description"), 1, 100)
    else:  # user and message commands: any 1-32 character name, no description
        _length_between(found, (*path, "name"), body.get("name"), 1, 32)
    _options(found, body.get("options"), (*path, "options"))
    permissions = body.get("default_member_permissions")
    if permissions is not None and not (isinstance(permissions, str) and permissions.isdigit()):
        found.add((*path, "default_member_permissions"), "NUMBER_TYPE_COERCE", "Value is not a bitfield.")


def commands(found: FormErrors, body: Any, path: Path) -> None:
    """The bulk-overwrite list: at most 100 commands, names unique per type."""
    seen: set[tuple[Any, Any]] = set()
    for index, item in _items(found, path, body, MAX_COMMANDS):
        command(found, item, (*path, index))
        key = (item.get("type", 1), item.get("name"))
        if key in seen:
            found.add(
                (*path, index, "name"),
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Application command names must be unique: {item.get('name')}",
            )
        seen.add(key)
    if body is None:
        found.add(path, "BASE_TYPE_REQUIRED", "This field is required")


def interaction_callback(interaction_type: int) -> Check:
    """An interaction callback body: a type the interaction accepts, and data that suits the type."""

    def check(found: FormErrors, body: Any, path: Path) -> None:
        if not isinstance(body, dict):
            found.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
            return
        kind = body.get("type")
        allowed = CALLBACKS_FOR.get(interaction_type, frozenset())
        if kind not in allowed:
            found.add(
                (*path, "type"),
                "INTERACTION_RESPONSE_TYPE_INVALID",
                f"Value must be one of {sorted(allowed)} for this interaction.",
            )
            return
        data = body.get("data")
        if kind == CALLBACK_AUTOCOMPLETE_RESULT:
            if not isinstance(data, dict):
                found.add((*path, "data"), "BASE_TYPE_REQUIRED", "This field is required")
                return
            _choices(found, data.get("choices"), (*path, "data", "choices"))
        elif kind == CALLBACK_MODAL:
            if not isinstance(data, dict):
                found.add((*path, "data"), "BASE_TYPE_REQUIRED", "This field is required")
                return
            _length_between(found, (*path, "data", "custom_id"), data.get("custom_id"), 1, 100)
            _length_between(found, (*path, "data", "title"), data.get("title"), 1, 45)
        elif data is not None:
            message(found, data, (*path, "data"))

    return check


def member_modify(found: FormErrors, body: Any, path: Path) -> None:
    """PATCH /guilds/{guild}/members/{user}: nick, roles, mute, deaf, channel_id, the timeout's timestamp
    (its 28-day horizon needs the clock and is checked where the timeout is applied)."""
    if not isinstance(body, dict):
        found.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return
    _max_length(found, (*path, "nick"), body.get("nick"), MAX_NICK)
    roles = body.get("roles")
    if roles is not None and (not isinstance(roles, list) or not all(_is_snowflake(r) for r in roles)):
        found.add((*path, "roles"), "BASE_TYPE_ARRAY", "Must be an array of snowflakes.")
    for key in ("mute", "deaf"):
        if body.get(key) is not None and not isinstance(body[key], bool):
            found.add((*path, key), "BASE_TYPE_BOOLEAN", "Must be either true or false.")
    if body.get("channel_id") is not None and not _is_snowflake(body["channel_id"]):
        found.add(
            (*path, "channel_id"), "NUMBER_TYPE_COERCE", f'Value "{body["channel_id"]}" is not snowflake.'
        )
    until = body.get("communication_disabled_until")
    if until is not None and not isinstance(until, str):
        found.add(
            (*path, "communication_disabled_until"), "DATE_TYPE_PARSE", "Could not parse the timestamp."
        )


def ban(found: FormErrors, body: Any, path: Path) -> None:
    """PUT /guilds/{guild}/bans/{user}: delete_message_seconds 0-604800 (or the deprecated days 0-7)."""
    if not isinstance(body, dict):
        found.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return
    for key, high in (("delete_message_seconds", MAX_BAN_DELETE_S), ("delete_message_days", 7)):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            found.add((*path, key), "NUMBER_TYPE_COERCE", f'Value "{value}" is not int.')
        elif not 0 <= value <= high:
            found.add(
                (*path, key),
                "NUMBER_TYPE_MAX" if value > high else "NUMBER_TYPE_MIN",
                f"int value should be between 0 and {high}.",
            )
