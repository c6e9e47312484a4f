"""What one node knows of the others: who they are, whether it missed
something they published, whether they are alive, and who is online there.

Every message a node publishes carries its name (``n``), an epoch chosen at
start (``e``: a restarted node is a new one) and a sequence number (``s``)
one higher than its previous message.  A receiver that sees a number out of
turn has missed something and re-reads the database (``resync``).  Nodes
publish a heartbeat every ``heartbeat`` seconds, so a loss is noticed within
one heartbeat even when nothing else is said, and a node not heard from for
``expiry`` seconds is taken for dead: its users go offline.

The model is Synapse's replication streams (a position per writer, and a
catch-up from the database when a position is skipped), much reduced: the
bus only wakes nodes, the database holds every fact.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Protocol

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from messenger.bus.interface import IBus, IBusListener

#: Seconds between heartbeats, and of silence before a node is dead.  A
#: dead node's users are offline for the others within EXPIRY + 1 s, which
#: PROTOCOL.md wants under 15 s: three heartbeats missed leave room for a
#: loaded machine's lag (12 s left too little: 12.9 s measured).
HEARTBEAT = 3.0
EXPIRY = 9.0
#: While the bus is away, how often a node re-reads what its users are owed.
POLL_WITHOUT_BUS = 5.0


class PeerEvents(Protocol):
    """What the node does with what it hears (the service implements it)."""

    def resync(self, memberships: bool = True) -> None:
        """Something may have been missed: re-read the database (without
        the memberships, which are big, for the poll while the bus is away)."""

    def peer_message(self, node: str, message: dict[str, Any]) -> None:
        """A message from ``node``, in its order."""

    def peer_gone(self, node: str) -> None:
        """``node`` stopped, died or restarted: its users are offline."""

    def snapshot(self) -> dict[str, Any]:
        """This node's state for a newcomer (published as a ``snap``)."""


class _Peer:
    __slots__ = ("epoch", "seq", "heard")

    def __init__(self, epoch: str, seq: int, heard: float) -> None:
        self.epoch = epoch
        self.seq = seq
        self.heard = heard


@implementer(IBusListener)
class Peers:
    log = Logger()

    def __init__(
        self,
        bus: IBus,
        node_id: str,
        clock: IReactorTime,
        events: PeerEvents,
        heartbeat: float = HEARTBEAT,
        expiry: float = EXPIRY,
    ) -> None:
        self.bus = bus
        self.node_id = node_id
        self.clock = clock
        self.events = events
        self.heartbeat = heartbeat
        self.expiry = expiry
        self.epoch = os.urandom(6).hex()
        self.connected = False
        self._seq = 0
        self._peers: dict[str, _Peer] = {}
        self._last_sent = 0.0
        self._last_poll = 0.0
        self._ticker: task.LoopingCall | None = None
        self._twin_reported = False

    @property
    def nodes(self) -> list[str]:
        """The other nodes heard from and not yet taken for dead."""
        return sorted(self._peers)

    def start(self) -> None:
        if not self.bus.shared:
            return
        self.bus.start(self)
        self._ticker = task.LoopingCall(self._tick)
        self._ticker.clock = self.clock
        self._ticker.start(1.0, now=False)

    def stop(self) -> Any:
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        if self.bus.shared:
            self.publish("bye")
        return self.bus.stop()

    def publish(self, kind: str, **payload: Any) -> None:
        self._seq += 1
        payload["k"] = kind
        payload["n"] = self.node_id
        payload["e"] = self.epoch
        payload["s"] = self._seq
        self._last_sent = self.clock.seconds()
        self.bus.publish(payload)

    # -- IBusListener ----------------------------------------------------------

    def bus_connected(self) -> None:
        self.log.info("bus connected")
        self.connected = True
        now = self.clock.seconds()
        for peer in self._peers.values():
            peer.heard = now  # they had no way to reach us meanwhile
        self.publish("hello")
        self.events.resync()

    def bus_disconnected(self) -> None:
        if self.connected:
            self.log.warn("bus lost; polling the database until it is back")
        self.connected = False
        self._last_poll = self.clock.seconds()

    def bus_message(self, message: dict[str, Any]) -> None:
        node = message.get("n")
        if node == self.node_id:
            if message.get("e") != self.epoch and not self._twin_reported:
                self._twin_reported = True
                self.log.error(
                    "another node on this bus is also called {node}: give each --node-id "
                    "a name of its own (their messages are ignored here)",
                    node=node,
                )
            return  # our own, echoed back
        if not isinstance(node, str):
            return
        epoch, seq, kind = message["e"], message["s"], message["k"]
        now = self.clock.seconds()
        peer = self._peers.get(node)
        if peer is not None and peer.epoch != epoch:
            self.log.info("node {node} restarted", node=node)
            self._forget(node)
            peer = None
        if peer is None:
            self._peers[node] = _Peer(epoch, seq, now)
            if kind not in ("hello", "snap"):
                # A newcomer to us, heard mid-stream: ask what it has (a
                # hello is answered with our snap; a snap is what it has).
                self.publish("hello")
        else:
            missed = seq != peer.seq + 1
            peer.seq = seq
            peer.heard = now
            if missed:
                self.log.info("missed bus messages from {node}; re-reading", node=node)
                self.publish("hello")
                self.events.resync()
        if kind == "hello":
            self.publish("snap", **self.events.snapshot())
        elif kind == "bye":
            self._forget(node)
        elif kind != "hb":
            self.events.peer_message(node, message)

    # -- time ------------------------------------------------------------------

    def _tick(self) -> None:
        now = self.clock.seconds()
        if not self.connected:
            if now - self._last_poll >= POLL_WITHOUT_BUS:
                self._last_poll = now
                self.events.resync(memberships=False)
            return
        if now - self._last_sent >= self.heartbeat:
            self.publish("hb")
        for node in [n for n, p in self._peers.items() if now - p.heard > self.expiry]:
            self.log.warn(
                "node {node} silent for {s:.0f} s: taken for dead",
                node=node,
                s=now - self._peers[node].heard,
            )
            self._forget(node)

    def _forget(self, node: str) -> None:
        if self._peers.pop(node, None) is not None:
            self.events.peer_gone(node)


class RemotePresence:
    """Who is online on the other nodes: each user on at most one node.

    A login carries a stamp (a time, raised above the stamp of any login of
    the same user this node has heard of), so when two nodes log the same
    user in at once, every node agrees that the greater (stamp, node) wins.
    """

    def __init__(self) -> None:
        self._where: dict[str, tuple[float, str]] = {}
        self._by_node: dict[str, set[str]] = {}

    def __contains__(self, user: str) -> bool:
        return user in self._where

    def users(self) -> Iterable[str]:
        return self._where.keys()

    def stamp_of(self, user: str) -> tuple[float, str] | None:
        return self._where.get(user)

    def login(self, user: str, stamp: float, node: str) -> bool:
        """Record a login; False if an older one than what is known."""
        known = self._where.get(user)
        if known is not None:
            if known >= (stamp, node):
                return False
            self._by_node.get(known[1], set()).discard(user)
        self._where[user] = (stamp, node)
        self._by_node.setdefault(node, set()).add(user)
        return True

    def logout(self, user: str, node: str, stamp: float | None = None) -> bool:
        """Record a logout; False unless ``user`` was online on ``node``
        (by the login of that ``stamp``, when given)."""
        known = self._where.get(user)
        if known is None or known[1] != node:
            return False
        if stamp is not None and known[0] != stamp:
            return False  # an older session's end: the user logged in again
        del self._where[user]
        self._by_node.get(node, set()).discard(user)
        return True

    def forget(self, user: str) -> None:
        """``user`` is online on this node now."""
        known = self._where.pop(user, None)
        if known is not None:
            self._by_node.get(known[1], set()).discard(user)

    def drop_node(self, node: str) -> list[str]:
        """Everyone online on ``node``, now offline there."""
        users = self._by_node.pop(node, set())
        for user in users:
            del self._where[user]
        return sorted(users)

    def replace_node(
        self, node: str, entries: Iterable[tuple[str, float]]
    ) -> tuple[list[str], list[str]]:
        """``node``'s full list: returns (users added, users removed)."""
        before = set(self._by_node.get(node, ()))
        after: set[str] = set()
        for user, stamp in entries:
            if self.login(user, stamp, node) or self._where.get(user) == (stamp, node):
                after.add(user)
        removed = before - after
        for user in removed:
            self.logout(user, node)
        return sorted(after - before), sorted(removed)
