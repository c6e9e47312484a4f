"""The client program: terminal, endpoint, reconnecting service, reactor.

This is the only part that touches the real terminal and network.  It
builds a :class:`~messenger.client.session.ClientSession`, connects it with
a ``ClientService`` (which reconnects with exponential backoff), reads the
keyboard or a pipe with ``StandardIO``, and turns echo off while a password
is typed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import interfaces
from twisted.internet.endpoints import HostnameEndpoint, clientFromString, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.ssl import Certificate, optionsForClientTLS, trustRootFromCertificates
from twisted.internet.stdio import StandardIO
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from messenger.client import commands, render
from messenger.client.protocol import ServerConnectionFactory
from messenger.client.session import ClientSession, LoginSettings

DEFAULT_SERVER = "tcp:localhost:10000"

#: Reconnect delays: 1 s, 2 s, 4 s, ... up to 30 s (plus up to 1 s of jitter
#: so that a whole user base does not come back in the same instant).
RECONNECT_INITIAL = 1.0
RECONNECT_MAX = 30.0
RECONNECT_FACTOR = 2.0

#: Longest wait for stdout to drain at exit before stopping anyway.
FLUSH_TIMEOUT = 2.0


class UsageError(Exception):
    """The command line asks for something impossible."""


@dataclass
class ClientOptions:
    server: str = DEFAULT_SERVER
    ca: str | None = None
    user: str | None = None
    password_file: str | None = None
    password_env: str | None = None  # the name of the variable to read
    signup: bool = False
    name: str | None = None
    color: bool | None = None  # None: when stdout is a terminal
    one_shot: commands.SendText | None = None
    timeout: float = 30.0


# --------------------------------------------------------------------------
# Endpoints


def _split_description(description: str) -> list[str]:
    """Split an endpoint description on ``:``, honouring ``\\:`` escapes."""
    parts, current, escaped = [], [], False
    for char in description:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def load_certificates(path: str) -> list[Certificate]:
    """Every PEM certificate in a file (a CA bundle may hold several)."""
    with open(path, "rb") as f:
        data = f.read()
    marker = b"-----BEGIN CERTIFICATE-----"
    blocks = [marker + chunk for chunk in data.split(marker)[1:]]
    if not blocks:
        raise UsageError(f"{path} holds no PEM certificate")
    return [Certificate.loadPEM(block) for block in blocks]


def make_endpoint(reactor, description: str, ca: str | None = None) -> IStreamClientEndpoint:
    """The endpoint for ``--server`` (and ``--ca``).

    ``tcp:HOST:PORT`` and ``tls:HOST:PORT`` go to ``clientFromString``; a
    ``tls:`` endpoint checks the certificate against the system's trusted
    authorities and the host name with service-identity.  ``--ca`` replaces
    the system's authorities: a directory of ``.pem`` files is passed as
    ``trustRoots=``; a single file (which ``trustRoots=`` cannot take) is
    loaded here, with the same host-name check.  There is no option to skip
    verification.
    """
    kind = description.split(":", 1)[0].lower()
    if ca is None:
        return clientFromString(reactor, description)
    if kind != "tls":
        raise UsageError("--ca only applies to a tls: server")
    if not os.path.exists(ca):
        raise UsageError(f"--ca {ca}: no such file or directory")
    if os.path.isdir(ca):
        return clientFromString(reactor, f"{description}:trustRoots={_escape(ca)}")
    args: list[str] = []
    kwargs = {}
    for part in _split_description(description)[1:]:
        key, eq, value = part.partition("=")
        if eq:
            kwargs[key] = value
        else:
            args.append(part)
    names = ["host", "port", "timeout"]
    for name, value in zip(names, args):
        kwargs.setdefault(name, value)
    unknown = set(kwargs) - set(names)
    if unknown or "host" not in kwargs or "port" not in kwargs:
        raise UsageError("with --ca FILE the server must be tls:HOST:PORT[:timeout=SECONDS]")
    host = kwargs["host"]
    trust = trustRootFromCertificates(load_certificates(ca))
    return wrapClientTLS(
        optionsForClientTLS(host, trustRoot=trust),
        HostnameEndpoint(
            reactor, host.encode("idna"), int(kwargs["port"]), int(kwargs.get("timeout", "30"))
        ),
    )


def announcing(policy: Callable[[int], float], announce: Callable[[float], None]):
    """A retry policy that also says how long it will wait."""

    def retry_delay(attempt: int) -> float:
        delay = policy(attempt)
        announce(delay)
        return delay

    return retry_delay


# --------------------------------------------------------------------------
# The terminal


def password_reader(options: ClientOptions, environ=os.environ) -> Callable[[], str] | None:
    """A function that reads the password afresh each time, or None (ask).

    The file is read each time it is needed, so the password is not kept
    in memory between logins.
    """
    if options.password_file is not None:
        path = options.password_file

        def from_file() -> str:
            with open(path, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")

        return from_file
    if options.password_env is not None and options.password_env in environ:
        name = options.password_env
        return lambda: environ[name]
    return None


class _Echo:
    """Turns the terminal's echo off and on again, if stdin is a terminal."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list[Any] | None = None
        self.termios: ModuleType | None = None
        try:
            import termios

            self.termios = termios
            self.saved = termios.tcgetattr(fd)
        except (ImportError, OSError, Exception):
            self.termios = None

    def set(self, on: bool) -> None:
        if self.termios is None or self.saved is None:
            return
        attrs = self.termios.tcgetattr(self.fd)
        if on:
            attrs[3] |= self.termios.ECHO
        else:
            attrs[3] &= ~self.termios.ECHO
        self.termios.tcsetattr(self.fd, self.termios.TCSANOW, attrs)

    def restore(self) -> None:
        if self.termios is not None and self.saved is not None:
            try:
                self.termios.tcsetattr(self.fd, self.termios.TCSANOW, self.saved)
            except Exception:
                pass


@implementer(interfaces.IHalfCloseableProtocol)
class KeyboardInput(LineReceiver):
    """Lines from stdin to the session; its transport also writes stdout.

    Half-closeable: the end of stdin (Ctrl-D, end of a pipe) must not close
    stdout, since the client still has to say what became of the input.
    """

    delimiter = b"\n"
    MAX_LENGTH = 1024 * 1024

    def __init__(self, session: ClientSession, on_stdout_closed: Callable[[], None]) -> None:
        self.session = session
        self.on_stdout_closed = on_stdout_closed

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        self.session.line_typed(line.decode("utf-8", errors="replace"))

    def lineLengthExceeded(self, line: bytes) -> None:
        self.session.error("that line is too long; it was dropped")

    def readConnectionLost(self) -> None:
        # A last line without a newline still counts.
        rest, self._buffer = self._buffer, b""
        if rest:
            self.lineReceived(rest)
        self.session.input_closed()

    def writeConnectionLost(self) -> None:
        self.on_stdout_closed()

    def connectionLost(self, reason=None) -> None:
        self.on_stdout_closed()


class Console:
    """The session's :class:`~messenger.client.session.Terminal`: stdout and prompts."""

    def __init__(self, reactor, interactive: bool, echo: _Echo | None = None) -> None:
        self.reactor = reactor
        self.interactive = interactive
        self.echo = echo
        self.stdio: StandardIO | None = None
        self.service: ClientService | None = None
        self.status: int | None = None
        self._stopping = False

    def write(self, text: str) -> None:
        if self.stdio is not None:
            self.stdio.write(text.encode("utf-8", errors="replace"))

    def show(self, text: str) -> None:
        self.write(text + "\n")

    def ask(self, question: str, secret: bool) -> None:
        if self.interactive:
            self.write(question)
            if secret and self.echo is not None:
                self.echo.set(False)

    def answered(self, secret: bool) -> None:
        if self.interactive and secret:
            if self.echo is not None:
                self.echo.set(True)
            self.write("\n")  # the Enter was not echoed

    def exit(self, status: int) -> None:
        if self.status is None:
            self.status = status
        if self.echo is not None:
            self.echo.restore()
        # exit() may be called from inside ClientService's own callbacks
        # (a failed first connection), where stopping it again is not
        # allowed; the next turn of the reactor is outside them.
        self.reactor.callLater(0, self._shut_down)

    def _shut_down(self) -> None:
        if self.service is not None and self.service.running:
            self.service.stopService()
        # Let stdout drain, then stop; never wait for ever.
        self.reactor.callLater(FLUSH_TIMEOUT, self.stop_reactor)
        if self.stdio is not None:
            self.stdio.loseConnection()
        else:
            self.stop_reactor()

    def stdout_closed(self) -> None:
        if self.status is None:
            # stdout went away (the reader closed the pipe): nobody to talk to.
            self.status = 1
            if self.service is not None and self.service.running:
                self.service.stopService()
        self.stop_reactor()

    def stop_reactor(self) -> None:
        if not self._stopping:
            self._stopping = True
            if self.reactor.running:
                self.reactor.stop()


def run(options: ClientOptions, reactor=None, stdin_fd: int = 0, stdout_fd: int = 1) -> int:
    """Run the client until it exits; returns the exit status."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor

    interactive = os.isatty(stdin_fd)
    # StandardIO makes stdin and stdout non-blocking; on a terminal that
    # setting is shared with the shell, so put it back at the end.
    saved_flags = _file_flags(stdin_fd, stdout_fd)
    color = options.color if options.color is not None else os.isatty(stdout_fd)
    echo = _Echo(stdin_fd) if interactive else None
    console = Console(reactor, interactive, echo)
    style = render.Style(color=color)

    try:
        endpoint = make_endpoint(reactor, options.server, options.ca)
    except UsageError as e:
        sys.stderr.write(f"messenger-client: {e}\n")
        return 2
    except Exception as e:  # clientFromString raises many kinds
        sys.stderr.write(
            f"messenger-client: bad --server {options.server!r} ({e}); "
            "expected tcp:HOST:PORT or tls:HOST:PORT\n"
        )
        return 2

    session = ClientSession(
        console,
        reactor,
        server=options.server,
        login=LoginSettings(
            username=options.user,
            password=password_reader(options),
            signup=options.signup,
            display_name=options.name,
        ),
        style=style,
        one_shot=options.one_shot,
    )
    service = ClientService(
        endpoint,
        ServerConnectionFactory(session, reactor),
        retryPolicy=announcing(
            backoffPolicy(RECONNECT_INITIAL, RECONNECT_MAX, RECONNECT_FACTOR), session.reconnecting
        ),
        clock=reactor,
    )
    console.service = service
    # mypy reads the Windows StandardIO, which has no stdin/stdout arguments.
    console.stdio = StandardIO(  # type: ignore[call-arg]
        KeyboardInput(session, console.stdout_closed),
        stdin=stdin_fd,
        stdout=stdout_fd,
        reactor=reactor,
    )

    if options.one_shot is not None and options.timeout > 0:
        reactor.callLater(options.timeout, session.fatal, f"gave up after {options.timeout:.0f} s")

    service.startService()
    service.whenConnected(failAfterFailures=1).addErrback(session.connect_failed)
    try:
        reactor.run()
    finally:
        if echo is not None:
            echo.restore()
        _restore_file_flags(saved_flags)
    return console.status if console.status is not None else 1


def _file_flags(*fds: int) -> dict:
    import fcntl

    flags = {}
    for fd in fds:
        try:
            flags[fd] = fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            pass
    return flags


def _restore_file_flags(flags: dict) -> None:
    import fcntl

    for fd, value in flags.items():
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, value)
        except OSError:
            pass
