"""Reading an import file and checking everything that can be checked
without the database; every error names the entry that is wrong."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import argon2

from messenger import wire
from messenger.admin import AdminError
from messenger.store.admin_txns import MessageRow

FORMAT_NAME = "messenger-export"
FORMAT_VERSION = 1

_USER_KEYS = {"username", "password_hash", "display_name", "created_at", "last_seen"}
_ROOM_KEYS = {"name", "created_at", "members"}
_MEMBER_KEYS = {"username", "joined_at"}
_MESSAGE_KEYS = {
    "id",
    "sender",
    "recipient",
    "room",
    "body",
    "created_at",
    "delivered_at",
    "receipt_sent",
}
_TOP_KEYS = {"format", "version", "exported_at", "users", "rooms", "messages"}
_LEGACY_TOP_KEYS = {"user_list", "message_list", "notification_list"}
_LEGACY_USER_KEYS = {"_User__username", "_User__password", "_User__email"}


class FileFormatError(AdminError):
    """The file is not one the tool can import; the message says where."""


@dataclass
class ImportUser:
    where: str  #: the entry, e.g. ``users[3]``, for messages
    username: str
    display_name: str
    created_at: float | None
    last_seen: float | None
    password_hash: str | None = None
    #: Only for the older layout: hashed by :func:`hash_passwords`, then dropped.
    password: str | None = field(default=None, repr=False)


@dataclass
class ImportRoom:
    where: str
    name: str
    created_at: float | None
    #: (username, joined_at or None), in file order.
    members: list[tuple[str, float | None]]
    #: For each member, where it is in the file.
    member_where: list[str]


@dataclass
class ImportData:
    path: str
    layout: str  #: "messenger" or "legacy"
    users: list[ImportUser]
    rooms: list[ImportRoom]
    #: None when the file has no message history at all.
    messages: list[tuple[str, MessageRow]] | None


def load(path: str) -> ImportData:
    """Read and check an import file.  Raises :class:`FileFormatError`."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such file") from None
    except OSError as e:
        raise FileFormatError(f"{path}: cannot read it: {e.strerror}") from None
    return parse(raw, path)


def parse(raw: bytes, path: str = "<input>") -> ImportData:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise FileFormatError(f"{path}:{line}: not UTF-8 text (byte {e.start})") from None
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    except ValueError as e:
        raise FileFormatError(f"{path}: not valid JSON: {e}") from None
    check = _Checker(path)
    if not isinstance(document, dict):
        check.fail("the file", "must hold a JSON object")
    if "user_list" in document:
        return check.legacy(document)
    return check.messenger(document)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


class _Checker:
    """Checks a decoded document; every error names the entry."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: str, problem: str):
        raise FileFormatError(f"{self.path}: {where}: {problem}")

    # -- pieces ---------------------------------------------------------

    def obj(self, where: str, value, allowed: set[str], required: Iterable[str] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(where, f"must be a JSON object, not {_json_type(value)}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            self.fail(where, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in value:
                self.fail(where, f"{key!r} is missing")
        return value

    def array(self, where: str, value) -> list:
        if not isinstance(value, list):
            self.fail(where, f"must be a JSON array, not {_json_type(value)}")
        return value

    def string(self, where: str, value) -> str:
        if not isinstance(value, str):
            self.fail(where, f"must be a string, not {_json_type(value)}")
        return value

    def required_time(self, where: str, value: object) -> float:
        moment = self.time(where, value, optional=False)
        assert moment is not None  # not optional: time() failed otherwise
        return moment

    def time(self, where: str, value, optional: bool = True) -> float | None:
        if value is None and optional:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            self.fail(
                where,
                "must be a time in seconds since the epoch (a number >= 0)"
                + (" or null" if optional else ""),
            )
        return float(value)

    def valid(self, where: str, check, value):
        try:
            return check(value)
        except ValueError as e:
            self.fail(where, f"{value!r}: {e}")

    def username(self, where: str, value) -> str:
        return self.valid(where, wire.canonical_username, self.string(where, value))

    # -- Messenger's own layout -----------------------------------------

    def messenger(self, document: dict) -> ImportData:
        if "format" not in document and "users" not in document:
            self.fail(
                "the file",
                'is neither a Messenger export (no "format" and "users") nor the '
                'older messenger\'s layout (no "user_list")',
            )
        self.obj("the top-level object", document, _TOP_KEYS, ("format", "version", "users"))
        if document["format"] != FORMAT_NAME:
            self.fail('"format"', f"is {document['format']!r}, expected {FORMAT_NAME!r}")
        version = document["version"]
        if isinstance(version, bool) or version != FORMAT_VERSION:
            self.fail(
                '"version"', f"is {version!r}; this messenger-admin reads version {FORMAT_VERSION}"
            )
        users = self.users(self.array('"users"', document["users"]))
        rooms = self.rooms(self.array('"rooms"', document.get("rooms", [])))
        messages = None
        if document.get("messages") is not None:
            messages = self.messages(self.array('"messages"', document["messages"]))
        return ImportData(self.path, "messenger", users, rooms, messages)

    def users(self, entries: list) -> list[ImportUser]:
        users = []
        seen: dict[str, str] = {}
        for i, entry in enumerate(entries):
            where = f"users[{i}]"
            if isinstance(entry, dict) and "password" in entry:
                self.fail(
                    where,
                    'clear-text passwords are not accepted in this layout: give "password_hash"',
                )
            self.obj(where, entry, _USER_KEYS, ("username", "password_hash"))
            username = self.username(f"{where}.username", entry["username"])
            where = f"users[{i}] ({username})"
            self.unique(seen, username, where, "username")
            password_hash = self.string(f"{where}.password_hash", entry["password_hash"])
            try:
                argon2.extract_parameters(password_hash)
            except Exception:
                self.fail(
                    f"{where}.password_hash", "is not an Argon2 hash (clear text is never accepted)"
                )
            display_name = username
            if entry.get("display_name") is not None:
                display_name = self.valid(
                    f"{where}.display_name",
                    wire.clean_display_name,
                    self.string(f"{where}.display_name", entry["display_name"]),
                )
            users.append(
                ImportUser(
                    where=where,
                    username=username,
                    display_name=display_name,
                    created_at=self.time(f"{where}.created_at", entry.get("created_at")),
                    last_seen=self.time(f"{where}.last_seen", entry.get("last_seen")),
                    password_hash=password_hash,
                )
            )
        return users

    def unique(self, seen: dict[Any, str], key: object, where: str, what: str) -> None:
        if key in seen:
            self.fail(where, f"{what} {key!r} appears twice (also at {seen[key]})")
        seen[key] = where

    def rooms(self, entries: list) -> list[ImportRoom]:
        rooms = []
        seen: dict[str, str] = {}
        for i, entry in enumerate(entries):
            where = f"rooms[{i}]"
            self.obj(where, entry, _ROOM_KEYS, ("name",))
            name = self.valid(
                f"{where}.name", wire.canonical_room, self.string(f"{where}.name", entry["name"])
            )
            where = f"rooms[{i}] ({name})"
            self.unique(seen, name, where, "room")
            members: list[tuple[str, float | None]] = []
            member_where: list[str] = []
            seen_members: dict[str, str] = {}
            for j, member in enumerate(self.array(f"{where}.members", entry.get("members", []))):
                mwhere = f"{where}.members[{j}]"
                if isinstance(member, str):
                    username, joined_at = self.username(mwhere, member), None
                else:
                    self.obj(mwhere, member, _MEMBER_KEYS, ("username",))
                    username = self.username(f"{mwhere}.username", member["username"])
                    joined_at = self.time(f"{mwhere}.joined_at", member.get("joined_at"))
                self.unique(seen_members, username, mwhere, "member")
                members.append((username, joined_at))
                member_where.append(mwhere)
            rooms.append(
                ImportRoom(
                    where,
                    name,
                    self.time(f"{where}.created_at", entry.get("created_at")),
                    members,
                    member_where,
                )
            )
        return rooms

    def messages(self, entries: list) -> list[tuple[str, MessageRow]]:
        messages = []
        seen: dict[int, str] = {}
        for i, entry in enumerate(entries):
            where = f"messages[{i}]"
            self.obj(where, entry, _MESSAGE_KEYS, ("id", "sender", "body", "created_at"))
            msgid = entry["id"]
            if isinstance(msgid, bool) or not isinstance(msgid, int) or msgid < 1:
                self.fail(f"{where}.id", "must be a positive integer")
            where = f"messages[{i}] (id {msgid})"
            self.unique(seen, msgid, where, "id")
            sender = self.username(f"{where}.sender", entry["sender"])
            recipient = entry.get("recipient")
            room = entry.get("room")
            if (recipient is None) == (room is None):
                self.fail(where, 'needs exactly one of "recipient" (a direct message) and "room"')
            if recipient is not None:
                recipient = self.username(f"{where}.recipient", recipient)
            else:
                room = self.valid(
                    f"{where}.room", wire.canonical_room, self.string(f"{where}.room", room)
                )
            body = self.valid(
                f"{where}.body", wire.check_body, self.string(f"{where}.body", entry["body"])
            )
            delivered_at = self.time(f"{where}.delivered_at", entry.get("delivered_at"))
            if room is not None and delivered_at is not None:
                self.fail(
                    f"{where}.delivered_at",
                    "only direct messages are acknowledged: must be null for a room message",
                )
            receipt_sent = entry.get("receipt_sent", True)
            if not isinstance(receipt_sent, bool):
                self.fail(f"{where}.receipt_sent", "must be true or false")
            messages.append(
                (
                    where,
                    MessageRow(
                        msgid,
                        sender,
                        recipient,
                        room,
                        body,
                        self.required_time(f"{where}.created_at", entry["created_at"]),
                        delivered_at,
                        receipt_sent,
                    ),
                )
            )
        messages.sort(key=lambda item: item[1].msgid)
        return messages

    # -- the older messenger's layout ------------------------------------

    def legacy(self, document: dict) -> ImportData:
        self.obj("the top-level object", document, _LEGACY_TOP_KEYS, ("user_list",))
        for key in ("message_list", "notification_list"):
            if key in document and self.array(f'"{key}"', document[key]):
                self.fail(
                    f'"{key}"',
                    f"holds {len(document[key])} entries; only files whose {key} is empty "
                    "can be imported (the older messenger's messages have no counterpart here)",
                )
        users = []
        seen: dict[str, str] = {}
        for i, entry in enumerate(self.array('"user_list"', document["user_list"])):
            where = f"user_list[{i}]"
            self.obj(where, entry, _LEGACY_USER_KEYS, ("_User__username", "_User__password"))
            username = self.username(f"{where}._User__username", entry["_User__username"])
            where = f"user_list[{i}] ({username})"
            self.unique(seen, username, where, "username (ignoring case)")
            password = self.string(f"{where}._User__password", entry["_User__password"])
            try:
                wire.check_password(password)
            except ValueError as e:
                # Never echo the clear-text password itself.
                self.fail(f"{where}._User__password", f"cannot be used: {e}")
            display_name = username
            email = entry.get("_User__email")
            if isinstance(email, str):
                try:
                    display_name = wire.clean_display_name(email)
                except ValueError:
                    pass
            elif email is not None:
                self.fail(f"{where}._User__email", f"must be a string, not {_json_type(email)}")
            users.append(ImportUser(where, username, display_name, None, None, password=password))
        return ImportData(self.path, "legacy", users, [], None)


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
