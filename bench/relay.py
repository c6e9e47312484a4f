"""The bare relay: the least a Twisted server can do for W1, W2 and W3.

A ``LineReceiver`` speaking only what the load generator needs: ``USR``,
``LOGIN``, ``TOKEN`` and ``RESUME`` are accepted without any check,
``MSG|user|text`` becomes ``R`` to that user, ``MSG|#room|text`` becomes
``C`` to the room's other members, ``JOIN`` joins, ``ACK`` is ignored.  No
storage, no flow control, no presence, no validation.  Whatever the real
server costs beyond this is the price of its features and of durability.

    python -m bench.relay --port 12345
"""

from __future__ import annotations

import argparse
import itertools
import sys

from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

#: Any token will do: RESUME accepts everything.
TOKEN = b"relay-token-0123456789abcdefghijklmnopqrstuvwxyz"


class Relay(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 8193
    transport: ITCPTransport  # set by makeConnection before any call below

    def __init__(self, factory: RelayFactory) -> None:
        self.factory = factory
        self.user: bytes | None = None

    def connectionMade(self) -> None:
        try:
            self.transport.setTcpNoDelay(True)
        except AttributeError:
            pass
        self.transport.write(b"HELLO|1|relay\n")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.user is not None and self.factory.online.get(self.user) is self:
            del self.factory.online[self.user]

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            return
        verb, _, rest = line.partition(b"|")
        verb = verb.upper()
        handler = self._handlers.get(verb)
        if handler is None:
            self.transport.write(b"ERR|" + verb + b"|400|not in the relay\n")
            return
        handler(self, rest)

    def _msg(self, rest: bytes) -> None:
        target, _, text = rest.partition(b"|")
        user = self.user
        assert user is not None, "the load clients log in first"
        factory = self.factory
        msgid = b"%d" % next(factory.ids)
        if target.startswith(b"#"):
            line = b"C|" + target + b"|" + user + b"|" + msgid + b"|" + text + b"\n"
            online = factory.online
            for member in factory.rooms.get(target.lower(), ()):
                if member != user:
                    peer = online.get(member)
                    if peer is not None:
                        peer.transport.write(line)
        else:
            peer = factory.online.get(target.lower())
            if peer is not None:
                peer.transport.write(b"R|" + user + b"|" + msgid + b"|" + text + b"\n")
        self.transport.write(b"OK|MSG|" + msgid + b"\n")

    def _ack(self, rest: bytes) -> None:
        pass

    def _login(self, rest: bytes, verb: bytes = b"LOGIN") -> None:
        user = rest.partition(b"|")[0].lower()
        self.user = user
        previous = self.factory.online.get(user)
        self.factory.online[user] = self
        if previous is not None and previous is not self:
            previous.transport.write(b"BYE|409|logged in elsewhere\n")
            previous.transport.loseConnection()
        self.transport.write(b"OK|" + verb + b"|" + user + b"|" + user + b"\n")

    def _resume(self, rest: bytes) -> None:
        self._login(rest, b"RESUME")

    def _usr(self, rest: bytes) -> None:
        self.transport.write(b"OK|USR|" + rest.partition(b"|")[0].lower() + b"\n")

    def _token(self, rest: bytes) -> None:
        self.transport.write(b"OK|TOKEN|" + TOKEN + b"\n")

    def _join(self, rest: bytes) -> None:
        room = rest.lower()
        self.factory.rooms.setdefault(room, set()).add(self.user)
        self.transport.write(b"OK|JOIN|" + room + b"\n")

    def _part(self, rest: bytes) -> None:
        room = rest.lower()
        self.factory.rooms.get(room, set()).discard(self.user)
        self.transport.write(b"OK|PART|" + room + b"\n")

    def _ping(self, rest: bytes) -> None:
        self.transport.write(b"OK|PING\n" if not rest else b"OK|PING|" + rest + b"\n")

    def _quit(self, rest: bytes) -> None:
        self.transport.write(b"OK|QUIT\nBYE|200|goodbye\n")
        self.transport.loseConnection()

    _handlers = {
        b"MSG": _msg,
        b"ACK": _ack,
        b"LOGIN": _login,
        b"RESUME": _resume,
        b"USR": _usr,
        b"TOKEN": _token,
        b"JOIN": _join,
        b"PART": _part,
        b"PING": _ping,
        b"QUIT": _quit,
    }


class RelayFactory(ServerFactory):
    noisy = False

    def __init__(self) -> None:
        self.online: dict[bytes, Relay] = {}
        self.rooms: dict[bytes, set[bytes]] = {}
        self.ids = itertools.count(1)

    def buildProtocol(self, addr) -> Relay:
        return Relay(self)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interface", default="127.0.0.1")
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    reactor.listenTCP(args.port, RelayFactory(), backlog=1024, interface=args.interface)
    print(f"relay listening on {args.interface}:{args.port}", flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
