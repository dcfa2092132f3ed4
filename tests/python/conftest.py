"""Fixtures: a real PostgreSQL (from $SECURERESTORE_TEST_DATABASE_URL), backup directories with
small dumps written by the tests, psql to look at what a restore made."""

from __future__ import annotations

import glob
import gzip
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from secureai.restore import RestoreClient

TEST_URL_VARIABLE = "SECURERESTORE_TEST_DATABASE_URL"
TARGET_PREFIX = "pyt_"


def film_dump(rows: int = 100, *, sleep_seconds: float = 0.0) -> str:
    """A plain dump in pg_dump's shape: settings, a table, its rows, its primary key."""
    lines = [
        "-- PostgreSQL database dump",
        "SET statement_timeout = 0;",
        "SET client_encoding = 'UTF8';",
        "SET standard_conforming_strings = on;",
        "SELECT pg_catalog.set_config('search_path', '', false);",
        "",
        "-- Name: film; Type: TABLE; Schema: public; Owner: -",
        "CREATE TABLE public.film (id integer NOT NULL, title text, rating numeric);",
        "",
    ]
    if sleep_seconds:
        lines.append(f"SELECT pg_sleep({sleep_seconds});")
    lines.append("-- Data for Name: film; Type: TABLE DATA; Schema: public; Owner: -")
    lines.append("COPY public.film (id, title, rating) FROM stdin;")
    lines.extend(
        f"{n}\tfilm number {n} with a longer title\t{n % 10}.5" for n in range(1, rows + 1)
    )
    lines.append("\\.")
    lines.append("")
    lines.append("-- Name: film film_pkey; Type: CONSTRAINT; Schema: public; Owner: -")
    lines.append("ALTER TABLE ONLY public.film ADD CONSTRAINT film_pkey PRIMARY KEY (id);")
    return "\n".join(lines) + "\n"


class Backups:
    """A backup directory the test fills."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def write(self, name: str, sql: str) -> str:
        data = sql.encode()
        if name.endswith(".gz"):
            data = gzip.compress(data, compresslevel=1)
        (self.dir / name).write_bytes(data)
        return name


class Postgres:
    """The test server, reached with psql."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.psql = find_psql()

    def url_for(self, database: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path="/" + database))

    def query(self, sql: str, database: str | None = None) -> str:
        url = self.url if database is None else self.url_for(database)
        done = subprocess.run(
            [self.psql, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    def database_exists(self, name: str) -> bool:
        return self.query(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == "1"

    def drop_test_databases(self) -> None:
        names = self.query(
            f"SELECT datname FROM pg_database WHERE datname LIKE '{TARGET_PREFIX}%'"
        ).split()
        for name in names:
            self.query(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def find_psql() -> str:
    found = shutil.which("psql")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))
    if not candidates:
        raise RuntimeError("psql not found: install the PostgreSQL client or server binaries")
    return candidates[-1]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    url = os.environ.get(TEST_URL_VARIABLE)
    if not url:
        pytest.fail(f"{TEST_URL_VARIABLE} is not set; run the tests via scripts/test-python.sh")
    server = Postgres(url)
    yield server
    server.drop_test_databases()


@pytest.fixture
def backups(tmp_path: Path) -> Backups:
    directory = tmp_path / "backups"
    directory.mkdir()
    return Backups(directory)


@pytest.fixture
def client(backups: Backups, postgres: Postgres) -> RestoreClient:
    return RestoreClient(
        api_key="test-key", backup_dir=backups.dir, database_url=postgres.url, timeout=60
    )


@pytest.fixture
def target() -> str:
    """A fresh target database name, dropped at the end of the session."""
    return f"{TARGET_PREFIX}{uuid.uuid4().hex[:12]}"
