"""Who is in which room, kept in memory for routing.

The store holds the truth; this is its copy, loaded at start and updated as
JOIN and PART are committed, so that routing a room message needs no query.
"""

from __future__ import annotations

from sys import intern


class RoomDirectory:
    """Usernames are kept interned: a session logging in interns the name
    it read from the store and so holds this directory's string, not a
    copy of its own (some 50 bytes per connection)."""

    def __init__(self, memberships: dict[str, set[str]]) -> None:
        self._members: dict[str, set[str]] = {
            room: {intern(user) for user in m} for room, m in memberships.items()
        }
        self._rooms_of: dict[str, set[str]] = {}
        for room, members in self._members.items():
            for user in members:
                self._rooms_of.setdefault(user, set()).add(room)

    def exists(self, room: str) -> bool:
        return room in self._members

    def members(self, room: str) -> set[str]:
        return self._members.get(room, set())

    def is_member(self, room: str, user: str) -> bool:
        return user in self._members.get(room, ())

    def rooms_of(self, user: str) -> set[str]:
        return self._rooms_of.get(user, set())

    def add(self, room: str, user: str) -> None:
        user = intern(user)
        self._members.setdefault(room, set()).add(user)
        self._rooms_of.setdefault(user, set()).add(room)

    def remove(self, room: str, user: str) -> None:
        self._members.get(room, set()).discard(user)
        self._rooms_of.get(user, set()).discard(room)

    def set_rooms_of(self, user: str, rooms: set[str]) -> None:
        """Replace what is known of ``user``'s rooms (from the store, which
        other programs such as messenger-admin may have changed)."""
        for room in self.rooms_of(user) - rooms:
            self.remove(room, user)
        for room in rooms:
            self.add(room, user)

    def presence_audience(self, user: str, room_limit: int) -> set[str]:
        """Everyone but ``user`` who shares with ``user`` a room of at most
        ``room_limit`` members: those who hear of ``user``'s ON and OFF.

        Larger rooms carry no presence (docs/protocol.md, "Presence"), so the
        work is bounded by ``room_limit`` times the rooms of one user, not by
        the size of #general.
        """
        found: set[str] = set()
        for room in self.rooms_of(user):
            members = self._members[room]
            if len(members) <= room_limit:
                found.update(members)
        found.discard(user)
        return found
