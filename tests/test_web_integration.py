"""The web endpoint of a real ``twistd messenger`` process, reached with a
plain WebSocket client (no browser): TLS, SIGTERM, the page's origin."""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
import time
import unittest

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    RejectConnection,
    Request,
    TextMessage,
)

from tests.support.server import (
    HOST,
    ServerProcess,
    client_context,
    free_port,
    make_certificates,
)
from tests.support.websocket_frames import text_frame

pytestmark = pytest.mark.slow
TIMEOUT = 10.0


class WebSocketClient:
    """A blocking WebSocket client; every read has a deadline."""

    def __init__(
        self,
        port: int,
        origin: str | None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        raw = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.sock = ssl_context.wrap_socket(raw, server_hostname=HOST) if ssl_context else raw
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.texts: list[str] = []
        self.status: int | None = None
        self.close_code: int | None = None
        headers = [(b"Origin", origin.encode())] if origin else []
        self.sock.sendall(
            self.ws.send(Request(host=f"{HOST}:{port}", target="/ws", extra_headers=headers))
        )
        while self.status is None:
            self._read()

    def _read(self) -> None:
        self.sock.settimeout(TIMEOUT)
        data = self.sock.recv(65536)
        self.ws.receive_data(data or None)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.status = 101
            elif isinstance(event, RejectConnection):
                self.status = event.status_code
            elif isinstance(event, TextMessage):
                self.texts.append(event.data)
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
        if not data and self.close_code is None:
            self.close_code = -1

    def send(self, line: str) -> None:
        self.sock.sendall(self.ws.send(TextMessage(line)))

    def send_undecoded(self, payload: bytes) -> None:
        """A text message of these bytes as they are, UTF-8 or not."""
        self.sock.sendall(text_frame(payload))

    def read(self) -> str:
        deadline = time.monotonic() + TIMEOUT
        while not self.texts:
            if self.close_code is not None or time.monotonic() > deadline:
                raise AssertionError(f"no message (closed with {self.close_code})")
            self._read()
        return self.texts.pop(0)

    def read_until_closed(self) -> list[str]:
        while self.close_code is None:
            self._read()
        texts, self.texts = self.texts, []
        return texts

    def close(self) -> None:
        self.sock.close()


class WebEndpoint(unittest.TestCase):
    def start(self, *web: str) -> ServerProcess:
        args: list[str] = []
        for endpoint in web:
            args += ["--web", endpoint]
        return ServerProcess(self, *args)

    def connect(self, port: int, origin: str | None, **kwargs) -> WebSocketClient:
        client = WebSocketClient(port, origin, **kwargs)
        self.addCleanup(client.close)
        return client

    def test_sigterm_says_goodbye_over_websocket_too(self) -> None:
        """On SIGTERM a WebSocket client gets BYE 503, then a close."""
        port = free_port()
        server = self.start(f"tcp:{port}:interface={HOST}")
        client = self.connect(port, f"http://{HOST}:{port}")
        self.assertEqual(client.read(), "HELLO|1|messenger")
        client.send("PING|before")
        self.assertEqual(client.read(), "OK|PING|before")
        self.assertEqual(server.stop(), 0)
        self.assertEqual(client.read_until_closed(), ["BYE|503|server shutting down"])
        self.assertEqual(client.close_code, 1000)

    def test_a_text_message_that_is_not_utf8_gets_the_protocol_s_400(self) -> None:
        """The real server answers bytes that are not UTF-8 as on TCP:
        ERR 400, the WebSocket stays open, and nothing is logged as an
        error (no traceback)."""
        port = free_port()
        server = self.start(f"tcp:{port}:interface={HOST}")
        client = self.connect(port, f"http://{HOST}:{port}")
        self.assertEqual(client.read(), "HELLO|1|messenger")
        client.send_undecoded(b"PING|caf\xe9")
        self.assertEqual(client.read(), "ERR|?|400|invalid UTF-8")
        client.send("PING|still open")
        self.assertEqual(client.read(), "OK|PING|still open")
        self.assertIsNone(client.close_code)
        self.assertEqual(server.stop(), 0)
        log = server.log_text()
        self.assertNotIn("Traceback", log)
        self.assertNotIn("Unhandled", log)

    def test_a_tls_endpoint_serves_the_page_s_https_origin(self) -> None:
        """With ssl: the page is https:// and its WebSocket wss://; the
        http:// origin of the same host is another origin."""
        directory = tempfile.mkdtemp(prefix="messenger-tls-")
        self.addCleanup(shutil.rmtree, directory, True)
        paths = make_certificates(directory)
        port = free_port()
        self.start(f"ssl:{port}:interface={HOST}:privateKey={paths['key']}:certKey={paths['cert']}")
        context = client_context(paths["ca"])
        client = self.connect(port, f"https://{HOST}:{port}", ssl_context=context)
        self.assertEqual(client.status, 101)
        self.assertEqual(client.read(), "HELLO|1|messenger")
        refused = self.connect(port, f"http://{HOST}:{port}", ssl_context=context)
        self.assertEqual(refused.status, 403)

    def test_web_origin_admits_the_proxy_s_origin_only(self) -> None:
        """--web-origin adds an origin; others stay refused."""
        port = free_port()
        ServerProcess(
            self,
            "--web",
            f"tcp:{port}:interface={HOST}",
            "--web-origin",
            "https://chat.example.org",
        )
        self.assertEqual(self.connect(port, "https://chat.example.org").status, 101)
        self.assertEqual(self.connect(port, "https://evil.example.org").status, 403)

    def test_several_web_endpoints(self) -> None:
        """--web is repeatable: each endpoint serves the page and /ws."""
        ports = [free_port(), free_port()]
        self.start(*(f"tcp:{p}:interface={HOST}" for p in ports))
        for port in ports:
            client = self.connect(port, f"http://{HOST}:{port}")
            self.assertEqual(client.read(), "HELLO|1|messenger")
