"""The wheel installs into a new virtual environment on its own and restores from there."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import Backups, Postgres, film_dump

REPO = Path(__file__).resolve().parents[2]
WHEEL_VARIABLE = "SECURERESTORE_PY_WHEEL"


def built_wheel(tmp_path: Path) -> Path:
    """The wheel the test script built, else one built now."""
    given = os.environ.get(WHEEL_VARIABLE)
    if given:
        return Path(given)
    out = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "maturin", "build", "--release", "-q", "-o", str(out)],
        cwd=REPO / "restore-py",
        check=True,
    )
    (wheel,) = glob.glob(str(out / "*.whl"))
    return Path(wheel)


def test_wheel_restores_from_a_fresh_virtual_environment(
    tmp_path: Path, backups: Backups, postgres: Postgres, target: str
) -> None:
    wheel = built_wheel(tmp_path)
    assert "-cp39-abi3-" in wheel.name and wheel.name.startswith("secureai_restore_sdk-")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # --no-index: the wheel must need nothing from a package index.
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", str(wheel)], check=True
    )
    name = backups.write("backup_20240101_120000.sql.gz", film_dump(1000))
    program = textwrap.dedent(
        f"""
        import secureai.restore
        from secureai.restore import RestoreClient, RestoreOptions

        assert secureai.restore.__file__.startswith({str(venv)!r}), secureai.restore.__file__
        client = RestoreClient("key", backup_dir={str(backups.dir)!r},
                               database_url={postgres.url!r})
        client.seal_backup({name!r})
        restore = client.create_restore({name!r}, {target!r},
                                        options=RestoreOptions(verify=True))
        result = restore.wait_for_completion(timeout=120)
        print(result.status, result.summary.rows, result.verification_status)
        """
    )

    done = subprocess.run(
        [str(python), "-c", program],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["completed", "1000", "verified"]
    assert postgres.query("SELECT count(*) FROM public.film", target) == "1000"
