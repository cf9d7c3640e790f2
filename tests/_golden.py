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


def _golden(name: str, got: dict) -> dict | None:
    """The golden `name`; under VIDCURATE_UPDATE_GOLDEN=1, `got` is written as the golden instead (returns None)."""
    path = GOLDEN / f"{name}.json"
    if os.environ.get("VIDCURATE_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        return None
    return json.loads(path.read_text())


def check_golden(name: str, clips: pa.Table) -> None:
    """Assert that `clips`' decisions equal the golden `name` (write it instead under VIDCURATE_UPDATE_GOLDEN=1)."""
    got = decisions(clips)
    want = _golden(name, got)
    if want is None:
        return
    assert sorted(got) == sorted(want), f"{name}: other clips than the golden's"
    moved = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
    assert not moved, f"{name}: {len(moved)} clip(s) decided otherwise than the golden, e.g. {next(iter(moved.items()))}"


# The scan's scores on the shared videos, recorded once (tests/golden/scan_scores.json), and how far a change to the
# scan's own work may move them (issue 22): cuts identical (the clip keys), the motion ranking kept, keyframe
# pHashes within a few bits, audio within 0.1 LU and 0.02, the text area within 0.02, every other score unmoved.
SCORE_TOLERANCE = {"loudness_lufs": 0.1, "speech_frac": 0.02, "silence_frac": 0.02, "audio_coverage": 0.02,
                   "text_area_frac": 0.02}
EXACT_SCORES = ("sharpness", "luma_mean", "luma_p99", "contrast", "colorfulness", "black_frac", "quality", "fade_frac",
                "flicker", "shake", "blockiness", "qp", "content_frac", "nsfw_score")
MOTION_SPEARMAN_MIN = 0.99  # the clips' motion ranking, against the golden's
PHASH_MAX_BITS = 4  # of 64, per keyframe


def scores(clips: pa.Table) -> dict[str, dict]:
    """Clip key -> its scan scores (motion, camera label, keyframe pHashes, audio, text and picture scores)."""
    cols = ["motion", "camera_motion_type", "phash", *SCORE_TOLERANCE, *EXACT_SCORES]
    return dict(sorted((_key(r), {c: r[c] for c in cols}) for r in clips.select(["uri", "start_frame", "end_frame", *cols]).to_pylist()))


def check_scores(name: str, clips: pa.Table) -> None:
    """Assert that `clips`' scores are within the tolerances above of the golden `name` (written under
    VIDCURATE_UPDATE_GOLDEN=1)."""
    from scipy.stats import spearmanr

    got = scores(clips)
    want = _golden(name, got)
    if want is None:
        return
    assert sorted(got) == sorted(want), f"{name}: other clips (cuts) than the golden's"
    moving = [k for k in want if want[k]["motion"] is not None]
    rho = spearmanr([want[k]["motion"] for k in moving], [got[k]["motion"] for k in moving]).statistic
    assert rho >= MOTION_SPEARMAN_MIN, f"{name}: motion ranking moved (Spearman {rho:.4f} < {MOTION_SPEARMAN_MIN})"
    for k in want:
        w, g = want[k], got[k]
        bits = [bin(a ^ b).count("1") for a, b in zip(w["phash"] or [], g["phash"] or [])]
        assert len(w["phash"] or []) == len(g["phash"] or []) and max(bits, default=0) <= PHASH_MAX_BITS, (k, bits)
        for c, tol in SCORE_TOLERANCE.items():
            assert (w[c] is None) == (g[c] is None) and (w[c] is None or abs(w[c] - g[c]) <= tol), (k, c, w[c], g[c])
        for c in EXACT_SCORES:
            assert (w[c] is None) == (g[c] is None) and (w[c] is None or abs(w[c] - g[c]) <= 1e-6 * max(1.0, abs(w[c]))), (k, c, w[c], g[c])
