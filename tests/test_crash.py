"""Crash consistency: ``kill -9`` at random moments of a busy server.

Issue 4.  A real ``twistd messenger`` (see :mod:`tests.support.server`) is
killed with SIGKILL again and again while several clients use it at once,
and started again each time on the same database:

- four senders pipeline bursts of ``SEND`` (with client ids) and ``MSG``
  to two recipients who stay offline, two who are online, and a room;
  after every restart they log in again and re-send each ``SEND`` that had
  no ``OK`` (idempotency), plus a few that had one;
- the two online recipients take ``R`` lines and answer with pipelined
  batches of ``ACK``;
- one connection pipelines ``USR`` lines for new accounts (and re-sends,
  after a restart, those that had no answer: ``OK`` or ``409`` are both
  right then);
- the senders ``JOIN`` new rooms now and then.

Each kill is aimed by a seeded random choice: after the n-th sign-up reply,
the n-th ``OK`` for a message, the n-th ``R`` line, right after the n-th
``ACK`` was written, after a random delay, or while the server is itself
still starting (recovering the database).  The kills land wherever the
threads are at that moment: the seed fixes the plan, not the interleaving.

At the end, on a server that is left running, every guarantee is checked
from the outside: every id that got ``OK`` is delivered to its recipient
and is in the conversation's history exactly once; every body delivered or
stored is one that was sent, by that sender, to that target; a ``SEND`` is
stored once whatever the number of re-sends, and every ``OK`` for it
carries the same id; accounts that got ``OK|USR`` log in with their
password; memberships that got ``OK|JOIN`` are there; and SQLite's own
integrity check passes on the database after a clean stop.

A second test kills the server at every step of creating a new database
(just before each SQL statement of its first start, from a hook inside the
server process, where a kill from outside would land only by luck) and
checks that it starts again on what the kill left.

Environment:

- ``MESSENGER_CRASH_SEED``: the seed (printed at the start and in every
  failure); set it to replay a run's plan.
- ``MESSENGER_SOAK_KILLS``: the number of kills (default 24), e.g. 500 for a
  soak run by hand.
- ``MESSENGER_RELIABILITY_REPORT``: a path; the figures of the run are
  written there as JSON (docs/reliability.md quotes them).

``python -m pytest -s tests/test_crash.py`` shows the one-line summary.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
import traceback
from collections import Counter, OrderedDict, deque
from collections.abc import Callable

import pytest
from twisted.trial.unittest import TestCase

from tests.support.report import merge_report
from tests.support.server import TWISTD, ConnectionClosed, LineClient, ServerProcess, is_reply
from tests.test_integration import NO_RATE_LIMIT, PASSWORD, login, msgid_of, read_deliveries, signup

SEED_ENV = "MESSENGER_CRASH_SEED"
KILLS_ENV = "MESSENGER_SOAK_KILLS"
DEFAULT_KILLS = 24

SENDERS = ("s0", "s1", "s2", "s3")
ONLINE = ("on0", "on1")  # logged in during the run, ACKing
OFFLINE = ("off0", "off1")  # log in only at the end
RECIPIENTS = ONLINE + OFFLINE
CHECKER = "checker"  # sends the end markers
ROOM = "#crash"  # senders and online recipients are members
TARGETS = RECIPIENTS + (ROOM,)
#: Pipelining thousands of lines: no rate limit, no mailbox limit.
SERVER_ARGS = NO_RATE_LIMIT + ("--max-pending", "100000000")

#: Commands a sender keeps outstanding (sent, reply not yet read).
SENDER_WINDOW = 60
#: No reply for this long while commands are outstanding: the server hangs.
REPLY_TIMEOUT = 30.0
#: A cycle whose kill never comes (a bug in this test) ends with an error.
CYCLE_TIMEOUT = 60.0
#: How long a kill waits for its trigger before killing anyway.
TRIGGER_TIMEOUT = 5.0
#: Kill triggers; each is used about equally often.
TRIGGERS = ("signup", "send", "delivery", "ack", "delay", "startup")

#: Bits of body text: a | inside the body, non-ASCII, the client's escapes.
FLAVOURS = ("plain", "a|b|c", "ünïcødé ✓", "tab\\tand\\\\n", "  spaced  out ", "∅|∞", "x")


#: kill -9 loops: minutes of restarts (docs/reliability.md).
pytestmark = pytest.mark.slow


class _Errors:
    """Problems seen by the worker threads; the main thread fails with them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[str] = []

    def add(self, text: str) -> None:
        with self._lock:
            self.items.append(text)


class _Progress:
    """Counters of one cycle that kill triggers wait on."""

    FIELDS = ("usr", "ok", "r", "ack")

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.counts = dict.fromkeys(self.FIELDS, 0)
        self.last = dict.fromkeys(self.FIELDS, 0.0)

    def bump(self, name: str, n: int = 1) -> None:
        with self.cond:
            self.counts[name] += n
            self.last[name] = time.monotonic()
            self.cond.notify_all()

    def wait_for(self, name: str, target: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.counts[name] >= target, timeout)


class _Attempt:
    """One message a sender wrote (at least once)."""

    __slots__ = ("sender", "target", "body", "client_id", "cycle", "ok_ids", "ok_cycles")

    def __init__(
        self, sender: str, target: str, body: str, client_id: str | None, cycle: int
    ) -> None:
        self.sender = sender
        self.target = target
        self.body = body
        self.client_id = client_id  # None: MSG, never re-sent
        self.cycle = cycle  # of the server process it was first sent to
        self.ok_ids: list[int] = []  # the id of every OK it got
        self.ok_cycles: list[int] = []  # and the cycle each came in

    def line(self) -> str:
        if self.client_id is None:
            return f"MSG|{self.target}|{self.body}"
        return f"SEND|{self.client_id}|{self.target}|{self.body}"

    @property
    def verb(self) -> str:
        return "MSG" if self.client_id is None else "SEND"


class _Sender:
    """What one sender has sent, over every connection of the run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.attempts: list[_Attempt] = []
        #: SENDs that had no OK yet, in the order they were first sent.
        self.unconfirmed: OrderedDict[str, _Attempt] = OrderedDict()
        self.count = 0
        self.joins_sent: set[str] = set()
        self.joins_ok: set[str] = set()
        self.resent = 0  # SENDs re-sent after a restart (no OK before)
        self.repeated = 0  # SENDs re-sent although they had an OK
        #: Commands of the current connection still waiting for a reply.
        self.pending: deque[tuple[str, object]] = deque()


class _Signups:
    """Every USR the run sent: name -> (password, display name)."""

    def __init__(self) -> None:
        self.accounts: dict[str, tuple[str, str]] = {}
        self.sent: set[str] = set()  # USR written at least once
        self.confirmed: set[str] = set()  # OK|USR, or 409 for a re-sent one
        self.unconfirmed: OrderedDict[str, None] = OrderedDict()
        self.conflicts = 0  # re-sent after a kill, already stored: 409
        self.pending: deque[str] = deque()


class CrashConsistencyTests(TestCase):
    """kill -9 under load, restart on the same database, check everything."""

    # The test method is synchronous (blocking sockets, threads); this only
    # documents the bound: a default run takes well under a minute.
    timeout = 1800

    def setUp(self) -> None:
        seed_text = os.environ.get(SEED_ENV)
        self.seed = int(seed_text) if seed_text else random.SystemRandom().randrange(10**9)
        self.kills = int(os.environ.get(KILLS_ENV) or DEFAULT_KILLS)
        self.rng = random.Random(f"{self.seed}-main")
        print(
            f"\ncrash test: seed {self.seed} ({SEED_ENV}={self.seed} replays this plan), {self.kills} kills"
        )

    def note(self) -> str:
        return f"[seed {self.seed}: {SEED_ENV}={self.seed} python -m pytest -s tests/test_crash.py]"

    def assert_none(self, problems: list[str], what: str, shown: int = 25) -> None:
        if problems:
            more = f"\n... and {len(problems) - shown} more" if len(problems) > shown else ""
            self.fail(
                f"{len(problems)} {what} {self.note()}:\n" + "\n".join(problems[:shown]) + more
            )

    def rng_for(self, *parts: object) -> random.Random:
        return random.Random("-".join(str(p) for p in (self.seed,) + parts))

    # ------------------------------------------------------------------
    # the test

    def test_ok_messages_survive_repeated_kill_9(self):
        """A message acknowledged to its sender is never lost, changed or doubled across kill -9,
        nor is an acknowledged account or room membership (many kills under load, same database)."""
        started = time.monotonic()
        self.errors = _Errors()
        self.senders = {name: _Sender(name) for name in SENDERS}
        self.signups = _Signups()
        #: Every R and C line any client read during the run:
        #: (reader, target, sender, msgid, body).
        self.seen: list[tuple[str, str, str, int, str]] = []
        self.kill_log: list[dict] = []

        server = ServerProcess(self, *SERVER_ARGS)
        self.server = server
        self._set_up_users(server)

        plan = self._plan(self.kills)
        for index, trigger in enumerate(plan):
            self._cycle(server, index, trigger)
            self.assert_none(self.errors.items, f"problems in cycle {index} ({trigger})")
        self.assertGreaterEqual(len(self.kill_log), min(self.kills, 20))
        if self.kills >= len(TRIGGERS):
            # Kills did land mid-sign-up, mid-delivery, right after ACKs...
            fired = {k["trigger"] for k in self.kill_log if k["fired"]}
            self.assertEqual(
                set(TRIGGERS) - fired, set(), f"triggers that never fired {self.note()}"
            )

        self._start(server, "after the last kill")
        self._settle(server)
        figures = self._verify(server)
        self._check_database(server)

        figures["duration_s"] = round(time.monotonic() - started, 1)
        self._report(figures)

    # ------------------------------------------------------------------
    # set-up and plan

    def _set_up_users(self, server: ServerProcess) -> None:
        setup = server.client()
        for name in SENDERS + RECIPIENTS + (CHECKER,):
            signup(setup, name)
        setup.close()
        for name in SENDERS + ONLINE:
            client = server.client()
            login(client, name)
            self.assertEqual(client.command(f"JOIN|{ROOM}"), f"OK|JOIN|{ROOM}")
            client.close()

    def _plan(self, kills: int) -> list[str]:
        plan = [TRIGGERS[i % len(TRIGGERS)] for i in range(kills)]
        self.rng.shuffle(plan)
        if plan and plan[0] == "startup":
            # The server is running (not starting) when the first cycle begins.
            swap = next((i for i, t in enumerate(plan) if t != "startup"), 0)
            plan[0], plan[swap] = plan[swap], plan[0]
        return plan

    # ------------------------------------------------------------------
    # one cycle: traffic, a kill

    def _cycle(self, server: ServerProcess, index: int, trigger: str) -> None:
        rng = self.rng
        if trigger == "startup":
            self.assertFalse(server.running)
            # The previous cycle killed it: start it and kill it while it
            # opens (and recovers) the database.
            delay = rng.uniform(0.0, 0.4)
            server.spawn()
            time.sleep(delay)  # a random moment of the start is the point
            server.kill()
            self.kill_log.append(
                {"cycle": index, "trigger": trigger, "fired": True, "delay_s": round(delay, 3)}
            )
            return
        if not server.running:
            self._start(server, f"after kill {index}")
        progress = _Progress()
        self.signups.pending = deque()
        for sender in self.senders.values():
            sender.pending = deque()
        deadline = time.monotonic() + CYCLE_TIMEOUT
        workers = [
            self._thread(self._run_sender, self.senders[name], index, progress, deadline)
            for name in SENDERS
        ]
        workers += [
            self._thread(self._run_recipient, name, index, progress, deadline) for name in ONLINE
        ]
        workers.append(self._thread(self._run_signup, index, progress, deadline))
        for worker in workers:
            worker.start()

        fired = True
        if trigger == "delay":
            time.sleep(rng.uniform(0.0, 0.6))  # a random moment is the point
        else:
            field, top = {
                "signup": ("usr", 12),
                "send": ("ok", 250),
                "delivery": ("r", 60),
                "ack": ("ack", 60),
            }[trigger]
            fired = progress.wait_for(field, rng.randint(1, top), TRIGGER_TIMEOUT)
        snapshot = self._snapshot(progress)
        server.kill()
        snapshot.update(cycle=index, trigger=trigger, fired=fired)
        self.kill_log.append(snapshot)

        for worker in workers:
            worker.join(max(0.1, deadline + 5 - time.monotonic()))
        stuck = [w.name for w in workers if w.is_alive()]
        self.assertEqual(stuck, [], f"clients still busy after the kill {self.note()}")

    def _start(self, server: ServerProcess, when: str) -> None:
        try:
            server.start()
        except AssertionError as e:
            self.fail(f"the server does not start again {when} {self.note()}:\n{e}")

    def _snapshot(self, progress: _Progress) -> dict:
        now = time.monotonic()
        counts = dict(progress.counts)
        return {
            "usr_in_flight": len(self.signups.pending),
            # commands sent and not answered yet (mostly SEND and MSG)
            "sends_in_flight": sum(len(s.pending) for s in self.senders.values()),
            # an R line read, or ACK lines written, in the last 50 ms
            "delivering": counts["r"] > 0 and now - progress.last["r"] < 0.05,
            "acking": counts["ack"] > 0 and now - progress.last["ack"] < 0.05,
            "counts": counts,
        }

    def _thread(self, target: Callable, *args) -> threading.Thread:
        who = args[0].name if isinstance(args[0], _Sender) else args[0]
        name = f"{target.__name__.strip('_')}:{who}"

        def run() -> None:
            try:
                target(*args)
            except BaseException:
                self.errors.add(f"{name} crashed:\n{traceback.format_exc()}")

        return threading.Thread(target=run, name=name, daemon=True)

    def _connect(self) -> LineClient | None:
        try:
            return LineClient(self.server.port, timeout=5.0)
        except (OSError, ConnectionClosed):  # TimeoutError is an OSError
            return None

    def _read(
        self, client: LineClient, outstanding: bool, deadline: float, who: str, idle: float = 1.0
    ) -> str | None:
        """The next line; None when there is none yet (and nothing owed).

        With commands outstanding, silence is a hang: an error.  Raises
        ConnectionClosed or OSError when the server is gone (the kill).
        """
        if time.monotonic() > deadline:
            raise AssertionError(f"{who}: the cycle was never ended by a kill")
        try:
            return client.read_line(REPLY_TIMEOUT if outstanding else idle)
        except TimeoutError:
            if outstanding:
                raise AssertionError(f"{who}: no reply within {REPLY_TIMEOUT} s") from None
            return None

    def _observe(self, reader: str, line: str) -> bool:
        """Record an R or C line (or ignore an event); False if unknown."""
        if line.startswith("R|"):
            _, sender, msgid, body = line.split("|", 3)
            self.seen.append((reader, reader, sender, int(msgid), body))
            return True
        if line.startswith("C|"):
            _, room, sender, msgid, body = line.split("|", 4)
            self.seen.append((reader, room, sender, int(msgid), body))
            return True
        return line.startswith(("DLV|", "ON|", "OFF|", "JOINED|", "PARTED|"))

    # -- senders ---------------------------------------------------------

    def _run_sender(
        self,
        sender: _Sender,
        cycle: int,
        progress: _Progress | None,
        deadline: float,
        final: bool = False,
    ) -> None:
        """One connection of a sender, until the kill (or, ``final``, until
        every re-sent SEND has its OK)."""
        rng = self.rng_for("sender", sender.name, cycle)
        client = self._connect()
        if client is None:
            return
        name = sender.name
        pending = sender.pending = deque()
        try:
            lines = [f"LOGIN|{name}|{PASSWORD}"]
            pending.append(("LOGIN", None))
            if not final and rng.random() < 0.5:
                room = f"#c{cycle:03d}"
                sender.joins_sent.add(room)
                lines.append(f"JOIN|{room}")
                pending.append(("JOIN", room))
            for attempt in list(sender.unconfirmed.values()):
                lines.append(attempt.line())
                pending.append((attempt.verb, attempt))
                sender.resent += 1
            confirmed = [a for a in sender.attempts[-300:] if a.client_id and a.ok_ids]
            for attempt in rng.sample(confirmed, min(len(confirmed), rng.randint(0, 3))):
                lines.append(attempt.line())
                pending.append((attempt.verb, attempt))
                sender.repeated += 1
            client.send(*lines)
            quota = 0 if final else rng.randint(40, 160)
            while True:
                while quota > 0 and len(pending) < SENDER_WINDOW:
                    burst = min(quota, rng.randint(1, 30), SENDER_WINDOW - len(pending))
                    lines = []
                    for _ in range(burst):
                        attempt = self._new_attempt(sender, rng, cycle)
                        lines.append(attempt.line())
                        pending.append((attempt.verb, attempt))
                    quota -= burst
                    client.send(*lines)
                if final and not pending:
                    return
                line = self._read(client, bool(pending), deadline, name)
                if line is not None:
                    self._sender_line(sender, line, pending, progress, cycle)
        except (ConnectionClosed, OSError):
            if final:
                raise
        finally:
            client.close()

    def _new_attempt(self, sender: _Sender, rng: random.Random, cycle: int) -> _Attempt:
        sender.count += 1
        n = sender.count
        target = rng.choice(TARGETS)
        body = f"{sender.name}/{n} {rng.choice(FLAVOURS)} {'~' * rng.randint(0, 40)}!"
        client_id = f"{sender.name}-{n:06d}" if rng.random() < 0.8 else None
        attempt = _Attempt(sender.name, target, body, client_id, cycle)
        sender.attempts.append(attempt)
        if client_id is not None:
            sender.unconfirmed[client_id] = attempt
        return attempt

    def _sender_line(
        self, sender: _Sender, line: str, pending: deque, progress: _Progress | None, cycle: int
    ) -> None:
        name = sender.name
        if not line.startswith(("OK|", "ERR|")):
            if not self._observe(name, line):
                self.errors.add(f"{name}: unexpected line {line!r}")
            return
        if not pending:
            self.errors.add(f"{name}: a reply with no command outstanding: {line!r}")
            return
        verb, item = pending.popleft()
        fields = line.split("|")
        if fields[1] != verb or fields[0] != "OK":
            self.errors.add(
                f"{name}: {line!r} for a {verb} ({getattr(item, 'line', lambda: item)()!r})"
            )
            return
        if verb == "LOGIN":
            if fields[2] != name:
                self.errors.add(f"{name}: {line!r}")
        elif verb == "JOIN":
            if line != f"OK|JOIN|{item}":
                self.errors.add(f"{name}: {line!r} for JOIN|{item}")
            sender.joins_ok.add(item)
        else:
            attempt: _Attempt = item
            attempt.ok_ids.append(msgid_of(line, verb))
            attempt.ok_cycles.append(cycle)
            if attempt.client_id is not None:
                sender.unconfirmed.pop(attempt.client_id, None)
            if progress is not None:
                progress.bump("ok")

    # -- online recipients -----------------------------------------------

    def _run_recipient(self, name: str, cycle: int, progress: _Progress, deadline: float) -> None:
        """Log in, take R lines, ACK them in pipelined batches, until the kill."""
        rng = self.rng_for("recipient", name, cycle)
        client = self._connect()
        if client is None:
            return
        acks: list[str] = []
        batch = rng.randint(1, 25)
        logged_in = False
        try:
            client.send(f"LOGIN|{name}|{PASSWORD}")
            while True:
                # A short silence, or a full batch: write the ACKs at once.
                line = self._read(client, not logged_in, deadline, name, idle=0.02 if acks else 1.0)
                if line is None:
                    if acks:
                        client.send(*(f"ACK|{msgid}" for msgid in acks))
                        progress.bump("ack", len(acks))
                        acks = []
                        batch = rng.randint(1, 25)
                elif line.startswith("R|"):
                    self._observe(name, line)
                    acks.append(line.split("|", 3)[2])
                    progress.bump("r")
                    if len(acks) >= batch:
                        client.send(*(f"ACK|{msgid}" for msgid in acks))
                        progress.bump("ack", len(acks))
                        acks = []
                        batch = rng.randint(1, 25)
                elif is_reply(line, "LOGIN"):
                    logged_in = True
                    if not line.startswith(f"OK|LOGIN|{name}|"):
                        self.errors.add(f"{name}: {line!r}")
                elif not self._observe(name, line):
                    self.errors.add(f"{name}: unexpected line {line!r}")
        except (ConnectionClosed, OSError):
            pass
        finally:
            client.close()

    # -- sign-ups --------------------------------------------------------

    def _run_signup(
        self, cycle: int, progress: _Progress | None, deadline: float, final: bool = False
    ) -> None:
        """Pipeline USR lines: first the ones a kill left unanswered, then
        new accounts; until the kill (or, ``final``, until all answered)."""
        rng = self.rng_for("signup", cycle)
        su = self.signups
        client = self._connect()
        if client is None:
            return
        todo = list(su.unconfirmed)
        retried = set(todo)
        for k in range(0 if final else rng.randint(6, 24)):
            name = f"n{cycle:03d}-{k:02d}"
            su.accounts[name] = (
                f"secret-{cycle}-{k}-{rng.randrange(10**6):06d}",
                f"New {cycle}.{k}",
            )
            todo.append(name)
        window = rng.randint(2, 10)
        pending = su.pending = deque()
        try:
            while True:
                if todo and len(pending) < window:
                    lines = []
                    while todo and len(pending) < window:
                        name = todo.pop(0)
                        password, display = su.accounts[name]
                        su.unconfirmed[name] = None
                        su.sent.add(name)
                        pending.append(name)
                        lines.append(f"USR|{name}|{password}|{display}")
                    client.send(*lines)
                if final and not pending and not todo:
                    return
                line = self._read(client, bool(pending), deadline, "signup")
                if line is None:
                    continue
                if not is_reply(line, "USR") or not pending:
                    self.errors.add(f"signup: unexpected line {line!r}")
                    continue
                name = pending.popleft()
                if line == f"OK|USR|{name}":
                    pass
                elif line.startswith("ERR|USR|409|") and name in retried:
                    su.conflicts += 1  # stored before the kill, the OK lost
                else:
                    self.errors.add(f"signup: {line!r} for USR|{name}")
                    continue
                su.confirmed.add(name)
                su.unconfirmed.pop(name, None)
                if progress is not None:
                    progress.bump("usr")
        except (ConnectionClosed, OSError):
            if final:
                raise
        finally:
            client.close()

    # ------------------------------------------------------------------
    # after the last kill

    def _settle(self, server: ServerProcess) -> None:
        """On the final server: every sender re-sends its SENDs that never
        had an OK, the sign-up re-sends its unanswered USRs; all must get an
        answer now."""
        deadline = time.monotonic() + CYCLE_TIMEOUT
        workers = [
            self._thread(self._run_sender, sender, self.kills, None, deadline, True)
            for sender in self.senders.values()
        ]
        workers.append(self._thread(self._run_signup, self.kills, None, deadline, True))
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(max(0.1, deadline - time.monotonic()))
        self.assertEqual([w.name for w in workers if w.is_alive()], [], self.note())
        self.assert_none(self.errors.items, "problems after the last restart")
        for sender in self.senders.values():
            self.assertEqual(list(sender.unconfirmed), [], f"{sender.name} {self.note()}")
        self.assertEqual(list(self.signups.unconfirmed), [], self.note())

    def _verify(self, server: ServerProcess) -> dict:
        problems: list[str] = []
        catalogue: dict[str, _Attempt] = {}
        for sender in self.senders.values():
            for attempt in sender.attempts:
                catalogue[attempt.body] = attempt

        # -- SEND idempotency: every OK of one client id carries one id.
        for attempt in catalogue.values():
            if len(set(attempt.ok_ids)) > 1:
                problems.append(
                    f"{attempt.line()!r} stored more than once: OKs with ids {attempt.ok_ids}"
                )
        idempotent_checks = sum(1 for a in catalogue.values() if len(a.ok_ids) > 1)
        # SENDs stored before a kill whose OK was lost, re-sent and answered
        # with the first id: counted where that id is provably from an
        # earlier server process (not above an id OK'd before): a lower bound.
        newest_ok: dict[int, int] = {}
        for attempt in catalogue.values():
            for msgid, cycle in zip(attempt.ok_ids, attempt.ok_cycles):
                newest_ok[cycle] = max(msgid, newest_ok.get(cycle, 0))
        resent_found_stored = sum(
            1
            for a in catalogue.values()
            if a.client_id
            and a.ok_ids
            and a.ok_cycles[0] > a.cycle
            and a.ok_ids[0]
            <= max((m for c, m in newest_ok.items() if c < a.ok_cycles[0]), default=0)
        )

        # -- each recipient: a marker, then the whole backlog, ACKed.
        checker = server.client()
        login(checker, CHECKER)
        markers = {
            name: msgid_of(checker.command(f"MSG|{name}|end of the crash test for {name}"))
            for name in RECIPIENTS
        }
        ok_ids = [i for a in catalogue.values() for i in a.ok_ids]
        if ok_ids:
            self.assertGreater(min(markers.values()), max(ok_ids), self.note())
        delivered: dict[str, set[int]] = {name: set() for name in RECIPIENTS}
        for reader, target, sender, msgid, body in self.seen:
            if target == reader:
                delivered[reader].add(msgid)
        histories: dict[str, list[tuple[int, str, str]]] = {}
        final_deliveries = 0
        for name in RECIPIENTS:
            client = server.client(timeout=30)
            login(client, name)
            drained = read_deliveries(client, markers[name], timeout=60 + len(catalogue) / 50)
            final_deliveries += len(drained) - 1
            for sender, msgid, body in drained:
                if msgid != markers[name]:
                    self.seen.append((name, name, sender, msgid, body))
                    delivered[name].add(msgid)
            for sender in SENDERS:
                histories[f"{sender}>{name}"] = self._history(client, sender)
            if name == ONLINE[0]:
                histories[ROOM] = self._history(client, ROOM)
            client.close()

        # -- every stored message is one that was sent, once.
        stored: dict[int, tuple[str, str, str]] = {}  # msgid -> (sender, target, body)
        for key, entries in histories.items():
            target = ROOM if key == ROOM else key.split(">")[1]
            ids = Counter(msgid for msgid, _, _ in entries)
            bodies = Counter(body for _, _, body in entries)
            problems += [f"{key}: id {i} in the history {n} times" for i, n in ids.items() if n > 1]
            problems += [f"{key}: {b!r} stored {n} times" for b, n in bodies.items() if n > 1]
            for msgid, sender, body in entries:
                attempt = catalogue.get(body)
                if attempt is None:
                    problems.append(
                        f"{key}: message {msgid} {body!r} from {sender}: nobody sent that"
                    )
                elif (attempt.sender, attempt.target) != (sender, target):
                    problems.append(
                        f"{key}: message {msgid} {body!r} is from {sender} to {target}, "
                        f"was sent by {attempt.sender} to {attempt.target}"
                    )
                elif attempt.ok_ids and attempt.ok_ids[0] != msgid:
                    problems.append(
                        f"{key}: {body!r} stored as {msgid}, its OK said {attempt.ok_ids[0]}"
                    )
                stored[msgid] = (sender, target, body)

        # -- every OK'd message is stored, and every stored direct message
        #    was delivered to its recipient.
        checked_direct = checked_room = 0
        for attempt in catalogue.values():
            if not attempt.ok_ids:
                continue
            msgid = attempt.ok_ids[0]
            if stored.get(msgid) != (attempt.sender, attempt.target, attempt.body):
                problems.append(
                    f"OK'd message {msgid} {attempt.line()!r} is not in the history "
                    f"(there: {stored.get(msgid)!r})"
                )
            elif attempt.target == ROOM:
                checked_room += 1
            elif msgid not in delivered[attempt.target]:
                problems.append(f"OK'd message {msgid} {attempt.line()!r} was never delivered")
            else:
                checked_direct += 1
        for msgid, (sender, target, body) in stored.items():
            if target != ROOM and msgid not in delivered[target]:
                problems.append(f"stored message {msgid} {body!r} was never delivered to {target}")

        # -- every R and C line anyone read matches what is stored.
        for reader, target, sender, msgid, body in self.seen:
            if stored.get(msgid) != (sender, target, body):
                problems.append(
                    f"{reader} read message {msgid} from {sender} to {target}: {body!r}; "
                    f"stored: {stored.get(msgid)!r}"
                )

        # -- accounts and memberships.
        accounts_verified = self._check_accounts(server, checker, problems)
        joins_verified = self._check_memberships(server, checker, problems)
        checker.close()

        self.assert_none(problems, "broken guarantees")
        sends = [a for a in catalogue.values() if a.client_id]
        return {
            "messages_sent": len(catalogue),
            "messages_ok": sum(1 for a in catalogue.values() if a.ok_ids),
            "sends_with_client_id": len(sends),
            "direct_ok_verified": checked_direct,
            "room_ok_verified": checked_room,
            "stored_messages_verified": len(stored),
            "stored_without_ok": len(stored)
            - len({a.ok_ids[0] for a in catalogue.values() if a.ok_ids}),
            "sends_resent_after_kill": sum(s.resent for s in self.senders.values()),
            "sends_repeated_after_ok": sum(s.repeated for s in self.senders.values()),
            "client_ids_with_several_oks_one_id": idempotent_checks,
            "sends_stored_before_kill_ok_lost_resent": resent_found_stored,
            "lines_read_live": len(self.seen) - final_deliveries,
            "redelivered_at_final_login": final_deliveries,
            "accounts_signed_up": len(self.signups.sent),
            "accounts_stored_without_ok": self.signups.conflicts,
            "accounts_logged_in": accounts_verified,
            "joins_verified": joins_verified,
        }

    def _history(self, client: LineClient, target: str) -> list[tuple[int, str, str]]:
        """The whole conversation with ``target``: (msgid, sender, body)."""
        entries: list[tuple[int, str, str]] = []
        cursor = 0
        while True:
            client.send(f"HISTORY|{target}|500|after|{cursor}")
            lines = client.read_until(lambda line: is_reply(line, "HISTORY"), timeout=30)
            self.assertTrue(lines[-1].startswith(f"OK|HISTORY|{target}|"), lines[-1])
            page = [line.split("|", 5) for line in lines[:-1] if line.startswith("H|")]
            self.assertEqual(int(lines[-1].split("|")[3]), len(page), lines[-1])
            entries += [(int(msgid), sender, body) for _, _, msgid, sender, _, body in page]
            if len(page) < 500:
                return entries
            cursor = entries[-1][0]

    def _check_accounts(
        self, server: ServerProcess, checker: LineClient, problems: list[str]
    ) -> int:
        """Every account that got OK|USR (or 409 when re-sent) logs in with
        its password and display name, and is a member of #general."""
        su = self.signups
        names = sorted(su.confirmed)
        members = set(checker.command("MEMBERS|#general").split("|")[3:])
        problems += [f"account {n} is not in #general" for n in names if n not in members]
        logged_in = 0
        for name in names:
            password, display = su.accounts[name]
            with LineClient(server.port, timeout=10) as client:
                reply = client.command(f"LOGIN|{name}|{password}")
            if reply != f"OK|LOGIN|{name}|{display}":
                problems.append(f"account {name}: {reply!r}")
            else:
                logged_in += 1
        return logged_in

    def _check_memberships(
        self, server: ServerProcess, checker: LineClient, problems: list[str]
    ) -> int:
        """Rooms whose JOIN got OK have the member; nobody is in a room
        they never asked to join."""
        verified = 0
        rooms = set()
        for sender in self.senders.values():
            rooms |= sender.joins_sent
            client = server.client()
            login(client, sender.name)
            reply = client.command("ROOMS")
            client.close()
            have = set(reply.split("|")[2:])
            want = sender.joins_ok | {"#general", ROOM}
            allowed = sender.joins_sent | {"#general", ROOM}
            if not want <= have or not have <= allowed:
                problems.append(
                    f"{sender.name}: {reply!r}; JOIN OK'd for {sorted(sender.joins_ok)}"
                )
            verified += len(sender.joins_ok & have)
        for room in sorted(rooms):
            reply = checker.command(f"MEMBERS|{room}")
            ok = {s.name for s in self.senders.values() if room in s.joins_ok}
            tried = {s.name for s in self.senders.values() if room in s.joins_sent}
            if reply.startswith("ERR|MEMBERS|404|"):
                members: set[str] = set()
            else:
                members = set(reply.split("|")[3:])
            if not ok <= members or not members <= tried:
                problems.append(f"{reply!r}: JOIN OK'd for {sorted(ok)}, sent by {sorted(tried)}")
        return verified

    def _check_database(self, server: ServerProcess) -> None:
        """A clean stop, then SQLite's integrity check on the file."""
        status = server.stop()
        self.assertEqual(
            status, 0, f"exit status after SIGTERM {self.note()}\n{server.log_tail(20)}"
        )
        conn = sqlite3.connect(server.db)
        try:
            self.assertEqual(
                conn.execute("PRAGMA integrity_check").fetchall(), [("ok",)], self.note()
            )
            self.assertEqual(conn.execute("PRAGMA foreign_key_check").fetchall(), [], self.note())
        finally:
            conn.close()
        log = server.log_text()
        self.assertNotIn("Traceback", log, f"{self.note()}\n{self._log_excerpt(log, 'Traceback')}")

    @staticmethod
    def _log_excerpt(log: str, needle: str, context: int = 25) -> str:
        lines = log.splitlines()
        for index, line in enumerate(lines):
            if needle in line:
                return "\n".join(lines[max(0, index - 5) : index + context])
        return ""

    # ------------------------------------------------------------------
    # figures

    def _report(self, figures: dict) -> None:
        kills = self.kill_log
        by_trigger = Counter(k["trigger"] for k in kills)
        figures = {
            "seed": self.seed,
            "kills": len(kills),
            "kills_by_trigger": dict(sorted(by_trigger.items())),
            "kills_whose_trigger_fired": sum(1 for k in kills if k["fired"]),
            "kills_with_usr_in_flight": sum(1 for k in kills if k.get("usr_in_flight")),
            "kills_with_sends_in_flight": sum(1 for k in kills if k.get("sends_in_flight")),
            "kills_while_delivering": sum(1 for k in kills if k.get("delivering")),
            "kills_while_acking": sum(1 for k in kills if k.get("acking")),
            "restarts_on_the_same_database": len(kills),
            **figures,
        }
        print(
            f"crash test: seed {self.seed}, {figures['kills']} kills survived "
            f"({figures['kills_with_usr_in_flight']} mid-sign-up, {figures['kills_with_sends_in_flight']} "
            f"mid-send, {figures['kills_while_delivering']} mid-delivery, {figures['kills_while_acking']} "
            f"right after ACKs, {by_trigger['startup']} during start-up); "
            f"{figures['messages_ok']} of {figures['messages_sent']} messages OK'd, "
            f"{figures['direct_ok_verified']} direct + {figures['room_ok_verified']} room ids verified, "
            f"{figures['stored_messages_verified']} stored messages checked; "
            f"{figures['sends_resent_after_kill']} SENDs re-sent after a kill "
            f"({figures['sends_stored_before_kill_ok_lost_resent']} of them already stored), "
            f"{figures['client_ids_with_several_oks_one_id']} client ids OK'd more than once with one id; "
            f"{figures['accounts_logged_in']} accounts and {figures['joins_verified']} joins verified; "
            f"{figures['duration_s']} s"
        )
        merge_report(figures)


#: Runs in the server process before twistd: SIGKILLs the process itself
#: just before SQLite runs its N-th statement (0: never), and appends every
#: statement to a file (if one is given).  A precise kill -9, where a kill
#: from outside could only land there by luck.
_KILL_AT_STATEMENT = """
import os, signal, sqlite3

def _kill_at_statement(kill_at, log_path):
    count = [0]
    real_connect = sqlite3.connect

    def connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)

        def trace(sql):
            count[0] += 1
            if log_path:
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write(" ".join(sql.split()) + "\\n")
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        conn.set_trace_callback(trace)
        return conn

    sqlite3.connect = connect

_kill_at_statement(%d, %r)
"""


class _KilledAtStatement(ServerProcess):
    """A server whose process kills itself before its ``kill_at``-th SQL
    statement (0: never), optionally logging every statement it runs."""

    def __init__(self, testcase, kill_at: int = 0, statement_log: str = "", **kwargs) -> None:
        self.kill_at = kill_at
        self.statement_log = statement_log
        super().__init__(testcase, **kwargs)

    def command(self) -> list[str]:
        base = super().command()
        if not self.kill_at and not self.statement_log:
            return base
        hook = _KILL_AT_STATEMENT % (self.kill_at, self.statement_log)
        return [TWISTD[0], "-c", hook + TWISTD[2]] + base[len(TWISTD) :]


class DatabaseCreationCrashTests(TestCase):
    """kill -9 at every step of creating a new database, then start again."""

    def test_restarts_after_kill_9_at_any_step_of_creating_its_database(self):
        """A server killed with kill -9 at any point of its first start starts again on that database.

        A first start on a new file is recorded statement by statement; then,
        for every statement, a server on a new file is killed just before
        running it, and started again (normally) on what the kill left.
        Kills that leave the same committed state (schema and row counts)
        need only one restart.
        """
        reference = _KilledAtStatement(self, start=False)
        reference.statement_log = os.path.join(reference.directory, "statements.log")
        reference.start()
        self.assertEqual(reference.stop(), 0)
        with open(reference.statement_log, encoding="utf-8") as f:
            statements = f.read().splitlines()
        self.assertTrue(statements, "the first start ran no SQL at all")

        outcomes: dict[object, tuple[list[int], str]] = {}  # state -> (kill points, restart)
        for n, sql in enumerate(statements, 1):
            server = _KilledAtStatement(self, kill_at=n, start=False)
            server.spawn()
            status = server.wait(30)
            self.assertEqual(
                status,
                -signal.SIGKILL,
                f"the server was to be killed before statement {n} `{sql}`:\n{server.log_tail()}",
            )
            state = self._state(server.db)
            if state is not None and state in outcomes:
                outcomes[state][0].append(n)
                continue
            server.kill_at = 0
            try:
                server.start()
            except AssertionError as e:
                error = [line.strip() for line in str(e).splitlines() if "Error" in line]
                outcome = f"does not start again: {error[-1] if error else str(e)[:300]}"
            else:
                client = server.client()
                signup(client, "alice")
                login(client, "alice")
                self.assertEqual(client.command("ROOMS"), "OK|ROOMS|#general")
                client.close()
                server.kill()
                outcome = "ok"
            outcomes[state if state is not None else ("unreadable", n)] = ([n], outcome)

        failures = [
            f"killed before statement {', '.join(map(str, points))} of {len(statements)} "
            f"(first: `{statements[points[0] - 1][:80]}`): {outcome}"
            for points, outcome in outcomes.values()
            if outcome != "ok"
        ]
        if failures:
            self.fail(
                "a kill -9 while creating the database leaves it unusable:\n" + "\n".join(failures)
            )
        print(
            f"crash test: {len(statements)} kills while creating a database (one before each SQL "
            f"statement), {len(outcomes)} different states left on disk; every restart worked"
        )
        merge_report({"creation_kills": len(statements), "creation_states_on_disk": len(outcomes)})

    @staticmethod
    def _state(path: str) -> tuple | None:
        """The committed schema and each table's row count, read-only;
        None if it cannot be read."""
        if not os.path.exists(path):
            return ("no file",)
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0)
        except sqlite3.Error:
            return None
        try:
            schema = tuple(
                conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
            )
            counts = tuple(
                conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                for kind, name, _ in schema
                if kind == "table"
            )
            return schema + counts
        except sqlite3.Error:
            return None
        finally:
            conn.close()
