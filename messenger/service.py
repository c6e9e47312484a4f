"""The service core: sessions, routing, delivery receipts, presence, rooms.

It owns everything that outlives a single command: who is online, which
session holds which user's deliveries, the room directory, the group-commit
batcher and the login-failure record.  It knows neither SQL (that is the
store's) nor the wire format of a line (that is the protocol's); the clock
and the store are passed in, so tests drive it with ``task.Clock`` and an
in-memory database.

Routing is local first: a committed message, receipt, presence or
membership change goes straight to this node's sessions.  When a shared
bus is configured (``--bus``), the same news is published once per
committed batch (or per event) for the other nodes, which route it to
theirs; what a node may have missed it re-reads from the store, which is
the truth (see :mod:`messenger.bus.peers`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet import task
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from messenger import wire
from messenger.batching import CommitBatcher
from messenger.bus.interface import IBus
from messenger.bus.local import AloneBus
from messenger.bus.peers import Peers, RemotePresence
from messenger.config import ServerConfig
from messenger.limits import ConcurrencyLimit, FailedLogins
from messenger.passwords import PasswordHasher
from messenger.rooms import RoomDirectory
from messenger.session import IPeer, Session
from messenger.store.interface import AckResult, IMessageStore, StoredMessage
from messenger.timefmt import rfc3339


class NoMetrics:
    """Stands in for :class:`messenger.metrics.Metrics` when it is off."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def default_node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


#: How long a receipt handed over is remembered after its commit, so that
#: a late bus message about it does not hand it over twice.
RECEIPT_MEMORY = 120.0
#: How often, with a shared bus, the store's change log is looked at:
#: messenger-admin changes memberships behind every node's back.
CHANGE_POLL = 2.0


class ClusterFailedLogins(FailedLogins):
    """Failed logins counted on every node: each one recorded here is
    published, and those published by other nodes are recorded here."""

    def __init__(self, clock: IReactorTime, limit: int, window: float, publish) -> None:
        super().__init__(clock, limit, window)
        self._publish = publish

    def record(self, address: str) -> None:
        super().record(address)
        self._publish(address)

    def record_remote(self, address: str) -> None:
        super().record(address)


class MessengerService(Service):
    log = Logger()

    def __init__(
        self,
        store: IMessageStore,
        config: ServerConfig,
        clock: IReactorTime,
        hasher: PasswordHasher,
        metrics=None,
        bus: IBus | None = None,
        node_id: str | None = None,
        reactor=None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.reactor = reactor
        self.node_id = node_id or default_node_id()
        self.bus: IBus = bus if bus is not None else AloneBus()
        #: Other nodes may be listening: publish what happens here.
        self.clustered = bool(self.bus.shared)
        self.peers = Peers(self.bus, self.node_id, clock, self)
        self.remote = RemotePresence()
        #: Login stamps of this node's users (see RemotePresence).
        self._login_stamps: dict[str, float] = {}
        self._outbox_messages: list[list[Any]] = []
        self._outbox_acks: list[list[Any]] = []
        self._outbox_call: IDelayedCall | None = None
        self._receipts_recent: dict[int, float] = {}
        self._resyncing = False
        self._resync_again = False
        self._membership_reloader: task.LoopingCall | None = None
        self._last_change: int | None = None
        #: Membership changes seen while memberships are re-read, applied
        #: again to what the read returns (it may predate them).
        self._membership_changes: list[tuple[bool, str, str]] | None = None
        self.hasher = hasher
        self.metrics = metrics if metrics is not None else NoMetrics()
        self.batcher = CommitBatcher(
            store,
            clock,
            config.max_pending,
            on_acknowledged=self._acknowledged,
            on_receipts_settled=self._receipts_settled,
        )
        if self.clustered:
            self.failed_logins: FailedLogins = ClusterFailedLogins(
                clock,
                config.login_failure_limit,
                config.login_failure_window,
                lambda address: self.peers.publish("fail", a=address),
            )
        else:
            self.failed_logins = FailedLogins(
                clock, config.login_failure_limit, config.login_failure_window
            )
        self.password_checks = ConcurrencyLimit(config.login_checks_per_address, clock)
        self.rooms = RoomDirectory({})
        #: Logged-in users and the session each is on.
        self.online: dict[str, Session] = {}
        #: Every open connection's session, logged in or not.
        self.connections: set[Session] = set()
        #: Unacknowledged direct messages stored, for metrics.
        self.waiting = 0
        self._receipts_handed_over: set[int] = set()
        self.ready = False
        self._stopping = False
        #: SIGTERM has come but the reactor has not stopped yet.
        self._shutdown_requested = False

    # -- life cycle ----------------------------------------------------------

    def startService(self) -> Deferred:
        super().startService()
        d = self.store.open()
        # The change log's position before the memberships are read: a
        # change made after it is re-read at the next poll, not missed.
        d.addCallback(lambda _: self.store.last_change())
        d.addCallback(self._change_log_position)
        d.addCallback(lambda _: self.store.load_memberships())
        d.addCallback(self._loaded)
        d.addCallback(lambda _: self.store.count_waiting())
        d.addCallback(self._counted)
        d.addErrback(self._failed_to_start)
        return d

    def _change_log_position(self, last: int) -> None:
        self._last_change = last

    def _loaded(self, memberships) -> None:
        self.rooms = RoomDirectory(memberships)
        self.ready = True
        self.log.info("store ready: {rooms} rooms", rooms=len(memberships))

    def _counted(self, waiting: int) -> None:
        self.waiting = waiting
        self.log.info(
            "node {node}: {mode}",
            node=self.node_id,
            mode="sharing the work over the bus" if self.clustered else "working alone",
        )
        self.peers.start()
        if self.clustered:
            self._membership_reloader = task.LoopingCall(self._poll_changes)
            self._membership_reloader.clock = self.clock
            self._membership_reloader.start(CHANGE_POLL, now=False)

    def _failed_to_start(self, failure) -> None:
        self.log.failure("cannot open the store", failure)
        reactor = self.reactor
        if reactor is not None and reactor.running:
            reactor.stop()

    def stopService(self) -> Deferred:
        """Say goodbye to everyone, then make every accepted write durable."""
        super().stopService()
        self._stopping = True
        now = self.clock.seconds()
        writes = [self.batcher.flush()]
        if self._membership_reloader is not None and self._membership_reloader.running:
            self._membership_reloader.stop()
        # The others see this node's users go offline (``bye``).
        writes.append(self.batcher.flush().addCallback(lambda _: self._publish_now()))
        writes[-1].addCallback(lambda _: self.peers.stop())
        if self.online:
            writes.append(self.store.set_last_seen(list(self.online), now))
        for session in list(self.connections):
            session.close(wire.BYE_SHUTDOWN)
        d = DeferredList(writes, consumeErrors=True)
        d.addCallback(lambda _: self.store.close())
        return d

    # -- connections and sessions ---------------------------------------

    def connect(self, peer: IPeer) -> Session | wire.Bye:
        """A new connection's session, or the BYE that turns it away."""
        if self._stopping:
            return wire.BYE_SHUTDOWN
        if not self.ready:
            return wire.BYE_STARTING
        if len(self.connections) >= self.config.max_clients:
            return wire.BYE_SERVER_FULL
        session = Session(self, peer)
        self.connections.add(session)
        self.metrics.connection_opened()
        return session

    def session_started(self, session: Session) -> None:
        """``session`` logged in: it takes over any other session of its user."""
        user = session.username
        assert user is not None
        previous = self.online.get(user)
        self.online[user] = session
        if self.clustered:
            online_elsewhere = self._logged_in_here(user)
            if online_elsewhere and previous is None:
                self.log.info("{user} logged in here, taking over from another node", user=user)
                return
        if previous is not None:
            # Its unacknowledged messages are still stored: the new session's
            # delivery queue loads them.
            self.log.info("{user} logged in elsewhere", user=user)
            previous.close(wire.BYE_TAKEOVER)
            return
        if not self._shutdown_requested:
            self._tell_neighbours(user, wire.On(user))

    def session_ended(self, session: Session) -> None:
        if session in self.connections:
            self.connections.discard(session)
            self.metrics.connection_closed()
        user = session.username
        if user is None or self.online.get(user) is not session:
            return  # never logged in, or taken over
        del self.online[user]
        if self.clustered:
            stamp = self._login_stamps.pop(user, 0.0)
            if not self._stopping:
                self.peers.publish("off", u=user, t=stamp)
        if self._stopping:
            return
        self.store.set_last_seen([user], self.clock.seconds()).addErrback(
            lambda f: self.log.failure("recording last seen failed", f)
        )
        if not self._shutdown_requested:
            self._tell_neighbours(user, wire.Off(user))

    def shutdown_requested(self) -> None:
        """SIGTERM has come; the reactor will stop once it is done with
        what it is doing.  Called from the signal handler, so it only sets
        a flag: presence events stop, because a mass disconnect (every
        client of a big server at once) would otherwise tell every online
        user about every other one before the stop could begin."""
        self._shutdown_requested = True

    def _tell_neighbours(self, user: str, event: wire.ServerMessage) -> None:
        told = {user}
        for room in self.rooms.rooms_of(user):
            for session in self._online_members(room):
                if session.username not in told:
                    told.add(session.username)
                    session.send_event(event)

    def _tell_room(self, room: str, event: wire.ServerMessage, but: str) -> None:
        for session in self._online_members(room):
            if session.username != but:
                session.send_event(event)

    def _online_members(self, room: str) -> list[Session]:
        """The sessions of ``room``'s members, walking whichever is smaller:
        the members (most of them offline, in #general) or who is online."""
        members = self.rooms.members(room)
        online = self.online
        if len(members) <= len(online):
            return [online[m] for m in members if m in online]
        return [s for u, s in online.items() if u in members]

    # -- accounts and rooms ----------------------------------------------

    def account_created(self, username: str) -> None:
        self.joined(wire.GENERAL_ROOM, username)

    def joined(self, room: str, username: str) -> None:
        self._membership_changed(True, room, username)
        self._tell_room(room, wire.Joined(room, username), but=username)
        if self.clustered:
            self.peers.publish("j", r=room, u=username)

    def parted(self, room: str, username: str) -> None:
        self._membership_changed(False, room, username)
        self._tell_room(room, wire.Parted(room, username), but=username)
        if self.clustered:
            self.peers.publish("p", r=room, u=username)

    # -- presence across nodes ---------------------------------------------

    def online_users(self) -> list[str]:
        """Everyone online, on this node or any other, sorted."""
        if not self.clustered:
            return sorted(self.online)
        return sorted(set(self.online).union(self.remote.users()))

    def is_online(self, user: str) -> bool:
        return user in self.online or user in self.remote

    def _logged_in_here(self, user: str) -> bool:
        """Tell the other nodes ``user`` is here now (any session of theirs
        is taken over); True if the user was online on another node."""
        known = self.remote.stamp_of(user)
        stamp = self.clock.seconds()
        if known is not None and stamp <= known[0]:
            stamp = known[0] + 0.001  # later than the login it takes over
        self._login_stamps[user] = stamp
        self.remote.forget(user)
        self.peers.publish("on", u=user, t=stamp)
        return known is not None

    def _remote_login(self, node: str, user: str, stamp: float) -> None:
        local = self.online.get(user)
        if local is not None:
            if (self._login_stamps.get(user, 0.0), self.node_id) > (stamp, node):
                return  # ours is the later login: that node closes its own
            # Gone from ``online`` first: its end is a takeover, not an OFF.
            del self.online[user]
            self._login_stamps.pop(user, None)
            self.log.info("{user} logged in on {node}", user=user, node=node)
            self.remote.login(user, stamp, node)
            local.close(wire.BYE_TAKEOVER)
            return
        was_online = user in self.remote
        if self.remote.login(user, stamp, node) and not was_online:
            self._tell_neighbours(user, wire.On(user))

    def _remote_logout(self, node: str, user: str) -> None:
        if self.remote.logout(user, node) and user not in self.online:
            self._tell_neighbours(user, wire.Off(user))

    # -- the other nodes (messenger.bus.peers.PeerEvents) ---------------------

    def peer_message(self, node: str, message: dict[str, Any]) -> None:
        kind = message["k"]
        if kind == "b":
            self._remote_batch(message.get("m", ()), message.get("a", ()))
        elif kind == "on":
            self._remote_login(node, message["u"], message["t"])
        elif kind == "off":
            self._remote_logout(node, message["u"])
        elif kind == "j":
            room, user = message["r"], message["u"]
            self._membership_changed(True, room, user)
            self._tell_room(room, wire.Joined(room, user), but=user)
        elif kind == "p":
            room, user = message["r"], message["u"]
            self._membership_changed(False, room, user)
            self._tell_room(room, wire.Parted(room, user), but=user)
        elif kind == "fail":
            failed_logins = self.failed_logins
            if isinstance(failed_logins, ClusterFailedLogins):
                failed_logins.record_remote(message["a"])
        elif kind == "snap":
            entries = [(u, t) for u, t in message.get("users", ()) if u not in self.online]
            added, removed = self.remote.replace_node(node, entries)
            for user in added:
                self._tell_neighbours(user, wire.On(user))
            for user in removed:
                if not self.is_online(user):
                    self._tell_neighbours(user, wire.Off(user))

    def peer_gone(self, node: str) -> None:
        for user in self.remote.drop_node(node):
            if user not in self.online:
                self._tell_neighbours(user, wire.Off(user))
        # A node killed between a commit and its publish took the wake-up
        # with it, and no later message of its will show the gap.
        self.resync()

    def snapshot(self) -> dict[str, Any]:
        return {"users": [[u, self._login_stamps.get(u, 0.0)] for u in self.online]}

    def resync(self) -> None:
        """Re-read from the store what this node's users are owed: a bus
        message may have been lost.  One at a time; one more if asked for
        meanwhile."""
        if self._resyncing:
            self._resync_again = True
            return
        self._resyncing = True
        for session in list(self.online.values()):
            if session.queue is not None and not session.closed:
                session.queue.refresh()
                self.send_pending_receipts(session)
        d = self._reload_memberships()

        def done(_: object) -> None:
            self._resyncing = False
            if self._resync_again:
                self._resync_again = False
                self.resync()

        d.addBoth(done)

    def _poll_changes(self) -> Deferred:
        """Re-read memberships when the change log moved (one cheap read)."""

        def compare(last: int) -> Deferred | None:
            seen, self._last_change = self._last_change, last
            if seen is not None and last != seen:
                self.log.info("the database changed outside the nodes: re-reading")
                return self._reload_memberships()
            return None

        d = self.store.last_change()
        d.addCallback(compare)
        d.addErrback(lambda f: self.log.failure("reading the change log failed", f))
        return d

    def _membership_changed(self, joined: bool, room: str, user: str) -> None:
        if joined:
            self.rooms.add(room, user)
        else:
            self.rooms.remove(room, user)
        if self._membership_changes is not None:
            self._membership_changes.append((joined, room, user))

    def _reload_memberships(self) -> Deferred:
        if self._membership_changes is None:
            self._membership_changes = []

        def loaded(memberships) -> None:
            rooms = RoomDirectory(memberships)
            for joined, room, user in self._membership_changes or ():
                if joined:
                    rooms.add(room, user)
                else:
                    rooms.remove(room, user)
            self.rooms = rooms

        def done(result: object) -> object:
            self._membership_changes = None
            return result

        d = self.store.load_memberships()
        d.addCallback(loaded)
        d.addErrback(lambda f: self.log.failure("re-reading memberships failed", f))
        return d.addBoth(done)

    def _publish_soon(self) -> None:
        """One bus message for everything a committed batch routed."""
        if self._outbox_call is None:
            self._outbox_call = self.clock.callLater(0, self._publish_now)

    def _publish_now(self) -> None:
        self._outbox_call = None
        if self._outbox_messages or self._outbox_acks:
            messages, self._outbox_messages = self._outbox_messages, []
            acks, self._outbox_acks = self._outbox_acks, []
            self.peers.publish("b", m=messages, a=acks)

    def _remote_batch(self, messages, acks) -> None:
        online = self.online
        for msgid, sender, recipient, room, body, created_at in messages:
            if room is None:
                self.waiting += 1
                session = online.get(recipient)
                if session is not None and session.queue is not None:
                    message = StoredMessage(msgid, sender, recipient, None, body, created_at)
                    session.queue.push_live(message)
            else:
                event = wire.C(room, sender, msgid, body)
                self._tell_room(room, event, but=sender)
        for msgid, sender, recipient, delivered_at in acks:
            self.waiting -= 1
            self._receipt_for(sender, msgid, recipient, delivered_at)

    # -- messages ------------------------------------------------------------

    def route(self, message: StoredMessage) -> None:
        """A newly committed message: push it to whoever is online for it."""
        self.metrics.message_accepted()
        if self.clustered:
            m = message
            self._outbox_messages.append(
                [m.msgid, m.sender, m.recipient, m.room, m.body, m.created_at]
            )
            self._publish_soon()
        if message.room is None:
            self.waiting += 1
            session = self.online.get(message.recipient)
            if session is not None and session.queue is not None:
                session.queue.push_live(message)
            return
        event = wire.C(message.room, message.sender, message.msgid, message.body)
        self._tell_room(message.room, event, but=message.sender)

    def fetch_pending_for(self, username: str) -> Callable[[int, int], Deferred]:
        """How a delivery queue pages in ``username``'s stored messages."""

        def fetch(after_id: int, limit: int) -> Deferred:
            # Acks still waiting in the batcher would otherwise come back as
            # pending and be delivered once more.
            d = self.batcher.flush()
            d.addCallback(lambda _: self.store.pending_messages(username, after_id, limit))
            return d

        return fetch

    def acknowledge(self, recipient: str, message: StoredMessage) -> None:
        self.metrics.message_delivered(max(0.0, self.clock.seconds() - message.created_at))
        self.batcher.submit_ack(recipient, message.msgid)

    def _acknowledged(self, result: AckResult) -> None:
        """An ACK is committed: the receipt goes to the sender if online."""
        self.waiting -= 1
        if self.clustered:
            r = result
            self._outbox_acks.append([r.msgid, r.sender, r.recipient, r.delivered_at])
            self._publish_soon()
        self._receipt_for(result.sender, result.msgid, result.recipient, result.delivered_at)

    def _receipt_for(self, sender: str, msgid: int, recipient: str, delivered_at: float) -> None:
        session = self.online.get(sender)
        # A closed session stays in ``online`` until its connection is gone;
        # a receipt handed to it would be marked sent and never arrive.
        if session is not None and session.queue is not None and not session.closed:
            if msgid not in self._receipts_handed_over:
                self._hand_over_receipt(session, msgid, recipient, delivered_at)

    def _hand_over_receipt(
        self, session: Session, msgid: int, recipient: str, delivered_at: float
    ) -> None:
        if msgid in self._receipts_recent:
            return  # handed over and recorded already (a late bus message)
        session.send_event(wire.Dlv(msgid, recipient, rfc3339(delivered_at)))
        # Until the batcher commits receipt_sent, the store still calls this
        # receipt pending: a login in between must not hand it over again.
        self._receipts_handed_over.add(msgid)
        self.batcher.submit_receipt_sent(msgid)

    def _receipts_settled(self, msgids: list[int]) -> None:
        self._receipts_handed_over.difference_update(msgids)
        if self.clustered:
            now = self.clock.seconds()
            recent = self._receipts_recent
            for msgid in msgids:
                recent[msgid] = now
            # Insertion order is time order: forget from the front.
            for msgid, when in list(recent.items()):
                if now - when < RECEIPT_MEMORY:
                    break
                del recent[msgid]

    def send_pending_receipts(self, session: Session) -> None:
        def send(receipts) -> None:
            if session.closed:
                return  # they stay pending for the next login
            for receipt in receipts:
                if receipt.msgid not in self._receipts_handed_over:
                    self._hand_over_receipt(
                        session, receipt.msgid, receipt.recipient, receipt.delivered_at
                    )

        # Acks still waiting in the batcher would otherwise leave their
        # receipts out until the next login.
        d = self.batcher.flush()
        d.addCallback(lambda _: self.store.pending_receipts(session.username))
        d.addCallback(send)
        d.addErrback(lambda f: self.log.failure("loading receipts failed", f))

    def waiting_messages(self) -> int:
        """Unacknowledged direct messages stored, online users' or not."""
        return self.waiting
