"""The bus seam: publish to every other node, hear from them.

A bus message is a JSON-able dict.  Delivery is best effort: a message may
be lost (the bus is down, a node is slow to reconnect), never duplicated,
and a publisher's messages arrive in the order it published them.  Nothing
above relies on more: sequence numbers (see :mod:`messenger.bus.peers`)
turn a loss into a re-read of the database.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IBusListener(Interface):
    """What a bus tells the node that started it."""

    def bus_connected():
        """The bus is usable: at start and after every reconnection.  What
        was published meanwhile may be lost; the node re-reads what its
        users are owed."""

    def bus_disconnected():
        """The bus is gone; it reconnects by itself."""

    def bus_message(message):
        """A message another node published (a dict)."""


class IBus(Interface):
    shared = Attribute(
        "True when other nodes may hear this bus; False for a node alone, "
        "which then publishes nothing at all."
    )

    def start(listener):
        """Connect, telling ``listener`` (an IBusListener) what happens."""

    def stop():
        """Disconnect.  Returns a Deferred."""

    def publish(message):
        """Send ``message`` (a dict) to every other node, best effort."""
