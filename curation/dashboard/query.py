"""Run SQL against a run's dashboard.duckdb in a sandbox, and format the result for the terminal.

The database is self-contained (snapshot tables, see database.py), so a query
never needs a file: it is opened read-only with external access off, extension
install/load off and the configuration locked (DuckDB's "Securing DuckDB"
settings). COPY ... TO, read_text/read_csv, ATTACH, INSTALL and SET all fail.
"""
import os
import shutil
import tempfile
from contextlib import contextmanager

import duckdb
import fsspec
from fsspec.implementations.local import LocalFileSystem

from curation.dashboard.database import DATABASE_NAME, duckdb_limits
from curation.dashboard.text_table import format_table

MAX_ROWS = 1000

# Settings given at connect time; lock_configuration stops a statement from undoing them.
SANDBOX = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}
# Set after the memory limit and spill folder (DuckDB refuses a temp_directory once external access is off), in order.
SANDBOX_LAST = {
    "enable_external_access": False,  # no file or network access beyond the opened database
    "lock_configuration": True,
}


class QueryRefused(Exception):
    """The statement tried to leave the sandbox (files, network, extensions, settings, writes)."""


@contextmanager
def sandboxed(out_dir: str, storage_options: dict | None = None, limits: dict | None = None):
    """A read-only, locked DuckDB connection to OUT/dashboard.duckdb (remote folders: a local copy), bounded by
    `limits` (database.duckdb_limits; default: its defaults)."""
    uri = f"{out_dir.rstrip('/')}/{DATABASE_NAME}"
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    if not fs.exists(path):
        raise FileNotFoundError(f"{uri} does not exist: build it first with `vidcurate dashboard {out_dir}`")
    workdir = None
    if not isinstance(fs, LocalFileSystem):  # DuckDB opens local files only (and has no network here)
        workdir = tempfile.mkdtemp(prefix="vidcurate-query-")
        local = os.path.join(workdir, DATABASE_NAME)
        fs.get_file(path, local)
        path = local
    try:
        con = duckdb.connect(path, read_only=True, config=SANDBOX)
        try:
            for key, value in {**(limits or duckdb_limits()), **SANDBOX_LAST}.items():
                value = str(value).lower() if isinstance(value, bool) else "'" + str(value).replace("'", "''") + "'"
                con.execute(f"SET {key} = {value}")
            yield con
        finally:
            con.close()
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def query(out_dir: str, sql: str, max_rows: int = MAX_ROWS, storage_options: dict | None = None,
          limits: dict | None = None) -> str:
    """Result of `sql` on OUT/dashboard.duckdb (sandboxed, bounded by `limits`) as a text table."""
    with sandboxed(out_dir, storage_options, limits) as con:
        try:
            cur = con.execute(sql)
        except duckdb.PermissionException as e:
            raise QueryRefused(_first_line(e)) from None
        except duckdb.InvalidInputException as e:
            if "configuration has been locked" in str(e) or "read-only mode" in str(e):
                raise QueryRefused(_first_line(e)) from None
            raise
        if cur.description is None:
            return "OK"
        headers = [d[0] for d in cur.description]
        rows = cur.fetchmany(max_rows + 1)
    text = format_table(headers, rows[:max_rows])
    shown = min(len(rows), max_rows)
    more = f" (first {max_rows} shown; add LIMIT/OFFSET for more)" if len(rows) > max_rows else ""
    return f"{text}\n({shown} row{'s' if shown != 1 else ''}){more}"


def _first_line(e: Exception) -> str:
    return " ".join(str(e).split("\n")[0].split())
