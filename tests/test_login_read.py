"""A login reads everything it needs in one store call.

LOGIN and RESUME read the account, its rooms, the first page of its pending
messages and its pending receipts together (messenger.login_watch says when
that read is no longer the whole story and the store is read again).
"""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from messenger.store.sqlite import ImmediateSqliteStore
from tests.support.harness import PASSWORD, Harness


class CountingStore(ImmediateSqliteStore):
    """Records the name of every transaction function it runs; can hold
    the answer of a login's read back for some clock time (the read itself
    runs at once: its snapshot is taken when it is asked for)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.clock: task.Clock | None = None
        self.login_answer_delay = 0.0

    def _run(self, function, *args):
        self.calls.append(function.__name__)
        d = super()._run(function, *args)
        if self.login_answer_delay and function.__name__.endswith("_record_txn"):
            held = task.deferLater(self.clock, self.login_answer_delay, lambda: None)
            d.addCallback(lambda result: held.addCallback(lambda _: result))
        return d


def token_of(client):
    [reply] = [line for line in client.command("TOKEN") if line.startswith("OK|TOKEN|")]
    return reply.split("|")[2]


class OneStoreCallTests(SynchronousTestCase):
    def setUp(self):
        self.store = CountingStore()
        self.h = Harness(store=self.store)
        self.store.clock = self.h.clock
        alice, bob = self.h.users("alice", "bob")
        self.tokens = {"alice": token_of(alice), "bob": token_of(bob)}
        # Bob has messages 2 and 3 waiting; Alice the receipt of 1.
        alice.command("MSG|bob|one", "MSG|bob|two", "MSG|bob|three")
        alice.command("QUIT")
        self.h.settle()
        bob.command("ACK|1")
        bob.disconnect()
        self.h.settle()
        self.h.clear_all()

    def test_a_resume_reads_account_rooms_pending_messages_and_receipts_in_one_store_call(self):
        """RESUME costs one store call: token, account, rooms, the first page
        of pending messages and the pending receipts, read together."""
        bob_token, alice_token = self.tokens["bob"], self.tokens["alice"]
        bob = self.h.connect()
        self.store.calls.clear()
        self.assertEqual(
            bob.command(f"RESUME|bob|{bob_token}"),
            ["OK|RESUME|bob|Bob", "R|alice|2|two", "R|alice|3|three"],
        )
        self.assertEqual(self.store.calls, ["resume_record_txn"])
        alice = self.h.connect()
        self.store.calls.clear()
        lines = alice.command(f"RESUME|alice|{alice_token}")
        self.assertEqual(lines[0], "OK|RESUME|alice|Alice")
        self.assertEqual([line.split("|")[:3] for line in lines[1:]], [["DLV", "1", "bob"]])
        # The only other call: the group commit marking the receipt handed over.
        self.assertEqual(self.store.calls, ["resume_record_txn", "commit_batch_txn"])

    def test_a_login_reads_account_rooms_pending_messages_and_receipts_in_one_store_call(self):
        """LOGIN costs one store call besides the password check: account,
        rooms, pending messages and receipts, read together."""
        self.store.calls.clear()
        bob = self.h.connect()
        self.assertEqual(
            bob.command(f"LOGIN|bob|{PASSWORD}"),
            ["OK|LOGIN|bob|Bob", "R|alice|2|two", "R|alice|3|three"],
        )
        self.assertEqual(self.store.calls, ["login_record_txn"])

    def test_a_message_committed_while_a_login_reads_is_delivered_once(self):
        """A message committed after the login's read, but pushed before
        delivery starts, is found by reading again, and sent once."""
        carol = self.h.users("carol")[0]
        bob_token = self.tokens["bob"]
        self.store.login_answer_delay = 1.0
        bob = self.h.connect()
        bob.send(f"RESUME|bob|{bob_token}")  # read now, answered in 1 s
        carol.command("MSG|bob|meanwhile")
        self.h.advance(1.0)
        self.assertEqual(
            bob.lines(),
            ["OK|RESUME|bob|Bob", "R|alice|2|two", "R|alice|3|three", "R|carol|4|meanwhile"],
        )

    def test_a_receipt_committed_while_a_login_reads_is_handed_over(self):
        """A receipt committed after the login's read, but before delivery
        starts, still reaches the sender."""
        alice_token = self.tokens["alice"]
        bob = self.h.login("bob")
        self.h.settle()
        bob.clear()
        self.store.login_answer_delay = 1.0
        alice = self.h.connect()
        alice.send(f"RESUME|alice|{alice_token}")
        bob.command("ACK|2")
        self.h.advance(1.0)
        lines = alice.lines()
        self.assertEqual(lines[0], "OK|RESUME|alice|Alice")
        self.assertCountEqual(
            [line.split("|")[:3] for line in lines[1:]], [["DLV", "1", "bob"], ["DLV", "2", "bob"]]
        )

    def test_an_ack_not_yet_committed_at_login_does_not_bring_its_message_again(self):
        """An ACK still waiting for the group commit when the same user logs
        in elsewhere: the new connection is not sent that message again."""
        bob_token = self.tokens["bob"]
        old = self.h.login("bob")
        self.h.settle()
        old.clear()
        new = self.h.connect()
        old.send("ACK|2")
        new.send(f"RESUME|bob|{bob_token}")
        self.h.settle()
        self.assertEqual(new.lines(), ["OK|RESUME|bob|Bob", "R|alice|3|three"])
