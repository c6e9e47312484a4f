"""One client connection's conversation with the service.

A ``Session`` takes parsed commands from its protocol and answers each with
exactly one reply, in the order the commands came (docs/protocol.md#rule-2),
even though some replies wait on the disk or on a password hash.  It does
so with a queue of reply *slots*: a command answered at once fills its slot
at once; one answered later fills it when its Deferred fires; slots are
written out strictly from the front.

Commands that change what later commands see (log in, join a room, ...)
are *barriers*: reading from the connection pauses until they are done, so
a pipelined ``LOGIN`` then ``MSG`` works.  Message sends are not barriers,
so a burst of pipelined ``MSG`` lines is committed as one group.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface

from messenger import wire
from messenger.delivery import PAGE_SIZE, DeliveryQueue
from messenger.limits import TokenBucket
from messenger.login_watch import LoginWatch
from messenger.store.interface import (
    LoginRecord,
    MessageRejected,
    NewMessage,
    StorageUnavailable,
    StoredMessage,
    UserRecord,
    conversation_key,
)
from messenger.timefmt import rfc3339

if TYPE_CHECKING:
    from messenger.service import MessengerService

#: A reply is a list of lines to send and callables to run at that point.
Items = list[wire.ServerMessage | Callable[[], None]]

_REJECTION_CODES = {
    MessageRejected.NO_SUCH_USER: 404,
    MessageRejected.NO_SUCH_ROOM: 404,
    MessageRejected.NOT_A_MEMBER: 403,
    MessageRejected.MAILBOX_FULL: 429,
}

#: A login attempt refused because its address failed too often.
_BLOCKED = object()


BARRIERS = (
    wire.CreateAccount,
    wire.Login,
    wire.Resume,
    wire.Join,
    wire.Part,
    wire.SetDisplayName,
    wire.SetPassword,
)

#: Commands whose reply can be large (a HISTORY page of 500 long messages is
#: about 4 MB): no further command is read until such a reply is written,
#: so a client holds the server to about one reply of memory by asking.
LARGE_REPLIES = (wire.History, wire.WhoIsOnline, wire.RoomMembers, wire.MyRooms)


class IPeer(Interface):
    """What a session needs from its connection."""

    address = Attribute("The client's address (host), for per-address limits.")

    def send(message):
        """Write one pushed event (R, C, DLV, ON, OFF, JOINED, PARTED)."""

    def reply(message):
        """Write one line of the reply to a command of this client."""

    def close(bye):
        """Write ``bye`` and close the connection."""

    def pause_reading():
        """Stop handing over commands until resume_reading."""

    def resume_reading():
        """Hand over commands again."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class _Slot:
    __slots__ = ("items",)

    def __init__(self, items: Items | None = None) -> None:
        self.items = items


class Session:
    log = Logger()

    # One per connection: tens of thousands of them on a big server.
    __slots__ = (
        "service",
        "peer",
        "username",
        "display_name",
        "queue",
        "closed",
        "_bucket",
        "_failures",
        "_slots",
        "_output_paused",
        "delivering",
        "_backlog_unknown",
        "_login_read",
    )

    def __init__(self, service: MessengerService, peer: IPeer) -> None:
        self.service = service
        self.peer = peer
        config = service.config
        self.username: str | None = None
        self.display_name: str | None = None
        #: Made on demand (see _start_delivery): an idle connection has none.
        self.queue: DeliveryQueue | None = None
        #: Logged in and told so: direct messages may be pushed from now on.
        self.delivering = False
        #: Until the look-up at login answers, a queue must load the store.
        self._backlog_unknown = True
        #: From a login's store read until delivery starts: what it read,
        #: and the watch that says whether that is still the whole story.
        self._login_read: tuple[LoginRecord, LoginWatch] | None = None
        self.closed = False
        self._bucket = TokenBucket(config.rate, config.burst, service.clock)
        self._failures = 0
        # Made when a reply must wait: an empty deque costs ~600 bytes.
        self._slots: deque[_Slot] | None = None
        self._output_paused = False

    @property
    def user(self) -> str:
        """The logged-in user (for what only a logged-in session does)."""
        assert self.username is not None
        return self.username

    # -- input from the protocol ---------------------------------------

    def handle(self, command: wire.Command) -> None:
        if self.closed:
            return
        if isinstance(command, wire.Acknowledge):
            self._ack(command.msgid)
            return
        if not self._bucket.try_take():
            self.service.metrics.rate_limited()
            self._reply([wire.rate_limited(command.NAME)])
            return
        if self.username is None and not command.BEFORE_LOGIN:
            self._reply([wire.log_in_first(command.NAME)])
            return
        handler = self._handlers[type(command)]
        try:
            result = handler(self, command)
        except Exception:
            self.log.failure("handling {verb} failed", verb=command.NAME)
            result = [wire.server_error(command.NAME)]
        if isinstance(command, LARGE_REPLIES):
            self._reply_large(result, command.NAME)
        else:
            self._reply(result, command.NAME, isinstance(command, BARRIERS))

    def handle_error(self, error: wire.RemoteProtocolError) -> None:
        """A line that did not parse (rule 5), or ``?`` errors."""
        if self.closed or error.verb == "ACK":
            return  # rule 6: ACK never gets a reply
        if not self._bucket.try_take():
            self.service.metrics.rate_limited()
            self._reply([wire.rate_limited(error.verb)])
            return
        command_class = wire.CLIENT_COMMANDS.get(error.verb)
        if (
            isinstance(error, wire.InvalidValue)
            and self.username is None
            and command_class is not None
            and not command_class.BEFORE_LOGIN
        ):
            # Rule 4: values are only checked after login.
            self._reply([wire.log_in_first(error.verb)])
            return
        self._reply([error.to_err()])

    def line_too_long(self) -> None:
        """Answer in turn, then close: the connection cannot be re-synced."""
        if not self.closed:
            self._reply([wire.ERR_LINE_TOO_LONG, lambda: self.close(wire.BYE_LINE_TOO_LONG)])

    def send_event(self, event: wire.ServerMessage) -> None:
        if not self.closed:
            self.peer.send(event)

    def output_paused(self) -> None:
        """The connection's send buffer is full: hold back deliveries."""
        self._output_paused = True
        if self.queue is not None:
            self.queue.pause()

    def output_resumed(self) -> None:
        self._output_paused = False
        if self.queue is not None:
            self.queue.resume()

    def close(self, bye: wire.Bye) -> None:
        """Say goodbye and close; replies still owed are never sent."""
        if self.closed:
            return
        self.closed = True
        if self.queue is not None:
            self.queue.stop()
        self.peer.close(bye)

    def disconnected(self) -> None:
        self.closed = True
        self._forget_login_read()
        if self.queue is not None:
            self.queue.stop()
        self.service.session_ended(self)

    # -- ordered replies -------------------------------------------------

    def _reply(
        self, result: Items | Deferred | _Slot, verb: str = "?", barrier: bool = False
    ) -> None:
        if isinstance(result, _Slot):
            self._hold(result)  # filled by whoever made it
            if result.items is not None:
                self._drain()
            return
        if not isinstance(result, Deferred):
            if self._slots:
                self._hold(_Slot(result))
            else:
                self._emit(result)
            return
        slot = _Slot()
        self._hold(slot)
        if barrier:
            self.peer.pause_reading()

        def server_error(failure: Failure) -> Items:
            return [self._failed(verb, failure)]

        def filled(items: Items) -> None:
            slot.items = items
            self._drain()
            if barrier and not self.closed:
                self.peer.resume_reading()

        result.addErrback(server_error)
        result.addCallback(filled)

    def _reply_large(self, result: Items | Deferred, verb: str) -> None:
        """Like _reply, reading no further command until this is written."""
        if not isinstance(result, Deferred) and not self._slots:
            self._emit(result)  # a full send buffer pauses reading by itself
            return
        self.peer.pause_reading()

        def written(outcome: Items | Failure) -> Items:
            if isinstance(outcome, Failure):
                outcome = [self._failed(verb, outcome)]
            return [*outcome, self._resume_reading]

        if isinstance(result, Deferred):
            result.addBoth(written)
        else:
            result = written(result)
        self._reply(result, verb)

    def _failed(self, verb: str, failure: Failure) -> wire.Err:
        """The reply to a command whose work failed: 503 while the database
        is away (the client may try again), else 500, logged."""
        if failure.check(StorageUnavailable):
            return wire.storage_unavailable(verb)
        self.log.failure("handling {verb} failed", failure, verb=verb)
        return wire.server_error(verb)

    def _resume_reading(self) -> None:
        self.peer.resume_reading()

    def _drain(self) -> None:
        slots = self._slots
        while slots:
            items = slots[0].items
            if items is None:
                break
            slots.popleft()
            self._emit(items)
        if not slots:
            self._slots = None

    def _hold(self, slot: _Slot) -> None:
        if self._slots is None:
            self._slots = deque()
        self._slots.append(slot)

    def _emit(self, items: Items) -> None:
        for item in items:
            if self.closed:
                return
            if callable(item):
                item()
            else:
                self.peer.reply(item)

    # -- accounts ---------------------------------------------------------

    def _usr(self, cmd: wire.CreateAccount):
        if self.username is not None:
            return [wire.err("USR", 403, "this connection is logged in")]
        if len(cmd.password) < self.service.config.min_password_length:
            return [wire.err("USR", 400, "password too short")]
        service = self.service
        d = service.store.get_user(cmd.username)

        def create(existing):
            if existing is not None:
                return False
            d = service.hasher.hash(cmd.password)
            d.addCallback(
                lambda password_hash: service.store.create_user(
                    cmd.username, password_hash, cmd.display_name, service.clock.seconds()
                )
            )
            return d

        def answer(created: bool) -> Items:
            if not created:
                return [wire.err("USR", 409, "username taken")]
            service.account_created(cmd.username)
            return [wire.ok("USR", cmd.username)]

        return d.addCallback(create).addCallback(answer)

    def _login(self, cmd: wire.Login):
        refusal = self._login_refusal("LOGIN")
        if refusal is not None:
            return refusal
        service = self.service
        address = self.peer.address

        def check_password():
            # Decided when this attempt's turn comes (see ConcurrencyLimit).
            if service.failed_logins.blocked(address):
                return _BLOCKED
            d = self._read_login(
                cmd.username, lambda: service.store.login_record(cmd.username, PAGE_SIZE)
            )

            def verify(record):
                d = service.hasher.verify(
                    record.user.password_hash if record else None, cmd.password
                )
                return d.addCallback(lambda good: record if good else None)

            # Counted before the next attempt from this address gets its turn.
            return d.addCallback(verify).addCallback(self._count_failure)

        d = service.password_checks.run(address, check_password)
        return d.addCallback(self._authenticated, "LOGIN")

    def _resume(self, cmd: wire.Resume):
        # Not queued like passwords: a token is too long to guess, and a
        # whole user base must be able to RESUME at once after a restart.
        refusal = self._login_refusal("RESUME")
        if refusal is not None:
            return refusal
        service = self.service
        now = service.clock.seconds()
        d = self._read_login(
            cmd.username,
            lambda: service.store.resume_record(
                cmd.username, token_hash(cmd.token), now, PAGE_SIZE
            ),
        )
        d.addCallback(self._count_failure)
        return d.addCallback(self._authenticated, "RESUME")

    def _read_login(self, username: str, read: Callable[[], Deferred]) -> Deferred:
        """Everything a login needs, in one store call: ``read`` fires with
        the LoginRecord (None for bad credentials), kept with its watch
        (see :mod:`messenger.login_watch`) for :meth:`_start_delivery`."""
        service = self.service
        watch = service.login_watches.begin(username)
        if service.batcher.acks_waiting_from(username):
            # Their messages may read as pending (and be sent once more):
            # delivery reads again once they are committed.
            service.login_watches.pushed(username)
        d = read()

        def read_done(record: LoginRecord | None) -> LoginRecord | None:
            if record is None:
                service.login_watches.end(watch)
            else:
                self._forget_login_read()  # a LOGIN pipelined behind another
                self._login_read = (record, watch)
            return record

        def read_failed(failure: Failure) -> Failure:
            service.login_watches.end(watch)
            return failure

        return d.addCallbacks(read_done, read_failed)

    def _count_failure(self, record):
        if record is None:
            self.service.failed_logins.record(self.peer.address)
        return record

    def _login_refusal(self, verb: str) -> Items | None:
        if self.username is not None:
            return [wire.err(verb, 409, "already logged in")]
        if self.service.failed_logins.blocked(self.peer.address):
            return [wire.too_many_failed_logins(verb)]
        return None

    def _authenticated(self, record, verb: str) -> Items:
        service = self.service
        if self.closed or record is None or record is _BLOCKED:
            self._forget_login_read()
        if self.closed:
            return []
        if record is _BLOCKED:
            return [wire.too_many_failed_logins(verb)]
        if record is None:
            self._failures += 1
            service.metrics.login(False)
            self.log.info("failed {verb} from {address}", verb=verb, address=self.peer.address)
            items: Items = [wire.err(verb, 401, "bad credentials")]
            if self._failures >= service.config.connection_failure_limit:
                items.append(lambda: self.close(wire.BYE_TOO_MANY_FAILURES))
            return items
        user = record.user
        # Rooms as the store has them now: messenger-admin may have changed
        # them.  Before session_started, whose ON goes to room neighbours.
        # Interned: the room directory's string, not one more per session.
        username = sys.intern(user.username)
        service.rooms.set_rooms_of(username, set(record.rooms))
        self.username = username
        self.display_name = user.display_name
        # Not logged here: the connection's one line, at its close, names
        # the user (a log line costs about as much as the rest of a RESUME).
        service.metrics.login(True)
        service.session_started(self)
        return [wire.ok(verb, user.username, user.display_name), self._start_delivery]

    def _forget_login_read(self) -> None:
        if self._login_read is not None:
            self.service.login_watches.end(self._login_read[1])
            self._login_read = None

    def _start_delivery(self) -> None:
        """After OK|LOGIN: direct messages may flow from now on.

        The login's store read brought the first page of waiting messages
        and the pending receipts: used as they are unless a message or
        receipt for the user was pushed since that read began (then the
        store is read again, as below).

        The delivery queue (several hundred bytes with its tables) is made
        only once there is something to deliver: when the look-up made here
        finds messages waiting, or at the first message pushed.  Until that
        look-up has answered, a queue is made loading the store (a message
        pushed meanwhile may or may not be in the look-up's answer; it is in
        the store); after an empty answer, every later message is pushed,
        so a queue made then needs no loading.
        """
        service = self.service
        self.delivering = True
        assert self.username is not None
        login_read, self._login_read = self._login_read, None
        if login_read is not None:
            record, watch = login_read
            if (
                service.login_watches.end(watch)
                and record.pending is not None
                and record.receipts is not None
            ):
                self._backlog_unknown = False
                if record.pending:
                    self._delivery_queue(load=False).start_with(record.pending)
                # After the queue's first page: R lines come before DLV lines.
                service.hand_over_receipts(self, record.receipts)
                return
        d = service.fetch_pending_for(self.username)(0, 1)

        def answered(messages) -> None:
            if self.closed:
                return
            if messages:
                self._delivery_queue(load=True)
            self._backlog_unknown = False
            # After the queue's first page: R lines come before DLV lines.
            service.send_pending_receipts(self)

        def failed(failure) -> None:
            self.log.failure("looking for waiting messages failed", failure)
            if not self.closed:
                self._delivery_queue(load=True)  # it retries its loading
                self._backlog_unknown = False
                service.send_pending_receipts(self)

        d.addCallbacks(answered, failed)

    def _delivery_queue(self, load: bool) -> DeliveryQueue:
        queue = self.queue
        if queue is not None:
            return queue
        service = self.service
        config = service.config
        assert self.username is not None
        queue = self.queue = DeliveryQueue(
            send=self._send_direct,
            fetch=service.fetch_pending_for(self.username),
            clock=service.clock,
            window=config.window,
            retry_initial=config.retry_initial,
            retry_max=config.retry_max,
            on_retry=service.metrics.message_retried,
        )
        if self._output_paused:
            queue.pause()
        if load:
            queue.start()
        return queue

    def deliver(self, message: StoredMessage) -> None:
        """A direct message for this session's user was just committed."""
        if not self.delivering or self.closed:
            return  # the look-up at login finds it in the store
        if self.queue is None and self._backlog_unknown:
            self._delivery_queue(load=True)  # its first page has the message
        else:
            self._delivery_queue(load=False).push_live(message)

    def catch_up(self) -> None:
        """A bus message may have been lost: read the store again for this
        session's direct messages and receipts."""
        if not self.delivering or self.closed:
            return  # delivery has not started: its start reads the store
        if self.queue is not None:
            self.queue.refresh()
        else:
            # No queue yet (nothing was waiting): look, as at login.
            assert self.username is not None
            d = self.service.fetch_pending_for(self.username)(0, 1)
            d.addCallback(
                lambda found: self._delivery_queue(load=True) if found and not self.closed else None
            )
            d.addErrback(lambda f: self.log.failure("looking for waiting messages failed", f))
        self.service.send_pending_receipts(self)

    def _send_direct(self, message: StoredMessage) -> None:
        self.send_event(wire.DirectMessage(message.sender, message.msgid, message.body))

    def _token(self, cmd: wire.NewToken):
        service = self.service
        token = secrets.token_urlsafe(32)
        expires = service.clock.seconds() + service.config.token_ttl
        d = service.store.add_token(self.user, token_hash(token), expires)
        return d.addCallback(lambda _: [wire.ok("TOKEN", token)])

    def _name(self, cmd: wire.SetDisplayName):
        d = self.service.store.set_display_name(self.user, cmd.display_name)

        def done(_) -> Items:
            self.display_name = cmd.display_name
            return [wire.ok("NAME", cmd.display_name)]

        return d.addCallback(done)

    def _passwd(self, cmd: wire.SetPassword):
        service = self.service
        if len(cmd.new) < service.config.min_password_length:
            return [wire.err("PASSWD", 400, "password too short")]

        def verify(user: UserRecord | None) -> Deferred[bool]:
            assert user is not None  # a logged-in session's account
            return service.hasher.verify(user.password_hash, cmd.old)

        def change(good: bool) -> Items | Deferred[Items]:
            if not good:
                return [wire.err("PASSWD", 401, "wrong password")]
            d = service.hasher.hash(cmd.new)
            d.addCallback(lambda h: service.store.set_password_hash(self.user, h))
            return d.addCallback(lambda _: [wire.ok("PASSWD")])

        return service.store.get_user(self.user).addCallback(verify).addCallback(change)

    # -- messages ------------------------------------------------------------

    def _msg(self, cmd: wire.SendMessage):
        return self._submit("MSG", cmd.target, cmd.text, None)

    def _send(self, cmd: wire.SendMessageOnce):
        return self._submit("SEND", cmd.target, cmd.text, cmd.client_id)

    def _bcst(self, cmd: wire.Broadcast):
        return self._submit("BCST", wire.GENERAL_ROOM, cmd.text, None)

    def _submit(self, verb: str, target: str, text: str, client_id: str | None):
        service = self.service
        # Every check is made by the store in the commit, after the look-up
        # of a re-sent SEND: a retry gets its first id even if the room or
        # the recipient has changed since.
        if wire.is_room(target):
            message = NewMessage(self.user, None, target, text, client_id)
        else:
            message = NewMessage(self.user, target, None, text, client_id)

        slot = _Slot()

        def stored(outcome) -> None:
            if isinstance(outcome, Failure):
                slot.items = [self._failed(verb, outcome)]
            elif isinstance(outcome, MessageRejected):
                slot.items = [wire.err(verb, _REJECTION_CODES[outcome], outcome.value)]
            else:
                if not outcome.duplicate:
                    service.route(outcome)
                slot.items = [wire.ok(verb, str(outcome.msgid))]
            self._drain()

        # A plain callback and a bare slot: no Deferred on the hottest path.
        service.batcher.submit_message(message, stored)
        return slot

    def _ack(self, msgid: int) -> None:
        if self.queue is None:
            return  # rule 6: a premature ACK is ignored
        message = self.queue.ack(msgid)
        if message is None:
            return  # unknown or repeated
        self.service.acknowledge(self.user, message)

    # -- presence and rooms ------------------------------------------------

    def _who(self, cmd: wire.WhoIsOnline):
        return [wire.ok("WHO", *self.service.online_users())]

    def _whois(self, cmd: wire.LookUpUser):
        service = self.service
        session = service.online.get(cmd.username)
        if session is not None:
            return [wire.ok("WHOIS", cmd.username, "online", "-", session.display_name or "")]

        def answer(user) -> Items:
            if user is None:
                return [wire.err("WHOIS", 404, "no such user")]
            # Looked up again: the user may have logged in meanwhile (here,
            # or on another node: then the display name is the store's).
            if service.is_online(user.username):
                return [wire.ok("WHOIS", user.username, "online", "-", user.display_name)]
            # A disconnect not written yet is newer than what the store has.
            seen = service.last_seen_due.get(user.username, user.last_seen)
            last_seen = "-" if seen is None else rfc3339(seen)
            return [wire.ok("WHOIS", user.username, "offline", last_seen, user.display_name)]

        return service.store.get_user(cmd.username).addCallback(answer)

    def _join(self, cmd: wire.Join):
        service = self.service
        if service.rooms.is_member(cmd.room, self.user):
            return [wire.ok("JOIN", cmd.room)]
        d = service.store.join_room(cmd.room, self.user, service.clock.seconds())

        def joined(_) -> Items:
            service.joined(cmd.room, self.user)
            return [wire.ok("JOIN", cmd.room)]

        return d.addCallback(joined)

    def _part(self, cmd: wire.Part):
        service = self.service
        if not service.rooms.is_member(cmd.room, self.user):
            return [wire.err("PART", 404, "not a member")]
        d = service.store.part_room(cmd.room, self.user)

        def parted(_) -> Items:
            service.parted(cmd.room, self.user)
            return [wire.ok("PART", cmd.room)]

        return d.addCallback(parted)

    def _rooms(self, cmd: wire.MyRooms):
        return [wire.ok("ROOMS", *sorted(self.service.rooms.rooms_of(self.user)))]

    def _members(self, cmd: wire.RoomMembers):
        rooms = self.service.rooms
        if not rooms.exists(cmd.room):
            return [wire.err("MEMBERS", 404, "no such room")]
        return [wire.ok("MEMBERS", cmd.room, *sorted(rooms.members(cmd.room)))]

    def _history(self, cmd: wire.History):
        service = self.service
        target = cmd.target
        if wire.is_room(target):
            if not service.rooms.exists(target):
                return [wire.err("HISTORY", 404, "no such room")]
            if not service.rooms.is_member(target, self.user):
                return [wire.err("HISTORY", 403, "not a member")]
            key = conversation_key(target)
            d = succeed(True)
        else:
            key = conversation_key(self.user, target)
            d = service.store.get_user(target).addCallback(lambda user: user is not None)

        def read(exists: bool):
            if not exists:
                return None
            # Messages this connection sent just before are part of it.
            d = service.batcher.flush()
            return d.addCallback(
                lambda _: service.store.history(key, cmd.limit, cmd.direction, cmd.cursor)
            )

        def answer(messages) -> Items:
            if messages is None:
                return [wire.err("HISTORY", 404, "no such user")]
            items: Items = [
                wire.HistoryLine(target, m.msgid, m.sender, rfc3339(m.created_at), m.body)
                for m in messages
            ]
            items.append(wire.ok("HISTORY", target, str(len(messages))))
            return items

        return d.addCallback(read).addCallback(answer)

    # -- connection --------------------------------------------------------

    def _ping(self, cmd: wire.Ping):
        if cmd.token is None:
            return [wire.ok("PING")]
        return [wire.ok("PING", cmd.token)]

    def _help(self, cmd: wire.Help):
        return [wire.ok("HELP", wire.HELP_TEXT)]

    def _quit(self, cmd: wire.Quit):
        return [wire.ok("QUIT"), lambda: self.close(wire.BYE_GOODBYE)]

    _handlers: dict[type[wire.Command], Callable[[Session, Any], Any]] = {
        wire.CreateAccount: _usr,
        wire.Login: _login,
        wire.NewToken: _token,
        wire.Resume: _resume,
        wire.SendMessage: _msg,
        wire.SendMessageOnce: _send,
        wire.Broadcast: _bcst,
        wire.WhoIsOnline: _who,
        wire.LookUpUser: _whois,
        wire.Join: _join,
        wire.Part: _part,
        wire.MyRooms: _rooms,
        wire.RoomMembers: _members,
        wire.History: _history,
        wire.SetDisplayName: _name,
        wire.SetPassword: _passwd,
        wire.Ping: _ping,
        wire.Help: _help,
        wire.Quit: _quit,
    }
