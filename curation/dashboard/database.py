"""Build OUT/dashboard.duckdb: snapshot tables of the run plus the dashboard views.

Why snapshot tables rather than views over the Parquet files: DuckDB resolves a
relative path inside a view against the working directory of the process that
queries it (and `file_search_path` is a per-session setting, not stored in the
database file), so a view reading 'clips/*.parquet' breaks as soon as someone
runs `duckdb OUT/dashboard.duckdb` from another folder; an absolute path breaks
when the folder is moved or copied. Copying the review columns into the database
(everything except the embedding vectors) makes the file self-contained: it opens
from any working directory and survives `mv OUT OUT2`. The Parquet files remain the
source of truth; rebuild the dashboard after the tables change.
"""
import os
import re
import shutil
import tempfile
import uuid


import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from curation.dashboard import views
from curation.dashboard.run_folder import HEAVY_COLUMNS, SCORE_COLUMNS, RunFolder, runs_as_rows
from schemas import SCHEMA_VERSION, TABLES, SchemaError, clips_schema, validate_table
from schemas.io import VERSION_KEY

DATABASE_NAME = "dashboard.duckdb"
MEMORY_SHARE = "25%"  # default DuckDB memory_limit: a share of this machine's RAM (DuckDB's own default is 80%)
_SIZE = re.compile(r"\d+(\.\d+)?\s*(%|[KMGT]i?B|B)", re.I)


def duckdb_limits(memory_limit: str | None = None, temp_directory: str | None = None) -> dict:
    """The settings that bound a DuckDB connection (a 10M-clip report must not take the machine): memory_limit
    ("4GB", or "N%" of this machine's RAM; default MEMORY_SHARE) and temp_directory, where it spills past that
    (default: vidcurate-duckdb under the system temp folder). ValueError for a size DuckDB would not read."""
    limit = (memory_limit or MEMORY_SHARE).strip()
    if not _SIZE.fullmatch(limit):
        raise ValueError(f"memory limit {limit!r}: give a size such as 4GB or 512MiB, or a share of RAM such as 25%")
    if limit.endswith("%"):
        share = float(limit[:-1]) / 100
        if not 0 < share <= 1:
            raise ValueError(f"memory limit {limit!r}: a share of RAM is above 0% and at most 100%")
        limit = f"{int(share * os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')) >> 20}MiB"
    return {"memory_limit": limit,
            "temp_directory": temp_directory or os.path.join(tempfile.gettempdir(), "vidcurate-duckdb")}

_RUN_RECORDS_SCHEMA = pa.schema(
    [(name, pa.string()) for name in (
        "run_id", "status", "started_at", "finished_at", "input_uri", "output_uri", "config_hash",
        "counts", "timings", "not_configured", "versions", "config",
        "error_type", "error_message", "host", "project_version", "git_commit", "command_line",
    )]
)


def score_columns_for(folder: RunFolder) -> list[str]:
    """Schema score columns plus any other numeric clip column a filter rule uses."""
    numeric = {f.name for f in clips_schema if pa.types.is_floating(f.type) or pa.types.is_integer(f.type)}
    extra = [r.column for r in folder.filter_rules() if r.column in numeric and r.column not in SCORE_COLUMNS]
    return SCORE_COLUMNS + list(dict.fromkeys(extra))


def _parquet_files(folder: RunFolder, name: str) -> list[str] | None:
    """Local paths of table `name`'s visible Parquet files, their schemas checked against schemas/ (footers
    only); None when the folder is not on the local disk (then pyarrow reads it through fsspec)."""
    fs, files = folder.tables().files(name)  # the run version the folder pinned (schemas/table_set.py)
    if not isinstance(fs, LocalFileSystem):
        return None
    for path in files:
        schema = pq.read_schema(path)
        version = (schema.metadata or {}).get(VERSION_KEY, b"?").decode()
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise SchemaError(f"{name}: {path} has schema version {version}, this code reads {SCHEMA_VERSION}")
        validate_table(schema.empty_table(), TABLES[name], name)  # missing, unknown or uncastable columns
    return files


def _copy_table(con: duckdb.DuckDBPyConnection, folder: RunFolder, name: str, table: str, drop: tuple[str, ...] = ()) -> None:
    """CREATE TABLE `table` from run table `name`: DuckDB reads local Parquet itself, in parallel and out of
    core (a 10M-clip table never passes through Python); remote folders go through pyarrow."""
    files = _parquet_files(folder, name)
    columns = [f.name for f in TABLES[name] if f.name not in drop]
    empty = TABLES[name].empty_table().select(columns)
    con.register("_empty", empty)
    con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM _empty')  # the schema's column types
    con.unregister("_empty")
    if files is None:
        con.register("_incoming", folder.table(name, drop=drop))
        con.execute(f'INSERT INTO "{table}" SELECT * FROM _incoming')
        con.unregister("_incoming")
    elif files:
        cols = ", ".join('"' + c + '"' for c in columns)
        con.execute(f'INSERT INTO "{table}" BY NAME SELECT {cols} FROM read_parquet(?, union_by_name = true)', [files])


def _materialise(con: duckdb.DuckDBPyConnection, folder: RunFolder) -> list[str]:
    """Copy the run's tables into `con`; return the score columns used."""
    for name, drop in (("videos", ()), ("clips", HEAVY_COLUMNS), ("curated", HEAVY_COLUMNS), ("errors", ()),
                       ("dup_segments", ())):  # dup_segments: re-cut copies, matched spans between videos
        _copy_table(con, folder, name, name, drop)
    tables: dict[str, pa.Table] = {
        "run_records": pa.Table.from_pylist(runs_as_rows(folder.run_records()), schema=_RUN_RECORDS_SCHEMA),
    }
    rules = folder.filter_rules()
    tables["filter_rules"] = pa.table(
        {
            "position": pa.array([r.position for r in rules], pa.int32()),
            "column": pa.array([r.column for r in rules], pa.string()),
            "min": pa.array([r.min for r in rules], pa.float64()),
            "max": pa.array([r.max for r in rules], pa.float64()),
            "reason": pa.array([r.reason for r in rules], pa.string()),
        }
    )
    score_columns = score_columns_for(folder)
    tables["score_columns"] = pa.table(
        {"position": pa.array(range(len(score_columns)), pa.int32()), "score": pa.array(score_columns, pa.string())}
    )
    from curation.evaluate import evaluation_table

    tables["evaluation_rows"] = evaluation_table(folder)
    for name, table in tables.items():
        con.register("_incoming", table)
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _incoming')
        con.unregister("_incoming")
    return score_columns


def build_database(out_dir: str, storage_options: dict | None = None, limits: dict | None = None) -> str:
    """Write OUT/dashboard.duckdb (atomically) and return its URI; `limits`: see duckdb_limits (default: its defaults)."""
    folder = RunFolder(out_dir, storage_options or {})
    target = folder.path(DATABASE_NAME)
    workdir = tempfile.mkdtemp(prefix="vidcurate-dashboard-")
    try:
        local = os.path.join(workdir, DATABASE_NAME)
        con = duckdb.connect(local, config=limits or duckdb_limits())
        try:
            score_columns = _materialise(con, folder)
            n_clips = con.execute("SELECT count(*) FROM clips").fetchone()[0]
            for statement in views.all_views(score_columns, n_clips):
                con.execute(statement)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        _publish(local, target, folder.storage_options)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return target


def _publish(local: str, target: str, storage_options: dict) -> None:
    """Put the finished file at `target` so readers never open a half-written database."""
    fs, path = fsspec.core.url_to_fs(target, **storage_options)
    tmp = f"{os.path.dirname(path)}/.tmp-{uuid.uuid4().hex}-{os.path.basename(path)}"
    fs.put_file(local, tmp)
    fs.mv(tmp, path)
