"""Exact duplicates: byte-identical files (videos.content_hash) and, in them, the same span."""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.dedup.edges import Edges


def clip_content_keys(clips: pa.Table, videos: pa.Table) -> pa.Array:
    """Per clip, "content_hash:start_frame:end_frame" of its file (null where the video is unknown); vectorised."""
    idx = pc.index_in(clips.column("video_id"), value_set=videos.column("video_id"))
    hashes = videos.column("content_hash").take(idx)
    key = pc.binary_join_element_wise(hashes, clips.column("start_frame").cast(pa.string()),
                                      clips.column("end_frame").cast(pa.string()), ":")
    return key.combine_chunks() if isinstance(key, pa.ChunkedArray) else key


def exact_edges(keys: pa.Array) -> Edges:
    """Star edges from the first row of every group of equal keys to the others (null keys skipped)."""
    valid = np.flatnonzero(keys.is_valid().to_numpy(zero_copy_only=False))
    if len(valid) < 2:
        return Edges.empty()
    codes = pc.dictionary_encode(keys.take(pa.array(valid))).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort(codes, kind="stable")
    codes_sorted, rows = codes[order], valid[order]
    group_start = np.r_[True, codes_sorted[1:] != codes_sorted[:-1]]
    first_of_group = rows[np.flatnonzero(group_start)][np.cumsum(group_start) - 1]
    member = ~group_start
    return Edges.of(first_of_group[member], rows[member], "exact", 1.0)


def identical_file_groups(videos: pa.Table) -> int:
    """Number of content hashes shared by two or more video rows (copies of one file)."""
    counts = pc.value_counts(videos.column("content_hash")).field("counts").to_numpy()
    return int(np.sum(counts > 1))
