"""messenger.bus.peers: sequence numbers, liveness, who is online where."""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from messenger.bus.interface import IBus
from messenger.bus.peers import EXPIRY, Peers, RemotePresence


@implementer(IBus)
class RecordingBus:
    shared = True

    def __init__(self) -> None:
        self.published: list[dict] = []

    def start(self, listener) -> None:
        pass

    def stop(self):
        return None

    def publish(self, message) -> None:
        self.published.append(dict(message))


class Events:
    def __init__(self) -> None:
        self.resyncs = 0
        self.messages: list[tuple[str, str]] = []
        self.gone: list[str] = []

    def resync(self, memberships: bool = True) -> None:
        self.resyncs += 1

    def peer_message(self, node, message) -> None:
        self.messages.append((node, message["k"]))

    def peer_gone(self, node) -> None:
        self.gone.append(node)

    def snapshot(self):
        return {"users": []}


def from_node(node: str, seq: int, kind: str = "b", epoch: str = "e1") -> dict:
    return {"n": node, "e": epoch, "s": seq, "k": kind}


class PeersTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.bus = RecordingBus()
        self.events = Events()
        self.peers = Peers(self.bus, "me", self.clock, self.events)
        self.peers.start()
        self.peers.bus_connected()
        self.events.resyncs = 0
        self.addCleanup(self.peers.stop)

    def test_messages_carry_node_epoch_and_increasing_sequence(self):
        """Each message published says who, which start, and its number."""
        self.peers.publish("b")
        self.peers.publish("b")
        first, second = self.bus.published[-2:]
        self.assertEqual((first["n"], second["n"]), ("me", "me"))
        self.assertEqual(first["e"], second["e"])
        self.assertEqual(second["s"], first["s"] + 1)

    def test_sequence_gap_means_a_resync(self):
        """A number skipped from one node: re-read the database."""
        self.peers.bus_message(from_node("x", 1))
        self.peers.bus_message(from_node("x", 2))
        self.assertEqual(self.events.resyncs, 0)
        self.peers.bus_message(from_node("x", 4))
        self.assertEqual(self.events.resyncs, 1)
        self.assertEqual(len(self.events.messages), 3)  # still handled

    def test_own_messages_are_ignored(self):
        """What this node published and hears back is not handled again."""
        self.peers.bus_message(from_node("me", 1))
        self.assertEqual(self.events.messages, [])

    def test_another_node_with_the_same_id_is_reported(self):
        """Two nodes with one --node-id would ignore each other: said in the log."""
        from twisted.logger import globalLogPublisher

        seen = []
        globalLogPublisher.addObserver(seen.append)
        self.addCleanup(globalLogPublisher.removeObserver, seen.append)
        self.peers.bus_message(from_node("me", 1, epoch="not-mine"))
        self.assertEqual(self.events.messages, [])
        self.assertTrue(any("also called" in e.get("log_format", "") for e in seen))

    def test_restarted_node_is_a_new_node(self):
        """A new epoch: the old incarnation's users are gone."""
        self.peers.bus_message(from_node("x", 7))
        self.peers.bus_message(from_node("x", 1, epoch="e2"))
        self.assertEqual(self.events.gone, ["x"])
        self.assertEqual(self.events.resyncs, 0)

    def test_silent_node_is_taken_for_dead(self):
        """No word from a node for EXPIRY seconds: it is gone."""
        self.peers.bus_message(from_node("x", 1))
        self.clock.pump([1.0] * int(EXPIRY))
        self.assertEqual(self.events.gone, [])
        self.clock.pump([1.0, 1.0])
        self.assertEqual(self.events.gone, ["x"])

    def test_heartbeats_are_published_when_nothing_else_is(self):
        """A quiet node still publishes, so a lost message shows as a gap."""
        before = len(self.bus.published)
        self.clock.pump([1.0] * 4)
        self.assertIn("hb", [m["k"] for m in self.bus.published[before:]])

    def test_without_the_bus_the_database_is_polled(self):
        """While the bus is away, resync every few seconds."""
        self.peers.bus_disconnected()
        self.clock.pump([1.0] * 11)
        self.assertEqual(self.events.resyncs, 2)

    def test_hello_is_answered_with_a_snapshot(self):
        """A node asking what the others have gets this node's snapshot."""
        self.peers.bus_message(from_node("x", 1, kind="hello"))
        self.assertEqual(self.bus.published[-1]["k"], "snap")

    def test_bye_means_gone_at_once(self):
        """A node stopping says bye: gone without waiting for silence."""
        self.peers.bus_message(from_node("x", 1))
        self.peers.bus_message(from_node("x", 2, kind="bye"))
        self.assertEqual(self.events.gone, ["x"])


class RemotePresenceTests(SynchronousTestCase):
    def test_a_user_is_online_on_one_node_at_most(self):
        """A later login elsewhere moves the user."""
        p = RemotePresence()
        p.login("bob", 1.0, "a")
        p.login("bob", 2.0, "b")
        self.assertEqual(p.stamp_of("bob"), (2.0, "b"))
        self.assertEqual(p.drop_node("a"), [])

    def test_older_login_loses(self):
        """Of two logins, the greater (stamp, node) wins everywhere."""
        p = RemotePresence()
        p.login("bob", 2.0, "a")
        self.assertFalse(p.login("bob", 1.0, "b"))
        self.assertFalse(p.login("bob", 2.0, "0"))
        self.assertTrue(p.login("bob", 2.0, "z"))

    def test_logout_from_another_node_is_ignored(self):
        """A stale logout (the user moved since) changes nothing."""
        p = RemotePresence()
        p.login("bob", 1.0, "a")
        p.login("bob", 2.0, "b")
        self.assertFalse(p.logout("bob", "a"))
        self.assertIn("bob", p)

    def test_logout_of_an_earlier_login_is_ignored(self):
        """The end of a session the user has since replaced changes nothing."""
        p = RemotePresence()
        p.login("bob", 1.0, "a")
        p.login("bob", 2.0, "a")
        self.assertFalse(p.logout("bob", "a", 1.0))
        self.assertTrue(p.logout("bob", "a", 2.0))

    def test_snapshot_replaces_a_node_list(self):
        """A node's full list says who came and who went."""
        p = RemotePresence()
        p.login("bob", 1.0, "a")
        p.login("carol", 1.0, "a")
        added, removed = p.replace_node("a", [("carol", 1.0), ("dave", 3.0)])
        self.assertEqual((added, removed), (["dave"], ["bob"]))
        self.assertEqual(sorted(p.users()), ["carol", "dave"])
