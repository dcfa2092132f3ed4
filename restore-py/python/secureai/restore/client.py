"""RestoreClient and Restore: the SDK's entry points over the embedded engine."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Mapping
from datetime import datetime
from typing import Any, Callable, TypeVar, Union

from . import _native
from .errors import InvalidRequestError, RestoreError, error_from_engine
from .models import Backup, BackupList, RestoreOptions, RestoreStatus

_LOG = logging.getLogger("secureai.restore")

T = TypeVar("T")
ProgressCallback = Callable[[int], object]
OptionsLike = Union[RestoreOptions, Mapping[str, Any], None]

# How long one blocking wait slice lasts: the longest Ctrl-C may take to interrupt a wait.
_WAIT_SLICE_SECONDS = 0.1
# The largest piece a packed backup may have: a gzip member records its length in 32 bits.
_MAX_PIECE_MIB = 1024
# Exponential backoff between retries of transient failures: 0.5 s, 1 s, 2 s, … at most 8 s.
_BACKOFF_FIRST_SECONDS = 0.5
_BACKOFF_MAX_SECONDS = 8.0


class RestoreClient:
    """A client of the restore engine, embedded in this process.

    ``api_key`` is required and kept for the HTTP service the same client will talk to; the
    embedded engine does not check it. It never appears in ``repr`` or in logs.

    ``timeout`` (seconds, None for no limit) bounds each call that asks the engine something:
    listing, sealing, starting, status, cancelling. It does not bound waiting for a restore to
    end; ``wait_for_completion(timeout=…)`` and the restore's own ``timeout_seconds`` do.
    ``retry_attempts`` is how many times a call is tried again after a transient failure (a
    refused connection, ``rate_limit_exceeded``), with exponential backoff; a restore that ran
    and failed is never retried.

    ``backup_dir`` defaults to ``$SECURERESTORE_BACKUP_DIR`` (else the current directory),
    ``database_url`` to ``$SECURERESTORE_DATABASE_URL``, else the ``PG*`` variables, else the
    managed local PostgreSQL, started on first use.
    """

    def __init__(
        self,
        api_key: str,
        *,
        timeout: float | None = 300.0,
        retry_attempts: int = 3,
        backup_dir: str | os.PathLike[str] | None = None,
        database_url: str | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise InvalidRequestError("api_key must be a non-empty string")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise InvalidRequestError("timeout must be a positive number of seconds or None")
        if isinstance(retry_attempts, bool) or not isinstance(retry_attempts, int):
            raise InvalidRequestError("retry_attempts must be an int")
        if retry_attempts < 0:
            raise InvalidRequestError("retry_attempts must not be negative")

        self.__api_key = api_key
        self.timeout = None if timeout is None else float(timeout)
        self.retry_attempts = retry_attempts
        self.backup_dir = os.fspath(
            backup_dir or os.environ.get("SECURERESTORE_BACKUP_DIR") or os.curdir
        )
        url = database_url or os.environ.get("SECURERESTORE_DATABASE_URL") or None
        _native.set_log_level(_LOG.getEffectiveLevel())
        self._engine = _native.Engine(self.backup_dir, url)

    def __repr__(self) -> str:
        return f"RestoreClient(backup_dir={self.backup_dir!r})"

    # Context managers: closing changes nothing for restores already running; they belong to
    # the process's engine runtime and end on their own.
    def close(self) -> None:
        """Nothing to release today; kept so code written for the HTTP client works as is."""

    def __enter__(self) -> RestoreClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> RestoreClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # Backups.

    def list_backups(
        self, *, limit: int = 20, offset: int = 0, sort: str = "created_at", order: str = "desc"
    ) -> BackupList:
        """A page of the backup directory, sorted by ``created_at`` or ``size``."""
        raw = self._retry(
            "list_backups",
            lambda: self._engine.list_backups(limit, offset, sort, order, self.timeout),
        )
        backups = [Backup._from_engine(item) for item in raw["backups"]]
        return BackupList(backups, raw["total"], raw["limit"], raw["offset"])

    def get_backup(self, name: str) -> Backup:
        """One backup's description."""
        return Backup._from_engine(self._engine.backup(name))

    def seal_backup(self, name: str) -> Backup:
        """Computes the backup's sha256 and records it beside the file (``NAME.sha256``)."""
        return Backup._from_engine(
            self._retry("seal_backup", lambda: self._engine.seal(name, self.timeout))
        )

    def pack_backup(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        *,
        format: str = "gzip",
        piece_mib: int = 4,
        level: int | None = None,
    ) -> Backup:
        """Writes the dump at ``path`` into the backup directory in pieces, sealed.

        ``path`` may be plain SQL, gzip or zstd, anywhere on disk. The backup is ``name`` (by
        default the file's name with ``.gz`` or ``.zst``), made of ``piece_mib`` MiB of SQL per
        gzip member or zstd frame (``format``), compressed at ``level`` (gzip 0-9, zstd 1-22;
        by default 6 and 3). Restores decode such a backup on every core; ``gunzip`` and
        ``zstd -d`` still read it as one stream. It appears whole or not at all, and never over an
        existing backup (``InvalidRequestError``). The client's ``timeout`` does not bound it: a
        large dump takes as long as compressing it takes.
        """
        if not _is_int(piece_mib) or not 1 <= piece_mib <= _MAX_PIECE_MIB:
            raise InvalidRequestError(
                f"piece_mib must be a whole number of MiB from 1 to {_MAX_PIECE_MIB}, "
                f"not {piece_mib!r}"
            )
        if level is not None and (not _is_int(level) or not 0 <= level <= 22):
            raise InvalidRequestError(
                f"level must be a whole number (gzip 0-9, zstd 1-22) or None, not {level!r}"
            )
        raw = self._engine.pack(os.fspath(path), name, format, piece_mib << 20, level, None)
        return Backup._from_engine(raw)

    # Restores.

    def create_restore(
        self,
        backup_name: str,
        target_database: str,
        options: OptionsLike = None,
        on_progress: ProgressCallback | None = None,
    ) -> Restore:
        """Starts restoring ``backup_name`` into ``target_database`` and returns at once.

        ``on_progress`` is called with an int percent, never decreasing, 100 last on success,
        from the thread (or event loop) that waits for the restore.
        """
        options_dict = _options_dict(options)
        raw = self._retry(
            "create_restore",
            lambda: self._engine.create_restore(
                backup_name, target_database, options_dict, self.timeout
            ),
        )
        return Restore(self, RestoreStatus._from_engine(raw), on_progress)

    async def create_restore_async(
        self,
        backup_name: str,
        target_database: str,
        options: OptionsLike = None,
        on_progress: ProgressCallback | None = None,
    ) -> Restore:
        """Awaitable ``create_restore``, run on the engine's runtime."""
        options_dict = _options_dict(options)
        raw = await self._retry_async(
            "create_restore",
            lambda: self._engine.create_restore_async(backup_name, target_database, options_dict),
        )
        return Restore(self, RestoreStatus._from_engine(raw), on_progress)

    def get_restore_status(self, restore_id: str) -> RestoreStatus:
        """A restore's current status (running, or ended within the engine's history)."""
        return RestoreStatus._from_engine(self._engine.restore_status(restore_id))

    async def get_restore_status_async(self, restore_id: str) -> RestoreStatus:
        # Reading a status takes a lock for microseconds: there is nothing to await.
        return self.get_restore_status(restore_id)

    def cancel_restore(self, restore_id: str) -> RestoreStatus:
        """Asks a restore to stop; it ends ``cancelled`` and its staging database is dropped."""
        return RestoreStatus._from_engine(self._engine.cancel_restore(restore_id))

    async def cancel_restore_async(self, restore_id: str) -> RestoreStatus:
        return self.cancel_restore(restore_id)

    # Retries.

    def _retry(self, call: str, attempt: Callable[[], T]) -> T:
        tried = 0
        while True:
            try:
                return attempt()
            except RestoreError as err:
                delay = self._backoff(call, err, tried)
                if delay is None:
                    raise
            tried += 1
            time.sleep(delay)

    async def _retry_async(self, call: str, attempt: Callable[[], Awaitable[T]]) -> T:
        tried = 0
        while True:
            try:
                return await asyncio.wait_for(attempt(), self.timeout)
            except asyncio.TimeoutError:
                raise error_from_engine(
                    "restore_failed",
                    f"{call} did not finish within {self.timeout} s",
                    {"timeout_seconds": self.timeout},
                    None,
                ) from None
            except RestoreError as err:
                delay = self._backoff(call, err, tried)
                if delay is None:
                    raise
            tried += 1
            await asyncio.sleep(delay)

    def _backoff(self, call: str, err: RestoreError, tried: int) -> float | None:
        """Seconds to wait before trying ``call`` again, or None when it must not be."""
        if not err.transient or tried >= self.retry_attempts:
            return None
        delay = min(_BACKOFF_FIRST_SECONDS * 2.0**tried, _BACKOFF_MAX_SECONDS)
        _LOG.warning(
            "%s failed (%s, %s); retry %d of %d in %.1f s",
            call,
            err.code,
            err.request_id,
            tried + 1,
            self.retry_attempts,
            delay,
        )
        return delay


class Restore:
    """A restore started by ``create_restore``; holds its last known status."""

    def __init__(
        self,
        client: RestoreClient,
        status: RestoreStatus,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self._client = client
        self._last = status
        self._progress = _ProgressReporter(on_progress)

    def __repr__(self) -> str:
        return f"Restore(id={self.id!r}, status={self.status!r}, progress={self._last.progress})"

    @property
    def id(self) -> str:
        return self._last.restore_id

    @property
    def status(self) -> str:
        """The last known state; ``refresh()`` asks the engine again."""
        return self._last.status

    @property
    def last_status(self) -> RestoreStatus:
        return self._last

    @property
    def started_at(self) -> datetime:
        return self._last.started_at

    @property
    def estimated_completion(self) -> datetime | None:
        """When the restore is expected to end, from its rate so far (as of the last status)."""
        return self._last.estimated_completion

    def refresh(self) -> RestoreStatus:
        """Reads the current status from the engine."""
        self._last = self._client.get_restore_status(self.id)
        return self._last

    def cancel(self) -> RestoreStatus:
        """Asks the restore to stop; ``wait_for_completion`` then returns it ``cancelled``."""
        self._last = self._client.cancel_restore(self.id)
        return self._last

    async def cancel_async(self) -> RestoreStatus:
        return self.cancel()

    def wait_for_completion(self, timeout: float | None = None) -> RestoreStatus:
        """Waits until the restore ends and returns its final status.

        A failed or cancelled restore is returned, not raised: check ``status`` or call
        ``raise_for_status()``. The GIL is released while waiting and Ctrl-C interrupts the
        wait (the restore keeps running). After ``timeout`` seconds ``TimeoutError`` is raised
        and the restore keeps running. An exception raised by ``on_progress`` propagates from
        here unchanged; the restore keeps running and the callback is not called again.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        watch = self._client._engine.subscribe(self.id)
        while True:
            slice_seconds = _WAIT_SLICE_SECONDS
            if deadline is not None:
                slice_seconds = max(0.0, min(slice_seconds, deadline - time.monotonic()))
            raw = watch.next(slice_seconds)
            if raw is not None:
                self._last = RestoreStatus._from_engine(raw)
                self._progress.report(self._last)
                if self._last.done:
                    return self._last
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(self._timeout_message(timeout))

    async def wait_for_completion_async(self, timeout: float | None = None) -> RestoreStatus:
        """Awaitable ``wait_for_completion``; ``on_progress`` runs in the event loop."""
        watch = self._client._engine.subscribe(self.id)

        async def until_final() -> RestoreStatus:
            while True:
                raw = await watch.next_async()
                self._last = RestoreStatus._from_engine(raw)
                self._progress.report(self._last)
                if self._last.done:
                    return self._last

        if timeout is None:
            return await until_final()
        try:
            return await asyncio.wait_for(until_final(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(self._timeout_message(timeout)) from None

    def _timeout_message(self, timeout: float | None) -> str:
        return f"restore {self.id} is still {self.status} after {timeout} s; it keeps running"


class _ProgressReporter:
    """Calls the progress callback with int percents that never decrease, 100 on success."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._reported = -1

    def report(self, status: RestoreStatus) -> None:
        if self._callback is None:
            return
        percent = 100 if status.status == "completed" else min(int(status.progress), 99)
        if percent > self._reported:
            self._reported = percent
            try:
                self._callback(percent)
            except BaseException:
                # Reported once, to the waiter; a broken callback is not called again.
                self._callback = None
                raise


def _options_dict(options: OptionsLike) -> dict[str, Any]:
    if options is None:
        return {}
    if isinstance(options, RestoreOptions):
        return options.to_dict()
    if isinstance(options, Mapping):
        return dict(options)
    raise InvalidRequestError(
        f"options must be RestoreOptions or a dict, not {type(options).__name__}"
    )


def _is_int(value: object) -> bool:
    """True for an int that is not a bool (``True`` is an int to Python, not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool)
