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

**Keep/drop labels** (a person's verdicts on real footage, e.g.
../shared/data/real/LABELS.json) are the third input; `evaluate_labels` scores them:

    {"_about": "...",                          # keys that start with "_" are comments
     "FILE": {                                 # the file's path relative to the input (else its unique base name)
       "keep": true | false | "every shot",    # the label of each of its clips (true: the file should be kept;
                                               # "every shot": so should each of its clips)
       "spans": [{"start_s": 0.0, "end_s": 1.0, "keep": false, "defect": "black"}],  # optional, seconds
       "defect": "black",                      # optional: the truth defect (DEFECT_REASONS) a drop label is for
       "copy_of": {"file": "OTHER", "span_s": [4.75, 6.75]},  # optional: FILE re-publishes that span of OTHER
       ...}}                                   # any other key (notes, source, size) is ignored

A clip takes the label of the span that covers most of its time when that span
covers at least COVER of it, else its file's. A clip of a copy (`copy_of`) and
a clip of the original that overlaps the copied span form a copy group: when one
member is kept and the others are dropped only as `duplicate`, that group is
right whichever member it kept, and its clips count neither way. Reported:
**clean-clip retention** (clips labelled keep that the run kept), per drop reason
its precision (a clip labelled drop counts as a correct drop for any reason) and
recall (share of the clips labelled drop that carry it), and per file whether the
verdict matches (true: some clip kept; "every shot": all kept; false: none kept).
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

# Truth defect -> the drop reason meant to catch it (or a tuple: any of them catches it); None = no rule is meant to yet.
DEFECT_REASONS: dict[str, str | tuple[str, ...] | None] = {
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
    "blocky": ("blocky", "blocky_grid"),  # the codec's quantiser, else (any codec) the 8x8 grid in the picture
}


def reasons_of(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """The drop reasons a DEFECT_REASONS value names."""
    return () if value is None else (value,) if isinstance(value, str) else tuple(value)


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
                 defect_reasons: dict[str, str | tuple[str, ...] | None]) -> list[dict]:
    present = sorted({s["defect"] for v in videos.values() for s in v["defect_spans"]} | set(defect_reasons))
    rows = []
    for defect in present:
        reasons = reasons_of(defect_reasons.get(defect))
        if not reasons:
            status = "no matching rule"
        elif not set(reasons) & reasons_in_run:
            status = "no rule in this run"
        else:
            status = "measured"
        if defect == "duplicate":
            counts, on_defect = _duplicate_counts(clips, videos, reasons)
        else:
            tp = fp = fn = fp_clean = 0
            on_defect: Counter[str] = Counter()
            for c in clips:
                has = defect in c["defects"]
                flagged = any(r in c["drop_reasons"] for r in reasons)
                tp += has and flagged
                fp += flagged and not has
                fp_clean += flagged and not c["defects"] and not c["in_copy_group"]
                fn += has and not flagged
                if has:
                    on_defect.update(c["drop_reasons"] or ["(kept)"])
            counts = dict(_pr(tp, fp, fn), fp_on_clean=fp_clean)
        positives = counts["tp"] + counts["fn"]
        rows.append({"defect": defect, "reason": "|".join(reasons) or None, "status": status, "positives": positives,
                     "flagged": counts["tp"] + counts["fp"], **counts,
                     "reasons_given": dict(on_defect.most_common(4))})
    return rows


def _duplicate_counts(clips: list[dict], videos: dict[str, dict], reasons: tuple[str, ...]) -> tuple[dict, Counter]:
    """Per copy group of k+1 files: k should be dropped as duplicates, whichever is kept."""
    clips = [c for c in clips if not c["defects"] & CONTENTLESS]
    flagged = {c["name"] for c in clips if any(r in c["drop_reasons"] for r in reasons)}
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


# --------------------------------------------------------------------------- keep/drop labels


def is_labels(data: dict) -> bool:
    """True for a keep/drop labels file (module docstring); a ground-truth file has "videos" instead."""
    return "videos" not in data and any(isinstance(v, dict) and "keep" in v
                                        for k, v in data.items() if not k.startswith("_"))


def normalise_labels(labels: dict) -> dict[str, dict]:
    """{file: {keep, every_shot, spans, defect, copy_of}}; ValueError names a malformed entry."""
    out = {}
    for name, v in labels.items():
        if name.startswith("_"):
            continue
        if not isinstance(v, dict) or v.get("keep") not in (True, False, "every shot"):
            raise ValueError(f"label of {name!r}: 'keep' must be true, false or \"every shot\"")
        spans = []
        for s in v.get("spans") or []:
            try:
                a, b, keep = float(s["start_s"]), float(s["end_s"]), s["keep"]
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"label of {name!r}: a span needs start_s, end_s (seconds) and keep") from None
            if not b > a or keep not in (True, False):
                raise ValueError(f"label of {name!r}: span {a}-{b} s needs end_s > start_s and keep true or false")
            spans.append({"start_s": a, "end_s": b, "keep": keep, "defect": s.get("defect")})
        copy = v.get("copy_of")
        if copy is not None:
            if not isinstance(copy, dict) or "file" not in copy:
                raise ValueError(f"label of {name!r}: copy_of needs {{\"file\": ..., \"span_s\": [start, end]}}")
            span = copy.get("span_s") or [0.0, float("inf")]
            copy = {"file": copy["file"], "span_s": [float(span[0]), float(span[1])]}
        out[name] = {"keep": v["keep"] is not False, "every_shot": v["keep"] == "every shot", "spans": spans,
                     "defect": v.get("defect"), "copy_of": copy}
    return out


def label_key(name: str, labels: dict[str, dict]) -> str | None:
    """The labels' key for a run's file: its relpath, else its base name when exactly one label has it."""
    if name in labels:
        return name
    hits = [k for k in labels if posixpath.basename(k) == posixpath.basename(name)]
    return hits[0] if len(hits) == 1 else None


def clip_label(label: dict, start_s: float, end_s: float, cover: float = COVER) -> tuple[bool, str | None]:
    """(keep, defect) of a clip: the span that covers most of it if it covers >= cover of it, else the file's."""
    best, overlap = None, 0.0
    for s in label["spans"]:
        o = min(end_s, s["end_s"]) - max(start_s, s["start_s"])
        if o > overlap:
            best, overlap = s, o
    if best is not None and overlap >= cover * max(1e-9, end_s - start_s):
        return best["keep"], best["defect"]
    return label["keep"], label["defect"]


def label_clips(clips: list[dict], labels: dict[str, dict]) -> list[dict]:
    """Clips {name, start_s, end_s, drop_reasons} of labelled files, with file, keep, defect, kept, either_way.

    either_way: the clip is in a copy group that kept one member, and its verdict goes against its label
    only because the group kept another member (module docstring); it counts neither way.
    """
    out = []
    for c in clips:
        key = label_key(c["name"], labels)
        if key is None:
            continue
        reasons = list(c.get("drop_reasons") or [])
        keep, defect = clip_label(labels[key], float(c["start_s"]), float(c["end_s"]))
        out.append(dict(c, file=key, keep=keep, defect=defect, drop_reasons=reasons, kept=not reasons,
                        either_way=False))
    for name, lab in labels.items():
        if not lab["copy_of"]:
            continue
        a, b = lab["copy_of"]["span_s"]
        group = [c for c in out if c["file"] == name or (
            c["file"] == lab["copy_of"]["file"] and min(float(c["end_s"]), b) > max(float(c["start_s"]), a))]
        if any(c["kept"] for c in group):
            for c in group:
                if (c["keep"] and c["drop_reasons"] == ["duplicate"]) or (not c["keep"] and c["kept"]):
                    c["either_way"] = True
    return out


def _file_verdicts(labelled: list[dict], labels: dict[str, dict]) -> list[dict]:
    rows = []
    for name, lab in labels.items():
        mine = [c for c in labelled if c["file"] == name]
        kept = [c for c in mine if (c["keep"] if c["either_way"] else c["kept"])]  # a copy group's choice is right
        if not mine:
            verdict = "no clips"
        elif lab["every_shot"]:
            verdict = "right" if len(kept) == len(mine) else "wrong"
        else:
            verdict = "right" if bool(kept) == lab["keep"] else "wrong"
        label = "every shot" if lab["every_shot"] else "keep" if lab["keep"] else "drop"
        reasons = Counter(r for c in mine if not c["either_way"] for r in c["drop_reasons"])
        rows.append({"file": name, "label": label, "clips": len(mine), "kept": len(kept), "verdict": verdict,
                     "reasons": dict(reasons.most_common())})
    return rows


def evaluate_labels(clips: list[dict], labels: dict, reasons_in_run: set[str] | None = None) -> dict:
    """Score clip rows {name, start_s, end_s, drop_reasons} against keep/drop labels (module docstring)."""
    labels = normalise_labels(labels)
    labelled = label_clips(clips, labels)
    counted = [c for c in labelled if not c["either_way"]]
    keep = [c for c in counted if c["keep"]]
    drop = [c for c in counted if not c["keep"]]
    reasons = sorted((reasons_in_run or set()) | {r for c in counted for r in c["drop_reasons"]})
    rows = []
    for r in reasons:
        tp = sum(r in c["drop_reasons"] for c in drop)
        fp = sum(r in c["drop_reasons"] for c in keep)
        rows.append({"reason": r, "flagged": tp + fp, "tp": tp, "fp": fp, "fn": len(drop) - tp,
                     "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, len(drop))})
    rows.sort(key=lambda x: (-x["flagged"], x["reason"]))
    kept = sum(c["kept"] for c in keep)
    dropped = sum(not c["kept"] for c in drop)
    files = _file_verdicts(labelled, labels)
    return {
        "files": len(labels),
        "files_without_clips": sorted(f["file"] for f in files if f["verdict"] == "no clips"),
        "clips_scored": len(labelled),
        "clips_unlabelled_file": len(clips) - len(labelled),
        "cover": COVER,
        "retention": {"clips": len(keep), "kept": kept, "retention": _ratio(kept, len(keep)),
                      "dropped_by_reason": dict(Counter(r for c in keep for r in c["drop_reasons"]).most_common())},
        "drops": {"clips": len(drop), "dropped": dropped, "recall": _ratio(dropped, len(drop)),
                  "precision": _ratio(dropped, dropped + len(keep) - kept)},
        "either_way": sum(c["either_way"] for c in labelled),
        "reasons": rows,
        "file_verdicts": files,
    }


def evaluate_clips(clips: list[dict], truth: dict, reasons_in_run: set[str] | None = None,
                   defect_reasons: dict[str, str | tuple[str, ...] | None] | None = None,
                   tol: int = BOUNDARY_TOLERANCE) -> dict:
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
    cols = ["uri", "start_frame", "end_frame", "start_s", "end_s", "split_reason", "drop_reasons", "dup_group_id"]
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


def _read_json(uri: str, storage_options: dict | None) -> dict:
    import fsspec

    with fsspec.open(uri, "r", **(storage_options or {})) as f:
        return json.load(f)


def evaluate_folder(folder, truth: dict | None = None, labels: dict | None = None,
                    defect_reasons: dict[str, str | None] | None = None) -> dict:
    """A run folder's clips scored against a ground truth, keep/drop labels, or both (keys "defects"..., "labels")."""
    clips = _run_clips(folder)
    reasons = _reasons_in_run(folder, clips)
    result = evaluate_clips(clips, truth, reasons, defect_reasons) if truth is not None else {}
    if labels is not None:
        result["labels"] = evaluate_labels(clips, labels, reasons)
    return result


def evaluate_run(out_dir: str, truth_uri: str | None = None, defect_reasons: dict[str, str | None] | None = None,
                 storage_options: dict | None = None, labels_uri: str | None = None) -> dict:
    """Evaluate run folder OUT against a truth JSON and/or keep/drop labels; write OUT/evaluation.json.

    A labels file given as the truth is read as labels.
    """
    import fsspec

    from curation.dashboard.run_folder import RunFolder

    if truth_uri is None and labels_uri is None:
        raise ValueError("evaluate needs a ground-truth file, a labels file or both")
    folder = RunFolder(out_dir, storage_options or {})
    truth = _read_json(truth_uri, storage_options) if truth_uri else None
    labels = _read_json(labels_uri, storage_options) if labels_uri else None
    if truth is not None and is_labels(truth):
        truth, labels, labels_uri = None, truth, truth_uri
    result = evaluate_folder(folder, truth, labels, defect_reasons)
    run = folder.latest_run()
    result["run_id"] = run.run_id if run else None
    if truth is not None:
        result["truth"]["uri"] = truth_uri
    if labels is not None:
        result["labels"]["uri"] = labels_uri
    with fsspec.open(folder.path(EVALUATION_NAME), "w", **(storage_options or {})) as f:
        f.write(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


EVALUATION_COLUMNS = ("position", "section", "name", "reason", "status", "positives", "flagged", "tp", "fp", "fn",
                      "precision", "recall", "note")


def _truth_rows(result: dict) -> list[dict]:
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
    return rows


RETENTION_ROW = "clean-clip retention"  # the labels section's first row: tp = clips labelled keep that were kept


def _label_rows(lab: dict) -> list[dict]:
    ret, drops = lab["retention"], lab["drops"]
    wrong = [f["file"] for f in lab["file_verdicts"] if f["verdict"] == "wrong"]
    rows = [{"section": "labels", "name": RETENTION_ROW, "reason": None, "status": "measured",
             "positives": ret["clips"], "flagged": ret["kept"], "tp": ret["kept"], "fp": None,
             "fn": ret["clips"] - ret["kept"], "precision": None, "recall": ret["retention"],
             "note": "clips labelled keep that the run dropped, by reason: "
                     + (", ".join(f"{k}={v}" for k, v in ret["dropped_by_reason"].items()) or "none")},
            {"section": "labels", "name": "any drop reason", "reason": None, "status": "measured",
             "positives": drops["clips"], "flagged": drops["dropped"] + ret["clips"] - ret["kept"],
             "tp": drops["dropped"], "fp": ret["clips"] - ret["kept"], "fn": drops["clips"] - drops["dropped"],
             "precision": drops["precision"], "recall": drops["recall"],
             "note": f"files with the wrong verdict: {', '.join(wrong) or 'none'}"}]
    rows += [{"section": "labels", "name": r["reason"], "reason": r["reason"], "status": "measured",
              "positives": drops["clips"], "flagged": r["flagged"], "tp": r["tp"], "fp": r["fp"], "fn": r["fn"],
              "precision": r["precision"], "recall": r["recall"], "note": None} for r in lab["reasons"]]
    return rows


def evaluation_rows(result: dict) -> list[dict]:
    """The evaluation as flat rows: per defect, shot boundaries and duplicate pairs; then the labels' rows."""
    rows = _truth_rows(result) if "defects" in result else []
    if "labels" in result:
        rows += _label_rows(result["labels"])
    return [dict(r, position=i) for i, r in enumerate(rows)]


TRUTH_NAMES = ("ground_truth.json", "LABELS.json")  # looked for next to a run when it has no evaluation.json


def _truth_next_to(folder) -> dict[str, str]:
    """{file name: uri} of ground_truth.json and LABELS.json in the run folder or the run's input folder."""
    import fsspec

    run = folder.latest_run()
    found = {}
    for base in (folder.root, run.input_uri if run else None):
        for name in TRUTH_NAMES:
            if not base or name in found:
                continue
            uri = f"{base.rstrip('/')}/{name}"
            try:
                fs, path = fsspec.core.url_to_fs(uri, **folder.storage_options)
                if fs.isfile(path):
                    found[name] = uri
            except Exception:  # noqa: BLE001 - an unreachable input just means: no truth to show
                continue
    return found


def evaluation_table(folder):
    """The dashboard's evaluation rows: OUT/evaluation.json, else computed from truth or labels next to the run."""
    import pyarrow as pa

    fs, base = folder.fs()
    path = f"{base.rstrip('/')}/{EVALUATION_NAME}"
    result = None
    if fs.isfile(path):
        with fs.open(path, "r") as f:
            result = json.load(f)
    else:
        found = {k: _read_json(v, folder.storage_options) for k, v in _truth_next_to(folder).items()}
        if found:
            result = evaluate_folder(folder, found.get("ground_truth.json"), found.get("LABELS.json"))
    rows = evaluation_rows(result) if result else []
    types = {"position": pa.int32(), "positives": pa.int64(), "flagged": pa.int64(), "tp": pa.int64(),
             "fp": pa.int64(), "fn": pa.int64(), "precision": pa.float64(), "recall": pa.float64()}
    schema = pa.schema([(c, types.get(c, pa.string())) for c in EVALUATION_COLUMNS])
    return pa.Table.from_pylist(rows, schema=schema)


def _pct(x) -> str:
    return "–" if x is None else f"{x:.0%}"


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.2f}" if isinstance(x, float) else str(x)


def format_evaluation(result: dict) -> str:
    """The evaluation as text tables for the terminal."""
    out = _format_truth(result) if "defects" in result else []
    if "labels" in result:
        out += ([""] if out else []) + _format_labels(result["labels"])
    return "\n".join(out)


def _format_truth(result: dict) -> list[str]:
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
    return out


def _format_labels(lab: dict) -> list[str]:
    from curation.dashboard.text_table import format_table

    ret, drops = lab["retention"], lab["drops"]
    out = [f"{lab['clips_scored']} clips of {lab['files'] - len(lab['files_without_clips'])} labelled files scored "
           f"against {lab.get('uri') or 'the labels'} (a clip takes a span's label when the span covers >= "
           f"{lab['cover']:.0%} of it)",
           f"clean-clip retention: {_pct(ret['retention'])} ({ret['kept']} of {ret['clips']} clips labelled keep kept"
           + (f"; dropped by {', '.join(f'{k}={v}' for k, v in ret['dropped_by_reason'].items())})"
              if ret["dropped_by_reason"] else ")"),
           f"clips labelled drop: {drops['clips']}, dropped {drops['dropped']} (recall {_fmt(drops['recall'])}, "
           f"precision of any drop {_fmt(drops['precision'])})"]
    if lab["either_way"]:
        out.append(f"copy groups that kept another member: {lab['either_way']} clip(s) counted neither way")
    if lab["files_without_clips"]:
        out.append(f"labelled files with no clips (errors or not scanned): {', '.join(lab['files_without_clips'])}")
    idle = [r["reason"] for r in lab["reasons"] if not r["flagged"]]
    out += ["", "Drop reasons on labelled footage (a clip labelled drop is a correct drop for any reason)",
            format_table(["reason", "flagged", "tp (labelled drop)", "fp (labelled keep)", "precision", "recall"],
                         [[r["reason"], r["flagged"], r["tp"], r["fp"], _fmt(r["precision"]), _fmt(r["recall"])]
                          for r in lab["reasons"] if r["flagged"]]),
            f"rules that dropped no labelled clip: {', '.join(idle) or 'none'}",
            "", format_table(["file", "label", "clips", "kept", "verdict", "drop reasons"],
                             [[f["file"], f["label"], f["clips"], f["kept"], f["verdict"],
                               ", ".join(f"{k}={v}" for k, v in f["reasons"].items())] for f in lab["file_verdicts"]])]
    return out
