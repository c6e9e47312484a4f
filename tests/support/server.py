"""A real ``twistd messenger`` process, and blocking line clients for it.

``ServerProcess`` runs the server as a child process on a free port of
127.0.0.1 with its own temporary directory and database, waits until it
says ``HELLO``, and can stop it (SIGTERM), kill it (SIGKILL) and start it
again on the same database and port.  Its output goes to a log file; the
cleanup registered with the test case prints the end of that log (pytest
shows it only for a failing test) and removes everything::

    server = ServerProcess(self, "--rate", "1000")
    client = server.client()
    client.send("USR|alice|password1|Alice")
    self.assertEqual(client.read_line(), "OK|USR|alice")

``LineClient`` is a plain blocking socket (optionally TLS) with a timeout
on every operation, so a test that goes wrong fails instead of hanging.
Everything here uses 127.0.0.1 only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import IO

from bench.ports import HOST, free_port

#: The repository root: on PYTHONPATH so ``twisted/plugins`` is found
#: whatever way the package is installed.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: ``python -m twisted`` runs ``twist``, not ``twistd``; this runs twistd
#: with the very interpreter running the tests (works inside a venv too).
TWISTD = [
    sys.executable,
    "-c",
    "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()",
]
#: Cheap password hashing: sign-ups and logins stay fast in tests.
FAST_HASH_ARGS = ("--argon2-time-cost", "1", "--argon2-memory-cost", "8")
#: Generous: CI runs the suite on a slower, loaded machine.
DEFAULT_TIMEOUT = 30.0


class ConnectionClosed(Exception):
    """The server closed the connection while a line was expected."""


def is_reply(line: str, verb: str) -> bool:
    """Whether ``line`` is the final reply (OK or ERR) to a ``verb`` command."""
    fields = line.split("|", 2)
    return len(fields) >= 2 and fields[0] in ("OK", "ERR") and fields[1] == verb


def twistd_env() -> dict:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + path if path else "")
    # The log must reach the file even when the process is killed with -9.
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_twistd(
    args: Sequence[str], timeout: float = 60.0, cwd: str | None = None
) -> subprocess.CompletedProcess:
    """Run ``twistd <args>`` to completion (for --help and bad options)."""
    return subprocess.run(
        TWISTD + list(args),
        cwd=cwd,
        env=twistd_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class LineClient:
    """A blocking line client: every read and write has a deadline."""

    def __init__(
        self,
        port: int,
        host: str = HOST,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        read_hello: bool = True,
    ) -> None:
        self.timeout = timeout
        self._buffer = b""
        self.eof = False
        #: Lines that ``command`` read while waiting for its reply.
        self.events: list[str] = []
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl_context is not None:
                raw = ssl_context.wrap_socket(raw, server_hostname=server_hostname or host)
        except BaseException:
            raw.close()
            raise
        self.sock = raw
        #: The first line the server sent (``HELLO|1|...``), if read.
        self.hello: str | None = self.read_line() if read_hello else None

    # -- writing ------------------------------------------------------------

    def send(self, *lines: str) -> None:
        """Send each line with an LF (several lines go in one write)."""
        self.send_raw("".join(line + "\n" for line in lines).encode("utf-8"))

    def send_raw(self, data: bytes) -> None:
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    # -- reading ------------------------------------------------------------

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no line from the server in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError("no line from the server in time") from None
        except (ConnectionResetError, ssl.SSLEOFError):
            data = b""
        if not data:
            self.eof = True
            raise ConnectionClosed("the server closed the connection")
        self._buffer += data

    def read_line(self, timeout: float | None = None) -> str:
        """The next line, without its LF; TimeoutError or ConnectionClosed."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self._buffer:
            if self.eof:
                raise ConnectionClosed("the server closed the connection")
            self._fill(deadline)
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8")

    def read_until(
        self, predicate: Callable[[str], bool], timeout: float | None = None
    ) -> list[str]:
        """Lines up to and including the first one ``predicate`` accepts."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        lines = []
        while True:
            line = self.read_line(max(0.0, deadline - time.monotonic()) or 0.001)
            lines.append(line)
            if predicate(line):
                return lines

    def read_until_line(self, expected: str, timeout: float | None = None) -> list[str]:
        return self.read_until(lambda line: line == expected, timeout)

    def read_until_prefix(self, prefix: str, timeout: float | None = None) -> list[str]:
        return self.read_until(lambda line: line.startswith(prefix), timeout)

    def read_until_closed(self, timeout: float | None = None) -> list[str]:
        """Every line until the server closes the connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        lines = []
        while True:
            try:
                lines.append(self.read_line(max(0.001, deadline - time.monotonic())))
            except ConnectionClosed:
                if self._buffer:
                    lines.append(self._buffer.decode("utf-8"))
                    self._buffer = b""
                return lines

    def command(self, line: str, timeout: float | None = None) -> str:
        """Send one command and return its reply (``OK|VERB...`` or
        ``ERR|VERB|...``); events read meanwhile are kept in ``events``."""
        verb = line.split("|", 1)[0].upper()
        self.send(line)
        lines = self.read_until(lambda ln: is_reply(ln, verb), timeout)
        self.events.extend(lines[:-1])
        return lines[-1]

    def expect_event(self, prefix: str, timeout: float | None = None) -> str:
        """The first line starting with ``prefix``, from ``events`` or read
        now; lines read meanwhile that do not match go to ``events``."""
        for index, line in enumerate(self.events):
            if line.startswith(prefix):
                return self.events.pop(index)
        lines = self.read_until_prefix(prefix, timeout)
        self.events.extend(lines[:-1])
        return lines[-1]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ServerProcess:
    """One ``twistd -n messenger`` child process, cleaned up with the test.

    ``extra_args`` are passed after the standard ones (later options win).
    With ``tls=(key_file, cert_file)`` it listens with ``ssl:`` instead of
    ``tcp:``; ``client()`` then needs an ``ssl_context``.
    """

    def __init__(
        self,
        testcase,
        *extra_args: str,
        tls: tuple[str, str] | None = None,
        start: bool = True,
        ready_timeout: float = 60.0,
        fast_hash: bool = True,
    ) -> None:
        self.directory = tempfile.mkdtemp(prefix="messenger-it-")
        self.db = os.path.join(self.directory, "messenger.sqlite3")
        self.log_path = os.path.join(self.directory, "server.log")
        self.port = free_port()
        self.tls = tls
        self.extra_args = list(extra_args)
        self.fast_hash = fast_hash
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._testcase = testcase
        testcase.addCleanup(self.cleanup)
        if start:
            self.start()

    # -- life cycle -----------------------------------------------------------

    @property
    def listen(self) -> str:
        if self.tls is None:
            return f"tcp:{self.port}:interface={HOST}"
        key, cert = self.tls
        return f"ssl:{self.port}:interface={HOST}:privateKey={key}:certKey={cert}"

    def command(self) -> list[str]:
        args = TWISTD + [
            "-n",
            "--pidfile",
            "",
            "messenger",
            "--listen",
            self.listen,
            "--db",
            self.db,
        ]
        if self.fast_hash:
            args += FAST_HASH_ARGS
        return args + self.extra_args

    def start(self) -> None:
        self.spawn()
        try:
            self.wait_ready()
        except BaseException:
            self.kill()
            raise

    def spawn(self) -> None:
        """Start the process without waiting until it is ready (``start``
        waits; this lets a test kill it while it is still starting)."""
        assert not self.running, "the server is already running"
        log_file = self._log_file = open(self.log_path, "ab")
        log_file.write(f"===== start: {' '.join(self.command())}\n".encode())
        log_file.flush()
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.directory,
            env=twistd_env(),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        """Wait until a connection is greeted with HELLO (bounded)."""
        deadline = time.monotonic() + self.ready_timeout
        last_error: object = None
        while time.monotonic() < deadline:
            code = self._started().poll()
            if code is not None:
                raise AssertionError(
                    f"the server exited with status {code} while starting:\n{self.log_tail()}"
                )
            try:
                with self._probe_client() as probe:
                    if probe.hello is not None and probe.hello.startswith("HELLO|"):
                        return
                    last_error = probe.hello  # e.g. BYE|503|server starting
            except (OSError, TimeoutError, ConnectionClosed, ssl.SSLError) as e:
                last_error = e
            time.sleep(0.05)
        raise AssertionError(
            f"the server did not say HELLO within {self.ready_timeout} s "
            f"(last: {last_error!r}):\n{self.log_tail()}"
        )

    def _probe_client(self) -> LineClient:
        context = None
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return LineClient(self.port, timeout=2.0, ssl_context=context)

    def _started(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, "the server was never started"
        return self.process

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _wait(self, timeout: float) -> int:
        try:
            return self._started().wait(timeout)
        finally:
            if self._started().returncode is not None and self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def wait(self, timeout: float = 10.0) -> int:
        """The exit status, once the process has exited by itself."""
        try:
            return self._wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the server did not exit within {timeout} s:\n{self.log_tail()}"
            ) from None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then the exit status (AssertionError if not in time)."""
        self._started().send_signal(signal.SIGTERM)
        try:
            return self._wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the server did not exit within {timeout} s of SIGTERM:\n{self.log_tail()}"
            ) from None

    def kill(self) -> int:
        """SIGKILL, then the exit status."""
        if self._started().poll() is None:
            self._started().kill()
        return self._wait(10.0)

    def restart(self, *extra_args: str) -> None:
        """Start again on the same database and port (stopping it if needed)."""
        if self.running:
            self.stop()
        if extra_args:
            self.extra_args = list(extra_args)
        self.start()

    def cleanup(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.kill()
        finally:
            report = f"--- server log ({self.log_path}):\n{self.log_tail()}"
            if "PYTEST_CURRENT_TEST" in os.environ:
                print(report)  # captured by pytest, shown only if the test failed
            else:
                from twisted.python import log

                log.msg(report)  # trial: in _trial_temp/test.log
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- the log ------------------------------------------------------------

    def log_text(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- clients ------------------------------------------------------------

    @property
    def ports(self) -> list[int]:
        """Every port clients may use (one here; a cluster's has one a node)."""
        return [self.port]

    def client(self, timeout: float = DEFAULT_TIMEOUT, **kwargs) -> LineClient:
        """A connected client that has read HELLO; closed with the test."""
        client = LineClient(self.port, timeout=timeout, **kwargs)
        self._testcase.addCleanup(client.close)
        return client


# -- certificates for TLS tests ---------------------------------------------


def make_certificates(directory: str) -> dict:
    """A CA and a server certificate it signed for 127.0.0.1 and localhost.

    Returns the paths: ``ca`` (CA certificate), ``key`` and ``cert`` (the
    server's private key and certificate), all PEM.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Messenger test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {
        "ca": os.path.join(directory, "ca.pem"),
        "key": os.path.join(directory, "server.key"),
        "cert": os.path.join(directory, "server.pem"),
    }
    with open(paths["ca"], "wb") as f:
        f.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["key"], "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    with open(paths["cert"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return paths


def client_context(ca_file: str) -> ssl.SSLContext:
    """A client context that verifies the server against ``ca_file``."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
