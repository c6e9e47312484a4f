"""Room memberships held in memory, kept in step with the database.

The service answers MEMBERS and fans out room lines from a
:class:`~messenger.rooms.RoomDirectory` in memory.  Other programs change
memberships behind its back: messenger-admin (new accounts, imported rooms,
memberships) and, in a cluster, a bus message that was lost.  Every such
writer adds a row to the store's change log, so one cheap read every
``CHANGE_POLL`` seconds tells whether the directory must be read again,
on a node that works alone as on one of many.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import task
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from messenger.rooms import RoomDirectory
from messenger.store.interface import IMessageStore

if TYPE_CHECKING:
    from messenger.service import MessengerService

#: How often the change log is looked at, in seconds.
CHANGE_POLL = 2.0


class MembershipMirror:
    """Re-reads the service's room directory when the change log moves."""

    log = Logger()

    def __init__(
        self, service: MessengerService, store: IMessageStore, clock: IReactorTime
    ) -> None:
        self.service = service
        self.store = store
        self.clock = clock
        self._last_change: int | None = None
        self._poller: task.LoopingCall | None = None
        #: Membership changes made while the directory is re-read, applied
        #: again to what the read returns (it may predate them).
        self._changes_during_reload: list[tuple[bool, str, str]] | None = None
        self._reload_again = False

    def position(self, last: int) -> None:
        """Where the change log stood before the memberships were first
        read: a change made after it is re-read at the next poll, not
        missed."""
        self._last_change = last

    def start(self) -> None:
        self._poller = task.LoopingCall(self.poll)
        self._poller.clock = self.clock
        self._poller.start(CHANGE_POLL, now=False)

    def stop(self) -> None:
        if self._poller is not None and self._poller.running:
            self._poller.stop()

    def changed(self, joined: bool, room: str, user: str) -> None:
        """The service changed its directory (a JOIN or PART committed)."""
        if self._changes_during_reload is not None:
            self._changes_during_reload.append((joined, room, user))

    def poll(self) -> Deferred[Any]:
        """Re-read the memberships if the change log moved (one cheap read)."""

        def compare(last: int) -> Deferred[Any] | None:
            seen, self._last_change = self._last_change, last
            if seen is not None and last != seen:
                self.log.info("the database changed outside this node: re-reading memberships")
                return self.reload()
            return None

        d = self.store.last_change()
        d.addCallback(compare)
        d.addErrback(lambda f: self.log.failure("reading the change log failed", f))
        return d

    def reload(self) -> Deferred[Any]:
        """Read every membership again and make it the service's directory.
        One read at a time; one more if asked for meanwhile."""
        if self._changes_during_reload is not None:
            self._reload_again = True  # after the one under way
            return succeed(None)
        self._changes_during_reload = []

        def loaded(memberships: dict[str, set[str]]) -> None:
            rooms = RoomDirectory(memberships)
            for joined, room, user in self._changes_during_reload or ():
                if joined:
                    rooms.add(room, user)
                else:
                    rooms.remove(room, user)
            self.service.rooms = rooms

        def done(result: object) -> None:
            self._changes_during_reload = None
            if self._reload_again:
                self._reload_again = False
                self.reload()

        d = self.store.load_memberships()
        d.addCallback(loaded)
        d.addErrback(lambda f: self.log.failure("re-reading memberships failed", f))
        d.addBoth(done)
        return d
