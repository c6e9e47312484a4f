"""A model-based test of the service core (issue 4).

Hypothesis drives the real server -- ``MessengerService`` on an in-memory
``ImmediateSqliteStore`` and a ``task.Clock``, reached through real
``MessengerProtocol`` objects on ``StringTransport``s, so framing, the
session and the delivery queues are all exercised -- with random sequences
of commands from a few users on a few connections.  After every step it
compares each connection's output with what :class:`Spec`, a reference
model of docs/protocol.md written with plain dicts, sets and lists, says must
appear.

What is checked after every step:

* Replies: each command got exactly one reply, in order, equal to the
  model's (``OK`` lines exactly, ``ERR`` lines by verb and code: reason texts
  are not part of the contract).  ``HISTORY`` returns exactly the model's
  slice of the conversation, with ids, senders, timestamps and bodies.
* Events: each connection got exactly the model's multiset of events.  On
  top of that, every event is checked against the rules of the contract on
  its own, so a failure says which rule was broken:

  - ``R`` only for a direct message addressed to the connection's user and
    still unacknowledged, with the right sender and body; never again after
    the ACK was taken, on this or any later login;
  - ``C`` only to members of the room other than the sender;
  - ``DLV`` only to the sender, only for an acknowledged message, once per
    message over all of the sender's connections;
  - ``ON``/``OFF``/``JOINED``/``PARTED`` never about the connection's own user;
  - ``BYE`` is the last line a connection gets, and the server closes exactly
    the connections the model says it closes;
  - after a login, pending ``R`` then ``DLV`` come after the ``OK``, ``R``
    oldest first.
* Message ids: every stored message's id is learned from its ``OK|MSG``
  (``OK|SEND``, ``OK|BCST``) and the ids increase strictly in the order the
  messages were accepted.
* Flow control and liveness: on a logged-in connection the oldest
  ``WINDOW`` unacknowledged messages have all been received and at most
  ``WINDOW`` received messages are unacknowledged; each ACK lets the next one
  through, so every unacknowledged message arrives eventually.

Where duplicates are allowed (decided from docs/protocol.md, "Delivery
guarantees"): an ``R`` is sent once when it enters the window (at login or
when it arrives or when an ACK frees a slot) and again for each retry while
the recipient stays connected: 2 s after it was sent, then after 4, 8, ...
capped at 60 s.  The model predicts retries exactly: ``task.Clock.advance``
runs a timer that is overdue once and the next one is scheduled from the
new time, so a long clock advance re-sends an overdue ``R`` once.  Every
other event is predicted exactly once: ``C`` to each member online when the
message is committed, ``DLV`` once per acknowledged message (at once if the
sender is online, else at its next login), ``ON``/``OFF``/``JOINED``/
``PARTED`` as docs/protocol.md ("Where PROTOCOL.md leaves a choice") says:
to the other online members of the room / online users sharing a room,
never on a takeover.

Several things at once.  Most rules are one command followed by all it
causes (the group commit, closed connections reported lost).  Four rules
put more into one reactor turn: ``pipeline`` (sends in one packet, maybe
then ``HISTORY``), ``send_drop_resend`` (the connection drops before the
``OK|SEND``; the client logs in again and re-sends it: the message exists
once and the re-send gets its id), ``same_tick`` (commands on different
connections read before the group commit) and ``ack_race`` (an ACK while
the message's sender logs in, quits or drops).  The model's rules for
them: a send or an ACK takes effect when it is committed, after the other
commands of the turn (an ACK frees its window slot at once); a login's
pending ``R`` and ``DLV`` follow once the writes accepted before it are
committed; a connection the server has closed (after its ``BYE``) gets
nothing more and what it still sends is not read, but its session ends
(``OFF``) only when the reactor reports the connection lost -- before or
after the commit, both orders are tried.  A ``DLV`` that cannot reach the
sender's connection is owed at its next login.

Choices docs/protocol.md leaves open, taken from docs/protocol.md: ``ACK`` is
taken for any unacknowledged message of the user queued on the current
connection (including one not yet sent because of the window); ``HISTORY``
after ``MSG`` includes that message; ``MEMBERS`` answers non-members;
messages to oneself are delivered like any other; ``DLV`` carries the time
the ACK was committed; ``PART|#general`` is allowed.  Also followed: a
re-sent ``SEND`` (same client_id within 24 h) gets the first id whatever
changed since (docs/protocol.md says so without exception); a login that takes
over a session already closing (after ``QUIT``) is still a takeover: no
``ON``, no ``OFF``.

The server runs with a small window and mailbox (``WINDOW``,
``MAX_PENDING``) so flow control and ``429 mailbox full`` come up often.
Not modelled, and switched off: the rate limit and the idle timeout (their
own tests cover them), the per-address failed-login limit (each connection
comes from an address of its own; the per-connection limit of five is
modelled).

Every run is deterministic (``derandomize=True``): 500 examples of up to
40 steps, about 10 s when nothing fails.  For a longer run by hand::

    MESSENGER_MODEL_EXAMPLES=2000 python -m pytest tests/test_model.py -q

(``MESSENGER_MODEL_STEPS`` sets the steps per example.)
"""

from __future__ import annotations

import itertools
import os
import re
import unittest
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.defer import maybeDeferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from messenger.config import ServerConfig
from messenger.passwords import PasswordHasher
from messenger.protocol import MessengerFactory
from messenger.service import MessengerService
from messenger.store.sqlite import ImmediateSqliteStore
from tests.support.model_spec import (
    BODIES,
    CLIENT_IDS,
    DISPLAYS,
    JOINABLE,
    MAX_PENDING,
    PASSWORDS,
    RETRY_INITIAL,
    RETRY_MAX,
    SHORT_PASSWORD,
    SPELLINGS,
    START,
    TARGETS,
    USERS,
    WINDOW,
    Spec,
    canonical_target,
    dm_key,
    history_lines,
    is_reply,
    normalize,
    render,
)

EXAMPLES = int(os.environ.get("MESSENGER_MODEL_EXAMPLES", "500"))
STEPS = int(os.environ.get("MESSENGER_MODEL_STEPS", "40"))


class Client:
    def __init__(self, protocol, transport):
        self.protocol = protocol
        self.transport = transport
        self.lost = False  # connectionLost has been called

    def send(self, *lines: str) -> None:
        self.protocol.dataReceived("".join(line + "\n" for line in lines).encode("utf-8"))


SLOTS = st.integers(0, 4)


class MessengerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.clock = task.Clock()
        self.clock.advance(START)
        self.config = ServerConfig(
            window=WINDOW,
            max_pending=MAX_PENDING,
            retry_initial=RETRY_INITIAL,
            retry_max=RETRY_MAX,
            rate=1e6,
            burst=10**9,
            idle_timeout=1e12,
            argon2_time_cost=1,
            argon2_memory_cost=8,
        )
        self.store = ImmediateSqliteStore()
        hasher = PasswordHasher(None, 1, 8, run_in_thread=maybeDeferred)
        self.service = MessengerService(self.store, self.config, self.clock, hasher)
        self.service.startService()
        self.factory = MessengerFactory(self.service, self.config, self.clock)
        self.spec = Spec(self.clock.seconds())
        self.clients: dict[int, Client] = {}  # connection id -> client
        self.slots: dict[int, int] = {}  # slot -> connection id
        self.numbers = itertools.count(1)
        self.dropped: set = set()  # connections the client dropped this step
        self.dlv_seen: set = set()

    def teardown(self):
        self.store.close()

    # -- driving the server ----------------------------------------------------

    def conn(self, slot: int) -> int:
        """The connection on ``slot``, opened (and greeted) if there is none."""
        if slot not in self.slots:
            k = next(self.numbers)
            address = IPv4Address(
                "TCP", "10.%d.%d.%d" % (k // 62500, k // 250 % 250, k % 250), 40000
            )
            protocol = self.factory.buildProtocol(address)
            transport = StringTransport(peerAddress=address)
            protocol.makeConnection(transport)
            assert transport.value() == b"HELLO|1|messenger\n", transport.value()
            transport.clear()
            self.clients[k] = Client(protocol, transport)
            self.slots[slot] = k
            self.spec.connect(k)
        return self.slots[slot]

    def drop(self, k: int) -> None:
        """The client goes away without a word."""
        client = self.clients[k]
        client.transport.loseConnection()
        client.lost = True
        client.protocol.connectionLost(Failure(ConnectionDone()))
        self.dropped.add(k)
        self.spec.lost(k)
        for slot, kk in list(self.slots.items()):
            if kk == k:
                del self.slots[slot]

    def settle(self, commit_first: bool = True) -> None:
        """Run what is due now (group commits) and report the connections
        the server closed as lost, as the reactor would, in either order."""
        for _ in range(1000):
            progressed = False
            if commit_first:
                progressed = self.run_due()
            for client in self.clients.values():
                if client.transport.disconnecting and not client.lost:
                    client.lost = True
                    client.protocol.connectionLost(Failure(ConnectionDone()))
                    progressed = True
            progressed = self.run_due() or progressed
            if not progressed:
                return
        raise AssertionError("the server never settles")

    def run_due(self) -> bool:
        ran = False
        while any(call.getTime() <= self.clock.seconds() for call in self.clock.getDelayedCalls()):
            self.clock.advance(0)
            ran = True
        return ran

    def begin(self) -> None:
        self.spec.new_step()
        self.dropped = set()

    def finish(self, commit_first: bool = True) -> None:
        self.settle(commit_first)
        self.spec.end_of_tick(commit_first)
        self.check()

    # -- checking a step -------------------------------------------------------

    def check(self) -> None:
        spec = self.spec
        output = {}
        for k, client in self.clients.items():
            data = client.transport.value().decode("utf-8")
            client.transport.clear()
            assert data == "" or data.endswith("\n"), f"conn {k}: output ends mid-line: {data!r}"
            output[k] = data.split("\n")[:-1]

        # The server closed exactly the connections the model closed.
        for k, client in self.clients.items():
            expected_closed = spec.conns[k].closed
            assert client.lost == expected_closed, (
                f"conn {k}: server {'closed' if client.lost else 'kept'} the connection, "
                f"model says it is {'closed' if expected_closed else 'open'}"
            )

        # Replies, in order; new message ids and tokens are learned here.
        for k in sorted(self.clients):
            actual = [normalize(line) for line in output[k] if is_reply(line)]
            expected = self.expected_replies(k, actual)
            if k in self.dropped:
                # Commands unanswered when the client dropped get no reply.
                assert actual == expected[: len(actual)], (
                    f"conn {k} replies:\n{actual}\n!= {expected}"
                )
            else:
                assert actual == expected, (
                    f"conn {k} ({spec.conns[k].user}) replies:\n  got      {actual}\n  expected {expected}"
                )

        # Message ids increase strictly in the order messages were accepted.
        ids = [m.msgid for m in spec.accepted]
        assert None not in ids, f"a stored message's id was never learned: {spec.accepted}"
        assert all(a < b for a, b in zip(ids, ids[1:])), f"message ids do not increase: {ids}"

        # Each event on its own, against the rules of the contract.
        for k in sorted(self.clients):
            self.check_events(k, output[k])

        # Then exactly the events the model predicts.
        for k in sorted(self.clients):
            got = Counter(line for line in output[k] if not is_reply(line))
            predicted = Counter(render(event) for event in spec.events.get(k, []))
            assert got == predicted, (
                f"conn {k} ({spec.conns[k].user}) events:\n"
                f"  unexpected {sorted((got - predicted).elements())}\n"
                f"  missing    {sorted((predicted - got).elements())}"
            )

        # Flow control and liveness on every logged-in connection.
        for user, k in spec.online.items():
            conn = spec.conns[k]
            waiting = spec.unacked[user]
            outstanding = {m.msgid for m in waiting} & conn.seen
            assert len(outstanding) <= WINDOW, f"{user}: {sorted(outstanding)} outstanding > window"
            missing = [m for m in waiting[:WINDOW] if m.msgid not in conn.seen]
            assert not missing, f"{user}: never received {missing} though it is in the window"

        for k in [k for k, c in self.clients.items() if c.lost]:
            del self.clients[k]
        spec.forget_closed()
        self.slots = {slot: k for slot, k in self.slots.items() if k in self.clients}

    def expected_replies(self, k: int, actual: list[str]) -> list[str]:
        spec = self.spec
        out: list[str] = []
        for item in spec.replies.get(k, []):
            kind = item[0]
            if kind == "line":
                out.append(item[1])
            elif kind == "bind":
                _, verb, m = item
                if m.msgid is None:
                    got = actual[len(out)] if len(out) < len(actual) else ""
                    match = re.fullmatch(rf"OK\|{verb}\|([1-9][0-9]*)", got)
                    if match is None:
                        out.append(f"OK|{verb}|<new id>")
                        continue
                    earlier = spec.message(int(match.group(1)))
                    assert earlier is None, (
                        f"conn {k}: {got} for a new message, but {earlier} has that id"
                    )
                    m.msgid = int(match.group(1))
                out.append(f"OK|{verb}|{m.msgid}")
            elif kind == "history":
                _, target, messages, limit, direction, cursor = item
                out.extend(history_lines(target, messages, limit, direction, cursor))
            elif kind == "token":
                got = actual[len(out)] if len(out) < len(actual) else ""
                match = re.fullmatch(r"OK\|TOKEN\|([A-Za-z0-9_\-]{32,128})", got)
                if match is None:
                    out.append("OK|TOKEN|<token>")
                    continue
                account = spec.accounts[item[1]]
                account.tokens.add(match.group(1))
                account.issued.append(match.group(1))
                out.append(got)
        return out

    def check_events(self, k: int, lines: list[str]) -> None:
        spec = self.spec
        conn = spec.conns[k]
        user = conn.user
        for i, line in enumerate(lines):
            if is_reply(line):
                continue
            kind = line.split("|", 1)[0]
            if kind == "BYE":
                assert i == len(lines) - 1, f"conn {k}: {line} is not the last line: {lines}"
                continue
            assert user is not None, f"conn {k} is not logged in but got {line}"
            if kind == "R":
                _, sender, msgid, body = line.split("|", 3)
                m = spec.message(int(msgid))
                assert m is not None and m.recipient == user, (
                    f"{user} got {line}: not addressed to {user}"
                )
                assert (sender, body) == (m.sender, m.body), f"{user} got {line} for {m}"
                assert m in spec.unacked[user], f"{user} got {line} after acknowledging it"
                conn.seen.add(m.msgid)
            elif kind == "C":
                _, room, sender, msgid, body = line.split("|", 4)
                m = spec.message(int(msgid))
                assert m is not None and (m.room, m.sender, m.body) == (room, sender, body), line
                assert sender != user, f"{user} got its own room message back: {line}"
                assert user in spec.members_during[room], f"{user} is not in {room} but got {line}"
            elif kind == "DLV":
                _, msgid, recipient, _when = line.split("|")
                m = spec.message(int(msgid))
                assert m is not None and m.sender == user, f"{user} got {line}: not its message"
                assert m.recipient == recipient and m not in spec.unacked[recipient], (
                    f"{user} got {line} but it was not acknowledged"
                )
                assert m.msgid not in self.dlv_seen, f"{user} got {line} a second time"
                self.dlv_seen.add(m.msgid)
            elif kind in ("ON", "OFF"):
                assert line.split("|")[1] != user, f"{user} was told about itself: {line}"
            elif kind in ("JOINED", "PARTED"):
                _, room, who = line.split("|")
                assert who != user, f"{user} was told about itself: {line}"
                assert user in spec.members_during[room], f"{user} is not in {room} but got {line}"
            else:
                raise AssertionError(f"conn {k}: unknown line {line!r}")
        # After a login: OK, then the pending R (oldest first) and DLV.
        for verb in ("LOGIN", "RESUME"):
            ok = [i for i, line in enumerate(lines) if line.startswith(f"OK|{verb}|")]
            if ok:
                before = [line for line in lines[: ok[0]] if line.startswith(("R|", "DLV|"))]
                assert not before, f"conn {k}: {before} before OK|{verb}"
                rs = [int(line.split("|")[2]) for line in lines[ok[0] :] if line.startswith("R|")]
                assert rs == sorted(rs), f"conn {k}: pending R not oldest first: {rs}"

    # -- rules -----------------------------------------------------------------
    #
    # Rules with ``slot`` act on one of four connection slots, opening a new
    # connection there if there is none (so a slot that was closed is a
    # reconnect).  Rules with ``who`` act on one of the logged-in
    # connections; ``anonymous`` sends what needs a login on a connection
    # that has none.

    def logged_in(self, who: int) -> int:
        slots = sorted(slot for slot, k in self.slots.items() if self.spec.conns[k].user)
        return self.slots[slots[who % len(slots)]]

    def password_for(self, user: str, kind: str) -> str:
        account = self.spec.accounts.get(user)
        current = account.password if account else PASSWORDS[user][0]
        if kind == "current":
            return current
        if kind == "other":
            return [p for p in PASSWORDS[user] if p != current][0]
        return SHORT_PASSWORD

    @initialize(users=st.lists(st.sampled_from(USERS[:3]), unique=True, max_size=3))
    def accounts_online(self, users):
        """Some users that exist and are logged in, each on a slot of its own."""
        for user in users:
            self.usr(slot=3, name=user, password="good", display=user.capitalize())
        for slot, user in enumerate(users):
            self.login(slot=slot, name=user, password="current")

    @rule(
        slot=SLOTS,
        name=st.sampled_from(SPELLINGS),
        password=st.sampled_from(["good", "short"]),
        display=st.sampled_from(DISPLAYS),
    )
    def usr(self, slot, name, password, display):
        self.begin()
        k = self.conn(slot)
        secret = PASSWORDS[name.lower()][0] if password == "good" else SHORT_PASSWORD
        self.clients[k].send(f"USR|{name}|{secret}|{display}")
        self.spec.usr(k, name.lower(), secret, display)
        self.finish()

    @rule(
        slot=SLOTS,
        name=st.sampled_from(SPELLINGS),
        password=st.sampled_from(["current", "current", "other", "short"]),
    )
    def login(self, slot, name, password):
        self.begin()
        k = self.conn(slot)
        secret = self.password_for(name.lower(), password)
        self.clients[k].send(f"LOGIN|{name}|{secret}")
        self.spec.login(k, name.lower(), secret)
        self.finish()

    @rule(slot=SLOTS, name=st.sampled_from(SPELLINGS), which=st.integers(0, 3))
    def resume(self, slot, name, which):
        """RESUME with a token issued to someone who has one (maybe revoked
        since), for ``which`` < 3, else with a made-up token."""
        self.begin()
        k = self.conn(slot)
        holders = sorted(u for u, a in self.spec.accounts.items() if a.issued)
        token = "A" * 43
        if holders and which < 3:
            # The name is a holder's (its case kept), the token one of theirs.
            holder = holders[which % len(holders)]
            name = holder.upper() if name != name.lower() else holder
            issued = self.spec.accounts[holder].issued
            token = issued[which % len(issued)]
        self.clients[k].send(f"RESUME|{name}|{token}")
        self.spec.resume(k, name.lower(), token)
        self.finish()

    @rule(slot=SLOTS)
    def quit(self, slot):
        self.begin()
        k = self.conn(slot)
        self.clients[k].send("QUIT")
        self.spec.quit(k)
        self.finish()

    @precondition(lambda self: self.slots)
    @rule(which=st.integers(0, 4))
    def disconnect(self, which):
        """The connection drops (transport.loseConnection + connectionLost)."""
        self.begin()
        slots = sorted(self.slots)
        self.drop(self.slots[slots[which % len(slots)]])
        self.finish()

    @rule(
        command=st.sampled_from(
            [
                "MSG|bob|hi",
                "BCST| ",
                "SEND|bad id|bob|hi",
                "HISTORY|bob|0",
                "WHO",
                "JOIN|#r1",
                "TOKEN",
                "NAME|Al",
                "PASSWD|x|y",
                "ACK|1",
                "ROOMS",
                "WHOIS|zed",
            ]
        )
    )
    def anonymous(self, command):
        """Rule 4: before login, a command that needs one is 401 (its values
        are not checked); ACK gets no reply."""
        self.begin()
        k = self.conn(-1)  # a slot no login rule uses
        if self.spec.conns[k].user is None:
            self.clients[k].send(command)
            verb = command.split("|")[0]
            if verb != "ACK":
                self.spec.err(k, verb, 401)
        self.finish()

    @precondition(lambda self: self.spec.online)
    @rule(who=st.integers(0, 3))
    def token(self, who):
        self.begin()
        k = self.logged_in(who)
        self.clients[k].send("TOKEN")
        self.spec.token(k)
        self.finish()

    @precondition(lambda self: self.spec.online)
    @rule(
        who=st.integers(0, 3),
        old=st.sampled_from(["current", "other"]),
        new=st.sampled_from(["other", "short"]),
    )
    def passwd(self, who, old, new):
        self.begin()
        k = self.logged_in(who)
        user = self.spec.conns[k].user
        old_secret = self.password_for(user, old)
        new_secret = self.password_for(user, new)
        self.clients[k].send(f"PASSWD|{old_secret}|{new_secret}")
        self.spec.passwd(k, old_secret, new_secret)
        self.finish()

    @precondition(lambda self: self.spec.online)
    @rule(who=st.integers(0, 3), display=st.sampled_from(DISPLAYS))
    def name(self, who, display):
        self.begin()
        k = self.logged_in(who)
        self.clients[k].send(f"NAME|{display}")
        self.spec.name(k, display)
        self.finish()

    @precondition(lambda self: self.spec.online)
    @rule(who=st.integers(0, 3), to=st.sampled_from(TARGETS), body=st.sampled_from(BODIES))
    def msg(self, who, to, body):
        self.begin()
        k = self.logged_in(who)
        self.clients[k].send(f"MSG|{to}|{body}")
        self.spec.submit(k, "MSG", to, body)
        self.finish()

    @precondition(lambda self: self.spec.online)
    @rule(
        who=st.integers(0, 3),
        client_id=st.sampled_from(CLIENT_IDS),
        to=st.sampled_from(TARGETS),
        body=st.sampled_from(BODIES),
    )
    def send(self, who, client_id, to, body):
        self.begin()
        k = self.logged_in(who)
        self.clients[k].send(f"SEND|{client_id}|{to}|{body}")
        self.spec.submit(k, "SEND", to, body, client_id)
        self.finish()

    @precondition(lambda self: self.spec.online)
    @rule(who=st.integers(0, 3), body=st.sampled_from(BODIES))
    def bcst(self, who, body):
        self.begin()
        k = self.logged_in(who)
        self.clients[k].send(f"BCST|{body}")
        self.spec.submit(k, "BCST", "#general", body)
        self.finish()

    @precondition(lambda self: self.spec.online)
    @rule(
        who=st.integers(0, 3),
        client_id=st.sampled_from(CLIENT_IDS[:2]),
        to=st.sampled_from(TARGETS[:-1]),
        body=st.sampled_from(BODIES[:-1]),
        commit_first=st.booleans(),
    )
    def send_drop_resend(self, who, client_id, to, body, commit_first):
        """SEND, the connection drops before the OK, the client logs in again
        on a new connection and re-sends it: the message exists once."""
        self.begin()
        k = self.logged_in(who)
        slot = [s for s, kk in self.slots.items() if kk == k][0]
        user = self.spec.conns[k].user
        line = f"SEND|{client_id}|{to}|{body}"
        self.clients[k].send(line)
        self.drop(k)
        # The SEND is committed after the drop: no R or C for the old connection.
        self.spec.submit(k, "SEND", to, body, client_id)
        if commit_first:
            self.settle()
        k2 = self.conn(slot)
        secret = self.spec.accounts[user].password
        self.clients[k2].send(f"LOGIN|{user}|{secret}", line)
        self.spec.login(k2, user, secret)
        self.spec.submit(k2, "SEND", to, body, client_id)
        self.finish()

    @precondition(lambda self: self.spec.online)
    @rule(
        who=st.integers(0, 3),
        commands=st.lists(
            st.tuples(
                st.sampled_from(["MSG", "SEND", "BCST"]),
                st.sampled_from(TARGETS),
                st.sampled_from(BODIES),
                st.sampled_from(CLIENT_IDS),
            ),
            min_size=2,
            max_size=4,
        ),
        history=st.none()
        | st.tuples(
            st.sampled_from(TARGETS),
            st.sampled_from([3, 1, 500]),
            st.sampled_from([None, "before", "after"]),
            st.integers(0, 15),
        ),
    )
    def pipeline(self, who, commands, history):
        """Several sends in one packet (one group commit), maybe then HISTORY."""
        self.begin()
        k = self.logged_in(who)
        lines = []
        for verb, target, body, client_id in commands:
            if verb == "MSG":
                lines.append(f"MSG|{target}|{body}")
                self.spec.submit(k, verb, target, body)
            elif verb == "SEND":
                lines.append(f"SEND|{client_id}|{target}|{body}")
                self.spec.submit(k, verb, target, body, client_id)
            else:
                lines.append(f"BCST|{body}")
                self.spec.submit(k, verb, "#general", body)
        if history is not None:
            lines.append(self.history_line(k, *history))
        self.clients[k].send(*lines)
        self.finish()

    @precondition(lambda self: self.spec.online)
    @rule(
        who=st.integers(0, 3),
        kind=st.sampled_from(["seen", "seen", "any", "bogus", "malformed"]),
        which=st.integers(0, 7),
    )
    def ack(self, who, kind, which):
        """ACK a message this connection received, any message, or nonsense."""
        self.begin()
        k = self.logged_in(who)
        seen = sorted(self.spec.conns[k].seen)
        every = [m.msgid for m in self.spec.accepted]
        msgid = None
        if kind == "seen" and seen:
            msgid = seen[which % len(seen)]
        elif kind == "any" and every:
            msgid = every[which % len(every)]
        if msgid is not None:
            line = f"ACK|{msgid}"
        elif kind == "malformed":
            line = ["ACK|x1", "ACK", "ACK|0", "ack|1|2"][which % 4]
        else:
            line, msgid = "ACK|999999", 999999
        self.clients[k].send(line)
        self.spec.ack(k, msgid)
        self.finish()

    @precondition(lambda self: self.spec.online)
    @rule(who=st.integers(0, 3), room=st.sampled_from(JOINABLE))
    def join(self, who, room):
        self.begin()
        k = self.logged_in(who)
        self.clients[k].send(f"JOIN|{room}")
        self.spec.join(k, room)
        self.finish()

    @precondition(lambda self: self.spec.online)
    @rule(who=st.integers(0, 3), room=st.sampled_from(JOINABLE + ["#none"]))
    def part(self, who, room):
        self.begin()
        k = self.logged_in(who)
        self.clients[k].send(f"PART|{room}")
        self.spec.part(k, room)
        self.finish()

    @precondition(lambda self: self.spec.online)
    @rule(
        who=st.integers(0, 3),
        command=st.sampled_from(
            [
                "WHO",
                "ROOMS",
                "WHOIS|alice",
                "WHOIS|Bob",
                "WHOIS|zed",
                "MEMBERS|#general",
                "MEMBERS|#R1",
                "MEMBERS|#none",
            ]
        ),
    )
    def look(self, who, command):
        self.begin()
        k = self.logged_in(who)
        self.clients[k].send(command)
        self.spec.look(k, command)
        self.finish()

    @precondition(lambda self: self.spec.online)
    @rule(
        who=st.integers(0, 3),
        of=st.sampled_from(TARGETS),
        limit=st.sampled_from([3, 1, 500, 0]),
        direction=st.sampled_from([None, "before", "after"]),
        at=st.integers(0, 15),
    )
    def history(self, who, of, limit, direction, at):
        self.begin()
        k = self.logged_in(who)
        self.clients[k].send(self.history_line(k, of, limit, direction, at))
        self.finish()

    def history_line(self, k: int, of: str, limit: int, direction, at: int) -> str:
        """A HISTORY command (told to the model); ``at`` chooses the cursor
        among 0 and the ids of the conversation's messages known so far and
        their neighbours (the boundaries)."""
        user = self.spec.conns[k].user
        target = canonical_target(of) or ""
        key = target if target.startswith("#") else dm_key(user, target)
        ids = [m.msgid for m in self.spec.conversations.get(key, []) if m.msgid is not None]
        candidates = [0] + sorted({i + d for i in ids for d in (-1, 0, 1)} - {0})
        cursor = candidates[at % len(candidates)]
        self.spec.history(k, of, limit, direction, cursor)
        if direction is None:
            return f"HISTORY|{of}|{limit}"
        return f"HISTORY|{of}|{limit}|{direction}|{cursor}"

    @rule(
        actions=st.lists(
            st.one_of(
                st.tuples(st.just("login"), SLOTS, st.sampled_from(SPELLINGS)),
                st.tuples(st.just("usr"), SLOTS, st.sampled_from(SPELLINGS)),
                st.tuples(st.just("ack"), SLOTS, st.integers(0, 7)),
                st.tuples(
                    st.just("msg"), SLOTS, st.sampled_from(TARGETS), st.sampled_from(BODIES[:2])
                ),
                st.tuples(st.just("join"), SLOTS, st.sampled_from(JOINABLE)),
                st.tuples(st.just("part"), SLOTS, st.sampled_from(JOINABLE)),
                st.tuples(st.just("quit"), SLOTS),
                st.tuples(st.just("drop"), SLOTS),
            ),
            min_size=2,
            max_size=4,
        ),
        commit_first=st.booleans(),
    )
    def same_tick(self, actions, commit_first):
        """Commands on different connections read in one reactor turn,
        before the group commit.  Sends, or one ACK, not both (which of
        them the commit takes first is the server's choice), and nobody
        logs in as a sender then (its OK would go nowhere).  Then
        the reactor runs the commit and reports lost connections, in the
        order ``commit_first`` says."""
        self.begin()
        self.spec.uncommitted = []
        used, acked, senders = set(), False, set()
        for action in actions:
            kind, slot = action[0], action[1]
            if slot in used or (kind == "drop" and slot not in self.slots):
                continue
            if (kind == "msg" and acked) or (kind == "ack" and (acked or senders)):
                continue
            if kind == "login" and action[2].lower() in senders:
                continue
            used.add(slot)
            k = self.conn(slot)
            if self.spec.conns[k].closing:
                # The server closed it moments ago: what the client still
                # sends is not read.
                self.clients[k].send("WHO")
                continue
            if kind == "login":
                secret = self.password_for(action[2].lower(), "current")
                self.clients[k].send(f"LOGIN|{action[2]}|{secret}")
                self.spec.login(k, action[2].lower(), secret)
            elif kind == "usr":
                secret = PASSWORDS[action[2].lower()][0]
                self.clients[k].send(f"USR|{action[2]}|{secret}|{action[2]}")
                self.spec.usr(k, action[2].lower(), secret, action[2])
            elif kind == "ack":
                seen = sorted(self.spec.conns[k].seen)
                msgid = seen[action[2] % len(seen)] if seen else 999999
                self.clients[k].send(f"ACK|{msgid}")
                self.spec.ack(k, msgid)
                acked = True
            elif kind == "msg":
                senders.add(self.spec.conns[k].user)
                self.clients[k].send(f"MSG|{action[2]}|{action[3]}")
                self.spec.submit(k, "MSG", action[2], action[3])
            elif kind in ("join", "part"):
                self.clients[k].send(f"{kind.upper()}|{action[2]}")
                getattr(self.spec, kind)(k, action[2])
            elif kind == "quit":
                self.clients[k].send("QUIT")
                self.spec.quit(k)
            else:
                self.drop(k)
        self.finish(commit_first)

    @precondition(
        lambda self: any(
            self.spec.conns[k].seen & {m.msgid for m in self.spec.unacked[u]}
            for u, k in self.spec.online.items()
        )
    )
    @rule(
        who=st.integers(0, 3),
        which=st.integers(0, 3),
        sender_does=st.sampled_from(["login", "quit", "drop"]),
        ack_first=st.booleans(),
        commit_first=st.booleans(),
    )
    def ack_race(self, who, which, sender_does, ack_first, commit_first):
        """In one reactor turn a recipient ACKs a message it received and
        the message's sender logs in (maybe taking over), QUITs or drops.
        The reactor then runs the commit and reports lost connections, in
        the order ``commit_first`` says, and a sender now offline logs in
        again: the DLV must reach it exactly once, at once or then."""
        self.begin()
        spec = self.spec
        holders = sorted(
            slot
            for slot, k in self.slots.items()
            if spec.conns[k].user
            and spec.conns[k].seen & {m.msgid for m in spec.unacked[spec.conns[k].user]}
        )
        k = self.slots[holders[who % len(holders)]]
        recipient = spec.conns[k].user
        waiting = [m for m in spec.unacked[recipient] if m.msgid in spec.conns[k].seen]
        m = waiting[which % len(waiting)]
        spec.uncommitted = []

        def ack():
            self.clients[k].send(f"ACK|{m.msgid}")
            spec.ack(k, m.msgid)

        def sender_acts():
            sender_conn = spec.open_conn(m.sender)
            if sender_does == "login":
                self.login_on_a_free_slot(m.sender)
            elif sender_conn is not None and sender_does == "quit":
                self.clients[sender_conn].send("QUIT")
                spec.quit(sender_conn)
            elif sender_conn is not None:
                self.drop(sender_conn)

        for step in (ack, sender_acts) if ack_first else (sender_acts, ack):
            step()
        self.finish(commit_first)
        if spec.open_conn(m.sender) is None:
            # The sender comes back: a DLV it is owed arrives now.
            self.begin()
            self.login_on_a_free_slot(m.sender)
            self.finish()

    def login_on_a_free_slot(self, user: str) -> None:
        """``user`` sends LOGIN on a connection not logged in (a new one if
        need be); the model is told."""
        spec = self.spec
        free = [
            slot
            for slot in range(5)
            if slot not in self.slots or not spec.conns[self.slots[slot]].user
        ]
        k = self.conn(free[0])
        secret = spec.accounts[user].password
        self.clients[k].send(f"LOGIN|{user}|{secret}")
        spec.login(k, user, secret)

    @rule(seconds=st.sampled_from([1.0, 2.0, 0.5, 3.5, 8.0, 30.0, 61.0, 86401.0]))
    def advance(self, seconds):
        """Time passes: retries are due at 2, 6, 14, 30, 62, 122, ... s."""
        self.begin()
        self.clock.advance(seconds)
        self.spec.advance(self.clock.seconds())
        self.finish()


MessengerMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


_MachineTestCase: type[unittest.TestCase] = MessengerMachine.TestCase


@pytest.mark.slow
class TestMessengerModel(_MachineTestCase):  # type: ignore[valid-type,misc]
    """The model, in full: EXAMPLES runs of STEPS steps (tens of seconds)."""


class TestMessengerModelQuick(_MachineTestCase):  # type: ignore[valid-type,misc]
    """A few runs of the model, for the fast test loop (-m "not slow")."""

    settings = settings(_MachineTestCase.settings, max_examples=min(EXAMPLES, 20))  # type: ignore[attr-defined]


del _MachineTestCase  # a TestCase bound to a module name would run as a third test
