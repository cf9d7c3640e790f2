"""Curation quality from ground truth: per-defect precision/recall, shot boundaries, duplicate pairs.

A run's clips are matched to the truth of the file they come from (by relpath):

- **Defects.** A clip has defect D when D's truth spans cover at least COVER of
  its frames; it is *flagged* when its drop_reasons hold the reason D maps to
  (DEFECT_REASONS). Precision = flagged clips with D / flagged clips; recall =
  flagged clips with D / clips with D. `duplicate` is scored per video and per
  truth group: a group of k+1 copies should lose exactly k members, whichever
  it keeps. A defect whose reason no rule of the run gives is reported as
  "no rule" with its counts, never left out.
- **Shot boundaries.** Predicted cuts are clip starts, except boundaries of a
  near-black clip (split_reason "black") and between two windows of one shot;
  a truth cut matches one prediction within BOUNDARY_TOLERANCE frames. Boundaries
  next to black or fade segments (truth "ignore_boundaries"), predicted or true,
  count neither way: the black-run split decides those, not the shot detector.
- **Duplicate pairs.** Truth: every pair of files in one copy group. Predicted:
  every pair of files whose clips share a dup_group_id.

Works with both truth formats: the demo set (curation.sample_data v1, derived
from its kinds and segments) and the defect corpus (curation.defect_corpus v1).
"""
from __future__ import annotations

import itertools
import json
import posixpath
from collections import Counter
from collections.abc import Iterable

COVER = 0.5  # share of a clip's frames a defect must cover for the clip to have it
# Clips with these defects show no content: every black clip looks like every other,
# so they are left out of duplicate scoring (black_frames is what should drop them).
CONTENTLESS = frozenset({"black"})
BOUNDARY_TOLERANCE = 2  # frames
EVALUATION_NAME = "evaluation.json"

# Truth defect -> the drop reason meant to catch it; None = no rule is meant to yet.
DEFECT_REASONS: dict[str, str | None] = {
    "blur": "blurry",
    "underexposed": "dark",
    "black": "black_frames",
    "static": "static",
    "short": "too_short",
    "duplicate": "duplicate",
    "text": "too_much_text",
    "letterbox": "letterbox",
    "fade": "fade",
    "flicker": "flicker",
    "shake": "shaky",
    "blocky": "blocky",
}


# --------------------------------------------------------------------------- truth


def _small_set_video(v: dict) -> dict | None:
    """Defect spans of a demo-set (sample_data v1) video; None for the corrupt file."""
    if v.get("corrupt"):
        return None
    n = v["frames"]
    whole = {"static": "static", "blur": "blur", "dark": "underexposed", "short": "short",
             "near_duplicate": "duplicate", "exact_copy": "duplicate"}
    spans = [{"defect": whole[v["kind"]], "start": 0, "end": n}] if v["kind"] in whole else []
    ignore: set[int] = set()
    for s in v.get("segments", []):
        kind = {"near_black": "black", "fade_out": "fade"}.get(s["motion"])
        if kind:
            spans.append({"defect": kind, "start": s["start"], "end": s["end"]})
            ignore |= {s["start"], s["end"]}
    dup_kind = {"exact_copy": "exact", "near_duplicate": "reencode"}.get(v["kind"])
    return {"frames": n, "defect_spans": spans, "hard_cuts": list(v.get("hard_cuts", [])),
            "ignore_boundaries": sorted(ignore), "duplicate_of": v.get("duplicate_of"), "dup_kind": dup_kind}


def normalise_truth(truth: dict) -> dict[str, dict]:
    """{file name: {frames, defect_spans, hard_cuts, ignore_boundaries, duplicate_of, dup_kind}}."""
    out = {}
    for name, v in truth["videos"].items():
        if "defect_spans" in v:
            out[name] = {k: v.get(k) for k in ("frames", "defect_spans", "hard_cuts", "ignore_boundaries",
                                               "duplicate_of", "dup_kind")}
            out[name]["ignore_boundaries"] = out[name]["ignore_boundaries"] or []
        else:
            norm = _small_set_video(v)
            if norm is not None:
                out[name] = norm
    return out


def _root(name: str, videos: dict[str, dict]) -> str:
    seen = set()
    while videos.get(name, {}).get("duplicate_of") and name not in seen:
        seen.add(name)
        name = videos[name]["duplicate_of"]
    return name


def copy_groups(videos: dict[str, dict]) -> list[list[str]]:
    """Files that are copies of one original, the original included (groups of 2 or more)."""
    groups: dict[str, list[str]] = {}
    for name in videos:
        groups.setdefault(_root(name, videos), []).append(name)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def clip_defects(video: dict, start: int, end: int, cover: float = COVER) -> set[str]:
    """Defects whose truth spans cover at least `cover` of frames [start, end)."""
    n = max(1, end - start)
    covered: Counter[str] = Counter()
    for s in video["defect_spans"]:
        covered[s["defect"]] += max(0, min(end, s["end"]) - max(start, s["start"]))
    return {d for d, k in covered.items() if k / n >= cover}


# --------------------------------------------------------------------------- scores


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _pr(tp: int, fp: int, fn: int) -> dict:
    return {"tp": tp, "fp": fp, "fn": fn, "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn)}


def _defect_rows(clips: list[dict], videos: dict[str, dict], reasons_in_run: set[str],
                 defect_reasons: dict[str, str | None]) -> list[dict]:
    present = sorted({s["defect"] for v in videos.values() for s in v["defect_spans"]} | set(defect_reasons))
    rows = []
    for defect in present:
        reason = defect_reasons.get(defect)
        if reason is None:
            status = "no matching rule"
        elif reason not in reasons_in_run:
            status = "no rule in this run"
        else:
            status = "measured"
        if defect == "duplicate":
            counts, on_defect = _duplicate_counts(clips, videos, reason)
        else:
            tp = fp = fn = fp_clean = 0
            on_defect: Counter[str] = Counter()
            for c in clips:
                has = defect in c["defects"]
                flagged = reason is not None and reason in c["drop_reasons"]
                tp += has and flagged
                fp += flagged and not has
                fp_clean += flagged and not c["defects"] and not c["in_copy_group"]
                fn += has and not flagged
                if has:
                    on_defect.update(c["drop_reasons"] or ["(kept)"])
            counts = dict(_pr(tp, fp, fn), fp_on_clean=fp_clean)
        positives = counts["tp"] + counts["fn"]
        rows.append({"defect": defect, "reason": reason, "status": status, "positives": positives,
                     "flagged": counts["tp"] + counts["fp"], **counts,
                     "reasons_given": dict(on_defect.most_common(4))})
    return rows


def _duplicate_counts(clips: list[dict], videos: dict[str, dict], reason: str | None) -> tuple[dict, Counter]:
    """Per copy group of k+1 files: k should be dropped as duplicates, whichever is kept."""
    clips = [c for c in clips if not c["defects"] & CONTENTLESS]
    flagged = {c["name"] for c in clips if reason and reason in c["drop_reasons"]}
    seen = {c["name"] for c in clips}
    tp = fp = fn = 0
    grouped: set[str] = set()
    for group in copy_groups(videos):
        members = [g for g in group if g in seen]
        grouped |= set(members)
        expected = max(0, len(members) - 1)
        hit = sum(g in flagged for g in members)
        tp += min(hit, expected)
        fn += expected - min(hit, expected)
        fp += max(0, hit - expected)
    fp += len(flagged - grouped)
    clean = {c["name"] for c in clips if not c["defects"] and not c["in_copy_group"]}
    on_defect = Counter(r for c in clips if "duplicate" in c["defects"] for r in (c["drop_reasons"] or ["(kept)"]))
    return dict(_pr(tp, fp, fn), fp_on_clean=len(flagged & clean)), on_defect


def predicted_cuts(video_clips: list[dict]) -> list[int]:
    """Clip starts that claim a hard cut (not a black-run edge, not a window inside a shot)."""
    ordered = sorted(video_clips, key=lambda c: c["start_frame"])
    cuts = []
    for prev, cur in zip(ordered, ordered[1:]):
        if "black" in (prev["split_reason"], cur["split_reason"]):
            continue
        if prev["split_reason"] == cur["split_reason"] == "window":
            continue
        cuts.append(int(cur["start_frame"]))
    return cuts


def match_boundaries(truth: Iterable[int], predicted: Iterable[int], tol: int = BOUNDARY_TOLERANCE) -> tuple[int, int, int]:
    """(tp, fp, fn): each truth cut matches at most one prediction within tol frames, nearest first."""
    truth, predicted = sorted(truth), sorted(predicted)
    pairs = sorted((abs(t - p), i, j) for i, t in enumerate(truth) for j, p in enumerate(predicted) if abs(t - p) <= tol)
    used_t, used_p = set(), set()
    for _, i, j in pairs:
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
    return len(used_t), len(predicted) - len(used_p), len(truth) - len(used_t)


def _boundary_scores(by_video: dict[str, list[dict]], videos: dict[str, dict], tol: int) -> dict:
    tp = fp = fn = 0
    for name, vclips in by_video.items():
        v = videos[name]
        ignore = v["ignore_boundaries"]
        def counted(f: int) -> bool:
            return all(abs(f - b) > tol for b in ignore)

        pred = [p for p in predicted_cuts(vclips) if counted(p)]
        a, b, c = match_boundaries([t for t in v["hard_cuts"] if counted(t)], pred, tol)
        tp, fp, fn = tp + a, fp + b, fn + c
    return {"tolerance_frames": tol, **_pr(tp, fp, fn)}


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _duplicate_pairs(clips: list[dict], videos: dict[str, dict]) -> dict:
    contentless = {c.get("dup_group_id") for c in clips if c["defects"] & CONTENTLESS and c.get("dup_group_id")}
    clips = [c for c in clips if not c["defects"] & CONTENTLESS]
    seen = {c["name"] for c in clips}
    truth_pairs = {_pair(a, b) for g in copy_groups(videos) for a, b in itertools.combinations(g, 2)
                   if a in seen and b in seen}
    members: dict[str, set[str]] = {}
    for c in clips:
        if c.get("dup_group_id"):
            members.setdefault(c["dup_group_id"], set()).add(c["name"])
    predicted = {_pair(a, b) for m in members.values() for a, b in itertools.combinations(sorted(m), 2)}
    tp = len(truth_pairs & predicted)
    out = _pr(tp, len(predicted - truth_pairs), len(truth_pairs - predicted))
    by_kind: dict[str, dict] = {}
    for name, v in videos.items():  # recall of (copy, its original) pairs by how the copy was made
        if v.get("duplicate_of") and name in seen and v["duplicate_of"] in seen:
            k = by_kind.setdefault(v.get("dup_kind") or "unknown", {"pairs": 0, "found": 0})
            k["pairs"] += 1
            k["found"] += _pair(name, v["duplicate_of"]) in predicted
    for k in by_kind.values():
        k["recall"] = _ratio(k["found"], k["pairs"])
    out["recall_by_copy_kind"] = dict(sorted(by_kind.items()))
    out["false_pairs"] = sorted(predicted - truth_pairs)[:20]
    out["contentless_groups"] = len(contentless)  # groups of black clips, left out above
    return out


def evaluate_clips(clips: list[dict], truth: dict, reasons_in_run: set[str] | None = None,
                   defect_reasons: dict[str, str | None] | None = None, tol: int = BOUNDARY_TOLERANCE) -> dict:
    """Score clip rows {name, start_frame, end_frame, split_reason, drop_reasons, dup_group_id} against truth.

    `name` is the file's path relative to the input (the truth's key). Clips of
    files the truth does not know are ignored and counted.
    """
    defect_reasons = {**DEFECT_REASONS, **(defect_reasons or {})}
    videos = normalise_truth(truth)
    known = [dict(c, drop_reasons=list(c.get("drop_reasons") or [])) for c in clips if c["name"] in videos]
    grouped = {n for g in copy_groups(videos) for n in g}
    for c in known:
        c["defects"] = clip_defects(videos[c["name"]], int(c["start_frame"]), int(c["end_frame"]))
        c["in_copy_group"] = c["name"] in grouped
    if reasons_in_run is None:
        reasons_in_run = {r for c in known for r in c["drop_reasons"]}
    by_video: dict[str, list[dict]] = {}
    for c in known:
        by_video.setdefault(c["name"], []).append(c)
    clean = [c for c in known if not c["defects"] and not c["in_copy_group"]]
    clean_drops = Counter(r for c in clean for r in c["drop_reasons"])
    return {
        "truth": {"generator": truth.get("generator"), "videos": len(videos)},
        "videos_scored": len(by_video),
        "videos_without_clips": sorted(set(videos) - set(by_video)),
        "clips_scored": len(known),
        "clips_unknown_file": len(clips) - len(known),
        "cover": COVER,
        "defects": _defect_rows(known, videos, reasons_in_run, defect_reasons),
        "clean_clips": {"clips": len(clean), "dropped": sum(bool(c["drop_reasons"]) for c in clean),
                        "by_reason": dict(clean_drops.most_common())},
        "shot_boundaries": _boundary_scores(by_video, videos, tol),
        "duplicate_pairs": _duplicate_pairs(known, videos),
    }


# --------------------------------------------------------------------------- a run folder


def _run_clips(folder) -> list[dict]:
    """Clip rows of a run folder with `name` = the file's relpath under the input root."""
    videos = folder.table("videos").select(["uri", "relpath"]).to_pylist()
    relpath = {v["uri"]: v["relpath"] for v in videos}
    cols = ["uri", "start_frame", "end_frame", "split_reason", "drop_reasons", "dup_group_id"]
    rows = folder.table("clips").select(cols).to_pylist()
    for r in rows:
        r["name"] = relpath.get(r["uri"]) or posixpath.basename(r["uri"])
    return rows


def _reasons_in_run(folder, clips: list[dict]) -> set[str]:
    """Reasons the latest run could give: its filter rules, duplicate when dedup ran, any in the data."""
    run = folder.latest_run()
    config = (run.config or {}) if run else {}
    reasons = {r.get("reason") for r in config.get("filters") or [] if r.get("enabled", True)}
    if (config.get("stages") or {}).get("dedup", {}).get("enabled", True):
        reasons.add("duplicate")
    return {r for r in reasons if r} | {r for c in clips for r in c["drop_reasons"] or []}


def evaluate_run(out_dir: str, truth_uri: str, defect_reasons: dict[str, str | None] | None = None,
                 storage_options: dict | None = None) -> dict:
    """Evaluate run folder OUT against a truth JSON; write OUT/evaluation.json; return the result."""
    import fsspec

    from curation.dashboard.run_folder import RunFolder

    folder = RunFolder(out_dir, storage_options or {})
    with fsspec.open(truth_uri, "r", **(storage_options or {})) as f:
        truth = json.load(f)
    clips = _run_clips(folder)
    result = evaluate_clips(clips, truth, _reasons_in_run(folder, clips), defect_reasons)
    run = folder.latest_run()
    result["run_id"] = run.run_id if run else None
    result["truth"]["uri"] = truth_uri
    with fsspec.open(folder.path(EVALUATION_NAME), "w", **(storage_options or {})) as f:
        f.write(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


EVALUATION_COLUMNS = ("position", "section", "name", "reason", "status", "positives", "flagged", "tp", "fp", "fn",
                      "precision", "recall", "note")


def evaluation_rows(result: dict) -> list[dict]:
    """The evaluation as flat rows: one per defect, then shot boundaries and duplicate pairs."""
    rows = [{"section": "defect", "name": d["defect"], "reason": d["reason"], "status": d["status"],
             "positives": d["positives"], "flagged": d["flagged"], "tp": d["tp"], "fp": d["fp"], "fn": d["fn"],
             "precision": d["precision"], "recall": d["recall"],
             "note": f"fp on clean clips: {d['fp_on_clean']}; reasons given: "
                     + ", ".join(f"{k}={v}" for k, v in d["reasons_given"].items())} for d in result["defects"]]
    sb, dp = result["shot_boundaries"], result["duplicate_pairs"]
    rows.append({"section": "shot_boundaries", "name": f"hard cuts ±{sb['tolerance_frames']} frames", "reason": None,
                 "status": "measured", "positives": sb["tp"] + sb["fn"], "flagged": sb["tp"] + sb["fp"],
                 **{k: sb[k] for k in ("tp", "fp", "fn", "precision", "recall")}, "note": None})
    rows.append({"section": "duplicate_pairs", "name": "file pairs", "reason": "duplicate", "status": "measured",
                 "positives": dp["tp"] + dp["fn"], "flagged": dp["tp"] + dp["fp"],
                 **{k: dp[k] for k in ("tp", "fp", "fn", "precision", "recall")},
                 "note": ", ".join(f"{k} {v['found']}/{v['pairs']}" for k, v in dp["recall_by_copy_kind"].items())})
    return [dict(r, position=i) for i, r in enumerate(rows)]


def _truth_next_to(folder) -> str | None:
    """ground_truth.json in the run folder or in the run's input folder, if there is one."""
    import fsspec

    run = folder.latest_run()
    for base in (folder.root, run.input_uri if run else None):
        if not base:
            continue
        uri = f"{base.rstrip('/')}/ground_truth.json"
        try:
            fs, path = fsspec.core.url_to_fs(uri, **folder.storage_options)
            if fs.isfile(path):
                return uri
        except Exception:  # noqa: BLE001 - an unreachable input just means: no truth to show
            continue
    return None


def evaluation_table(folder):
    """The dashboard's evaluation rows: OUT/evaluation.json, else computed from a truth file next to the run."""
    import fsspec
    import pyarrow as pa

    fs, base = folder.fs()
    path = f"{base.rstrip('/')}/{EVALUATION_NAME}"
    result = None
    if fs.isfile(path):
        with fs.open(path, "r") as f:
            result = json.load(f)
    else:
        truth_uri = _truth_next_to(folder)
        if truth_uri:
            with fsspec.open(truth_uri, "r", **folder.storage_options) as f:
                truth = json.load(f)
            clips = _run_clips(folder)
            result = evaluate_clips(clips, truth, _reasons_in_run(folder, clips))
    rows = evaluation_rows(result) if result else []
    types = {"position": pa.int32(), "positives": pa.int64(), "flagged": pa.int64(), "tp": pa.int64(),
             "fp": pa.int64(), "fn": pa.int64(), "precision": pa.float64(), "recall": pa.float64()}
    schema = pa.schema([(c, types.get(c, pa.string())) for c in EVALUATION_COLUMNS])
    return pa.Table.from_pylist(rows, schema=schema)


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.2f}" if isinstance(x, float) else str(x)


def format_evaluation(result: dict) -> str:
    """The evaluation as text tables for the terminal."""
    from curation.dashboard.text_table import format_table

    rows = [[d["defect"], d["reason"] or "–", d["status"], d["positives"], d["flagged"], d["tp"], d["fp"],
             d["fp_on_clean"], d["fn"],
             _fmt(d["precision"]), _fmt(d["recall"]),
             ", ".join(f"{k}={v}" for k, v in d["reasons_given"].items())] for d in result["defects"]]
    out = [f"{result['clips_scored']} clips of {result['videos_scored']} files scored against "
           f"{result['truth'].get('uri') or 'the truth'} ({result['truth']['videos']} files with truth; "
           f"a clip has a defect when it covers >= {result['cover']:.0%} of its frames)"]
    if result["videos_without_clips"]:
        out.append(f"files with truth but no clips (errors or not scanned): {len(result['videos_without_clips'])}")
    out += ["", "Defects (duplicate: per file and copy group)",
            format_table(["defect", "reason", "status", "truth", "flagged", "tp", "fp", "fp clean", "fn", "precision",
                          "recall", "reasons given to its clips"], rows),
            "fp clean: flagged clips with no defect at all (other fp carry another defect, e.g. black clips are "
            "also static and dark)"]
    cc = result["clean_clips"]
    out.append(f"clean clips (no defect, no copy): {cc['clips']}, dropped {cc['dropped']}"
               + (f" ({', '.join(f'{k}={v}' for k, v in cc['by_reason'].items())})" if cc["by_reason"] else ""))
    sb, dp = result["shot_boundaries"], result["duplicate_pairs"]
    out += ["", format_table(["", "tp", "fp", "fn", "precision", "recall"], [
        [f"shot boundaries (±{sb['tolerance_frames']} frames)", sb["tp"], sb["fp"], sb["fn"],
         _fmt(sb["precision"]), _fmt(sb["recall"])],
        ["duplicate pairs (files)", dp["tp"], dp["fp"], dp["fn"], _fmt(dp["precision"]), _fmt(dp["recall"])],
    ])]
    if dp["recall_by_copy_kind"]:
        out.append("duplicate pairs found by copy kind: " + ", ".join(
            f"{k} {v['found']}/{v['pairs']}" for k, v in dp["recall_by_copy_kind"].items()))
    if dp.get("contentless_groups"):
        out.append(f"left out: {dp['contentless_groups']} duplicate group(s) of black clips (all black clips look alike)")
    return "\n".join(out)
