"""Exact duplicates: byte-identical files (videos.content_hash) and, in them, the same span."""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.dedup.edges import Edges


def clip_content_keys(clips: pa.Table, videos: pa.Table) -> np.ndarray:
    """Per clip, (content hash code, start_frame, end_frame) of its span, as an (n, 3) int64 array; code -1 where
    the video is unknown. Equal rows = the same span of byte-identical files (no string per clip)."""
    code_of_video = pc.dictionary_encode(videos.column("content_hash").combine_chunks()).indices
    idx = pc.index_in(clips.column("video_id"), value_set=videos.column("video_id"))
    code = code_of_video.take(idx).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    start = clips.column("start_frame").to_numpy().astype(np.int64)
    end = clips.column("end_frame").to_numpy().astype(np.int64)
    return np.stack([code, start, end], axis=1)


def exact_edges(keys: np.ndarray) -> Edges:
    """Star edges from the first row of every group of equal key rows (n, columns) to the others
    (rows whose first column is negative, an unknown video, are skipped)."""
    valid = np.flatnonzero(keys[:, 0] >= 0)
    if len(valid) < 2:
        return Edges.empty()
    k = keys[valid]
    order = np.lexsort((valid, *k.T[::-1]))  # by every key column; ties: row order, so the first row of a group leads
    ks, rows = k[order], valid[order]
    group_start = np.r_[True, np.any(ks[1:] != ks[:-1], axis=1)]
    first_of_group = rows[np.flatnonzero(group_start)][np.cumsum(group_start) - 1]
    member = ~group_start
    return Edges.of(first_of_group[member], rows[member], "exact", 1.0)


def identical_file_groups(videos: pa.Table) -> int:
    """Number of content hashes shared by two or more video rows (copies of one file)."""
    counts = pc.value_counts(videos.column("content_hash")).field("counts").to_numpy()
    return int(np.sum(counts > 1))
