"""Declarative filters: every rule a clip fails adds its reason code; null never fails."""
from collections.abc import Sequence
from dataclasses import dataclass

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
    reasons = [list(r or []) for r in clips.column("drop_reasons").to_pylist()]
    for rule in rules:
        col = clips.column(rule.column)
        fails = pa.chunked_array([pa.array([False] * clips.num_rows, pa.bool_())])
        if rule.min is not None:
            fails = pc.or_(fails, pc.fill_null(pc.less(col, rule.min), False))
        if rule.max is not None:
            fails = pc.or_(fails, pc.fill_null(pc.greater(col, rule.max), False))  # null: not measured, not a failure
        for i, f in enumerate(fails.to_pylist()):
            if f and rule.reason not in reasons[i]:
                reasons[i].append(rule.reason)
    clips = clips.set_column(clips.schema.get_field_index("drop_reasons"), "drop_reasons", pa.array(reasons, pa.list_(pa.string())))
    kept = pa.array([not r for r in reasons], pa.bool_())
    return clips.set_column(clips.schema.get_field_index("kept"), "kept", kept)


def rule_counts(clips: pa.Table) -> dict[str, int]:
    """How many clips carry each reason code."""
    counts: dict[str, int] = {}
    for reasons in clips.column("drop_reasons").to_pylist():
        for r in reasons or []:
            counts[r] = counts.get(r, 0) + 1
    return dict(sorted(counts.items()))
