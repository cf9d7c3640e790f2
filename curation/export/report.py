"""The export report: a row per clip (exported or why not) and a summary, written beside the export."""
import time

import pyarrow as pa

from curation.export.destination import Destination
from schemas import export_report_schema, table_from_rows, write_table

REPORT_JSON = "export_report.json"
REPORT_PARQUET = "export_report.parquet"


def ok_row(clip: dict, **fields) -> dict:
    return {"clip_id": clip["clip_id"], "video_id": clip.get("video_id"), "uri": clip["uri"], "status": "ok", **fields}


def error_row(clip: dict, error_type: str, message: str) -> dict:
    return {"clip_id": clip["clip_id"], "video_id": clip.get("video_id"), "uri": clip["uri"], "status": "error",
            "error_type": error_type, "message": " ".join(str(message).split())[:2000]}


def summarize(rows: list[dict], new_ids: set[str], shards: list[str], wall_s: float, settings: dict,
              source: str, dest: str) -> dict:
    """Counts, throughput of this run's encodes, and error counts by type."""
    ok = [r for r in rows if r["status"] == "ok"]
    new = [r for r in ok if r["clip_id"] in new_ids]
    errors: dict[str, int] = {}
    for r in rows:
        if r["status"] == "error":
            errors[r["error_type"]] = errors.get(r["error_type"], 0) + 1
    new_bytes = sum(r.get("bytes") or 0 for r in new)
    methods: dict[str, int] = {}
    for r in new:
        methods[r.get("read_method") or "?"] = methods.get(r.get("read_method") or "?", 0) + 1
    return {
        "source": source,
        "destination": dest,
        "settings": settings,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": {
            "clips": len(rows),
            "exported": len(ok),
            "exported_this_run": len(new),
            "already_exported": len(ok) - len(new),
            "errors": len(rows) - len(ok),
            "clips_with_audio": sum(1 for r in ok if r.get("audio")),
            "shards_written_this_run": len(shards),
        },
        "errors_by_type": errors,
        "read_methods_this_run": methods,
        "bytes_exported": sum(r.get("bytes") or 0 for r in ok),
        "wall_s": round(wall_s, 3),
        "clips_per_s": round(len(new) / wall_s, 3) if wall_s > 0 else None,
        "mb_per_s": round(new_bytes / 1e6 / wall_s, 3) if wall_s > 0 else None,
    }


def write_report(dest: Destination, rows: list[dict], summary: dict, storage_options: dict | None) -> None:
    """export_report.parquet (through schemas/) and export_report.json, each atomically."""
    table = table_from_rows(rows, export_report_schema, "export_report") if rows else export_report_schema.empty_table()
    write_table(table, "export_report", dest.uri(REPORT_PARQUET), storage_options, schema=export_report_schema)
    dest.write_json(REPORT_JSON, summary)


def read_report(dest: Destination, storage_options: dict | None = None) -> pa.Table:
    from schemas import read_table

    return read_table(dest.uri(REPORT_PARQUET), "export_report", storage_options, schema=export_report_schema)
