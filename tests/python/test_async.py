"""The asyncio API: awaitables run on the engine's runtime, restores run concurrently."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import Backups, Postgres, film_dump
from secureai.restore import BackupNotFoundError, RestoreClient


def test_async_restore_with_progress(backups: Backups, postgres: Postgres, target: str) -> None:
    name = backups.write("backup_20240101_120000.sql.gz", film_dump(2000))
    reports: list[int] = []

    async def main() -> tuple[str, str]:
        async with RestoreClient(
            api_key="key", backup_dir=backups.dir, database_url=postgres.url
        ) as client:
            restore = await client.create_restore_async(
                backup_name=name, target_database=target, on_progress=reports.append
            )
            status = await restore.wait_for_completion_async()
            again = await client.get_restore_status_async(restore.id)
            return status.status, again.status

    assert asyncio.run(main()) == ("completed", "completed")
    assert reports[-1] == 100 and reports == sorted(reports)
    assert postgres.query("SELECT count(*) FROM public.film", target) == "2000"


def test_async_errors_are_the_same_classes(backups: Backups, postgres: Postgres) -> None:
    client = RestoreClient("key", backup_dir=backups.dir, database_url=postgres.url)

    async def main() -> None:
        await client.create_restore_async("backup_20000101_000000.sql", "pyt_nothing")

    with pytest.raises(BackupNotFoundError):
        asyncio.run(main())


def test_async_cancel_and_wait_timeout(backups: Backups, postgres: Postgres, target: str) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(5, sleep_seconds=30))
    client = RestoreClient("key", backup_dir=backups.dir, database_url=postgres.url)

    async def main() -> str:
        restore = await client.create_restore_async(name, target)
        with pytest.raises(TimeoutError):
            await restore.wait_for_completion_async(timeout=0.3)
        await restore.cancel_async()
        return (await restore.wait_for_completion_async(timeout=20)).status

    assert asyncio.run(main()) == "cancelled"


def test_gather_runs_five_restores_concurrently(
    backups: Backups, postgres: Postgres, target: str
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(10, sleep_seconds=1))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    async def one(client: RestoreClient, n: int):
        restore = await client.create_restore_async(name, f"{target}_{n}")
        return await restore.wait_for_completion_async()

    async def main():
        async with RestoreClient("key", backup_dir=backups.dir, database_url=postgres.url) as c:
            background = asyncio.ensure_future(ticker())
            started = time.monotonic()
            results = await asyncio.gather(*(one(c, n) for n in range(5)))
            elapsed = time.monotonic() - started
            background.cancel()
            return results, elapsed

    results, elapsed = asyncio.run(main())

    print(f"five restores of pg_sleep(1) each took {elapsed:.2f} s together")
    assert [r.status for r in results] == ["completed"] * 5
    latest_start = max(r.started_at for r in results)
    earliest_end = min(r.completed_at for r in results)
    assert latest_start < earliest_end, "every restore started before any one ended"
    assert ticks >= 10, "the event loop kept running while the restores did"
