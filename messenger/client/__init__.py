"""The Messenger terminal client.

Layers, from pure to I/O:

- :mod:`~messenger.client.commands`: what the user types -> an intent or a
  usage error (no Twisted).
- :mod:`~messenger.client.render`: server messages -> text a person reads
  (no Twisted).
- :mod:`~messenger.client.state`: focus, unread counts, seen message ids,
  newest id per room (no Twisted).
- :mod:`~messenger.client.protocol`: one connection: lines, replies matched
  to commands in order, keepalive.
- :mod:`~messenger.client.session`: the client across connections: login,
  resume, re-sending, catching up, de-duplicating, quitting.
- :mod:`~messenger.client.app` and ``__main__``: terminal, endpoint,
  ClientService, reactor, command line.
"""
