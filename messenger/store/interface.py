"""What the service needs from storage, independent of the database.

Every method returns a Deferred.  The SQLite implementation runs the
synchronous ``*_txn`` functions of :mod:`messenger.store.txns` through
adbapi; a PostgreSQL implementation can run the same functions through its
own pool.  Times are seconds since the epoch, as floats.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

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
    (another program, say messenger-admin, may have changed them)."""

    user: UserRecord
    rooms: frozenset[str]


@dataclass(frozen=True, slots=True)
class NewMessage:
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


@dataclass(frozen=True, slots=True)
class StoredMessage:
    msgid: int
    sender: str
    recipient: str | None
    room: str | None
    body: str
    created_at: float
    #: True when a SEND reused a client_id: this is the earlier message and
    #: nothing new was stored.
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class AckResult:
    """A direct message newly acknowledged by its recipient."""

    msgid: int
    sender: str
    recipient: str
    delivered_at: float


@dataclass(frozen=True, slots=True)
class Receipt:
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


class IMessageStore(Interface):
    """Durable state of a Messenger service."""

    def open():
        """Create or upgrade the schema.  Fires when ready."""

    def close():
        """Finish pending work and release the database."""

    # accounts

    def create_user(username, password_hash, display_name, now):
        """Create an account, a member of #general.  Fires with False if taken."""

    def get_user(username):
        """Fires with a UserRecord, or None."""

    def set_display_name(username, display_name):
        """Change the display name."""

    def set_password_hash(username, password_hash):
        """Change the password hash and revoke every session token."""

    def set_last_seen(usernames, when):
        """Record the time these users were last seen online (one write
        for all of them: a server stopping has thousands)."""

    def add_token(username, token_hash, expires_at):
        """Store a session token's hash."""

    def login_record(username):
        """Fires with the LoginRecord of ``username``, or None if there is
        no such account."""

    def resume_record(username, token_hash, now):
        """Fires with the LoginRecord of ``username`` if the token is the
        user's and has not expired, else None: one round trip per RESUME."""

    # messages

    def commit_batch(messages, acks, receipts_sent, now, max_pending):
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

    def pending_messages(recipient, after_id, limit):
        """Unacknowledged direct messages for ``recipient`` with an id above
        ``after_id``, oldest first: a list of StoredMessage."""

    def pending_receipts(sender):
        """Receipts not yet handed to ``sender``, oldest first."""

    def history(conversation, limit, direction, cursor):
        """Messages of a conversation (see :func:`conversation_key`), oldest
        first.  ``direction`` None: the newest ``limit``; ``"before"``: the
        newest ``limit`` older than ``cursor``; ``"after"``: the oldest
        ``limit`` newer than ``cursor``."""

    # rooms

    def count_waiting():
        """Fires with the number of unacknowledged direct messages stored."""

    def load_memberships():
        """Fires with a dict: room name -> set of member usernames."""

    def join_room(room, username, now):
        """Create the room if needed and add the member.  Fires with True if
        the user was not a member before."""

    def part_room(room, username):
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
