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
import shutil
import tempfile
import uuid

import duckdb
import fsspec
import pyarrow as pa

from curation.dashboard import views
from curation.dashboard.run_folder import HEAVY_COLUMNS, SCORE_COLUMNS, RunFolder, runs_as_rows
from schemas import clips_schema

DATABASE_NAME = "dashboard.duckdb"

_RUN_RECORDS_SCHEMA = pa.schema(
    [(name, pa.string()) for name in (
        "run_id", "status", "started_at", "finished_at", "input_uri", "output_uri", "config_hash",
        "counts", "timings", "not_configured", "versions", "config",
    )]
)


def score_columns_for(folder: RunFolder) -> list[str]:
    """Schema score columns plus any other numeric clip column a filter rule uses."""
    numeric = {f.name for f in clips_schema if pa.types.is_floating(f.type) or pa.types.is_integer(f.type)}
    extra = [r.column for r in folder.filter_rules() if r.column in numeric and r.column not in SCORE_COLUMNS]
    return SCORE_COLUMNS + list(dict.fromkeys(extra))


def _materialise(con: duckdb.DuckDBPyConnection, folder: RunFolder) -> list[str]:
    """Copy the run's tables into `con`; return the score columns used."""
    tables: dict[str, pa.Table] = {
        "videos": folder.table("videos"),
        "clips": folder.table("clips", drop=HEAVY_COLUMNS),
        "curated": folder.table("curated", drop=HEAVY_COLUMNS),
        "errors": folder.table("errors"),
        "dup_segments": folder.table("dup_segments"),  # re-cut copies: matched spans between videos
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
    # --- evaluation against ground truth (evalcorpus) ---
    from curation.evaluate import evaluation_table

    tables["evaluation_rows"] = evaluation_table(folder)
    # --- end evaluation ---
    for name, table in tables.items():
        con.register("_incoming", table)
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _incoming')
        con.unregister("_incoming")
    return score_columns


def build_database(out_dir: str, storage_options: dict | None = None) -> str:
    """Write OUT/dashboard.duckdb (atomically) and return its URI."""
    folder = RunFolder(out_dir, storage_options or {})
    target = folder.path(DATABASE_NAME)
    workdir = tempfile.mkdtemp(prefix="vidcurate-dashboard-")
    try:
        local = os.path.join(workdir, DATABASE_NAME)
        con = duckdb.connect(local)
        try:
            score_columns = _materialise(con, folder)
            for statement in views.all_views(score_columns):
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
