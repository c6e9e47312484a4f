"""docs/protocol.md: JOIN, PART, ROOMS, MEMBERS and the ON, OFF, JOINED and PARTED events."""

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from messenger.memberships import CHANGE_POLL
from messenger.rooms import RoomDirectory
from messenger.store import txns
from messenger.tap import Options
from tests.support.harness import Harness, database_path, timestamp


def err_prefix(line):
    return "|".join(line.split("|")[:3])


class RoomCommandTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.alice, self.bob = self.h.users("alice", "bob")

    def test_join_creates_a_room_that_does_not_exist(self):
        """JOIN|#room -> OK|JOIN|#room, creating the room if it does not exist."""
        self.assertEqual(self.alice.command("MEMBERS|#new"), ["ERR|MEMBERS|404|no such room"])
        self.assertEqual(self.alice.command("JOIN|#new"), ["OK|JOIN|#new"])
        self.assertEqual(self.alice.command("MEMBERS|#new"), ["OK|MEMBERS|#new|alice"])

    def test_join_an_existing_room(self):
        """JOIN of an existing room makes you a member."""
        self.alice.command("JOIN|#team")
        self.assertEqual(self.bob.command("JOIN|#team"), ["OK|JOIN|#team"])
        self.assertEqual(self.bob.command("MEMBERS|#team"), ["OK|MEMBERS|#team|alice|bob"])

    def test_joining_again_is_a_no_op(self):
        """Joining a room you are in again is a no-op: OK, and no JOINED for the others."""
        self.alice.command("JOIN|#team")
        self.bob.command("JOIN|#team")
        self.alice.clear()
        self.assertEqual(self.bob.command("JOIN|#team"), ["OK|JOIN|#team"])
        self.assertEqual(self.bob.command("JOIN|#general"), ["OK|JOIN|#general"])
        self.assertEqual(self.alice.lines(), [])
        self.assertEqual(self.bob.command("MEMBERS|#team"), ["OK|MEMBERS|#team|alice|bob"])

    def test_join_with_bad_room_name_is_400(self):
        """JOIN: 400 bad room name (# then 1-32 of a-z 0-9 _ -)."""
        for room in ["team", "#", "#a b", "#a.b", "#" + "a" * 33, "##a", "#é"]:
            reply = self.alice.command(f"JOIN|{room}")
            self.assertEqual(len(reply), 1, room)
            self.assertEqual(err_prefix(reply[0]), "ERR|JOIN|400", room)
        self.assertEqual(self.alice.command("JOIN|#" + "a" * 32), ["OK|JOIN|#" + "a" * 32])

    def test_join_lower_cases_the_room_name(self):
        """Room input is lower-cased."""
        self.assertEqual(self.alice.command("JOIN|#TeAm"), ["OK|JOIN|#team"])
        self.assertEqual(self.alice.command("ROOMS"), ["OK|ROOMS|#general|#team"])

    def test_part_leaves_the_room(self):
        """PART|#room -> OK|PART|#room."""
        self.alice.command("JOIN|#team")
        self.assertEqual(self.alice.command("PART|#team"), ["OK|PART|#team"])
        self.assertEqual(self.alice.command("ROOMS"), ["OK|ROOMS|#general"])
        self.assertEqual(err_prefix(self.alice.command("MSG|#team|hi")[0]), "ERR|MSG|403")

    def test_part_of_a_room_you_are_not_in_is_404(self):
        """PART: 404 not a member (also for a room that does not exist)."""
        self.bob.command("JOIN|#team")
        self.assertEqual(err_prefix(self.alice.command("PART|#team")[0]), "ERR|PART|404")
        self.assertEqual(err_prefix(self.alice.command("PART|#nowhere")[0]), "ERR|PART|404")

    def test_rooms_lists_the_rooms_you_are_a_member_of(self):
        """ROOMS -> OK|ROOMS|#room1|#room2|... (rooms you are a member of)."""
        self.alice.command("JOIN|#b-room", "JOIN|#a_room")
        self.bob.command("JOIN|#bobs")
        self.assertEqual(self.alice.command("ROOMS"), ["OK|ROOMS|#a_room|#b-room|#general"])

    def test_rooms_is_empty_when_you_left_every_room(self):
        """ROOMS with no room is just OK|ROOMS."""
        self.alice.command("PART|#general")
        self.assertEqual(self.alice.command("ROOMS"), ["OK|ROOMS"])

    def test_members_lists_the_members(self):
        """MEMBERS|#room -> OK|MEMBERS|#room|user1|user2|..."""
        self.assertEqual(self.alice.command("MEMBERS|#General"), ["OK|MEMBERS|#general|alice|bob"])

    def test_members_of_unknown_room_is_404(self):
        """MEMBERS: 404."""
        self.assertEqual(err_prefix(self.alice.command("MEMBERS|#nowhere")[0]), "ERR|MEMBERS|404")

    def test_general_always_exists(self):
        """The room #general always exists, even when everyone left it."""
        self.alice.command("PART|#general")
        self.bob.command("PART|#general")
        self.assertEqual(self.alice.command("MEMBERS|#general"), ["OK|MEMBERS|#general"])
        self.assertEqual(self.alice.command("JOIN|#general"), ["OK|JOIN|#general"])

    def test_memberships_survive_a_restart(self):
        """Rooms and members are durable."""
        from messenger.store.sqlite import ImmediateSqliteStore

        path = database_path(self)
        h = Harness(store=ImmediateSqliteStore(path))
        (alice,) = h.users("alice")
        alice.command("JOIN|#team")
        h2 = Harness(store=ImmediateSqliteStore(path))
        alice = h2.login("alice")
        self.assertEqual(alice.command("ROOMS"), ["OK|ROOMS|#general|#team"])

    def test_a_node_working_alone_picks_up_memberships_written_behind_its_back(self):
        """A server without a bus still sees the rooms and memberships that
        messenger-admin wrote (with its change-log row) within CHANGE_POLL
        seconds, without a restart: room lines reach the new members."""
        alice, bob = self.alice, self.bob

        def admin_adds(txn):
            # What messenger-admin does, in one transaction of its own.
            txns.join_room_txn(txn, "#ops", "alice", 0.0)
            txns.join_room_txn(txn, "#ops", "bob", 0.0)
            txns.record_change_txn(txn, "admin", 0.0)

        self.h.store._run(admin_adds)
        self.assertEqual(alice.command("MEMBERS|#ops"), ["ERR|MEMBERS|404|no such room"])
        self.h.advance(CHANGE_POLL)
        self.assertEqual(alice.command("MEMBERS|#ops"), ["OK|MEMBERS|#ops|alice|bob"])
        bob.clear()
        [ok] = alice.command("MSG|#ops|deploying")
        msgid = ok.split("|")[2]
        self.assertEqual(bob.lines(), [f"C|#ops|alice|{msgid}|deploying"])


class MembershipEventTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.alice, self.bob, self.carol = self.h.users("alice", "bob", "carol")
        self.alice.command("JOIN|#team")

    def test_joined_is_sent_to_the_other_members(self):
        """JOINED|#room|username: room membership changed; the members get it, not the joiner."""
        self.assertEqual(self.bob.command("JOIN|#team"), ["OK|JOIN|#team"])
        self.assertEqual(self.alice.lines(), ["JOINED|#team|bob"])
        self.assertEqual(self.carol.lines(), [])

    def test_parted_is_sent_to_the_remaining_members(self):
        """PARTED|#room|username: the remaining members get it, not the one leaving."""
        self.bob.command("JOIN|#team")
        self.h.clear_all()
        self.assertEqual(self.bob.command("PART|#team"), ["OK|PART|#team"])
        self.assertEqual(self.alice.lines(), ["PARTED|#team|bob"])
        self.assertEqual(self.carol.lines(), [])

    def test_new_account_joining_general_is_announced(self):
        """Every new account is a member of #general: its members get JOINED|#general|username."""
        self.h.register("dave")
        self.assertEqual(self.alice.lines(), ["JOINED|#general|dave"])
        self.assertEqual(self.bob.lines(), ["JOINED|#general|dave"])


class PresenceTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.alice, self.bob, self.carol = self.h.users("alice", "bob", "carol")
        # carol shares no room with anybody.
        self.carol.command("PART|#general")
        self.h.register("dave")
        self.h.clear_all()

    def test_on_is_sent_to_users_sharing_a_room(self):
        """ON|username: a user who shares a room with you logged in."""
        dave = self.h.login("dave")
        self.assertEqual(self.alice.lines(), ["ON|dave"])
        self.assertEqual(self.bob.lines(), ["ON|dave"])
        self.assertEqual(dave.lines(), [])

    def test_on_is_not_sent_to_users_sharing_no_room(self):
        """ON goes only to users who share a room with the one logging in."""
        self.h.login("dave")
        self.assertEqual(self.carol.lines(), [])
        self.carol.command("JOIN|#general")
        self.carol.disconnect()
        self.h.settle()
        self.h.clear_all()
        self.h.login("carol")
        self.assertEqual(self.alice.lines(), ["ON|carol"])

    def test_on_through_a_room_other_than_general(self):
        """Any shared room counts."""
        self.carol.command("JOIN|#side")
        self.bob.command("PART|#general")
        self.bob.command("JOIN|#side")
        self.bob.disconnect()
        self.h.settle()
        self.h.clear_all()
        self.h.login("bob")
        self.assertEqual(self.carol.lines(), ["ON|bob"])
        self.assertEqual(self.alice.lines(), [])

    def test_off_is_sent_when_a_user_quits(self):
        """OFF|username: a user who shares a room with you logged out."""
        self.bob.command("QUIT")
        self.assertEqual(self.alice.lines(), ["OFF|bob"])
        self.assertEqual(self.carol.lines(), [])

    def test_off_is_sent_when_a_user_loses_the_connection(self):
        """OFF|username: ... or lost the connection."""
        self.bob.disconnect()
        self.h.settle()
        self.assertEqual(self.alice.lines(), ["OFF|bob"])
        self.assertEqual(self.carol.lines(), [])

    def test_connection_that_never_logged_in_causes_no_off(self):
        """Only logged-in users go ON and OFF."""
        client = self.h.connect()
        client.command("PING")
        client.disconnect()
        self.h.settle()
        self.assertEqual(self.alice.lines(), [])

    def test_no_presence_events_once_a_shutdown_is_requested(self):
        """After SIGTERM, while the reactor finishes what it is doing, users
        who leave or arrive cause no OFF or ON (everyone is about to get
        BYE|503), but their last-seen time is still recorded."""
        self.h.service.shutdown_requested()
        self.h.advance(5)
        self.bob.disconnect()
        self.h.settle()
        self.h.login("dave")
        self.assertEqual(self.alice.lines(), [])
        user = self.successResultOf(self.h.store.get_user("bob"))
        self.assertEqual(user.last_seen, self.h.now())

    def test_takeover_sends_no_off(self):
        """A user taken over by a new login of their own stays online: no OFF."""
        self.h.login("bob")
        self.h.settle()
        self.assertNotIn("OFF|bob", self.alice.lines())
        self.assertEqual(self.alice.command("WHO"), ["OK|WHO|alice|bob|carol"])


class PresenceRoomLimitTests(SynchronousTestCase):
    """PROTOCOL.md, "Presence": ON and OFF only through rooms of at most
    --presence-room-limit members, one per change, WHO and WHOIS always true."""

    def setUp(self):
        # #general has four members: over the limit of three.
        self.h = Harness(presence_room_limit=3)
        self.alice, self.bob, self.carol = self.h.users("alice", "bob", "carol")
        self.h.register("dave")
        self.h.clear_all()

    def relog(self, client, username):
        client.disconnect()
        self.h.settle()
        self.h.clear_all()
        return self.h.login(username)

    def test_a_room_over_the_limit_carries_no_presence(self):
        """Sharing only a room of more members than the limit: no ON, no OFF."""
        dave = self.h.login("dave")
        self.assertEqual(self.alice.lines(), [])
        dave.command("QUIT")
        self.assertEqual(self.alice.lines(), [])
        self.assertEqual(self.bob.lines(), [])

    def test_a_room_of_at_most_the_limit_carries_presence(self):
        """A room of exactly the limit's number of members carries ON and OFF."""
        for client in (self.alice, self.bob, self.carol):
            client.command("JOIN|#three")
        self.h.clear_all()
        bob = self.relog(self.bob, "bob")
        self.assertEqual(self.alice.lines(), ["ON|bob"])
        self.assertEqual(self.carol.lines(), ["ON|bob"])
        bob.command("QUIT")
        self.assertEqual(self.alice.lines(), ["OFF|bob"])
        self.assertEqual(self.carol.lines(), ["OFF|bob"])

    def test_one_on_and_one_off_per_change_however_many_rooms_are_shared(self):
        """alice and bob share three small rooms: one ON and one OFF each."""
        for room in ("#one", "#two", "#three"):
            self.alice.command(f"JOIN|{room}")
            self.bob.command(f"JOIN|{room}")
        self.h.clear_all()
        bob = self.relog(self.bob, "bob")
        self.assertEqual(self.alice.lines(), ["ON|bob"])
        bob.disconnect()
        self.h.settle()
        self.assertEqual(self.alice.lines(), ["OFF|bob"])

    def test_who_and_whois_are_complete_whatever_the_room_sizes(self):
        """WHO and WHOIS tell the truth about users no presence was sent for."""
        self.h.login("dave")
        self.assertEqual(self.alice.lines(), [])
        self.assertEqual(self.alice.command("WHO"), ["OK|WHO|alice|bob|carol|dave"])
        self.assertEqual(self.alice.command("WHOIS|dave"), ["OK|WHOIS|dave|online|-|Dave"])

    def test_limit_zero_turns_presence_off(self):
        """--presence-room-limit 0: no ON or OFF even in a room of two."""
        h = Harness(presence_room_limit=0)
        alice, bob = h.users("alice", "bob")
        alice.command("JOIN|#pair")
        bob.command("JOIN|#pair")
        h.clear_all()
        bob.disconnect()
        h.settle()
        h.login("bob")
        self.assertEqual(alice.lines(), [])
        self.assertEqual(alice.command("WHO"), ["OK|WHO|alice|bob"])

    def test_the_default_limit_is_200(self):
        """Without the option, rooms of up to 200 members carry presence."""
        self.assertEqual(Harness().config.presence_room_limit, 200)
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["server-config"].presence_room_limit, 200)
        self.assertIn("--presence-room-limit", str(options))


class PresenceAudienceTests(SynchronousTestCase):
    """The room directory's side of the rule, at the sizes of a big server."""

    def test_general_of_ten_thousand_is_not_walked_for_presence(self):
        """Everyone in a #general of 10,000 and two in a small room: the
        audience is the one small-room neighbour."""
        directory = RoomDirectory({"#general": {f"u{n}" for n in range(10_000)}})
        directory.add("#small", "u1")
        directory.add("#small", "u2")
        self.assertEqual(directory.presence_audience("u1", 200), {"u2"})
        self.assertEqual(directory.presence_audience("u3", 200), set())
        self.assertEqual(len(directory.presence_audience("u3", 10_000)), 9_999)


class LastSeenTests(SynchronousTestCase):
    """WHOIS's last_seen, recorded at each disconnect, one write at a time."""

    def setUp(self):
        self.h = Harness()
        self.alice, self.bob, self.carol, self.dave = self.h.users("alice", "bob", "carol", "dave")
        self.writes: list[tuple[list[str], float, Deferred]] = []
        store_write = self.h.store.set_last_seen

        def held_write(usernames, when):
            d: Deferred = Deferred()
            self.writes.append((sorted(usernames), when, d))
            d.addCallback(lambda _: store_write(usernames, when))
            return d

        self.h.store.set_last_seen = held_write

    def leave(self, client):
        client.disconnect()
        self.h.settle()

    def test_disconnects_during_a_write_are_written_together_after_it(self):
        """A reconnect storm costs a write per group, not per user: who goes
        offline while a last-seen write is under way is written in the next,
        all together."""
        self.leave(self.bob)
        self.h.advance(1)
        self.leave(self.carol)
        self.h.advance(1)
        self.leave(self.dave)
        self.assertEqual([users for users, _, _ in self.writes], [["bob"]])
        self.writes[0][2].callback(None)
        self.assertEqual([users for users, _, _ in self.writes], [["bob"], ["carol", "dave"]])
        self.assertEqual(self.writes[1][1], self.h.now())

    def test_whois_tells_a_disconnect_not_written_yet(self):
        """WHOIS answers with the time of the last disconnect even while its
        write waits behind another."""
        self.leave(self.bob)
        self.h.advance(5)
        self.leave(self.carol)
        expected = f"OK|WHOIS|carol|offline|{timestamp(self.h.now())}|Carol"
        self.alice.clear()  # OFF|bob, OFF|carol
        self.assertEqual(self.alice.command("WHOIS|carol"), [expected])
        self.writes[0][2].callback(None)
        self.writes[1][2].callback(None)
        self.assertEqual(self.alice.command("WHOIS|carol"), [expected])
