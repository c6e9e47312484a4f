"""The bus over Redis pub/sub, with txredisapi's protocol.

Two connections, as Redis requires: one subscribed to the deployment's
channel, one to publish on it.  Both are kept up by ``ClientService`` on
the injected reactor, reconnecting with a capped backoff.  Pub/sub loses
what is published while a subscriber is away, which is allowed: the
listener is told ``bus_connected`` after every (re)subscription and
re-reads the database.

Pub/sub rather than streams: nothing is replayed from Redis (the database
holds every fact), so Redis keeps no state and needs no trimming.  Channel
names do not depend on the database number in Redis, so the number is
part of the channel name: ``redis://h:p/1`` and ``/2`` are two deployments.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from txredisapi import RedisProtocol, SubscriberProtocol
from zope.interface import implementer

from messenger.bus.interface import IBus, IBusListener


class BusAddressError(ValueError):
    """A ``--bus`` value that is not ``redis://host:port/N``."""


def parse_redis_url(url: str) -> tuple[str, int, int]:
    """``redis://host:port/N`` as (host, port, database number)."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise BusAddressError(f"{url!r} is not redis://host:port/N")
    try:
        port = parts.port or 6379
        path = parts.path.lstrip("/")
        db = int(path) if path else 0
    except ValueError:
        raise BusAddressError(f"{url!r} is not redis://host:port/N") from None
    return parts.hostname, port, db


class _Subscriber(SubscriberProtocol):
    bus: RedisBus

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.bus._received(message)

    def connectionLost(self, why: Any) -> None:
        super().connectionLost(why)
        self.bus._subscriber_lost()


class _Factory(Factory):
    """Builds txredisapi protocols outside txredisapi's own connection
    handling (which would use the global reactor)."""

    def __init__(self, protocol_class: type, bus: RedisBus) -> None:
        self.protocol_class = protocol_class
        self.bus = bus
        # Read by txredisapi's protocol on AUTH/SELECT failures.
        self.isLazy = False

    def buildProtocol(self, addr: Any) -> Any:
        p = self.protocol_class(replyTimeout=None, dbid=None)
        p.factory = self
        p.bus = self.bus
        return p

    def stopTrying(self) -> None:
        pass

    def connectionError(self, message: str) -> None:
        self.bus.log.error("redis: {message}", message=message)


@implementer(IBus)
class RedisBus:
    log = Logger()
    shared = True

    def __init__(self, reactor: Any, url: str) -> None:
        self.reactor = reactor
        self.url = url
        host, port, db = parse_redis_url(url)
        self.channel = f"messenger/{db}"
        self._listener: IBusListener | None = None
        self._publisher: RedisProtocol | None = None
        self._subscribed = False
        policy = backoffPolicy(initialDelay=0.1, maxDelay=2.0, factor=2.0)
        endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=5)
        self._sub_service = ClientService(
            endpoint,
            _Factory(_Subscriber, self),
            retryPolicy=policy,
            clock=reactor,
            prepareConnection=self._subscribe,
        )
        self._pub_service = ClientService(
            endpoint,
            _Factory(RedisProtocol, self),
            retryPolicy=policy,
            clock=reactor,
            prepareConnection=self._publisher_ready,
        )

    def start(self, listener: IBusListener) -> None:
        self._listener = listener
        self._pub_service.startService()
        self._sub_service.startService()

    def stop(self) -> Deferred[Any]:
        self._listener = None
        return DeferredList(
            [self._sub_service.stopService(), self._pub_service.stopService()],
            consumeErrors=True,
        )

    def publish(self, message: dict[str, Any]) -> None:
        publisher = self._publisher
        if publisher is None or not publisher.connected:
            return  # lost: the others notice the gap in our sequence
        d = publisher.publish(self.channel, json.dumps(message, separators=(",", ":")))
        d.addErrback(lambda f: None)  # the connection went: same as lost

    # -- connections -------------------------------------------------------

    def _publisher_ready(self, protocol: RedisProtocol) -> Deferred[Any]:
        d: Deferred[Any] = protocol.whenConnected()

        def ready(_: object) -> None:
            self._publisher = protocol
            protocol.whenDisconnected().addCallback(self._publisher_lost)

        return d.addCallback(ready)

    def _publisher_lost(self, protocol: object) -> None:
        if self._publisher is protocol:
            self._publisher = None

    def _subscribe(self, protocol: Any) -> Deferred[Any]:
        d: Deferred[Any] = protocol.whenConnected()
        d.addCallback(lambda _: protocol.subscribe(self.channel))

        def subscribed(_: object) -> None:
            self._subscribed = True
            if self._listener is not None:
                self._listener.bus_connected()

        return d.addCallback(subscribed)

    def _subscriber_lost(self) -> None:
        was = self._subscribed
        self._subscribed = False
        if was and self._listener is not None:
            self._listener.bus_disconnected()

    def _received(self, raw: Any) -> None:
        if self._listener is None:
            return
        try:
            message = json.loads(raw)
        except (TypeError, ValueError):
            self.log.warn("ignoring a bus message that is not JSON")
            return
        try:
            self._listener.bus_message(message)
        except Exception:
            self.log.failure("handling a bus message")
