"""The client's constructor, listing and sealing backups."""

from __future__ import annotations

import gzip
import os
from datetime import timezone
from pathlib import Path

import pytest
from conftest import Backups, Postgres, film_dump
from secureai.restore import (
    Backup,
    BackupNotFoundError,
    InvalidRequestError,
    RestoreClient,
    RestoreError,
)


@pytest.mark.parametrize("api_key", ["", "   ", None])
def test_api_key_is_required(api_key: object, backups: Backups) -> None:
    with pytest.raises(InvalidRequestError, match="api_key"):
        RestoreClient(api_key=api_key, backup_dir=backups.dir)  # type: ignore[arg-type]


def test_api_key_never_appears_in_repr(client: RestoreClient) -> None:
    assert "test-key" not in repr(client)
    assert "test-key" not in str(vars(client).get("timeout"))
    assert all(value != "test-key" for key, value in vars(client).items() if "api" not in key)


@pytest.mark.parametrize(
    ("setting", "value"), [("timeout", 0), ("timeout", -1), ("retry_attempts", -1)]
)
def test_bad_timeout_or_retry_attempts_are_refused(
    setting: str, value: int, backups: Backups
) -> None:
    with pytest.raises(InvalidRequestError, match=setting):
        RestoreClient("key", backup_dir=backups.dir, **{setting: value})


def test_one_argument_constructor_reads_the_environment(
    backups: Backups, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    backups.write("backup_20240101_120000.sql", film_dump(3))
    monkeypatch.setenv("SECURERESTORE_BACKUP_DIR", str(backups.dir))
    monkeypatch.setenv("SECURERESTORE_DATABASE_URL", postgres.url)

    client = RestoreClient("key")

    assert client.backup_dir == str(backups.dir)
    assert [backup.name for backup in client.list_backups()] == ["backup_20240101_120000.sql"]


def test_list_backups_pages_sorts_and_describes(client: RestoreClient, backups: Backups) -> None:
    backups.write("backup_20240101_120000.sql", film_dump(10))
    backups.write("backup_20240301_120000.sql.gz", film_dump(10))
    backups.write("backup_20240201_120000.sql", film_dump(2000))

    page = client.list_backups(limit=2)
    assert (page.total, page.limit, page.offset, len(page)) == (3, 2, 0, 2)
    assert [b.name for b in page] == [
        "backup_20240301_120000.sql.gz",
        "backup_20240201_120000.sql",
    ]
    rest = client.list_backups(limit=2, offset=2)
    assert [b.name for b in rest.backups] == ["backup_20240101_120000.sql"]

    by_size = client.list_backups(sort="size", order="asc")
    sizes = [b.size for b in by_size]
    assert sizes == sorted(sizes)
    assert by_size[-1].name == "backup_20240201_120000.sql"

    first = page[0]
    assert isinstance(first, Backup)
    assert first.created_at.tzinfo is not None
    assert first.created_at.utcoffset() == timezone.utc.utcoffset(None)
    assert (first.created_at.year, first.created_at.month, first.created_at.hour) == (
        2024,
        3,
        12,
    )
    assert first.size == os.path.getsize(backups.dir / first.name)
    assert first.checksum is None
    assert first.status == "available"
    assert first.to_dict()["created_at"] == "2024-03-01T12:00:00.000000Z"


@pytest.mark.parametrize(("sort", "order"), [("name", "asc"), ("size", "up")])
def test_list_backups_refuses_unknown_orderings(
    client: RestoreClient, sort: str, order: str
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        client.list_backups(sort=sort, order=order)
    assert raised.value.http_status == 400
    assert raised.value.request_id.startswith("req_")


def test_seal_records_the_checksum(client: RestoreClient, backups: Backups) -> None:
    backups.write("backup_20240101_120000.sql.gz", film_dump(50))

    sealed = client.seal_backup("backup_20240101_120000.sql.gz")

    assert sealed.checksum is not None and sealed.checksum.startswith("sha256:")
    assert (backups.dir / "backup_20240101_120000.sql.gz.sha256").exists()
    assert client.get_backup("backup_20240101_120000.sql.gz").checksum == sealed.checksum


def test_missing_backup_is_backup_not_found(client: RestoreClient) -> None:
    with pytest.raises(BackupNotFoundError) as raised:
        client.seal_backup("backup_19990101_000000.sql")
    assert isinstance(raised.value, RestoreError)
    assert (raised.value.code, raised.value.http_status) == ("backup_not_found", 404)


def test_pack_writes_a_sealed_backup_that_restores(
    client: RestoreClient,
    backups: Backups,
    tmp_path: Path,
    target: str,
    postgres: Postgres,
) -> None:
    dump = tmp_path / "nightly.sql"
    dump.write_text(film_dump(30_000))

    packed = client.pack_backup(dump, piece_mib=1)

    assert packed.name == "nightly.sql.gz"
    assert packed.checksum is not None and packed.checksum.startswith("sha256:")
    stored = (backups.dir / "nightly.sql.gz").read_bytes()
    assert gzip.decompress(stored) == dump.read_bytes()
    assert stored.count(b"\x1f\x8b\x08") > 1, "one gzip member per MiB of SQL"
    status = client.create_restore(packed.name, target, {"verify": True}).wait_for_completion()
    assert (status.status, status.summary.rows) == ("completed", 30_000)
    assert postgres.query("SELECT count(*) FROM film", target) == "30000"


def test_pack_refuses_what_it_cannot_write(client: RestoreClient, tmp_path: Path) -> None:
    dump = tmp_path / "nightly.sql"
    dump.write_text(film_dump(3))
    with pytest.raises(InvalidRequestError, match="lz4"):
        client.pack_backup(dump, format="lz4")
    with pytest.raises(InvalidRequestError, match="level"):
        client.pack_backup(dump, format="zstd", level=30)
    for piece_mib in (0, 1025, 2**50, 1.5, True):
        with pytest.raises(InvalidRequestError, match="piece_mib"):
            client.pack_backup(dump, piece_mib=piece_mib)  # type: ignore[arg-type]
    for level in (2**40, -1, True, "6"):
        with pytest.raises(InvalidRequestError, match="level"):
            client.pack_backup(dump, level=level)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="sha256sum"):
        client.pack_backup(dump, "a\nb.sql.gz")
    assert client.list_backups().total == 0, "nothing is left behind by a refused pack"
    with pytest.raises(InvalidRequestError):
        client.pack_backup(dump, "../outside.sql.gz")
    with pytest.raises(InvalidRequestError, match="no file"):
        client.pack_backup(tmp_path / "missing.sql")
