"""This node's part in a cluster of nodes sharing one store and one bus.

The service routes everything to its own sessions first; a ``Cluster``
(made only when ``--bus`` names a shared bus) publishes the same news for
the other nodes and routes theirs to this node's sessions:

* committed messages and receipts, once per committed batch;
* logins (with a stamp: on a login elsewhere, this node's session of that
  user is taken over with ``BYE|409``) and logouts, for ON/OFF, WHO and
  WHOIS;
* JOIN and PART, and failed logins (counted on every node).

The store is the truth and the bus only wakes nodes.  When a node may
have missed something (a sequence gap, a reconnection, the bus away), it
re-reads from the store what its online users are owed: their pending
direct messages and receipts, the memberships, and room messages not yet
told (see :mod:`messenger.bus.replay`).  It also polls the store cheaply
for changes made behind every node's back (messenger-admin's change log).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import task
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from messenger import wire
from messenger.bus.interface import IBus
from messenger.bus.peers import Peers, RemotePresence
from messenger.bus.replay import RoomReplay
from messenger.limits import FailedLogins
from messenger.store.interface import AckResult, StoredMessage

if TYPE_CHECKING:
    from messenger.service import MessengerService

#: How long a receipt handed over is remembered after its commit, so that
#: a late bus message about it does not hand it over twice.
RECEIPT_MEMORY = 120.0
#: How often the store is looked at: the change log (messenger-admin
#: changes memberships behind every node's back) and the newest message id
#: (for the room replay cursor).
STORE_POLL = 2.0
#: Room messages re-read at most per catch-up.
ROOM_REPLAY_LIMIT = 1000


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


class Cluster:
    log = Logger()

    def __init__(
        self, service: MessengerService, bus: IBus, node_id: str, clock: IReactorTime
    ) -> None:
        self.service = service
        self.node_id = node_id
        self.clock = clock
        self.store = service.store
        self.peers = Peers(bus, node_id, clock, self)
        self.remote = RemotePresence()
        self.room_replay = RoomReplay()
        #: Login stamps of this node's users (see RemotePresence).
        self._login_stamps: dict[str, float] = {}
        self._outbox_messages: list[list[Any]] = []
        self._outbox_acks: list[list[Any]] = []
        self._outbox_call: IDelayedCall | None = None
        self._receipts_recent: dict[int, float] = {}
        self._resyncing = False
        self._resync_again = False
        self._store_poller: task.LoopingCall | None = None

    def failed_logins(self, limit: int, window: float) -> ClusterFailedLogins:
        return ClusterFailedLogins(
            self.clock, limit, window, lambda address: self.peers.publish("fail", a=address)
        )

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        self.peers.start()
        self._store_poller = task.LoopingCall(self._poll_store)
        self._store_poller.clock = self.clock
        self._store_poller.start(STORE_POLL, now=True)

    def stop(self) -> Deferred:
        """Publish what is left and say goodbye: the others see this node's
        users go offline at once."""
        if self._store_poller is not None and self._store_poller.running:
            self._store_poller.stop()
        self._publish_now()
        return self.peers.stop()

    # -- what happens here ---------------------------------------------------

    def message_committed(self, m: StoredMessage) -> None:
        self._outbox_messages.append([m.msgid, m.sender, m.recipient, m.room, m.body, m.created_at])
        self._publish_soon()
        if m.room is not None:
            self.room_replay.seen(m.msgid)

    def ack_committed(self, r: AckResult) -> None:
        self._outbox_acks.append([r.msgid, r.sender, r.recipient, r.delivered_at])
        self._publish_soon()

    def logged_in(self, user: str) -> bool:
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

    def logged_out(self, user: str) -> float:
        """``user``'s session here ended; returns the stamp of its login."""
        return self._login_stamps.pop(user, 0.0)

    def publish_logout(self, user: str, stamp: float) -> None:
        """Tell the others (the stamp says which login ended: the user may
        have logged in again meanwhile)."""
        self.peers.publish("off", u=user, t=stamp)

    def membership_changed(self, joined: bool, room: str, user: str) -> None:
        """A JOIN or PART committed here: the other nodes are told."""
        self.peers.publish("j" if joined else "p", r=room, u=user)

    def receipt_told(self, msgid: int) -> bool:
        """Whether this receipt was handed over and recorded already."""
        return msgid in self._receipts_recent

    def receipts_settled(self, msgids: list[int]) -> None:
        now = self.clock.seconds()
        recent = self._receipts_recent
        for msgid in msgids:
            recent[msgid] = now
        # Insertion order is time order: forget from the front.
        for msgid, when in list(recent.items()):
            if now - when < RECEIPT_MEMORY:
                break
            del recent[msgid]

    # -- presence across nodes ---------------------------------------------

    def online_users(self) -> set[str]:
        return set(self.service.online).union(self.remote.users())

    def is_online_elsewhere(self, user: str) -> bool:
        return user in self.remote

    def _remote_login(self, node: str, user: str, stamp: float) -> None:
        service = self.service
        local = service.online.get(user)
        if local is not None:
            if (self._login_stamps.get(user, 0.0), self.node_id) > (stamp, node):
                return  # ours is the later login: that node closes its own
            # Gone from ``online`` first: its end is a takeover, not an OFF.
            del service.online[user]
            self._login_stamps.pop(user, None)
            self.log.info("{user} logged in on {node}", user=user, node=node)
            self.remote.login(user, stamp, node)
            local.close(wire.BYE_TAKEOVER)
            return
        was_online = user in self.remote
        if self.remote.login(user, stamp, node) and not was_online:
            service._tell_neighbours(user, wire.UserOnline(user))

    def _remote_logout(self, node: str, user: str, stamp: float) -> None:
        if self.remote.logout(user, node, stamp) and user not in self.service.online:
            self.service._tell_neighbours(user, wire.UserOffline(user))

    # -- the other nodes (messenger.bus.peers.PeerEvents) ---------------------

    def peer_message(self, node: str, message: dict[str, Any]) -> None:
        service = self.service
        kind = message["k"]
        if kind == "b":
            self._remote_batch(message.get("m", ()), message.get("a", ()))
        elif kind == "on":
            self._remote_login(node, message["u"], message["t"])
        elif kind == "off":
            self._remote_logout(node, message["u"], message["t"])
        elif kind in ("j", "p"):
            joined = kind == "j"
            room, user = message["r"], message["u"]
            service.change_membership(joined, room, user)
        elif kind == "fail":
            failed_logins = service.failed_logins
            if isinstance(failed_logins, ClusterFailedLogins):
                failed_logins.record_remote(message["a"])
        elif kind == "snap":
            online = service.online
            users = message.get("users", ())
            # Logged in here and there while the bus was away: the later
            # login wins, as for an "on" (the other node does the same).
            for user, stamp in users:
                if user in online:
                    self._remote_login(node, user, stamp)
            entries = [(u, t) for u, t in users if u not in online]
            added, removed = self.remote.replace_node(node, entries)
            for user in added:
                service._tell_neighbours(user, wire.UserOnline(user))
            for user in removed:
                if user not in online and user not in self.remote:
                    service._tell_neighbours(user, wire.UserOffline(user))

    def peer_gone(self, node: str) -> None:
        online = self.service.online
        for user in self.remote.drop_node(node):
            if user not in online:
                self.service._tell_neighbours(user, wire.UserOffline(user))
        # A node killed between a commit and its publish took the wake-up
        # with it, and no later message of its will show the gap.
        self.resync()

    def snapshot(self) -> dict[str, Any]:
        return {"users": [[u, self._login_stamps.get(u, 0.0)] for u in self.service.online]}

    def _remote_batch(self, messages, acks) -> None:
        service = self.service
        online = service.online
        for msgid, sender, recipient, room, body, created_at in messages:
            if room is None:
                service.waiting += 1
                if service.login_watches:
                    service.login_watches.pushed(recipient)
                session = online.get(recipient)
                if session is not None:
                    session.deliver(StoredMessage(msgid, sender, recipient, None, body, created_at))
            elif self.room_replay.first_time(msgid):
                service._tell_room(room, wire.RoomMessage(room, sender, msgid, body), but=sender)
        for msgid, sender, recipient, delivered_at in acks:
            service.waiting -= 1
            service._receipt_for(sender, msgid, recipient, delivered_at)

    # -- catching up from the store ------------------------------------------

    def resync(self, memberships: bool = True) -> None:
        """Re-read from the store what this node's users are owed: a bus
        message may have been lost.  One at a time; one more if asked for
        meanwhile.  The memberships are re-read too unless ``memberships``
        is false (the poll while the bus is away: they are big, and are
        re-read when it is back)."""
        if self._resyncing:
            self._resync_again = True
            return
        self._resyncing = True
        self.service.login_watches.disturb_all()
        for session in list(self.service.online.values()):
            session.catch_up()
        d = self.service.memberships.reload() if memberships else succeed(None)
        d.addCallback(lambda _: self._replay_rooms())

        def done(_: object) -> None:
            self._resyncing = False
            if self._resync_again:
                self._resync_again = False
                self.resync()

        d.addBoth(done)

    def _replay_rooms(self) -> Deferred | None:
        """Fan out room messages above the replay cursor never seen here."""
        cursor = self.room_replay.cursor
        if cursor is None:
            return None

        def replay(messages: list[StoredMessage]) -> None:
            by_id = {m.msgid: m for m in messages}
            for msgid in self.room_replay.missed(list(by_id)):
                m = by_id[msgid]
                assert m.room is not None
                event = wire.RoomMessage(m.room, m.sender, m.msgid, m.body)
                self.service._tell_room(m.room, event, but=m.sender)

        d = self.store.room_messages_since(cursor, ROOM_REPLAY_LIMIT)
        d.addCallback(replay)
        d.addErrback(lambda f: self.log.failure("re-reading room messages failed", f))
        return d

    def _poll_store(self) -> None:
        now = self.clock.seconds()
        d = self.store.last_message_id()
        d.addCallback(lambda last: self.room_replay.sample(now, last))
        d.addErrback(lambda f: self.log.failure("reading the newest message id failed", f))

    # -- publishing ------------------------------------------------------------

    def _publish_soon(self) -> None:
        """One bus message for everything a committed batch routed."""
        if self._outbox_call is None:
            self._outbox_call = self.clock.callLater(0, self._publish_now)

    def _publish_now(self) -> None:
        if self._outbox_call is not None and self._outbox_call.active():
            self._outbox_call.cancel()
        self._outbox_call = None
        if self._outbox_messages or self._outbox_acks:
            messages, self._outbox_messages = self._outbox_messages, []
            acks, self._outbox_acks = self._outbox_acks, []
            self.peers.publish("b", m=messages, a=acks)
