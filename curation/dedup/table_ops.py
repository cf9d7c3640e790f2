"""Arrow helpers shared by dedup and balance: edit drop_reasons without a Python loop per row."""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def set_drop_reason(table: pa.Table, add_mask: np.ndarray, reason: str) -> pa.Table:
    """Remove `reason` from every row's drop_reasons, append it where add_mask, recompute kept."""
    lists = table.column("drop_reasons").combine_chunks()
    n = len(lists)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(lists)
    keep = pc.fill_null(pc.not_equal(values, reason), False)
    values = values.filter(keep)
    parents = parents[keep.to_numpy(zero_copy_only=False)]
    add_rows = np.flatnonzero(np.asarray(add_mask, bool))
    all_parents = np.concatenate([parents, add_rows])
    all_values = pa.concat_arrays([values.cast(pa.string()), pa.array([reason] * len(add_rows), pa.string())])
    order = np.argsort(all_parents, kind="stable")  # old reasons keep their order; the new one goes last
    offsets = np.r_[0, np.cumsum(np.bincount(all_parents, minlength=n))].astype(np.int32)
    new_lists = pa.ListArray.from_arrays(pa.array(offsets), all_values.take(pa.array(order)))
    kept = pa.array(np.diff(offsets) == 0)
    table = table.set_column(table.schema.get_field_index("drop_reasons"), table.schema.field("drop_reasons"), new_lists)
    return table.set_column(table.schema.get_field_index("kept"), table.schema.field("kept"), kept)


def reasons_without(table: pa.Table, reason: str) -> np.ndarray:
    """Per row: True when drop_reasons has nothing but (possibly) `reason`, i.e. kept if `reason` were lifted."""
    lists = table.column("drop_reasons").combine_chunks()
    n = len(lists)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    other = pc.fill_null(pc.not_equal(pc.list_flatten(lists), reason), True).to_numpy(zero_copy_only=False)
    return np.bincount(parents[other], minlength=n) == 0


def float_column(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64 with NaN for nulls."""
    return table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def embedding_matrix(table: pa.Table, column: str = "embedding") -> tuple[np.ndarray, np.ndarray]:
    """(rows, X): rows with a non-null embedding of the most common length, and their L2-normalised (n, d) float32."""
    lists = table.column(column).combine_chunks()
    lengths = np.asarray(lists.value_lengths().fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    if not np.any(lengths > 0):
        return np.empty(0, np.int64), np.empty((0, 0), np.float32)
    d = int(np.bincount(lengths[lengths > 0]).argmax())
    rows = np.flatnonzero(lengths == d)
    sub = lists if len(rows) == n_rows(lists) else lists.take(pa.array(rows))
    x = np.array(sub.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(rows), d)  # own copy
    norms = np.linalg.norm(x, axis=1)
    good = norms > 0
    if not good.all():
        x, rows, norms = x[good], rows[good], norms[good]
    x /= norms[:, None]  # in place: no second (n, d) copy
    return rows, x


def n_rows(arr: pa.Array) -> int:
    return len(arr)
