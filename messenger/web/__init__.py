"""The web client: a page served by the server itself, and a WebSocket at
``/ws`` that carries the line protocol, one line per text message.

:mod:`messenger.web.connection` adapts a WebSocket to the byte transport
that :class:`messenger.protocol.MessengerProtocol` expects, so a browser
goes through the same framing, limits and session code as a TCP client;
:mod:`messenger.web.site` serves the static page and checks the upgrade.
"""
