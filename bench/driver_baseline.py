"""The table stages as they ran before the streaming rewrite (pipelines/run.py at 8d23028): the bench's baseline.

Every column of every clip is assembled into one table on the driver; filter,
dedup and balance map that table; curated and clips are written from it.
Kept only so bench/driver_bench.py can measure the old path side by side.
"""
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc

from curation.balance import balance
from curation.dedup import find_duplicates
from curation.filters import apply_filters
from pipelines.config import PipelineConfig, balance_params, dedup_params, stage_order
from pipelines.params import filter_rules
from pipelines.store import RunStore
from schemas import TABLES


def _with_part(store: RunStore, key: str, name: str, parts: list[str]) -> pa.Table:
    def one(part: str) -> pa.Table:
        t = store.read_parts(key, name, [part])
        return t.append_column("_part", pa.repeat(pa.scalar(part), t.num_rows).cast(pa.string()))

    with ThreadPoolExecutor(16) as pool:  # as the old code: parts read concurrently
        tables = list(pool.map(one, parts))
    return pa.concat_tables(tables) if tables else TABLES[name].empty_table().append_column("_part", pa.array([], pa.string()))


def _part_video(t: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(t.column("_part"), t.column("video_id"), "/")


def _first_per_key(table: pa.Table, keys: list[str]) -> pa.Table:
    if table.num_rows == 0:
        return table
    first = table.append_column("_row", pa.array(range(table.num_rows), pa.int64())).group_by(keys, use_threads=False).aggregate([("_row", "min")])
    return table if first.num_rows == table.num_rows else table.take(pc.sort_indices(first.column("_row_min")))


def run_table_stages(store: RunStore, scan_key: str, cfg: PipelineConfig, uris: list[str], mark=lambda phase: None) -> dict:
    """Assemble, filter, dedup, balance, curate, write as the old run.py did; `mark(phase)` after each step."""
    parts = store.committed_parts(scan_key)
    wanted = pa.array(sorted(uris), pa.string())
    videos = _with_part(store, scan_key, "videos", parts)
    videos = _first_per_key(videos.filter(pc.is_in(videos.column("uri"), value_set=wanted)), ["uri"])
    kept_videos = _part_video(videos)
    videos = videos.drop_columns(["_part"]).sort_by([("relpath", "ascending")])
    clips = _with_part(store, scan_key, "clips", parts)
    clips = clips.filter(pc.is_in(_part_video(clips), value_set=kept_videos)).drop_columns(["_part"])
    clips = clips.sort_by([("uri", "ascending"), ("clip_index", "ascending")])
    errors = store.read_parts(scan_key, "errors", parts)
    errors = _first_per_key(errors.sort_by([("uri", "ascending"), ("stage", "ascending")]), ["uri", "stage", "error_type"])
    mark("assemble")
    order = stage_order(cfg)
    if "filter" in order:
        clips = apply_filters(clips, filter_rules(cfg))
        mark("filter")
    if "dedup" in order:
        clips = find_duplicates(clips, videos, dedup_params(cfg.dedup)).table
        mark("dedup")
    if "balance" in order:
        clips = balance(clips, balance_params(cfg.balance)).table
        mark("balance")
    curated = clips.filter(pc.equal(clips.column("kept"), True))
    mark("curate")
    store.replace_table("videos", videos)
    store.replace_table("clips", clips)
    store.replace_table("curated", curated)
    store.replace_table("errors", errors)

    def keyframes():
        for part in parts:
            t = _with_part(store, scan_key, "keyframes", [part])
            if t.num_rows:
                yield t.filter(pc.is_in(_part_video(t), value_set=kept_videos)).drop_columns(["_part"])

    store.replace_table_stream("keyframes", keyframes(), rows_per_file=50_000)
    mark("write")
    return {"videos": videos.num_rows, "clips": clips.num_rows, "curated": curated.num_rows, "errors": errors.num_rows}
