"""Golden tables: the table stages' decisions on fixed inputs, recorded once and compared on every run.

The decisions (kept, drop reasons, duplicate groups, balance weights) are what a change to the table
stages must not move by accident; scores are not recorded (they belong to the scan's own tests).
Rows are keyed by (file name, first frame, last frame), not by clip_id, so a golden reads the same
wherever the inputs live. After an intended change: VIDCURATE_UPDATE_GOLDEN=1 pytest <test>, and say
why in the commit.
"""
import json
import os
from pathlib import Path

import pyarrow as pa

GOLDEN = Path(__file__).resolve().parent / "golden"


def _key(row: dict) -> str:
    return f"{row['uri'].rsplit('/', 1)[-1]}:{row['start_frame']}-{row['end_frame']}"


def decisions(clips: pa.Table) -> dict[str, dict]:
    """Clip key -> its decision columns (dup_of as the other clip's key; weights to 4 decimals)."""
    rows = clips.select(["clip_id", "uri", "start_frame", "end_frame", "kept", "drop_reasons", "dup_group_id", "dup_kind",
                         "dup_of", "sample_weight"]).to_pylist()
    key_of = {r["clip_id"]: _key(r) for r in rows}
    group_of = {}
    for r in sorted(rows, key=_key):  # group ids hash clip ids: name a group by its first member's key instead
        if r["dup_group_id"] is not None:
            group_of.setdefault(r["dup_group_id"], _key(r))
    out = {}
    for r in rows:
        w = r["sample_weight"]
        out[_key(r)] = {"kept": r["kept"], "drop_reasons": r["drop_reasons"], "dup_group": group_of.get(r["dup_group_id"]),
                        "dup_kind": r["dup_kind"], "dup_of": key_of.get(r["dup_of"], r["dup_of"]),
                        "sample_weight": None if w is None else round(w, 4)}
    return dict(sorted(out.items()))


def check_golden(name: str, clips: pa.Table) -> None:
    """Assert that `clips`' decisions equal the golden `name` (write it instead under VIDCURATE_UPDATE_GOLDEN=1)."""
    path = GOLDEN / f"{name}.json"
    got = decisions(clips)
    if os.environ.get("VIDCURATE_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        return
    want = json.loads(path.read_text())
    assert sorted(got) == sorted(want), f"{name}: other clips than the golden's"
    moved = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
    assert not moved, f"{name}: {len(moved)} clip(s) decided otherwise than the golden, e.g. {next(iter(moved.items()))}"
