"""Storage: an interface (``IMessageStore``) and its implementations.

Nothing above this package knows SQL, and nothing in it knows the wire
format.
"""

from messenger.store.interface import (
    AckResult,
    BatchResult,
    IMessageStore,
    MessageRejected,
    NewMessage,
    Receipt,
    StoredMessage,
    UserRecord,
)

__all__ = [
    "AckResult",
    "BatchResult",
    "IMessageStore",
    "MessageRejected",
    "NewMessage",
    "Receipt",
    "StoredMessage",
    "UserRecord",
]
