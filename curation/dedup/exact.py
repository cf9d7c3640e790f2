"""Exact duplicates: byte-identical files (videos.content_hash) and, in them, the same span."""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.dedup.edges import Edges


def clip_content_keys(clips: pa.Table, videos: pa.Table) -> np.ndarray:
    """Per clip, "content_hash:start_frame:end_frame" of its file (None where the video is unknown)."""
    vid_hash = dict(zip(videos.column("video_id").to_pylist(), videos.column("content_hash").to_pylist()))
    hashes = [vid_hash.get(v) for v in clips.column("video_id").to_pylist()]
    starts = clips.column("start_frame").to_pylist()
    ends = clips.column("end_frame").to_pylist()
    return np.array(
        [None if h is None else f"{h}:{s}:{e}" for h, s, e in zip(hashes, starts, ends)], dtype=object
    )


def exact_edges(keys: np.ndarray) -> Edges:
    """Star edges from the first row of every group of equal keys to the others (None keys skipped)."""
    valid = np.flatnonzero(np.array([k is not None for k in keys], dtype=bool))
    if len(valid) < 2:
        return Edges.empty()
    arr = pa.array(keys[valid].tolist(), pa.string())
    codes = pc.dictionary_encode(arr).indices.to_numpy(zero_copy_only=False).astype(np.int64)
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
