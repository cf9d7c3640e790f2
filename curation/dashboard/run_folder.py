"""One run's output folder: its run records, filter rules and tables, read through schemas/."""
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import pyarrow as pa

from schemas import RunRecord, TableSet, clips_schema, open_table_set

# Float columns of `clips` that describe where a clip sits, not how good it is.
_SPAN_COLUMNS = {"start_s", "end_s", "fps"}

# Score columns the dashboard summarises: every float column of `clips` except the
# span ones (duration_s stays: the too_short rule filters on it). Derived from the
# schema so a new score column shows up without touching the dashboard.
SCORE_COLUMNS: list[str] = [
    f.name for f in clips_schema if pa.types.is_floating(f.type) and f.name not in _SPAN_COLUMNS
]

# Wide columns that a reviewer never reads as numbers; left out of dashboard.duckdb
# so the database stays small (the Parquet files still have them).
HEAVY_COLUMNS = ("embedding",)


@dataclass(frozen=True)
class FilterRule:
    """One entry of config["filters"]: a clip fails it when column < min or column > max."""

    position: int
    column: str
    min: float | None
    max: float | None
    reason: str


@dataclass
class RunFolder:
    """The files of one run folder OUT (see DESIGN.md, "How data flows")."""

    root: str
    storage_options: dict = field(default_factory=dict)  # fsspec options (credentials, endpoint)
    _tables: TableSet | None = field(default=None, init=False, repr=False, compare=False)

    def fs(self):
        """The filesystem of the folder and the folder's path on it."""
        return fsspec.core.url_to_fs(self.root, **self.storage_options)

    def is_run(self) -> bool:
        """True when the folder holds a run record or a clips/videos/errors table."""
        fs, base = self.fs()
        return fs.isdir(base) and any(fs.exists(f"{base.rstrip('/')}/{p}") for p in ("runs", "clips", "videos", "errors"))

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root.rstrip("/"), *parts)

    def run_records(self) -> list[RunRecord]:
        """All run records under OUT/runs, oldest first (a resumed run adds one)."""
        fs, base = fsspec.core.url_to_fs(self.path("runs"), **self.storage_options)
        if not fs.isdir(base):
            return []
        paths = sorted(p for p in fs.ls(base, detail=False) if p.endswith(".json"))
        records = []
        for p in paths:
            with fs.open(p, "r") as f:
                records.append(RunRecord.from_json(f.read()))
        return sorted(records, key=lambda r: (r.started_at or "", r.run_id))

    def latest_run(self) -> RunRecord | None:
        """The run whose tables are on disk: the latest `succeeded` one (failed, interrupted and still running
        runs wrote no final tables), else the latest record of any status."""
        records = self.run_records()
        succeeded = [r for r in records if r.status == "succeeded"]
        return (succeeded or records or [None])[-1]

    def filter_rules(self) -> list[FilterRule]:
        """The filter rules of latest_run(), in config order (the funnel's step order)."""
        run = self.latest_run()
        rules = (run.config or {}).get("filters") or [] if run else []
        return [
            FilterRule(i, str(r["column"]), _num(r.get("min")), _num(r.get("max")), str(r["reason"]))
            for i, r in enumerate(rules)
        ]

    def tables(self) -> TableSet:
        """The folder's table set, resolved on first use: every table this object reads is of one run version."""
        if self._tables is None:
            self._tables = open_table_set(self.root, self.storage_options)
        return self._tables

    def table(self, name: str, drop: tuple[str, ...] = ()) -> pa.Table:
        """Table `name` of the folder's table set (empty table with the schema when absent)."""
        t = self.tables().read(name)
        return t.drop_columns([c for c in drop if c in t.column_names])


def _num(value) -> float | None:
    return None if value is None else float(value)


def runs_as_rows(records: list[RunRecord]) -> list[dict]:
    """Run records flattened for a table; nested parts stay as JSON text."""
    return [
        {
            "run_id": r.run_id,
            "status": r.status,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "input_uri": r.input_uri,
            "output_uri": r.output_uri,
            "config_hash": r.config_hash,
            "counts": json.dumps(r.counts, sort_keys=True),
            "timings": json.dumps(r.timings, sort_keys=True),
            "not_configured": json.dumps(r.not_configured),
            "versions": json.dumps(r.versions, sort_keys=True),
            "config": json.dumps(r.config, sort_keys=True, default=str),
            "error_type": (r.error or {}).get("type"),
            "error_message": (r.error or {}).get("message"),
            "host": (r.process or {}).get("host"),
            "project_version": r.project_version,
            "git_commit": r.git_commit,
            "command_line": " ".join(r.command_line or []) or None,  # secrets already redacted in the record
        }
        for r in records
    ]


def local_path(uri: str) -> Path | None:
    """The local path of a file:// or plain URI, None for remote ones."""
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    if "://" in uri:
        return None
    return Path(uri)
