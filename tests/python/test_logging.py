"""The engine's events reach Python's logging, under the secureai.restore logger."""

from __future__ import annotations

import logging

import pytest
from conftest import Backups, Postgres, film_dump
from secureai.restore import RestoreClient


def test_engine_events_are_logged_without_the_api_key_or_rows(
    backups: Backups, postgres: Postgres, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = backups.write("backup_20240101_120000.sql", film_dump(5))

    with caplog.at_level(logging.DEBUG, logger="secureai.restore"):
        client = RestoreClient("secret-api-key", backup_dir=backups.dir, database_url=postgres.url)
        restore = client.create_restore(name, target)
        restore.wait_for_completion()

    ours = [r for r in caplog.records if r.name == "secureai.restore"]
    messages = [r.getMessage() for r in ours]
    assert any("restore accepted" in m and restore.id in m for m in messages), messages
    assert {r.levelno for r in ours} >= {logging.INFO}
    text = "\n".join(messages)
    assert "secret-api-key" not in text
    assert "film number" not in text
