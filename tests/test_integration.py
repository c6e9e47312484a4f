"""Integration tests: a real ``twistd messenger`` process over real sockets.

Each test starts its own server (see :mod:`tests.support.server`) on a free
port of 127.0.0.1 with a fresh database and checks one rule of docs/protocol.md
or of the command line from the outside, as a client or an operator sees
it.  Every wait has a deadline; nothing asserts on how long a sleep was.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import socket
import ssl
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence

import pytest
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support.cluster import start_server, three_nodes
from tests.support.server import (
    HOST,
    REPO_ROOT,
    ConnectionClosed,
    LineClient,
    ServerProcess,
    client_context,
    is_reply,
    make_certificates,
    run_twistd,
)

PASSWORD = "password1"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SHUTDOWN_BYE = "BYE|503|server shutting down"
#: For the tests that pipeline thousands of commands from one connection.
NO_RATE_LIMIT = ("--rate", "1000000", "--burst", "1000000")
#: Events any logged-in client may see at any time (rule 3).
PRESENCE = ("ON|", "OFF|", "JOINED|", "PARTED|")


def signup(
    client: LineClient, username: str, password: str = PASSWORD, display: str | None = None
) -> None:
    reply = client.command(f"USR|{username}|{password}|{display or username.title()}")
    assert reply == f"OK|USR|{username}", reply


def login(client: LineClient, username: str, password: str = PASSWORD) -> str:
    reply = client.command(f"LOGIN|{username}|{password}")
    assert reply.startswith(f"OK|LOGIN|{username}|"), reply
    return reply


def new_user(server: ServerProcess, username: str, timeout: float = 10.0) -> LineClient:
    """A connected client that has signed ``username`` up and logged in."""
    client = server.client(timeout=timeout)
    signup(client, username)
    login(client, username)
    return client


def msgid_of(reply: str, verb: str = "MSG") -> int:
    fields = reply.split("|")
    assert fields[:2] == ["OK", verb] and len(fields) == 3, reply
    return int(fields[2])


def burst_until_killed(
    client: LineClient,
    to: str,
    bodies: Sequence[str],
    in_flight: int,
    kill_after: int,
    kill: Callable[[], object],
) -> tuple[dict[int, str], float | None]:
    """``client`` pipelines ``MSG|to|body`` for each of ``bodies``, keeping
    ``in_flight`` lines ahead of the replies, so the server is always
    mid-burst; ``kill()`` after ``kill_after`` OKs.  Replies already on
    their way still count: reading goes on until the connection drops.

    Returns ({msgid: body} of every OK, the ``time.monotonic()`` of the
    kill, or None if the burst ended first).
    """
    sent = received = 0  # replies come in the order of the commands (rule 2)
    ok: dict[int, str] = {}
    killed_at = None
    try:
        while received < len(bodies):
            if killed_at is None and sent < len(bodies) and sent - received < in_flight:
                chunk = bodies[sent : min(len(bodies), received + in_flight)]
                client.send(*(f"MSG|{to}|{body}" for body in chunk))
                sent += len(chunk)
            line = client.read_line()
            if not is_reply(line, "MSG"):
                continue
            assert line.startswith("OK|MSG|"), line
            ok[msgid_of(line)] = bodies[received]
            received += 1
            if received >= kill_after and killed_at is None:
                kill()
                killed_at = time.monotonic()
    except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
        pass
    return ok, killed_at


def read_deliveries(
    client: LineClient, until_id: int, timeout: float = 30.0
) -> list[tuple[str, int, str]]:
    """ACK every ``R`` until the one with ``until_id``; all of them, in order.

    Each is ``(sender, msgid, body)``; duplicates (redeliveries) included.
    """
    deliveries = []
    deadline = time.monotonic() + timeout
    while True:
        line = client.read_line(max(0.001, deadline - time.monotonic()))
        if not line.startswith("R|"):
            continue
        _, sender, msgid, body = line.split("|", 3)
        client.send(f"ACK|{msgid}")
        deliveries.append((sender, int(msgid), body))
        if int(msgid) == until_id:
            return deliveries


def check_mailbox(testcase, server, recipient, ok, bodies, delivered, label):
    """After a restart: ``recipient`` gets every OK'd message of alice's.

    ``ok`` maps the ids alice got OK for to their bodies; ``bodies`` is
    everything alice sent (some may be stored without an OK: allowed);
    ``delivered`` (msgid -> body, over several rounds) is updated.  alice
    sends a marker first: delivery is oldest first, so once the recipient
    has the marker it has had every earlier pending message.  Returns the
    recipient's client, logged in, everything ACKed.
    """
    alice = server.client()
    login(alice, "alice")
    marker = msgid_of(alice.command(f"MSG|{recipient}|end of {label}"))
    alice.close()
    if ok:
        testcase.assertGreater(marker, max(ok))
    client = server.client(timeout=30)
    login(client, recipient)
    fresh = {}
    for sender, msgid, body in read_deliveries(client, marker):
        testcase.assertEqual(sender, "alice")
        if msgid in delivered:  # a redelivery: the very same message
            testcase.assertEqual(body, delivered[msgid])
            continue
        delivered[msgid] = body
        if msgid != marker:
            testcase.assertIn(body, bodies, f"message {msgid} has a body nobody sent")
            testcase.assertNotIn(body, fresh.values(), f"{body!r} stored twice")
            fresh[msgid] = body
    missing = sorted(set(ok) - set(delivered))
    testcase.assertEqual(missing, [], f"{label}: {len(missing)} OK'd messages lost")
    for msgid, body in ok.items():
        testcase.assertEqual(delivered[msgid], body, f"message {msgid}")
    print(f"{label}: {len(ok)} messages OK'd, {len(fresh)} delivered after the restart")
    return client


class PluginTests(SynchronousTestCase):
    def test_plugin_found(self):
        """getPlugins(IServiceMaker) finds the plugin whose tapname is messenger."""
        from twisted.application.service import IServiceMaker
        from twisted.plugin import getPlugins

        from twisted import plugins

        makers = [p for p in getPlugins(IServiceMaker, plugins) if p.tapname == "messenger"]
        self.assertEqual(len(makers), 1)
        self.assertEqual(makers[0].module, "messenger.tap")
        from messenger.tap import Options

        self.assertIs(makers[0].options, Options)

    def test_no_package_init_in_plugin_dirs(self):
        """twisted/plugins is a plugin directory, not a package: no __init__.py there."""
        self.assertTrue(
            os.path.isfile(os.path.join(REPO_ROOT, "twisted", "plugins", "messenger_plugin.py"))
        )
        self.assertFalse(
            os.path.exists(os.path.join(REPO_ROOT, "twisted", "plugins", "__init__.py"))
        )
        self.assertFalse(os.path.exists(os.path.join(REPO_ROOT, "twisted", "__init__.py")))


class CommandLineTests(SynchronousTestCase):
    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="messenger-cli-")
        self.addCleanup(shutil.rmtree, self.directory, True)

    def test_help_lists_options(self):
        """`twistd messenger --help` lists the server's options and exits 0."""
        result = run_twistd(["messenger", "--help"], cwd=self.directory)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        for option in (
            "--listen",
            "--db",
            "--config",
            "--max-clients",
            "--window",
            "--rate",
            "--burst",
            "--idle-timeout",
            "--max-line",
            "--argon2-time-cost",
            "--argon2-memory-cost",
        ):
            self.assertIn(option, result.stdout)
        self.assertNotIn("Traceback", result.stdout + result.stderr)

    def test_bad_option_value(self):
        """A bad option value exits non-zero with a one-line error naming the option."""
        result = run_twistd(["--pidfile", "", "messenger", "--window", "abc"], cwd=self.directory)
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0, output)
        self.assertNotIn("Traceback", output)
        errors = [line for line in output.splitlines() if "--window" in line]
        self.assertEqual(len(errors), 1, output)
        self.assertIn("abc", errors[0])
        # Nothing was started: no database appeared in the working directory.
        self.assertEqual(os.listdir(self.directory), [])

    def test_port_in_use(self):
        """A --listen port that cannot be bound stops the server with a non-zero status."""
        with socket.socket() as taken:
            taken.bind((HOST, 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            result = run_twistd(
                [
                    "-n",
                    "--pidfile",
                    "",
                    "messenger",
                    "--listen",
                    f"tcp:{port}:interface={HOST}",
                    "--db",
                    os.path.join(self.directory, "db.sqlite3"),
                    "--argon2-time-cost",
                    "1",
                    "--argon2-memory-cost",
                    "8",
                ],
                cwd=self.directory,
                timeout=30,
            )
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0, output)
        self.assertRegex(output, "Couldn't listen|Address already in use")
        self.assertNotIn("Traceback", output)

    def test_unusable_database(self):
        """A --db that is not a usable database stops the server with one clear line and a non-zero status."""
        path = os.path.join(self.directory, "not-a-db.sqlite3")
        with open(path, "w") as f:
            f.write("this is not SQLite\n" * 100)
        result = run_twistd(
            [
                "-n",
                "--pidfile",
                "",
                "messenger",
                "--listen",
                f"tcp:0:interface={HOST}",
                "--db",
                path,
            ],
            cwd=self.directory,
            timeout=30,
        )
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1, output)
        self.assertIn("cannot use the database", output)
        self.assertNotIn("Traceback", output)

    def test_config_file(self):
        """--config reads the [messenger] section; the command line wins over it."""
        config = os.path.join(self.directory, "messenger.ini")
        with open(config, "w", encoding="utf-8") as f:
            f.write("[messenger]\nname = from-the-file\nmin-password-length = 12\n")

        server = ServerProcess(self, "--config", config)
        client = server.client()
        self.assertEqual(client.hello, "HELLO|1|from-the-file")
        self.assertEqual(
            client.command("USR|alice|ten chars!|Alice"), "ERR|USR|400|password too short"
        )
        self.assertEqual(client.command("USR|alice|twelve chars|Alice"), "OK|USR|alice")
        server.stop()

        server.restart(
            "--config", config, "--name", "from-the-command-line", "--min-password-length", "4"
        )
        client = server.client()
        self.assertEqual(client.hello, "HELLO|1|from-the-command-line")
        self.assertEqual(client.command("USR|bob|four|Bob"), "OK|USR|bob")


class ExampleSessionTests(SynchronousTestCase):
    def test_protocol_example(self):
        """docs/protocol.md's example session, over real TCP."""
        server = start_server(self)
        alice = server.client()
        self.assertEqual(alice.hello, "HELLO|1|messenger")
        self.assertEqual(alice.command("USR|alice|correct horse|Alice Liddell"), "OK|USR|alice")
        self.assertEqual(alice.command("LOGIN|alice|correct horse"), "OK|LOGIN|alice|Alice Liddell")

        bob = server.client()
        self.assertEqual(bob.hello, "HELLO|1|messenger")
        self.assertEqual(bob.command("USR|Bob|battery staple|Bob"), "OK|USR|bob")
        self.assertEqual(bob.command("LOGIN|BOB|battery staple"), "OK|LOGIN|bob|Bob")

        m1 = msgid_of(alice.command("MSG|bob|are you there? a|b is fine here"))
        self.assertEqual(bob.expect_event("R|"), f"R|alice|{m1}|are you there? a|b is fine here")
        bob.send(f"ACK|{m1}")

        m2 = msgid_of(alice.command("BCST|hello, everyone!"), "BCST")
        self.assertGreater(m2, m1)
        self.assertEqual(bob.expect_event("C|"), f"C|#general|alice|{m2}|hello, everyone!")

        m3 = msgid_of(bob.command("MSG|alice|yes!"))
        self.assertGreater(m3, m2)
        self.assertEqual(alice.expect_event("R|"), f"R|bob|{m3}|yes!")
        alice.send(f"ACK|{m3}")

        for client, msgid, recipient in ((alice, m1, "bob"), (bob, m3, "alice")):
            dlv = client.expect_event("DLV|").split("|")
            self.assertEqual(dlv[:3], ["DLV", str(msgid), recipient])
            self.assertRegex(dlv[3], TIMESTAMP)

        alice.send("QUIT")
        self.assertEqual(alice.read_until_closed(), ["OK|QUIT", "BYE|200|goodbye"])
        # Nothing else came: presence events only (rule 3), no echo of
        # alice's own messages, no second R or DLV.
        for client in (alice, bob):
            for line in client.events:
                self.assertTrue(line.startswith(PRESENCE), line)
        self.assertEqual(bob.expect_event("OFF|"), "OFF|alice")


class TlsTests(SynchronousTestCase):
    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="messenger-tls-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.certs = make_certificates(self.directory)
        self.server = start_server(self, tls=(self.certs["key"], self.certs["cert"]))

    def test_tls_session(self):
        """Over TLS verified against the CA (IP and DNS name), log in and exchange a message."""
        context = client_context(self.certs["ca"])
        alice = self.server.client(ssl_context=context, server_hostname=HOST)
        bob = self.server.client(ssl_context=context, server_hostname="localhost")
        for client in (alice, bob):
            self.assertEqual(client.hello, "HELLO|1|messenger")
            self.assertIn(client.sock.version(), ("TLSv1.2", "TLSv1.3"))
        signup(alice, "alice")
        signup(bob, "bob")
        login(alice, "alice")
        login(bob, "bob")
        m1 = msgid_of(alice.command("MSG|bob|over TLS | still pipes"))
        self.assertEqual(read_deliveries(bob, m1), [("alice", m1, "over TLS | still pipes")])
        dlv = alice.read_until_prefix("DLV|")[-1].split("|")
        self.assertEqual(dlv[:3], ["DLV", str(m1), "bob"])

    def test_tls_wrong_name_refused_by_client(self):
        """The certificate is for 127.0.0.1/localhost only: another name fails verification."""
        context = client_context(self.certs["ca"])
        with self.assertRaises(ssl.SSLCertVerificationError):
            LineClient(self.server.port, ssl_context=context, server_hostname="example.com")

    def test_old_tls_refused(self):
        """TLS 1.1 and older are refused by the server."""
        if not self._client_can_offer_tls11():
            raise SkipTest("this machine's OpenSSL cannot offer TLS 1.1 even to itself")
        with self.assertRaises(ssl.SSLError) as caught:
            client = LineClient(self.server.port, ssl_context=self._tls11_context(), timeout=5)
            self.addCleanup(client.close)
            self.fail(f"negotiated {client.sock.version()}, got {client.hello!r}")
        self.assertRegex(
            str(caught.exception), "PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|protocol version"
        )
        # The same client allowed TLS 1.2 gets in: it was the version, nothing else.
        context = self._tls11_context()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        client = self.server.client(ssl_context=context)
        self.assertEqual(client.sock.version(), "TLSv1.2")
        self.assertEqual(client.hello, "HELLO|1|messenger")

    @staticmethod
    def _tls11_context(server: bool = False) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
        if not server:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        return context

    def _client_can_offer_tls11(self) -> bool:
        """Whether this OpenSSL does TLS 1.1 at all: a handshake with itself."""
        if not ssl.HAS_TLSv1_1:
            return False
        try:
            server_context = self._tls11_context(server=True)
            server_context.load_cert_chain(self.certs["cert"], self.certs["key"])
            client_context_ = self._tls11_context()
        except ssl.SSLError:
            return False
        listener = socket.socket()
        listener.bind((HOST, 0))
        listener.listen(1)
        listener.settimeout(5)
        self.addCleanup(listener.close)

        def serve():
            try:
                conn, _ = listener.accept()
                conn.settimeout(5)
                with server_context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            raw = socket.create_connection(listener.getsockname(), timeout=5)
            with client_context_.wrap_socket(raw, server_hostname=HOST) as tls:
                version = tls.version()
        except (OSError, ssl.SSLError):
            version = None
        thread.join(5)
        return version == "TLSv1.1"


@pytest.mark.slow  # kill -9
class DurabilityTests(SynchronousTestCase):
    BURST = 2000
    #: Lines sent ahead of the replies: the server is always mid-burst.
    IN_FLIGHT = 200

    def _burst_and_kill(self, server: ServerProcess, round_no: int, kill_after: int):
        """alice pipelines MSG lines to offline bob; SIGKILL after ``kill_after`` OKs.

        Returns ({msgid: body} of every OK alice received, [every body sent]).
        """
        alice = server.client()
        login(alice, "alice")
        bodies = [f"round {round_no} message {n} | {'x' * (n % 7)}" for n in range(self.BURST)]
        start = time.monotonic()
        ok, killed_at = burst_until_killed(
            alice, "bob", bodies, self.IN_FLIGHT, kill_after, server.kill
        )
        self.assertIsNotNone(killed_at, "the burst ended before the kill")
        self.assertLess(len(ok), self.BURST, "the kill did not land in the middle of the burst")
        elapsed = time.monotonic() - start
        print(f"round {round_no}: {len(ok)} OK before kill -9 ({len(ok) / elapsed:.0f} OK/s)")
        alice.close()
        return ok, bodies

    def test_kill_9_keeps_every_ok_message(self):
        """Every message that got OK survives kill -9 (3 kills mid-burst) and is delivered with its sender and body."""
        server = start_server(self, *NO_RATE_LIMIT)
        setup = server.client()
        signup(setup, "alice")
        signup(setup, "bob")
        setup.close()
        delivered: dict[int, str] = {}  # over all rounds
        for round_no, kill_after in enumerate((150, 900, 1700)):
            ok, bodies = self._burst_and_kill(server, round_no, kill_after)
            server.restart()

            bob = check_mailbox(self, server, "bob", ok, bodies, delivered, f"round {round_no}")
            # bob's ACKs become durable; then the next round's burst.
            self.assertEqual(bob.command("QUIT"), "OK|QUIT")
            bob.close()


class ConcurrencyTests(SynchronousTestCase):
    CLIENTS = 200
    MESSAGES_EACH = 20  # with USR and LOGIN, within the default burst of 100

    @pytest.mark.slow  # a storm of 200 clients
    def test_many_concurrent_clients(self):
        """200 clients exchanging messages: every OK'd message reaches its recipient exactly once (by msgid)."""
        server = start_server(self, "--max-clients", "1000")
        stats = asyncio.run(asyncio.wait_for(self._exchange(server.ports), 90))
        print(
            f"{self.CLIENTS} clients: sign-up+login {stats['login_s']:.2f} s; "
            f"burst of {stats['messages']} messages OK'd in {stats['burst_s']:.3f} s "
            f"= {stats['messages'] / stats['burst_s']:.0f} msg/s; all delivered and "
            f"receipted after {stats['delivery_s']:.2f} s; {stats['redeliveries']} redeliveries"
        )

    async def _exchange(self, ports: list[int]) -> dict:
        rng = random.Random(20261122)
        names = [f"user{i:03d}" for i in range(self.CLIENTS)]
        clients = {name: _AsyncClient(name) for name in names}
        try:
            t0 = time.monotonic()
            await asyncio.gather(
                *(
                    c.connect_and_login(ports[i % len(ports)])
                    for i, c in enumerate(clients.values())
                )
            )
            t1 = time.monotonic()

            plans = {
                name: [
                    (rng.choice([n for n in names if n != name]), f"{name} says {k} | hi")
                    for k in range(self.MESSAGES_EACH)
                ]
                for name in names
            }
            sent = await asyncio.gather(*(clients[n].send_messages(plans[n]) for n in names))
            t2 = time.monotonic()

            expected: dict[str, dict[int, tuple[str, str]]] = {n: {} for n in names}
            all_ids: set[int] = set()
            for name, results in zip(names, sent):
                for (recipient, body), msgid in zip(plans[name], results):
                    self.assertNotIn(msgid, all_ids, "message ids must be unique")
                    all_ids.add(msgid)
                    expected[recipient][msgid] = (name, body)

            def complete() -> bool:
                return all(
                    set(expected[n]) <= set(clients[n].received)
                    and len(clients[n].receipts) >= self.MESSAGES_EACH
                    for n in names
                )

            deadline = time.monotonic() + 30
            while not complete() and time.monotonic() < deadline:
                for c in clients.values():
                    if c.error is not None:
                        raise c.error
                await asyncio.sleep(0.05)
            t3 = time.monotonic()

            for name in names:
                client = clients[name]
                self.assertEqual(client.errors, [], name)
                self.assertEqual(client.received, expected[name], f"what {name} received")
                self.assertEqual(
                    set(client.receipts), set(sent[names.index(name)]), f"DLV receipts of {name}"
                )
                for msgid, recipient in client.receipts.items():
                    self.assertEqual(expected[recipient][msgid][0], name)
            await asyncio.gather(*(c.quit() for c in clients.values()))
            return {
                "login_s": t1 - t0,
                "burst_s": t2 - t1,
                "delivery_s": t3 - t1,
                "messages": len(all_ids),
                "redeliveries": sum(c.redeliveries for c in clients.values()),
            }
        finally:
            for c in clients.values():
                c.abort()


class ShutdownTests(SynchronousTestCase):
    def _connected_clients(self, server):
        alice = new_user(server, "alice")
        bob = new_user(server, "bob")
        setup = server.client()
        signup(setup, "carol")  # offline recipient
        anonymous = server.client()  # connected, never logged in
        setup.close()
        return alice, bob, anonymous

    def test_sigterm_says_goodbye_and_exits_zero(self):
        """On SIGTERM every connection gets BYE|503|server shutting down; exit 0 within 10 s."""
        server = start_server(self)
        alice, bob, anonymous = self._connected_clients(server)
        self.assertEqual(alice.command("PING|ready"), "OK|PING|ready")
        status = server.stop(timeout=10)
        for client in (alice, bob, anonymous):
            lines = client.read_until_closed(timeout=10)
            self.assertTrue(lines, "no BYE before the close")
            self.assertEqual(lines[-1], SHUTDOWN_BYE, lines)
            for line in lines[:-1]:
                self.assertTrue(line.startswith(PRESENCE), line)
        self.assertEqual(status, 0, f"exit status after SIGTERM:\n{server.log_tail(15)}")

    def test_sigterm_keeps_ok_messages(self):
        """Messages that got OK before SIGTERM are delivered after the restart."""
        server = start_server(self, *NO_RATE_LIMIT)
        alice, bob, anonymous = self._connected_clients(server)
        bodies = [f"before shutdown {n}" for n in range(600)]
        # 300 answered, then 300 pipelined with SIGTERM right behind them.
        alice.send(*(f"MSG|carol|{body}" for body in bodies[:300]))
        ok: dict[int, str] = {}
        while len(ok) < 300:
            line = alice.read_line()
            if is_reply(line, "MSG"):
                ok[msgid_of(line)] = bodies[len(ok)]
        alice.send(*(f"MSG|carol|{body}" for body in bodies[300:]))
        server.process.send_signal(signal.SIGTERM)
        lines = alice.read_until_closed(timeout=15)
        self.assertEqual(lines[-1], SHUTDOWN_BYE, lines[-5:])
        for line in lines[:-1]:
            if is_reply(line, "MSG"):
                self.assertTrue(line.startswith("OK|MSG|"), line)
                ok[msgid_of(line)] = bodies[len(ok)]
        server.wait(15)
        print(f"{len(ok)} of {len(bodies)} messages got OK before the shutdown")
        server.restart()
        check_mailbox(self, server, "carol", ok, bodies, {}, "after SIGTERM")


class _AsyncClient:
    """One asyncio client: a reader task ACKs every R and sorts the lines."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.replies: asyncio.Queue = asyncio.Queue()
        self.received: dict[int, tuple[str, str]] = {}  # msgid -> (sender, body)
        self.receipts: dict[int, str] = {}  # msgid -> recipient
        self.redeliveries = 0
        self.errors: list[str] = []
        self.error: BaseException | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def writer(self) -> asyncio.StreamWriter:
        assert self._writer is not None, "connect_and_login() first"
        return self._writer

    async def connect_and_login(self, port: int) -> None:
        reader, self._writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 20)
        hello = await asyncio.wait_for(reader.readline(), 20)
        assert hello == b"HELLO|1|messenger\n", hello
        self.task = asyncio.ensure_future(self._read(reader))
        self.writer.write(
            f"USR|{self.name}|{PASSWORD}|{self.name}\nLOGIN|{self.name}|{PASSWORD}\n".encode()
        )
        usr = await self.reply()
        assert usr == f"OK|USR|{self.name}", usr
        logged_in = await self.reply()
        assert logged_in == f"OK|LOGIN|{self.name}|{self.name}", logged_in

    async def reply(self, timeout: float = 30) -> str:
        return await asyncio.wait_for(self.replies.get(), timeout)

    async def send_messages(self, plan) -> list[int]:
        self.writer.write("".join(f"MSG|{to}|{body}\n" for to, body in plan).encode())
        ids = []
        for _ in plan:
            line = await self.reply()
            assert line.startswith("OK|MSG|"), f"{self.name}: {line}"
            ids.append(int(line.split("|")[2]))
        return ids

    async def quit(self) -> None:
        self.writer.write(b"QUIT\n")
        assert await self.reply() == "OK|QUIT"

    async def _read(self, reader) -> None:
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith(("OK|", "ERR|")):
                    if line.startswith("ERR|"):
                        self.errors.append(line)
                    self.replies.put_nowait(line)
                elif line.startswith("R|"):
                    _, sender, msgid, body = line.split("|", 3)
                    self.writer.write(f"ACK|{msgid}\n".encode())
                    if int(msgid) in self.received:
                        self.redeliveries += 1
                        assert self.received[int(msgid)] == (sender, body), line
                    self.received[int(msgid)] = (sender, body)
                elif line.startswith("DLV|"):
                    _, msgid, recipient, stamp = line.split("|")
                    assert TIMESTAMP.match(stamp), line
                    self.receipts[int(msgid)] = recipient
                elif line.startswith("BYE|"):
                    if line != "BYE|200|goodbye":
                        self.errors.append(line)
                elif not line.startswith(PRESENCE):
                    self.errors.append(f"unexpected line {line!r}")
        except Exception as e:  # surfaced by the waiting loop
            self.error = e

    def abort(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.transport.abort()


class LogFormatTests(SynchronousTestCase):
    def test_json_log_format_writes_one_json_object_per_line_and_nothing_else(self):
        """--log-format json: every log line is a JSON object, for log shippers."""
        import json

        server = ServerProcess(self, "--log-format", "json")
        client = server.client()
        client.command("USR|alice|password1|Alice")
        client.close()
        self.assertEqual(server.stop(), 0)
        with open(server.log_path, encoding="utf-8") as f:
            # "=====" lines are ServerProcess's own markers, not the server's.
            lines = [
                line
                for line in f.read().splitlines()
                if line.strip() and not line.startswith("=====")
            ]
        events = [json.loads(line) for line in lines]
        self.assertTrue(any("connection from" in e.get("log_format", "") for e in events))
        self.assertTrue(all("log_time" in e for e in events))


# -- The same tests on a cluster ------------------------------------------------
# PROTOCOL.md, "One server, many processes": clients cannot tell a cluster
# from one server.  Each class below runs its parent's tests unchanged on 3
# nodes sharing PostgreSQL and Redis, every new client on the next node.
# Single-node only: PluginTests and CommandLineTests (plugin discovery and
# option parsing of one process), LogFormatTests (one process's log file).


@pytest.mark.services
@pytest.mark.slow
class ExampleSessionOnClusterTests(ExampleSessionTests):
    topology = three_nodes


@pytest.mark.services
@pytest.mark.slow
class TlsOnClusterTests(TlsTests):
    topology = three_nodes


@pytest.mark.services
@pytest.mark.slow
class DurabilityOnClusterTests(DurabilityTests):
    topology = three_nodes


@pytest.mark.services
@pytest.mark.slow
class ConcurrencyOnClusterTests(ConcurrencyTests):
    topology = three_nodes


@pytest.mark.services
@pytest.mark.slow
class ShutdownOnClusterTests(ShutdownTests):
    topology = three_nodes
