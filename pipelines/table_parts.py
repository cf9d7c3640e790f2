"""Reading committed scan parts for the table stages: which parts a task takes, and their clips.

Groups are a fixed number of parts, so a task's memory is bounded by the part
size. Plain Ray tasks rather than Ray Data: the unit of work is our committed
part (exactly-once resume is by part), and the file names must be ours so the
manifest can commit them as a set (pipelines/table_shards.py).
"""
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.embed_stage import join_embeddings
from pipelines.store import RunStore
from pipelines.text_stage import join_text_areas
from schemas import TABLES, write_table

PARTS_PER_TASK = 64  # scan parts per task: 64 x 64 videos x ~20 clips, about 80k rows in a task's memory


@dataclass(frozen=True)
class PartsSource:
    """Where a task finds the parts and what it joins to them."""

    output_uri: str
    storage_options: dict
    scan_key: str
    embed_key: str | None  # embed parts have the scan part's name; None: embed stage off
    text_key: str | None = None  # text parts have the scan part's name; None: text stage off
    safety_key: str | None = None  # safety parts have the scan part's name; None: safety stage off

    def store(self) -> RunStore:
        return RunStore(self.output_uri, self.storage_options)


def groups(parts: list[str], per_task: int = PARTS_PER_TASK) -> list[list[str]]:
    return [parts[i:i + per_task] for i in range(0, len(parts), per_task)]


def part_video_keys(part: str, t: pa.Table) -> pa.Array:
    """"part/video_id" of every row of one part's table: how a kept video copy is named."""
    return pc.binary_join_element_wise(pa.repeat(pa.scalar(part), t.num_rows).cast(pa.string()), t.column("video_id"), "/")


def group_clips(src: PartsSource, parts: list[str], kept: pa.Array) -> pa.Table:
    """Every column of the clips of `parts` that belong to kept video copies ("part/video_id"), in part order,
    (video_id, clip_index) within a part, with embeddings, text areas and nsfw scores joined."""
    store = src.store()
    out = []
    for part in parts:
        t = store.read_part(src.scan_key, part, "clips")
        if not t.num_rows:
            continue
        t = t.filter(pc.is_in(part_video_keys(part, t), value_set=kept))
        t = t.sort_by([("video_id", "ascending"), ("clip_index", "ascending")])
        if src.embed_key:
            t = join_embeddings(t, first_per_key(store.read_part(src.embed_key, part, "embeddings"), ["clip_id"]))
        if src.text_key:
            t = join_text_areas(t, first_per_key(store.read_part(src.text_key, part, "text_areas"), ["clip_id"]))
        if src.safety_key:
            t = join_by_clip(t, first_per_key(store.read_part(src.safety_key, part, "nsfw_scores"), ["clip_id"]), "nsfw_score")
        out.append(t)
    return pa.concat_tables(out) if out else TABLES["clips"].empty_table()


def join_by_clip(clips: pa.Table, results: pa.Table, column: str) -> pa.Table:
    """clips with `column` taken from a model stage's per-clip results (null where a clip has no result)."""
    idx = pc.index_in(clips.column("clip_id"), value_set=results.column("clip_id").combine_chunks())
    return clips.set_column(clips.schema.get_field_index(column), column,
                            results.column(column).take(idx).cast(clips.schema.field(column).type))


def first_per_key(table: pa.Table, keys: list[str]) -> pa.Table:
    """Keep the first row per key (vectorised): a file rescanned after an interrupted commit must not appear twice."""
    if table.num_rows == 0:
        return table
    first = table.append_column("_row", pa.array(range(table.num_rows), pa.int64())).group_by(keys, use_threads=False).aggregate([("_row", "min")])
    if first.num_rows == table.num_rows:
        return table
    return table.take(pc.sort_indices(first.column("_row_min")))


def write_versions(store: RunStore, clips: pa.Table, group: int, versions: dict[str, str],
                   rows_per_file: int) -> dict[str, list[tuple[str, int]]]:
    """One group's rows as files of the new table versions (table "curated": only its kept clips), at most
    rows_per_file rows each; returns table -> [(file name, rows)] in order."""
    out: dict[str, list[tuple[str, int]]] = {}
    for name, version in versions.items():
        table = clips.filter(pc.equal(clips.column("kept"), True)) if name == "curated" else clips
        files = []
        for i, start in enumerate(range(0, table.num_rows, rows_per_file)):
            piece = table.slice(start, rows_per_file)
            fname = f"{version}-part-{group:05d}-{i:03d}.parquet"
            write_table(piece, name, store.uri(name, fname), store.storage_options)
            files.append((fname, piece.num_rows))
        out[name] = files
    return out


def group_videos(store: RunStore, scan_key: str, parts: list[str], kept: pa.Array) -> pa.Table:
    """The video rows of the kept copies ("part/video_id" in `kept`) among `parts`."""
    tables = []
    for part in parts:
        t = store.read_part(scan_key, part, "videos")
        tables.append(t.filter(pc.is_in(part_video_keys(part, t), value_set=kept)))
    return pa.concat_tables(tables) if tables else TABLES["videos"].empty_table()


def read_samples(store: RunStore, scan_key: str, parts: list[str], kept: pa.Array) -> pa.Table:
    """Per-sample pHashes (segment dedup's input) of the kept video copies ("part/video_id") of `parts`."""
    tables = []
    for part in parts:
        t = store.read_part(scan_key, part, "samples")
        if t.num_rows:
            tables.append(t.filter(pc.is_in(part_video_keys(part, t), value_set=kept)))
    return pa.concat_tables(tables) if tables else TABLES["samples"].empty_table()


def read_keyframes(store: RunStore, scan_key: str, clip_ids, parts: list[str] | None = None) -> pa.Table:
    """The keyframes of the given clips (of `parts`; None: every committed part), read part by part: JPEGs of
    other clips are dropped as each part is read."""
    want = pa.array(list(clip_ids), pa.string())
    parts = store.committed_parts(scan_key) if parts is None else parts
    tables = [t.filter(pc.is_in(t.column("clip_id"), value_set=want)) for t in (store.read_part(scan_key, p, "keyframes") for p in parts)]
    return pa.concat_tables(tables) if tables else TABLES["keyframes"].empty_table()
