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
)
from messenger.admin.transfer.checking import (
    FORMAT_VERSION as FORMAT_VERSION,
)
from messenger.admin.transfer.checking import (
    FileFormatError as FileFormatError,
)
from messenger.admin.transfer.checking import (
    ImportData as ImportData,
)
from messenger.admin.transfer.checking import (
    ImportRoom as ImportRoom,
)
from messenger.admin.transfer.checking import (
    ImportUser as ImportUser,
)
from messenger.admin.transfer.checking import (
    load as load,
)
from messenger.admin.transfer.checking import (
    parse as parse,
)
from messenger.admin.transfer.exporting import (
    ExportReport as ExportReport,
)
from messenger.admin.transfer.exporting import (
    export_counts_txn as export_counts_txn,
)
from messenger.admin.transfer.exporting import (
    write_export_txn as write_export_txn,
)
from messenger.admin.transfer.importing import (
    ON_CONFLICT as ON_CONFLICT,
)
from messenger.admin.transfer.importing import (
    ImportConflict as ImportConflict,
)
from messenger.admin.transfer.importing import (
    ImportRejected as ImportRejected,
)
from messenger.admin.transfer.importing import (
    ImportReport as ImportReport,
)
from messenger.admin.transfer.importing import (
    apply_import_txn as apply_import_txn,
)
from messenger.admin.transfer.importing import (
    hash_passwords as hash_passwords,
)
