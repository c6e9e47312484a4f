"""Exporting the whole database as one consistent snapshot, streamed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

from messenger.admin.transfer.checking import FORMAT_NAME, FORMAT_VERSION
from messenger.store import admin_txns
from messenger.timefmt import rfc3339


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
