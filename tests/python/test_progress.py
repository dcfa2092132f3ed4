"""The progress callback: int percents, never decreasing, 100 last on success; its errors."""

from __future__ import annotations

import threading

import pytest
from conftest import Backups, film_dump
from secureai.restore import RestoreClient


def test_progress_is_reported_in_the_waiting_thread_and_ends_at_100(
    client: RestoreClient, backups: Backups, target: str
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(100_000))
    reports: list[int] = []
    threads: set[int] = set()

    def on_progress(percent: int) -> None:
        threads.add(threading.get_ident())
        reports.append(percent)

    restore = client.create_restore(name, target, on_progress=on_progress)
    result = restore.wait_for_completion()

    assert result.status == "completed"
    print(f"progress reports: {reports}")
    assert reports[-1] == 100
    assert all(isinstance(percent, int) for percent in reports)
    assert reports == sorted(set(reports)), "strictly increasing, no repeats"
    assert threads == {threading.get_ident()}


def test_a_failed_restore_never_reports_100(
    client: RestoreClient, backups: Backups, target: str
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(10) + "SELECT 1/0;\n")
    reports: list[int] = []

    result = client.create_restore(name, target, on_progress=reports.append).wait_for_completion()

    assert result.status == "failed"
    assert 100 not in reports


def test_an_exception_from_the_callback_propagates_from_the_wait(
    client: RestoreClient, backups: Backups, target: str
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(10))

    def on_progress(percent: int) -> None:
        raise ValueError(f"callback broke at {percent}")

    restore = client.create_restore(name, target, on_progress=on_progress)
    with pytest.raises(ValueError, match="callback broke"):
        restore.wait_for_completion()

    # The restore itself was not disturbed.
    assert restore.wait_for_completion(timeout=30).status == "completed"
