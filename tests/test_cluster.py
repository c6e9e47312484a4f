"""Rules that only a cluster can break: 3 real nodes on PostgreSQL and Redis.

PROTOCOL.md, "One server, many processes": every rule holds across nodes.
Each test starts 3 ``twistd messenger`` nodes sharing one database and one
Redis (see :mod:`tests.support.cluster`) and puts the users of the rule on
different nodes, so that nothing can pass by staying inside one process.
The protocol suite as a whole also runs on a cluster (test_integration.py);
failures of nodes, Redis and PostgreSQL are in test_cluster_failures.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from twisted.trial.unittest import SynchronousTestCase

from tests.support.cluster import ClusterProcess
from tests.support.server import FAST_HASH_ARGS, LineClient, is_reply, twistd_env
from tests.test_integration import NO_RATE_LIMIT, PASSWORD, login, msgid_of, signup

pytestmark = [pytest.mark.services, pytest.mark.slow]

#: A bus message must arrive in milliseconds; this only bounds a failure.
EVENT_TIMEOUT = 10.0


class ClusterTestCase(SynchronousTestCase):
    NODE_ARGS: tuple[str, ...] = NO_RATE_LIMIT

    def setUp(self) -> None:
        self.cluster = ClusterProcess(self, *self.NODE_ARGS, nodes=3)

    def connect(self, node: int) -> LineClient:
        return self.cluster.client(node=node, timeout=EVENT_TIMEOUT)

    def user(self, name: str, node: int, password: str = PASSWORD) -> LineClient:
        """``name`` signed up (on ``node``) and logged in on ``node``."""
        client = self.connect(node)
        signup(client, name, password)
        login(client, name, password)
        return client

    def sign_up(self, *names: str) -> None:
        client = self.connect(0)
        for name in names:
            signup(client, name)
        client.close()

    def admin(self, *args: str, stdin: str | None = None) -> str:
        """``messenger-admin --db <the cluster's database> ARGS``; its output."""
        result = subprocess.run(
            [sys.executable, "-m", "messenger.admin", "--db", self.cluster.db, *FAST_HASH_ARGS]
            + list(args),
            input=stdin,
            capture_output=True,
            text=True,
            env=twistd_env(),
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, f"messenger-admin {args}: {result.stderr}")
        return result.stdout


class TakeoverTests(ClusterTestCase):
    def test_login_on_another_node_takes_the_session_over(self):
        """A LOGIN on node 3 for a user connected to node 1 sends BYE|409 to
        the old connection; its unacknowledged messages go to the new one."""
        alice = self.user("alice", 0)
        bob = self.user("bob", 1)
        sent = [msgid_of(bob.command(f"MSG|alice|unacked {n}")) for n in range(3)]
        for msgid in sent:  # received on node 1, never acknowledged
            self.assertTrue(alice.expect_event("R|").startswith(f"R|bob|{msgid}|"))

        again = self.connect(2)
        login(again, "alice")
        old = alice.read_until_closed(timeout=EVENT_TIMEOUT)
        self.assertEqual(old[-1], "BYE|409|logged in elsewhere", old)
        redelivered = [again.expect_event("R|") for _ in sent]
        self.assertEqual(
            redelivered, [f"R|bob|{msgid}|unacked {n}" for n, msgid in enumerate(sent)]
        )
        again.send(*(f"ACK|{msgid}" for msgid in sent))
        receipts = {bob.expect_event("DLV|").split("|")[1] for _ in sent}
        self.assertEqual(receipts, {str(msgid) for msgid in sent})


class PresenceTests(ClusterTestCase):
    def test_on_and_off_reach_other_nodes(self):
        """A user logging in on node 2 is ON for a room mate on node 1, and OFF after QUIT."""
        self.sign_up("bob")
        alice = self.user("alice", 0)
        bob = self.connect(1)
        login(bob, "bob")
        self.assertEqual(alice.expect_event("ON|"), "ON|bob")
        self.assertEqual(bob.command("QUIT"), "OK|QUIT")
        self.assertEqual(alice.expect_event("OFF|"), "OFF|bob")

    def test_who_and_whois_list_users_of_every_node(self):
        """WHO on any node lists the users online on every node; WHOIS tells online or offline."""
        clients = [self.user(name, node) for node, name in enumerate(("alice", "bob", "carol"))]
        self.sign_up("dave")  # never logged in
        for client in clients:
            self.assertEqual(client.command("WHO"), "OK|WHO|alice|bob|carol")
        self.assertTrue(clients[0].command("WHOIS|carol").startswith("OK|WHOIS|carol|online|-|"))
        self.assertEqual(clients[2].command("QUIT"), "OK|QUIT")
        clients[0].expect_event("OFF|carol")
        for client in clients[:2]:
            self.assertEqual(client.command("WHO"), "OK|WHO|alice|bob")
        whois = clients[1].command("WHOIS|carol").split("|")
        self.assertEqual(whois[:4], ["OK", "WHOIS", "carol", "offline"])
        self.assertNotEqual(whois[4], "-")


class ReceiptTests(ClusterTestCase):
    def test_receipt_reaches_the_sender_on_another_node(self):
        """bob on node 2 acknowledges alice's message: alice on node 1 gets DLV at once."""
        alice = self.user("alice", 0)
        bob = self.user("bob", 1)
        msgid = msgid_of(alice.command("MSG|bob|across"))
        self.assertEqual(bob.expect_event("R|"), f"R|alice|{msgid}|across")
        bob.send(f"ACK|{msgid}")
        self.assertEqual(alice.expect_event("DLV|").split("|")[:3], ["DLV", str(msgid), "bob"])

    def test_receipt_waits_for_a_login_on_any_node(self):
        """A receipt for an offline sender comes at its next login, on another node."""
        alice = self.user("alice", 0)
        bob = self.user("bob", 1)
        msgid = msgid_of(alice.command("MSG|bob|while you are away"))
        self.assertEqual(alice.command("QUIT"), "OK|QUIT")
        self.assertEqual(bob.expect_event("R|"), f"R|alice|{msgid}|while you are away")
        bob.send(f"ACK|{msgid}")
        bob.command("PING")  # the ACK is read before anything else of bob's
        alice = self.connect(2)
        login(alice, "alice")
        self.assertEqual(alice.expect_event("DLV|").split("|")[:3], ["DLV", str(msgid), "bob"])


class RoomTests(ClusterTestCase):
    def test_room_messages_and_membership_changes_fan_out_to_every_node(self):
        """JOINED, C and PARTED reach the members on every node; HISTORY on any node has it."""
        alice, bob, carol = (self.user(n, i) for i, n in enumerate(("alice", "bob", "carol")))
        self.assertEqual(alice.command("JOIN|#ops"), "OK|JOIN|#ops")
        self.assertEqual(bob.command("JOIN|#ops"), "OK|JOIN|#ops")
        self.assertEqual(alice.expect_event("JOINED|#ops|"), "JOINED|#ops|bob")
        self.assertEqual(carol.command("JOIN|#ops"), "OK|JOIN|#ops")
        for member in (alice, bob):
            self.assertEqual(member.expect_event("JOINED|#ops|carol"), "JOINED|#ops|carol")

        msgid = msgid_of(alice.command("MSG|#ops|to the room"))
        for member in (bob, carol):
            self.assertEqual(member.expect_event("C|"), f"C|#ops|alice|{msgid}|to the room")
        self.assertEqual(carol.command("MEMBERS|#ops"), "OK|MEMBERS|#ops|alice|bob|carol")
        history = carol.command("HISTORY|#ops|10")
        self.assertEqual(history, "OK|HISTORY|#ops|1")
        self.assertTrue(carol.events.pop().startswith(f"H|#ops|{msgid}|alice|"))

        self.assertEqual(carol.command("PART|#ops"), "OK|PART|#ops")
        for member in (alice, bob):
            self.assertEqual(member.expect_event("PARTED|#ops|"), "PARTED|#ops|carol")
        second = msgid_of(bob.command("MSG|#ops|after carol left"))
        self.assertEqual(alice.expect_event("C|"), f"C|#ops|bob|{second}|after carol left")
        self.assertEqual(carol.command("PING|nothing more"), "OK|PING|nothing more")
        self.assertFalse([line for line in carol.events if line.startswith("C|#ops")])

    def test_broadcast_reaches_every_node(self):
        """BCST (#general) goes to the online members on every node, not back to its sender."""
        clients = [self.user(f"user{n}", n % 3) for n in range(6)]
        msgid = msgid_of(clients[0].command("BCST|everyone"), "BCST")
        for client in clients[1:]:
            self.assertEqual(client.expect_event("C|"), f"C|#general|user0|{msgid}|everyone")


class IdentifierTests(ClusterTestCase):
    def test_ids_are_unique_and_increase_in_acceptance_order_across_nodes(self):
        """One message after the other, on nodes in turn: each id is larger than
        the last; pipelined bursts on every node at once: no id twice."""
        senders = [self.user(name, node) for node, name in enumerate(("alice", "bob", "carol"))]
        self.sign_up("dave")
        ids = [msgid_of(senders[n % 3].command(f"MSG|dave|in turn {n}")) for n in range(30)]
        self.assertEqual(ids, sorted(set(ids)), "ids in acceptance order")

        burst = 200
        for sender in senders:
            sender.send(*(f"MSG|dave|burst {n}" for n in range(burst)))
        all_ids: list[int] = []
        for sender in senders:
            replies = sender.read_until(nth_reply("MSG", burst))
            mine = [msgid_of(line) for line in replies if is_reply(line, "MSG")]
            self.assertEqual(len(mine), burst)
            self.assertEqual(mine, sorted(mine), "one sender's ids increase")
            all_ids += mine
        self.assertEqual(len(set(all_ids)), 3 * burst, "ids unique across nodes")
        self.assertGreater(min(all_ids), max(ids))


def nth_reply(verb: str, n: int) -> Callable[[str], bool]:
    """A read_until predicate, true at the ``n``-th reply to ``verb``."""
    seen = 0

    def predicate(line: str) -> bool:
        nonlocal seen
        seen += is_reply(line, verb)
        return seen == n

    return predicate


class AccountTests(ClusterTestCase):
    def test_password_change_revokes_tokens_on_every_node(self):
        """PASSWD on one node: a token issued before it is refused by every node."""
        alice = self.user("alice", 0)
        token = alice.command("TOKEN").split("|")[2]
        self.assertEqual(alice.command(f"PASSWD|{PASSWORD}|new password"), "OK|PASSWD")
        self.assertEqual(alice.command("QUIT"), "OK|QUIT")
        for node in (1, 2, 0):
            client = self.connect(node)
            reply = client.command(f"RESUME|alice|{token}")
            self.assertTrue(reply.startswith("ERR|RESUME|401|"), f"node {node + 1}: {reply}")

    def test_send_is_idempotent_across_nodes(self):
        """The same SEND client_id, re-sent after reconnecting to another node,
        returns the first id and stores nothing new."""
        self.sign_up("bob")
        alice = self.user("alice", 0)
        first = msgid_of(alice.command("SEND|k-1|bob|exactly once"), "SEND")
        alice.close()
        alice = self.connect(1)
        login(alice, "alice")
        self.assertEqual(alice.command("SEND|k-1|bob|exactly once"), f"OK|SEND|{first}")
        later = msgid_of(alice.command("SEND|k-2|bob|the next one"), "SEND")
        bob = self.connect(2)
        login(bob, "bob")
        self.assertEqual(bob.expect_event("R|"), f"R|alice|{first}|exactly once")
        self.assertEqual(bob.expect_event("R|"), f"R|alice|{later}|the next one")

    def test_display_name_change_is_seen_from_every_node(self):
        """NAME on node 1: WHOIS on nodes 2 and 3 shows the new display name at once."""
        alice = self.user("alice", 0)
        self.assertEqual(alice.command("NAME|Alice Liddell"), "OK|NAME|Alice Liddell")
        for node in (1, 2):
            client = self.user(f"watcher{node}", node)
            self.assertEqual(client.command("WHOIS|alice"), "OK|WHOIS|alice|online|-|Alice Liddell")

    def test_failed_logins_from_one_address_are_counted_cluster_wide(self):
        """20 failed logins spread over the nodes: the next attempt on any node gets 429."""
        self.sign_up("alice")
        for attempt in range(20):
            if attempt % 5 == 0:  # the fifth failure on one connection ends it
                client = self.connect(attempt // 5 % 3)
            reply = client.command("LOGIN|alice|wrong password")
            self.assertTrue(reply.startswith("ERR|LOGIN|401|"), f"attempt {attempt}: {reply}")
        for node in range(3):
            client = self.connect(node)
            self.assertEqual(
                client.command(f"LOGIN|alice|{PASSWORD}"),
                "ERR|LOGIN|429|too many failed logins",
                f"node {node + 1}",
            )


class MailboxLimitTests(ClusterTestCase):
    NODE_ARGS = NO_RATE_LIMIT + ("--max-pending", "5")

    def test_mailbox_limit_counts_messages_from_every_node(self):
        """--max-pending counts what waits for a recipient, whichever nodes it came through."""
        self.sign_up("carol")
        alice = self.user("alice", 0)
        bob = self.user("bob", 1)
        for n in range(3):
            msgid_of(alice.command(f"MSG|carol|from alice {n}"))
        for n in range(2):
            msgid_of(bob.command(f"MSG|carol|from bob {n}"))
        self.assertEqual(alice.command("MSG|carol|one too many"), "ERR|MSG|429|mailbox full")
        self.assertEqual(bob.command("MSG|carol|one too many"), "ERR|MSG|429|mailbox full")


class AdminTests(ClusterTestCase):
    """messenger-admin works on the cluster's database while the nodes run,
    and what it changes reaches every node without a restart: at once for
    what is read from the database (LOGIN), within a few seconds for what
    nodes keep in memory (room memberships; they watch a change log)."""

    #: How long the nodes may take to notice an admin change (they look
    #: every 2 s; generous for a loaded machine).
    NOTICE = 30.0

    def eventually(self, client: LineClient, command: str, wanted: str) -> None:
        """Send ``command`` every 0.1 s until its reply is ``wanted`` (bounded)."""
        deadline = time.monotonic() + self.NOTICE
        while (reply := client.command(command)) != wanted:
            self.assertLess(time.monotonic(), deadline, f"{command}: still {reply!r}")
            time.sleep(0.1)

    def test_new_account_can_log_in_anywhere_and_is_in_general(self):
        """users add: the new account logs in on any node at once; within
        seconds every node has it in #general (presence, broadcasts)."""
        alice = self.user("alice", 0)
        self.admin("users", "add", "carol", "--password-file", "-", stdin=PASSWORD + "\n")
        carol = self.connect(1)
        login(carol, "carol")
        for client in (alice, carol):
            self.eventually(client, "MEMBERS|#general", "OK|MEMBERS|#general|alice|carol")
        self.assertEqual(carol.command("QUIT"), "OK|QUIT")
        alice.expect_event("OFF|carol")
        carol = self.connect(2)
        login(carol, "carol")
        self.assertEqual(alice.expect_event("ON|"), "ON|carol")
        msgid = msgid_of(alice.command("BCST|welcome carol"), "BCST")
        self.assertEqual(carol.expect_event("C|"), f"C|#general|alice|{msgid}|welcome carol")

    def test_imported_room_and_membership_work_on_running_nodes(self):
        """import of a room with members: within seconds its online members,
        on different nodes, have it and talk in it."""
        alice = self.user("alice", 0)
        bob = self.user("bob", 1)
        rooms = {
            "format": "messenger-export",
            "version": 1,
            "users": [],
            "rooms": [{"name": "#ops", "members": ["alice", "bob"]}],
        }
        path = os.path.join(self.cluster.directory, "rooms.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(rooms, f)
        self.admin("import", path)
        for client in (alice, bob):
            self.eventually(client, "ROOMS", "OK|ROOMS|#general|#ops")
        msgid = msgid_of(alice.command("MSG|#ops|imported room"))
        self.assertEqual(bob.expect_event("C|"), f"C|#ops|alice|{msgid}|imported room")

    def test_password_reset_revokes_tokens_on_every_node(self):
        """users passwd: old tokens and the old password fail everywhere at once, the new one works."""
        alice = self.user("alice", 0)
        token = alice.command("TOKEN").split("|")[2]
        self.assertEqual(alice.command("QUIT"), "OK|QUIT")
        self.admin("users", "passwd", "alice", "--password-file", "-", stdin="reset password\n")
        for node in range(3):
            client = self.connect(node)
            self.assertTrue(client.command(f"RESUME|alice|{token}").startswith("ERR|RESUME|401|"))
            self.assertTrue(client.command(f"LOGIN|alice|{PASSWORD}").startswith("ERR|LOGIN|401|"))
        client = self.connect(2)
        login(client, "alice", "reset password")


class ConcurrentStartTests(SynchronousTestCase):
    def test_nodes_started_together_on_a_new_database_all_come_up(self):
        """Three nodes started at the same moment on an empty database (as
        systemd starts them at boot) all come up and share one schema."""
        cluster = ClusterProcess(self, nodes=3, start=False)
        for node in cluster.nodes:
            node.spawn()
        deadline = time.monotonic() + 60
        for node in cluster.nodes:
            node.ready_timeout = max(1.0, deadline - time.monotonic())
            node.wait_ready()
        alice = cluster.client(node=0)
        signup(alice, "alice")
        bob = cluster.client(node=2)
        signup(bob, "bob")
        login(bob, "bob")
        login(alice, "alice")
        msgid = msgid_of(alice.command("MSG|bob|all up"))
        self.assertEqual(bob.expect_event("R|"), f"R|alice|{msgid}|all up")


class SlowReaderTests(ClusterTestCase):
    NODE_ARGS = NO_RATE_LIMIT + ("--max-outbuf", "65536", "--idle-timeout", "120")

    def test_a_stuck_reader_fed_from_another_node_is_dropped_and_memory_stays_bounded(self):
        """Room traffic sent on node 2 to a member on node 1 who stopped
        reading: node 1 closes that connection past --max-outbuf (as for
        local traffic), its memory stays bounded, and a member reading
        normally on node 1 gets every message."""
        from tests.test_slow_reader import PAD, RSS_GROWTH_LIMIT_KIB, RawClient, vmrss_kib

        self.sign_up("stuck", "sender", "watch")
        node = self.cluster.nodes[0]
        stuck = RawClient(node.port, rcvbuf=1024)
        self.addCleanup(stuck.close)
        self.assertEqual(stuck.read_lines(), ["HELLO|1|messenger"])
        self.assertTrue(stuck.command(f"LOGIN|stuck|{PASSWORD}").startswith("OK|LOGIN|"))
        self.assertEqual(stuck.command("JOIN|#flood"), "OK|JOIN|#flood")
        watch = self.connect(0)
        login(watch, "watch")
        self.assertEqual(watch.command("JOIN|#flood"), "OK|JOIN|#flood")
        sender = self.connect(1)
        login(sender, "sender")
        self.assertEqual(sender.command("JOIN|#flood"), "OK|JOIN|#flood")
        watch.expect_event("JOINED|#flood|sender")

        rss_before = vmrss_kib(node.process.pid)
        sent_after_drop = 0
        deadline = time.monotonic() + 60
        while sent_after_drop < 2 * 1024 * 1024:  # 2 MB more after the drop
            self.assertLess(time.monotonic(), deadline, "the stuck reader was never dropped")
            batch = [f"MSG|#flood|{n} {PAD}" for n in range(50)]
            sender.send(*batch)
            ids = [
                msgid_of(line)
                for line in sender.read_until(nth_reply("MSG", 50))
                if is_reply(line, "MSG")
            ]
            for msgid in ids:
                self.assertTrue(
                    watch.expect_event("C|#flood|").startswith(f"C|#flood|sender|{msgid}|")
                )
            if "reads too slowly" in node.log_text():
                sent_after_drop += sum(len(line) for line in batch)
        growth = vmrss_kib(node.process.pid) - rss_before
        print(f"node 1 RSS grew by {growth} KiB while flooded from node 2")
        self.assertLess(growth, RSS_GROWTH_LIMIT_KIB)
