"""What the service needs from storage, independent of the database.

:class:`IMessageStore` is implemented once, by
:class:`messenger.store.database.DatabaseStore`, on SQLite or PostgreSQL
(:mod:`messenger.store.engines`): both run the synchronous ``*_txn``
functions of :mod:`messenger.store.txns` through adbapi.  Times are seconds
since the epoch, as floats.

The records made once or more per message (NewMessage, StoredMessage,
AckResult, Receipt) are named tuples: as immutable as frozen dataclasses,
and made in about a third of the time (a frozen dataclass sets each field
through ``object.__setattr__``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from twisted.internet.defer import Deferred
from zope.interface import Interface


@dataclass(frozen=True, slots=True)
class UserRecord:
    username: str
    password_hash: str
    display_name: str
    created_at: float
    last_seen: float | None
    pending_count: int


@dataclass(frozen=True, slots=True)
class LoginRecord:
    """What a login needs, read in one go: the account and its rooms
    (another program, say messenger-admin, may have changed them) and, when
    asked for, the first page of its pending messages and its pending
    receipts, read in the same transaction."""

    user: UserRecord
    rooms: frozenset[str]
    #: The oldest pending direct messages (at most the page asked for), or
    #: None when not asked for.
    pending: Sequence[StoredMessage] | None = None
    #: Receipts not yet handed to the user, or None when not asked for.
    receipts: Sequence[Receipt] | None = None


class NewMessage(NamedTuple):
    """A message to store.  Exactly one of ``recipient`` and ``room`` is set."""

    sender: str
    recipient: str | None
    room: str | None
    body: str
    client_id: str | None = None


class MessageRejected(enum.Enum):
    """Why a message of a batch was not stored."""

    NO_SUCH_USER = "no such user"
    NO_SUCH_ROOM = "no such room"
    NOT_A_MEMBER = "not a member"
    MAILBOX_FULL = "mailbox full"


class StoredMessage(NamedTuple):
    msgid: int
    sender: str
    recipient: str | None
    room: str | None
    body: str
    created_at: float
    #: True when a SEND reused a client_id: this is the earlier message and
    #: nothing new was stored.
    duplicate: bool = False


class AckResult(NamedTuple):
    """A direct message newly acknowledged by its recipient."""

    msgid: int
    sender: str
    recipient: str
    delivered_at: float


class Receipt(NamedTuple):
    """A delivery receipt the sender has not been handed yet."""

    msgid: int
    recipient: str
    delivered_at: float


@dataclass(frozen=True, slots=True)
class BatchResult:
    #: One entry per message of the batch, in order.
    messages: Sequence[StoredMessage | MessageRejected]
    #: One entry per ack of the batch: None when it changed nothing.
    acks: Sequence[AckResult | None]


class StorageUnavailable(Exception):
    """The database is away (PostgreSQL stopped or unreachable).

    Nothing of the call was committed that anyone was told about; the store
    reconnects by itself, so a later call may succeed.
    """


class IMessageStore(Interface):
    """Durable state of a Messenger service.

    Every method but :meth:`close` returns a Deferred.  What the layers
    above may rely on:

    1. **After commit.**  A Deferred fires only once its transaction has
       committed durably; it fails with :class:`StorageUnavailable` when the
       database is away, with another exception on a bug.
    2. **Submission order, for now.**  Calls on one store object run one
       after another, in the order they were made, and fire in that order
       (one connection on either engine).  Layers above should not need
       this: with several nodes, another node's commits interleave anyway.
    3. **Ids.**  Message ids are unique and increase in the order the
       messages were committed, across every node on the same database
       (batches commit under one write lock and allocate their ids under
       it).  So a reader paging :meth:`pending_messages` or :meth:`history`
       by id never skips a message committed later with a lower id.
    4. **Batches.**  :meth:`commit_batch` is one transaction: everything in
       it is durable, or nothing is.  Its outcomes are those of handling its
       messages in order, then its acks, then its receipt marks.
    5. **Oldest first.**  Lists of messages and receipts are in id order.
    """

    def open() -> Deferred[int]:
        """Create or upgrade the schema.  Fires with its version when ready."""

    def close() -> None:
        """Release the database (synchronous: returns nothing)."""

    # accounts

    def create_user(
        username: str, password_hash: str, display_name: str, now: float
    ) -> Deferred[bool]:
        """Create an account, a member of #general.  Fires with False if taken."""

    def get_user(username: str) -> Deferred[UserRecord | None]:
        """Fires with a UserRecord, or None."""

    def set_display_name(username: str, display_name: str) -> Deferred[None]:
        """Change the display name."""

    def set_password_hash(username: str, password_hash: str) -> Deferred[None]:
        """Change the password hash and revoke every session token."""

    def set_last_seen(usernames: Sequence[str], when: float) -> Deferred[None]:
        """Record the time these users were last seen online (one write
        for all of them: a server stopping has thousands)."""

    def add_token(username: str, token_hash: str, expires_at: float) -> Deferred[None]:
        """Store a session token's hash."""

    def login_record(username: str, pending_page: int = 0) -> Deferred[LoginRecord | None]:
        """Fires with the LoginRecord of ``username``, or None if there is
        no such account.  With ``pending_page`` above 0 the record also
        holds that many of the user's oldest pending messages and all its
        pending receipts, read in the same transaction: one round trip for
        everything a login needs."""

    def resume_record(
        username: str, token_hash: str, now: float, pending_page: int = 0
    ) -> Deferred[LoginRecord | None]:
        """Fires with the LoginRecord of ``username`` (as
        :meth:`login_record`) if the token is the user's and has not
        expired, else None: one round trip per RESUME."""

    # messages

    def commit_batch(
        messages: Sequence[NewMessage],
        acks: Sequence[tuple[str, int]],
        receipts_sent: Sequence[int],
        now: float,
        max_pending: int,
    ) -> Deferred[BatchResult]:
        """Store messages, record acks and handed-over receipts in one
        durable transaction.

        ``messages`` is a sequence of NewMessage, ``acks`` of
        ``(recipient, msgid)`` pairs, ``receipts_sent`` of message ids whose
        DLV the sender has been given.  A SEND whose client_id the sender
        used in the last 24 hours yields the earlier message, marked
        duplicate, before any other check.  A direct message is rejected
        when its recipient does not exist or already has ``max_pending``
        unacknowledged messages; a room message when the room does not
        exist or the sender is not a member.
        Fires with a BatchResult once committed.
        """

    def pending_messages(
        recipient: str, after_id: int, limit: int
    ) -> Deferred[list[StoredMessage]]:
        """Unacknowledged direct messages for ``recipient`` with an id above
        ``after_id``, oldest first: a list of StoredMessage."""

    def pending_receipts(sender: str) -> Deferred[list[Receipt]]:
        """Receipts not yet handed to ``sender``, oldest first."""

    def history(
        conversation: str, limit: int, direction: str | None, cursor: int | None
    ) -> Deferred[list[StoredMessage]]:
        """Messages of a conversation (see :func:`conversation_key`), oldest
        first.  ``direction`` None: the newest ``limit``; ``"before"``: the
        newest ``limit`` older than ``cursor``; ``"after"``: the oldest
        ``limit`` newer than ``cursor``."""

    # rooms

    def count_waiting() -> Deferred[int]:
        """Fires with the number of unacknowledged direct messages stored."""

    def load_memberships() -> Deferred[dict[str, set[str]]]:
        """Fires with a dict: room name -> set of member usernames."""

    def join_room(room: str, username: str, now: float) -> Deferred[bool]:
        """Create the room if needed and add the member.  Fires with True if
        the user was not a member before."""

    def part_room(room: str, username: str) -> Deferred[bool]:
        """Remove the member.  Fires with True if the user was a member."""

    # changes made outside the nodes

    def last_change() -> Deferred[int]:
        """Fires with the id of the latest change another program (say
        messenger-admin) noted, 0 if none: when it moves, what nodes hold
        in memory (memberships) must be re-read."""

    # catching up after a lost bus message

    def last_message_id() -> Deferred[int]:
        """Fires with the newest message id, 0 if none."""

    def room_messages_since(after_id: int, limit: int) -> Deferred[list[StoredMessage]]:
        """Room messages with an id above ``after_id``, oldest first, at
        most ``limit``: a list of StoredMessage."""


def conversation_key(user_or_room: str, other: str | None = None) -> str:
    """The key under which a conversation's messages are kept.

    A room is its own key; a direct conversation is the pair of usernames in
    order, so both directions share one history.
    """
    if other is None:
        return user_or_room
    first, second = sorted((user_or_room, other))
    return f"dm:{first}:{second}"
