"""The exception hierarchy, retries of transient failures, and the per-call timeout."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from conftest import Backups, Postgres, film_dump
from secureai.restore import (
    BackupNotFoundError,
    DatabaseExistsError,
    InsufficientSpaceError,
    InvalidRequestError,
    RateLimitExceededError,
    RestoreClient,
    RestoreError,
    RestoreFailedError,
)
from secureai.restore.errors import error_from_engine

DOCUMENTED = [
    (InvalidRequestError, "invalid_request", 400),
    (BackupNotFoundError, "backup_not_found", 404),
    (DatabaseExistsError, "database_exists", 409),
    (RateLimitExceededError, "rate_limit_exceeded", 429),
    (RestoreFailedError, "restore_failed", 500),
    (InsufficientSpaceError, "insufficient_space", 507),
]


@pytest.mark.parametrize(("cls", "code", "http_status"), DOCUMENTED)
def test_each_code_has_its_class_and_http_status(
    cls: type[RestoreError], code: str, http_status: int
) -> None:
    error = error_from_engine(code, "it went wrong", {"line": 3}, "req_1")

    assert type(error) is cls
    assert isinstance(error, RestoreError) and isinstance(error, Exception)
    assert (error.code, error.http_status, error.message) == (code, http_status, "it went wrong")
    assert (error.request_id, error.details) == ("req_1", {"line": 3})
    assert "it went wrong" in str(error) and "req_1" in str(error)


def test_an_unknown_code_keeps_its_name() -> None:
    error = error_from_engine("quota_exceeded", "new", None, "req_2")
    assert type(error) is RestoreError and error.code == "quota_exceeded"


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_refused_connections_are_retried_with_backoff_then_raised(
    backups: Backups, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(5))
    url = f"postgresql://postgres@127.0.0.1:{unused_port()}/postgres"
    client = RestoreClient("key", backup_dir=backups.dir, database_url=url, retry_attempts=2)

    started = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, logger="secureai.restore"),
        pytest.raises(RestoreFailedError) as raised,
    ):
        client.create_restore(name, target)
    elapsed = time.monotonic() - started

    assert raised.value.details["transient"] is True
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert [r.getMessage().split("retry ")[1][:6] for r in retries] == ["1 of 2", "2 of 2"]
    assert elapsed >= 0.5 + 1.0, "backoff of 0.5 s then 1 s"


def test_no_retries_when_retry_attempts_is_zero(
    backups: Backups, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(5))
    url = f"postgresql://postgres@127.0.0.1:{unused_port()}/postgres"
    client = RestoreClient("key", backup_dir=backups.dir, database_url=url, retry_attempts=0)

    with (
        caplog.at_level(logging.WARNING, logger="secureai.restore"),
        pytest.raises(RestoreFailedError),
    ):
        client.create_restore(name, target)
    assert not [r for r in caplog.records if "retry" in r.getMessage()]


def test_rate_limit_is_raised_or_retried_until_a_restore_ends(
    backups: Backups, postgres: Postgres, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    slow = backups.write("backup_20240101_120000.sql", film_dump(5, sleep_seconds=1.5))
    quick = backups.write("backup_20240102_120000.sql", film_dump(5))
    client = RestoreClient("key", backup_dir=backups.dir, database_url=postgres.url)
    client.retry_attempts = 0
    running = [client.create_restore(slow, f"{target}_{n}") for n in range(5)]

    with pytest.raises(RateLimitExceededError) as raised:
        client.create_restore(quick, f"{target}_late")
    assert raised.value.http_status == 429

    client.retry_attempts = 4
    with caplog.at_level(logging.WARNING, logger="secureai.restore"):
        late = client.create_restore(quick, f"{target}_late")
    assert [r for r in caplog.records if "rate_limit_exceeded" in r.getMessage()]
    assert late.wait_for_completion(timeout=30).status == "completed"
    for restore in running:
        assert restore.wait_for_completion(timeout=30).status == "completed"


def test_a_call_that_outlasts_the_timeout_fails(backups: Backups, postgres: Postgres) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(5))
    client = RestoreClient("key", backup_dir=backups.dir, database_url=postgres.url, timeout=1e-6)

    with pytest.raises(RestoreFailedError, match="did not finish") as raised:
        client.create_restore(name, "pyt_never_created")
    assert raised.value.details["timeout_seconds"] == pytest.approx(1e-6)
    assert not postgres.database_exists("pyt_never_created")
