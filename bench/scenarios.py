"""The traffic of each workload, as the load generator's clients make it.

Each scenario has two steps: ``prepare`` (connect and log in, fill a
backlog: not measured) and ``run`` (the measured traffic, started when the
harness says go).  Each returns a dict that goes back to the harness as
JSON.  Every wait is bounded by the spec's ``timeout``.

Message bodies carry who sent them, a sequence number and the send time
(``time.monotonic_ns``, one clock for every process of the machine), so a
receiver measures the end-to-end latency and detects a lost, duplicated or
misdelivered message without any side channel.
"""

from __future__ import annotations

import array
import asyncio
import base64
import json
import random
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from bench.wireclient import Conn, Flusher, Handler, Sources, connect, is_ok, open_and_login

monotonic_ns = time.monotonic_ns


def now() -> float:
    return time.monotonic()


def pack_latencies(values: array.array) -> str:
    """Latencies (µs, uint32) as base64, for the JSON result."""
    return base64.b64encode(values.tobytes()).decode("ascii")


def padding(body_size: int, used: int) -> bytes:
    return b"x" * max(1, body_size - used)


def load_population(path: str) -> list[list[str]]:
    """[[username, password, token], ...] as the setup scenario wrote it."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)["users"]


class Errors:
    """A few examples of each kind of unexpected reply, and counts."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: list[str] = []

    def add(self, kind: str, line: bytes | None) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {line!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "examples": self.examples}


class Scenario:
    def __init__(self, spec: dict[str, Any], control) -> None:
        self.spec = spec
        self.control = control
        self.port = spec["port"]
        #: Every node of the server: clients are spread round-robin.
        self.ports = spec.get("ports") or [self.port]
        self._next_port = 0
        self.timeout = float(spec.get("timeout", 300))
        self.loop = asyncio.get_running_loop()
        self.flusher = Flusher(self.loop)
        self.errors = Errors()
        self.connect_limit = asyncio.Semaphore(int(spec.get("connect_concurrency", 256)))
        self.sources = Sources(
            int(spec.get("source_addresses", 64)), int(spec.get("logins_per_address", 16))
        )
        self.prepare_timeout = float(spec.get("prepare_timeout", self.timeout))
        #: Connections to keep alive: PING every ``keepalive`` seconds, as
        #: the protocol asks of idle clients, so that a long login phase
        #: does not end in the server's idle timeout (300 s).
        self.live: list[Conn] = []
        self.pings = 0
        self._keepalive: asyncio.Task | None = None

    async def open(self, handler: Handler, tag, lines: list[bytes]):
        """Connect to the next node and log in (see :func:`open_and_login`)."""
        port = self.ports[self._next_port % len(self.ports)]
        self._next_port += 1
        return await open_and_login(
            port, self.flusher, handler, tag, self.connect_limit, self.sources, lines
        )

    async def prepare(self) -> dict[str, Any]:
        return {}

    async def run(self) -> dict[str, Any]:
        raise NotImplementedError

    async def login_all(
        self, users: list[list[str]], handler: Handler, tags: list[Any]
    ) -> list[Conn]:
        """Connect one client per user and RESUME it with its token."""
        self.start_keepalive()

        async def one(user, tag) -> Conn:
            line = b"RESUME|%s|%s\n" % (user[0].encode(), user[2].encode())
            conn, (reply,) = await self.open(handler, tag, [line])
            self.live.append(conn)
            reply = reply.result()
            if not is_ok(reply):
                raise RuntimeError(f"RESUME {user[0]} failed: {reply!r}")
            return conn

        return list(
            await asyncio.wait_for(
                asyncio.gather(*(one(u, t) for u, t in zip(users, tags))), self.prepare_timeout
            )
        )

    def start_keepalive(self) -> None:
        if self._keepalive is None:
            interval = float(self.spec.get("keepalive", 100))
            self._keepalive = self.loop.create_task(self._keep_alive(interval))

    async def _keep_alive(self, interval: float) -> None:
        def answered(line: bytes | None) -> None:
            if line is not None and not is_ok(line):
                self.errors.add("PING", line)

        rounds = int((self.prepare_timeout + 3 * self.timeout) / interval) + 2
        for _ in range(rounds):  # and cancelled by close_all
            await asyncio.sleep(interval)
            for conn in self.live:
                if not conn.closed:
                    conn.command(b"PING\n", answered)
                    self.pings += 1

    def close_all(self, conns: list[Conn]) -> None:
        """Close ``conns`` at once, or, for the connections of the measured
        phase, leave them to :meth:`finish` (see ``keep_for_finish``)."""
        if self._keepalive is not None:
            self._keepalive.cancel()
        for conn in conns:
            conn.abort()

    def keep_for_finish(self, conns: Sequence[Conn | None]) -> None:
        """Close these only in :meth:`finish`, after the harness has taken
        its last sample: disconnecting costs the server (last-seen writes,
        OFF events), and that is not part of the measured traffic.  (A
        client that never connected has no connection to close.)"""
        self._to_close = [conn for conn in conns if conn is not None]

    async def finish(self) -> None:
        self.close_all(getattr(self, "_to_close", []))
        await asyncio.sleep(0.1)  # let the aborts go out


# --------------------------------------------------------------------------
# setup: sign-ups and tokens


class Setup(Scenario):
    """USR for every user (pipelined over a few connections), then LOGIN
    and TOKEN for each; writes the population file."""

    async def run(self) -> dict[str, Any]:
        spec = self.spec
        count = int(spec["count"])
        password = spec.get("password", "bench-password-1")
        names = [f"{spec.get('prefix', 'u')}{i:05d}" for i in range(count)]
        handler = Handler()
        started = now()
        await asyncio.wait_for(
            self._sign_up(names, password, handler, int(spec.get("usr_connections", 8))),
            self.timeout,
        )
        signed_up = now()
        tokens = await asyncio.wait_for(
            self._tokens(
                names,
                password,
                handler,
                int(spec.get("token_connections", 64)),
            ),
            self.timeout,
        )
        done = now()
        with open(spec["population"], "w", encoding="utf-8") as f:
            json.dump({"users": [[n, password, tokens[n]] for n in names]}, f)
        return {
            "users": count,
            "sign_up_s": signed_up - started,
            "tokens_s": done - signed_up,
            "errors": self.errors.as_dict(),
        }

    async def _sign_up(self, names, password, handler, connections) -> None:
        async def worker(part: list[str]) -> None:
            conn = await connect(self.port, self.flusher, handler)
            for i in range(0, len(part), 64):
                futures = [
                    conn.request(b"USR|%s|%s|%s\n" % (n.encode(), password.encode(), n.encode()))
                    for n in part[i : i + 64]
                ]
                for reply in await asyncio.gather(*futures):
                    if not is_ok(reply):
                        self.errors.add("USR", reply)
            conn.close()

        await asyncio.gather(*(worker(names[j::connections]) for j in range(connections)))
        if self.errors.counts.get("USR"):
            raise RuntimeError(f"sign-up failed: {self.errors.examples[:3]}")

    async def _tokens(self, names, password, handler, connections) -> dict[str, str]:
        tokens: dict[str, str] = {}

        async def worker(part: list[str]) -> None:
            for name in part:
                lines = [b"LOGIN|%s|%s\n" % (name.encode(), password.encode()), b"TOKEN\n"]
                conn, futures = await self.open(handler, None, lines + [b"QUIT\n"])
                replies = [await f for f in futures]
                if not all(is_ok(r) for r in replies):
                    self.errors.add("LOGIN/TOKEN", b" ".join(r or b"-" for r in replies))
                    raise RuntimeError(f"token for {name} failed: {replies!r}")
                tokens[name] = replies[1].split(b"|")[2].decode()
                await asyncio.wait_for(conn.lost, 10)

        await asyncio.gather(*(worker(names[j::connections]) for j in range(connections)))
        return tokens


# --------------------------------------------------------------------------
# W1 and the scaling runs: direct messages


class _DirectClient:
    __slots__ = (
        "index",
        "name",
        "conn",
        "quota",
        "sent",
        "outstanding",
        "received",
        "seen",
        "oks",
        "dlvs",
    )

    def __init__(self, index: int, name: bytes, quota: int) -> None:
        self.index = index
        self.name = name
        self.conn: Conn | None = None
        self.quota = quota
        self.sent = 0
        self.outstanding = 0
        self.received = bytearray(quota)  # per sequence number: delivered?
        self.seen: set[bytes] = set()  # msgids received on this connection
        self.oks = 0
        self.dlvs = 0


class Direct(Scenario, Handler):
    """Clients send direct messages to random other clients of this
    process, at most ``window`` outstanding (sent, not yet received) each;
    every R is acknowledged at once."""

    def __init__(self, spec, control) -> None:
        Scenario.__init__(self, spec, control)
        Handler.__init__(self)
        self.population = load_population(spec["population"])
        first, last = spec["users"]
        self.users = self.population[first:last]
        n = len(self.users)
        if n < 2:
            raise ValueError("direct messages need at least 2 clients")
        total = int(spec["messages"])
        self.window = int(spec.get("window", 8))
        self.expect_dlv = bool(spec.get("expect_dlv", True))
        self.clients = [
            _DirectClient(i, u[0].encode(), total // n + (1 if i < total % n else 0))
            for i, u in enumerate(self.users)
        ]
        self.total = total
        self.rng = random.Random(spec.get("seed", 1))
        self.pad = padding(int(spec.get("body_size", 64)), 40)
        self.latencies = array.array("I")
        self.delivered = 0
        self.rejected = 0
        self.redelivered = 0
        self.duplicated = 0
        self.misdelivered = 0
        self.replies_pending = 0
        self.dlv_total = 0
        self.last_delivery = 0.0
        self.done: asyncio.Future = self.loop.create_future()

    async def prepare(self) -> dict[str, Any]:
        started = now()
        conns = await self.login_all(self.users, self, self.clients)
        for client, conn in zip(self.clients, conns):
            client.conn = conn
        return {"clients": len(conns), "login_s": now() - started}

    async def run(self) -> dict[str, Any]:
        self.started = now()
        for client in self.clients:
            self._fill(client)
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(self.done), self.timeout)
        except TimeoutError:
            timed_out = True
        traffic_end = self.last_delivery or now()
        if self.expect_dlv and not timed_out:
            # Receipts come after the ACK is committed: give them a moment.
            deadline = now() + min(10.0, self.timeout)
            while self.dlv_total < self._oks() and now() < deadline:
                await asyncio.sleep(0.02)
        oks = self._oks()
        result = {
            "clients": len(self.clients),
            "messages": self.total,
            "accepted": oks,
            "rejected": self.rejected,
            "delivered": self.delivered,
            "lost": oks - self.delivered,
            "unanswered": self.replies_pending,
            "duplicated": self.duplicated,
            "redelivered": self.redelivered,
            "misdelivered": self.misdelivered,
            "dlv": self.dlv_total,
            "dlv_missing": (oks - self.dlv_total) if self.expect_dlv else None,
            "other_events": self.events,
            "pings": self.pings,
            "byes": [b.decode("utf-8", "replace") for b in self.byes],
            "unexpected": [u.decode("utf-8", "replace") for u in self.unexpected],
            "start": self.started,
            "end": traffic_end,
            "timed_out": timed_out,
            "latencies_us": pack_latencies(self.latencies),
            "errors": self.errors.as_dict(),
        }
        self.keep_for_finish([c.conn for c in self.clients])
        return result

    def _oks(self) -> int:
        return sum(c.oks for c in self.clients)

    def _fill(self, client: _DirectClient) -> None:
        clients = self.clients
        n = len(clients)
        rng = self.rng.randrange
        window = self.window
        conn = client.conn
        assert conn is not None, "filled only once connected"
        replied = partial(self._replied, client)
        while client.outstanding < window and client.sent < client.quota:
            t = rng(n - 1)
            if t >= client.index:
                t += 1
            target = clients[t]
            seq = client.sent
            client.sent = seq + 1
            client.outstanding += 1
            self.replies_pending += 1
            conn.command(
                b"MSG|%s|%d:%d:%d:%d:%s\n"
                % (target.name, client.index, seq, t, monotonic_ns(), self.pad),
                replied,
            )

    def _replied(self, client: _DirectClient, line: bytes | None) -> None:
        self.replies_pending -= 1
        if line is not None and line.startswith(b"OK|"):
            client.oks += 1
        else:
            self.rejected += 1
            self.errors.add("MSG", line)
            client.outstanding -= 1
            self._fill(client)
        self._check_done()

    def _check_done(self) -> None:
        if (
            self.delivered + self.rejected >= self.total
            and self.replies_pending == 0
            and not self.done.done()
        ):
            self.done.set_result(None)

    # -- Handler ----------------------------------------------------------

    def on_r(self, conn: Conn, line: bytes) -> None:
        arrived = monotonic_ns()
        _, _, msgid, body = line.split(b"|", 3)
        conn.send(b"ACK|" + msgid + b"\n")
        me = conn.tag
        if msgid in me.seen:
            self.redelivered += 1
            return
        me.seen.add(msgid)
        sender_field, seq_field, target, sent_at, _ = body.split(b":", 4)
        if int(target) != me.index:
            self.misdelivered += 1
        sender = self.clients[int(sender_field)]
        seq = int(seq_field)
        if sender.received[seq]:
            self.duplicated += 1
            return
        sender.received[seq] = 1
        self.latencies.append((arrived - int(sent_at)) // 1000)
        self.delivered += 1
        self.last_delivery = now()
        sender.outstanding -= 1
        self._fill(sender)
        self._check_done()

    def on_dlv(self, conn: Conn, line: bytes) -> None:
        conn.tag.dlvs += 1
        self.dlv_total += 1


# --------------------------------------------------------------------------
# W2: room fan-out


class _Member:
    __slots__ = ("index", "name", "conn", "seen", "got", "quota", "sent", "outstanding")

    def __init__(self, index: int, name: bytes, slots: int, quota: int) -> None:
        self.index = index
        self.name = name
        self.conn: Conn | None = None
        self.seen: set[bytes] = set()
        self.got = bytearray(slots)  # per (sender, seq): received here?
        self.quota = quota
        self.sent = 0
        self.outstanding = 0


class Room(Scenario, Handler):
    """``members`` clients in one room; the first ``senders`` of them send
    ``messages`` in all, at most ``window`` outstanding each (sent, not yet
    received by every other member)."""

    def __init__(self, spec, control) -> None:
        Scenario.__init__(self, spec, control)
        Handler.__init__(self)
        users = load_population(spec["population"])[: int(spec["members"])]
        self.users = users
        self.room = spec.get("room", "#bench").encode()
        senders = int(spec["senders"])
        total = int(spec["messages"])
        self.window = int(spec.get("window", 8))
        self.per_sender = -(-total // senders)
        self.total = total
        self.senders = senders
        slots = senders * self.per_sender
        self.members = [
            _Member(
                i,
                u[0].encode(),
                slots,
                (total // senders + (1 if i < total % senders else 0)) if i < senders else 0,
            )
            for i, u in enumerate(users)
        ]
        self.others = len(self.members) - 1
        self.remaining = array.array("i", [self.others]) * slots
        self.pad = padding(int(spec.get("body_size", 64)), 30)
        self.latencies = array.array("I")
        self.delivered = 0
        self.accepted = 0
        self.rejected = 0
        self.completed = 0  # messages every other member has received
        self.redelivered = 0
        self.duplicated = 0
        self.echoed = 0
        self.replies_pending = 0
        self.last_delivery = 0.0
        self.done: asyncio.Future = self.loop.create_future()

    async def prepare(self) -> dict[str, Any]:
        started = now()
        conns = await self.login_all(self.users, self, self.members)
        for member, conn in zip(self.members, conns):
            member.conn = conn
        replies = await asyncio.wait_for(
            asyncio.gather(*(c.request(b"JOIN|" + self.room + b"\n") for c in conns)),
            self.prepare_timeout,
        )
        bad = [r for r in replies if not is_ok(r)]
        if bad:
            raise RuntimeError(f"JOIN failed: {bad[:3]!r}")
        await asyncio.sleep(0.2)  # let the JOINED events drain
        return {"members": len(conns), "login_s": now() - started}

    async def run(self) -> dict[str, Any]:
        self.events = 0
        self.started = now()
        for member in self.members[: self.senders]:
            self._fill(member)
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(self.done), self.timeout)
        except TimeoutError:
            timed_out = True
        expected = self.accepted * self.others
        result = {
            "members": len(self.members),
            "senders": self.senders,
            "messages": self.total,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "delivered": self.delivered,
            "expected": expected,
            "lost": expected - self.delivered,
            "unanswered": self.replies_pending,
            "duplicated": self.duplicated,
            "redelivered": self.redelivered,
            "echoed": self.echoed,
            "other_events": self.events,
            "pings": self.pings,
            "byes": [b.decode("utf-8", "replace") for b in self.byes],
            "unexpected": [u.decode("utf-8", "replace") for u in self.unexpected],
            "start": self.started,
            "end": self.last_delivery or now(),
            "timed_out": timed_out,
            "latencies_us": pack_latencies(self.latencies),
            "errors": self.errors.as_dict(),
        }
        self.keep_for_finish([m.conn for m in self.members])
        return result

    def _fill(self, member: _Member) -> None:
        conn = member.conn
        assert conn is not None, "filled only once connected"
        replied = partial(self._replied, member)
        while member.outstanding < self.window and member.sent < member.quota:
            seq = member.sent
            member.sent = seq + 1
            member.outstanding += 1
            self.replies_pending += 1
            conn.command(
                b"MSG|%s|%d:%d:%d:%s\n" % (self.room, member.index, seq, monotonic_ns(), self.pad),
                replied,
            )

    def _replied(self, member: _Member, line: bytes | None) -> None:
        self.replies_pending -= 1
        if line is not None and line.startswith(b"OK|"):
            self.accepted += 1
        else:
            self.rejected += 1
            self.errors.add("MSG", line)
            member.outstanding -= 1
            self._fill(member)
        self._check_done()

    def _check_done(self) -> None:
        if (
            self.completed + self.rejected >= self.total
            and self.replies_pending == 0
            and not self.done.done()
        ):
            self.done.set_result(None)

    def on_c(self, conn: Conn, line: bytes) -> None:
        arrived = monotonic_ns()
        _, _, _, msgid, body = line.split(b"|", 4)
        me = conn.tag
        if msgid in me.seen:
            self.redelivered += 1
            return
        me.seen.add(msgid)
        sender_field, seq, sent_at, _ = body.split(b":", 3)
        sender = int(sender_field)
        if sender == me.index:
            self.echoed += 1
            return
        slot = sender * self.per_sender + int(seq)
        if me.got[slot]:
            self.duplicated += 1
            return
        me.got[slot] = 1
        self.latencies.append((arrived - int(sent_at)) // 1000)
        self.delivered += 1
        self.last_delivery = now()
        left = self.remaining[slot] - 1
        self.remaining[slot] = left
        if left == 0:
            self.completed += 1
            owner = self.members[sender]
            owner.outstanding -= 1
            self._fill(owner)
            self._check_done()


# --------------------------------------------------------------------------
# W3: idle connections


class Idle(Scenario, Handler):
    """Connect and RESUME every user at once; hold the connections until
    the harness has measured the server's memory."""

    def __init__(self, spec, control) -> None:
        Scenario.__init__(self, spec, control)
        Handler.__init__(self)
        population = load_population(spec["population"])
        self.users = population[: int(spec["clients"])]

    async def run(self) -> dict[str, Any]:
        started = now()
        self.last_ok = started
        logged_in = 0
        failed = 0
        conns: list[Conn] = []

        async def one(user) -> None:
            nonlocal logged_in, failed
            line = b"RESUME|%s|%s\n" % (user[0].encode(), user[2].encode())
            try:
                conn, (reply,) = await self.open(self, None, [line])
            except ConnectionError as e:
                failed += 1
                self.errors.add("connect", str(e).encode())
                return
            conns.append(conn)
            reply = reply.result()
            if is_ok(reply):
                logged_in += 1
                self.last_ok = now()
            else:
                failed += 1
                self.errors.add("RESUME", reply)

        self.live = conns
        self.start_keepalive()
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.gather(*(one(u) for u in self.users)), self.timeout)
        except TimeoutError:
            timed_out = True
        login_s = self.last_ok - started
        await self.control.hold({"logged_in": logged_in, "failed": failed, "login_s": login_s})
        still_open = sum(1 for c in conns if not c.closed)
        result = {
            "clients": len(self.users),
            "logged_in": logged_in,
            "failed": failed,
            "still_open": still_open,
            "login_s": login_s,
            "start": started,
            "end": self.last_ok,
            "timed_out": timed_out,
            "events": self.events,
            "pings": self.pings,
            "byes": [b.decode("utf-8", "replace") for b in self.byes],
            "errors": self.errors.as_dict(),
        }
        self.keep_for_finish(conns)
        return result


# --------------------------------------------------------------------------
# W4: backlog drain


class Backlog(Scenario, Handler):
    """``messages`` wait for one offline user (sent in ``prepare`` by a few
    other users, who then leave); ``run`` logs it in with its password and
    acknowledges every R until the last one."""

    def __init__(self, spec, control) -> None:
        Scenario.__init__(self, spec, control)
        Handler.__init__(self)
        population = load_population(spec["population"])
        self.sink = population[0]
        self.filler_users = population[1 : 1 + int(spec.get("sources", 4))]
        self.total = int(spec["messages"])
        self.pad = padding(int(spec.get("body_size", 64)), 30)
        self.received = bytearray(self.total)
        self.seen: set[bytes] = set()
        self.delivered = 0
        self.redelivered = 0
        self.duplicated = 0
        self.accepted = 0
        self.last_delivery = 0.0
        self.done: asyncio.Future = self.loop.create_future()

    async def prepare(self) -> dict[str, Any]:
        started = now()
        handler = Handler()
        conns = await self.login_all(self.filler_users, handler, [None] * len(self.filler_users))
        k = len(conns)
        sink = self.sink[0].encode()
        sent_at = monotonic_ns()

        async def fill(conn: Conn, seqs: range) -> None:
            outstanding: list[asyncio.Future] = []
            for seq in seqs:
                outstanding.append(
                    conn.request(b"MSG|%s|%d:%d:%s\n" % (sink, seq, sent_at, self.pad))
                )
                if len(outstanding) >= 256:
                    await self._count(outstanding)
                    outstanding = []
            await self._count(outstanding)

        await asyncio.wait_for(
            asyncio.gather(*(fill(c, range(j, self.total, k)) for j, c in enumerate(conns))),
            self.prepare_timeout,
        )
        filled = now()
        quits = [c.request(b"QUIT\n") for c in conns]
        await asyncio.wait_for(asyncio.gather(*quits, *(c.lost for c in conns)), 30)
        if self.accepted != self.total:
            raise RuntimeError(
                f"only {self.accepted} of {self.total} messages accepted: {self.errors.examples[:3]}"
            )
        return {"fill_s": filled - started, "fill_rate": self.total / max(1e-9, filled - started)}

    async def _count(self, futures: list[asyncio.Future]) -> None:
        for reply in await asyncio.gather(*futures):
            if is_ok(reply):
                self.accepted += 1
            else:
                self.errors.add("MSG", reply)

    async def run(self) -> dict[str, Any]:
        started = now()
        conn, (login,) = await asyncio.wait_for(
            self.open(
                self, None, [b"LOGIN|%s|%s\n" % (self.sink[0].encode(), self.sink[1].encode())]
            ),
            self.timeout,
        )
        login = login.result()
        if not is_ok(login):
            raise RuntimeError(f"LOGIN failed: {login!r}")
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(self.done), self.timeout)
        except TimeoutError:
            timed_out = True
        result = {
            "messages": self.total,
            "delivered": self.delivered,
            "lost": self.accepted - self.delivered,
            "duplicated": self.duplicated,
            "redelivered": self.redelivered,
            "start": started,
            "end": self.last_delivery or now(),
            "timed_out": timed_out,
            "other_events": self.events,
            "pings": self.pings,
            "byes": [b.decode("utf-8", "replace") for b in self.byes],
            "unexpected": [u.decode("utf-8", "replace") for u in self.unexpected],
            "errors": self.errors.as_dict(),
        }
        self.keep_for_finish([conn])
        return result

    def on_r(self, conn: Conn, line: bytes) -> None:
        _, _, msgid, body = line.split(b"|", 3)
        conn.send(b"ACK|" + msgid + b"\n")
        if msgid in self.seen:
            self.redelivered += 1
            return
        self.seen.add(msgid)
        seq = int(body.split(b":", 1)[0])
        if self.received[seq]:
            self.duplicated += 1
            return
        self.received[seq] = 1
        self.delivered += 1
        self.last_delivery = now()
        if self.delivered >= self.accepted and not self.done.done():
            self.done.set_result(None)


# --------------------------------------------------------------------------
# W5: login storm


class Storm(Scenario, Handler):
    """``count`` logins (RESUME with a token, or LOGIN with the password)
    through ``concurrency`` connections at a time; each connects, logs in,
    QUITs and waits for the close."""

    def __init__(self, spec, control) -> None:
        Scenario.__init__(self, spec, control)
        Handler.__init__(self)
        population = load_population(spec["population"])
        self.users = population[: int(spec.get("users", len(population)))]
        self.count = int(spec["count"])
        self.concurrency = min(int(spec.get("concurrency", 100)), self.count)
        self.verb = spec.get("verb", "RESUME")
        self.latencies = array.array("I")

    async def run(self) -> dict[str, Any]:
        started = now()
        ok = 0
        users = self.users

        async def worker(w: int) -> None:
            nonlocal ok
            for i in range(w, self.count, self.concurrency):
                name, password, token = users[i % len(users)]
                secret = token if self.verb == "RESUME" else password
                t0 = monotonic_ns()
                login = b"%s|%s|%s\n" % (self.verb.encode(), name.encode(), secret.encode())
                try:
                    conn, (reply, bye) = await self.open(self, None, [login, b"QUIT\n"])
                except ConnectionError as e:
                    self.errors.add("connect", str(e).encode())
                    continue
                line = reply.result()
                if is_ok(line):
                    ok += 1
                    self.latencies.append((monotonic_ns() - t0) // 1000)
                else:
                    self.errors.add(self.verb, line)
                await bye
                try:
                    await asyncio.wait_for(conn.lost, 10)
                except TimeoutError:
                    conn.abort()

        timed_out = False
        try:
            await asyncio.wait_for(
                asyncio.gather(*(worker(w) for w in range(self.concurrency))), self.timeout
            )
        except TimeoutError:
            timed_out = True
        ended = now()
        return {
            "verb": self.verb,
            "count": self.count,
            "ok": ok,
            "failed": self.count - ok,
            "concurrency": self.concurrency,
            "start": started,
            "end": ended,
            "timed_out": timed_out,
            "latencies_us": pack_latencies(self.latencies),
            "events": self.events,
            "errors": self.errors.as_dict(),
        }


SCENARIOS = {
    "setup": Setup,
    "direct": Direct,
    "room": Room,
    "idle": Idle,
    "backlog": Backlog,
    "storm": Storm,
}
