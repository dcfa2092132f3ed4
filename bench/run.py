#!/usr/bin/env python3
"""Benchmark of securerestore against psql and pg_restore on the project's sample database.

On one PostgreSQL server, the script builds the sample database at a given scale, dumps it with
the real tools (pg_dump piped through gzip and zstd, pg_dump -Fc, securerestore pack), restores
each backup onto a fresh database with each tool, checks every restored database against the
source, and writes a table of wall time, CPU time and peak memory to bench/results/.

Two other modes answer narrower questions: --decode-only measures the engine's decoder alone
(1 and 2 threads), --rss-scales restores the packed gzip backup at several scales to show that
the engine's memory does not grow with the dump.

Python 3 standard library only. See bench/README.md for what the columns mean.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "bench" / "sample"
RESULTS = REPO / "bench" / "results"
TIME_BIN = Path("/usr/bin/time")
MIB = 1024 * 1024


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


# ---------------------------------------------------------------------------------------------
# What is measured


@dataclass(frozen=True)
class Backup:
    """One backup file of a dataset, and how it is made."""

    key: str
    file: str
    made_by: str
    sealed: bool = True


BACKUPS = {
    "gz": Backup("gz", "sample.sql.gz", "pg_dump | gzip -6"),
    "zst": Backup("zst", "sample.sql.zst", "pg_dump | zstd -3"),
    "custom": Backup("custom", "sample.dump", "pg_dump -Fc", sealed=False),
    "packed-gz": Backup("packed-gz", "sample-packed.sql.gz", "securerestore pack --format gzip"),
    "packed-zst": Backup("packed-zst", "sample-packed.sql.zst", "securerestore pack --format zstd"),
    "inserts-gz": Backup("inserts-gz", "sample-inserts.sql.gz", "pg_dump --inserts | gzip -6"),
}


@dataclass(frozen=True)
class Config:
    """One way of restoring one backup: a row of the table."""

    name: str
    label: str
    runner: str  # "psql", "pg_restore" or "engine"
    backup: str  # a key of BACKUPS
    jobs: int = 1
    inserts: bool = False  # restores the --inserts dump of the smaller dataset
    baseline: str = "psql-gz"  # the row its ratio is taken against


def configurations(with_zstd: bool) -> list[Config]:
    """Every row of the restore table, in the order they run and print."""
    configs = [
        Config("psql-gz", "gunzip -c .sql.gz | psql", "psql", "gz"),
        Config("psql-zst", "zstd -dc .sql.zst | psql", "psql", "zst"),
        Config("pg_restore-j1", "pg_restore -j1 (custom)", "pg_restore", "custom", 1),
        Config("pg_restore-j2", "pg_restore -j2 (custom)", "pg_restore", "custom", 2),
    ]
    engine_backups = [
        ("gz", ".sql.gz"),
        ("zst", ".sql.zst"),
        ("packed-gz", "packed .sql.gz"),
        ("packed-zst", "packed .sql.zst"),
    ]
    for key, described in engine_backups:
        for jobs in (1, 2, 4):
            label = f"securerestore {described} --jobs {jobs}"
            configs.append(Config(f"engine-{key}-j{jobs}", label, "engine", key, jobs))
    configs += [
        Config(
            "psql-inserts",
            "gunzip -c --inserts | psql",
            "psql",
            "inserts-gz",
            inserts=True,
            baseline="psql-inserts",
        ),
        Config(
            "engine-inserts-j2",
            "securerestore --inserts --jobs 2",
            "engine",
            "inserts-gz",
            2,
            inserts=True,
            baseline="psql-inserts",
        ),
    ]
    if not with_zstd:
        configs = [c for c in configs if c.backup != "zst"]
    return configs


@dataclass
class Measure:
    """One timed run.

    `cpu_seconds` is the restoring tool's own CPU time (the engine; pg_restore; gunzip or zstd
    and psql together), `server_cpu_seconds` that of the PostgreSQL server's processes over the
    run (None when the server is not on this machine). Peak RSS is the engine's only.
    """

    wall_seconds: float
    cpu_seconds: float | None = None
    peak_rss_kib: int | None = None
    engine_seconds: float | None = None
    server_cpu_seconds: float | None = None


@dataclass
class Row:
    """The runs of one configuration, summarised."""

    config: Config
    runs: list[Measure] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(m.wall_seconds for m in self.runs)

    @property
    def cpu(self) -> float | None:
        values = [m.cpu_seconds for m in self.runs if m.cpu_seconds is not None]
        return statistics.median(values) if values else None

    @property
    def server_cpu(self) -> float | None:
        values = [m.server_cpu_seconds for m in self.runs if m.server_cpu_seconds is not None]
        return statistics.median(values) if values else None

    @property
    def cpu_floor(self) -> float | None:
        """The least wall time the run's CPU work (tool and server) allows on this machine."""
        if self.cpu is None or self.server_cpu is None:
            return None
        return (self.cpu + self.server_cpu) / (os.cpu_count() or 1)

    @property
    def peak_rss_mib(self) -> float | None:
        values = [m.peak_rss_kib for m in self.runs if m.peak_rss_kib is not None]
        return max(values) / 1024 if values else None


# ---------------------------------------------------------------------------------------------
# Tools and server


@dataclass
class Tools:
    """The binaries the benchmark runs."""

    cli: Path
    pg_bin: Path
    zstd: str | None

    def pg(self, name: str) -> str:
        return str(self.pg_bin / name)


def find_tools(cli: Path | None) -> Tools:
    """Locate the engine (building it when missing), the PostgreSQL clients and zstd."""
    cli = cli or REPO / "target" / "release" / "securerestore"
    if not cli.exists() or not supports_pack(cli):
        print(f"building {cli} (cargo build --release -p restore-cli) …", flush=True)
        subprocess.run(["cargo", "build", "--release", "-p", "restore-cli"], cwd=REPO, check=True)
    if not supports_pack(cli):
        raise BenchError(f"{cli} has no `pack` command: rebuild it from this tree")

    zstd = shutil.which("zstd")
    if zstd is None:
        print("zstd is not installed: the .sql.zst rows are skipped", flush=True)
    return Tools(cli=cli, pg_bin=postgres_bindir(), zstd=zstd)


def supports_pack(cli: Path) -> bool:
    probe = subprocess.run([str(cli), "pack", "--help"], capture_output=True, check=False)
    return probe.returncode == 0


def postgres_bindir() -> Path:
    """`pg_config --bindir`, else the highest /usr/lib/postgresql/*/bin with pg_dump in it."""
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if out.returncode == 0 and (bindir / "pg_dump").exists():
            return bindir
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_dump").exists()]
    if not candidates:
        raise BenchError("no PostgreSQL client binaries: install them or put pg_config on PATH")
    return max(candidates, key=lambda p: float(p.parent.name))


@dataclass
class Server:
    """The PostgreSQL server every database of the benchmark lives on."""

    url: str
    managed: bool  # the managed local server, rather than SECURERESTORE_DATABASE_URL
    started_here: bool
    postmaster: int | None = None  # its process on this machine, when it is on this machine

    def database_url(self, database: str) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(database)))


def start_server(tools: Tools, work_dir: Path, fast: bool) -> Server:
    """Use SECURERESTORE_DATABASE_URL, or start the managed local PostgreSQL."""
    url = os.environ.get("SECURERESTORE_DATABASE_URL")
    if url:
        server = Server(url=url, managed=False, started_here=False)
    else:
        if "SECURERESTORE_STATE_DIR" not in os.environ and os.geteuid() == 0:
            os.environ["SECURERESTORE_STATE_DIR"] = str(work_dir / "state")
        status = [str(tools.cli), "local", "status"]
        running = subprocess.run(status, capture_output=True, check=False)
        start = [str(tools.cli), "local", "start"] + (["--fast"] if fast else [])
        out = run(start)
        server = Server(
            url=out.strip().splitlines()[-1],
            managed=True,
            started_here=running.returncode != 0,
        )

    superuser = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    if sql(tools, server, "postgres", superuser) != "t":
        raise BenchError("the server's user must be a superuser")
    # The checkpointer lives as long as the server; a psql session's backend may be gone by
    # the time its number is looked up.
    process, data_directory = sql(
        tools,
        server,
        "postgres",
        "SELECT pid, current_setting('data_directory') FROM pg_stat_activity "
        "WHERE backend_type = 'checkpointer'",
    ).split("|")
    server.postmaster = find_postmaster(int(process), data_directory)
    return server


def find_postmaster(child: int, data_directory: str) -> int | None:
    """The server's postmaster: the parent of one of its processes, if that runs on this machine.

    A process of a server elsewhere may share its number with an unrelated local process, so
    both must be postgres processes, and the parent must work in the server's data directory
    where this user may see that (the postmaster's working directory is its data directory).
    """

    def is_postgres(pid: int) -> bool:
        return Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres", "postmaster")

    try:
        status = Path(f"/proc/{child}/status").read_text()
        ppid = next(line for line in status.splitlines() if line.startswith("PPid:"))
        parent = int(ppid.split()[1])
        if not (is_postgres(child) and is_postgres(parent)):
            return None
    except (OSError, StopIteration, ValueError):
        return None
    try:
        if Path(f"/proc/{parent}/cwd").resolve() != Path(data_directory).resolve():
            return None
    except OSError:
        pass  # another user's process: its working directory is not ours to see
    return parent


def server_cpu_seconds(postmaster: int | None) -> float | None:
    """CPU time of the server so far: the postmaster, its live children, and those it reaped.

    Backends that ended are counted through the postmaster's children times, which the kernel
    adds when the postmaster waits for them; the ones alive (checkpointer, WAL writer,
    autovacuum) through their own.
    """
    if postmaster is None:
        return None
    ticks = 0
    try:
        for pid in [postmaster, *children(postmaster)]:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            # Fields 14-17 of proc(5): utime, stime, cutime, cstime; the list starts at field 3.
            utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
            ticks += utime + stime + (cutime + cstime if pid == postmaster else 0)
    except (OSError, ValueError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def children(parent: int) -> list[int]:
    try:
        return [
            int(pid) for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        ]
    except OSError:
        pass
    # Kernels built without the children list: every process's parent, from its status.
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = next(
            (line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), ""
        )
        if ppid == str(parent):
            found.append(int(entry.name))
    return found


def stop_server(tools: Tools, server: Server) -> None:
    if server.started_here:
        run([str(tools.cli), "local", "stop"])


# ---------------------------------------------------------------------------------------------
# Small wrappers


def run(cmd: list[str], **kwargs) -> str:
    """Run a command to its end; its standard output, or an error with its standard error."""
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise BenchError(f"{shown(cmd)} exited with {done.returncode}:\n{done.stderr.strip()}")
    return done.stdout


def shown(cmd: list[str]) -> str:
    """A command as a shell would read it, with server URLs (which may hold a password) hidden."""

    def hide(arg: str) -> str:
        if arg.startswith(("postgresql://", "postgres://")):
            return "$SERVER/" + urllib.parse.urlsplit(arg).path.lstrip("/")
        return arg

    return shlex.join(hide(str(a)) for a in cmd)


def sql(tools: Tools, server: Server, database: str, query: str) -> str:
    cmd = [
        tools.pg("psql"),
        "-X",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        server.database_url(database),
        "-c",
        query,
    ]
    return run(cmd).strip()


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def drop_database(tools: Tools, server: Server, database: str) -> None:
    sql(
        tools,
        server,
        "postgres",
        f"DROP DATABASE IF EXISTS {quote_ident(database)} WITH (FORCE)",
    )


def database_exists(tools: Tools, server: Server, database: str) -> bool:
    literal = database.replace("'", "''")
    return (
        sql(
            tools,
            server,
            "postgres",
            f"SELECT count(*) FROM pg_database WHERE datname = '{literal}'",
        )
        == "1"
    )


def engine_env(server: Server) -> dict[str, str]:
    return {**os.environ, "SECURERESTORE_DATABASE_URL": server.url}


# ---------------------------------------------------------------------------------------------
# Step 1: the dataset


@dataclass
class Dataset:
    """The sample database at one scale, its backups and its checksums, cached in a directory."""

    scale: float
    dir: Path

    @property
    def slug(self) -> str:
        return f"{self.scale:g}".replace(".", "_")

    @property
    def source_db(self) -> str:
        return f"bench_source_{self.slug}"

    def path(self, key: str) -> Path:
        return self.dir / BACKUPS[key].file

    @property
    def checksums_file(self) -> Path:
        return self.dir / "source.json"


def dataset(work_dir: Path, scale: float) -> Dataset:
    return Dataset(scale=scale, dir=work_dir / f"scale-{scale:g}")


def source_marker(ds: Dataset) -> str:
    return f"securerestore bench source, scale {ds.scale:g}, complete"


def build_source(tools: Tools, server: Server, ds: Dataset) -> None:
    """Generate the sample database, unless a complete one of this scale is already there."""
    if database_exists(tools, server, ds.source_db):
        comment = sql(
            tools,
            server,
            "postgres",
            f"SELECT shobj_description(oid, 'pg_database') FROM pg_database "
            f"WHERE datname = '{ds.source_db}'",
        )
        if comment == source_marker(ds):
            return
    print(f"generating the sample database at scale {ds.scale:g} …", flush=True)
    started = time.monotonic()

    drop_database(tools, server, ds.source_db)
    sql(tools, server, "postgres", f"CREATE DATABASE {ds.source_db}")
    url = server.database_url(ds.source_db)
    psql = [tools.pg("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]
    run([*psql, "-f", str(SAMPLE / "schema.sql")])
    run([*psql, "-v", f"scale={ds.scale:g}", "-f", str(SAMPLE / "data.sql")])
    # Left to autovacuum, the freshly inserted rows would be vacuumed during the timed runs.
    sql(tools, server, ds.source_db, "VACUUM (FREEZE, ANALYZE)")
    sql(
        tools,
        server,
        "postgres",
        f"COMMENT ON DATABASE {ds.source_db} IS '{source_marker(ds)}'",
    )

    print(f"  generated in {time.monotonic() - started:.1f} s", flush=True)


# ---------------------------------------------------------------------------------------------
# Step 2: the backups


def make_backups(tools: Tools, server: Server, ds: Dataset, keys: list[str]) -> None:
    """Make the backups of `keys` that are not cached yet, and the source's checksums."""
    missing = [k for k in keys if not ds.path(k).exists()]
    if not missing and ds.checksums_file.exists():
        return
    ds.dir.mkdir(parents=True, exist_ok=True)
    build_source(tools, server, ds)
    url = server.database_url(ds.source_db)
    dump = [tools.pg("pg_dump"), "-d", url]

    for key in missing:
        out = ds.path(key)
        partial = out.with_name("partial-" + out.name)
        print(f"  making {out.name} ({BACKUPS[key].made_by}) …", flush=True)
        if key == "gz":
            dump_piped(dump, ["gzip", "-6"], partial)
        elif key == "zst":
            dump_piped(dump, [tools.zstd or "zstd", "-3", "-q"], partial)
        elif key == "inserts-gz":
            dump_piped([*dump, "--inserts"], ["gzip", "-6"], partial)
        elif key == "custom":
            run([*dump, "-Fc", "-f", str(partial)])
        else:
            pack(tools, ds, key, partial)
        partial.rename(out)
        if BACKUPS[key].sealed:
            run([str(tools.cli), "--backup-dir", str(ds.dir), "seal", out.name])

    if not ds.checksums_file.exists():
        ds.checksums_file.write_text(json.dumps(fingerprint(tools, server, ds.source_db), indent=1))


def dump_piped(dump: list[str], compress: list[str], out: Path) -> None:
    """pg_dump's plain output piped through a compressor into `out`."""
    with out.open("wb") as sink:
        dumper = subprocess.Popen(dump, stdout=subprocess.PIPE)
        compressor = subprocess.Popen(compress, stdin=dumper.stdout, stdout=sink)
        dumper.stdout.close()
        compressor.wait()
        dumper.wait()
    if dumper.returncode or compressor.returncode:
        raise BenchError(
            f"{shown(dump)} | {shown(compress)} failed "
            f"({dumper.returncode}, {compressor.returncode})"
        )


def pack(tools: Tools, ds: Dataset, key: str, out: Path) -> None:
    """Repack the gzip dump into many members or frames with `securerestore pack` (sealed)."""
    compression = "gzip" if key == "packed-gz" else "zstd"
    run(
        [
            str(tools.cli),
            "--backup-dir",
            str(ds.dir),
            "pack",
            str(ds.path("gz")),
            "--format",
            compression,
            "--name",
            out.name,
        ]
    )
    sealed = ds.dir / (out.name + ".sha256")
    if sealed.exists():
        sealed.unlink()  # sealed again under the final name


# ---------------------------------------------------------------------------------------------
# Step 3: the timed runs


def prepare_target(tools: Tools, server: Server, target: str, create: bool) -> None:
    """A clean slate: no target, dirty pages flushed, and an empty target for the clients."""
    drop_database(tools, server, target)
    sql(tools, server, "postgres", "CHECKPOINT")
    if create:
        sql(tools, server, "postgres", f"CREATE DATABASE {quote_ident(target)}")


def command(tools: Tools, server: Server, ds: Dataset, config: Config, target: str) -> list[str]:
    """The restoring command (for psql, the part after the pipe)."""
    url = server.database_url(target)
    backup = str(ds.path(config.backup))
    if config.runner == "psql":
        return [
            tools.pg("psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-o",
            "/dev/null",
        ]
    if config.runner == "pg_restore":
        return [
            tools.pg("pg_restore"),
            "--exit-on-error",
            "-j",
            str(config.jobs),
            "-d",
            url,
            backup,
        ]
    return [
        str(tools.cli),
        "--backup-dir",
        str(ds.dir),
        "restore",
        BACKUPS[config.backup].file,
        "--target",
        target,
        "--jobs",
        str(config.jobs),
        "--json",
    ]


def decompressor(tools: Tools, ds: Dataset, config: Config) -> list[str]:
    backup = str(ds.path(config.backup))
    if config.backup == "zst":
        return [tools.zstd or "zstd", "-dc", backup]
    return ["gunzip", "-c", backup]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_psql_pipeline(decompress: list[str], restore: list[str]) -> Measure:
    before = children_cpu()
    started = time.monotonic()
    reader = subprocess.Popen(decompress, stdout=subprocess.PIPE)
    loader = subprocess.Popen(restore, stdin=reader.stdout, stderr=subprocess.PIPE)
    reader.stdout.close()
    _, errors = loader.communicate()
    reader.wait()
    wall = time.monotonic() - started

    if reader.returncode or loader.returncode:
        raise BenchError(f"{shown(decompress)} | {shown(restore)} failed:\n{errors.decode()}")
    return Measure(wall_seconds=wall, cpu_seconds=children_cpu() - before)


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, Measure]:
    """Run `cmd`, with its CPU time and peak RSS from /usr/bin/time or from getrusage."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        timed = cmd
        if TIME_BIN.exists():
            timed = [str(TIME_BIN), "-f", "%e %U %S %M", "-o", report.name, *cmd]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        done = subprocess.run(timed, capture_output=True, text=True, env=env, check=False)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise BenchError(
                f"{shown(cmd)} exited with {done.returncode}:\n"
                f"{done.stderr.strip()}\n{done.stdout.strip()[-2000:]}"
            )

        if TIME_BIN.exists():
            _, user, system, rss = report.read().split()[-4:]
            cpu, rss_kib = float(user) + float(system), int(rss)
        else:
            # ru_maxrss of the children is the largest of any child so far, not this one's:
            # right only while the engine is the biggest process the script has waited for.
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            rss_kib = after.ru_maxrss
    return done.stdout, Measure(wall_seconds=wall, cpu_seconds=cpu, peak_rss_kib=rss_kib)


def run_once(tools: Tools, server: Server, ds: Dataset, config: Config, target: str) -> Measure:
    prepare_target(tools, server, target, create=config.runner != "engine")
    cmd = command(tools, server, ds, config, target)

    server_before = server_cpu_seconds(server.postmaster)
    if config.runner == "psql":
        measure = run_psql_pipeline(decompressor(tools, ds, config), cmd)
    elif config.runner == "pg_restore":
        before = children_cpu()
        started = time.monotonic()
        run(cmd)
        wall = time.monotonic() - started
        measure = Measure(wall_seconds=wall, cpu_seconds=children_cpu() - before)
    else:
        out, measure = run_measured(cmd, env=engine_env(server))
        status = json.loads(out)
        if status.get("status") != "completed":
            raise BenchError(f"{config.name}: the engine reported {status.get('status')}: {out}")
        measure.engine_seconds = status["duration_seconds"]
    # The tool's connections end as it exits; give the postmaster a moment to reap them.
    time.sleep(0.3)
    server_after = server_cpu_seconds(server.postmaster)
    if server_before is not None and server_after is not None:
        measure.server_cpu_seconds = server_after - server_before
    return measure


def run_restores(
    tools: Tools,
    server: Server,
    main: Dataset,
    small: Dataset,
    configs: list[Config],
    reps: int,
    keep: bool,
) -> list[Row]:
    """Every configuration `reps` times, round by round, each restored database checked.

    Configurations take turns (one run of each per round) rather than running their reps back
    to back: this machine's speed drifts by ±10% over minutes, and taking turns spreads a slow
    spell over every configuration instead of charging it to one. The database of each
    configuration's last run is checked against the source.
    """
    rows = [Row(config) for config in configs]
    for rep in range(reps):
        for row in rows:
            config = row.config
            ds = small if config.inserts else main
            target = "bench_" + config.name.replace("-", "_")
            row.runs.append(run_once(tools, server, ds, config, target))
            print(
                f"  {config.label:<42} run {rep + 1}/{reps}: {row.runs[-1].wall_seconds:8.2f} s",
                flush=True,
            )
            if rep == reps - 1:
                check_restored(tools, server, ds, target)
            if rep < reps - 1 or not keep:
                drop_database(tools, server, target)
    return rows


# ---------------------------------------------------------------------------------------------
# Step 4: the check


TABLES = """
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1
"""

OBJECTS = """
SELECT x FROM (
    SELECT 'index ' || indexdef FROM pg_indexes
    WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL
    SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE conrelid <> 0 AND connamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'sequence ' || schemaname || '.' || sequencename || ' '
           || coalesce(last_value::text, '-')
    FROM pg_sequences
    UNION ALL
    SELECT 'view ' || schemaname || '.' || viewname FROM pg_views
    WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace
) objects(x) ORDER BY x
"""


def table_fingerprint(table: str) -> str:
    # Rows are hashed one by one and the hashes sorted, rather than the rows' text aggregated
    # whole, because a table's text past 1 GB (events at scale 3) exceeds a text value's limit.
    return (
        f"SELECT count(*) || ' ' || md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
        f"FROM (SELECT md5(t::text) AS h FROM {table} t) hashed"
    )


def fingerprint(tools: Tools, server: Server, database: str) -> dict:
    """Per-table row count and content hash, and the schema objects, of one database."""
    tables = sql(tools, server, database, TABLES).splitlines()
    return {
        "tables": {t: sql(tools, server, database, table_fingerprint(t)) for t in tables},
        "objects": sql(tools, server, database, OBJECTS).splitlines(),
    }


def check_restored(tools: Tools, server: Server, ds: Dataset, target: str) -> None:
    """Fail loudly when the restored database differs from the source in any table or object."""
    expected = json.loads(ds.checksums_file.read_text())
    actual = fingerprint(tools, server, target)

    problems = []
    for table in sorted(set(expected["tables"]) | set(actual["tables"])):
        want, got = expected["tables"].get(table), actual["tables"].get(table)
        if want != got:
            problems.append(f"table {table}: source {want}, restored {got}")
    missing = sorted(set(expected["objects"]) - set(actual["objects"]))
    extra = sorted(set(actual["objects"]) - set(expected["objects"]))
    problems += [f"missing {o}" for o in missing] + [f"unexpected {o}" for o in extra]

    if problems:
        raise BenchError(f"{target} differs from {ds.source_db}:\n  " + "\n  ".join(problems))
    print(
        f"  {target}: {len(actual['tables'])} tables and {len(actual['objects'])} objects "
        "match the source",
        flush=True,
    )


# ---------------------------------------------------------------------------------------------
# Step 5: the table


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def restore_table(rows: list[Row], main: Dataset, small: Dataset) -> str:
    by_name = {row.config.name: row for row in rows}
    lines = [
        "| configuration | scale | wall s | \u00d7 baseline | engine s | tool CPU s "
        "| server CPU s | CPU floor s | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        baseline = by_name.get(row.config.baseline)
        ratio = row.wall / baseline.wall if baseline else None
        engine = [m.engine_seconds for m in row.runs if m.engine_seconds is not None]
        scale = small.scale if row.config.inserts else main.scale
        label = row.config.label.replace("|", "\\|")
        lines.append(
            f"| {label} | {scale:g} | {row.wall:.2f} | {fmt(ratio)} | "
            f"{fmt(statistics.median(engine) if engine else None)} | {fmt(row.cpu)} | "
            f"{fmt(row.server_cpu)} | {fmt(row.cpu_floor)} | {fmt(row.peak_rss_mib, 1)} |"
        )
    return "\n".join(lines)


def restore_targets(rows: list[Row]) -> list[str]:
    """The targets README.md sets for the restore table, each met or missed."""
    by_name = {row.config.name: row for row in rows}
    wall = {name: row.wall for name, row in by_name.items()}
    verdicts = []

    def compare(name: str, baseline: str, limit: float) -> None:
        runs = [m.wall_seconds for m in by_name[name].runs]
        base = [m.wall_seconds for m in by_name[baseline].runs]
        paired = statistics.median(a / b for a, b in zip(runs, base))
        ratio = wall[name] / wall[baseline]
        verdicts.append(verdict(f"{name} / {baseline}", ratio, limit, paired=paired))

    engine_gz = [n for n in wall if n.startswith("engine-gz-")]
    if engine_gz:
        best = min(engine_gz, key=wall.get)
        for baseline, limit in (("psql-gz", 0.60), ("pg_restore-j2", 0.95)):
            if baseline in wall:
                compare(best, baseline, limit)
    if "engine-inserts-j2" in wall and "psql-inserts" in wall:
        compare("engine-inserts-j2", "psql-inserts", 1.0)
    return verdicts


def verdict(
    what: str, value: float, limit: float, at_least: bool = False, paired: float | None = None
) -> str:
    """One target, judged on the ratio of medians. `paired` is the median of the ratios of the
    runs made in the same round, shown beside it: the machine's speed drifts over minutes, and a
    ratio within one round is less exposed to that drift than a ratio of two medians."""
    met = value >= limit if at_least else value <= limit
    sign = "≥" if at_least else "≤"
    within = "" if paired is None else f", {paired:.3f} within rounds"
    return f"{what}: {value:.3f}{within} (target {sign} {limit:g}) — {'met' if met else 'MISSED'}"


# ---------------------------------------------------------------------------------------------
# Step 6: decoder throughput


def decode_throughput(tools: Tools, ds: Dataset, keys: list[str], reps: int) -> list[dict]:
    """MiB/s of the engine's decoder alone, with 1 and 2 threads, on each backup."""
    results = []
    for key in keys:
        entry: dict = {"backup": BACKUPS[key].file, "mib_per_s": {}}
        speeds: dict[int, list[float]] = {1: [], 2: []}
        # The thread counts take turns, so that a slow spell of the machine hits both alike.
        for _ in range(reps):
            for threads in (1, 2):
                cmd = [
                    str(tools.cli),
                    "--backup-dir",
                    str(ds.dir),
                    "--decode-threads",
                    str(threads),
                    "verify",
                    BACKUPS[key].file,
                    "--decode-only",
                    "--json",
                ]
                report = json.loads(run(cmd))
                speeds[threads].append(report["decoded_bytes"] / MIB / max(report["seconds"], 1e-9))
        entry["paired_speedup"] = statistics.median(b / a for a, b in zip(speeds[1], speeds[2]))
        for threads in (1, 2):
            entry["mib_per_s"][threads] = statistics.median(speeds[threads])
            print(
                f"  {entry['backup']:<24} {threads} thread(s): "
                f"{entry['mib_per_s'][threads]:8.1f} MiB/s (median of {reps})",
                flush=True,
            )
        results.append(entry)
    return results


def decode_table(results: list[dict]) -> str:
    lines = [
        "| backup | 1 thread MiB/s | 2 threads MiB/s | speedup |",
        "|---|---:|---:|---:|",
    ]
    for entry in results:
        one, two = entry["mib_per_s"][1], entry["mib_per_s"][2]
        lines.append(f"| {entry['backup']} | {one:.1f} | {two:.1f} | {two / one:.2f} |")
    return "\n".join(lines)


def decode_targets(results: list[dict]) -> list[str]:
    return [
        verdict(
            f"{e['backup']} 2 threads / 1 thread",
            e["mib_per_s"][2] / e["mib_per_s"][1],
            1.8,
            at_least=True,
            paired=e.get("paired_speedup"),
        )
        for e in results
        if e["backup"].startswith("sample-packed")
    ]


# ---------------------------------------------------------------------------------------------
# Step 7: memory across scales


def rss_across_scales(
    tools: Tools,
    server: Server,
    work_dir: Path,
    scales: list[float],
    reps: int,
    keep: bool,
) -> list[Row]:
    """The packed gzip backup restored with 2 workers at each scale."""
    rows = []
    for scale in scales:
        ds = dataset(work_dir, scale)
        make_backups(tools, server, ds, ["gz", "packed-gz"])
        config = Config(
            f"engine-packed-gz-j2-scale{scale:g}",
            f"packed .sql.gz, scale {scale:g}",
            "engine",
            "packed-gz",
            2,
        )
        rows += run_restores(tools, server, ds, ds, [config], reps, keep)
    return rows


def rss_table(rows: list[Row], work_dir: Path, scales: list[float]) -> str:
    lines = [
        "| scale | backup MiB | wall s | CPU s | peak RSS MiB |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row, scale in zip(rows, scales, strict=True):
        size = dataset(work_dir, scale).path("packed-gz").stat().st_size / MIB
        lines.append(
            f"| {scale:g} | {size:.1f} | {row.wall:.2f} | {fmt(row.cpu)} | "
            f"{fmt(row.peak_rss_mib, 1)} |"
        )
    return "\n".join(lines)


def rss_targets(rows: list[Row]) -> list[str]:
    peaks = [row.peak_rss_mib for row in rows if row.peak_rss_mib is not None]
    if not peaks:
        return []
    verdicts = [verdict("largest peak RSS (MiB)", max(peaks), 256)]
    if len(peaks) > 1:
        verdicts.append(
            f"peak RSS at the largest scale is {peaks[-1] / peaks[0]:.2f}\u00d7 "
            "that at the smallest"
        )
    return verdicts


# ---------------------------------------------------------------------------------------------
# Step 8: the report


def machine(tools: Tools, server: Server) -> dict:
    """What the numbers were measured on."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [
        line.split(":", 1)[1].strip()
        for line in cpuinfo.splitlines()
        if line.startswith("model name")
    ]
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem_kib = next(
        (int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")),
        0,
    )
    settings = [
        "fsync",
        "synchronous_commit",
        "shared_buffers",
        "max_wal_size",
        "wal_level",
        "maintenance_work_mem",
        "max_parallel_maintenance_workers",
    ]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": models[0] if models else platform.processor(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "postgresql": sql(tools, server, "postgres", "SELECT version()"),
        "server": "managed local (securerestore local start)"
        if server.managed
        else "SECURERESTORE_DATABASE_URL",
        "server_settings": {s: sql(tools, server, "postgres", f"SHOW {s}") for s in settings},
        "securerestore": run([str(tools.cli), "--version"]).strip(),
        "commit": commit or "-",
        "pg_bindir": str(tools.pg_bin),
        "resource_measure": "/usr/bin/time" if TIME_BIN.exists() else "getrusage",
    }


def example_commands(
    tools: Tools, server: Server, main: Dataset, small: Dataset, configs: list[Config]
) -> list:
    """One command line per configuration, as run (the server's URL hidden)."""
    lines = []
    for config in configs:
        ds = small if config.inserts else main
        target = "bench_" + config.name.replace("-", "_")
        cmd = shown(command(tools, server, ds, config, target))
        if config.runner == "psql":
            cmd = f"{shown(decompressor(tools, ds, config))} | {cmd}"
        lines.append(f"{config.name}: {cmd}")
    return lines


@dataclass
class Report:
    """What one mode measured, ready to print and write."""

    name: str
    title: str
    table: str
    verdicts: list[str]
    settings: dict
    commands: list[str]
    raw: dict


def described(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def write_report(report: Report, about: dict) -> None:
    """bench/results/<name>.md and .json, and where they are."""
    md = [f"# {report.title}", "", report.table, ""]
    if report.verdicts:
        md += ["## Targets", "", *[f"- {v}" for v in report.verdicts], ""]
    md += ["## Machine", "", *[f"- {k}: {described(v)}" for k, v in about.items()], ""]
    md += [
        "## Settings",
        "",
        *[f"- {k}: {described(v)}" for k, v in report.settings.items()],
        "",
    ]
    if report.commands:
        md += ["## Commands", "", "```", *report.commands, "```", ""]
    payload = {
        "title": report.title,
        "machine": about,
        "settings": report.settings,
        "commands": report.commands,
        "verdicts": report.verdicts,
        **report.raw,
    }

    RESULTS.mkdir(parents=True, exist_ok=True)
    md_path, json_path = RESULTS / f"{report.name}.md", RESULTS / f"{report.name}.json"
    md_path.write_text("\n".join(md))
    json_path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(f"\nwrote {md_path}\n  and {json_path}")


def rows_json(rows: list[Row]) -> list[dict]:
    return [
        asdict(r.config) | {"runs": [asdict(m) for m in r.runs], "wall_median": r.wall}
        for r in rows
    ]


# ---------------------------------------------------------------------------------------------
# The modes


def restore_mode(args: argparse.Namespace, tools: Tools, server: Server, stamp: str) -> Report:
    """The restore table: every configuration on backups of one scale."""
    main_ds = dataset(args.work_dir, args.scale)
    small_ds = dataset(args.work_dir, args.scale / 10)
    configs = selected(configurations(tools.zstd is not None), args.only)
    # The packed backups are made from the gzip one, so it is always there.
    make_backups(
        tools,
        server,
        main_ds,
        sorted({c.backup for c in configs if not c.inserts} | {"gz"}),
    )
    if any(c.inserts for c in configs):
        make_backups(tools, server, small_ds, ["inserts-gz"])

    rows = run_restores(tools, server, main_ds, small_ds, configs, args.reps, args.keep)

    backups = {
        f"{ds.dir.name}/{BACKUPS[key].file}": (
            f"{BACKUPS[key].made_by}, {ds.path(key).stat().st_size / MIB:.1f} MiB"
        )
        for ds in (main_ds, small_ds)
        for key in BACKUPS
        if ds.path(key).exists()
    }
    settings = {
        "scale": f"{args.scale:g}",
        "inserts scale": f"{small_ds.scale:g}",
        "reps": args.reps,
        "work dir": str(args.work_dir),
        "backups": backups,
    }
    return Report(
        name=f"{stamp}-scale{args.scale:g}",
        title=f"securerestore restore benchmark, scale {args.scale:g}",
        table=restore_table(rows, main_ds, small_ds),
        verdicts=restore_targets(rows),
        settings=settings,
        commands=example_commands(tools, server, main_ds, small_ds, configs),
        raw={"rows": rows_json(rows)},
    )


def decode_mode(args: argparse.Namespace, tools: Tools, server: Server, stamp: str) -> Report:
    """Decoder throughput with 1 and 2 threads on each compressed backup."""
    ds = dataset(args.work_dir, args.scale)
    keys = [k for k in ("gz", "zst", "packed-gz", "packed-zst") if tools.zstd or k != "zst"]
    make_backups(tools, server, ds, keys)

    results = decode_throughput(tools, ds, keys, args.reps)

    decode = [
        str(tools.cli),
        "--decode-threads",
        "N",
        "verify",
        "NAME",
        "--decode-only",
        "--json",
    ]
    return Report(
        name=f"{stamp}-scale{args.scale:g}-decode",
        title=f"securerestore decoder throughput, scale {args.scale:g}",
        table=decode_table(results),
        verdicts=decode_targets(results),
        settings={
            "scale": f"{args.scale:g}",
            "reps": args.reps,
            "work dir": str(args.work_dir),
        },
        commands=[shown(decode)],
        raw={"decode": results},
    )


def rss_mode(args: argparse.Namespace, tools: Tools, server: Server, stamp: str) -> Report:
    """Peak memory of the engine restoring the packed gzip backup at several scales."""
    scales = rss_scales(args)
    rows = rss_across_scales(tools, server, args.work_dir, scales, args.reps, args.keep)

    ds = dataset(args.work_dir, scales[0])
    config = Config("engine-packed-gz-j2", "", "engine", "packed-gz", 2)
    return Report(
        name=f"{stamp}-rss-scales{'-'.join(f'{s:g}' for s in scales)}",
        title="securerestore peak memory across scales",
        table=rss_table(rows, args.work_dir, scales),
        verdicts=rss_targets(rows),
        settings={
            "scales": args.rss_scales,
            "reps": args.reps,
            "work dir": str(args.work_dir),
        },
        commands=[shown(command(tools, server, ds, config, "TARGET"))],
        raw={"rows": rows_json(rows)},
    )


def rss_scales(args: argparse.Namespace) -> list[float]:
    return sorted(float(s) for s in args.rss_scales.split(",") if s.strip())


# ---------------------------------------------------------------------------------------------
# The command


def parse_args(argv: list[str]) -> argparse.Namespace:
    default_work = (
        Path("/var/tmp/securerestore-bench")
        if os.geteuid() == 0
        else Path.home() / ".cache" / "securerestore-bench"
    )
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="sample scale (1: a plain dump of about 526 MB); default 1",
    )
    parser.add_argument("--reps", type=int, default=3, help="runs per configuration (median)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated configuration names or globs (engine-gz-*)",
    )
    parser.add_argument(
        "--decode-only",
        action="store_true",
        help="measure the engine's decoder alone, with 1 and 2 threads",
    )
    parser.add_argument(
        "--rss-scales",
        default="",
        help="comma-separated scales: packed .sql.gz, 2 workers, peak RSS each",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the source and restored databases and a server started here",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=default_work,
        help=f"where backups are cached by scale (default {default_work})",
    )
    parser.add_argument("--cli", type=Path, help="the securerestore binary to measure")
    parser.add_argument(
        "--fast-server",
        action="store_true",
        help="start the managed local server with fsync off (local start --fast)",
    )
    parser.add_argument("--list", action="store_true", help="list configuration names and exit")
    return parser.parse_args(argv)


def selected(configs: list[Config], only: str) -> list[Config]:
    if not only:
        return configs
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    chosen = [c for c in configs if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]
    if not chosen:
        raise BenchError(f"--only {only} matches no configuration (see --list)")
    return chosen


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(f"{c.name:<22} {c.label}" for c in configurations(True)))
        return 0
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    tools = find_tools(args.cli)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    server = start_server(tools, args.work_dir, args.fast_server)

    try:
        if args.rss_scales:
            report = rss_mode(args, tools, server, stamp)
        elif args.decode_only:
            report = decode_mode(args, tools, server, stamp)
        else:
            report = restore_mode(args, tools, server, stamp)
        print("\n" + report.table)
        for line in report.verdicts:
            print(line)
        write_report(report, machine(tools, server))
    finally:
        if not args.keep:
            drop_sources(tools, server, args)
            stop_server(tools, server)
    return 0


def drop_sources(tools: Tools, server: Server, args: argparse.Namespace) -> None:
    """The generated source databases; their backups and checksums stay cached."""
    for scale in {args.scale, args.scale / 10, *rss_scales(args)}:
        drop_database(tools, server, Dataset(scale, args.work_dir).source_db)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        sys.exit(1)
