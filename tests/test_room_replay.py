"""messenger.bus.replay: which room messages a node re-tells after a loss."""

from twisted.trial.unittest import SynchronousTestCase

from messenger.bus.replay import RoomReplay


class RoomReplayTests(SynchronousTestCase):
    def test_messages_before_the_node_started_are_never_replayed(self):
        """The first sample sets the cursor: older messages are history."""
        replay = RoomReplay(lag=15)
        replay.sample(0, 40)
        self.assertEqual(replay.cursor, 40)

    def test_seen_messages_are_not_replayed(self):
        """Of the messages read above the cursor, only the unseen are told."""
        replay = RoomReplay(lag=15)
        replay.sample(0, 0)
        replay.seen(1)
        replay.seen(3)
        self.assertEqual(replay.missed([1, 2, 3, 4]), [2, 4])
        self.assertEqual(replay.missed([1, 2, 3, 4]), [])

    def test_cursor_trails_the_newest_id_by_the_lag(self):
        """The cursor moves to ids sampled at least ``lag`` seconds ago."""
        replay = RoomReplay(lag=15)
        replay.sample(0, 0)
        replay.sample(2, 10)
        replay.sample(10, 20)
        self.assertEqual(replay.cursor, 0)
        replay.sample(17, 30)
        self.assertEqual(replay.cursor, 10)
        replay.sample(25, 30)
        self.assertEqual(replay.cursor, 20)

    def test_ids_at_or_below_the_cursor_are_forgotten(self):
        """What is remembered as seen stays bounded by the lag."""
        replay = RoomReplay(lag=15)
        replay.sample(0, 0)
        replay.seen(5)
        replay.seen(12)
        replay.sample(1, 10)
        replay.sample(16, 10)
        self.assertEqual(replay._seen, {12})

    def test_bus_message_already_replayed_is_not_told_again(self):
        """A room message re-read from the store, then brought late by the
        bus, is told once."""
        replay = RoomReplay(lag=15)
        replay.sample(0, 0)
        self.assertEqual(replay.missed([7]), [7])
        self.assertFalse(replay.first_time(7))
        self.assertTrue(replay.first_time(8))
        self.assertFalse(replay.first_time(8))
