"""The web server: the page's static files and the WebSocket at ``/ws``.

Every response carries a Content-Security-Policy that allows scripts,
styles and connections from the page's own origin only (the page has no
inline script and loads nothing from elsewhere), ``nosniff`` and no
referrer.  A WebSocket upgrade is accepted only from the page's own origin
or one named with ``--web-origin`` (the public origin behind a reverse
proxy), so no other site can open a connection with a visitor's browser.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.web import http, pages, server, static
from twisted.web.server import Request
from twisted.web.websocket import WebSocketResource

from messenger.protocol import MessengerFactory
from messenger.web.connection import WebSocketConnection

STATIC_DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "worker-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
#: Seconds an HTTP connection may stay quiet before the page is loaded or
#: the WebSocket opened (after the upgrade --idle-timeout applies).
HTTP_TIMEOUT = 60

SECURITY_HEADERS = {
    b"Content-Security-Policy": CONTENT_SECURITY_POLICY.encode("ascii"),
    b"X-Content-Type-Options": b"nosniff",
    b"Referrer-Policy": b"no-referrer",
    b"X-Frame-Options": b"DENY",
}
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
}


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a default port."""
    origin = origin.strip().rstrip("/").lower()
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin[: -len(port)]
    return origin


def own_origin(request: Request) -> str | None:
    """The origin the page was loaded from, as this request names it."""
    host = request.getHeader(b"host")
    if not host:
        return None
    scheme = "https" if request.isSecure() else "http"
    return normalize_origin(f"{scheme}://{host.decode('latin-1')}")


class StaticFiles(static.File):
    """The page's files: no directory listings, types browsers accept for
    ES modules, and a check for changes on every load."""

    contentTypes = dict(static.File.contentTypes, **_CONTENT_TYPES)

    def directoryListing(self):
        return pages.notFound()

    def render_GET(self, request: Request):
        request.setHeader(b"Cache-Control", b"no-cache")
        return super().render_GET(request)


class LineWebSocketFactory:
    """Builds one :class:`WebSocketConnection` per accepted upgrade."""

    def __init__(self, factory: MessengerFactory) -> None:
        self.factory = factory

    def buildProtocol(self, request: Request) -> WebSocketConnection:
        address = request.getClientAddress()
        if not isinstance(address, IPv4Address | IPv6Address):
            address = IPv4Address("TCP", "0.0.0.0", 0)
        protocol = self.factory.buildProtocol(address)
        return WebSocketConnection(protocol, request, self.factory.config.max_line)


class OriginCheckedWebSocket(WebSocketResource):
    """``/ws``: refuses (403) an upgrade whose Origin is neither the page's
    own nor one of ``allowed_origins``.  A request without Origin comes from
    a program, not a browser page, and cannot carry a visitor's identity."""

    def __init__(self, factory: LineWebSocketFactory, allowed_origins: Iterable[str]) -> None:
        super().__init__(factory)
        self.allowed_origins = frozenset(normalize_origin(o) for o in allowed_origins)

    def render_GET(self, request: Request) -> bytes | int:
        header = request.getHeader(b"origin")
        if header is not None:
            origin = normalize_origin(header.decode("latin-1"))
            if origin != own_origin(request) and origin not in self.allowed_origins:
                request.setResponseCode(403)
                request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
                return b"origin not allowed\n"
        return super().render_GET(request)


class WebSite(server.Site):
    """Adds the security headers to every response; keeps no access log
    (the line protocol logs connections already)."""

    noisy = False

    def getResourceFor(self, request: Request):
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        return super().getResourceFor(request)

    def log(self, request: http.Request) -> None:
        pass


def make_site(factory: MessengerFactory, allowed_origins: Iterable[str] = ()) -> WebSite:
    """The site for ``--web``: ``/`` the page, ``/ws`` the protocol."""
    root = StaticFiles(STATIC_DIRECTORY)
    root.putChild(b"ws", OriginCheckedWebSocket(LineWebSocketFactory(factory), allowed_origins))
    return WebSite(root, reactor=factory.clock, timeout=HTTP_TIMEOUT)
