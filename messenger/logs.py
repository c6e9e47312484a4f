"""Structured logs: ``--log-format json``.

One JSON object per log event and per line (twisted.logger's JSON
serialisation, without the RFC 7464 record separator, so that line-oriented
shippers such as Vector, Fluent Bit or ``jq`` read it as JSON Lines).  Each
object carries the event's fields: ``log_time``, ``log_level``,
``log_namespace``, ``log_format`` with the values it names, and a
``log_failure`` for errors.

Passwords, session tokens and message bodies are never logged by the
service.  As a second line of defence, an event field whose name says it
holds one of them (:data:`SECRET_FIELDS`) is written as ``"<redacted>"``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import IO

from twisted.logger import FileLogObserver, ILogObserver, eventAsJSON
from zope.interface import implementer

#: Event fields that are never written, whatever logs them.
SECRET_FIELDS = frozenset(
    {
        "password",
        "old_password",
        "new_password",
        "old",
        "new",
        "password_hash",
        "token",
        "token_hash",
        "body",
        "text",
    }
)
REDACTED = "<redacted>"


def json_observer(stream: IO[str], secret_fields: Iterable[str] = SECRET_FIELDS) -> ILogObserver:
    """An observer writing each event as one line of JSON to ``stream``."""
    return _Redacting(
        FileLogObserver(stream, lambda event: eventAsJSON(event) + "\n"),
        frozenset(secret_fields),
    )


#: Where json_logger writes: twistd's --logfile, or None for standard output.
_logfile: str | None = None


def use_logfile(logfile: str | None) -> None:
    """Have :func:`json_logger` write to twistd's ``--logfile``."""
    global _logfile
    _logfile = logfile


def json_logger() -> ILogObserver:
    """JSON lines, for ``twistd --logger messenger.logs.json_logger`` (which
    ``--log-format json`` sets): to the file given to :func:`use_logfile`,
    else to standard output."""
    return json_logger_factory(_logfile)()


def json_logger_factory(logfile: str | None = None) -> Callable[[], ILogObserver]:
    """A log observer factory as twistd's ``--logger`` takes, writing JSON
    lines to ``logfile`` (twistd's ``--logfile``: rotated by size) or to
    standard output for None, ``""`` or ``"-"``.

    Setting it as twistd's ``logger`` option makes it the only primary log
    observer, instead of twistd's text one: the output is JSON only.
    """

    def factory() -> ILogObserver:
        if not logfile or logfile == "-":
            return json_observer(sys.stdout)
        from twisted.python.logfile import LogFile

        return json_observer(LogFile.fromFullPath(logfile))

    return factory


@implementer(ILogObserver)
class _Redacting:
    def __init__(self, observer: ILogObserver, secret_fields: frozenset) -> None:
        self._observer = observer
        self._secret_fields = secret_fields

    def __call__(self, event: dict) -> None:
        if not self._secret_fields.isdisjoint(event):
            # log_flattened (made by whichever observer saw the event first)
            # holds the formatted values: it is made again from the copy.
            event = {
                key: (REDACTED if key in self._secret_fields else value)
                for key, value in event.items()
                if key != "log_flattened"
            }
        self._observer(event)
