"""Declarative filters: every rule a clip fails adds its reason code; null never fails."""
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Rule:
    column: str
    min: float | None
    max: float | None
    reason: str


def apply_filters(clips: pa.Table, rules: Sequence[Rule]) -> pa.Table:
    """Return `clips` with each failed rule's reason appended to drop_reasons; kept = no reasons."""
    lists = clips.column("drop_reasons").combine_chunks()
    for rule in rules:
        col = clips.column(rule.column)
        fails = np.zeros(clips.num_rows, bool)
        if rule.min is not None:
            fails |= pc.fill_null(pc.less(col, rule.min), False).to_numpy()
        if rule.max is not None:
            fails |= pc.fill_null(pc.greater(col, rule.max), False).to_numpy()  # null: not measured, not a failure
        lists = _append_reason(lists, fails, rule.reason)
    clips = clips.set_column(clips.schema.get_field_index("drop_reasons"), "drop_reasons", lists)
    kept = pc.equal(pc.list_value_length(lists), 0)
    return clips.set_column(clips.schema.get_field_index("kept"), "kept", kept)


def _append_reason(lists: pa.ListArray, where: np.ndarray, reason: str) -> pa.ListArray:
    """Append `reason` to the lists at `where` that do not hold it yet (vectorised; null lists become empty)."""
    n = len(lists)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(lists).cast(pa.string())
    has = np.bincount(parents[pc.fill_null(pc.equal(values, reason), False).to_numpy(zero_copy_only=False)], minlength=n) > 0
    add = np.flatnonzero(where & ~has)
    all_parents = np.concatenate([parents, add])
    all_values = pa.concat_arrays([values, pa.array([reason] * len(add), pa.string())])
    order = np.argsort(all_parents, kind="stable")  # a row's earlier reasons keep their order; the new one goes last
    offsets = np.r_[0, np.cumsum(np.bincount(all_parents, minlength=n))].astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), all_values.take(pa.array(order)))


def rule_counts(clips: pa.Table) -> dict[str, int]:
    """How many clips carry each reason code."""
    values = pc.list_flatten(clips.column("drop_reasons").combine_chunks())
    counts = pc.value_counts(values) if len(values) else []
    return dict(sorted((c["values"].as_py(), c["counts"].as_py()) for c in counts))
