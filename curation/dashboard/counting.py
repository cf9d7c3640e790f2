"""The one counting rule for drop reasons, shared by the dashboard funnel and the CLI run summary.

- flagged: clips that carry the reason; a clip with several reasons counts under each of them.
- removed (at the reason's funnel step): clips whose first reason, in funnel order, is this one;
  each dropped clip counts once, so the removed counts add up to the dropped total.

Funnel order: filter rules as configured, then reasons no rule names (duplicate, balance, ...)
alphabetically -- the `reason_steps` view computes the same order in SQL.
"""
from collections.abc import Iterable, Sequence

COUNTING_RULE = (
    "flagged = clips that carry the reason (a clip with several counts under each); "
    "removed = clips whose first reason in funnel order is this one (each dropped clip once)"
)


def funnel_order(rule_reasons: Sequence[str], found: Iterable[str]) -> list[str]:
    """Reasons in funnel order: configured rules first (first position wins), then the others alphabetically."""
    ordered = list(dict.fromkeys(rule_reasons))
    return ordered + sorted(set(found) - set(ordered))


def reason_counts(drop_reasons: Iterable[Sequence[str] | None], rule_reasons: Sequence[str] = ()) -> dict[str, dict[str, int]]:
    """{reason: {"flagged": n, "removed": m}} in funnel order, by COUNTING_RULE."""
    lists = [list(r or []) for r in drop_reasons]
    order = funnel_order(rule_reasons, {x for r in lists for x in r})
    rank = {reason: i for i, reason in enumerate(order)}
    out = {reason: {"flagged": 0, "removed": 0} for reason in order}
    for reasons in lists:
        for reason in set(reasons):
            out[reason]["flagged"] += 1
        if reasons:
            out[min(reasons, key=rank.__getitem__)]["removed"] += 1
    return out


def summary_line(counts: dict[str, dict[str, int]]) -> str:
    """One line for the CLI, with the rule's words: "dropped clips by reason (flagged / removed at its step): ..."."""
    body = ", ".join(f"{r} {c['flagged']}/{c['removed']}" for r, c in counts.items())
    return f"dropped clips by reason (flagged / removed at its funnel step): {body}"
