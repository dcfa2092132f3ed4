"""Types of the extension module. Checked against the built module by the test suite."""

from collections.abc import Awaitable
from os import PathLike
from typing import Any, final

__all__ = ["Engine", "RestoreWatch", "__version__", "set_log_level"]

__version__: str

def set_log_level(level: int) -> None: ...

@final
class Engine:
    def __new__(
        cls,
        backup_dir: str | PathLike[str],
        database_url: str | None = None,
        state_dir: str | PathLike[str] | None = None,
    ) -> Engine: ...
    def list_backups(
        self, limit: int, offset: int, sort: str, order: str, timeout: float | None = None
    ) -> dict[str, Any]: ...
    def backup(self, name: str) -> dict[str, Any]: ...
    def seal(self, name: str, timeout: float | None = None) -> dict[str, Any]: ...
    def pack(
        self,
        path: str,
        name: str | None = None,
        format: str = "gzip",
        piece_bytes: int | None = None,
        level: int | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]: ...
    def create_restore(
        self,
        backup_name: str,
        target_database: str,
        options: dict[str, Any],
        timeout: float | None = None,
    ) -> dict[str, Any]: ...
    def create_restore_async(
        self, backup_name: str, target_database: str, options: dict[str, Any]
    ) -> Awaitable[dict[str, Any]]: ...
    def restore_status(self, restore_id: str) -> dict[str, Any]: ...
    def cancel_restore(self, restore_id: str) -> dict[str, Any]: ...
    def subscribe(self, restore_id: str) -> RestoreWatch: ...

@final
class RestoreWatch:
    def next(self, timeout: float) -> dict[str, Any] | None: ...
    def next_async(self) -> Awaitable[dict[str, Any]]: ...
