"""What a cluster does when a node, Redis or PostgreSQL goes away.

PROTOCOL.md, "One server, many processes": a node that crashes loses
nothing that was acknowledged, its users reconnect to any node and get
every unacknowledged message, the others see ``OFF`` for its users within
15 seconds; a node that loses its bus or its database keeps its clients,
answers what needs storage with ``ERR|VERB|503|storage unavailable`` while
the database is away and catches up by itself when it returns.  Each test
runs 3 real nodes (see :mod:`tests.support.cluster`) and breaks one thing
for real: ``kill -9``, SIGTERM, stopping redis-server or PostgreSQL.
Every wait is bounded; everything is on 127.0.0.1.
"""

from __future__ import annotations

import time

import pytest
from twisted.trial.unittest import SynchronousTestCase

from tests.support.cluster import ClusterProcess
from tests.support.server import ConnectionClosed, LineClient, is_reply
from tests.test_integration import (
    NO_RATE_LIMIT,
    SHUTDOWN_BYE,
    burst_until_killed,
    login,
    msgid_of,
    signup,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

#: PROTOCOL.md: the other nodes see OFF for a crashed node's users within this.
OFF_AFTER_CRASH = 15.0
#: "deliver what was waiting within seconds of its return".
CATCH_UP = 10.0
STORAGE_UNAVAILABLE = "503|storage unavailable"


def collect_deliveries(
    client: LineClient, wanted: set[int], timeout: float = 30.0, ack: bool = True
) -> dict[int, str]:
    """Read ``R`` lines (ACKing them) until every id of ``wanted`` came;
    {msgid: body} of everything received.  Fails at ``timeout``."""
    received: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while not wanted <= set(received):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = sorted(wanted - set(received))
            raise AssertionError(f"{len(missing)} messages never came, e.g. {missing[:10]}")
        line = client.read_line(remaining)
        if line.startswith("R|"):
            _, _, msgid, body = line.split("|", 3)
            if ack:
                client.send(f"ACK|{msgid}")
            if int(msgid) in received:
                assert received[int(msgid)] == body, line
            received[int(msgid)] = body
        else:
            client.events.append(line)
    return received


class FailureTestCase(SynchronousTestCase):
    NODES = 3

    def start_cluster(self, **kwargs) -> ClusterProcess:
        self.cluster = ClusterProcess(self, *NO_RATE_LIMIT, nodes=self.NODES, **kwargs)
        return self.cluster

    def connect(self, node: int, timeout: float = 10.0) -> LineClient:
        return self.cluster.client(node=node, timeout=timeout)

    def user(self, name: str, node: int) -> LineClient:
        client = self.connect(node)
        login(client, name)
        return client

    def sign_up(self, *names: str) -> None:
        client = self.connect(0)
        for name in names:
            signup(client, name)
        client.close()


class NodeCrashTests(FailureTestCase):
    BURST = 3000
    IN_FLIGHT = 200
    KILL_AFTER = 400

    def test_kill_9_of_a_node_under_load_loses_nothing_acknowledged(self):
        """kill -9 of node 1 mid-burst: every OK'd message of its sender is
        delivered, its idle recipient reconnects to node 3 and gets every
        unacknowledged message, and the other nodes say OFF for both in 15 s."""
        self.start_cluster()
        self.sign_up("alice", "bob", "carol", "dave")
        alice = self.user("alice", 0)  # sends the burst, on the node that dies
        bob = self.user("bob", 0)  # receives on that node, never ACKs
        carol = self.user("carol", 1)
        dave = self.user("dave", 2)  # watches presence

        for_bob = {
            msgid_of(carol.command(f"MSG|bob|unacked {n}")): f"unacked {n}" for n in range(50)
        }
        # Until bob's node has pushed them all: they are in flight when it dies.
        collect_deliveries(bob, set(for_bob), ack=False)

        ok, killed_at = self._burst_until_killed(alice, to="carol")
        print(f"{len(ok)} messages OK'd by node 1 before kill -9")

        # The others see both users of the dead node go, in time.
        for user in ("alice", "bob"):
            dave.expect_event(f"OFF|{user}", timeout=OFF_AFTER_CRASH + 5)
        off_after = time.monotonic() - killed_at
        print(f"OFF for the crashed node's users {off_after:.1f} s after kill -9")
        self.assertLess(off_after, OFF_AFTER_CRASH, "OFF for the crashed node's users")

        # Everything node 1 acknowledged reaches carol on node 2...
        received = collect_deliveries(carol, set(ok))
        for msgid, body in ok.items():
            self.assertEqual(received[msgid], body)
        # ...and bob, back on node 3, gets everything he had not ACKed.
        bob = self.user("bob", 2)
        received = collect_deliveries(bob, set(for_bob))
        self.assertEqual({m: received[m] for m in for_bob}, for_bob)
        # The dead node's sender can go on from another node.
        alice = self.user("alice", 1)
        msgid = msgid_of(alice.command("MSG|carol|after the crash"))
        self.assertGreater(msgid, max(ok))
        collect_deliveries(carol, {msgid})

    def _burst_until_killed(self, alice: LineClient, to: str) -> tuple[dict[int, str], float]:
        """alice pipelines MSGs; node 1 gets SIGKILL after KILL_AFTER OKs.
        Returns ({msgid: body} of every OK, the time of the kill)."""
        bodies = [f"burst {n} | {'x' * (n % 11)}" for n in range(self.BURST)]
        ok, killed_at = burst_until_killed(
            alice, to, bodies, self.IN_FLIGHT, self.KILL_AFTER, self.cluster.nodes[0].kill
        )
        self.assertIsNotNone(killed_at, "the burst ended before the kill")
        self.assertLess(len(ok), self.BURST, "the kill did not land in the middle of the burst")
        assert killed_at is not None
        return ok, killed_at


class SigtermTests(FailureTestCase):
    def test_sigterm_of_one_node_affects_only_its_own_clients(self):
        """SIGTERM to node 1: its clients get BYE|503, it exits 0; clients of
        the other nodes stay connected, see OFF, and can still message its users."""
        self.start_cluster()
        self.sign_up("alice", "bob", "carol")
        alice = self.user("alice", 0)
        bob = self.user("bob", 1)
        carol = self.user("carol", 2)
        self.assertEqual(self.cluster.nodes[0].stop(), 0)
        lines = alice.read_until_closed()
        self.assertEqual(lines[-1], SHUTDOWN_BYE, lines)

        for client in (bob, carol):
            client.expect_event("OFF|alice")
        msgid = msgid_of(bob.command("MSG|carol|still here"))
        self.assertEqual(collect_deliveries(carol, {msgid}), {msgid: "still here"})
        for_alice = msgid_of(carol.command("MSG|alice|for when you are back"))
        alice = self.user("alice", 1)
        self.assertEqual(
            collect_deliveries(alice, {for_alice}), {for_alice: "for when you are back"}
        )
        for client in (bob, carol):
            self.assertFalse(client.eof)
            for line in client.events:
                self.assertFalse(line.startswith("BYE|"), line)


class RollingRestartTests(FailureTestCase):
    ROUNDS_PER_NODE = 2
    MESSAGES_PER_ROUND = 20

    def test_rolling_restart_loses_nothing(self):
        """Each node in turn gets SIGTERM and is started again (a rolling
        upgrade) while three pairs of users on different nodes keep
        writing: everyone whose node went away reconnects to another, and
        every OK'd message reaches its recipient, each once."""
        self.start_cluster()
        pairs = [("alice", "bob"), ("carol", "dave"), ("erin", "frank")]
        self.sign_up(*(name for pair in pairs for name in pair))
        clients = {name: self.user(name, n % 3) for n, name in enumerate(sum(pairs, ()))}
        sent: dict[str, dict[int, str]] = {recipient: {} for _, recipient in pairs}
        received: dict[str, dict[int, str]] = {recipient: {} for _, recipient in pairs}

        def reconnect_if_gone(name: str) -> None:
            client = clients[name]
            try:
                if client.command("PING", timeout=10) == "OK|PING":
                    return
            except (ConnectionClosed, OSError):
                pass
            clients[name] = client = self.cluster.client(timeout=10)  # a running node
            login(client, name)

        for round_no, node in enumerate(n for n in range(3) for _ in range(self.ROUNDS_PER_NODE)):
            for sender, recipient in pairs:
                for k in range(self.MESSAGES_PER_ROUND):
                    body = f"round {round_no} from {sender} {k}"
                    sent[recipient][
                        msgid_of(clients[sender].command(f"MSG|{recipient}|{body}"))
                    ] = body
            for _, recipient in pairs:
                received[recipient].update(
                    collect_deliveries(
                        clients[recipient], set(sent[recipient]) - set(received[recipient])
                    )
                )
            self.assertEqual(self.cluster.nodes[node].stop(), 0)
            for name in clients:
                reconnect_if_gone(name)
            self.cluster.start()
        for _, recipient in pairs:
            self.assertEqual(received[recipient], sent[recipient], recipient)


class RedisOutageTests(FailureTestCase):
    def test_nodes_keep_storing_without_redis_and_deliver_when_it_returns(self):
        """Redis stopped: every node still accepts logins and stores messages
        (OK|MSG); Redis back on the same port: what waited is delivered
        within seconds, and live delivery works again."""
        self.start_cluster()
        self.sign_up("alice", "bob", "carol")
        alice = self.user("alice", 0)
        bob = self.user("bob", 1)
        self.cluster.redis.stop()

        sent = {msgid_of(alice.command(f"MSG|bob|during the outage {n}")): n for n in range(5)}
        carol = self.user("carol", 2)  # logins still work
        sent[msgid_of(carol.command("MSG|bob|from carol"))] = -1
        time.sleep(1.0)  # an outage, not a blip

        self.cluster.redis.start()
        back = time.monotonic()
        collect_deliveries(bob, set(sent), timeout=CATCH_UP + 20)
        caught_up = time.monotonic() - back
        print(
            f"messages stored during the Redis outage delivered {caught_up:.1f} s after its return"
        )
        self.assertLess(caught_up, CATCH_UP, "catching up after Redis returned")

        msgid = msgid_of(alice.command("MSG|bob|after the outage"))
        collect_deliveries(bob, {msgid}, timeout=5)

    def test_room_messages_sent_without_redis_reach_other_nodes_when_it_returns(self):
        """Room messages stored while Redis was away are pushed (C) to the
        members on other nodes once it is back, each once."""
        self.start_cluster()
        self.sign_up("alice", "bob")
        alice = self.user("alice", 0)
        bob = self.user("bob", 1)
        for client in (alice, bob):
            self.assertEqual(client.command("JOIN|#ops"), "OK|JOIN|#ops")
        self.cluster.redis.stop()
        sent = [msgid_of(alice.command(f"MSG|#ops|while Redis is away {n}")) for n in range(3)]
        self.cluster.redis.start()
        back = time.monotonic()
        pushed = [bob.expect_event("C|#ops|", timeout=CATCH_UP + 20) for _ in sent]
        self.assertEqual(
            pushed, [f"C|#ops|alice|{m}|while Redis is away {n}" for n, m in enumerate(sent)]
        )
        print(f"room messages of the Redis outage pushed {time.monotonic() - back:.1f} s after")
        after = msgid_of(alice.command("MSG|#ops|after"))
        self.assertEqual(bob.expect_event("C|#ops|"), f"C|#ops|alice|{after}|after")

    def test_a_login_elsewhere_during_the_outage_takes_over_when_redis_returns(self):
        """alice logs in on node 2 while Redis is away (node 1, which has her
        old session, cannot be told): once Redis is back, node 1 closes the
        old session with BYE|409 and the new one is the only one."""
        self.start_cluster()
        self.sign_up("alice", "bob")
        old = self.user("alice", 0)
        self.cluster.redis.stop()
        new = self.user("alice", 1)
        self.cluster.redis.start()
        lines = old.read_until_closed(timeout=CATCH_UP + 20)
        self.assertEqual(lines[-1], "BYE|409|logged in elsewhere", lines)
        self.assertEqual(new.command("PING|still here"), "OK|PING|still here")
        bob = self.user("bob", 2)
        msgid = msgid_of(bob.command("MSG|alice|to the one session"))
        self.assertEqual(collect_deliveries(new, {msgid}), {msgid: "to the one session"})


class PostgresOutageTests(FailureTestCase):
    def test_storage_outage_gets_503_loses_nothing_and_recovers_by_itself(self):
        """PostgreSQL stopped: MSG gets ERR|MSG|503|storage unavailable and the
        connections stay; PostgreSQL back: the nodes work again without a
        restart, and every message OK'd before the outage is delivered."""
        self.start_cluster(private_postgres=True)
        self.sign_up("alice", "bob")
        alice = self.user("alice", 0)
        before = {msgid_of(alice.command(f"MSG|bob|before {n}")): f"before {n}" for n in range(5)}

        self.cluster.postgres.stop()
        outage_ok: dict[int, str] = {}
        reply = self._send_until(alice, lambda r: not r.startswith("OK|"), outage_ok, "during")
        self.assertEqual(reply, f"ERR|MSG|{STORAGE_UNAVAILABLE}")
        self.assertEqual(alice.command("PING|still connected"), "OK|PING|still connected")

        self.cluster.postgres.start()
        after: dict[int, str] = {}
        self._send_until(alice, lambda r: r.startswith("OK|"), after, "after", timeout=60)
        self.assertTrue(after, "the node did not recover by itself")
        bob = self.connect(1)
        reply = self._until_ok(bob, "LOGIN|bob|password1", timeout=30)
        self.assertTrue(reply.startswith("OK|LOGIN|bob|"), reply)
        wanted = before | outage_ok | after
        received = collect_deliveries(bob, set(wanted))
        for msgid, body in wanted.items():
            self.assertEqual(received[msgid], body)

    def test_storage_outage_mid_burst_loses_no_ok_message(self):
        """PostgreSQL stopped while alice has hundreds of MSGs in flight:
        each gets OK or ERR 503; after the restart bob gets every OK'd one
        (and nothing that was not sent; a 503 does not say "not stored")."""
        self.start_cluster(private_postgres=True)
        self.sign_up("alice", "bob")
        alice = self.user("alice", 0)
        bodies = [f"burst {n}" for n in range(1000)]
        alice.send(*(f"MSG|bob|{body}" for body in bodies[:200]))
        replies: list[str] = []
        stopped = False
        sent = 200
        while len(replies) < sent:
            line = alice.read_line(timeout=60)
            if not is_reply(line, "MSG"):
                continue
            replies.append(line)
            if len(replies) == 100 and not stopped:
                self.cluster.postgres.stop()
                stopped = True
            if sent < len(bodies) and sent - len(replies) < 100:
                alice.send(*(f"MSG|bob|{body}" for body in bodies[sent : sent + 100]))
                sent += 100
        ok = {msgid_of(r): bodies[n] for n, r in enumerate(replies) if r.startswith("OK|")}
        refused = [r for r in replies if not r.startswith("OK|")]
        self.assertTrue(refused, "no command was refused while the database was away")
        self.assertEqual(set(refused), {f"ERR|MSG|{STORAGE_UNAVAILABLE}"})
        print(f"{len(ok)} OK'd, {len(refused)} refused with 503 of {len(replies)} answered")
        self.cluster.postgres.start()
        bob = self.connect(1)
        reply = self._until_ok(bob, "LOGIN|bob|password1", timeout=30)
        self.assertTrue(reply.startswith("OK|LOGIN|bob|"), reply)
        marker = msgid_of(self._until_ok(alice, "MSG|bob|the end", timeout=30))
        received = collect_deliveries(bob, set(ok) | {marker})
        for msgid, body in ok.items():
            self.assertEqual(received[msgid], body)
        for msgid, body in received.items():
            self.assertIn(body, bodies + ["the end"])

    def test_first_command_after_the_database_returns_succeeds(self):
        """A node idle through a PostgreSQL restart answers its next command
        normally once the database is back: no 503 from a stale connection."""
        self.start_cluster(private_postgres=True)
        self.sign_up("alice", "bob")
        alice = self.user("alice", 0)
        self.cluster.postgres.stop()
        self.cluster.postgres.start()
        self._until_ok(alice, "MSG|bob|the database is back", timeout=30)
        bob = self.connect(2)
        reply = bob.command("LOGIN|bob|password1")
        self.assertTrue(reply.startswith("OK|LOGIN|bob|"), reply)

    def _until_ok(self, client: LineClient, command: str, timeout: float) -> str:
        """Send ``command`` every 0.2 s until it gets OK (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            reply = client.command(command, timeout=30)
            if reply.startswith("OK|") or time.monotonic() > deadline:
                return reply
            self.assertIn(STORAGE_UNAVAILABLE, reply)
            time.sleep(0.2)

    def _send_until(self, client, done, ok: dict[int, str], label: str, timeout: float = 30.0):
        """MSG to bob once a 0.2 s until ``done(reply)``; OK'd ones go to ``ok``."""
        deadline = time.monotonic() + timeout
        n = 0
        while time.monotonic() < deadline:
            body = f"{label} {n}"
            reply = client.command(f"MSG|bob|{body}", timeout=30)
            if reply.startswith("OK|"):
                ok[msgid_of(reply)] = body
            else:
                self.assertTrue(reply.startswith("ERR|MSG|"), reply)
            if done(reply):
                return reply
            n += 1
            time.sleep(0.2)
        raise AssertionError(f"{label}: still no change after {timeout} s (last {reply!r})")
