"""secureai.restore: restore PostgreSQL plain-format pg_dump backups, verified and atomically.

The engine runs inside this process (a Rust extension, ``secureai.restore._native``); the
classes here are its Python surface::

    from secureai.restore import RestoreClient, RestoreOptions

    client = RestoreClient(api_key="…")
    restore = client.create_restore("backup_20240101_120000.sql.gz", "restored_db",
                                    options=RestoreOptions(verify=True, parallel_workers=4))
    status = restore.wait_for_completion()

Engine log events go to the ``secureai.restore`` logger.
"""

from ._native import __version__
from .client import Restore, RestoreClient
from .errors import (
    BackupNotFoundError,
    DatabaseExistsError,
    InsufficientSpaceError,
    InvalidRequestError,
    RateLimitExceededError,
    RestoreError,
    RestoreFailedError,
)
from .models import (
    Backup,
    BackupList,
    RestoreOptions,
    RestoreStatus,
    RestoreSummary,
    StatementError,
)

__all__ = [
    "Backup",
    "BackupList",
    "BackupNotFoundError",
    "DatabaseExistsError",
    "InsufficientSpaceError",
    "InvalidRequestError",
    "RateLimitExceededError",
    "Restore",
    "RestoreClient",
    "RestoreError",
    "RestoreFailedError",
    "RestoreOptions",
    "RestoreStatus",
    "RestoreSummary",
    "StatementError",
    "__version__",
]
