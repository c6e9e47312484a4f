"""``messenger-client`` and ``python -m messenger.client``: the command line."""

from __future__ import annotations

import argparse
import os
import sys

from messenger import wire
from messenger.client import commands
from messenger.client.app import DEFAULT_SERVER, ClientOptions, run

PASSWORD_VARIABLE = "MESSENGER_PASSWORD"
SERVER_VARIABLE = "MESSENGER_SERVER"

EPILOG = f"""\
examples:
  messenger-client                                  # {DEFAULT_SERVER}
  messenger-client --server tls:chat.example.org:10443 --ca etc/ca.pem
  messenger-client --user alice send bob "lunch?"   # one message, for scripts

The password is asked for without echo, or read from --password-file or the
{PASSWORD_VARIABLE} environment variable.  Type /help once connected.
Exit status: 0 on success, 1 on any failure (refused connection, bad
credentials, certificate that does not verify, message not sent), 2 on a
usage error.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="messenger-client",
        description="Chat on a Messenger server from the terminal.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--server",
        default=os.environ.get(SERVER_VARIABLE, DEFAULT_SERVER),
        help=f"endpoint: tcp:HOST:PORT or tls:HOST:PORT (default {DEFAULT_SERVER}, "
        f"or ${SERVER_VARIABLE})",
    )
    parser.add_argument(
        "--ca",
        metavar="PATH",
        help="trust this CA certificate (a PEM file, or a directory of .pem files) "
        "instead of the system's, for a tls: server",
    )
    parser.add_argument("--user", metavar="NAME", help="log in as NAME (asked for otherwise)")
    parser.add_argument(
        "--password-file",
        metavar="PATH",
        help=f"read the password from the first line of PATH (else ${PASSWORD_VARIABLE}, "
        "else asked for)",
    )
    parser.add_argument(
        "--signup",
        action="store_true",
        help="create the account first (with --user; an existing account is just logged in)",
    )
    parser.add_argument("--name", metavar="DISPLAY", help="display name for --signup")
    parser.add_argument("--no-color", action="store_true", help="never use colours")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="for send: give up after this long (default 30)",
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=["send"],
        help="send TARGET TEXT: send one message and exit once the server has stored it",
    )
    parser.add_argument("target", nargs="?", help="for send: a user name or #room")
    parser.add_argument("text", nargs="*", help="for send: the message")
    return parser


def parse_args(argv: list[str] | None = None, environ=os.environ) -> ClientOptions:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.user is not None:
        try:
            args.user = wire.canonical_username(args.user)
        except ValueError:
            parser.error(f"--user {args.user!r}: not a valid user name")
    if args.signup and args.user is None:
        parser.error("--signup needs --user")
    if args.name is not None:
        try:
            args.name = wire.clean_display_name(args.name)
        except ValueError as e:
            parser.error(f"--name: {e}")
    if args.password_file is not None and not os.access(args.password_file, os.R_OK):
        parser.error(f"--password-file {args.password_file}: cannot read it")
    one_shot = None
    if args.action == "send":
        if args.user is None:
            parser.error("send needs --user")
        if args.target is None or not args.text:
            parser.error("usage: messenger-client --user NAME send TARGET TEXT")
        intent = commands.parse_input(f"/msg {args.target} {' '.join(args.text)}")
        if isinstance(intent, commands.UsageError):
            parser.error(intent.message)
        # "/msg TARGET TEXT" parses to a SendText or to a UsageError.
        assert isinstance(intent, commands.SendText)
        one_shot = intent
    elif args.target is not None:
        parser.error(f"unknown action {args.target!r}; the only action is: send")
    color = False if (args.no_color or "NO_COLOR" in environ) else None
    return ClientOptions(
        server=args.server,
        ca=args.ca,
        user=args.user,
        password_file=args.password_file,
        password_env=PASSWORD_VARIABLE,
        signup=args.signup,
        name=args.name,
        color=color,
        one_shot=one_shot,
        timeout=args.timeout,
    )


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    sys.exit(run(options))


if __name__ == "__main__":
    main()
