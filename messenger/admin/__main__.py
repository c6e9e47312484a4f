"""``messenger-admin``: manage a Messenger server's database.

    messenger-admin [--db FILE | --config FILE] COMMAND ...

Every command opens the server's SQLite file directly, does its work in one
short transaction and is safe while the server runs.  Exit status: 0 done,
1 an error the message explains (no database, locked database, malformed
file, unknown user...), 2 a usage error.  See docs/admin.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr, redirect_stdout

from messenger.admin import AdminError
from messenger.admin.commands import (
    cmd_export,
    cmd_import,
    cmd_rooms_list,
    cmd_rooms_members,
    cmd_stats,
    cmd_users_add,
    cmd_users_delete,
    cmd_users_list,
    cmd_users_passwd,
    cmd_users_rename_display,
)
from messenger.admin.console import Console
from messenger.admin.settings import Context, common_options
from messenger.admin.transfer.importing import ON_CONFLICT


def build_parser() -> argparse.ArgumentParser:
    common = common_options(defaults=False)
    parser = argparse.ArgumentParser(
        prog="messenger-admin",
        parents=[common_options(defaults=True)],
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
        choices=ON_CONFLICT,
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
