"""The message bus: how the nodes of one deployment wake each other.

The database is the truth; the bus only carries news of it (a batch was
committed, a user came online, joined a room, ...), so a node that misses
some re-reads the database.  :mod:`messenger.bus.interface` is the seam,
:mod:`messenger.bus.local` the in-process implementations (one node alone,
or several in one process for tests), :mod:`messenger.bus.redis` the one for
a real cluster, and :mod:`messenger.bus.peers` what every node keeps about
the others (sequence numbers, liveness, who is online where).
"""

from messenger.bus.interface import IBus, IBusListener

__all__ = ["IBus", "IBusListener"]
