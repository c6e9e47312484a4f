"""What each messenger-admin command does; each returns the exit status."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence

from messenger import wire
from messenger.admin import AdminError
from messenger.admin.console import Console
from messenger.admin.database import Database
from messenger.admin.settings import Context
from messenger.store import admin_txns, txns
from messenger.timefmt import rfc3339


def _username(value: str) -> str:
    try:
        return wire.canonical_username(value)
    except ValueError:
        raise AdminError(f"{value!r} is not a valid username (1-32 of A-Z a-z 0-9 _ . -)") from None


def _time(value: float | None) -> str:
    return "-" if value is None else rfc3339(value)


def _table(console: Console, header: Sequence[str], rows: list[Sequence[str]]) -> None:
    widths = [max([len(h)] + [len(str(r[i])) for r in rows]) for i, h in enumerate(header)]
    for row in [header] + rows:
        console.out("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())


def _print_json(console: Console, value) -> None:
    console.out(json.dumps(value, indent=2, ensure_ascii=False))


def _new_password(ctx: Context, username: str) -> str:
    """The new password from --password-file or two prompts, checked."""
    path = ctx.args.password_file
    if path is not None:
        try:
            if path == "-":
                line = ctx.console.stdin.readline()
            else:
                with open(path, encoding="utf-8") as f:
                    line = f.readline()
        except OSError as e:
            raise AdminError(f"--password-file: cannot read {path}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise AdminError(f"--password-file: {path} is not UTF-8 text") from None
        password = line.rstrip("\r\n")
        if not password:
            raise AdminError(f"--password-file: the first line of {path} is empty")
    else:
        password = ctx.console.ask_password(f"New password for {username}: ")
        if ctx.console.ask_password("Repeat it: ") != password:
            raise AdminError("the two passwords differ; nothing was changed")
    try:
        wire.check_password(password)
    except ValueError as e:
        raise AdminError(f"unusable password: {e}") from None
    minimum = ctx.settings.min_password_length
    if len(password) < minimum:
        raise AdminError(
            f"the password is shorter than {minimum} characters (--min-password-length)"
        )
    return password


def cmd_users_list(ctx: Context) -> int:
    with ctx.database() as db, db.read() as cur:
        users = admin_txns.list_users_txn(cur)
    if ctx.args.json:
        _print_json(
            ctx.console,
            [
                {
                    "username": u.username,
                    "display_name": u.display_name,
                    "created_at": u.created_at,
                    "last_seen": u.last_seen,
                    "pending": u.pending_count,
                }
                for u in users
            ],
        )
        return 0
    _table(
        ctx.console,
        ("USERNAME", "DISPLAY NAME", "CREATED", "LAST SEEN", "PENDING"),
        [
            (
                u.username,
                u.display_name,
                _time(u.created_at),
                _time(u.last_seen),
                str(u.pending_count),
            )
            for u in users
        ],
    )
    return 0


def cmd_users_add(ctx: Context) -> int:
    username = _username(ctx.args.username)
    display_name = ctx.args.display_name if ctx.args.display_name is not None else username
    try:
        display_name = wire.clean_display_name(display_name)
    except ValueError as e:
        raise AdminError(f"bad display name: {e}") from None
    with ctx.database() as db:
        with db.read() as cur:  # fail early, before asking for a password
            if txns.get_user_txn(cur, username) is not None:
                raise AdminError(f"the user {username} exists already")
        password_hash = ctx.hasher().hash(_new_password(ctx, username))
        with db.write() as cur:
            if not txns.create_user_txn(cur, username, password_hash, display_name, time.time()):
                raise AdminError(f"the user {username} exists already")
    ctx.console.out(f"created {username} ({display_name}), a member of {wire.GENERAL_ROOM}")
    return 0


def cmd_users_delete(ctx: Context) -> int:
    username = _username(ctx.args.username)
    with ctx.database() as db:
        with db.read() as cur:
            if txns.get_user_txn(cur, username) is None:
                raise AdminError(f"no user {username}")
            direct = admin_txns.direct_message_count_txn(cur, username)
        if not ctx.args.yes:
            answer = ctx.console.ask(
                f"Delete {username} and the {direct} direct message(s) it sent or received? [y/N] "
            )
            if answer.strip().lower() not in ("y", "yes"):
                ctx.console.err("not deleted")
                return 1
        with db.write() as cur:
            if not admin_txns.delete_user_txn(cur, username):
                raise AdminError(f"no user {username}")
    ctx.console.out(f"deleted {username}")
    return 0


def cmd_users_passwd(ctx: Context) -> int:
    username = _username(ctx.args.username)
    with ctx.database() as db:
        with db.read() as cur:
            if txns.get_user_txn(cur, username) is None:
                raise AdminError(f"no user {username}")
        password_hash = ctx.hasher().hash(_new_password(ctx, username))
        with db.write() as cur:
            if txns.get_user_txn(cur, username) is None:
                raise AdminError(f"no user {username}")
            txns.set_password_hash_txn(cur, username, password_hash)
    ctx.console.out(f"password of {username} changed; its session tokens are revoked")
    return 0


def cmd_users_rename_display(ctx: Context) -> int:
    username = _username(ctx.args.username)
    try:
        display_name = wire.clean_display_name(ctx.args.display_name)
    except ValueError as e:
        raise AdminError(f"bad display name: {e}") from None
    with ctx.database() as db, db.write() as cur:
        if txns.get_user_txn(cur, username) is None:
            raise AdminError(f"no user {username}")
        txns.set_display_name_txn(cur, username, display_name)
    ctx.console.out(f"display name of {username} is now {display_name}")
    return 0


def cmd_rooms_list(ctx: Context) -> int:
    with ctx.database() as db, db.read() as cur:
        rooms = admin_txns.list_rooms_txn(cur)
    if ctx.args.json:
        _print_json(
            ctx.console,
            [
                {
                    "name": r.name,
                    "created_at": r.created_at,
                    "members": r.members,
                    "messages": r.messages,
                }
                for r in rooms
            ],
        )
        return 0
    _table(
        ctx.console,
        ("ROOM", "MEMBERS", "MESSAGES", "CREATED"),
        [(r.name, str(r.members), str(r.messages), _time(r.created_at)) for r in rooms],
    )
    return 0


def cmd_rooms_members(ctx: Context) -> int:
    try:
        room = wire.canonical_room(ctx.args.room)
    except ValueError:
        raise AdminError(
            f"{ctx.args.room!r} is not a valid room name ('#' then 1-32 of a-z 0-9 _ -)"
        ) from None
    with ctx.database() as db, db.read() as cur:
        members = admin_txns.room_members_txn(cur, room)
    if members is None:
        raise AdminError(f"no room {room}")
    if ctx.args.json:
        _print_json(
            ctx.console, [{"username": m.username, "joined_at": m.joined_at} for m in members]
        )
        return 0
    _table(ctx.console, ("USERNAME", "JOINED"), [(m.username, _time(m.joined_at)) for m in members])
    return 0


def cmd_stats(ctx: Context) -> int:
    with ctx.database() as db, db.read() as cur:
        stats = admin_txns.stats_txn(cur)
    now = time.time()
    if ctx.args.json:
        _print_json(
            ctx.console,
            {
                "accounts": stats.accounts,
                "rooms": stats.rooms,
                "messages": stats.messages,
                "waiting": stats.waiting,
                "oldest_waiting": stats.oldest_waiting,
            },
        )
        return 0
    oldest = "-"
    if stats.oldest_waiting is not None:
        oldest = f"{rfc3339(stats.oldest_waiting)} ({_age(now - stats.oldest_waiting)} ago)"
    for label, value in (
        ("accounts", stats.accounts),
        ("rooms", stats.rooms),
        ("messages stored", stats.messages),
        ("messages waiting for delivery", stats.waiting),
        ("oldest waiting message", oldest),
    ):
        ctx.console.out(f"{label + ':':31}{value}")
    return 0


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def cmd_export(ctx: Context) -> int:
    from messenger.admin import transfer

    path = ctx.args.file
    to_stdout = path == "-"
    if not to_stdout and os.path.exists(path) and not ctx.args.force:
        raise AdminError(f"{path} exists already: give another name, or --force to replace it")
    with ctx.database() as db, db.read() as cur:
        total = transfer.export_counts_txn(cur, ctx.args.with_history)
        with ctx.console.progress(total, "entries", "exporting") as bar:
            if to_stdout:
                report = transfer.write_export_txn(
                    cur, ctx.console.stdout, ctx.args.with_history, time.time(), bar
                )
            else:
                report = _export_to_file(cur, path, ctx.args.with_history, bar)
    message = "\n".join(report.lines("standard output" if to_stdout else path))
    (ctx.console.err if to_stdout else ctx.console.out)(message)
    return 0


def _export_to_file(cur, path: str, with_history: bool, bar):
    """Write to a private temporary file beside ``path``, then rename it:
    the export holds password hashes, and a failed export leaves no
    half-written file."""
    from messenger.admin import transfer

    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(prefix=".export-", suffix=".json.tmp", dir=directory)
    except OSError as e:
        raise AdminError(f"cannot write in {directory}: {e.strerror}") from None
    try:
        with open(fd, "w", encoding="utf-8") as out:  # mkstemp: mode 0600
            report = transfer.write_export_txn(cur, out, with_history, time.time(), bar)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException as e:
        try:
            os.remove(temporary)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise AdminError(f"cannot write {path}: {e.strerror}") from None
        raise
    return report


def cmd_import(ctx: Context) -> int:
    from messenger.admin import transfer

    args = ctx.args
    if args.file == "-":
        data = transfer.parse(
            ctx.console.stdin.buffer.read()
            if hasattr(ctx.console.stdin, "buffer")
            else ctx.console.stdin.read().encode("utf-8"),
            "<stdin>",
        )
    else:
        data = transfer.load(args.file)
    db = ctx.database(create=args.create)
    try:
        with db:
            if any(user.password_hash is None for user in data.users):
                with ctx.console.progress(len(data.users), "users", "hashing passwords") as bar:
                    transfer.hash_passwords(data, ctx.hasher(), bar)
            total = len(data.users) + (len(data.messages) if data.messages else 0)
            with ctx.console.progress(total, "entries", "importing") as bar:
                report = _run_import(db, data, args, bar)
    except BaseException:
        db.discard()  # only if it was created here: no empty database left behind
        raise
    if args.json:
        _print_json(ctx.console, dict(report.as_json(), dry_run=args.dry_run))
    else:
        for line in report.lines():
            ctx.console.out(line)
        if args.dry_run:
            ctx.console.out("dry run: nothing was written")
    if args.dry_run:
        db.discard()
    return 0


class _DryRun(Exception):
    pass


def _run_import(db: Database, data, args, bar):
    from messenger.admin import transfer

    report = None
    try:
        with db.write() as cur:
            report = transfer.apply_import_txn(cur, data, args.on_conflict, time.time(), bar)
            if args.dry_run:
                raise _DryRun()  # roll back
    except _DryRun:
        pass
    return report
