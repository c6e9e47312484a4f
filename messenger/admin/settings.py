"""messenger-admin's shared options and the settings they resolve to.

The options every command takes (database, busy timeout, Argon2 costs,
minimum password length) may come from the command line, before or after
the command, or from the server's INI file (``--config``); the command line
wins, then the file, then the defaults, which are the server's.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import argon2

from messenger.admin import AdminError
from messenger.admin.console import Console
from messenger.admin.database import DEFAULT_BUSY_TIMEOUT, Database
from messenger.options import (
    DEFAULT_DB,
    DEFAULT_MIN_PASSWORD_LENGTH,
    ConfigFileError,
    argparse_type,
    positive_float,
    positive_int,
    read_config_file,
)
from messenger.passwords import DEFAULT_MEMORY_COST, DEFAULT_TIME_COST, make_hasher

#: Options that may come from the server's INI file (--config), with their
#: defaults; the command line wins, then the file, then these.
_SHARED_DEFAULTS: dict[str, str | int] = {
    "db": DEFAULT_DB,
    "argon2-time-cost": DEFAULT_TIME_COST,
    "argon2-memory-cost": DEFAULT_MEMORY_COST,
    "min-password-length": DEFAULT_MIN_PASSWORD_LENGTH,
}


_positive_float = argparse_type(positive_float)
_positive_int = argparse_type(positive_int)


def common_options(defaults: bool) -> argparse.ArgumentParser:
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


@dataclass(frozen=True)
class Settings:
    """The shared options, resolved."""

    db: str
    busy_timeout: float
    argon2_time_cost: int
    argon2_memory_cost: int
    min_password_length: int


def _settings(args: argparse.Namespace) -> Settings:
    """The shared options: command line, then --config, then defaults."""
    file_values: dict[str, str] = {}
    if args.config:
        file_values = _read_config(args.config)

    def resolved(key: str) -> str | int:
        given: str | int | None = getattr(args, key.replace("-", "_"), None)
        if given is not None:
            return given
        if key not in file_values:
            return _SHARED_DEFAULTS[key]
        if key == "db":
            return file_values[key]
        try:
            return positive_int(file_values[key])
        except ValueError as e:
            raise AdminError(f"{args.config}: {key}: {e}") from None

    return Settings(
        db=str(resolved("db")),
        busy_timeout=(args.busy_timeout if args.busy_timeout is not None else DEFAULT_BUSY_TIMEOUT),
        argon2_time_cost=int(resolved("argon2-time-cost")),
        argon2_memory_cost=int(resolved("argon2-memory-cost")),
        min_password_length=int(resolved("min-password-length")),
    )


def _read_config(path: str) -> dict[str, str]:
    try:
        return read_config_file(path)
    except ConfigFileError as e:
        raise AdminError(str(e)) from None


class Context:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.settings = _settings(args)

    def database(self, create: bool = False) -> Database:
        return Database(self.settings.db, self.settings.busy_timeout, create=create)

    def hasher(self) -> argon2.PasswordHasher:
        return make_hasher(self.settings.argon2_time_cost, self.settings.argon2_memory_cost)
