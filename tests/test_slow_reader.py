"""docs/protocol.md, "Limits": readers that do not read (--max-outbuf).

A client that stops reading cannot make the server buffer without bound:
once the events pushed to it (R, C, DLV, ON, OFF, ...) and still unsent
exceed ``--max-outbuf`` it gets BYE|408|too slow and is dropped, its
messages stay stored.  Replies to its own commands never count: while it
has not read them the server reads no further commands from it, so its
requests pace it.

Three levels:

* the in-memory harness (``StringTransport``): the test pauses the producer
  the server registered, ``client.producer.pauseProducing()``;
* :class:`~tests.support.sockets.SocketModel`: Twisted's own TCP send
  buffering (``abstract.FileDescriptor``: ``bufferSize``, pausing and
  resuming the streaming producer, ``loseConnection`` that waits for the
  buffer to drain) over a socket whose peer reads only when the test says
  so -- what a real ``tcp.Server`` transport does with the server's writes
  and closes, which a ``StringTransport`` cannot show;
* a real ``twistd messenger`` read slowly by real sockets (slow-marked).

The flood test prints a one-line summary (peak RSS of the server and so on)
and, when ``MESSENGER_RELIABILITY_REPORT`` names a JSON file, merges its
figures into it.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import threading
import time

import pytest
from twisted.trial.unittest import SynchronousTestCase

from tests.support.harness import HELLO, PASSWORD, Harness
from tests.support.report import merge_report
from tests.support.server import HOST, ServerProcess
from tests.support.sockets import SocketModel, model_connection, settle_models

MAX_OUTBUF = 65536
PAD = "p" * 1000  # about 1 KB per message
BATCH = 50  # room messages per round trip of the room sender
DMS_PER_BATCH = 10  # direct messages to the stuck reader per round
FLOOD_SECONDS = 20.0  # give up flooding after this
MAX_FLOOD_BYTES = 12 * 1024 * 1024
MIN_FLOOD_BYTES = 2 * 1024 * 1024  # go on this long after the stuck reader is dropped
MIN_FLOOD_SECONDS = 4.0  # and at least this long in all
RSS_GROWTH_LIMIT_KIB = 50 * 1024
LATENCY_LIMIT = 3.0  # seconds, for the watcher's worst message


#: Generous per-connection command allowance, for tests about something else.
NO_RATE_LIMIT = dict(rate=1e9, burst=10**9)


def replies(lines: list[str]) -> list[str]:
    """Final replies (rule 2) among ``lines``, events left out."""
    return [line for line in lines if line.startswith(("OK|", "ERR|"))]


# -- the in-memory harness: a paused producer ----------------------------------


class StuckReaderTests(SynchronousTestCase):
    """A reader that stops reading altogether, among others that read."""

    # "C|#general|alice|N|" is 19 bytes for one-digit N, the LF 1: 100-byte lines.
    BODY = "x" * 80

    def setUp(self):
        self.h = Harness(max_outbuf=1000, idle_timeout=60, **NO_RATE_LIMIT)
        self.alice, self.bob, self.carol = self.h.users("alice", "bob", "carol")

    def test_no_r_lines_while_paused_and_they_arrive_after_resume(self):
        """Limits and Delivery: while the reader's send buffer is full no R is
        written; the messages stay stored and arrive, in order, on resume."""
        self.bob.producer.pauseProducing()
        sent = self.alice.command(*[f"MSG|bob|m{n}" for n in range(1, 6)])
        self.assertEqual(sent, [f"OK|MSG|{n}" for n in range(1, 6)])
        self.h.advance(20)  # retries would be due
        self.assertEqual([ln for ln in self.bob.lines() if ln.startswith("R|")], [])
        self.assertEqual(self.alice.command("HISTORY|bob|10")[-1], "OK|HISTORY|bob|5")
        self.bob.producer.resumeProducing()
        self.h.settle()
        self.assertEqual(self.bob.lines(), [f"R|alice|{n}|m{n}" for n in range(1, 6)])
        self.assertFalse(self.bob.closed)

    def test_output_past_max_outbuf_gets_bye_408_too_slow_and_the_connection_is_dropped(self):
        """Limits: once a stuck reader's unsent pushed events exceed
        --max-outbuf it gets BYE|408|too slow after them and is dropped at
        once (aborted, the buffer not waited for) and goes offline; its
        direct messages stay stored and arrive at its next login."""
        self.bob.producer.pauseProducing()
        self.alice.command("MSG|bob|kept for later")  # held back: no R while paused
        events = []
        for n in range(2, 12):  # 10 lines of 100 bytes: exactly max-outbuf
            body = self.BODY[: 80 - (len(str(n)) - 1)]
            self.assertEqual(self.alice.command(f"BCST|{body}"), [f"OK|BCST|{n}"])
            events.append(f"C|#general|alice|{n}|{body}")
        self.assertFalse(self.bob.closed)
        self.assertEqual(self.alice.command(f"BCST|{self.BODY}"), ["OK|BCST|12", "OFF|bob"])
        events.append(f"C|#general|alice|12|{self.BODY}")
        lines = self.bob.lines()
        self.assertEqual(lines, events + ["BYE|408|too slow"])
        self.assertEqual(sum(len(ln) + 1 for ln in lines[:-1]), 1101)
        self.assertTrue(self.bob.aborted)
        self.assertNotIn("bob", self.h.service.online)
        again = self.h.login("bob")
        self.assertEqual(again.lines(), ["R|alice|1|kept for later"])

    def test_stuck_reader_that_keeps_sending_pings_gets_bye_408_too_slow_after_the_idle_timeout(
        self,
    ):
        """docs/protocol.md, slow readers: a reader stuck for longer than
        --idle-timeout is closed with BYE|408|too slow even though its PINGs
        keep it from being idle (they are not answered while it is stuck:
        its commands wait until it reads)."""
        self.bob.producer.pauseProducing()
        for _ in range(5):
            self.h.advance(11)
            self.bob.send("PING")
            self.h.settle()
            self.assertFalse(self.bob.closed)
        self.h.advance(4)
        self.assertFalse(self.bob.closed)
        self.h.advance(1)  # 60 s since the pause
        lines = [ln for ln in self.bob.lines() if not ln.startswith(("ON|", "OFF|"))]
        self.assertEqual(lines, ["BYE|408|too slow"])
        self.assertTrue(self.bob.aborted)

    def test_other_clients_keep_getting_their_messages_meanwhile(self):
        """Limits: one stuck reader does not hold up anyone else: carol gets
        every R and C at once while bob is stuck, and after bob is dropped."""
        self.bob.producer.pauseProducing()
        for n in range(1, 31):
            text = f"{n}-{self.BODY}"
            self.assertEqual(
                replies(self.alice.command(f"BCST|{text}", f"MSG|carol|{text}")),
                [f"OK|BCST|{2 * n - 1}", f"OK|MSG|{2 * n}"],
            )
            lines = [ln for ln in self.carol.lines() if not ln.startswith("OFF|")]
            self.assertEqual(
                lines, [f"C|#general|alice|{2 * n - 1}|{text}", f"R|alice|{2 * n}|{text}"]
            )
            self.carol.send(f"ACK|{2 * n}")
        self.assertTrue(self.bob.closed)
        self.h.settle()
        self.assertEqual(replies(self.alice.command("WHO")), ["OK|WHO|alice|carol"])


def fills_up_past(client, size: int) -> None:
    """Make ``client``'s transport behave like a socket nobody reads: once
    more than ``size`` bytes are unread it pauses its producer, as Twisted's
    TCP transport does past its bufferSize, and never resumes it."""
    transport = client.transport
    write = transport.write

    def write_and_fill(data: bytes) -> None:
        write(data)
        if len(transport.value()) > size:
            client.producer.pauseProducing()

    transport.write = write_and_fill


class SlowReaderTests(SynchronousTestCase):
    """What counts towards --max-outbuf: pushed events do, replies do not."""

    # A C line of exactly 100 bytes: "C|#general|alice|N|" is 19, the newline 1.
    BODY = "x" * 80

    def setUp(self):
        self.h = Harness(max_outbuf=250)
        self.alice, self.bob = self.h.users("alice", "bob")

    def test_retries_stop_while_the_transport_is_paused(self):
        """An R already sent is not resent into a full buffer; resending resumes afterwards."""
        self.alice.command("MSG|bob|one")
        self.bob.clear()
        self.bob.producer.pauseProducing()
        self.h.advance(30)
        self.assertEqual(self.bob.lines(), [])
        self.bob.producer.resumeProducing()
        self.h.advance(2)
        self.assertEqual(self.bob.lines(), ["R|alice|1|one"])

    def test_reader_that_catches_up_is_not_closed(self):
        """Only unsent output counts: a reader whose buffer drains starts from zero."""
        for _n in range(3):
            self.bob.producer.pauseProducing()
            self.alice.command(f"BCST|{self.BODY}", f"BCST|{self.BODY}")
            self.bob.producer.resumeProducing()
        self.assertFalse(self.bob.closed)
        self.assertEqual(len(self.bob.lines()), 6)

    def test_replies_pace_a_slow_reader_instead_of_closing_it(self):
        """Replies never count towards --max-outbuf: while the send buffer is
        full no further command is read, and the commands are answered, in
        order, once the client reads again."""
        self.bob.producer.pauseProducing()
        self.bob.send(*[f"PING|{n}{'p' * 90}" for n in range(5)])
        self.h.settle()
        self.assertEqual(self.bob.lines(), [])
        self.assertFalse(self.bob.closed)
        self.bob.producer.resumeProducing()
        self.h.settle()
        self.assertEqual(self.bob.lines(), [f"OK|PING|{n}{'p' * 90}" for n in range(5)])
        self.assertFalse(self.bob.closed)

    def test_a_reply_larger_than_max_outbuf_does_not_close_its_reader(self):
        """A HISTORY page far larger than --max-outbuf, to a reader whose
        buffer does not drain, is written whole and the reader stays open;
        the command after it is read only once the reader has caught up."""
        for n in range(1, 6):
            self.alice.command(f"BCST|{self.BODY}")
        self.bob.clear()
        fills_up_past(self.bob, 125)
        self.bob.send("HISTORY|#general|5", "PING|after")
        self.h.settle()
        self.h.advance(10)
        lines = self.bob.lines()
        self.assertEqual(len(lines), 6)
        self.assertEqual(lines[-1], "OK|HISTORY|#general|5")
        self.assertFalse(self.bob.closed)
        self.bob.producer.resumeProducing()
        self.h.settle()
        self.assertEqual(self.bob.lines(), ["OK|PING|after"])

    def test_events_still_count_while_replies_wait(self):
        """Pushed events written while the output is full still count: past
        --max-outbuf of them the reader is too slow, whatever its replies."""
        self.bob.producer.pauseProducing()
        self.bob.send("PING")
        for _n in range(3):
            self.alice.command(f"BCST|{self.BODY}")
        self.assertEqual(self.bob.lines()[-1], "BYE|408|too slow")
        self.assertTrue(self.bob.closed)


# -- Twisted's send buffering: SocketModel -------------------------------------


class RealTransportTests(SynchronousTestCase):
    """Slow readers over :class:`SocketModel` (Twisted's FileDescriptor buffering):
    the server's own buffer and Twisted's pausing, closes that wait for a drain."""

    BUFFER = 1000  # the transport's bufferSize (64 KiB in tcp.Server)

    def setUp(self):
        self.h = Harness(max_outbuf=3000, idle_timeout=10, **NO_RATE_LIMIT)
        self.alice, self.carol = self.h.users("alice", "carol")
        self.h.register("bob")

    def connect_bob(self, room: int) -> SocketModel:
        bob = model_connection(self.h, "10.9.9.9", self.BUFFER, room)
        assert bob.protocol is not None
        bob.protocol.dataReceived(f"LOGIN|bob|{PASSWORD}\n".encode())
        settle_models(self.h, bob)
        return bob

    def test_stuck_reader_past_max_outbuf_is_dropped_without_draining(self):
        """Limits: past --max-outbuf of unsent output the reader gets BYE|408|too slow where it fits and is closed, the buffer dropped."""
        bob = self.connect_bob(room=10**6)
        self.assertEqual(bob.lines(), [HELLO, "OK|LOGIN|bob|Bob"])
        bob.room = 0
        for n in range(1, 60):
            self.alice.command(f"BCST|{'x' * 90}")
            settle_models(self.h, bob)
            if bob.lost is not None:
                break
        self.assertIsNotNone(bob.lost)
        self.assertTrue(bob.aborted)
        self.assertLess(n * 110, 3000 + self.BUFFER + 300)
        self.assertNotIn("bob", self.h.service.online)

    def test_reader_that_keeps_reading_is_not_closed_while_its_unsent_output_stays_under_max_outbuf(
        self,
    ):
        """Limits: a client is closed once its *unsent* output exceeds
        --max-outbuf.  A reader that keeps reading, only a little behind, so
        that its buffer never quite empties (Twisted resumes the producer only
        on an empty buffer), holds far less than --max-outbuf unsent and must
        not be closed."""
        bob = self.connect_bob(room=10**6)
        bob.lines()
        bob.room = 0
        line = 100
        body = "x" * (line - len("C|#general|alice|NN|") - 1)
        for _ in range(12):  # fill the buffer past bufferSize: paused
            self.alice.command(f"BCST|{body}")
            settle_models(self.h, bob)
        self.assertGreater(bob.unsent, self.BUFFER)
        peak = 0
        for _ in range(60):  # 6000 bytes more; bob reads as fast as they come
            before = bob.unsent
            self.alice.command(f"BCST|{body}")
            settle_models(self.h, bob)
            peak = max(peak, bob.unsent)
            bob.peer_reads(bob.unsent - before)
            if bob.lost is not None:
                break
        self.assertLess(peak, 3000)
        self.assertIsNone(bob.lost, f"closed with only {peak} bytes unsent: {bob.lines()[-1:]}")

    def test_idle_timeout_closes_a_connection_even_if_its_client_never_reads(self):
        """Limits: a silent connection gets BYE|408|idle timeout and is
        closed.  When its client also reads nothing, the close cannot wait for
        the send buffer to drain: the connection must still go away (within
        another --idle-timeout), not hold its --max-clients slot for ever."""
        bob = self.connect_bob(room=0)  # reads nothing at all
        session = bob.protocol.session
        self.assertLess(bob.unsent, self.BUFFER)  # not even paused
        self.h.advance(10)
        settle_models(self.h, bob)
        self.assertTrue(bob.disconnecting)  # BYE written, close asked for
        self.h.advance(10)
        settle_models(self.h, bob)
        self.assertIsNotNone(bob.lost, "the connection is still open")
        self.assertNotIn(session, self.h.service.connections)

    def test_connection_closes_after_a_bye_that_filled_the_buffer_is_read(self):
        """Rule 3 (BYE: the server closes the connection right after it):
        also when the BYE line itself pushes the send buffer past its size,
        the connection closes once the client has read it."""
        bob = self.connect_bob(room=0)
        # Top the buffer up to 5 bytes under bufferSize with a PING reply.
        token = "p" * (self.BUFFER - 5 - bob.unsent - len("OK|PING|\n"))
        bob.protocol.dataReceived(f"PING|{token}\n".encode())
        settle_models(self.h, bob)
        self.assertEqual(bob.unsent, self.BUFFER - 5)
        self.h.advance(10)  # idle: BYE|408|idle timeout tips it over
        settle_models(self.h, bob)
        bob.peer_reads(10**6)  # the client reads everything, BYE included
        settle_models(self.h, bob)
        self.assertEqual(bob.lines()[-1], "BYE|408|idle timeout")
        self.assertEqual(bob.unsent, 0)
        self.h.advance(60)
        settle_models(self.h, bob)
        self.assertIsNotNone(bob.lost, "BYE read, yet the connection stays open")


# -- a real server -------------------------------------------------------------


def vmrss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def kernel_send_queue(local_port: int, remote_port: int) -> int | None:
    """Bytes in the kernel send queue of the 127.0.0.1 socket local_port ->
    remote_port, or None if there is no such socket.  Asks ``ss`` (the
    kernel filters) where there is one: /proc/net/tcp lists every socket of
    the host, which is slow after many tests."""
    if shutil.which("ss"):
        out = subprocess.run(
            [
                "ss",
                "-tnH",
                "state",
                "established",
                f"( sport = :{local_port} and dport = :{remote_port} )",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split()
        # Recv-Q Send-Q Local Peer (the state column is left out with a state filter)
        return int(out[1]) if len(out) >= 2 else None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local = int(fields[1].split(":")[1], 16)
            remote = int(fields[2].split(":")[1], 16)
            if local == local_port and remote == remote_port:
                return int(fields[4].split(":")[0], 16)
    return None


class RawClient:
    """A blocking line client that reads in big chunks (fast enough to keep
    up with a flood), with a deadline on every read."""

    def __init__(self, port: int, rcvbuf: int | None = None, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect, so the window the server sees is small from the start.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self._buffer = b""
        self._lines: list[str] = []
        self.eof = False

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\n" for line in lines).encode("utf-8"))

    def read_lines(self, timeout: float | None = None) -> list[str]:
        """Every complete line available now, waiting for at least one."""
        if not self._lines:
            self.sock.settimeout(self.timeout if timeout is None else timeout)
            while not self._lines:
                data = self.sock.recv(1 << 20)
                if not data:
                    self.eof = True
                    raise ConnectionError("the server closed the connection")
                self._buffer += data
                *complete, self._buffer = self._buffer.split(b"\n")
                self._lines.extend(line.decode("utf-8") for line in complete)
        lines, self._lines = self._lines, []
        return lines

    def read_until(self, predicate, timeout: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"not there in time; last lines {seen[-3:]}")
            lines = self.read_lines(remaining)
            for index, line in enumerate(lines):
                if predicate(line):
                    self._lines = lines[index + 1 :] + self._lines
                    return seen + lines[: index + 1]
            seen.extend(lines)

    def command(self, line: str) -> str:
        verb = line.split("|", 1)[0].upper()
        self.send(line)
        return self.read_until(lambda ln: ln.startswith((f"OK|{verb}", f"ERR|{verb}|")))[-1]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Watcher(threading.Thread):
    """A normal client: reads everything as it comes, ACKs each R, and notes
    when each C and R arrived."""

    def __init__(self, client: RawClient) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.room: dict[int, float] = {}  # msgid -> latency
        self.direct: set[int] = set()
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    lines = self.client.read_lines(timeout=0.2)
                except TimeoutError:
                    continue
                now = time.monotonic()
                acks = []
                for line in lines:
                    if line.startswith("C|#flood|"):
                        _, _, _, room_msgid, text = line.split("|", 4)
                        self.room[int(room_msgid)] = now - float(text.split(" ", 1)[0])
                    elif line.startswith("R|"):
                        msgid = int(line.split("|")[2])
                        self.direct.add(msgid)
                        acks.append(f"ACK|{msgid}")
                if acks:
                    self.client.send(*acks)
        except BaseException as e:  # reported by the test
            self.error = e


class Sampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, vmrss_kib(self.pid))
                self.samples += 1
            except OSError:
                return
            time.sleep(self.interval)


@pytest.mark.slow  # soak: real processes read slowly for seconds
class SlowReaderProcessTests(SynchronousTestCase):
    def connect(self, server: ServerProcess, **kwargs) -> RawClient:
        client = RawClient(server.port, **kwargs)
        self.addCleanup(client.close)
        hello = client.read_lines()
        self.assertEqual(hello[0], "HELLO|1|messenger")
        return client

    def login(self, server: ServerProcess, user: str, **kwargs) -> RawClient:
        client = self.connect(server, **kwargs)
        self.assertTrue(client.command(f"LOGIN|{user}|password1").startswith(f"OK|LOGIN|{user}|"))
        return client

    def test_stuck_reader_is_dropped_memory_stays_bounded_and_others_are_served(self):
        """Limits: a client that stops reading cannot make the server buffer
        without bound: past --max-outbuf of unsent output it is closed (its
        direct messages stay stored), the server's RSS stays bounded, and a
        normal client gets every message meanwhile without delay."""
        server = ServerProcess(
            self,
            "--max-outbuf",
            str(MAX_OUTBUF),
            "--idle-timeout",
            "120",  # any close here is for slowness
            "--rate",
            "1000000",
            "--burst",
            "1000000",
            "--max-pending",
            "1000000",
        )
        pid = server.process.pid
        admin = self.connect(server)
        for user in ("stuck", "roomsender", "dmsender", "watch"):
            self.assertEqual(admin.command(f"USR|{user}|password1|{user}"), f"OK|USR|{user}")
        admin.close()

        # The stuck reader: a tiny receive buffer, logs in, joins, then never reads.
        stuck = self.connect(server, rcvbuf=1024)
        stuck.send("LOGIN|stuck|password1", "JOIN|#flood")
        stuck.read_until(lambda line: line == "OK|JOIN|#flood")
        watch = self.login(server, "watch")
        self.assertEqual(watch.command("JOIN|#flood"), "OK|JOIN|#flood")
        room_sender = self.login(server, "roomsender")
        self.assertEqual(room_sender.command("JOIN|#flood"), "OK|JOIN|#flood")
        dm_sender = self.login(server, "dmsender")

        watcher = Watcher(watch)
        watcher.start()
        self.addCleanup(watcher.stop.set)
        baseline = vmrss_kib(pid)
        sampler = Sampler(pid)
        sampler.start()
        self.addCleanup(sampler.stop.set)

        room_ids: list[int] = []
        stuck_ids: list[int] = []
        watch_ids: list[int] = []
        flooded = 0
        dropped_at: int | None = None
        started = time.monotonic()
        while time.monotonic() - started < FLOOD_SECONDS and flooded < MAX_FLOOD_BYTES:
            batch = [f"MSG|#flood|{time.monotonic():.6f} {PAD}" for _ in range(BATCH)]
            room_sender.send(*batch)
            dms = [f"MSG|stuck|{len(stuck_ids) + n} {PAD}" for n in range(DMS_PER_BATCH)]
            dms.append(f"MSG|watch|{len(watch_ids)} {PAD}")
            dm_sender.send(*dms)
            flooded += sum(len(line) + 1 for line in batch + dms)
            oks = [
                ln
                for ln in room_sender.read_until(_counter("OK|MSG|", BATCH))
                if ln.startswith("OK|MSG|")
            ]
            room_ids += [int(ln.split("|")[2]) for ln in oks]
            oks = [
                ln
                for ln in dm_sender.read_until(_counter("OK|MSG|", len(dms)))
                if ln.startswith("OK|MSG|")
            ]
            ids = [int(ln.split("|")[2]) for ln in oks]
            stuck_ids += ids[:-1]
            watch_ids.append(ids[-1])
            if dropped_at is None and "reads too slowly" in server.log_text():
                dropped_at = flooded
            if (
                dropped_at is not None
                and flooded - dropped_at >= MIN_FLOOD_BYTES
                and time.monotonic() - started >= MIN_FLOOD_SECONDS
            ):
                break
        flood_seconds = time.monotonic() - started

        # The watcher gets every message.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (
            set(room_ids) <= set(watcher.room) and set(watch_ids) <= watcher.direct
        ):
            self.assertIsNone(watcher.error)
            time.sleep(0.05)
        sampler.stop.set()
        sampler.join()
        watcher.stop.set()
        watcher.join()
        self.assertIsNone(watcher.error)
        self.assertEqual(
            sorted(set(room_ids) - set(watcher.room)), [], "room messages the watcher missed"
        )
        self.assertEqual(
            sorted(set(watch_ids) - watcher.direct), [], "direct messages the watcher missed"
        )
        latencies = sorted(watcher.room[i] for i in room_ids)
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]

        # The stuck reader was closed for slowness -- only it.
        slow_lines = [ln for ln in server.log_text().splitlines() if "reads too slowly" in ln]
        self.assertEqual(len(slow_lines), 1, slow_lines)
        self.assertIsNotNone(dropped_at)
        drained = 0
        stuck.sock.settimeout(10)
        closed_how = None
        while closed_how is None:
            try:
                data = stuck.sock.recv(1 << 20)
            except ConnectionResetError:
                closed_how = "reset"
            except TimeoutError:
                self.fail(f"the stuck reader's socket is still open after {drained} bytes")
            else:
                drained += len(data)
                if not data:
                    closed_how = "EOF"
        # Its direct messages stay stored: a new login gets every one.
        again = self.login(server, "stuck")
        got: set[int] = set()
        deadline = time.monotonic() + 15
        while not set(stuck_ids) <= got and time.monotonic() < deadline:
            new = [
                int(ln.split("|")[2])
                for ln in again.read_lines(timeout=5)
                if ln.startswith("R|dmsender|")
            ]
            got.update(new)
            if new:
                again.send(*[f"ACK|{i}" for i in new])
        self.assertEqual(sorted(set(stuck_ids) - got), [], "direct messages lost")

        # Still serving everyone; memory bounded.
        self.assertEqual(room_sender.command("PING|after"), "OK|PING|after")
        self.assertEqual(dm_sender.command("PING|after"), "OK|PING|after")
        growth = sampler.peak - baseline
        summary = (
            f"slow reader: flooded {flooded / 1e6:.1f} MB ({len(room_ids)} room + {len(stuck_ids)} direct "
            f"messages) in {flood_seconds:.1f} s; server RSS baseline {baseline / 1024:.1f} MiB, "
            f"peak {sampler.peak / 1024:.1f} MiB (+{growth / 1024:.1f} MiB, {sampler.samples} samples); "
            f"stuck reader dropped after {dropped_at / 1e6:.2f} MB flooded ({closed_how}, {drained} B drained); "
            f"watcher got all, latency p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms max {latencies[-1] * 1000:.0f} ms"
        )
        print(summary)
        merge_report(
            {
                "slow_reader_peak_rss_kib": sampler.peak,
                "slow_reader_baseline_rss_kib": baseline,
                "slow_reader_rss_growth_kib": growth,
                "slow_reader_bytes_flooded": flooded,
                "slow_reader_dropped_after_bytes": dropped_at,
                "slow_reader_watcher_latency_p50_ms": round(p50 * 1000, 1),
                "slow_reader_watcher_latency_max_ms": round(latencies[-1] * 1000, 1),
                "slow_reader_summary": summary,
            }
        )
        self.assertLess(growth, RSS_GROWTH_LIMIT_KIB, summary)
        self.assertLess(latencies[-1], LATENCY_LIMIT, summary)

    def test_stuck_reader_that_went_idle_gives_back_its_connection_slot(self):
        """Limits: a silent connection gets BYE|408|idle timeout and is closed.
        When its client reads nothing either, the kernel buffers fill and
        the close cannot wait for them to drain: the connection must still go
        away and free its --max-clients slot, not hold it for ever."""
        idle = 1.5
        server = ServerProcess(self, "--idle-timeout", str(idle), "--max-clients", "1")
        deadline = time.monotonic() + 30
        while True:  # until the server has seen its readiness probe go
            stuck = RawClient(server.port, rcvbuf=1024)
            self.addCleanup(stuck.close)
            if stuck.read_lines() == ["HELLO|1|messenger"]:
                break
            stuck.close()
            self.assertLess(time.monotonic(), deadline, "no free connection slot at the start")
            time.sleep(0.05)
        me = stuck.sock.getsockname()[1]
        # Fill the kernel buffers with PING replies (8 KB each) until they take
        # no more: what follows stays in the server's own buffer, kept well
        # under the 64 KiB at which Twisted would pause the server (which then
        # closes the reader as too slow, a case tested elsewhere).  Three
        # replies a step while the kernel takes them all, then one a step
        # until the kernel queue stops growing.
        ping = "PING|" + "y" * 8000
        step, previous, same, pings = 3, kernel_send_queue(server.port, me), 0, 0
        while same < 2:
            self.assertLess(pings, 3000, "the kernel send queue never filled")
            stuck.send(*[ping] * step)
            pings += step
            time.sleep(0.02)
            queued = kernel_send_queue(server.port, me)
            if step > 1 and queued - previous < step * 8000:
                step = 1
            same = same + 1 if queued == previous else 0
            previous = queued
        if "reads too slowly" in server.log_text():
            self.skipTest("the reader was paused and closed as too slow: not the case under test")
        # The close is due an idle timeout from now and may wait at most as
        # long again for the buffer; "for ever" is taken as 20 times that.
        deadline = time.monotonic() + idle * 20
        while True:
            probe = RawClient(server.port)
            self.addCleanup(probe.close)
            first = probe.read_lines()[0]
            probe.close()
            if first != "BYE|503|server full" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        still = kernel_send_queue(server.port, me)
        self.assertEqual(
            first,
            "HELLO|1|messenger",
            f"the idle stuck connection still holds its slot ({still} bytes in its kernel send queue)",
        )
        self.assertNotIn("reads too slowly", server.log_text())


def _counter(prefix: str, n: int):
    """A read_until predicate that is true at the n-th line starting with prefix."""
    seen = [0]

    def predicate(line: str) -> bool:
        if line.startswith(prefix):
            seen[0] += 1
        return seen[0] >= n

    return predicate


@pytest.mark.slow
class BigReplyProcessTests(SynchronousTestCase):
    """PROTOCOL.md, "Limits and protection": replies to a client's own
    commands never count as slowness, however large; they pace the client."""

    def test_a_reply_far_larger_than_max_outbuf_reaches_a_reader_that_waits(self):
        """A client asks for 120 messages of 8 KB (about 1 MB) from a server
        with --max-outbuf 65536, pipelines a PING, and reads nothing for 3 s:
        it is not closed, and then gets every row, the OK and the PING's reply,
        in order."""
        server = ServerProcess(
            self, "--max-outbuf", str(MAX_OUTBUF), "--rate", "1000000", "--burst", "1000000"
        )
        writer = RawClient(server.port)
        self.addCleanup(writer.close)
        writer.read_lines()
        for user in ("writer", "reader"):
            self.assertEqual(writer.command(f"USR|{user}|password1|{user}"), f"OK|USR|{user}")
        self.assertTrue(writer.command("LOGIN|writer|password1").startswith("OK|LOGIN|writer|"))
        self.assertEqual(writer.command("JOIN|#big"), "OK|JOIN|#big")
        bodies = [f"{n:03d}" + "b" * 7997 for n in range(120)]
        writer.send(*[f"MSG|#big|{body}" for body in bodies])
        writer.read_until(_counter("OK|MSG|", 120))

        reader = RawClient(server.port, rcvbuf=4096)
        self.addCleanup(reader.close)
        reader.read_lines()
        self.assertTrue(reader.command("LOGIN|reader|password1").startswith("OK|LOGIN|reader|"))
        self.assertEqual(reader.command("JOIN|#big"), "OK|JOIN|#big")
        reader.send("HISTORY|#big|120", "PING|after")
        time.sleep(3)
        lines = reader.read_until(lambda line: line == "OK|PING|after", timeout=30)
        rows = [line for line in lines if line.startswith("H|")]
        self.assertEqual(sorted(row.rsplit("|", 1)[1] for row in rows), bodies)
        self.assertEqual(lines[-2:], ["OK|HISTORY|#big|120", "OK|PING|after"])
        self.assertEqual(len(lines), 122, lines[:1] + lines[-3:])
        self.assertNotIn("reads too slowly", server.log_text())
