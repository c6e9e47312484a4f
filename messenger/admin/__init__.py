"""``messenger-admin``: manage a Messenger database from the command line.

The command line itself is in :mod:`messenger.admin.__main__`; opening the
database is :mod:`messenger.admin.database`; the JSON import and export
format is :mod:`messenger.admin.transfer`.  The SQL is in
:mod:`messenger.store.admin_txns`.  See docs/admin.md.
"""


class AdminError(Exception):
    """Something the operator must be told about; the command exits non-zero.

    ``str(error)`` is the complete message, meant for a person.
    """

    exit_code = 1
