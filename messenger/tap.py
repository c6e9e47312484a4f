"""``twistd messenger``: options and the service tree.

Options come from the command line and, with ``--config FILE``, from the
``[messenger]`` section of an INI file (keys are the long option names);
the command line wins, then the file, then the defaults.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.python import usage

from messenger.config import ServerConfig
from messenger.options import (
    DEFAULT_DB,
    ConfigFileError,
    non_negative_int,
    positive_float,
    positive_int,
    read_config_file,
)

if TYPE_CHECKING:
    from messenger.service import MessengerService

DEFAULT_LISTEN = "tcp:10000"
#: A reconnect storm overflows Twisted's default listen backlog of 50.
LISTEN_BACKLOG = 1024


# option name -> (ServerConfig field, parser, help)
_SETTINGS: dict[str, tuple] = {
    "name": ("name", str, "server name sent in HELLO"),
    "max-clients": ("max_clients", positive_int, "concurrent connections"),
    "idle-timeout": ("idle_timeout", positive_float, "seconds without a line before BYE|408"),
    "retry-initial": (
        "retry_initial",
        positive_float,
        "seconds before an unacknowledged R is sent again",
    ),
    "retry-max": ("retry_max", positive_float, "cap of the doubling retry interval, seconds"),
    "window": ("window", positive_int, "unacknowledged R lines per connection"),
    "rate": ("rate", positive_float, "commands per second per connection, sustained"),
    "burst": ("burst", positive_int, "commands per connection at once"),
    "min-password-length": ("min_password_length", positive_int, "at sign-up and PASSWD"),
    "max-line": ("max_line", positive_int, "bytes per line, without its terminator"),
    "max-pending": ("max_pending", positive_int, "unacknowledged direct messages per recipient"),
    "max-outbuf": (
        "max_outbuf",
        positive_int,
        "bytes of unread pushed events before a slow reader is closed",
    ),
    "presence-room-limit": (
        "presence_room_limit",
        non_negative_int,
        "ON/OFF only through rooms of at most this many members; 0: no presence",
    ),
    "token-ttl": ("token_ttl", positive_float, "seconds a session token stays valid"),
    "argon2-time-cost": ("argon2_time_cost", positive_int, "Argon2id iterations"),
    "argon2-memory-cost": ("argon2_memory_cost", positive_int, "Argon2id memory, KiB"),
}

_DEFAULTS = ServerConfig()
_OTHER = ("db", "metrics", "log-format", "bus", "node-id")


def with_backlog(description: str) -> str:
    """Give a tcp: or ssl: endpoint a large listen backlog unless it has one."""
    kind = description.split(":", 1)[0].lower()
    if kind in ("tcp", "ssl", "tcp6") and "backlog=" not in description:
        return f"{description}:backlog={LISTEN_BACKLOG}"
    return description


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run a Messenger server. Every option may also be set in the [messenger] "
        "section of an INI file given with --config (the command line wins)."
    )
    optParameters = [
        ["config", "c", None, "read options from this INI file"],
        ["db", None, None, f"SQLite database file, or postgresql:// URI [default: {DEFAULT_DB}]"],
        [
            "metrics",
            None,
            None,
            "serve Prometheus metrics on this endpoint, e.g. tcp:9100:interface=127.0.0.1",
        ],
        ["log-format", None, None, "text or json [default: text]"],
        [
            "bus",
            None,
            None,
            "redis://host:port/N: share the work with the other nodes on this bus "
            "[default: none, the node works alone]",
        ],
        ["node-id", None, None, "this node's name in logs and metrics [default: host:pid]"],
    ] + [
        [option, None, None, f"{help_text} [default: {getattr(_DEFAULTS, field)}]"]
        for option, (field, _, help_text) in _SETTINGS.items()
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["web"] = []
        self["web-origin"] = []
        self._failed = False

    def opt_listen(self, description: str) -> None:
        """Listen on this endpoint (repeatable), e.g. tcp:10000 or
        ssl:10443:privateKey=key.pem:certKey=cert.pem [default: tcp:10000]"""
        self["listen"].append(description)

    def opt_web(self, description: str) -> None:
        """Serve the web client and its WebSocket at /ws (repeatable), e.g. tcp:8080 or
        ssl:8443:privateKey=key.pem:certKey=cert.pem"""
        self["web"].append(description)

    def opt_web_origin(self, origin: str) -> None:
        """Also accept WebSockets from pages of this origin (repeatable), e.g.
        https://chat.example.org behind a reverse proxy"""
        self["web-origin"].append(origin)

    def getUsage(self, width: int | None = None) -> str:
        if self._failed:
            # twistd prints the usage before the error: keep the error in view.
            return "Run 'twistd messenger --help' for the options."
        return super().getUsage(width)

    def postOptions(self) -> None:
        try:
            self._merge_and_check()
        except usage.UsageError:
            self._failed = True
            raise

    def _merge_and_check(self) -> None:
        file_values = self._read_config_file(self["config"]) if self["config"] else {}
        if not self["listen"]:
            self["listen"] = file_values.get("listen", "").split() or [DEFAULT_LISTEN]
        for key in ("web", "web-origin"):
            if not self[key]:
                self[key] = file_values.get(key, "").split()
        for key in _OTHER + tuple(_SETTINGS):
            if self[key] is None and key in file_values:
                self[key] = file_values[key]
        self["db"] = self["db"] or DEFAULT_DB
        self["log-format"] = (self["log-format"] or "text").lower()
        if self["log-format"] not in ("text", "json"):
            raise usage.UsageError("--log-format must be text or json")
        if (
            self["log-format"] == "json"
            and self.parent is not None
            and not self.parent.get("logger")
        ):
            from messenger import logs

            # twistd starts its log observer from its own options, before
            # makeService runs, and takes the observer factory by name:
            # choosing it here makes JSON the only output.
            logs.use_logfile(self.parent.get("logfile"))
            self.parent["logger"] = "messenger.logs.json_logger"
        settings = {}
        for option, (field, parse, _) in _SETTINGS.items():
            if self[option] is None:
                continue
            try:
                settings[field] = parse(self[option])
            except ValueError:
                raise usage.UsageError(
                    f"--{option}: {self[option]!r} is not a valid value"
                ) from None
        self["server-config"] = ServerConfig(**settings)
        self._check_endpoints()
        self._check_bus()

    def _check_bus(self) -> None:
        if self["bus"]:
            from messenger.bus.redis import BusAddressError, parse_redis_url

            try:
                parse_redis_url(self["bus"])
            except BusAddressError as e:
                raise usage.UsageError(f"--bus: {e}") from None

    def _read_config_file(self, path: str) -> dict[str, str]:
        try:
            values = read_config_file(path)
        except ConfigFileError as e:
            raise usage.UsageError(str(e)) from None
        known = {"listen", "web", "web-origin"} | set(_OTHER) | set(_SETTINGS)
        unknown = sorted(set(values) - known)
        if unknown:
            raise usage.UsageError(f"--config: unknown option {unknown[0]!r} in {path}")
        return values

    def _check_endpoints(self) -> None:
        from twisted.internet import reactor

        for description in (
            self["listen"] + self["web"] + ([self["metrics"]] if self["metrics"] else [])
        ):
            try:
                serverFromString(reactor, with_backlog(description))
            except Exception as e:  # the endpoint parser raises many kinds
                raise usage.UsageError(f"bad endpoint {description!r}: {e}") from None


def makeService(options: Options, reactor=None) -> IService:
    if reactor is None:
        from twisted.internet import reactor
    from messenger.passwords import PasswordHasher
    from messenger.protocol import MessengerFactory
    from messenger.service import MessengerService
    from messenger.store import DatabaseError, open_store, prepare_database

    config: ServerConfig = options["server-config"]
    try:
        prepare_database(options["db"])
    except DatabaseError as e:
        raise SystemExit(f"twistd messenger: {e}") from None
    store = open_store(options["db"], reactor)
    hasher = PasswordHasher(reactor, config.argon2_time_cost, config.argon2_memory_cost)
    core = MessengerService(
        store,
        config,
        reactor,
        hasher,
        bus=_bus(options, reactor),
        node_id=options["node-id"],
        reactor=reactor,
    )
    metrics = None
    if options["metrics"]:
        from messenger.metrics import Metrics, metrics_site

        metrics = core.metrics = Metrics(pending=core.waiting_messages, node_id=core.node_id)

    # docs/protocol.md, "Limits": on SIGTERM, exit with status 0.  twistd's own handler
    # stops the reactor and then re-raises the signal (status -15), so put
    # ours in place once the reactor has installed its handlers.
    reactor.callWhenRunning(_stop_cleanly_on_sigterm, reactor, core)

    top = MultiService()
    # The core first: MultiService stops its children last to first, so the
    # listeners stop accepting before the core says goodbye and flushes.
    core.setServiceParent(top)
    # coalesce_writes: each connection's lines of one reactor turn go to the
    # transport in one write.  A group commit's outcome gives each member of
    # a room many lines in one turn, and a transport write costs about a
    # microsecond of Twisted's bookkeeping (the socket send is one per turn
    # either way).  Measured with bench W2 (6,000 room lines to 99 members,
    # two runs each): 1.35-1.41 us of server CPU per line without, 1.01-1.04
    # with; W1 (60,000 direct messages): 47.8-48.7 us per message without,
    # 45.7-47.0 with.  (An earlier measurement, before the fast paths of the
    # hottest lines, had found W1 slower with it.)
    factory = MessengerFactory(core, config, reactor, coalesce_writes=True)
    for description in options["listen"]:
        _listener(reactor, description, factory).setServiceParent(top)
    if options["web"]:
        from messenger.web.site import make_site

        site = make_site(factory, options["web-origin"])
        for description in options["web"]:
            _listener(reactor, description, site).setServiceParent(top)
    if metrics is not None:
        _listener(reactor, options["metrics"], metrics_site(metrics)).setServiceParent(top)
    return top


def _bus(options: Options, reactor):
    """The bus named by --bus, or the in-process one: the node works alone."""
    from twisted.logger import Logger

    from messenger.bus.local import AloneBus

    if options["bus"]:
        from messenger.bus.redis import RedisBus

        return RedisBus(reactor, options["bus"])
    if str(options["db"]).startswith(("postgresql://", "postgres://")):
        Logger().warn(
            "no --bus: this node works alone; other nodes on the same database need --bus"
        )
    return AloneBus()


class _Listener(StreamServerEndpointService):
    """A listening endpoint that fails the start with one clear line.

    As strports does for twistd, a port that cannot be bound stops the
    start instead of leaving a server that listens on nothing.
    """

    _raiseSynchronously = True

    def __init__(self, endpoint, factory, description: str) -> None:
        super().__init__(endpoint, factory)
        self.description = description

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            reason = e.socketError.strerror if e.socketError is not None else str(e)
            raise SystemExit(
                f"twistd messenger: cannot listen on {self.description}: {reason}"
            ) from None


def _listener(reactor, description: str, factory) -> _Listener:
    endpoint = serverFromString(reactor, with_backlog(description))
    return _Listener(endpoint, factory, description)


def _stop_cleanly_on_sigterm(reactor, core: MessengerService) -> None:
    def stop(signum, frame) -> None:
        core.shutdown_requested()
        reactor.callFromThread(_stop_once, reactor)

    signal.signal(signal.SIGTERM, stop)


def _stop_once(reactor) -> None:
    if reactor.running:
        reactor.stop()
