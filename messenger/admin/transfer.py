"""The JSON import and export format of ``messenger-admin``.

Two layouts are read (docs/admin.md describes both):

* Messenger's own export: an object with ``"format": "messenger-export"``,
  ``"version": 1``, ``users`` (with Argon2 password hashes, never clear
  text), ``rooms`` with their members and, optionally, ``messages``.
* The layout of the older messenger this project replaces: an object with a
  ``user_list`` of ``{"_User__username", "_User__password", "_User__email"}``
  (the password in clear text: it is hashed here) and empty
  ``message_list`` and ``notification_list``.

Reading a file (:func:`load`) checks everything that can be checked without
the database and names the entry that is wrong; :func:`apply_import_txn`
then does the whole import inside the caller's single transaction, so an
import happens completely or not at all.  Nothing here writes SQL: it calls
the ``*_txn`` functions of :mod:`messenger.store.admin_txns`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

import argon2

from messenger import wire
from messenger.admin import AdminError
from messenger.store import admin_txns, txns
from messenger.store.admin_txns import MessageRow
from messenger.timefmt import rfc3339

FORMAT_NAME = "messenger-export"
FORMAT_VERSION = 1

ON_CONFLICT = ("fail", "skip", "update")

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


class ImportConflict(AdminError):
    """``--on-conflict fail`` and some usernames exist already."""


class ImportRejected(AdminError):
    """The file is well formed but does not fit the database (for example a
    room member who is neither in the file nor in the database)."""


# --------------------------------------------------------------------------
# What a file holds, once read and checked


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


@dataclass
class ImportReport:
    layout: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rooms_created: list[str] = field(default_factory=list)
    memberships_added: int = 0
    messages_imported: int = 0
    messages_skipped: int = 0
    ids_kept: bool | None = None

    def lines(self) -> list[str]:
        """What the import did, for a person."""
        out = [
            f"read a file in the {'older messenger' if self.layout == 'legacy' else 'Messenger export'} layout",
            f"users: {len(self.created)} created, {len(self.updated)} updated, {len(self.skipped)} skipped",
        ]
        for label, names in (
            ("created", self.created),
            ("updated", self.updated),
            ("skipped (already exist)", self.skipped),
        ):
            if names:
                out.append(f"  {label}: {_name_list(names)}")
        out.append(
            f"rooms: {len(self.rooms_created)} created, {self.memberships_added} memberships added"
        )
        if self.rooms_created:
            out.append(f"  created: {_name_list(self.rooms_created)}")
        if self.ids_kept is not None:
            out.append(
                f"messages: {self.messages_imported} imported"
                + (
                    f", {self.messages_skipped} skipped (to or from skipped users)"
                    if self.messages_skipped
                    else ""
                )
                + (" with their ids" if self.ids_kept else " with new ids")
            )
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "rooms_created": self.rooms_created,
            "memberships_added": self.memberships_added,
            "messages_imported": self.messages_imported,
            "messages_skipped": self.messages_skipped,
            "message_ids_kept": self.ids_kept,
        }


def _name_list(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --------------------------------------------------------------------------
# Reading and checking a file


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

    def unique(self, seen: dict[str, str], key, where: str, what: str) -> None:
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
                        self.time(f"{where}.created_at", entry["created_at"], optional=False),
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


# --------------------------------------------------------------------------
# Hashing the older layout's clear-text passwords


def hash_passwords(
    data: ImportData, hasher: argon2.PasswordHasher, progress=None, workers: int | None = None
) -> None:
    """Give every user with a clear-text password a hash, and forget the
    clear text.  Hashing is slow on purpose: it runs on several threads
    (argon2 releases the GIL) and before the import transaction starts, so
    the database is not locked meanwhile."""
    todo = [user for user in data.users if user.password_hash is None]
    if not todo:
        return
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for user, password_hash in zip(todo, pool.map(lambda u: hasher.hash(u.password), todo)):
            user.password_hash = password_hash
            user.password = None
            if progress is not None:
                progress.update(1)


# --------------------------------------------------------------------------
# Importing, inside one transaction


def apply_import_txn(
    cur, data: ImportData, on_conflict: str, now: float, progress=None
) -> ImportReport:
    """Import everything ``data`` holds.  Runs inside the caller's single
    write transaction: raising anything rolls the whole import back."""
    if on_conflict not in ON_CONFLICT:
        raise ValueError(on_conflict)
    report = ImportReport(data.layout)
    existing = set(admin_txns.existing_usernames_txn(cur, [u.username for u in data.users]))
    if existing and on_conflict == "fail":
        raise ImportConflict(
            f"{len(existing)} username(s) of the file exist already: {_name_list(sorted(existing))}; "
            "nothing was imported (choose --on-conflict skip or update)"
        )

    imported: set[str] = set()  # users of the file whose data now stands
    for user in data.users:
        assert user.password_hash is not None, "hash_passwords() first"
        if user.username not in existing:
            created_at = user.created_at if user.created_at is not None else now
            if not admin_txns.import_user_txn(
                cur,
                user.username,
                user.password_hash,
                user.display_name,
                created_at,
                user.last_seen,
            ):  # pragma: no cover - we hold the write lock
                raise ImportRejected(f"{data.path}: {user.where}: the username was taken meanwhile")
            report.created.append(user.username)
            imported.add(user.username)
        elif on_conflict == "update":
            admin_txns.update_user_txn(cur, user.username, user.password_hash, user.display_name)
            report.updated.append(user.username)
            imported.add(user.username)
        else:
            report.skipped.append(user.username)
        if progress is not None:
            progress.update(1)
    skipped = set(report.skipped)

    def known_user(username: str) -> bool:
        return username in imported or txns.get_user_txn(cur, username) is not None

    for room in data.rooms:
        if admin_txns.ensure_room_txn(
            cur, room.name, room.created_at if room.created_at is not None else now
        ):
            report.rooms_created.append(room.name)
        for (username, joined_at), mwhere in zip(room.members, room.member_where):
            if username in skipped:
                continue  # a skipped account is left exactly as it was
            if not known_user(username):
                raise ImportRejected(
                    f"{data.path}: {mwhere}: {username!r} is neither a user of the file nor of the database"
                )
            if admin_txns.add_member_txn(
                cur, room.name, username, joined_at if joined_at is not None else now
            ):
                report.memberships_added += 1

    if data.messages is not None:
        _import_messages(cur, data, skipped, known_user, report, progress)
    return report


def _import_messages(
    cur, data: ImportData, skipped: set[str], known_user, report: ImportReport, progress
) -> None:
    rooms = {room.name for room in data.rooms}
    to_store: list[MessageRow] = []
    for where, message in data.messages:
        if message.sender in skipped or message.recipient in skipped:
            report.messages_skipped += 1
            continue
        if message.recipient is not None and not known_user(message.recipient):
            raise ImportRejected(
                f"{data.path}: {where}.recipient: {message.recipient!r} is neither a user of the file nor of the database"
            )
        if message.room is not None and message.room not in rooms:
            if admin_txns.room_members_txn(cur, message.room) is None:
                raise ImportRejected(
                    f"{data.path}: {where}.room: {message.room!r} is neither a room of the file nor of the database"
                )
            rooms.add(message.room)
        to_store.append(message)
    highest = admin_txns.highest_message_id_txn(cur)
    report.ids_kept = not to_store or to_store[0].msgid > highest
    page = 1000
    for start in range(0, len(to_store), page):
        chunk = to_store[start : start + page]
        admin_txns.insert_messages_txn(cur, chunk, keep_ids=report.ids_kept)
        if progress is not None:
            progress.update(len(chunk))
    report.messages_imported = len(to_store)
    admin_txns.recount_pending_txn(cur)


# --------------------------------------------------------------------------
# Exporting


@dataclass
class ExportReport:
    users: int = 0
    rooms: int = 0
    memberships: int = 0
    messages: int | None = None

    def lines(self, path: str) -> list[str]:
        text = f"exported {self.users} users, {self.rooms} rooms ({self.memberships} memberships)"
        if self.messages is not None:
            text += f" and {self.messages} messages"
        return [f"{text} to {path}"]


def export_counts_txn(cur, with_history: bool) -> int:
    """How many entries an export writes (for a progress bar's total)."""
    stats = admin_txns.stats_txn(cur)
    return stats.accounts + stats.rooms + (stats.messages if with_history else 0)


def write_export_txn(
    cur, out: IO[str], with_history: bool, now: float, progress=None
) -> ExportReport:
    """Write the whole database as a Messenger export to ``out``.

    Run it inside one read transaction: the file is then one consistent
    snapshot even while the server keeps writing.  Entries are written one
    per line, so the file is readable and streams without being held in
    memory.
    """
    report = ExportReport()

    def dump(value) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)

    def entries(name: str, items: Iterable[dict], last: bool = False) -> int:
        out.write(f"  {dump(name)}: [")
        count = 0
        for item in items:
            out.write(("," if count else "") + "\n    " + dump(item))
            count += 1
            if progress is not None:
                progress.update(1)
        out.write(("\n  " if count else "") + "]" + ("\n" if last else ",\n"))
        return count

    out.write("{\n")
    out.write(f'  "format": {dump(FORMAT_NAME)},\n')
    out.write(f'  "version": {FORMAT_VERSION},\n')
    out.write(f'  "exported_at": {dump(rfc3339(now))},\n')

    report.users = entries(
        "users",
        (
            {
                "username": u.username,
                "display_name": u.display_name,
                "password_hash": u.password_hash,
                "created_at": u.created_at,
                "last_seen": u.last_seen,
            }
            for u in admin_txns.list_users_txn(cur)
        ),
    )

    members: dict[str, list[dict]] = {}
    for room, username, joined_at in admin_txns.all_members_txn(cur):
        members.setdefault(room, []).append({"username": username, "joined_at": joined_at})
        report.memberships += 1
    report.rooms = entries(
        "rooms",
        (
            {"name": r.name, "created_at": r.created_at, "members": members.get(r.name, [])}
            for r in admin_txns.list_rooms_txn(cur)
        ),
        last=not with_history,
    )

    if with_history:
        report.messages = entries(
            "messages",
            (
                {
                    "id": m.msgid,
                    "sender": m.sender,
                    "recipient": m.recipient,
                    "room": m.room,
                    "body": m.body,
                    "created_at": m.created_at,
                    "delivered_at": m.delivered_at,
                    "receipt_sent": m.receipt_sent,
                }
                for m in admin_txns.iter_messages_txn(cur)
            ),
            last=True,
        )
    out.write("}\n")
    return report
