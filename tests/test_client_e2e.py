"""End to end: the real ``messenger-client`` against a real ``twistd messenger``.

Each client is a child process driven through its stdin and stdout, as a
person or a script would.  Everything runs on 127.0.0.1; every wait has a
deadline, and every process is killed in cleanup, so a failure fails fast
instead of hanging.  TLS certificates are made at test time.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from twisted.trial import unittest

from tests.support.server import HOST, ServerProcess, free_port, make_certificates, twistd_env

# Each test starts a real server and real client processes (about a second
# each): end to end, so outside the fast loop.
pytestmark = pytest.mark.slow

PASSWORD = "password1"
WAIT = 20.0

_SCRIPT = os.path.join(os.path.dirname(sys.executable), "messenger-client")
#: The installed console script when there is one (that is what users run),
#: else the module, with the very interpreter running the tests.
CLIENT = [_SCRIPT] if os.access(_SCRIPT, os.X_OK) else [sys.executable, "-m", "messenger.client"]


def client_env(password: str | None) -> dict:
    env = twistd_env()
    env.pop("MESSENGER_PASSWORD", None)
    env.pop("NO_COLOR", None)
    if password is not None:
        env["MESSENGER_PASSWORD"] = password
    return env


class ClientProcess:
    """One ``messenger-client`` child: type lines, wait for output lines."""

    def __init__(
        self,
        testcase,
        server: str,
        *args: str,
        password: str | None = PASSWORD,
        color_flag: bool = True,
    ) -> None:
        env = client_env(password)
        self.command = (
            CLIENT + ["--server", server] + (["--no-color"] if color_flag else []) + list(args)
        )
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.lines: list[str] = []
        self._cursor = 0
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        testcase.addCleanup(self.cleanup)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def type(self, *lines: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("".join(line + "\n" for line in lines).encode("utf-8"))
        self.process.stdin.flush()

    def end_input(self) -> None:
        """Like Ctrl-D."""
        assert self.process.stdin is not None
        self.process.stdin.close()

    def wait_for(self, text: str, timeout: float = WAIT) -> str:
        """The next output line (after the last one waited for) holding ``text``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(self._cursor, len(self.lines)):
                    if text in self.lines[index]:
                        self._cursor = index + 1
                        return self.lines[index]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.process.poll() is not None and not self._reader.is_alive()
                ):
                    raise AssertionError(
                        f"no line with {text!r} from {' '.join(self.command[-6:])}; output:\n"
                        + self.output()
                    )
                self._changed.wait(min(remaining, 0.2))

    def count(self, text: str) -> int:
        with self._changed:
            return sum(text in line for line in self.lines)

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_exit(self, timeout: float = WAIT) -> int:
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the client did not exit in {timeout} s; output:\n{self.output()}"
            ) from None
        self._reader.join(5)
        return status

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._reader.join(5)
        print(f"--- client output ({' '.join(self.command)}):\n{self.output()}")


class Outage:
    """A TCP relay to the server that the test can cut and restore.

    It stands for the network: cutting it drops the client's connection and
    refuses new ones, while the server stays up and others keep talking.
    """

    def __init__(self, testcase, server_port: int) -> None:
        self.server_port = server_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.stopping = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        testcase.addCleanup(self.close)

    def _accept(self) -> None:
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection((HOST, self.server_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            source.settimeout(None)
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.up = False
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.stopping = True
        self.cut()
        self.listener.close()
        self._thread.join(5)


class EndToEndTestCase(unittest.TestCase):
    # Bounded even if something goes badly wrong (trial's own limit).
    timeout = 120

    def start_server(self, *args: str, **kwargs) -> ServerProcess:
        return ServerProcess(self, *args, **kwargs)

    def client(self, server: ServerProcess, *args: str, **kwargs) -> ClientProcess:
        return ClientProcess(self, f"tcp:{HOST}:{server.port}", *args, **kwargs)

    def sign_up(self, server: ServerProcess, user: str, name: str) -> ClientProcess:
        """A client that created its account and is logged in."""
        client = self.client(server, "--user", user, "--signup", "--name", name)
        client.wait_for("logged in as")
        return client

    def quit(self, client: ClientProcess) -> None:
        client.type("/quit")
        self.assertEqual(client.wait_exit(), 0, client.output())


class ChatTests(EndToEndTestCase):
    def test_two_clients_chat(self):
        """Two people sign up, message each other directly and in #general, and quit."""
        server = self.start_server()
        alice = self.sign_up(server, "alice", "Alice Liddell")
        bob = self.sign_up(server, "bob", "Bob")
        alice.type("@bob lunch? at 12|1")
        alice.wait_for("sent")
        line = bob.wait_for("lunch? at 12|1")
        self.assertIn("@alice Alice Liddell (alice): lunch? at 12|1", line)
        self.assertIn("delivered to bob", alice.wait_for("delivered to bob"))
        bob.type("sounds good, everyone")
        line = alice.wait_for("sounds good, everyone")
        self.assertIn("#general Bob: sounds good, everyone", line)
        bob.type("/chat alice", "plain line to alice")
        self.assertIn("@bob Bob: plain line to alice", alice.wait_for("plain line to alice"))
        self.quit(alice)
        self.quit(bob)

    def test_offline_user_gets_messages_at_next_start(self):
        """A one-shot send to someone offline reaches them the next time they start."""
        server = self.start_server()
        bob = self.sign_up(server, "bob", "Bob")
        self.quit(bob)
        # Quit first: one session per user, so a one-shot send would take over.
        self.quit(self.sign_up(server, "alice", "Alice"))
        sender = self.client(server, "--user", "alice", "send", "bob", "while you were out")
        self.assertEqual(sender.wait_exit(), 0, sender.output())
        self.assertIn("Message", sender.wait_for("sent"))
        bob = self.client(server, "--user", "bob")
        self.assertIn("@alice Alice: while you were out", bob.wait_for("while you were out"))
        bob.type("/inbox")
        self.assertIn("@alice (1)", bob.wait_for("Unread:"))
        self.quit(bob)
        # Shown and acknowledged: not shown again at the start after that.
        bob = self.client(server, "--user", "bob")
        bob.wait_for("logged in as")
        bob.type("/who")
        bob.wait_for("Online:")
        self.assertEqual(bob.count("while you were out"), 0)
        self.quit(bob)

    def test_scripted_through_a_pipe(self):
        """Lines piped in run in order; the end of input quits once all is sent."""
        server = self.start_server()
        self.quit(self.sign_up(server, "bob", "Bob"))
        alice = self.client(server, "--user", "alice", "--signup", color_flag=False)
        alice.type("/join #dev", "first in dev", "@bob direct one", "/rooms")
        alice.end_input()
        self.assertEqual(alice.wait_exit(), 0, alice.output())
        self.assertEqual(alice.output().count(" sent"), 2, alice.output())
        self.assertNotIn("\x1b", alice.output())  # no colours into a pipe
        rooms = alice.wait_for("Your rooms:")
        self.assertIn("#general", rooms)
        self.assertIn("#dev", rooms)
        reader = self.client(server, "--user", "bob")
        reader.wait_for("direct one")
        self.quit(reader)


class TerminalProcess:
    """``messenger-client`` on a pseudo-terminal, as a person runs it."""

    def __init__(self, testcase, server: str, *args: str) -> None:
        master, slave = pty.openpty()
        self.master = master
        self.process = subprocess.Popen(
            CLIENT + ["--server", server, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=client_env(None),
            close_fds=True,
            start_new_session=True,
        )
        os.close(slave)
        self.output = b""
        testcase.addCleanup(self.cleanup)

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait_for(self, text: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while text.encode("utf-8") not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {text!r} on the terminal; it shows:\n{self.output!r}")
            ready, _, _ = select.select([self.master], [], [], min(remaining, 0.2))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the terminal closed; it showed:\n{self.output!r}")
                self.output += chunk

    def wait_exit(self, timeout: float = WAIT) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    pass
        if self.process.poll() is None:
            raise AssertionError(f"the client did not exit; the terminal shows:\n{self.output!r}")
        return self.process.returncode

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        os.close(self.master)
        print(f"--- terminal output:\n{self.output!r}")


class TerminalTests(EndToEndTestCase):
    def test_sign_up_at_a_terminal_without_echoing_the_password(self):
        """At a terminal: /signup prompts, the password is not echoed, colours are on, Ctrl-D leaves."""
        server = self.start_server()
        person = TerminalProcess(self, f"tcp:{HOST}:{server.port}")
        person.wait_for("Username (or /signup): ")
        person.type(b"/signup\n")
        person.wait_for("New username: ")
        person.type(b"dave\n")
        person.wait_for("Display name [dave]: ")
        person.type(b"Dave Bowman\n")
        person.wait_for("Password: ")
        person.type(b"secret-pod-bay\n")
        person.wait_for("Password again: ")
        person.type(b"secret-pod-bay\n")
        person.wait_for("Dave Bowman (dave)")
        self.assertNotIn(b"secret-pod-bay", person.output)
        self.assertIn(b"dave", person.output)  # ordinary answers do echo
        self.assertIn(b"\x1b[", person.output)  # a terminal gets colours
        person.type(b"\x04")  # Ctrl-D
        self.assertEqual(person.wait_exit(), 0)


class FailureTests(EndToEndTestCase):
    def test_refused_connection(self):
        """No server: a clear message and exit status 1, at once."""
        client = ClientProcess(self, f"tcp:{HOST}:{free_port()}", "--user", "alice")
        self.assertEqual(client.wait_exit(), 1)
        self.assertIn("connection refused", client.output())

    def test_bad_credentials(self):
        """A wrong password from the environment: a clear message and exit 1."""
        server = self.start_server()
        self.quit(self.sign_up(server, "alice", "Alice"))
        client = self.client(server, "--user", "alice", password="wrong-password")
        self.assertEqual(client.wait_exit(), 1)
        self.assertIn("wrong user name or password", client.output())

    def test_full_server(self):
        """A server at its connection limit: a clear message and exit 1."""
        server = self.start_server("--max-clients", "1")
        occupant = server.client()
        self.addCleanup(occupant.close)
        client = self.client(server, "--user", "alice")
        self.assertEqual(client.wait_exit(), 1)
        self.assertIn("the server is full", client.output())


@pytest.mark.slow  # server restarts and network outages
class RecoveryTests(EndToEndTestCase):
    def test_server_restart_under_a_connected_client(self):
        """The server restarts; the client says so, resumes, and sends what was typed."""
        server = self.start_server()
        bob = self.sign_up(server, "bob", "Bob")
        alice = self.sign_up(server, "alice", "Alice")
        # A round trip, so the session token asked for at login has arrived.
        alice.type("/who")
        alice.wait_for("Online:")
        server.stop()
        alice.wait_for("disconnected")
        alice.type("@bob typed while the server was down")
        alice.wait_for("will be sent after reconnecting")
        server.start()
        alice.wait_for("reconnected (session resumed)")
        alice.wait_for("sent")
        bob.wait_for("reconnected")
        bob.wait_for("typed while the server was down")
        bob.type("@alice welcome back")
        alice.wait_for("welcome back")
        self.assertEqual(bob.count("typed while the server was down"), 1)
        self.quit(alice)
        self.quit(bob)

    def test_outage_leaves_no_hole_in_a_room(self):
        """Room messages posted while a client's network was down are caught up once."""
        server = self.start_server()
        carol = self.sign_up(server, "carol", "Carol")
        self.quit(self.sign_up(server, "alice", "Alice"))
        network = Outage(self, server.port)
        alice = ClientProcess(self, f"tcp:{HOST}:{network.port}", "--user", "alice")
        alice.wait_for("logged in as")
        carol.type("before the outage")
        alice.wait_for("before the outage")
        network.cut()
        alice.wait_for("disconnected")
        carol.type("during the outage 1", "during the outage 2")
        carol.wait_for("sent")
        carol.wait_for("sent")
        network.restore()
        alice.wait_for("reconnected")
        alice.wait_for("during the outage 1")
        alice.wait_for("during the outage 2")
        carol.type("after the outage")
        alice.wait_for("after the outage")
        for text in ("before the outage", "during the outage 1", "during the outage 2"):
            self.assertEqual(alice.count(text), 1, alice.output())
        self.quit(alice)
        self.quit(carol)


class TLSTests(EndToEndTestCase):
    def certificates(self) -> dict:
        directory = tempfile.mkdtemp(prefix="messenger-client-tls-")
        self.addCleanup(shutil.rmtree, directory, True)
        return make_certificates(directory)

    def test_trusted_certificate(self):
        """With --ca naming the server's CA, a tls: server is used normally."""
        paths = self.certificates()
        server = self.start_server(tls=(paths["key"], paths["cert"]))
        for host in ("localhost", HOST):
            client = ClientProcess(
                self,
                f"tls:{host}:{server.port}",
                "--ca",
                paths["ca"],
                "--user",
                "alice",
                "--signup",
            )
            client.wait_for("logged in as")
            self.quit(client)

    def test_untrusted_certificate_is_refused(self):
        """A certificate from a CA the client does not trust: refused, exit 1."""
        paths = self.certificates()
        other = self.certificates()
        server = self.start_server(tls=(paths["key"], paths["cert"]))
        client = ClientProcess(
            self, f"tls:localhost:{server.port}", "--ca", other["ca"], "--user", "alice"
        )
        self.assertEqual(client.wait_exit(), 1)
        self.assertIn("does not verify", client.output())
        self.assertNotIn("logged in", client.output())

    def test_system_trust_refuses_a_private_ca(self):
        """Without --ca, a certificate from a private CA is refused (no insecure fallback)."""
        paths = self.certificates()
        server = self.start_server(tls=(paths["key"], paths["cert"]))
        client = ClientProcess(self, f"tls:localhost:{server.port}", "--user", "alice")
        self.assertEqual(client.wait_exit(), 1)
        self.assertIn("does not verify", client.output())


# -- The same people on a cluster -----------------------------------------------
# 3 nodes on PostgreSQL and Redis (tests/support/cluster.py), each client
# started on the next node: the client cannot tell (PROTOCOL.md, "One
# server, many processes").  The terminal, failure and TLS tests are about
# the client and one listener, not about where the other users are.


class OnClusterMixin:
    def start_server(self, *args: str, **kwargs):
        from tests.support.cluster import ClusterProcess

        return ClusterProcess(self, *args, nodes=3, **kwargs)

    def client(self, server, *args: str, **kwargs) -> ClientProcess:
        return ClientProcess(self, f"tcp:{HOST}:{server.next_node().port}", *args, **kwargs)


@pytest.mark.services
@pytest.mark.slow
class ChatOnClusterTests(OnClusterMixin, ChatTests):
    pass


@pytest.mark.services
@pytest.mark.slow
class RecoveryOnClusterTests(OnClusterMixin, RecoveryTests):
    pass
