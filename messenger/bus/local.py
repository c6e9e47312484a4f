"""In-process buses: a node alone, or several nodes of one test process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from messenger.bus.interface import IBus, IBusListener


@implementer(IBus)
class AloneBus:
    """The default: one node, nobody to tell.  Routing stays in-process."""

    shared = False

    def start(self, listener: IBusListener) -> None:
        pass

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def publish(self, message: dict[str, Any]) -> None:
        pass


class InProcessHub:
    """Several nodes' buses in one process, delivered on the clock (as a
    network would: never inside the publisher's call).

    ``lose`` decides, per (receiving node, message), whether a message is
    dropped: tests use it to prove the database-is-truth rule.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.buses: list[HubBus] = []
        self.lose: Callable[[str, dict[str, Any]], bool] = lambda node, message: False
        self.delay = 0.0

    def bus(self, name: str) -> HubBus:
        bus = HubBus(self, name)
        self.buses.append(bus)
        return bus

    def deliver(self, sender: HubBus, message: dict[str, Any]) -> None:
        for bus in self.buses:
            if bus is sender or bus.listener is None or not bus.up:
                continue
            if self.lose(bus.name, message):
                continue
            self.clock.callLater(self.delay, bus.receive, message)


@implementer(IBus)
class HubBus:
    shared = True

    def __init__(self, hub: InProcessHub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.listener: IBusListener | None = None
        self.up = True

    def start(self, listener: IBusListener) -> None:
        self.listener = listener
        self.hub.clock.callLater(0, listener.bus_connected)

    def stop(self) -> Deferred[None]:
        self.listener = None
        return succeed(None)

    def publish(self, message: dict[str, Any]) -> None:
        if self.up:
            self.hub.deliver(self, message)

    def receive(self, message: dict[str, Any]) -> None:
        if self.listener is not None and self.up:
            self.listener.bus_message(message)

    def go_down(self) -> None:
        """The connection to the bus is lost (for failure tests)."""
        self.up = False
        if self.listener is not None:
            self.listener.bus_disconnected()

    def come_back(self) -> None:
        self.up = True
        if self.listener is not None:
            self.listener.bus_connected()
