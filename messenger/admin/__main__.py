"""``messenger-admin``: manage a Messenger server's database.

    messenger-admin [--db FILE | --config FILE] COMMAND ...

Every command opens the server's SQLite file directly, does its work in one
short transaction and is safe while the server runs.  Exit status: 0 done,
1 an error the message explains (no database, locked database, malformed
file, unknown user...), 2 a usage error.  See docs/admin.md.
"""

from __future__ import annotations

import argparse
import configparser
import getpass
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr, redirect_stdout

from messenger import wire
from messenger.admin import AdminError
from messenger.admin.database import DEFAULT_BUSY_TIMEOUT, Database
from messenger.passwords import DEFAULT_MEMORY_COST, DEFAULT_TIME_COST, make_hasher
from messenger.store import admin_txns, txns
from messenger.timefmt import rfc3339

DEFAULT_DB = "messenger.sqlite3"  # as the server's --db
DEFAULT_MIN_PASSWORD_LENGTH = 8  # as the server's --min-password-length

#: Options that may come from the server's INI file (--config), with their
#: defaults; the command line wins, then the file, then these.
_SHARED_DEFAULTS = {
    "db": DEFAULT_DB,
    "argon2-time-cost": DEFAULT_TIME_COST,
    "argon2-memory-cost": DEFAULT_MEMORY_COST,
    "min-password-length": DEFAULT_MIN_PASSWORD_LENGTH,
}


class Console:
    """Where a command reads and writes: the real terminal, or test doubles."""

    def __init__(self, stdin=None, stdout=None, stderr=None) -> None:
        self.stdin = stdin if stdin is not None else sys.stdin
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def err(self, text: str) -> None:
        self.stderr.write(text + "\n")

    def ask_password(self, prompt: str) -> str:
        """Read a password without echo (getpass uses the terminal itself)."""
        return getpass.getpass(prompt)

    def ask(self, prompt: str) -> str:
        self.stderr.write(prompt)
        self.stderr.flush()
        line = self.stdin.readline()
        return line.rstrip("\n")

    def progress(self, total: int, unit: str, description: str):
        """A progress bar on stderr, shown only when it is a terminal."""
        from tqdm import tqdm

        return tqdm(
            total=total,
            unit=unit,
            desc=description,
            file=self.stderr,
            disable=None if _isatty(self.stderr) else True,
            leave=False,
        )


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------
# options


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _common_options(defaults: bool) -> argparse.ArgumentParser:
    """Options accepted before the command and after it.  Only the main
    parser sets defaults (argparse.SUPPRESS elsewhere), so a value given
    before the command is not overwritten by a sub-parser's default."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("database and server settings")
    default = None if defaults else argparse.SUPPRESS
    group.add_argument(
        "--db",
        metavar="FILE",
        default=default,
        help=f"the server's SQLite database [default: {DEFAULT_DB}, or the config file's db]",
    )
    group.add_argument(
        "-c",
        "--config",
        metavar="INI",
        default=default,
        help="read db, argon2-time-cost, argon2-memory-cost and min-password-length "
        "from the [messenger] section of the server's INI file",
    )
    group.add_argument(
        "--busy-timeout",
        metavar="SECONDS",
        type=_positive_float,
        default=default,
        help=f"how long to wait for a database locked by the server [default: {DEFAULT_BUSY_TIMEOUT:g}]",
    )
    group.add_argument(
        "--argon2-time-cost",
        metavar="N",
        type=_positive_int,
        default=default,
        help=f"Argon2id iterations of new hashes; use the server's [default: {DEFAULT_TIME_COST}]",
    )
    group.add_argument(
        "--argon2-memory-cost",
        metavar="KIB",
        type=_positive_int,
        default=default,
        help=f"Argon2id memory of new hashes; use the server's [default: {DEFAULT_MEMORY_COST}]",
    )
    group.add_argument(
        "--min-password-length",
        metavar="N",
        type=_positive_int,
        default=default,
        help=f"for users add and users passwd (not for import) [default: {DEFAULT_MIN_PASSWORD_LENGTH}]",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    common = _common_options(defaults=False)
    parser = argparse.ArgumentParser(
        prog="messenger-admin",
        parents=[_common_options(defaults=True)],
        description="Manage a Messenger server's database: accounts, rooms, statistics, "
        "import and export. Safe to use while the server runs.",
        epilog="Exit status: 0 done, 1 error (explained on stderr), 2 bad usage. "
        "'messenger-admin COMMAND --help' describes each command.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(parent, name: str, help_text: str, handler: Callable | None = None, **kwargs):
        sub = parent.add_parser(
            name,
            help=help_text,
            description=kwargs.pop("description", help_text),
            parents=[common],
            **kwargs,
        )
        if handler is not None:
            sub.set_defaults(handler=handler)
        return sub

    # users
    users = command(commands, "users", "list, add, delete and change accounts")
    user_commands = users.add_subparsers(
        dest="users_command", metavar="USERS_COMMAND", required=True
    )
    sub = command(
        user_commands,
        "list",
        "every account: username, display name, created, last seen, direct messages waiting for it",
        cmd_users_list,
    )
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")

    sub = command(user_commands, "add", "create an account (a member of #general)", cmd_users_add)
    sub.add_argument("username", metavar="USER")
    sub.add_argument("--display-name", metavar="NAME", help="[default: the username]")
    sub.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the password from the first line of FILE ('-': standard input) "
        "instead of asking for it",
    )

    sub = command(
        user_commands,
        "delete",
        "delete an account with its direct messages",
        cmd_users_delete,
        description="Delete an account, its session tokens and room memberships, and every "
        "direct message it sent or received. Messages it wrote in rooms stay.",
    )
    sub.add_argument("username", metavar="USER")
    sub.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    sub = command(
        user_commands, "passwd", "set a new password (ends every session token)", cmd_users_passwd
    )
    sub.add_argument("username", metavar="USER")
    sub.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the password from the first line of FILE ('-': standard input)",
    )

    sub = command(
        user_commands,
        "rename-display",
        "change an account's display name",
        cmd_users_rename_display,
    )
    sub.add_argument("username", metavar="USER")
    sub.add_argument("display_name", metavar="NAME")

    # rooms
    rooms = command(commands, "rooms", "list rooms and their members")
    room_commands = rooms.add_subparsers(
        dest="rooms_command", metavar="ROOMS_COMMAND", required=True
    )
    sub = command(
        room_commands, "list", "every room with its member and message counts", cmd_rooms_list
    )
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub = command(room_commands, "members", "the members of a room", cmd_rooms_members)
    sub.add_argument("room", metavar="ROOM", help="e.g. '#general' (quote the # in a shell)")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")

    # stats
    sub = command(
        commands, "stats", "accounts, rooms, messages stored and waiting for delivery", cmd_stats
    )
    sub.add_argument("--json", action="store_true", help="print JSON")

    # export / import
    sub = command(
        commands,
        "export",
        "write users, rooms and optionally messages to a JSON file",
        cmd_export,
        description="Write the accounts (with their password hashes), rooms with their members "
        "and, with --with-history, every stored message to a JSON file (the format "
        "is in docs/admin.md). The file is one consistent snapshot and is created "
        "readable by its owner only.",
    )
    sub.add_argument("file", metavar="FILE.json", help="'-' for standard output")
    sub.add_argument("--with-history", action="store_true", help="include every stored message")
    sub.add_argument("--force", action="store_true", help="replace FILE if it exists")

    sub = command(
        commands,
        "import",
        "read users, rooms and messages from a JSON file",
        cmd_import,
        description="Import a Messenger export, or the users file of the older messenger "
        "(clear-text passwords are hashed). All or nothing: one transaction.",
    )
    sub.add_argument("file", metavar="FILE.json", help="'-' for standard input")
    sub.add_argument(
        "--on-conflict",
        choices=("fail", "skip", "update"),
        default="fail",
        help="for usernames that exist already: fail (import nothing; the default), "
        "skip them (their accounts stay as they are), or update their password "
        "hash and display name",
    )
    sub.add_argument(
        "--create",
        action="store_true",
        help="create the database (with the schema) if it does not exist",
    )
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything and report, then roll back: the database is unchanged",
    )
    sub.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _settings(args: argparse.Namespace) -> dict[str, object]:
    """The shared options: command line, then --config, then defaults."""
    file_values: dict[str, str] = {}
    if args.config:
        file_values = _read_config(args.config)
    settings: dict[str, object] = {}
    for key, default in _SHARED_DEFAULTS.items():
        given = getattr(args, key.replace("-", "_"), None)
        if given is not None:
            settings[key] = given
        elif key in file_values:
            value = file_values[key]
            if key != "db":
                try:
                    value = _positive_int(value)
                except argparse.ArgumentTypeError as e:
                    raise AdminError(f"{args.config}: {key}: {e}") from None
            settings[key] = value
        else:
            settings[key] = default
    settings["busy-timeout"] = (
        args.busy_timeout if args.busy_timeout is not None else DEFAULT_BUSY_TIMEOUT
    )
    return settings


def _read_config(path: str) -> dict[str, str]:
    parser = configparser.ConfigParser()
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as e:
        raise AdminError(f"--config: cannot read {path}: {e.strerror}") from None
    except configparser.Error as e:
        raise AdminError(f"--config: {path} is not a valid INI file: {e}") from None
    if not parser.has_section("messenger"):
        raise AdminError(f"--config: {path} has no [messenger] section")
    return dict(parser.items("messenger"))


# --------------------------------------------------------------------------
# helpers


class Context:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.settings = _settings(args)

    def database(self, create: bool = False) -> Database:
        return Database(
            str(self.settings["db"]), float(self.settings["busy-timeout"]), create=create
        )

    def hasher(self):
        return make_hasher(
            int(self.settings["argon2-time-cost"]), int(self.settings["argon2-memory-cost"])
        )


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
    minimum = int(ctx.settings["min-password-length"])
    if len(password) < minimum:
        raise AdminError(
            f"the password is shorter than {minimum} characters (--min-password-length)"
        )
    return password


# --------------------------------------------------------------------------
# commands: each returns the exit status


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


# --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, stdin=None, stdout=None, stderr=None) -> int:
    """Run one command; returns the exit status (the console script exits with it)."""
    console = Console(stdin, stdout, stderr)
    parser = build_parser()
    try:
        with redirect_stdout(console.stdout), redirect_stderr(console.stderr):
            args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.handler(Context(args, console))
    except AdminError as e:
        console.err(f"messenger-admin: error: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        console.err("messenger-admin: interrupted; nothing more was changed")
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
