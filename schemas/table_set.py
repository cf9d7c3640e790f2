"""Table sets: the final tables of one run version, committed together and read together.

`OUT/_tables.json` (TABLE_SET) names, for the run version that committed last, the files of every final
table: {"version", "committed_at", "previous", "tables": {name: {"version", "files", "rows"}}}, file names
relative to OUT/<name>. The writer (pipelines/store.py) puts each table's files next to the old ones under new
names and replaces this one file last (an atomic rename or put), so a run killed at any point leaves readers on
the complete earlier set. Files of the set it replaced stay until the next commit, so a reader that resolved the
set just before a commit can still finish.

`folder_files` is the one resolver every table read goes through (schemas.io.table_files uses it); readers of
several tables pin one set with `open_table_set`, so clips and curated always come from the same run version.
Folders without a TABLE_SET (older runs) fall back to each table's `_MANIFEST.json`, then to every visible
Parquet file.
"""
import json
import posixpath
from dataclasses import dataclass, field

import fsspec
import pyarrow as pa

from schemas.tables import TABLES

TABLE_SET = "_tables.json"
MANIFEST = "_MANIFEST.json"  # {"table", "version", "files": [names relative to the folder], "rows"}
FINAL_TABLES = ("videos", "clips", "curated", "errors", "keyframes", "dup_segments")


def _read_json(fs, path: str) -> dict | None:
    try:
        with fs.open(path, "r") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def read_manifest(fs, folder: str) -> dict | None:
    """A table folder's own manifest (see schemas.io), or None when it has none."""
    return _read_json(fs, posixpath.join(folder, MANIFEST))


def read_table_set(fs, root: str) -> dict | None:
    """The run folder's table set (see the module docstring), or None when it has none (an older run)."""
    root = root.rstrip("/")
    fs.invalidate_cache(root)  # object stores cache listings; a writer in another process may have moved on
    return _read_json(fs, posixpath.join(root, TABLE_SET))


def _unmanaged_files(fs, folder: str) -> list[str]:
    try:
        paths = fs.find(folder)
    except FileNotFoundError:
        return []
    return sorted(p for p in paths if p.endswith(".parquet") and not posixpath.basename(p).startswith((".", "_")))


def _files_without_set(fs, folder: str) -> list[str]:
    """Paths of a table folder that no table set covers: its manifest's files, else every visible Parquet file."""
    if not fs.isdir(folder):
        return [folder] if fs.exists(folder) else []
    fs.invalidate_cache(folder)
    manifest = read_manifest(fs, folder)
    if manifest is not None:
        return [posixpath.join(folder, f) for f in manifest["files"]]
    return _unmanaged_files(fs, folder)


def _in_set(table_set: dict | None, name: str) -> bool:
    """True when `table_set` decides what table folder `name` holds (absent from it: no files)."""
    return table_set is not None and (name in table_set.get("tables", {}) or name in FINAL_TABLES)


def folder_files(fs, path: str) -> list[str]:
    """Paths (on `fs`) of the current files of the table at `path`, a file or a table folder, in order.

    A folder whose run folder has a table set: the files the set names (none when the set lacks the table);
    otherwise its own manifest's files, else every visible Parquet file under it.
    """
    path = path.rstrip("/")
    root, name = posixpath.split(path)
    if fs.isdir(path) or not path.endswith(".parquet"):
        table_set = read_table_set(fs, root)
        if _in_set(table_set, name):
            return [posixpath.join(path, f) for f in table_set["tables"].get(name, {}).get("files", [])]
    return _files_without_set(fs, path)


@dataclass(frozen=True)
class TableSet:
    """One run folder's final tables as of one moment: every read comes from the same run version."""

    root: str  # the run folder's URI
    storage_options: dict = field(default_factory=dict)
    version: str | None = None  # the run version; None for a folder without a table set (older runs)
    tables: dict | None = None  # name -> {"version", "files", "rows"}; None without a table set

    def _fs(self):
        return fsspec.core.url_to_fs(self.root.rstrip("/"), **self.storage_options)

    def files(self, name: str) -> tuple:
        """(fs, paths) of table `name` in this set, in order (no paths when the set lacks it)."""
        fs, base = self._fs()
        folder = posixpath.join(base.rstrip("/"), name)
        if _in_set({"tables": self.tables} if self.tables is not None else None, name):
            return fs, [posixpath.join(folder, f) for f in self.tables.get(name, {}).get("files", [])]
        return fs, _files_without_set(fs, folder)

    def has(self, name: str) -> bool:
        """True when the set holds table `name` (an older run: when its folder exists)."""
        if self.tables is not None:
            return name in self.tables
        fs, base = self._fs()
        return fs.exists(posixpath.join(base.rstrip("/"), name))

    def read(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """Table `name` of this set, validated (empty, with its schema, when the set lacks it)."""
        from schemas.io import read_files  # schemas.io resolves folders through this module

        fs, files = self.files(name)
        t = read_files(fs, files, name, TABLES[name])
        return t.select(columns) if columns is not None else t


def open_table_set(root: str, storage_options: dict | None = None) -> TableSet:
    """The run folder's current table set, resolved once: read every table of one run version from it."""
    fs, base = fsspec.core.url_to_fs(root.rstrip("/"), **(storage_options or {}))
    table_set = read_table_set(fs, base)
    if table_set is None:
        return TableSet(root, dict(storage_options or {}))
    return TableSet(root, dict(storage_options or {}), table_set.get("version"), dict(table_set.get("tables", {})))
