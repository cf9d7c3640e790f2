"""The run folder on any fsspec filesystem: work parts with commit markers, final tables.

Work parts make runs resumable: each part is a folder of Parquet files that
counts only once its `_COMMITTED` marker exists (written last), so a run killed
mid-write leaves nothing a reader or a resumed run would trust.
"""
import json
import posixpath
import uuid

import fsspec
import pyarrow as pa

from schemas import read_table, write_table

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
    def write_part(self, stage_key: str, tables: dict[str, pa.Table]) -> str:
        part = f"part-{uuid.uuid4().hex[:12]}"
        for name, table in tables.items():
            write_table(table, name, self.uri("_work", stage_key, part, f"{name}.parquet"), self.storage_options)
        with self.fs.open(self.path("_work", stage_key, part, COMMITTED), "wb") as f:
            f.write(b"")
        return part

    def committed_parts(self, stage_key: str, clean: bool = False) -> list[str]:
        """Committed part folders of a stage; with `clean`, delete uncommitted ones (a killed run's)."""
        base = self.path("_work", stage_key)
        self.fresh(base)
        if not self.fs.exists(base):
            return []
        parts = []
        for p in sorted(self.fs.ls(base, detail=False)):
            name = posixpath.basename(p.rstrip("/"))
            if not name.startswith("part-"):
                continue
            if self.fs.exists(posixpath.join(p, COMMITTED)):
                parts.append(name)
            elif clean:
                self.fs.rm(p, recursive=True)
        return parts

    def remove_part(self, stage_key: str, part: str) -> None:
        """Delete a part: its marker first, so a kill mid-delete leaves an uncommitted (ignored) folder."""
        base = self.path("_work", stage_key, part)
        self.fs.rm(posixpath.join(base, COMMITTED))
        self.fs.rm(base, recursive=True)

    def read_parts(self, stage_key: str, name: str, parts: list[str] | None = None) -> pa.Table:
        parts = self.committed_parts(stage_key) if parts is None else parts
        tables = [
            read_table(self.uri("_work", stage_key, p, f"{name}.parquet"), name, self.storage_options)
            for p in parts
            if self.fs.exists(self.path("_work", stage_key, p, f"{name}.parquet"))
        ]
        if not tables:
            from schemas import TABLES

            return TABLES[name].empty_table()
        return pa.concat_tables(tables)

    # --- final tables -----------------------------------------------------
    def replace_table(self, name: str, table: pa.Table, tag: str, rows_per_file: int = 200_000) -> list[str]:
        """Write `table` as OUT/name/part-NNNNN.parquet, then remove the folder's older files.

        File names do not depend on the run or config (`tag` is not used in them): each
        new file replaces the old one of the same name by an atomic rename, so a run
        killed here leaves readers the old table or the new one, never both side by
        side (a table under `rows_per_file` rows is a single file). `tag` is accepted
        for callers and ignored.
        """
        folder = self.path(name)
        self.fresh(folder)
        old = [p for p in self.fs.ls(folder, detail=False)] if self.fs.exists(folder) else []
        written = []
        for i, start in enumerate(range(0, max(table.num_rows, 1), rows_per_file)):
            fname = f"part-{i:05d}.parquet"
            write_table(table.slice(start, rows_per_file), name, self.uri(name, fname), self.storage_options)
            written.append(posixpath.join(folder, fname))
        for p in old:
            if p not in written:
                self.fs.rm(p)
        return written

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
