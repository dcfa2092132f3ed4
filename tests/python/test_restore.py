"""Starting, waiting for, inspecting and cancelling restores."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from conftest import Backups, Postgres, film_dump
from secureai.restore import (
    BackupNotFoundError,
    DatabaseExistsError,
    InvalidRequestError,
    Restore,
    RestoreClient,
    RestoreFailedError,
    RestoreOptions,
    RestoreStatus,
)

DOCUMENTED_FIELDS = {
    "restore_id",
    "status",
    "started_at",
    "estimated_completion",
    "completed_at",
    "cancelled_at",
    "size_bytes",
    "duration_seconds",
    "verification_status",
    "progress",
    "current_operation",
}
ENGINE_EXTRAS = {"summary", "warnings", "errors", "error"}


def test_restore_completes_and_loads_the_rows(
    client: RestoreClient, backups: Backups, postgres: Postgres, target: str
) -> None:
    name = backups.write("backup_20240101_120000.sql.gz", film_dump(500))
    client.seal_backup(name)

    restore = client.create_restore(
        backup_name=name,
        target_database=target,
        options=RestoreOptions(verify=True, parallel_workers=2, timeout_seconds=120),
    )
    assert isinstance(restore, Restore)
    assert restore.id.startswith("rst_")
    assert restore.status in {"pending", "in_progress"}
    assert isinstance(restore.started_at, datetime) and restore.started_at.tzinfo is not None

    result = restore.wait_for_completion()

    assert result.status == "completed" and result.succeeded and result.done
    assert result.raise_for_status() is result
    assert result.error is None
    assert result.progress == 100
    assert result.verification_status == "verified"
    assert result.summary.rows == 500 and result.summary.tables == 1
    assert result.completed_at is not None and result.completed_at >= result.started_at
    assert restore.status == "completed"
    assert postgres.query("SELECT count(*), max(id) FROM public.film", target) == "500|500"


def test_status_carries_the_documented_fields_as_json(
    client: RestoreClient, backups: Backups, target: str
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(20))
    restore = client.create_restore(name, target)
    restore.wait_for_completion()

    status = client.get_restore_status(restore.id)
    document = status.to_dict()

    assert isinstance(status, RestoreStatus)
    assert set(document) >= DOCUMENTED_FIELDS | ENGINE_EXTRAS
    assert document["restore_id"] == restore.id
    assert document["status"] == "completed"
    assert document["started_at"].endswith("Z")
    assert datetime.fromisoformat(document["completed_at"].replace("Z", "+00:00")) == (
        status.completed_at
    )
    assert document["cancelled_at"] is None
    assert document["size_bytes"] == (backups.dir / name).stat().st_size
    assert document["verification_status"] == "skipped"
    assert document["summary"]["rows"] == 20
    assert document["error"] is None
    for stamp in ("started_at", "completed_at"):
        value = getattr(status, stamp)
        assert value.tzinfo is not None and value.utcoffset().total_seconds() == 0
    assert restore.refresh() == status


def test_options_may_be_a_dict(client: RestoreClient, backups: Backups, target: str) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(5))

    restore = client.create_restore(
        name, target, options={"parallel_workers": 3, "on_error": "continue", "no_owner": True}
    )
    result = restore.wait_for_completion()

    assert result.status == "completed"
    assert result.options.parallel_workers == 3
    assert result.options.on_error == "continue"
    assert result.options.no_owner is True


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"paralel_workers": 2}, "unknown restore option"),
        ({"parallel_workers": 0}, "between 1 and 64"),
        ({"parallel_workers": "4"}, "parallel_workers"),
        ({"verify": 1}, "verify"),
        ({"on_error": "ignore"}, "on_error"),
        (RestoreOptions(timeout_seconds=0), "timeout_seconds"),
        ([("verify", True)], "options must be"),
    ],
)
def test_bad_options_are_invalid_requests(
    client: RestoreClient, backups: Backups, target: str, options: object, words: str
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(5))
    with pytest.raises(InvalidRequestError, match=words):
        client.create_restore(name, target, options=options)  # type: ignore[arg-type]


def test_verify_needs_a_sealed_backup(client: RestoreClient, backups: Backups, target: str) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(5))
    with pytest.raises(InvalidRequestError, match="seal"):
        client.create_restore(name, target, options=RestoreOptions(verify=True))


def test_missing_backup_is_not_found(client: RestoreClient, target: str) -> None:
    with pytest.raises(BackupNotFoundError):
        client.create_restore("backup_20000101_000000.sql", target)


def test_existing_target_needs_force(
    client: RestoreClient, backups: Backups, postgres: Postgres, target: str
) -> None:
    first = backups.write("backup_20240101_120000.sql", film_dump(5))
    second = backups.write("backup_20240102_120000.sql", film_dump(7))
    client.create_restore(first, target).wait_for_completion().raise_for_status()

    with pytest.raises(DatabaseExistsError) as raised:
        client.create_restore(second, target)
    assert raised.value.http_status == 409
    assert raised.value.details["target_database"] == target

    replaced = client.create_restore(second, target, options={"force": True})
    assert replaced.wait_for_completion().status == "completed"
    assert postgres.query("SELECT count(*) FROM public.film", target) == "7"


def test_failed_restore_is_returned_not_raised(
    client: RestoreClient, backups: Backups, postgres: Postgres, target: str
) -> None:
    broken = film_dump(5).replace("CREATE TABLE public.film", "CREATE TABLE public.film (x")
    name = backups.write("backup_20240101_120000.sql", broken)

    result = client.create_restore(name, target).wait_for_completion()

    assert result.status == "failed" and result.done and not result.succeeded
    assert isinstance(result.error, RestoreFailedError)
    assert result.error.code == "restore_failed" and result.error.message
    assert result.to_dict()["error"]["code"] == "restore_failed"
    assert result.progress < 100
    with pytest.raises(RestoreFailedError):
        result.raise_for_status()
    assert not postgres.database_exists(target)


def test_cancel_stops_a_running_restore(
    client: RestoreClient, backups: Backups, postgres: Postgres, target: str
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(5, sleep_seconds=30))
    restore = client.create_restore(name, target)
    started = time.monotonic()

    restore.cancel()
    result = restore.wait_for_completion(timeout=20)

    assert result.status == "cancelled"
    assert result.cancelled_at is not None
    assert time.monotonic() - started < 20
    assert client.cancel_restore(restore.id).status == "cancelled"
    assert not postgres.database_exists(target)


def test_wait_timeout_raises_and_the_restore_keeps_running(
    client: RestoreClient, backups: Backups, target: str
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(5, sleep_seconds=30))
    restore = client.create_restore(name, target)

    started = time.monotonic()
    with pytest.raises(TimeoutError, match="keeps running"):
        restore.wait_for_completion(timeout=0.5)
    assert 0.4 < time.monotonic() - started < 5
    assert restore.refresh().status in {"pending", "in_progress"}

    restore.cancel()
    assert restore.wait_for_completion(timeout=20).status == "cancelled"


def test_unknown_restore_id_is_an_invalid_request(client: RestoreClient) -> None:
    with pytest.raises(InvalidRequestError):
        client.get_restore_status("rst_0000")
    with pytest.raises(InvalidRequestError):
        client.cancel_restore("rst_0000")
