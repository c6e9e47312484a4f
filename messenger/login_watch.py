"""Whether a login's one store read still tells the whole story.

A LOGIN or RESUME reads the account, its rooms, the first page of its
pending messages and its pending receipts in one store call, before ``OK``.
Direct messages and receipts are pushed to a session only once it is
delivering (after ``OK``); one committed after that read but pushed before
delivery starts would be in neither.  So while a login's read and its
``OK`` are outstanding, every push meant for its user is counted here, and
so is every ACK the user sends (an ACK not yet committed leaves its message
reading as pending; the read is not made to wait for the group commit): a
login that saw none may use what it read; one that saw any reads the store
again, as a login without that read would (rare: it needs traffic for the
user in those few milliseconds).
"""

from __future__ import annotations


class LoginWatch:
    """One login's watch over its user's pushes (see :class:`LoginWatches`)."""

    __slots__ = ("user", "_entry", "_start", "ended")

    def __init__(self, user: str, entry: list[int]) -> None:
        self.user = user
        self._entry = entry
        self._start = entry[1]
        self.ended = False

    @property
    def undisturbed(self) -> bool:
        """No push for the user since the watch began."""
        return self._entry[1] == self._start


class LoginWatches:
    """Per user: [logins watching, pushes counted while any watches]."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, list[int]] = {}

    def __bool__(self) -> bool:
        return bool(self._entries)

    def begin(self, user: str) -> LoginWatch:
        entry = self._entries.get(user)
        if entry is None:
            entry = self._entries[user] = [0, 0]
        entry[0] += 1
        return LoginWatch(user, entry)

    def end(self, watch: LoginWatch) -> bool:
        """Stop watching; True if nothing was pushed to the user meanwhile.
        Ending a watch twice is harmless (and says False)."""
        if watch.ended:
            return False
        watch.ended = True
        undisturbed = watch.undisturbed
        entry = self._entries.get(watch.user)
        if entry is not None:
            entry[0] -= 1
            if entry[0] <= 0:
                del self._entries[watch.user]
        return undisturbed

    def pushed(self, user: str | None) -> None:
        """A direct message or receipt for ``user`` is being pushed."""
        entry = self._entries.get(user) if user is not None else None
        if entry is not None:
            entry[1] += 1

    def disturb_all(self) -> None:
        """Something may have been missed for anyone (a lost bus message)."""
        for entry in self._entries.values():
            entry[1] += 1
