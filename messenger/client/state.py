"""What the client remembers across connections, without any I/O.

A connection comes and goes; this state stays for the life of the process:
the conversation in focus and the unread counts, the message ids already
shown (so a redelivered ``R`` or a catch-up ``HISTORY`` line is never shown
twice), the newest message id seen in each room (where catching up starts
after a reconnect), and the display names learned so far.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from messenger import wire

T = TypeVar("T")


class SeenIds:
    """The message ids already handled, forgetting the oldest past ``capacity``.

    Message ids are unique across the service, so one set serves direct
    messages and rooms alike.  The bound keeps a client that runs for months
    from growing without limit; a redelivery is never that far behind.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: set[int] = set()
        self._order: deque[int] = deque()

    def __contains__(self, msgid: object) -> bool:
        return msgid in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, msgid: int) -> bool:
        """Remember ``msgid``; True if it was new."""
        if msgid in self._ids:
            return False
        self._ids.add(msgid)
        self._order.append(msgid)
        if len(self._order) > self.capacity:
            self._ids.discard(self._order.popleft())
        return True


class DisplayQueue(Generic[T]):
    """Things to show, in arrival order, some waiting for a display name.

    A message from someone whose display name is not known yet waits until
    it is (or the lookup fails); everything that arrived after it waits too,
    so the screen keeps the order in which the server sent things.
    """

    def __init__(self) -> None:
        self._items: deque[tuple[str | None, T]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return (item for _, item in self._items)

    def add(self, item: T, waits_for: str | None = None) -> None:
        """Queue ``item``; ``waits_for`` is a user name it needs, if any."""
        self._items.append((waits_for, item))

    def release(self, known: Callable[[str], bool]) -> list[T]:
        """Take the items at the front whose names are known, in order."""
        ready = []
        while self._items and (self._items[0][0] is None or known(self._items[0][0])):
            ready.append(self._items.popleft()[1])
        return ready

    def release_all(self) -> list[T]:
        ready = [item for _, item in self._items]
        self._items.clear()
        return ready


class ClientState:
    """The user's view of the service, kept across reconnects."""

    def __init__(self, focus: str = wire.GENERAL_ROOM) -> None:
        #: Canonical user name once logged in.
        self.username: str | None = None
        self.display_name: str | None = None
        #: Where plain lines go: a room or a user name.
        self.focus: str = focus
        #: Rooms we are a member of, in the order we learned them.
        self.rooms: dict[str, None] = {}
        #: Conversation (room or user name) -> messages shown while out of focus.
        self.unread: OrderedDict[str, int] = OrderedDict()
        self.seen = SeenIds()
        #: Room -> the newest message id seen there (where a catch-up starts).
        self.last_seen: dict[str, int] = {}
        #: User name -> display name, or None when looked up and not found.
        self.display_names: dict[str, str | None] = {}

    # Focus and unread counts

    def set_focus(self, target: str) -> None:
        self.focus = target
        self.unread.pop(target, None)

    def is_focused(self, conversation: str) -> bool:
        return conversation == self.focus

    def count_unread(self, conversation: str) -> bool:
        """Note one message shown for ``conversation``; True if it is in focus."""
        if self.is_focused(conversation):
            return True
        self.unread[conversation] = self.unread.get(conversation, 0) + 1
        return False

    # Rooms

    def set_rooms(self, rooms: list[str]) -> None:
        self.rooms = dict.fromkeys(rooms)

    def join(self, room: str) -> None:
        self.rooms[room] = None

    def part(self, room: str) -> None:
        self.rooms.pop(room, None)
        self.last_seen.pop(room, None)
        self.unread.pop(room, None)
        if self.focus == room:
            self.focus = wire.GENERAL_ROOM

    def note_room_message(self, room: str, msgid: int) -> None:
        """Remember the newest id seen in ``room``."""
        if msgid > self.last_seen.get(room, 0):
            self.last_seen[room] = msgid

    # Names

    def knows_name(self, username: str) -> bool:
        return username in self.display_names

    def name_of(self, username: str) -> str | None:
        return self.display_names.get(username)

    def learn_name(self, username: str, display_name: str | None) -> None:
        self.display_names[username] = display_name
