"""Blocking calls release the GIL; Ctrl-C interrupts a wait."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from conftest import Backups, film_dump
from secureai.restore import RestoreClient


def test_waiting_lets_other_python_threads_run(
    client: RestoreClient, backups: Backups, target: str
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(5, sleep_seconds=1))
    counted = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal counted
        while not stop.is_set():
            counted += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        client.create_restore(name, target).wait_for_completion(timeout=30)
    finally:
        stop.set()
        counter.join()

    assert counted > 100


def test_sync_restores_from_several_threads_overlap(
    client: RestoreClient, backups: Backups, target: str
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(5, sleep_seconds=1))
    results = []

    def run(n: int) -> None:
        results.append(client.create_restore(name, f"{target}_{n}").wait_for_completion())

    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.status for r in results] == ["completed"] * 3
    assert max(r.started_at for r in results) < min(r.completed_at for r in results)


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT to itself")
def test_ctrl_c_interrupts_wait_for_completion(
    client: RestoreClient, backups: Backups, target: str
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(5, sleep_seconds=30))
    restore = client.create_restore(name, target)
    interrupt = threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGINT))

    started = time.monotonic()
    interrupt.start()
    with pytest.raises(KeyboardInterrupt):
        restore.wait_for_completion()
    waited = time.monotonic() - started

    assert waited < 5
    assert restore.refresh().status in {"pending", "in_progress"}, "only the wait stopped"
    restore.cancel()
    assert restore.wait_for_completion(timeout=20).status == "cancelled"
