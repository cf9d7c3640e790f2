"""The table stages over partitions: per group of committed scan parts, as Ray tasks.

The driver never holds all columns of all clips. Two passes over the parts:

1. narrow: a task per group of parts reads its clips (the kept video copies,
   embeddings joined), applies the filter rules when asked (row-local), and
   returns only the columns the global stages read (ids, spans, phashes,
   scores, decision columns): the driver concatenates these into the narrow
   table that dedup and balance run on;
2. write: a task per group reads the same rows again, in the same order, sets
   the decision columns from its slice of the narrow table, and writes its
   clips and curated rows as files of the new table versions (store.TableWriter
   commits them as a set afterwards).

Groups are a fixed number of parts, so a task's memory is bounded by the part
size, and its output files by rows_per_file. Plain Ray tasks rather than Ray
Data: the unit of work is our committed part (exactly-once resume is by part),
the write-back is positional (no shuffle or join), and the file names must be
ours so the manifest can commit them as a set.
"""
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import ray

from curation.filters import Rule, apply_filters
from pipelines.embed_stage import join_embeddings
from pipelines.store import RunStore
from pipelines.text_stage import join_text_areas
from schemas import TABLES, write_table

# The columns the table stages decide: the write pass takes these from the narrow table.
DECISION_COLUMNS = ("drop_reasons", "kept", "dup_group_id", "dup_kind", "dup_of", "dup_similarity", "sample_weight")
# What dedup, balance and the counts read besides the decision columns (spans, phashes, quota and keep-policy scores).
NARROW_COLUMNS = ("clip_id", "video_id", "clip_index", "start_frame", "end_frame", "start_s", "end_s", "duration_s", "width",
                  "height", "motion", "static", "quality", "aesthetic", "phash", "embedding", *DECISION_COLUMNS)
PARTS_PER_TASK = 64  # scan parts per task: 64 x 64 videos x ~20 clips, about 80k rows in a task's memory


@dataclass(frozen=True)
class PartsSource:
    """Where a task finds the parts and what it joins to them."""

    output_uri: str
    storage_options: dict
    scan_key: str
    embed_key: str | None  # embed parts have the scan part's name; None: embed stage off
    text_key: str | None = None  # text parts have the scan part's name; None: text stage off

    def store(self) -> RunStore:
        return RunStore(self.output_uri, self.storage_options)


def groups(parts: list[str], per_task: int = PARTS_PER_TASK) -> list[list[str]]:
    return [parts[i:i + per_task] for i in range(0, len(parts), per_task)]


def part_video_keys(part: str, t: pa.Table) -> pa.Array:
    """"part/video_id" of every row of one part's table: how a kept video copy is named."""
    return pc.binary_join_element_wise(pa.repeat(pa.scalar(part), t.num_rows).cast(pa.string()), t.column("video_id"), "/")


def group_clips(src: PartsSource, parts: list[str], kept: pa.Array) -> pa.Table:
    """Every column of the clips of `parts` that belong to kept video copies ("part/video_id"), in part order,
    (video_id, clip_index) within a part, with embeddings and text areas joined."""
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
        out.append(t)
    return pa.concat_tables(out) if out else TABLES["clips"].empty_table()


def first_per_key(table: pa.Table, keys: list[str]) -> pa.Table:
    """Keep the first row per key (vectorised): a file rescanned after an interrupted commit must not appear twice."""
    if table.num_rows == 0:
        return table
    first = table.append_column("_row", pa.array(range(table.num_rows), pa.int64())).group_by(keys, use_threads=False).aggregate([("_row", "min")])
    if first.num_rows == table.num_rows:
        return table
    return table.take(pc.sort_indices(first.column("_row_min")))


def narrow_group(src: PartsSource, parts: list[str], kept: pa.Array, columns: list[str], rules: list[Rule] | None) -> pa.Table:
    """Pass 1 for one group: its clips, filtered by `rules` when given, projected to `columns`."""
    t = group_clips(src, parts, kept)
    if rules is not None:
        t = apply_filters(t, rules)
    return t.select(columns).combine_chunks()


def with_decisions(clips: pa.Table, decisions: pa.Table) -> pa.Table:
    """`clips` with the decision columns of `decisions` (same rows, same order: checked by clip_id)."""
    if not clips.column("clip_id").equals(decisions.column("clip_id")):
        raise RuntimeError("table stages: a part's clips changed between the two passes (rows do not line up)")
    for name in DECISION_COLUMNS:
        clips = clips.set_column(clips.schema.get_field_index(name), clips.schema.field(name), decisions.column(name))
    return clips


def decided_group(src: PartsSource, parts: list[str], kept: pa.Array, decisions: pa.Table) -> pa.Table:
    """Every column of one group's clips with the stages' decisions so far (to materialise the whole table)."""
    return with_decisions(group_clips(src, parts, kept), decisions)


def write_group(src: PartsSource, parts: list[str], kept: pa.Array, decisions: pa.Table, group: int,
                versions: dict[str, str], rows_per_file: int) -> dict[str, list[tuple[str, int]]]:
    """Pass 2 for one group: write its clips (and kept clips as curated) as files of the new versions.

    `versions`: table name -> version of its TableWriter. Returns table -> [(file name, rows)] in order.
    """
    return write_versions(src.store(), with_decisions(group_clips(src, parts, kept), decisions), group, versions, rows_per_file)


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


_narrow_task = ray.remote(num_cpus=1, max_retries=3)(narrow_group)
_write_task = ray.remote(num_cpus=1, max_retries=3)(write_group)
_decided_task = ray.remote(num_cpus=1, max_retries=3)(decided_group)


TASKS = {narrow_group: _narrow_task, write_group: _write_task, decided_group: _decided_task}


def map_groups(local: bool, fn, arg_lists: Iterable[tuple], window: int) -> Iterator:
    """fn(*args) per group, results in order: in this process (process-local stores) or as Ray tasks,
    at most `window` in flight (arguments are made lazily, so only those are held)."""
    if local:
        for args in arg_lists:
            yield fn(*args)
        return
    refs, todo = [], iter(arg_lists)
    for args in todo:
        refs.append(TASKS[fn].remote(*args))
        if len(refs) >= window:
            yield ray.get(refs.pop(0))
    while refs:
        yield ray.get(refs.pop(0))
