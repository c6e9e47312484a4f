"""The JSON import and export format of ``messenger-admin``.

Two layouts are read (docs/admin.md describes both):

* Messenger's own export: an object with ``"format": "messenger-export"``,
  ``"version": 1``, ``users`` (with Argon2 password hashes, never clear
  text), ``rooms`` with their members and, optionally, ``messages``.
* The layout of the older messenger this project replaces: an object with a
  ``user_list`` of ``{"_User__username", "_User__password", "_User__email"}``
  (the password in clear text: it is hashed here) and empty
  ``message_list`` and ``notification_list``.

Reading a file (:func:`load`, in :mod:`.checking`) checks everything that can be checked without
the database and names the entry that is wrong; :func:`apply_import_txn` (in
:mod:`.importing`) then does the whole import inside the caller's single transaction, so an
import happens completely or not at all.  Nothing here writes SQL: it calls
the ``*_txn`` functions of :mod:`messenger.store.admin_txns`.
"""

from messenger.admin.transfer.checking import (
    FORMAT_NAME as FORMAT_NAME,
    FORMAT_VERSION as FORMAT_VERSION,
    FileFormatError as FileFormatError,
    ImportData as ImportData,
    ImportRoom as ImportRoom,
    ImportUser as ImportUser,
    load as load,
    parse as parse,
)
from messenger.admin.transfer.exporting import (
    ExportReport as ExportReport,
    export_counts_txn as export_counts_txn,
    write_export_txn as write_export_txn,
)
from messenger.admin.transfer.importing import (
    ON_CONFLICT as ON_CONFLICT,
    ImportConflict as ImportConflict,
    ImportRejected as ImportRejected,
    ImportReport as ImportReport,
    apply_import_txn as apply_import_txn,
    hash_passwords as hash_passwords,
)
