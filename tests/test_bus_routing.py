"""PROTOCOL.md, "One server, many processes": two nodes in one process.

Two services share one store and one clock and talk over an in-process
hub, which can lose or hold back messages: whatever the bus does, the
database is the truth, so nothing is lost or doubled.
"""

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from messenger.bus.local import InProcessHub
from messenger.bus.peers import EXPIRY, HEARTBEAT
from messenger.store.sqlite import ImmediateSqliteStore
from tests.support.harness import START, Harness


class TwoNodes:
    """Nodes ``a`` and ``b``: each a Harness on the shared clock and store."""

    def __init__(self, testcase, **options) -> None:
        self.clock = task.Clock()
        self.clock.advance(START)
        self.hub = InProcessHub(self.clock)
        self.store = ImmediateSqliteStore()
        self.a = Harness(
            clock=self.clock, store=self.store, bus=self.hub.bus("a"), node_id="a", **options
        )
        self.b = Harness(
            clock=self.clock, store=self.store, bus=self.hub.bus("b"), node_id="b", **options
        )
        self.nodes = [self.a, self.b]
        for h in self.nodes:
            cluster = h.service.cluster
            assert cluster is not None  # made because a bus was given
            testcase.addCleanup(cluster.peers.stop)
        self.settle()

    def settle(self) -> None:
        for _ in range(100):
            for h in self.nodes:
                h.settle()
            now = self.clock.seconds()
            busy = any(c.getTime() <= now for c in self.clock.getDelayedCalls())
            closing = any(c.closed and not c.lost for h in self.nodes for c in h.clients)
            if not busy and not closing:
                return
        raise AssertionError("the nodes never settle")

    def advance(self, seconds: float, step: float = 0.5) -> None:
        end = self.clock.seconds() + seconds
        while self.clock.seconds() < end:
            self.clock.advance(min(step, end - self.clock.seconds()))
            self.settle()

    def login(self, node: Harness, name: str):
        client = node.login(name)
        self.settle()
        return client


class RoutingTests(SynchronousTestCase):
    def setUp(self):
        self.c = TwoNodes(self)
        self.c.a.register("alice")
        self.c.a.register("bob")
        self.c.b.register("carol")
        self.c.settle()
        self.alice = self.c.login(self.c.a, "alice")
        self.bob = self.c.login(self.c.b, "bob")
        self.c.settle()
        for client in (self.alice, self.bob):
            client.clear()

    def test_direct_message_reaches_a_user_on_another_node(self):
        """MSG on node a is delivered live to its recipient on node b."""
        self.alice.send("MSG|bob|hi")
        self.c.settle()
        self.assertEqual(self.alice.lines(), ["OK|MSG|1"])
        self.assertEqual(self.bob.lines(), ["R|alice|1|hi"])

    def test_receipt_reaches_the_sender_on_another_node(self):
        """bob's ACK on node b becomes alice's DLV on node a."""
        self.alice.command("MSG|bob|hi")
        self.c.settle()
        self.bob.clear()
        self.bob.send("ACK|1")
        self.c.settle()
        [line] = self.alice.lines()
        self.assertTrue(line.startswith("DLV|1|bob|"), line)

    def test_room_message_fans_out_across_nodes(self):
        """A room message reaches members on every node, not the sender."""
        self.alice.send("BCST|hello all")
        self.c.settle()
        self.assertEqual(self.bob.lines(), ["C|#general|alice|1|hello all"])
        self.assertEqual(self.alice.lines(), ["OK|BCST|1"])

    def test_joined_and_parted_reach_members_on_other_nodes(self):
        """JOINED and PARTED go to room members on every node."""
        self.alice.command("JOIN|#tea")
        self.bob.send("JOIN|#tea")
        self.c.settle()
        self.assertEqual(self.alice.lines(), ["JOINED|#tea|bob"])
        self.bob.clear()
        self.bob.send("PART|#tea")
        self.c.settle()
        self.assertEqual(self.alice.lines(), ["PARTED|#tea|bob"])
        self.alice.send("MEMBERS|#tea")
        self.c.settle()
        self.assertEqual(self.alice.lines(), ["OK|MEMBERS|#tea|alice"])

    def test_presence_is_cluster_wide(self):
        """ON and OFF of a user on another node reach room neighbours."""
        carol = self.c.login(self.c.b, "carol")
        self.c.settle()
        self.assertEqual(self.alice.lines(), ["ON|carol"])
        carol.send("QUIT")
        self.c.settle()
        self.assertEqual(self.alice.lines(), ["OFF|carol"])

    def test_whois_after_off_from_another_node_has_last_seen(self):
        """The OFF of a user on another node comes once their last-seen time
        is stored: a WHOIS after it says when they were last seen."""
        held = Deferred()
        real = self.c.store.set_last_seen
        self.c.store.set_last_seen = lambda users, when: held
        self.bob.send("QUIT")
        self.c.settle()
        self.assertEqual(self.alice.lines(), [])  # not yet: not stored yet
        self.c.store.set_last_seen = real
        held.callback(self.successResultOf(real(["bob"], self.c.clock.seconds())))
        self.c.settle()
        self.assertEqual(self.alice.lines(), ["OFF|bob"])
        [reply] = self.alice.command("WHOIS|bob")
        self.assertTrue(reply.startswith("OK|WHOIS|bob|offline|2026-"), reply)

    def test_who_lists_users_online_on_every_node(self):
        """WHO answers with the users of every node."""
        self.assertEqual(self.alice.command("WHO"), ["OK|WHO|alice|bob"])
        self.assertEqual(self.bob.command("WHO"), ["OK|WHO|alice|bob"])

    def test_whois_says_online_for_a_user_on_another_node(self):
        """WHOIS of a user on another node says online, with their name."""
        self.alice.send("WHOIS|bob")
        self.c.settle()
        self.assertEqual(self.alice.lines(), ["OK|WHOIS|bob|online|-|Bob"])

    def test_login_on_another_node_takes_over(self):
        """A login on node a closes bob's session on node b with BYE|409,
        and the new session gets the unacknowledged messages."""
        self.alice.command("MSG|bob|one")
        self.c.settle()
        self.assertEqual(self.bob.lines(), ["R|alice|1|one"])
        bob_again = self.c.a.login("bob")
        self.c.settle()
        self.assertEqual(self.bob.lines(), ["BYE|409|logged in elsewhere"])
        self.assertEqual(bob_again.lines(), ["R|alice|1|one"])
        # Still online the whole time: no OFF, no ON for alice.
        self.assertEqual(self.alice.lines(), [])
        self.assertEqual(self.alice.command("WHO"), ["OK|WHO|alice|bob"])

    def test_takeover_then_logout_says_off_once(self):
        """After a takeover across nodes, the user's logout is one OFF."""
        bob_again = self.c.a.login("bob")
        self.c.settle()
        bob_again.send("QUIT")
        self.c.settle()
        self.assertEqual(self.alice.lines(), ["OFF|bob"])
        self.assertEqual(self.alice.command("WHO"), ["OK|WHO|alice"])

    def test_failed_logins_are_counted_across_nodes(self):
        """Failed logins from one address on any node count toward one limit."""
        c = TwoNodes(self, login_failure_limit=4, connection_failure_limit=100)
        c.a.register("dave")
        c.settle()
        for node in (c.a, c.b, c.a, c.b):
            client = node.connect(address="10.9.9.9")
            client.send("LOGIN|dave|wrong-password")
            c.settle()
            self.assertEqual(client.lines(), ["ERR|LOGIN|401|bad credentials"])
        client = c.b.connect(address="10.9.9.9")
        client.send("LOGIN|dave|password1")
        c.settle()
        self.assertEqual(client.lines(), ["ERR|LOGIN|429|too many failed logins"])

    def test_ids_increase_across_nodes(self):
        """Message ids are unique and increasing whichever node accepts them."""
        self.alice.send("MSG|bob|1")
        self.c.settle()
        self.bob.send("MSG|alice|2")
        self.c.settle()
        self.alice.send("MSG|bob|3")
        self.c.settle()
        ids = [
            int(line.split("|")[2])
            for line in self.alice.lines() + self.bob.lines()
            if line.startswith("OK|MSG")
        ]
        self.assertEqual(sorted(ids), [1, 2, 3])


class StoreRulesAcrossNodesTests(SynchronousTestCase):
    """Rules the store keeps hold whichever node a command reaches."""

    def setUp(self):
        self.c = TwoNodes(self, max_pending=2)
        self.c.a.register("alice")
        self.c.a.register("bob")
        self.c.settle()

    def test_passwd_revokes_tokens_on_every_node(self):
        """A token revoked by PASSWD on one node no longer resumes on another."""
        alice = self.c.login(self.c.a, "alice")
        [reply] = alice.command("TOKEN")
        token = reply.split("|")[2]
        alice.command("PASSWD|password1|password2")
        self.c.settle()
        other = self.c.b.connect()
        other.send(f"RESUME|alice|{token}")
        self.c.settle()
        self.assertEqual(other.lines(), ["ERR|RESUME|401|bad credentials"])

    def test_send_is_idempotent_across_nodes(self):
        """A SEND retried on another node gets the first message's id, once."""
        alice = self.c.login(self.c.a, "alice")
        alice.send("SEND|k1|bob|hello")
        self.c.settle()
        self.assertEqual(alice.lines(), ["OK|SEND|1"])
        alice_again = self.c.b.login("alice")
        self.c.settle()
        alice_again.clear()
        alice_again.send("SEND|k1|bob|hello")
        self.c.settle()
        self.assertEqual(alice_again.lines(), ["OK|SEND|1"])
        bob = self.c.login(self.c.a, "bob")
        self.assertEqual(bob.lines(), ["R|alice|1|hello"])

    def test_mailbox_limit_counts_messages_from_every_node(self):
        """--max-pending counts what every node stored for the recipient."""
        alice = self.c.login(self.c.a, "alice")
        carol_side = self.c.b
        carol_side.register("carol")
        carol = self.c.login(carol_side, "carol")
        alice.send("MSG|bob|1")
        carol.send("MSG|bob|2")
        self.c.settle()
        carol.clear()
        carol.send("MSG|bob|3")
        self.c.settle()
        self.assertEqual(carol.lines(), ["ERR|MSG|429|mailbox full"])

    def test_history_has_messages_from_every_node(self):
        """HISTORY on one node lists messages accepted on another."""
        alice = self.c.login(self.c.a, "alice")
        bob = self.c.login(self.c.b, "bob")
        alice.send("MSG|bob|from a")
        self.c.settle()
        bob.send("MSG|alice|from b")
        self.c.settle()
        bob.clear()
        bob.send("HISTORY|alice|10")
        self.c.settle()
        lines = bob.lines()
        self.assertEqual([ln.split("|")[-1] for ln in lines[:-1]], ["from a", "from b"])
        self.assertEqual(lines[-1], "OK|HISTORY|alice|2")


class DatabaseIsTruthTests(SynchronousTestCase):
    def setUp(self):
        self.c = TwoNodes(self)
        self.c.a.register("alice")
        self.c.a.register("bob")
        self.c.settle()
        self.alice = self.c.login(self.c.a, "alice")
        self.bob = self.c.login(self.c.b, "bob")
        for client in (self.alice, self.bob):
            client.clear()

    def lose_batches_to_b(self):
        self.c.hub.lose = lambda node, m: node == "b" and m["k"] == "b"

    def test_lost_bus_message_is_delivered_from_the_database(self):
        """A lost wake-up is noticed at the next heartbeat; bob gets the
        message from the store, once."""
        self.lose_batches_to_b()
        self.alice.command("MSG|bob|hi")
        self.c.settle()
        self.assertEqual(self.bob.lines(), [])
        self.c.hub.lose = lambda node, m: False
        self.c.advance(HEARTBEAT + 1, step=0.25)
        self.assertEqual(self.bob.lines(), ["R|alice|1|hi"])  # once

    def test_lost_receipt_is_handed_over_from_the_database(self):
        """A lost ACK notice still becomes a DLV, from the store."""
        self.alice.command("MSG|bob|hi")
        self.c.settle()
        self.c.hub.lose = lambda node, m: node == "a" and m["k"] == "b"
        self.bob.lines()
        self.bob.send("ACK|1")
        self.c.settle()
        self.assertEqual(self.alice.lines(), [])
        self.c.hub.lose = lambda node, m: False
        self.c.advance(HEARTBEAT + 1)
        [line] = self.alice.lines()
        self.assertTrue(line.startswith("DLV|1|bob|"), line)

    def test_late_bus_message_does_not_deliver_twice(self):
        """A wake-up that arrives after the message came from the store (and
        was acknowledged) is not delivered again."""
        held = []

        def hold(node, m):
            if node == "b" and m["k"] == "b":
                held.append(m)
                return True
            return False

        self.c.hub.lose = hold
        self.alice.command("MSG|bob|hi")
        self.c.settle()
        self.c.hub.lose = lambda node, m: False
        self.c.advance(HEARTBEAT + 1)
        self.assertEqual(self.bob.lines(), ["R|alice|1|hi"])
        self.bob.send("ACK|1")
        self.c.settle()
        self.c.b.service.cluster.peers.bus_message(held[0])  # late, out of turn
        self.c.settle()
        self.assertEqual(self.bob.lines(), [])
        self.c.advance(HEARTBEAT + 1)
        self.assertEqual(self.bob.lines(), [])
        [line] = self.alice.lines()
        self.assertTrue(line.startswith("DLV|1|bob|"), line)

    def test_lost_room_message_is_fanned_out_from_the_database(self):
        """A room message lost on the bus reaches members on the other node
        once the loss is noticed, once."""
        self.lose_batches_to_b()
        self.alice.command("BCST|hello all")
        self.c.settle()
        self.assertEqual(self.bob.lines(), [])
        self.c.hub.lose = lambda node, m: False
        self.c.advance(HEARTBEAT + 1)
        self.assertEqual(self.bob.lines(), ["C|#general|alice|1|hello all"])
        self.c.advance(30)  # more heartbeats and polls: not told again
        self.assertEqual(self.bob.lines(), [])

    def test_late_room_message_is_not_told_twice(self):
        """A room message replayed from the store, then arriving late on the
        bus, is told once."""
        held = []

        def hold(node, m):
            if node == "b" and m["k"] == "b":
                held.append(m)
                return True
            return False

        self.c.hub.lose = hold
        self.alice.command("BCST|hello all")
        self.c.settle()
        self.c.hub.lose = lambda node, m: False
        self.c.advance(HEARTBEAT + 1)
        self.assertEqual(self.bob.lines(), ["C|#general|alice|1|hello all"])
        self.c.b.service.cluster.peers.bus_message(held[0])
        self.c.settle()
        self.assertEqual(self.bob.lines(), [])

    def test_node_without_bus_polls_the_database(self):
        """While its bus is away, a node still delivers, from a slow poll."""
        self.c.hub.buses[1].go_down()
        self.alice.command("MSG|bob|hi")
        self.c.settle()
        self.assertEqual(self.bob.lines(), [])
        self.c.advance(6)
        self.assertEqual(self.bob.lines(), ["R|alice|1|hi"])

    def test_reconnected_node_catches_up_at_once(self):
        """When the bus comes back, a node re-reads what its users are owed."""
        bus_b = self.c.hub.buses[1]
        bus_b.go_down()
        self.alice.command("MSG|bob|hi")
        self.c.settle()
        bus_b.come_back()
        self.c.settle()
        self.assertEqual(self.bob.lines(), ["R|alice|1|hi"])

    def test_silent_node_users_go_offline_within_15_seconds(self):
        """A node not heard from is taken for dead: its users go OFF."""
        self.c.hub.lose = lambda node, m: m["n"] == "b"  # b is dead to a
        self.c.advance(EXPIRY + 2)
        self.assertEqual(self.alice.lines(), ["OFF|bob"])
        self.assertLessEqual(EXPIRY + 2, 15)
        self.assertEqual(self.alice.command("WHO"), ["OK|WHO|alice"])

    def test_wake_up_lost_with_a_dead_node_is_recovered(self):
        """A node that dies between a commit and its publish takes the
        wake-up with it; the others re-read when they take it for dead."""
        self.c.hub.lose = lambda node, m: m["n"] == "a"  # a's last words are lost
        self.alice.command("MSG|bob|last words")
        self.alice.command("BCST|everyone, last words")
        self.c.settle()
        self.assertEqual(self.bob.lines(), [])
        self.c.advance(EXPIRY + 2)
        self.assertEqual(
            sorted(self.bob.lines()),
            ["C|#general|alice|2|everyone, last words", "OFF|alice", "R|alice|1|last words"],
        )

    def test_stopping_node_users_go_offline_at_once(self):
        """A node that stops says so: its users are OFF for the others."""
        self.c.b.service.cluster.peers.stop()
        self.c.settle()
        self.assertEqual(self.alice.lines(), ["OFF|bob"])


class AdminChangeTests(SynchronousTestCase):
    def test_admin_membership_change_reaches_running_nodes(self):
        """A membership messenger-admin writes (with its change-log row)
        reaches every running node within a few seconds, without a restart."""
        c = TwoNodes(self)
        c.a.register("alice")
        c.a.register("bob")
        c.settle()
        alice = c.login(c.a, "alice")
        bob = c.login(c.b, "bob")
        c.advance(3)  # the nodes have read the change log once
        # What messenger-admin does, in one transaction of its own.
        from messenger.store import txns

        def admin_adds(cur):
            txns.join_room_txn(cur, "#ops", "alice", START)
            txns.join_room_txn(cur, "#ops", "bob", START)
            txns.record_change_txn(cur, "admin", START)

        c.store._run(admin_adds)
        c.advance(2.5)
        bob.clear()
        alice.send("MSG|#ops|deploying")
        c.settle()
        self.assertEqual(bob.lines(), ["C|#ops|alice|1|deploying"])

    def test_join_during_a_membership_reload_is_kept(self):
        """A JOIN committed while memberships are being re-read is not lost
        when the (older) read comes back."""
        c = TwoNodes(self)
        c.a.register("alice")
        c.settle()
        alice = c.login(c.a, "alice")
        service = c.a.service

        held = Deferred()
        real_load = c.store.load_memberships
        snapshot = real_load()  # the state before the JOIN
        c.store.load_memberships = lambda: held
        service.memberships.reload()
        alice.command("JOIN|#tea")
        c.store.load_memberships = real_load
        held.callback(self.successResultOf(snapshot))
        self.assertTrue(service.rooms.is_member("#tea", "alice"))
