"""The README's Python examples, run as written against the test server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Backups, Postgres, film_dump
from secureai.restore import RestoreClient

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE_TARGETS = ["restored_db", "restored_async", "restored_0", "restored_1", "broken_db"]


def python_examples() -> list[str]:
    text = README.read_text()
    section = text.split("## From Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


EXAMPLES = dict(zip(["basic", "advanced", "errors", "async", "batch"], python_examples()))


@pytest.fixture(scope="module")
def example_setup(
    tmp_path_factory: pytest.TempPathFactory, postgres: Postgres
) -> Iterator[Backups]:
    backups = Backups(tmp_path_factory.mktemp("readme-backups"))
    backups.write("backup_20240101_120000.sql.gz", film_dump(3000))
    backups.write("backup_20240102_120000.sql.gz", film_dump(40))
    backups.write("backup_broken.sql", film_dump(5) + "SELECT no_such_function();\n")

    def drop_targets() -> None:
        for name in EXAMPLE_TARGETS:
            postgres.query(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    drop_targets()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SECURERESTORE_BACKUP_DIR", str(backups.dir))
        patch.setenv("SECURERESTORE_DATABASE_URL", postgres.url)
        yield backups
    drop_targets()


def test_the_readme_has_the_five_examples() -> None:
    assert len(python_examples()) == 5


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_readme_example_runs(
    example: str,
    example_setup: Backups,
    postgres: Postgres,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if example == "errors" and not postgres.database_exists("restored_db"):
        # The error example refuses to overwrite what the basic example restored.
        client = RestoreClient("key")
        client.create_restore("backup_20240101_120000.sql.gz", "restored_db").wait_for_completion()

    exec(compile(EXAMPLES[example], f"README.md:{example}", "exec"), {"__name__": "example"})
    printed = capsys.readouterr().out

    expected = {
        "basic": ["Progress: 100%", "completed", "3000 rows", "'restore_id': 'rst_"],
        "advanced": [],
        "errors": ["backup_not_found 404 req_", "use force", "restore_failed"],
        "async": ["rst_", "completed"],
        "batch": ["['completed', 'completed']"],
    }[example]
    for words in expected:
        assert words in printed, printed
    if example == "basic":
        assert printed.index("Progress: 100%") < printed.index("completed")
        assert postgres.query("SELECT count(*) FROM public.film", "restored_db") == "3000"
    if example == "advanced":
        assert postgres.query("SELECT count(*) FROM public.film", "restored_db") == "3000"
    if example == "batch":
        assert postgres.query("SELECT count(*) FROM public.film", "restored_1") == "40"
