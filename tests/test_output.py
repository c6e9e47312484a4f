"""One write per connection per reactor turn, with ``coalesce_writes``.

With it the factory holds each connection's lines until the end of the
reactor turn and writes them at once (for transports where each write is
costly; over TCP the server leaves it off, see messenger/tap.py).  These
tests turn it on in the harness and end the turn with ``clock.advance(0)``.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from messenger.protocol import FLUSH_AT
from tests.support.harness import Harness

NO_RATE_LIMIT = {"rate": 1e6, "burst": 10**6}


def count_writes(client) -> list[bytes]:
    """Record every transport.write of ``client``'s connection."""
    transport = client.transport
    write = transport.write
    writes: list[bytes] = []

    def recording(data: bytes) -> None:
        writes.append(data)
        write(data)

    transport.write = recording
    return writes


class CoalescedWriteTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(**NO_RATE_LIMIT)
        self.alice, self.bob = self.h.users("alice", "bob")
        self.h.factory.coalesce_writes = True

    def test_the_replies_of_one_turn_go_out_in_one_write_in_order(self):
        """Pipelined commands answered in one turn: one write, replies in order."""
        writes = count_writes(self.alice)
        self.alice.send("PING|1", "PING|2", "WHO", "PING|3")
        self.assertEqual(writes, [])  # held until the end of the turn
        self.h.clock.advance(0)
        self.assertEqual(len(writes), 1)
        self.assertEqual(
            self.alice.lines(), ["OK|PING|1", "OK|PING|2", "OK|WHO|alice|bob", "OK|PING|3"]
        )

    def test_messages_committed_together_reach_each_connection_in_one_write(self):
        """A group commit of several messages: one write to the sender (its
        OKs) and one to the recipient (its R lines), each in order."""
        sent = count_writes(self.alice)
        received = count_writes(self.bob)
        self.alice.send(*[f"MSG|bob|m{n}" for n in range(1, 6)])
        self.h.settle()
        self.assertEqual((len(sent), len(received)), (1, 1))
        self.assertEqual(self.alice.lines(), [f"OK|MSG|{n}" for n in range(1, 6)])
        self.assertEqual(self.bob.lines(), [f"R|alice|{n}|m{n}" for n in range(1, 6)])

    def test_a_goodbye_comes_after_the_lines_held_before_it(self):
        """QUIT: the OK held for the turn is written before the BYE, then the close."""
        self.alice.send("PING", "QUIT")
        self.assertEqual(self.alice.lines(), ["OK|PING", "OK|QUIT", "BYE|200|goodbye"])
        self.assertTrue(self.alice.closed)

    def test_a_large_reply_is_written_as_it_is_made(self):
        """Past FLUSH_AT bytes the held lines are written at once, not at the
        end of the turn: a big reply fills the transport while it is made."""
        writes = count_writes(self.alice)
        body = "x" * 4000
        self.alice.send(*[f"PING|{n}{body}" for n in range(FLUSH_AT // 4000 + 2)])
        self.assertEqual(len(writes), 1)
        self.assertGreaterEqual(len(writes[0]), FLUSH_AT)
        self.h.clock.advance(0)
        self.assertEqual(len(writes), 2)

    def test_pushed_events_held_for_the_turn_still_count_towards_max_outbuf(self):
        """Events written together still count as events for --max-outbuf."""
        h = Harness(max_outbuf=250, **NO_RATE_LIMIT)
        alice, bob = h.users("alice", "bob")
        h.factory.coalesce_writes = True
        bob.producer.pauseProducing()
        alice.send(*[f"BCST|{'x' * 80}"] * 3)
        h.settle()
        self.assertEqual(bob.lines()[-1], "BYE|408|too slow")
        self.assertTrue(bob.closed)

    def test_replies_held_for_the_turn_never_count_towards_max_outbuf(self):
        """Replies written together are still replies: they pace, not close."""
        h = Harness(max_outbuf=250, **NO_RATE_LIMIT)
        (bob,) = h.users("bob")
        h.factory.coalesce_writes = True
        bob.send(*[f"PING|{n}{'p' * 90}" for n in range(5)])
        bob.producer.pauseProducing()
        h.settle()
        self.assertFalse(bob.closed)
        self.assertEqual(len(bob.lines()), 5)
