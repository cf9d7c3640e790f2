"""The run folder on any fsspec filesystem: work parts with commit markers, final tables.

Work parts make runs resumable: each part is a folder of Parquet files that
counts only once its `_COMMITTED` marker exists (written last), so a run killed
mid-write leaves nothing a reader or a resumed run would trust.

Final tables commit as a set (schemas/table_set.py): begin_table_set(), the
writers' commits, then commit_table_set() replaces OUT/_tables.json last.
"""
import datetime as dt
import json
import posixpath
import uuid
from collections.abc import Iterable

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.dataset as ds
from pyarrow.fs import FSSpecHandler, PyFileSystem

from schemas import FINAL_TABLES, MANIFEST, TABLE_SET, TABLES, read_manifest, read_table, read_table_set, write_table

COMMITTED = "_COMMITTED"


class OutputError(RuntimeError):
    """The output location cannot be written."""


class RunStore:
    def __init__(self, output_uri: str, storage_options: dict | None = None):
        self.output_uri = output_uri.rstrip("/")
        self.storage_options = storage_options or {}
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.output_uri, **self.storage_options)
        except (ImportError, ValueError) as e:
            raise OutputError(f"cannot open output {output_uri!r}: {e}") from None
        self.root = self.root.rstrip("/")
        self.pending: dict[str, dict] | None = None  # an open table set: table -> its new version, not yet visible

    @property
    def process_local(self) -> bool:
        """True for filesystems that live inside one process (memory://): only the driver can write them."""
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return protocol == "memory"

    def fresh(self, path: str) -> None:
        """Forget cached listings under `path`: object stores (s3fs) cache `ls`/`exists`,
        and parts written by another process (an earlier, killed run) must not be missed."""
        self.fs.invalidate_cache(path)

    def uri(self, *parts: str) -> str:
        """Full URI of a path inside the run folder."""
        return "/".join([self.output_uri, *parts])

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def check_writable(self) -> None:
        """Fail fast, with one line, when the output cannot be written."""
        probe = self.path(f".write-probe-{uuid.uuid4().hex}")
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            with self.fs.open(probe, "wb") as f:
                f.write(b"ok")
            self.fs.rm(probe)
        except Exception as e:  # PermissionError, read-only fs, unreachable bucket...
            raise OutputError(f"output {self.output_uri!r} is not writable: {e}") from None

    # --- work parts -------------------------------------------------------
    def write_part(self, stage_key: str, tables: dict[str, pa.Table], part: str | None = None) -> str:
        """Write tables as one part and commit it (marker last); `part` names it (default: a fresh name)."""
        part = part or f"part-{uuid.uuid4().hex[:12]}"
        for name, table in tables.items():
            write_table(table, name, self.uri("_work", stage_key, part, f"{name}.parquet"), self.storage_options)
        with self.fs.open(self.path("_work", stage_key, part, COMMITTED), "wb") as f:
            f.write(b"")
        return part

    def part_files(self, stage_key: str) -> dict[str, set[str]]:
        """Part folder -> names of its files, from one recursive listing (not one request per part)."""
        base = self.path("_work", stage_key)
        self.fresh(base)
        try:
            paths = self.fs.find(base, withdirs=False)
        except FileNotFoundError:
            return {}
        out: dict[str, set[str]] = {}
        for p in paths:
            rel = p[len(base):].strip("/").split("/")
            if len(rel) == 2 and rel[0].startswith("part-"):
                out.setdefault(rel[0], set()).add(rel[1])
        return out

    def committed_parts(self, stage_key: str, clean: bool = False) -> list[str]:
        """Committed part folders of a stage; with `clean`, delete uncommitted ones (a killed run's)."""
        parts = []
        for name, files in sorted(self.part_files(stage_key).items()):
            if COMMITTED in files:
                parts.append(name)
            elif clean:
                self.fs.rm(self.path("_work", stage_key, name), recursive=True)
        return parts

    def remove_part(self, stage_key: str, part: str) -> None:
        """Delete a part: its marker first, so a kill mid-delete leaves an uncommitted (ignored) folder."""
        base = self.path("_work", stage_key, part)
        self.fs.rm(posixpath.join(base, COMMITTED))
        self.fs.rm(base, recursive=True)

    def part_files_of(self, stage_key: str, name: str, parts: list[str] | None = None) -> list[str]:
        """Paths (on `fs`, relative to the run folder) of table `name` in the committed parts, or in `parts`."""
        listing = self.part_files(stage_key)
        parts = [p for p, files in sorted(listing.items()) if COMMITTED in files] if parts is None else parts
        return [posixpath.join("_work", stage_key, p, f"{name}.parquet") for p in parts if f"{name}.parquet" in listing.get(p, ())]

    def read_parts(self, stage_key: str, name: str, parts: list[str] | None = None,
                   columns: list[str] | None = None) -> pa.Table:
        """Table `name` over the parts, validated; `columns` reads only those (a projection, for checks)."""
        rels = self.part_files_of(stage_key, name, parts)
        if columns is not None:
            if not rels:
                return pa.schema([TABLES[name].field(c) for c in columns]).empty_table()
            return self.dataset(rels).to_table(columns=columns)
        tables = [read_table(self.uri(r), name, self.storage_options) for r in rels]
        return pa.concat_tables(tables) if tables else TABLES[name].empty_table()

    def read_part(self, stage_key: str, part: str, name: str) -> pa.Table:
        """Table `name` of one part (no listing of the stage: one marker check, one read); empty when the part is not
        committed or lacks the table."""
        path = self.path("_work", stage_key, part, f"{name}.parquet")
        if not self.fs.exists(self.path("_work", stage_key, part, COMMITTED)) or not self.fs.exists(path):
            return TABLES[name].empty_table()
        return read_table(self.uri("_work", stage_key, part, f"{name}.parquet"), name, self.storage_options)

    def read_part_columns(self, stage_key: str, part: str, name: str, columns: list[str]) -> pa.Table:
        """Only `columns` of table `name` of one committed part (not validated: a projection, for the driver's
        bookkeeping over thousands of parts)."""
        path = self.path("_work", stage_key, part, f"{name}.parquet")
        if not self.fs.exists(path):
            return pa.schema([TABLES[name].field(c) for c in columns]).empty_table()
        return pq.read_table(path, columns=columns, filesystem=PyFileSystem(FSSpecHandler(self.fs)))

    def dataset(self, rels: list[str]) -> ds.Dataset:
        """A pyarrow dataset over Parquet files of the run folder: scanned in batches, never loaded whole."""
        return ds.dataset([self.path(r) for r in rels], format="parquet", filesystem=PyFileSystem(FSSpecHandler(self.fs)))

    # --- final tables -----------------------------------------------------
    def replace_table(self, name: str, table: pa.Table, tag: str = "", rows_per_file: int = 200_000) -> list[str]:
        """Replace OUT/name with `table` as one atomic set of files (see `TableWriter`)."""
        return self.replace_table_stream(name, [table], rows_per_file=rows_per_file)

    def replace_table_stream(self, name: str, tables: Iterable[pa.Table], rows_per_file: int = 200_000,
                             max_bytes: int = 256 << 20) -> list[str]:
        """Replace OUT/name with the tables of an iterator, in files of bounded size, as one atomic set.
        Only one file's rows are held at a time."""
        writer = self.table_writer(name, rows_per_file, max_bytes)
        for table in tables:
            writer.add(table)
        return writer.commit()

    def table_writer(self, name: str, rows_per_file: int = 200_000, max_bytes: int = 256 << 20) -> "TableWriter":
        """A writer that replaces final table `name` as a set: add() tables, then commit()."""
        return TableWriter(self, name, rows_per_file, max_bytes)

    def begin_table_set(self) -> None:
        """Open a table set: writers' commits are held until commit_table_set() makes them visible together."""
        self.pin_table_set()
        self.pending = {}

    def commit_table_set(self) -> dict:
        """Make every table committed since begin_table_set() visible at once; returns the new table set."""
        if self.pending is None:
            raise RuntimeError("commit_table_set() without begin_table_set()")
        pending, self.pending = self.pending, None
        return self._commit_tables(pending)

    def table_set(self) -> dict | None:
        """OUT/_tables.json: the final tables readers see now (None: a folder from before table sets)."""
        return read_table_set(self.fs, self.root)

    def pin_table_set(self, also: tuple[str, ...] = ()) -> None:
        """Before any new final-table file lands: a folder without a table set gets one naming what readers see
        today (each table's manifest, else its visible Parquet files), so new files never join an old set."""
        if self.table_set() is not None:
            return
        tables = {}
        for name in dict.fromkeys(FINAL_TABLES + also):
            folder = self.path(name)
            self.fresh(folder)
            if not self.fs.isdir(folder):
                continue
            manifest = read_manifest(self.fs, folder)
            if manifest is not None:
                tables[name] = {k: manifest.get(k) for k in ("version", "files", "rows")}
            else:
                files = sorted(posixpath.relpath(p, folder) for p in self.fs.find(folder)
                               if p.endswith(".parquet") and not posixpath.basename(p).startswith((".", "_")))
                tables[name] = {"version": "unmanaged", "files": files, "rows": None}
        self.write_json(TABLE_SET, {"version": "pinned", "previous": None, "tables": tables,
                                    "committed_at": dt.datetime.now(dt.timezone.utc).isoformat()})

    def _commit_tables(self, entries: dict[str, dict]) -> dict:
        """Replace the table set with `entries` swapped in (one atomic write, last), then tidy each table folder:
        its manifest for readers from before table sets, and delete files neither this set nor the one it
        replaced names (the replaced set's files stay until the next commit: a reader may still be on them)."""
        current = self.table_set() or {"version": None, "tables": {}}
        new = {"version": f"r{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
               "previous": current.get("version"), "committed_at": dt.datetime.now(dt.timezone.utc).isoformat(),
               "tables": {**current.get("tables", {}), **entries}}
        self.write_json(TABLE_SET, new)  # the switch: readers move to the new set here
        for name, entry in entries.items():
            self.write_json(posixpath.join(name, MANIFEST), {"table": name, **entry})
            keep = set(entry["files"]) | set(current.get("tables", {}).get(name, {}).get("files") or [])
            folder = self.path(name)
            self.fresh(folder)
            for p in self.fs.ls(folder, detail=False):
                base = posixpath.basename(p)
                if base.endswith(".parquet") and base not in keep:
                    self.fs.rm(p)
        return new

    def write_json(self, rel: str, data: dict) -> None:
        path = self.path(rel)
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        tmp = posixpath.join(posixpath.dirname(path), f".tmp-{uuid.uuid4().hex}")
        with self.fs.open(tmp, "w") as f:
            f.write(json.dumps(data, indent=2, sort_keys=True, default=str))
        self.fs.mv(tmp, path)

    def read_json(self, rel: str) -> dict | None:
        path = self.path(rel)
        self.fresh(path)
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r") as f:
            return json.load(f)


class TableWriter:
    """Replaces OUT/<name>: files of a new version next to the old ones, then a commit into the table set.

    New files are named `<version>-part-NNNNN.parquet`; readers follow OUT/_tables.json
    (schemas/table_set.py), which is replaced last, so a writer killed at any moment leaves
    readers the old complete set or the new one. A folder without a table set (older runs)
    first gets one naming what readers see today, so a reader never sees old and new files
    together. Inside begin_table_set()/commit_table_set() the commit waits for the set's other
    tables; alone, it is a set of one table. Files no set names (older versions, a killed
    writer's) are deleted after a later set lands.
    """

    def __init__(self, store: RunStore, name: str, rows_per_file: int, max_bytes: int):
        self.store, self.name, self.rows_per_file, self.max_bytes = store, name, rows_per_file, max_bytes
        self.folder = store.path(name)
        self.version = f"v{uuid.uuid4().hex[:12]}"
        self.written: list[str] = []  # file names, relative to the folder
        self.rows = 0
        self.held: list[pa.Table] = []
        store.pin_table_set(also=(name,))  # before any new file appears next to what readers see today

    def add(self, table: pa.Table) -> None:
        for start in range(0, table.num_rows, self.rows_per_file):
            piece = table.slice(start, self.rows_per_file)
            if self.held and (sum(t.num_rows for t in self.held) + piece.num_rows > self.rows_per_file
                              or sum(t.nbytes for t in self.held) + piece.nbytes > self.max_bytes):
                self._flush()
            self.held.append(piece)

    def _flush(self) -> None:
        fname = f"{self.version}-part-{len(self.written):05d}.parquet"
        table = pa.concat_tables(self.held) if self.held else TABLES[self.name].empty_table()
        write_table(table, self.name, self.store.uri(self.name, fname), self.store.storage_options)
        self.written.append(fname)
        self.rows += table.num_rows
        self.held.clear()

    def add_files(self, files: list[tuple[str, int]]) -> None:
        """Files of this version that tasks wrote themselves ((name in the folder, rows)), in table order."""
        if self.held:
            self._flush()
        self.written += [f for f, _ in files]
        self.rows += sum(n for _, n in files)

    def commit(self) -> list[str]:
        """Write the last file and commit this version: into the open table set (visible when it commits), or
        alone (visible now); returns the paths."""
        if self.held or not self.written:
            self._flush()
        entry = {"version": self.version, "files": self.written, "rows": self.rows}
        if self.store.pending is not None:
            self.store.pending[self.name] = entry
        else:
            self.store._commit_tables({self.name: entry})
        return [posixpath.join(self.folder, f) for f in self.written]
