"""The reference model of the protocol that tests/test_model.py checks the
server against: what every connection must receive, worked out from
docs/protocol.md alone (no server code), plus the options it assumes."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime

# The server's options for this test, and the protocol's constants.
WINDOW = 2
MAX_PENDING = 3
RETRY_INITIAL = 2.0
RETRY_MAX = 60.0
MIN_PASSWORD = 8
FAILURES_PER_CONNECTION = 5
SEND_KEY_LIFETIME = 24 * 60 * 60.0
START = 1795339800.0  # 2026-11-22T09:30:00Z

# What the commands are made of.
USERS = ["alice", "bob", "carol", "dave"]
PASSWORDS = {user: [f"{user}-secret-1", f"{user}-secret-2"] for user in USERS}
SHORT_PASSWORD = "short7!"
SPELLINGS = ["alice", "bob", "carol", "dave", "Alice", "BOB"]
TARGETS = [
    "alice",
    "bob",
    "carol",
    "Bob",
    "dave",
    "#general",
    "#r1",
    "#R1",
    "#r2",
    "zed",
    "#none",
    "bad name",
]
JOINABLE = ["#r1", "#r2", "#general", "#R2"]
BODIES = ["hi", "a|b|c", "h\u00e9llo \u2713", " padded ", " \t "]
DISPLAYS = ["Alice Liddell", "  Spaced  ", "\u00dcn\u00ef"]
CLIENT_IDS = ["k1", "k2", "K1", "bad id"]

_USERNAME = re.compile(r"[A-Za-z0-9_.\-]{1,32}\Z")
_ROOM = re.compile(r"#[a-z0-9_\-]{1,32}\Z")
_CLIENT_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}\Z")


def timestamp(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def blank(body: str) -> bool:
    """Only White_Space characters (the bodies used here hold no others)."""
    return all(char in " \t" for char in body)


def canonical_target(target: str) -> str | None:
    """A target's canonical form, or None if it is not a valid one."""
    lowered = target.lower()
    if target.startswith("#"):
        return lowered if _ROOM.match(lowered) else None
    return lowered if _USERNAME.match(target) else None


def dm_key(a: str, b: str) -> tuple[str, ...]:
    return ("dm",) + tuple(sorted((a, b)))


# ---------------------------------------------------------------------------
# The reference model


class Message:
    """A stored message.  Its id is learned from the OK that accepted it."""

    def __init__(self, sender, recipient, room, body, time):
        self.sender = sender
        self.recipient = recipient  # a direct message: the user
        self.room = room  # a room message: the room
        self.body = body
        self.time = time
        self.msgid: int | None = None

    @property
    def conversation(self):
        return self.room if self.room else dm_key(self.sender, self.recipient)

    def __repr__(self):
        return f"<msg {self.msgid} {self.sender}->{self.recipient or self.room} {self.body!r}>"


class Account:
    def __init__(self, password: str, display: str):
        self.password = password
        self.display = display
        self.last_seen: float | None = None
        self.tokens: set = set()  # valid session tokens
        self.issued: list[str] = []  # every token ever issued, revoked or not


class Conn:
    """One connection, as the model sees it."""

    def __init__(self):
        self.user: str | None = None
        self.failures = 0
        #: The server said BYE (or the client went away): nothing more is
        #: written to it and nothing it sends is read.
        self.closing = False
        #: The connection is lost: its session has ended.
        self.closed = False
        #: Messages sent as R on this connection and not acknowledged yet,
        #: with their retry timer: [when it is due, current interval].
        self.inflight: dict[Message, list] = {}
        #: msgids this connection has received as R (what the client knows).
        self.seen: set = set()


def render(event) -> str:
    """An expected event as a line (after message ids are known)."""
    kind = event[0]
    if kind == "R":
        m = event[1]
        return f"R|{m.sender}|{m.msgid}|{m.body}"
    if kind == "C":
        m = event[1]
        return f"C|{m.room}|{m.sender}|{m.msgid}|{m.body}"
    if kind == "DLV":
        _, m, recipient, when = event
        return f"DLV|{m.msgid}|{recipient}|{timestamp(when)}"
    return "|".join(event)  # ON, OFF, JOINED, PARTED, BYE: plain fields


def history_lines(target, messages, limit, direction, cursor) -> list[str]:
    if direction == "after":
        chosen = [m for m in messages if m.msgid > cursor][:limit]
    elif direction == "before":
        chosen = [m for m in messages if m.msgid < cursor][-limit:]
    else:
        chosen = messages[-limit:]
    lines = [f"H|{target}|{m.msgid}|{m.sender}|{timestamp(m.time)}|{m.body}" for m in chosen]
    return lines + [f"OK|HISTORY|{target}|{len(chosen)}"]


class Spec:
    """docs/protocol.md (and docs/protocol.md's choices) as plain data.

    Each command method takes the connection it came on and records, for
    the current step, the replies that connection must get and the events
    every connection must get.  A reply is ("line", text), ("bind", verb,
    message) for an ``OK`` that carries a new message's id, ("history", ...)
    or ("token", user); an event is a tuple rendered by :func:`render`.
    """

    def __init__(self, now: float):
        self.now = now
        self.accounts: dict[str, Account] = {}
        self.rooms: dict[str, set] = {"#general": set()}
        self.conversations: dict[object, list[Message]] = defaultdict(list)
        #: Direct messages not acknowledged yet, per recipient, oldest first.
        self.unacked: dict[str, list[Message]] = defaultdict(list)
        #: DLVs owed to offline senders: sender -> [(message, recipient, time)].
        self.receipts_owed: dict[str, list] = defaultdict(list)
        #: SEND idempotency keys: (sender, client_id) -> (message, time).
        self.send_keys: dict[tuple, tuple] = {}
        self.conns: dict[int, Conn] = {}
        #: user -> the connection it is logged in on.
        self.online: dict[str, int] = {}
        #: Every stored message in the order it was accepted.
        self.accepted: list[Message] = []
        self.new_step()

    def new_step(self) -> None:
        self.replies: dict[int, list] = defaultdict(list)
        self.events: dict[int, list] = defaultdict(list)
        #: While commands of one reactor turn are read, what waits for
        #: their group commit (see :meth:`at_commit`); None otherwise.
        self.uncommitted: list | None = None
        #: Connections the server closed; the reactor reports them lost at
        #: the end of the step.
        self.losing: list[int] = []
        #: Who was a member of each room at some time during the step.
        self.members_during = {room: set(members) for room, members in self.rooms.items()}

    def at_commit(self, effect) -> None:
        """Sends and ACKs take effect when they are committed: a message is
        stored, routed and answered, an ACK's DLV sent.  Commands read in
        the same reactor turn come first (docs/protocol.md leaves the order of
        commands on different connections open; this is the server's)."""
        if self.uncommitted is None:
            effect()
        else:
            self.uncommitted.append(effect)

    def commit(self) -> None:
        effects, self.uncommitted = self.uncommitted or [], None
        for effect in effects:
            effect()

    # -- helpers ---------------------------------------------------------------

    def reply(self, k: int, line: str) -> None:
        if not self.conns[k].closing:
            self.replies[k].append(("line", line))

    def bind(self, k: int, verb: str, m: Message) -> None:
        if not self.conns[k].closing:
            self.replies[k].append(("bind", verb, m))

    def err(self, k: int, verb: str, code: int) -> None:
        self.reply(k, f"ERR|{verb}|{code}")

    def event(self, k: int, event: tuple) -> None:
        if not self.conns[k].closing:
            self.events[k].append(event)

    def logged_in(self, k: int, verb: str) -> str | None:
        """The connection's user, or None after answering 401 (rule 4)."""
        user = self.conns[k].user
        if user is None:
            self.err(k, verb, 401)
        return user

    def rooms_of(self, user: str) -> set:
        return {room for room, members in self.rooms.items() if user in members}

    def neighbours(self, user: str) -> set:
        found = set()
        for room in self.rooms_of(user):
            found |= self.rooms[room]
        return found - {user}

    def tell_room(self, room: str, event: tuple, but: str) -> None:
        for member in sorted(self.rooms[room] - {but}):
            if member in self.online:
                self.event(self.online[member], event)

    def tell_neighbours(self, user: str, event: tuple) -> None:
        for other in sorted(self.neighbours(user)):
            if other in self.online:
                self.event(self.online[other], event)

    def message(self, msgid: int) -> Message | None:
        for m in self.accepted:
            if m.msgid == msgid:
                return m
        return None

    # -- delivery --------------------------------------------------------------

    def pump(self, user: str) -> None:
        """The oldest WINDOW unacknowledged messages are outstanding on the
        user's connection; any of them not sent there yet is sent now."""
        k = self.open_conn(user)
        if k is None:
            return
        conn = self.conns[k]
        for m in self.unacked[user][:WINDOW]:
            if m not in conn.inflight:
                conn.inflight[m] = [self.now + RETRY_INITIAL, RETRY_INITIAL]
                self.event(k, ("R", m))

    def advance(self, now: float) -> None:
        """Time passes: every overdue R is sent again, once."""
        self.now = now
        for user in sorted(self.online):
            k = self.online[user]
            for m, timer in self.conns[k].inflight.items():
                if timer[0] <= now:
                    self.event(k, ("R", m))
                    timer[1] = min(timer[1] * 2, RETRY_MAX)
                    timer[0] = now + timer[1]

    # -- connections and accounts --------------------------------------------

    def connect(self, k: int) -> None:
        self.conns[k] = Conn()

    def close(self, k: int, bye: tuple) -> None:
        """The server says ``bye`` and closes the connection.  The session
        ends when the connection is lost, which the reactor reports later
        (:meth:`lost`); until then its user is still online, but nothing
        more reaches the connection."""
        conn = self.conns[k]
        if conn.closing:
            return
        self.event(k, bye)
        conn.closing = True
        conn.inflight = {}
        self.losing.append(k)

    def lost(self, k: int) -> None:
        """The connection is gone: the session ends (OFF, unless taken over)."""
        conn = self.conns[k]
        conn.closing = conn.closed = True
        conn.inflight = {}
        user = conn.user
        if user is not None and self.online.get(user) == k:
            del self.online[user]
            self.accounts[user].last_seen = self.now
            self.tell_neighbours(user, ("OFF", user))

    def end_of_tick(self, commit_first: bool = True) -> None:
        """The reactor runs the group commit and reports the connections
        the server closed, in either order."""
        losing, self.losing = self.losing, []
        if commit_first:
            self.commit()
        for k in losing:
            self.lost(k)
        self.commit()

    def open_conn(self, user: str) -> int | None:
        """The connection ``user`` is logged in on, unless it is closing."""
        k = self.online.get(user)
        return None if k is None or self.conns[k].closing else k

    def forget_closed(self) -> None:
        for k in [k for k, conn in self.conns.items() if conn.closed]:
            del self.conns[k]

    def usr(self, k: int, user: str, password: str, display: str) -> None:
        if self.conns[k].user is not None:
            return self.err(k, "USR", 403)
        if len(password) < MIN_PASSWORD:
            return self.err(k, "USR", 400)
        if user in self.accounts:
            return self.err(k, "USR", 409)
        self.accounts[user] = Account(password, display.strip(" "))
        self.rooms["#general"].add(user)
        self.members_during["#general"].add(user)
        self.tell_room("#general", ("JOINED", "#general", user), but=user)
        self.reply(k, f"OK|USR|{user}")

    def login(self, k: int, user: str, password: str) -> None:
        if self.conns[k].user is not None:
            return self.err(k, "LOGIN", 409)
        account = self.accounts.get(user)
        if account is None or account.password != password:
            return self.failed(k, "LOGIN")
        self.start_session(k, user, "LOGIN")

    def resume(self, k: int, user: str, token: str) -> None:
        if self.conns[k].user is not None:
            return self.err(k, "RESUME", 409)
        account = self.accounts.get(user)
        if account is None or token not in account.tokens:
            return self.failed(k, "RESUME")
        self.start_session(k, user, "RESUME")

    def failed(self, k: int, verb: str) -> None:
        conn = self.conns[k]
        conn.failures += 1
        self.err(k, verb, 401)
        if conn.failures >= FAILURES_PER_CONNECTION:
            self.close(k, ("BYE", "429", "too many failed logins"))

    def start_session(self, k: int, user: str, verb: str) -> None:
        previous = self.online.get(user)
        self.online[user] = k
        self.conns[k].user = user
        if previous is not None:
            # One session per user: the old one is closed, nobody is told.
            self.close(previous, ("BYE", "409", "logged in elsewhere"))
        else:
            self.tell_neighbours(user, ("ON", user))
        self.reply(k, f"OK|{verb}|{user}|{self.accounts[user].display}")

        def deliver():
            """The pending R and DLV, read once every write accepted
            before the login is committed."""
            if not self.conns[k].closing:  # else they wait for the next login
                self.pump(user)
                for m, recipient, when in self.receipts_owed.pop(user, []):
                    self.event(k, ("DLV", m, recipient, when))

        if self.uncommitted:
            self.uncommitted.append(deliver)
        else:
            deliver()

    def quit(self, k: int) -> None:
        self.reply(k, "OK|QUIT")
        self.close(k, ("BYE", "200", "goodbye"))

    def token(self, k: int) -> None:
        user = self.logged_in(k, "TOKEN")
        if user is not None:
            self.replies[k].append(("token", user))

    def passwd(self, k: int, old: str, new: str) -> None:
        user = self.logged_in(k, "PASSWD")
        if user is None:
            return
        account = self.accounts[user]
        if len(new) < MIN_PASSWORD:
            return self.err(k, "PASSWD", 400)
        if old != account.password:
            return self.err(k, "PASSWD", 401)
        account.password = new
        account.tokens.clear()
        self.reply(k, "OK|PASSWD")

    def name(self, k: int, display: str) -> None:
        user = self.logged_in(k, "NAME")
        if user is not None:
            self.accounts[user].display = display.strip(" ")
            self.reply(k, f"OK|NAME|{display.strip(' ')}")

    # -- messages ----------------------------------------------------------------

    def submit(self, k: int, verb: str, target: str, body: str, client_id=None) -> None:
        """MSG, SEND and BCST (target "#general")."""
        sender = self.logged_in(k, verb)
        if sender is None:
            return
        canonical = canonical_target(target)
        bad_id = client_id is not None and not _CLIENT_ID.match(client_id)
        if canonical is None or blank(body) or bad_id:
            return self.err(k, verb, 400)
        target = canonical
        self.at_commit(lambda: self.store(k, verb, sender, target, body, client_id))

    def store(self, k: int, verb: str, sender: str, target: str, body: str, client_id) -> None:
        """The rest of a send, done when it is committed."""
        if client_id is not None:
            # docs/protocol.md: the same client_id within 24 h stores and delivers
            # nothing new and answers with the first msgid, whatever else.
            first = self.send_keys.get((sender, client_id))
            if first is not None and first[1] > self.now - SEND_KEY_LIFETIME:
                return self.bind(k, verb, first[0])
        if target.startswith("#"):
            if target not in self.rooms:
                return self.err(k, verb, 404)
            if sender not in self.rooms[target]:
                return self.err(k, verb, 403)
            m = Message(sender, None, target, body, self.now)
        else:
            if target not in self.accounts:
                return self.err(k, verb, 404)
            if len(self.unacked[target]) >= MAX_PENDING:
                return self.err(k, verb, 429)
            m = Message(sender, target, None, body, self.now)
        self.accepted.append(m)
        self.conversations[m.conversation].append(m)
        if client_id is not None:
            self.send_keys[(sender, client_id)] = (m, self.now)
        if m.room:
            self.tell_room(m.room, ("C", m), but=sender)
        else:
            self.unacked[m.recipient].append(m)
            if m.recipient in self.online:
                self.pump(m.recipient)
        self.bind(k, verb, m)

    def ack(self, k: int, msgid: int | None) -> None:
        """No reply, ever.  Taken if the message waits for this user."""
        conn = self.conns[k]
        user = conn.user
        m = self.message(msgid) if msgid is not None else None
        if conn.closing or user is None or m is None or m not in self.unacked[user]:
            return  # (a closing connection's input is not read)
        self.unacked[user].remove(m)
        conn.inflight.pop(m, None)
        self.pump(user)
        self.at_commit(lambda: self.receipt(m, user))

    def receipt(self, m: Message, recipient: str) -> None:
        """The ACK is committed: DLV to the sender now, or at its next login."""
        k = self.open_conn(m.sender)
        if k is not None:
            self.event(k, ("DLV", m, recipient, self.now))
        else:
            self.receipts_owed[m.sender].append((m, recipient, self.now))

    # -- rooms and presence --------------------------------------------------

    def join(self, k: int, room: str) -> None:
        user = self.logged_in(k, "JOIN")
        if user is None:
            return
        room = room.lower()
        if user not in self.rooms.get(room, ()):
            self.rooms.setdefault(room, set()).add(user)
            self.members_during.setdefault(room, set()).add(user)
            self.tell_room(room, ("JOINED", room, user), but=user)
        self.reply(k, f"OK|JOIN|{room}")

    def part(self, k: int, room: str) -> None:
        user = self.logged_in(k, "PART")
        if user is None:
            return
        room = room.lower()
        if user not in self.rooms.get(room, ()):
            return self.err(k, "PART", 404)
        self.rooms[room].discard(user)
        self.tell_room(room, ("PARTED", room, user), but=user)
        self.reply(k, f"OK|PART|{room}")

    def look(self, k: int, command: str) -> None:
        """WHO, WHOIS, ROOMS and MEMBERS."""
        verb, _, arg = command.partition("|")
        user = self.logged_in(k, verb)
        if user is None:
            return
        if verb == "WHO":
            self.reply(k, "|".join(["OK|WHO"] + sorted(self.online)))
        elif verb == "ROOMS":
            self.reply(k, "|".join(["OK|ROOMS"] + sorted(self.rooms_of(user))))
        elif verb == "MEMBERS":
            room = arg.lower()
            if room not in self.rooms:
                return self.err(k, verb, 404)
            self.reply(k, "|".join(["OK|MEMBERS", room] + sorted(self.rooms[room])))
        elif verb == "WHOIS":
            who = arg.lower()
            account = self.accounts.get(who)
            if account is None:
                return self.err(k, verb, 404)
            if who in self.online:
                state, seen = "online", "-"
            else:
                state = "offline"
                seen = "-" if account.last_seen is None else timestamp(account.last_seen)
            self.reply(k, f"OK|WHOIS|{who}|{state}|{seen}|{account.display}")

    def history(self, k: int, target: str, limit: int, direction, cursor) -> None:
        user = self.logged_in(k, "HISTORY")
        if user is None:
            return
        canonical = canonical_target(target)
        if canonical is None or not 1 <= limit <= 500:
            return self.err(k, "HISTORY", 400)
        target = canonical
        if target.startswith("#"):
            if target not in self.rooms:
                return self.err(k, "HISTORY", 404)
            if user not in self.rooms[target]:
                return self.err(k, "HISTORY", 403)
            key: str | tuple[str, ...] = target
        else:
            if target not in self.accounts:
                return self.err(k, "HISTORY", 404)
            key = dm_key(user, target)
        snapshot = list(self.conversations[key])
        self.replies[k].append(("history", target, snapshot, limit, direction, cursor))


# ---------------------------------------------------------------------------
# The machine: the real server, driven step by step, checked against Spec


def is_reply(line: str) -> bool:
    return line.startswith(("OK|", "ERR|", "H|"))


def normalize(line: str) -> str:
    """ERR lines are compared by verb and code only."""
    if line.startswith("ERR|"):
        return "|".join(line.split("|")[:3])
    return line
