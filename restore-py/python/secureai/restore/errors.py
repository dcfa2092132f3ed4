"""The one exception hierarchy of the SDK, and the table from error codes to classes."""

from __future__ import annotations

import secrets
from typing import Any


class RestoreError(Exception):
    """An error of the restore engine.

    ``code`` is one of the documented error codes, ``http_status`` the status the HTTP API
    answers with for it, ``details`` structured facts (file, line, limits, ``transient``) and
    ``request_id`` the ``req_…`` id of the call that failed.
    """

    code: str = "restore_failed"
    http_status: int = 500

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id or f"req_{secrets.token_hex(8)}"
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return f"{self.message} ({self.code}, {self.request_id})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, request_id={self.request_id!r})"

    @property
    def transient(self) -> bool:
        """True when the same call may succeed later: a refused connection, a busy engine."""
        return self.code == "rate_limit_exceeded" or self.details.get("transient") is True

    def to_dict(self) -> dict[str, Any]:
        """The documented error object: code, message, details, request_id."""
        return {
            "code": self.code,
            "message": self.message,
            "details": dict(self.details),
            "request_id": self.request_id,
        }


class InvalidRequestError(RestoreError):
    """A bad name, option or combination."""

    code = "invalid_request"
    http_status = 400


class BackupNotFoundError(RestoreError):
    """No backup of that name is in the backup directory."""

    code = "backup_not_found"
    http_status = 404


class DatabaseExistsError(RestoreError):
    """The target database exists (use ``force``) or another restore is writing it."""

    code = "database_exists"
    http_status = 409


class RateLimitExceededError(RestoreError):
    """Too many restores are running; try again when one has ended."""

    code = "rate_limit_exceeded"
    http_status = 429


class RestoreFailedError(RestoreError):
    """The restore ran and failed (or a call timed out); the target was not changed."""

    code = "restore_failed"
    http_status = 500


class InsufficientSpaceError(RestoreError):
    """The server's disk cannot hold the restored database."""

    code = "insufficient_space"
    http_status = 507


_CLASSES: dict[str, type[RestoreError]] = {
    cls.code: cls
    for cls in (
        InvalidRequestError,
        BackupNotFoundError,
        DatabaseExistsError,
        RateLimitExceededError,
        RestoreFailedError,
        InsufficientSpaceError,
    )
}


def error_from_engine(
    code: str, message: str, details: dict[str, Any] | None, request_id: str | None
) -> RestoreError:
    """The exception for an engine error: the class of its code.

    Every engine error reaches Python through here, raised by a call or carried by a failed
    restore's status. A code this version does not know yet becomes a plain ``RestoreError``
    that keeps the code.
    """
    cls = _CLASSES.get(code)
    if cls is not None:
        return cls(message, request_id=request_id, details=details)
    error = RestoreError(message, request_id=request_id, details=details)
    error.code = code
    return error
