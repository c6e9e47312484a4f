"""Settings the server (``twistd messenger``) and ``messenger-admin`` share.

Both read the same INI file (``--config``, section ``[messenger]``, keys
are the long option names), both open the same database by default, and
both enforce the same minimum password length, so each of these is defined
here once, with the number parsers both use for option values.
"""

from __future__ import annotations

import argparse
import configparser
import math
from collections.abc import Callable
from typing import TypeVar

from messenger.config import ServerConfig

DEFAULT_DB = "messenger.sqlite3"
DEFAULT_MIN_PASSWORD_LENGTH = ServerConfig.min_password_length
#: The INI file's section for Messenger (other sections are ignored).
CONFIG_SECTION = "messenger"


class ConfigFileError(Exception):
    """The INI file cannot be used; the message says why, for the user."""


def read_config_file(path: str) -> dict[str, str]:
    """The ``[messenger]`` section of the INI file at ``path``, as strings.

    Raises ConfigFileError if the file cannot be read, is not INI, or has
    no such section.
    """
    parser = configparser.ConfigParser()
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as e:
        raise ConfigFileError(f"--config: cannot read {path}: {e.strerror}") from None
    except configparser.Error as e:
        raise ConfigFileError(f"--config: {path} is not a valid INI file: {e}") from None
    if not parser.has_section(CONFIG_SECTION):
        raise ConfigFileError(f"--config: {path} has no [{CONFIG_SECTION}] section")
    return dict(parser.items(CONFIG_SECTION))


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"{text!r} must be {minimum} or more")
    return value


def positive_int(text: str) -> int:
    """A whole number of at least 1; ValueError says what is wrong."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """A whole number of at least 0 (0 often turns a feature off)."""
    return _whole_number(text, 0)


def positive_float(text: str) -> float:
    """A finite number above 0 (seconds, a rate); ValueError says what is wrong."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{text!r} must be a number above 0")
    return value


_T = TypeVar("_T")


def argparse_type(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """``parse`` as an argparse ``type=``, so its message reaches the user
    (argparse prints only "invalid value" for a plain ValueError)."""

    def checked(text: str) -> _T:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    checked.__name__ = parse.__name__
    return checked
