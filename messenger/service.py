"""The service core: sessions, routing, delivery receipts, presence, rooms.

It owns everything that outlives a single command: who is online, which
session holds which user's deliveries, the room directory, the group-commit
batcher and the login-failure record.  It knows neither SQL (that is the
store's) nor the wire format of a line (that is the protocol's); the clock
and the store are passed in, so tests drive it with ``task.Clock`` and an
in-memory database.

Routing is local first: a committed message, receipt, presence or
membership change goes straight to this node's sessions.  With a shared
bus (``--bus``) a :class:`messenger.cluster.Cluster` also publishes it for
the other nodes and routes theirs here; without one (the default) nothing
else happens and nothing else costs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from messenger import wire
from messenger.batching import CommitBatcher
from messenger.bus.interface import IBus
from messenger.cluster import Cluster
from messenger.config import ServerConfig
from messenger.limits import ConcurrencyLimit, FailedLogins
from messenger.login_watch import LoginWatches
from messenger.memberships import MembershipMirror
from messenger.passwords import PasswordHasher
from messenger.rooms import RoomDirectory
from messenger.session import IPeer, Session
from messenger.store.interface import AckResult, IMessageStore, Receipt, StoredMessage
from messenger.timefmt import rfc3339


class NoMetrics:
    """Stands in for :class:`messenger.metrics.Metrics` when it is off."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        # Kept on the instance: found there from then on, without this call.
        setattr(self, name, _do_nothing)
        return _do_nothing


def _do_nothing(*args: object, **kwargs: object) -> None:
    pass


def default_node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
        #: This node's part in a cluster; None when it works alone.
        self.cluster: Cluster | None = None
        if bus is not None and bus.shared:
            self.cluster = Cluster(self, bus, self.node_id, clock)
        self.hasher = hasher
        self.metrics = metrics if metrics is not None else NoMetrics()
        self.batcher = CommitBatcher(
            store,
            clock,
            config.max_pending,
            on_acknowledged=self._acknowledged,
            on_receipts_settled=self._receipts_settled,
        )
        if self.cluster is not None:
            self.failed_logins: FailedLogins = self.cluster.failed_logins(
                config.login_failure_limit, config.login_failure_window
            )
        else:
            self.failed_logins = FailedLogins(
                clock, config.login_failure_limit, config.login_failure_window
            )
        self.password_checks = ConcurrencyLimit(config.login_checks_per_address, clock)
        self.rooms = RoomDirectory({})
        self.memberships = MembershipMirror(self, store, clock)
        #: Logged-in users and the session each is on.
        self.online: dict[str, Session] = {}
        #: Every open connection's session, logged in or not.
        self.connections: set[Session] = set()
        #: Unacknowledged direct messages stored, for metrics.
        self.waiting = 0
        self._receipts_handed_over: set[int] = set()
        #: Logins between their one store read and the start of delivery.
        self.login_watches = LoginWatches()
        #: When users went offline, until it is written: one write at a time,
        #: the disconnects that come meanwhile go together in the next.
        self.last_seen_due: dict[str, float] = {}
        self._writing_last_seen = False
        #: Cluster logouts to publish once their last-seen time is written.
        self._logouts_due: list[tuple[str, float]] = []
        self.ready = False
        self._stopping = False
        #: SIGTERM has come but the reactor has not stopped yet.
        self._shutdown_requested = False

    # -- life cycle ----------------------------------------------------------

    def startService(self) -> Deferred:
        super().startService()
        d = self.store.open()
        d.addCallback(lambda _: self.store.last_change())
        d.addCallback(self.memberships.position)
        d.addCallback(lambda _: self.store.load_memberships())
        d.addCallback(self._loaded)
        d.addCallback(lambda _: self.store.count_waiting())
        d.addCallback(self._counted)
        d.addErrback(self._failed_to_start)
        return d

    def _loaded(self, memberships) -> None:
        self.rooms = RoomDirectory(memberships)
        self.ready = True
        self.log.info("store ready: {rooms} rooms", rooms=len(memberships))

    def _counted(self, waiting: int) -> None:
        self.waiting = waiting
        self.log.info(
            "node {node}: {mode}",
            node=self.node_id,
            mode="working alone" if self.cluster is None else "sharing the work over the bus",
        )
        self.memberships.start()
        if self.cluster is not None:
            self.cluster.start()

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
        if self.online:
            writes.append(self.store.set_last_seen(list(self.online), now))
        if self.last_seen_due:
            due = self.last_seen_due
            writes.append(self.store.set_last_seen(list(due), max(due.values())))
        for session in list(self.connections):
            session.close(wire.BYE_SHUTDOWN)
        self.memberships.stop()
        d = DeferredList(writes, consumeErrors=True)
        cluster = self.cluster
        if cluster is not None:
            # Once the last commits and last-seen times are stored: their
            # news goes out, then the others see this node's users go offline.
            d.addCallback(lambda _: cluster.stop())
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
        if self.cluster is not None and self.cluster.logged_in(user) and previous is None:
            self.log.info("{user} logged in here, taken over from another node", user=user)
            return  # online all along: no ON
        if previous is not None:
            # Its unacknowledged messages are still stored: the new session's
            # delivery queue loads them.
            self.log.info("{user} logged in elsewhere", user=user)
            previous.close(wire.BYE_TAKEOVER)
            return
        if not self._shutdown_requested:
            self._tell_neighbours(user, wire.UserOnline(user))

    def session_ended(self, session: Session) -> None:
        if session in self.connections:
            self.connections.discard(session)
            self.metrics.connection_closed()
        user = session.username
        if user is None or self.online.get(user) is not session:
            return  # never logged in, or taken over
        del self.online[user]
        cluster = self.cluster
        stamp = cluster.logged_out(user) if cluster is not None else None
        if self._stopping:
            return
        self.last_seen_due[user] = self.clock.seconds()
        if cluster is not None and stamp is not None:
            # Published once last_seen is stored: a WHOIS on a node that
            # heard the OFF then reads it.
            self._logouts_due.append((user, stamp))
        if not self._writing_last_seen:
            self._write_last_seen()
        if not self._shutdown_requested:
            self._tell_neighbours(user, wire.UserOffline(user))

    def _write_last_seen(self) -> None:
        """Write the last-seen times due, in one write for all of them.

        A reconnect storm disconnects thousands at once: a write each would
        keep the database busy for as long.  Grouped, each user's time is
        the group's latest, later than the disconnect by at most the length
        of one write (milliseconds); WHOIS reads ``last_seen_due`` first.
        """
        due = self.last_seen_due
        if not due:
            self._writing_last_seen = False
            return
        self._writing_last_seen = True
        written = dict(due)
        logouts, self._logouts_due = self._logouts_due, []
        d = self.store.set_last_seen(list(written), max(written.values()))

        def done(_) -> None:
            for user, when in written.items():
                if due.get(user) == when:
                    del due[user]
            if self.cluster is not None:
                for user, stamp in logouts:
                    self.cluster.publish_logout(user, stamp)
            self._write_last_seen()

        d.addErrback(lambda f: self.log.failure("recording last seen failed", f))
        d.addCallback(done)

    def shutdown_requested(self) -> None:
        """SIGTERM has come; the reactor will stop once it is done with
        what it is doing.  Called from the signal handler, so it only sets
        a flag: presence events stop, because a mass disconnect (every
        client of a big server at once) would otherwise tell every online
        user about every other one before the stop could begin."""
        self._shutdown_requested = True

    def _tell_neighbours(self, user: str, event: wire.ServerMessage) -> None:
        """``event`` (ON or OFF) once to each online user who shares a room
        of at most --presence-room-limit members with ``user``."""
        limit = self.config.presence_room_limit
        if limit <= 0:
            return
        online = self.online
        for other in self.rooms.presence_audience(user, limit):
            session = online.get(other)
            if session is not None:
                session.send_event(event)

    def _tell_room(self, room: str, event: wire.ServerMessage, but: str) -> None:
        """``event`` to each online member of ``room`` but ``but``, walking
        whichever is smaller: the members (most of them offline, in
        #general) or who is online.  Once per member of a room line's
        fan-out, so Session.send_event is written out here."""
        members = self.rooms.members(room)
        online = self.online
        if len(members) <= len(online):
            for member in members:
                session = online.get(member)
                if session is not None and member != but and not session.closed:
                    session.peer.send(event)
        else:
            for member, session in online.items():
                if member in members and member != but and not session.closed:
                    session.peer.send(event)

    # -- accounts and rooms ----------------------------------------------

    def account_created(self, username: str) -> None:
        self.joined(wire.GENERAL_ROOM, username)

    def joined(self, room: str, username: str) -> None:
        self.change_membership(True, room, username)
        if self.cluster is not None:
            self.cluster.membership_changed(True, room, username)

    def parted(self, room: str, username: str) -> None:
        self.change_membership(False, room, username)
        if self.cluster is not None:
            self.cluster.membership_changed(False, room, username)

    def change_membership(self, joined: bool, room: str, username: str) -> None:
        """A JOIN or PART committed, here or on another node."""
        self.memberships.changed(joined, room, username)
        if joined:
            self.rooms.add(room, username)
            self._tell_room(room, wire.MemberJoined(room, username), but=username)
        else:
            self.rooms.remove(room, username)
            self._tell_room(room, wire.MemberParted(room, username), but=username)

    # -- presence, cluster-wide ------------------------------------------

    def online_users(self) -> list[str]:
        """Everyone online, on this node or any other, sorted."""
        if self.cluster is None:
            return sorted(self.online)
        return sorted(self.cluster.online_users())

    def is_online(self, user: str) -> bool:
        return user in self.online or (
            self.cluster is not None and self.cluster.is_online_elsewhere(user)
        )

    # -- messages ------------------------------------------------------------

    def route(self, message: StoredMessage) -> None:
        """A newly committed message: push it to whoever is online for it."""
        self.metrics.message_accepted()
        if self.cluster is not None:
            self.cluster.message_committed(message)
        room = message.room
        if room is None:
            recipient = message.recipient
            assert recipient is not None  # a message has a room or a recipient
            self.waiting += 1
            if self.login_watches:
                self.login_watches.pushed(recipient)
            session = self.online.get(recipient)
            if session is not None:
                session.deliver(message)
            return
        event = wire.RoomMessage(room, message.sender, message.msgid, message.body)
        self._tell_room(room, event, but=message.sender)

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
        if self.login_watches:
            self.login_watches.pushed(recipient)  # see _read_login
        self.batcher.submit_ack(recipient, message.msgid)

    def _acknowledged(self, result: AckResult) -> None:
        """An ACK is committed: the receipt goes to the sender if online."""
        self.waiting -= 1
        if self.cluster is not None:
            self.cluster.ack_committed(result)
        self._receipt_for(result.sender, result.msgid, result.recipient, result.delivered_at)

    def _receipt_for(self, sender: str, msgid: int, recipient: str, delivered_at: float) -> None:
        """A receipt committed here or on another node: to its sender if
        online here."""
        if self.login_watches:
            self.login_watches.pushed(sender)
        session = self.online.get(sender)
        # A closed session stays in ``online`` until its connection is gone;
        # a receipt handed to it would be marked sent and never arrive.
        if session is not None and session.delivering and not session.closed:
            if msgid not in self._receipts_handed_over:
                self._hand_over_receipt(session, msgid, recipient, delivered_at)

    def _hand_over_receipt(
        self, session: Session, msgid: int, recipient: str, delivered_at: float
    ) -> None:
        if self.cluster is not None and self.cluster.receipt_told(msgid):
            return  # handed over and recorded already (a late bus message)
        session.send_event(wire.Delivered(msgid, recipient, rfc3339(delivered_at)))
        # Until the batcher commits receipt_sent, the store still calls this
        # receipt pending: a login in between must not hand it over again.
        self._receipts_handed_over.add(msgid)
        self.batcher.submit_receipt_sent(msgid)

    def _receipts_settled(self, msgids: list[int]) -> None:
        self._receipts_handed_over.difference_update(msgids)
        if self.cluster is not None:
            self.cluster.receipts_settled(msgids)

    def hand_over_receipts(self, session: Session, receipts: Sequence[Receipt]) -> None:
        """Receipts the store still calls pending, read at or after login."""
        if session.closed:
            return  # they stay pending for the next login
        handed_over = self._receipts_handed_over
        for receipt in receipts:
            if receipt.msgid not in handed_over:
                self._hand_over_receipt(
                    session, receipt.msgid, receipt.recipient, receipt.delivered_at
                )

    def send_pending_receipts(self, session: Session) -> None:
        # Acks still waiting in the batcher would otherwise leave their
        # receipts out until the next login.
        d = self.batcher.flush()
        d.addCallback(lambda _: self.store.pending_receipts(session.user))
        d.addCallback(lambda receipts: self.hand_over_receipts(session, receipts))
        d.addErrback(lambda f: self.log.failure("loading receipts failed", f))

    def waiting_messages(self) -> int:
        """Unacknowledged direct messages stored, online users' or not."""
        return self.waiting
