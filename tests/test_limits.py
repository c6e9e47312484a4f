"""docs/protocol.md, "Limits and protection": connections, idle timeout, rate
limit, slow readers and shutdown."""

from twisted.trial.unittest import SynchronousTestCase

from messenger.store.sqlite import ImmediateSqliteStore
from tests.support.harness import Harness, database_path, timestamp

RATE_LIMIT = "ERR|PING|429|rate limit"


class ConnectionLimitTests(SynchronousTestCase):
    def test_default_connection_limit_is_1000(self):
        """1000 concurrent connections (--max-clients); over it BYE|503|server full."""
        h = Harness()
        for _ in range(1000):
            h.connect()
        over = h.connect(greet=False)
        self.assertEqual(over.lines(), ["BYE|503|server full"])
        self.assertTrue(over.closed)


class IdleTimeoutTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(idle_timeout=10)
        (self.alice,) = self.h.users("alice")

    def test_silent_connection_gets_bye_408_after_the_idle_timeout(self):
        """A connection that sends nothing for --idle-timeout gets BYE|408|idle timeout and is closed."""
        self.h.advance(9.5)
        self.assertEqual(self.alice.lines(), [])
        self.assertFalse(self.alice.closed)
        self.h.advance(0.5)
        self.assertEqual(self.alice.lines(), ["BYE|408|idle timeout"])
        self.assertTrue(self.alice.closed)

    def test_connection_not_logged_in_times_out_too(self):
        """The idle timeout holds before login as well."""
        client = self.h.connect()
        self.h.advance(10)
        self.assertEqual(client.lines(), ["BYE|408|idle timeout"])
        self.assertTrue(client.closed)

    def test_any_line_resets_the_idle_timer(self):
        """Clients send PING to stay alive: any line starts the idle time again."""
        for line in ["PING", "ACK|1", "", "NOSUCHVERB"]:
            self.h.advance(9.5)
            self.alice.send(line)
            self.h.settle()
            self.alice.clear()
        self.h.advance(9.5)
        self.assertFalse(self.alice.closed)
        self.assertEqual(self.alice.lines(), [])
        self.h.advance(0.5)
        self.assertEqual(self.alice.lines(), ["BYE|408|idle timeout"])

    def test_events_sent_to_a_silent_client_do_not_keep_it_alive(self):
        """Only what the client sends counts: lines sent to it do not reset its timer."""
        (bob,) = self.h.users("bob")
        self.alice.clear()
        for n in (1, 2, 3):
            self.h.advance(3)
            bob.command(f"MSG|alice|{n}")
        self.h.advance(0.5)
        self.assertFalse(self.alice.closed)
        self.h.advance(0.5)  # 10 s after alice's last line
        self.assertEqual(self.alice.lines()[-1], "BYE|408|idle timeout")
        self.assertTrue(self.alice.closed)
        self.assertFalse(bob.closed)

    def test_default_idle_timeout_is_300_seconds(self):
        """Idle timeout default: 300 s."""
        h = Harness()
        client = h.connect()
        h.advance(299)
        self.assertFalse(client.closed)
        h.advance(1)
        self.assertEqual(client.lines(), ["BYE|408|idle timeout"])
        self.assertTrue(client.closed)

    def test_each_connection_times_out_after_its_own_last_line(self):
        """The timeout counts from each connection's own last line: one
        connection's activity neither delays nor hastens another's."""
        first = self.h.connect()
        self.h.advance(1)
        second = self.h.connect()
        self.h.advance(4)
        first.command("PING")  # 5 s after first connected, 4 s after second
        self.h.advance(5.5)  # second silent for 9.5 s
        self.assertFalse(second.closed)
        self.h.advance(0.5)
        self.assertTrue(second.closed)
        self.assertFalse(first.closed)  # silent for 6 s
        self.h.advance(3.5)
        self.assertFalse(first.closed)
        self.h.advance(0.5)
        self.assertTrue(first.closed)

    def test_idle_connections_share_one_timer(self):
        """Hundreds of silent connections cost no timer each (memory)."""
        before = len(self.h.clock.getDelayedCalls())
        for _ in range(900):
            self.h.connect()
        self.assertLessEqual(len(self.h.clock.getDelayedCalls()) - before, 1)


class RateLimitTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()

    def test_burst_of_100_then_429_rate_limit(self):
        """--burst 100: a burst of 100 commands is served; over it ERR|VERB|429|rate limit."""
        client = self.h.connect()
        self.assertEqual(client.command(*["PING"] * 101), ["OK|PING"] * 100 + [RATE_LIMIT])
        self.assertFalse(client.closed)

    def test_rate_limited_command_is_not_carried_out(self):
        """Over the limit the command is not carried out."""
        alice, bob = self.h.users("alice", "bob")
        alice.send(*["PING"] * 99)  # LOGIN took one
        alice.send("MSG|bob|over the limit")
        self.h.settle()
        self.assertEqual(alice.lines(), ["OK|PING"] * 99 + ["ERR|MSG|429|rate limit"])
        self.assertEqual(bob.lines(), [])
        self.assertEqual(
            self.h.store._conn.execute("SELECT count(*) FROM messages").fetchone()[0], 0
        )

    def test_allowance_refills_at_20_per_second(self):
        """--rate 20 commands/s sustained."""
        client = self.h.connect()
        client.command(*["PING"] * 100)
        self.h.advance(1)
        self.assertEqual(client.command(*["PING"] * 21), ["OK|PING"] * 20 + [RATE_LIMIT])
        self.h.advance(0.5)
        self.assertEqual(client.command(*["PING"] * 11), ["OK|PING"] * 10 + [RATE_LIMIT])

    def test_allowance_never_exceeds_the_burst(self):
        """After a long pause the allowance is the burst, not more."""
        client = self.h.connect()
        self.h.advance(60)
        self.assertEqual(client.command(*["PING"] * 101), ["OK|PING"] * 100 + [RATE_LIMIT])

    def test_refused_commands_do_not_use_up_the_allowance(self):
        """Refused commands do not use up the allowance."""
        client = self.h.connect()
        client.command(*["PING"] * 100)
        self.assertEqual(client.command(*["PING"] * 50), [RATE_LIMIT] * 50)
        self.h.advance(1)
        self.assertEqual(client.command(*["PING"] * 21), ["OK|PING"] * 20 + [RATE_LIMIT])

    def test_acks_are_not_rate_limited(self):
        """ACKs do not count against the rate limit: an ACK over the limit still counts."""
        alice, bob = self.h.users("alice", "bob")
        alice.command("MSG|bob|hi")
        bob.clear()
        self.assertEqual(bob.command(*["PING"] * 100), ["OK|PING"] * 99 + [RATE_LIMIT])
        bob.send("ACK|1")
        self.h.settle()
        self.assertEqual(bob.lines(), [])
        self.assertEqual(alice.lines(), [f"DLV|1|bob|{timestamp(self.h.now())}"])
        self.h.advance(2)
        self.assertEqual(bob.lines(), [])  # acknowledged: not resent

    def test_acks_do_not_use_up_the_allowance(self):
        """ACKs take nothing from the allowance."""
        (alice,) = self.h.users("alice")
        alice.send(*["ACK|12345"] * 500)
        self.assertEqual(alice.command(*["PING"] * 100), ["OK|PING"] * 99 + [RATE_LIMIT])

    def test_rate_and_burst_are_options(self):
        """--rate and --burst set the limit."""
        h = Harness(rate=2, burst=3)
        client = h.connect()
        self.assertEqual(client.command(*["PING"] * 4), ["OK|PING"] * 3 + [RATE_LIMIT])
        h.advance(1)
        self.assertEqual(client.command(*["PING"] * 3), ["OK|PING"] * 2 + [RATE_LIMIT])


def fills_up_past(client, size: int) -> None:
    """Make ``client``'s transport behave like a socket nobody reads: once
    more than ``size`` bytes are unread it pauses its producer, as Twisted's
    TCP transport does past its bufferSize, and never resumes it."""
    transport = client.transport
    write = transport.write

    def write_and_fill(data: bytes) -> None:
        write(data)
        if len(transport.value()) > size:
            client.producer.pauseProducing()

    transport.write = write_and_fill


class SlowReaderTests(SynchronousTestCase):
    # A C line of exactly 100 bytes: "C|#general|alice|N|" is 19, the newline 1.
    BODY = "x" * 80

    def setUp(self):
        self.h = Harness(max_outbuf=250)
        self.alice, self.bob = self.h.users("alice", "bob")

    def test_deliveries_stop_while_the_transport_is_paused(self):
        """When the connection cannot take more output, R lines are held back (they stay stored)."""
        self.bob.producer.pauseProducing()
        self.assertEqual(self.alice.command("MSG|bob|one", "MSG|bob|two"), ["OK|MSG|1", "OK|MSG|2"])
        self.h.advance(10)
        self.assertEqual(self.bob.lines(), [])
        self.bob.producer.resumeProducing()
        self.assertEqual(self.bob.lines(), ["R|alice|1|one", "R|alice|2|two"])

    def test_retries_stop_while_the_transport_is_paused(self):
        """An R already sent is not resent into a full buffer; resending resumes afterwards."""
        self.alice.command("MSG|bob|one")
        self.bob.clear()
        self.bob.producer.pauseProducing()
        self.h.advance(30)
        self.assertEqual(self.bob.lines(), [])
        self.bob.producer.resumeProducing()
        self.h.advance(2)
        self.assertEqual(self.bob.lines(), ["R|alice|1|one"])

    def test_reader_past_max_outbuf_gets_bye_408_too_slow_and_is_closed(self):
        """Once its unsent output exceeds --max-outbuf bytes the client gets BYE|408|too slow and is closed."""
        self.bob.producer.pauseProducing()
        for n in (1, 2):
            self.assertEqual(self.alice.command(f"BCST|{self.BODY}"), [f"OK|BCST|{n}"])
        self.assertFalse(self.bob.closed)  # 200 bytes buffered
        self.assertEqual(self.alice.command(f"BCST|{self.BODY}"), ["OK|BCST|3", "OFF|bob"])
        lines = self.bob.lines()
        self.assertEqual(len(lines[0]) + 1, 100)
        self.assertEqual(
            lines, [f"C|#general|alice|{n}|{self.BODY}" for n in (1, 2, 3)] + ["BYE|408|too slow"]
        )
        self.assertTrue(self.bob.closed)
        self.assertTrue(self.bob.aborted)

    def test_messages_of_a_reader_closed_for_slowness_stay_stored(self):
        """Its messages stay stored and are delivered at its next login."""
        self.bob.producer.pauseProducing()
        self.alice.command("MSG|bob|kept", *[f"BCST|{self.BODY}"] * 3)
        self.assertTrue(self.bob.closed)
        bob = self.h.connect()
        self.assertEqual(bob.command("LOGIN|bob|password1"), ["OK|LOGIN|bob|Bob", "R|alice|1|kept"])

    def test_reader_that_catches_up_is_not_closed(self):
        """Only unsent output counts: a reader whose buffer drains starts from zero."""
        for _n in range(3):
            self.bob.producer.pauseProducing()
            self.alice.command(f"BCST|{self.BODY}", f"BCST|{self.BODY}")
            self.bob.producer.resumeProducing()
        self.assertFalse(self.bob.closed)
        self.assertEqual(len(self.bob.lines()), 6)

    def test_replies_pace_a_slow_reader_instead_of_closing_it(self):
        """Replies never count towards --max-outbuf: while the send buffer is
        full no further command is read, and the commands are answered, in
        order, once the client reads again."""
        self.bob.producer.pauseProducing()
        self.bob.send(*[f"PING|{n}{'p' * 90}" for n in range(5)])
        self.h.settle()
        self.assertEqual(self.bob.lines(), [])
        self.assertFalse(self.bob.closed)
        self.bob.producer.resumeProducing()
        self.h.settle()
        self.assertEqual(self.bob.lines(), [f"OK|PING|{n}{'p' * 90}" for n in range(5)])
        self.assertFalse(self.bob.closed)

    def test_a_reply_larger_than_max_outbuf_does_not_close_its_reader(self):
        """A HISTORY page far larger than --max-outbuf, to a reader whose
        buffer does not drain, is written whole and the reader stays open;
        the command after it is read only once the reader has caught up."""
        for n in range(1, 6):
            self.alice.command(f"BCST|{self.BODY}")
        self.bob.clear()
        fills_up_past(self.bob, 125)
        self.bob.send("HISTORY|#general|5", "PING|after")
        self.h.settle()
        self.h.advance(10)
        lines = self.bob.lines()
        self.assertEqual(len(lines), 6)
        self.assertEqual(lines[-1], "OK|HISTORY|#general|5")
        self.assertFalse(self.bob.closed)
        self.bob.producer.resumeProducing()
        self.h.settle()
        self.assertEqual(self.bob.lines(), ["OK|PING|after"])

    def test_events_still_count_while_replies_wait(self):
        """Pushed events written while the output is full still count: past
        --max-outbuf of them the reader is too slow, whatever its replies."""
        self.bob.producer.pauseProducing()
        self.bob.send("PING")
        for _n in range(3):
            self.alice.command(f"BCST|{self.BODY}")
        self.assertEqual(self.bob.lines()[-1], "BYE|408|too slow")
        self.assertTrue(self.bob.closed)


class ShutdownTests(SynchronousTestCase):
    def test_stop_service_sends_bye_503_to_every_connection(self):
        """On SIGTERM the server sends BYE|503|server shutting down to every connection."""
        h = Harness()
        alice, bob = h.users("alice", "bob")
        anonymous = h.connect()
        h.service.stopService()
        h.settle()
        for client in (alice, bob, anonymous):
            self.assertEqual(client.lines(), ["BYE|503|server shutting down"])
            self.assertTrue(client.closed)

    def test_commands_still_unanswered_get_no_reply(self):
        """Commands still unanswered at shutdown get no reply."""
        h = Harness()
        alice, bob = h.users("alice", "bob")
        alice.send("MSG|bob|last words", "PING")
        h.service.stopService()
        h.settle()
        self.assertEqual(alice.lines(), ["BYE|503|server shutting down"])
        self.assertEqual(bob.lines(), ["BYE|503|server shutting down"])

    def test_stop_service_finishes_pending_writes_to_storage(self):
        """At shutdown the server finishes pending writes (messages and ACKs) before it stops."""
        path = database_path(self)
        h = Harness(store=ImmediateSqliteStore(path))
        alice, bob = h.users("alice", "bob")
        alice.command("MSG|bob|acknowledged")
        bob.send("ACK|1")  # not committed yet
        alice.send("MSG|bob|accepted, not yet committed")
        d = h.service.stopService()
        self.assertNoResult(d)
        h.settle()
        self.successResultOf(d)

        h2 = Harness(store=ImmediateSqliteStore(path))
        bob = h2.connect()
        self.assertEqual(
            bob.command("LOGIN|bob|password1"),
            ["OK|LOGIN|bob|Bob", "R|alice|2|accepted, not yet committed"],
        )

    def test_users_online_at_shutdown_are_last_seen_then(self):
        """Users connected at shutdown were last seen at the shutdown."""
        path = database_path(self)
        h = Harness(store=ImmediateSqliteStore(path))
        h.users("alice", "bob")
        h.advance(42)
        d = h.service.stopService()
        h.settle()
        self.successResultOf(d)
        h2 = Harness(store=ImmediateSqliteStore(path))
        alice = h2.login("alice")
        self.assertEqual(
            alice.command("WHOIS|bob"), [f"OK|WHOIS|bob|offline|{timestamp(h.now())}|Bob"]
        )

    def test_no_new_connection_is_served_during_shutdown(self):
        """A connection arriving during shutdown is turned away with BYE|503."""
        h = Harness()
        h.service.stopService()
        client = h.connect(greet=False)
        self.assertEqual(client.lines(), ["BYE|503|server shutting down"])
        self.assertTrue(client.closed)
