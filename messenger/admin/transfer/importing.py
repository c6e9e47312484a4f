"""Importing a checked file: the clear-text passwords of the older layout
hashed first, then everything inside the caller's one write transaction, so
an import happens completely or not at all."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import argon2

from messenger.admin import AdminError
from messenger.admin.transfer.checking import ImportData
from messenger.store import admin_txns, txns
from messenger.store.admin_txns import MessageRow

ON_CONFLICT = ("fail", "skip", "update")


class ImportConflict(AdminError):
    """``--on-conflict fail`` and some usernames exist already."""


class ImportRejected(AdminError):
    """The file is well formed but does not fit the database (for example a
    room member who is neither in the file nor in the database)."""


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
    assert data.messages is not None
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
