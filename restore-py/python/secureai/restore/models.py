"""The values the SDK returns: backups, restore options and restore statuses."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .errors import RestoreError, error_from_engine

# RFC 3339 as the engine writes it: "2024-01-01T12:00:00Z" or with up to nine fraction digits
# and an offset. datetime.fromisoformat reads neither "Z" nor nine digits before Python 3.11.
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$"
)

FINAL_STATES = frozenset({"completed", "failed", "cancelled"})


def parse_timestamp(text: str | None) -> datetime | None:
    """An aware datetime from the engine's RFC 3339 text (None stays None)."""
    if text is None:
        return None
    match = _TIMESTAMP.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    micros = int((match.group(7) or "0")[:6].ljust(6, "0"))
    zone = match.group(8)
    if zone == "Z":
        offset = timezone.utc
    else:
        sign = -1 if zone[0] == "-" else 1
        offset = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    return datetime(year, month, day, hour, minute, second, micros, tzinfo=offset)


def format_timestamp(at: datetime | None) -> str | None:
    """ISO 8601 text in UTC with a "Z", as the documented JSON writes it."""
    if at is None:
        return None
    text = at.astimezone(timezone.utc).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True)
class Backup:
    """One backup in the backup directory."""

    name: str
    size: int
    created_at: datetime
    checksum: str | None
    """``sha256:<hex>``, or None when the backup was never sealed."""
    status: str
    """``available``, or why the backup cannot be restored."""

    @classmethod
    def _from_engine(cls, raw: Mapping[str, Any]) -> Backup:
        created_at = parse_timestamp(raw["created_at"])
        assert created_at is not None
        return cls(raw["name"], raw["size"], created_at, raw["checksum"], raw["status"])

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON object."""
        return {
            "name": self.name,
            "size": self.size,
            "created_at": format_timestamp(self.created_at),
            "checksum": self.checksum,
            "status": self.status,
        }


@dataclass(frozen=True)
class BackupList:
    """One page of a listing; iterate over it or index it like a list."""

    backups: list[Backup]
    total: int
    """How many backups the directory holds in all."""
    limit: int
    offset: int

    def __iter__(self) -> Iterator[Backup]:
        return iter(self.backups)

    def __len__(self) -> int:
        return len(self.backups)

    def __getitem__(self, index: int) -> Backup:
        return self.backups[index]


@dataclass(frozen=True)
class RestoreOptions:
    """How to restore. A dict with the same keys is accepted wherever these are."""

    verify: bool = False
    """Check the backup's sha256 against its recorded checksum (the backup must be sealed)."""
    force: bool = False
    """Replace an existing target; it is swapped out only after the restore succeeded."""
    parallel_workers: int = 2
    """Connections loading data and building indexes concurrently, 1 to 64."""
    timeout_seconds: int | None = None
    """Fail the restore (target untouched) when it runs longer than this."""
    on_error: str = "stop"
    """``stop`` fails the restore at the first error; ``continue`` skips and reports it."""
    no_owner: bool = False
    """Skip ownership, as ``pg_restore -O``."""
    no_privileges: bool = False
    """Skip GRANT and REVOKE, as ``pg_restore -x``."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RestoreSummary:
    """Counts of what a restore did."""

    tables: int = 0
    rows: int = 0
    #: Of ``rows``, those sent in PostgreSQL's binary COPY format, which the server takes in
    #: at less cost; tables with columns of other types go as the dump wrote them.
    binary_rows: int = 0
    statements: int = 0
    skipped: int = 0
    decoded_bytes: int = 0
    checksum: str | None = None


@dataclass(frozen=True)
class StatementError:
    """A statement or COPY block skipped under ``on_error="continue"``."""

    line: int
    object: str | None
    message: str
    sqlstate: str | None


@dataclass(frozen=True)
class RestoreStatus:
    """The status of a restore: the documented status object and what the engine adds.

    Timestamps are timezone-aware (UTC). ``error`` is the exception a failed or cancelled
    restore ended with; ``raise_for_status()`` raises it.
    """

    restore_id: str
    status: str
    """``pending``, ``in_progress``, ``completed``, ``failed`` or ``cancelled``."""
    started_at: datetime
    estimated_completion: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    size_bytes: int
    duration_seconds: float
    verification_status: str
    """``pending``, ``verified``, ``failed`` or ``skipped``."""
    progress: int
    """Share of the backup read, 0 to 100; 100 only on success."""
    current_operation: str | None
    backup_name: str = ""
    target_database: str = ""
    failed_at: datetime | None = None
    bytes_read: int = 0
    options: RestoreOptions = field(default_factory=RestoreOptions)
    summary: RestoreSummary = field(default_factory=RestoreSummary)
    warnings: list[str] = field(default_factory=list)
    errors: list[StatementError] = field(default_factory=list)
    error: RestoreError | None = None

    @classmethod
    def _from_engine(cls, raw: Mapping[str, Any]) -> RestoreStatus:
        error = raw.get("error")
        started_at = parse_timestamp(raw["started_at"])
        assert started_at is not None
        return cls(
            restore_id=raw["restore_id"],
            status=raw["status"],
            started_at=started_at,
            estimated_completion=parse_timestamp(raw.get("estimated_completion")),
            completed_at=parse_timestamp(raw.get("completed_at")),
            cancelled_at=parse_timestamp(raw.get("cancelled_at")),
            size_bytes=raw["size_bytes"],
            duration_seconds=float(raw["duration_seconds"]),
            verification_status=raw["verification_status"],
            progress=raw["progress"],
            current_operation=raw.get("current_operation"),
            backup_name=raw.get("backup_name", ""),
            target_database=raw.get("target_database", ""),
            failed_at=parse_timestamp(raw.get("failed_at")),
            bytes_read=raw.get("bytes_read", 0),
            options=RestoreOptions(**raw.get("options", {})),
            summary=RestoreSummary(**raw.get("summary", {})),
            warnings=list(raw.get("warnings", [])),
            errors=[StatementError(**item) for item in raw.get("errors", [])],
            error=None
            if error is None
            else error_from_engine(
                error["code"], error["message"], error.get("details"), error.get("request_id")
            ),
        )

    @property
    def done(self) -> bool:
        """True once the restore can change no more."""
        return self.status in FINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.status == "completed"

    def raise_for_status(self) -> RestoreStatus:
        """Raises the restore's error when it failed or was cancelled; returns self otherwise."""
        if self.error is not None:
            raise self.error
        return self

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON status object (ISO 8601 timestamps), with the engine's extras."""
        return {
            "restore_id": self.restore_id,
            "status": self.status,
            "backup_name": self.backup_name,
            "target_database": self.target_database,
            "started_at": format_timestamp(self.started_at),
            "estimated_completion": format_timestamp(self.estimated_completion),
            "completed_at": format_timestamp(self.completed_at),
            "cancelled_at": format_timestamp(self.cancelled_at),
            "failed_at": format_timestamp(self.failed_at),
            "size_bytes": self.size_bytes,
            "bytes_read": self.bytes_read,
            "duration_seconds": self.duration_seconds,
            "verification_status": self.verification_status,
            "progress": self.progress,
            "current_operation": self.current_operation,
            "options": self.options.to_dict(),
            "summary": dataclasses.asdict(self.summary),
            "warnings": list(self.warnings),
            "errors": [dataclasses.asdict(item) for item in self.errors],
            "error": None if self.error is None else self.error.to_dict(),
        }
