"""The client's remembered state: seen ids, display order, focus and unread."""

from twisted.trial import unittest

from messenger.client.state import ClientState, DisplayQueue, SeenIds


class SeenIdsTests(unittest.TestCase):
    def test_add_reports_new_ids_once(self):
        """add() is True the first time an id is seen, False after."""
        seen = SeenIds()
        self.assertTrue(seen.add(41))
        self.assertFalse(seen.add(41))
        self.assertIn(41, seen)

    def test_oldest_forgotten_past_capacity(self):
        """The set is bounded: the oldest ids are forgotten first."""
        seen = SeenIds(capacity=3)
        for msgid in (1, 2, 3, 4):
            seen.add(msgid)
        self.assertNotIn(1, seen)
        self.assertEqual(len(seen), 3)
        self.assertIn(4, seen)


class DisplayQueueTests(unittest.TestCase):
    def test_items_without_names_pass_at_once(self):
        """Nothing waits when no name is needed."""
        queue = DisplayQueue()
        queue.add("a")
        self.assertEqual(queue.release(lambda name: False), ["a"])

    def test_everything_waits_behind_an_unknown_name(self):
        """Order is kept: items after one waiting for a name wait too."""
        queue = DisplayQueue()
        queue.add("from bob", waits_for="bob")
        queue.add("event")
        self.assertEqual(queue.release(lambda name: False), [])
        self.assertEqual(queue.release(lambda name: name == "bob"), ["from bob", "event"])

    def test_release_all(self):
        """release_all empties the queue whatever is known."""
        queue = DisplayQueue()
        queue.add("x", waits_for="bob")
        self.assertEqual(queue.release_all(), ["x"])
        self.assertEqual(len(queue), 0)


class ClientStateTests(unittest.TestCase):
    def test_focus_starts_in_general(self):
        """Plain lines go to #general until the focus moves."""
        self.assertEqual(ClientState().focus, "#general")

    def test_unread_counted_out_of_focus_only(self):
        """Messages for the focus are not unread; others are counted."""
        state = ClientState()
        self.assertTrue(state.count_unread("#general"))
        self.assertFalse(state.count_unread("bob"))
        self.assertFalse(state.count_unread("bob"))
        self.assertEqual(dict(state.unread), {"bob": 2})

    def test_focus_clears_unread(self):
        """Moving the focus to a conversation clears its count."""
        state = ClientState()
        state.count_unread("bob")
        state.set_focus("bob")
        self.assertEqual(dict(state.unread), {})

    def test_last_seen_only_grows(self):
        """The newest id per room never goes back."""
        state = ClientState()
        state.note_room_message("#dev", 9)
        state.note_room_message("#dev", 7)
        self.assertEqual(state.last_seen["#dev"], 9)

    def test_part_forgets_the_room_and_moves_focus(self):
        """Leaving the room in focus moves the focus to #general."""
        state = ClientState()
        state.join("#dev")
        state.set_focus("#dev")
        state.note_room_message("#dev", 3)
        state.part("#dev")
        self.assertNotIn("#dev", state.rooms)
        self.assertNotIn("#dev", state.last_seen)
        self.assertEqual(state.focus, "#general")
