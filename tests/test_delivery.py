"""docs/protocol.md, "Delivery guarantees"."""

from twisted.trial.unittest import SynchronousTestCase

from messenger.store.sqlite import ImmediateSqliteStore
from tests.support.harness import Harness, database_path


def resend_times(h, client, seconds, step=1.0):
    """Offsets (from now) at which ``client`` receives lines, stepping the clock."""
    start = h.now()
    times = []
    t = 0.0
    while t < seconds:
        h.advance(step)
        t += step
        for line in client.lines():
            times.append((round(h.now() - start, 3), line))
    return times


class RetryTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.alice, self.bob = self.h.users("alice", "bob")

    def test_unacknowledged_message_is_resent_after_two_seconds(self):
        """An unacknowledged R is sent again with the same msgid after 2 s."""
        self.alice.command("MSG|bob|hi")
        self.assertEqual(self.bob.lines(), ["R|alice|1|hi"])
        self.h.advance(1.999)
        self.assertEqual(self.bob.lines(), [])
        self.h.advance(0.001)
        self.assertEqual(self.bob.lines(), ["R|alice|1|hi"])

    def test_retry_interval_doubles_up_to_60_seconds(self):
        """The retry interval starts at 2 s and doubles up to 60 s: resent at 2, 6, 14, 30, 62, 122, 182 s."""
        self.alice.command("MSG|bob|hi")
        self.bob.clear()
        times = resend_times(self.h, self.bob, 200)
        self.assertEqual(times, [(t, "R|alice|1|hi") for t in (2, 6, 14, 30, 62, 122, 182)])

    def test_retry_intervals_are_options(self):
        """--retry-initial and --retry-max set the first interval and the cap."""
        h = Harness(retry_initial=0.5, retry_max=3)
        alice, bob = h.users("alice", "bob")
        alice.command("MSG|bob|hi")
        bob.clear()
        times = resend_times(h, bob, 10, step=0.5)
        self.assertEqual([t for t, _ in times], [0.5, 1.5, 3.5, 6.5, 9.5])

    def test_retry_is_counted_for_each_message(self):
        """The retry interval is counted for each message separately."""
        self.alice.command("MSG|bob|first")
        self.h.advance(1)
        self.alice.command("MSG|bob|second")
        self.bob.clear()
        self.assertEqual(
            resend_times(self.h, self.bob, 6),
            [
                (1, "R|alice|1|first"),
                (2, "R|alice|2|second"),
                (5, "R|alice|1|first"),
                (6, "R|alice|2|second"),
            ],
        )

    def test_no_resend_after_ack(self):
        """The server keeps the message until the recipient answers ACK|msgid, then stops sending it."""
        self.alice.command("MSG|bob|hi")
        self.bob.clear()
        self.h.advance(2)
        self.assertEqual(self.bob.lines(), ["R|alice|1|hi"])
        self.bob.send("ACK|1")
        self.h.settle()
        self.assertEqual(resend_times(self.h, self.bob, 200), [])

    def test_lower_case_ack_acknowledges(self):
        """Verbs are case-insensitive: ack|msgid acknowledges too."""
        self.alice.command("MSG|bob|hi")
        self.bob.clear()
        self.bob.send("ack|1")
        self.h.settle()
        self.assertEqual(self.alice.lines(), ["DLV|1|bob|2026-11-22T09:30:00.000Z"])
        self.h.advance(10)
        self.assertEqual(self.bob.lines(), [])

    def test_ack_stops_only_that_message(self):
        """Acknowledging one message leaves the others' retries running."""
        self.alice.command("MSG|bob|one", "MSG|bob|two")
        self.bob.clear()
        self.bob.command("ACK|2")
        self.h.advance(2)
        self.assertEqual(self.bob.lines(), ["R|alice|1|one"])


class OfflineDeliveryTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.alice, self.carol = self.h.users("alice", "carol")
        self.h.register("bob")
        self.h.clear_all()

    def test_messages_for_an_offline_user_are_delivered_at_login_oldest_first(self):
        """When the recipient is offline the message waits; at login every unacknowledged message is sent, oldest first."""
        self.alice.command("MSG|bob|one")
        self.carol.command("MSG|bob|two")
        self.alice.command("MSG|bob|three")
        bob = self.h.connect()
        self.assertEqual(
            bob.command("LOGIN|bob|password1"),
            ["OK|LOGIN|bob|Bob", "R|alice|1|one", "R|carol|2|two", "R|alice|3|three"],
        )

    def test_unacknowledged_messages_are_sent_again_at_each_login(self):
        """At each login every unacknowledged message is sent again."""
        self.alice.command("MSG|bob|one", "MSG|bob|two")
        bob = self.h.login("bob")
        self.assertEqual(bob.lines(), ["R|alice|1|one", "R|alice|2|two"])
        bob.command("ACK|1")
        bob.disconnect()
        self.h.settle()
        bob = self.h.login("bob")
        self.assertEqual(bob.lines(), ["R|alice|2|two"])
        bob.command("ACK|2")
        bob.disconnect()
        self.h.settle()
        self.assertEqual(self.h.login("bob").lines(), [])

    def test_committed_message_survives_a_restart(self):
        """Once OK|MSG is sent the message is durable and a direct message will be delivered."""
        path = database_path(self)
        h = Harness(store=ImmediateSqliteStore(path))
        alice, _ = h.users("alice", "bob")
        self.assertEqual(alice.command("MSG|bob|durable"), ["OK|MSG|1"])
        # No stopService: the server is killed.  A new one opens the same file.
        h2 = Harness(store=ImmediateSqliteStore(path))
        bob = h2.connect()
        self.assertEqual(
            bob.command("LOGIN|bob|password1"), ["OK|LOGIN|bob|Bob", "R|alice|1|durable"]
        )


class WindowTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(rate=1000, burst=1000)
        (self.alice,) = self.h.users("alice")
        self.h.register("bob")
        self.alice.clear()

    def send_many(self, count):
        self.alice.send(*[f"MSG|bob|m{n}" for n in range(1, count + 1)])
        self.h.settle()
        self.assertEqual(self.alice.lines(), [f"OK|MSG|{n}" for n in range(1, count + 1)])

    def test_at_most_100_unacknowledged_r_lines_are_outstanding(self):
        """At most 100 unacknowledged R lines (--window) are outstanding on one connection."""
        self.send_many(105)
        bob = self.h.login("bob")
        self.assertEqual(bob.lines(), [f"R|alice|{n}|m{n}" for n in range(1, 101)])

    def test_the_rest_follow_as_acks_arrive(self):
        """The rest follow as ACKs arrive, one for one."""
        self.send_many(105)
        bob = self.h.login("bob")
        bob.clear()
        self.assertEqual(bob.command("ACK|1"), ["R|alice|101|m101"])
        self.assertEqual(bob.command("ACK|50", "ACK|2"), ["R|alice|102|m102", "R|alice|103|m103"])
        self.assertEqual(bob.command("ACK|50", "ACK|9999"), [])

    def test_retries_stay_within_the_window(self):
        """Resending does not add to what is outstanding."""
        self.send_many(101)
        bob = self.h.login("bob")
        bob.clear()
        self.h.advance(2)
        self.assertEqual(bob.lines(), [f"R|alice|{n}|m{n}" for n in range(1, 101)])

    def test_live_messages_wait_behind_a_full_window(self):
        """The window holds for messages sent while the recipient is online."""
        bob = self.h.login("bob")
        self.alice.clear()  # ON|bob
        self.send_many(101)
        self.assertEqual(bob.lines(), [f"R|alice|{n}|m{n}" for n in range(1, 101)])
        self.assertEqual(bob.command("ACK|7"), ["R|alice|101|m101"])

    def test_long_backlog_arrives_in_order_without_gaps_or_duplicates(self):
        """A backlog longer than anything held in memory at once, plus messages arriving meanwhile, all arrive oldest first, each once."""
        self.send_many(600)
        self.h.advance(1)  # refill the rate allowance
        self.alice.send(*[f"MSG|bob|m{n}" for n in range(601, 1201)])
        self.h.settle()
        self.assertEqual(self.alice.lines()[-1], "OK|MSG|1200")
        bob = self.h.login("bob")
        received = []
        while True:
            lines = bob.lines()
            if not lines:
                break
            ids = [int(line.split("|")[2]) for line in lines]
            received.extend(ids)
            if len(received) >= 600 and len(received) - len(ids) < 600:
                self.alice.send("MSG|bob|live 1", "MSG|bob|live 2")
            bob.send(*[f"ACK|{n}" for n in ids])
            self.h.settle()
        self.assertEqual(received, list(range(1, 1203)))

    def test_window_is_an_option(self):
        """--window sets the number of outstanding R lines."""
        h = Harness(window=2)
        alice, bob = h.users("alice", "bob")
        alice.command("MSG|bob|a", "MSG|bob|b", "MSG|bob|c")
        self.assertEqual(bob.lines(), ["R|alice|1|a", "R|alice|2|b"])
        self.assertEqual(bob.command("ACK|2"), ["R|alice|3|c"])


class TakeoverTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.alice, self.bob = self.h.users("alice", "bob")

    def test_login_elsewhere_sends_bye_409_to_the_old_connection_and_closes_it(self):
        """A LOGIN for a user connected elsewhere sends BYE|409|logged in elsewhere to the old connection and closes it."""
        new = self.h.connect()
        self.assertEqual(new.command("LOGIN|bob|password1"), ["OK|LOGIN|bob|Bob"])
        self.assertEqual(self.bob.lines(), ["BYE|409|logged in elsewhere"])
        self.assertTrue(self.bob.closed)
        self.assertEqual(new.command("WHO"), ["OK|WHO|alice|bob"])

    def test_unacknowledged_messages_go_to_the_new_connection(self):
        """The old connection's unacknowledged messages go to the new one."""
        self.alice.command("MSG|bob|one", "MSG|bob|two")
        self.assertEqual(self.bob.lines(), ["R|alice|1|one", "R|alice|2|two"])
        self.bob.command("ACK|1")
        new = self.h.connect()
        self.assertEqual(new.command("LOGIN|bob|password1"), ["OK|LOGIN|bob|Bob", "R|alice|2|two"])
        self.h.advance(2)
        self.assertEqual(self.bob.lines(), ["BYE|409|logged in elsewhere"])
        self.assertEqual(new.lines(), ["R|alice|2|two"])

    def test_messages_after_takeover_go_to_the_new_connection(self):
        """After a takeover, new messages and receipts reach the new connection only."""
        new = self.h.connect()
        new.command("LOGIN|bob|password1")
        self.bob.clear()
        self.alice.command("MSG|bob|later")
        self.assertEqual(new.lines(), ["R|alice|1|later"])
        self.assertEqual(self.bob.lines(), [])
        self.assertEqual(self.alice.command("WHO"), ["OK|WHO|alice|bob"])

    def test_resume_takes_over_too(self):
        """RESUME: 409 and takeover as for LOGIN."""
        token = self.bob.command("TOKEN")[0].split("|")[2]
        new = self.h.connect()
        self.assertEqual(new.command(f"RESUME|bob|{token}"), ["OK|RESUME|bob|Bob"])
        self.assertEqual(self.bob.lines(), ["BYE|409|logged in elsewhere"])
        self.assertTrue(self.bob.closed)


class RoomDeliveryTests(SynchronousTestCase):
    def test_room_messages_are_pushed_once_to_members_online_at_that_moment(self):
        """Room messages are pushed once to each member online at that moment, never resent."""
        h = Harness()
        alice, bob, carol = h.users("alice", "bob", "carol")
        for client in (alice, bob, carol):
            client.command("JOIN|#team")
        carol.disconnect()
        h.settle()
        h.clear_all()
        self.assertEqual(alice.command("MSG|#team|standup"), ["OK|MSG|1"])
        self.assertEqual(bob.lines(), ["C|#team|alice|1|standup"])
        h.advance(200)
        self.assertEqual(bob.lines(), [])
        carol = h.connect()
        self.assertEqual(carol.command("LOGIN|carol|password1"), ["OK|LOGIN|carol|Carol"])
        self.assertEqual(
            carol.command("HISTORY|#team|10"),
            ["H|#team|1|alice|2026-11-22T09:30:00.000Z|standup", "OK|HISTORY|#team|1"],
        )

    def test_room_message_is_not_sent_back_to_its_sender(self):
        """C: a message in a room you are a member of, not sent back to its sender."""
        h = Harness()
        alice, bob = h.users("alice", "bob")
        self.assertEqual(alice.command("MSG|#general|hi"), ["OK|MSG|1"])
        self.assertEqual(bob.lines(), ["C|#general|alice|1|hi"])
        h.advance(5)
        self.assertEqual(alice.lines(), [])

    def test_room_message_reaches_members_only(self):
        """C goes to members of the room, not to others online."""
        h = Harness()
        alice, bob, carol = h.users("alice", "bob", "carol")
        alice.command("JOIN|#team")
        bob.command("JOIN|#team")
        h.clear_all()
        alice.command("MSG|#team|members only")
        self.assertEqual(bob.lines(), ["C|#team|alice|1|members only"])
        self.assertEqual(carol.lines(), [])
