"""Room messages a node may have missed on the bus, found in the store.

A direct message is owed to one recipient and re-read by its delivery
queue.  A room message is pushed once to whoever is online; when the bus
loses one, the node re-reads the room messages newer than a *cursor* and
fans out those it has not seen.  The cursor trails the newest id by
``LAG`` seconds: a loss is noticed (a sequence gap, a reconnection) well
within that, so what it lost is still above the cursor; ids seen above the
cursor are remembered so that nothing is told twice.
"""

from __future__ import annotations

from collections import deque

#: How far behind the newest id the cursor stays, in seconds: more than a
#: dead node takes to be noticed (messenger.bus.peers.EXPIRY + 1 s), since
#: the wake-up of its last commit dies with it.
LAG = 30.0


class RoomReplay:
    def __init__(self, lag: float = LAG) -> None:
        self.lag = lag
        self.cursor: int | None = None
        self._seen: set[int] = set()
        self._samples: deque[tuple[float, int]] = deque()

    def seen(self, msgid: int) -> None:
        """A room message this node fanned out (its own, or from the bus)."""
        if self.cursor is not None and msgid > self.cursor:
            self._seen.add(msgid)

    def first_time(self, msgid: int) -> bool:
        """A room message from the bus: False if it was told already (it
        was re-read from the store before the bus brought it)."""
        if msgid in self._seen:
            return False
        self.seen(msgid)
        return True

    def sample(self, now: float, last_id: int) -> None:
        """The newest id in the store at ``now``: moves the cursor up to the
        newest sample at least ``lag`` old."""
        if self.cursor is None:
            self.cursor = last_id  # what came before this node started is history
            return
        self._samples.append((now, last_id))
        moved = False
        while self._samples and now - self._samples[0][0] >= self.lag:
            _, last = self._samples.popleft()
            if last > self.cursor:
                self.cursor = last
                moved = True
        if moved:
            cursor = self.cursor
            self._seen = {i for i in self._seen if i > cursor}

    def missed(self, msgids: list[int]) -> list[int]:
        """Of these room message ids (read above the cursor), those never
        seen; they count as seen from now on."""
        new = [i for i in msgids if i not in self._seen]
        self._seen.update(new)
        return new
