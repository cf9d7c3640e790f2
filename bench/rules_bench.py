"""Picture rules on real footage and on the defect corpus, side by side in one run: false drops next to recall.

Run: python -m bench rules [--work DIR] [--config FILE] [--budget 0.05] [--rule-budget REASON=SHARE ...]

Scans, with the config's scan parameters (pipelines.params.scan_params) and, for
`text_area_frac`, its text detector on each clip's keyframes (curation/text_area.py):

- **clean real footage**: the clips labelled keep of ../shared/data/real (LABELS.json there)
  and of ../shared/data/videos (bench/shared_videos_labels.json: the same format, read off
  EXPECTED.json; carphone_distorted.mp4, the 7 KB re-encode, is labelled drop as blocky);
- **bar variants** of every file with a clip labelled keep (tests/_bars.py: its first 8 s at
  up to 480 px wide, plain and letterboxed, pillarboxed and windowboxed in black and in a
  colour); a variant's clips take their source's labels;
- **the defect corpus** (curation.defect_corpus, --corpus-count base videos); a clip has the
  defects its ground truth gives it (curation.evaluate.clip_defects).

Then, for every rule of the config's `filters` whose column the scan measures (generic: a
new column or rule needs no change here), side by side: its false-drop rate on clean real
clips (originals, bar variants, both), its recall and precision on the corpus for the defect
it targets (curation.evaluate.DEFECT_REASONS), its score's min/median/max on clean real
clips, on those defect clips and on clean corpus clips, and a threshold sweep: the threshold
that keeps its false drops on clean real clips (originals and variants) within its share of
the budget, with the recall it leaves. The budget (--budget, default 5 %) is for all picture
rules together; each measured picture rule gets an equal share unless --rule-budget says
otherwise. Rules on sound, duration or captions are listed, not swept.

Scans are cached under --work by file, its size and mtime, the scan config and the source of
curation/ (a changed scorer rescans, a changed threshold does not), so a rerun with other
thresholds takes seconds. Prints a table; writes bench/results/rules.json.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "rules.json"
SHARED = REPO.parent / "shared" / "data"
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
VIDEOS_LABELS = REPO / "bench" / "shared_videos_labels.json"
# Columns that are not measured on the picture: their rules are listed, not swept against the picture budget.
NOT_PICTURE = ("duration_s", "num_frames", "silence_frac", "speech_frac", "loudness_lufs")
NOT_PICTURE_PREFIXES = ("audio_", "caption_")
# Source files whose change can change what the scan measures (everything under curation/ but these).
NOT_SCAN_SOURCES = ("evaluate.py", "defect_corpus.py", "sample_data.py", "sample_defects.py")
BENCH_CODE = 1  # bump when what this bench caches per file changes


# --------------------------------------------------------------------------- inputs


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTS) if folder.is_dir() else []


def _labels(path: Path) -> dict[str, dict]:
    from curation.evaluate import normalise_labels

    return normalise_labels(json.loads(path.read_text())) if path.exists() else {}


def real_items(folder: Path, labels_path: Path) -> list[dict]:
    """{path, name, set, label} for every video in `folder` that its labels file names."""
    from curation.evaluate import label_key

    labels = _labels(labels_path)
    items = []
    for p in _files(folder):
        key = label_key(p.name, labels)
        if key is not None:
            items.append({"path": p, "name": f"{folder.name}/{p.name}", "set": "real", "label": labels[key],
                          "shift_s": 0.0})
    return items


def whole_clips_s(clips: list[dict], max_s: float) -> float:
    """Seconds from the first clip's start to the end of the last clip that ends within max_s (else max_s):
    a variant cut there has no clip cut short."""
    if not clips:
        return max_s
    t0 = min(c["start_s"] for c in clips)
    ends = [c["end_s"] - t0 for c in clips if c["end_s"] - t0 <= max_s + 1e-6]
    return max(ends) if ends else max_s


def bar_items(sources: list[dict], work: Path, max_s: float, width: int) -> list[dict]:
    """Bar variants (tests/_bars.py) of every scanned source with a clip labelled keep, written once under work/bars.

    A variant holds the source's clips that end within max_s (tests/_bars.py cuts at the last whole one).
    """
    sys.path.insert(0, str(REPO / "tests"))
    from _bars import write_variants

    items = []
    code = _code_hash("tests/_bars.py", "tests/_copies.py")
    for src in sources:
        lab = src["label"]
        if not (lab["keep"] or any(s["keep"] for s in lab["spans"])):
            continue
        cut = whole_clips_s(src["scan"]["clips"], max_s)
        st = src["path"].stat()
        out = work / "bars" / f"{src['path'].stem}-{st.st_size}-{round(cut * 1000)}-{width}-{code}"
        if not (out / "truth.json").exists():
            with _folder_once(out) as tmp:
                truth = write_variants(src["path"], tmp, max_s=cut, width=width)
                (tmp / "truth.json").write_text(json.dumps(truth, indent=1))
        truth = json.loads((out / "truth.json").read_text())
        for name, t in truth.items():
            items.append({"path": out / name, "name": f"bars/{name}", "set": "bars", "label": lab,
                          "shift_s": t["source_start_s"], "bars": t, "source": src["name"]})
    return items


@contextlib.contextmanager
def _folder_once(out: Path):
    """A folder of this process to write into; renamed to `out` at the end (kept if another run got there first)."""
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if not out.exists():
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _code_hash(*paths: str) -> str:
    """Of the source files that write an input: a changed generator writes it again."""
    return hashlib.sha256(b"".join((REPO / p).read_bytes() for p in paths)).hexdigest()[:8]


def corpus_items(work: Path, count: int, seed: int) -> list[dict]:
    """The defect corpus (written once under work/) as items with their normalised truth."""
    from curation.defect_corpus import write_defect_corpus
    from curation.evaluate import normalise_truth

    out = work / f"corpus-{count}-{seed}-{_code_hash('curation/defect_corpus.py', 'curation/sample_data.py')}"
    if not (out / "ground_truth.json").exists():
        print(f"writing the defect corpus ({count} base videos) to {out}", flush=True)
        with _folder_once(out) as tmp:
            write_defect_corpus(tmp, count=count, seed=seed)
    videos = normalise_truth(json.loads((out / "ground_truth.json").read_text()))
    return [{"path": out / n, "name": f"corpus/{n}", "set": "corpus", "truth": v} for n, v in sorted(videos.items())]


# --------------------------------------------------------------------------- scans, cached


def scan_key(cfg) -> str:
    """What decides a file's scan rows: the scan config and the source of curation/ (not the filters)."""
    from pipelines.params import scan_config_subset

    h = hashlib.sha256(json.dumps(scan_config_subset(cfg), sort_keys=True, default=str).encode())
    for f in sorted((REPO / "curation").glob("*.py")):
        if f.name not in NOT_SCAN_SOURCES:
            h.update(f.name.encode() + f.read_bytes())
    h.update(f"bench {BENCH_CODE}".encode())
    return h.hexdigest()[:16]


def _file_key(path: Path, key: str) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{key}".encode()).hexdigest()[:24]


def _scalar_row(row: dict) -> dict:
    return {k: v for k, v in row.items() if v is None or isinstance(v, (bool, int, float, str))}


def scan_one(path: str, name: str, params) -> dict:
    """{clips: scalar rows, keyframes: {clip_id: [jpeg]}, errors} of one file (run in a worker process too)."""
    from curation.scan import scan_video

    res = scan_video(path, name, params, "bench-rules")
    frames: dict[str, list] = {}
    for k in sorted(res.keyframes, key=lambda k: k["position"]):
        frames.setdefault(k["clip_id"], []).append(k["jpeg"])
    return {"clips": [_scalar_row(c) for c in res.clips], "keyframes": frames,
            "errors": [f"{e['error_type']}: {e['message']}" for e in res.errors]}


def scan_all(items: list[dict], params, key: str, work: Path, jobs: int) -> int:
    """Fill item["scan"] from the cache or by scanning; return how many files were scanned."""
    cache = work / "scans"
    cache.mkdir(parents=True, exist_ok=True)
    todo = []
    for it in items:
        f = cache / f"{_file_key(it['path'], key)}.pkl"
        it["cache"] = f
        if f.exists():
            it["scan"] = pickle.loads(f.read_bytes())
        else:
            todo.append(it)
    if not todo:
        return 0
    t0 = time.perf_counter()

    def done(it: dict, res: dict, i: int) -> None:
        it["scan"] = res
        _write_atomic(it["cache"], pickle.dumps(res))
        if i % 25 == 0 or i == len(todo):
            print(f"  scanned {i}/{len(todo)} files ({time.perf_counter() - t0:.0f} s)", flush=True)

    print(f"scanning {len(todo)} files ({len(items) - len(todo)} cached)", flush=True)
    if jobs <= 1:
        for i, it in enumerate(todo, 1):
            done(it, scan_one(str(it["path"]), it["name"], params), i)
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            futures = [pool.submit(scan_one, str(it["path"]), it["name"], params) for it in todo]
            for i, (it, fut) in enumerate(zip(todo, futures), 1):
                done(it, fut.result(), i)
    return len(todo)


def measure_text(items: list[dict], cfg, work: Path) -> tuple[int, list[str]]:
    """text_area_frac of every clip from its keyframes, as the text stage measures it (cached).

    Returns (clips measured, errors); a clip whose measurement fails stays null, as in the text stage, and
    its file is measured again on the next run.
    """
    import cv2

    from curation.text_area import TextAreaMeter, TextAreaParams

    def decode_jpeg(data: bytes) -> np.ndarray:  # pipelines.text_stage's, without importing Ray
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"keyframe is not a decodable JPEG ({len(data)} bytes)")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    tkey = hashlib.sha256(json.dumps(cfg.text.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:8]
    meter = None
    measured, errors = 0, []
    for it in items:
        f = it["cache"].with_name(f"{it['cache'].stem}.text-{tkey}.json")
        if f.exists():
            areas = json.loads(f.read_text())
        else:
            if meter is None:
                meter = TextAreaMeter(TextAreaParams(**cfg.text.model_dump(), threads=1))
            areas, failed = {}, False
            for cid, jpegs in it["scan"]["keyframes"].items():
                try:
                    areas[cid] = meter.clip_text_area([decode_jpeg(j) for j in jpegs])
                    measured += 1
                except Exception as e:  # noqa: BLE001 - one clip's failure leaves its score null, as the stage does
                    failed = True
                    errors.append(f"{it['name']} {cid}: {type(e).__name__}: {e}")
            if not failed:
                _write_atomic(f, json.dumps(areas).encode())
        for c in it["scan"]["clips"]:
            c["text_area_frac"] = areas.get(c["clip_id"])
    return measured, errors


def _write_atomic(path: Path, data: bytes) -> None:
    """Write under a name of this process, then rename: two runs sharing a work folder never read half a file."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# --------------------------------------------------------------------------- labelled clips


def labelled_clips(items: list[dict]) -> list[dict]:
    """One record per clip: {set, file, start_s, end_s, clean, defects, row}."""
    from curation.evaluate import clip_defects, clip_label

    out = []
    for it in items:
        for c in it["scan"]["clips"]:
            rec = {"set": it["set"], "file": it["name"], "start_s": c["start_s"], "end_s": c["end_s"], "row": c,
                   "source": it.get("source")}
            if it["set"] == "corpus":
                rec["defects"] = clip_defects(it["truth"], int(c["start_frame"]), int(c["end_frame"]))
                rec["clean"] = not (rec["defects"] - {"duplicate"})  # a copy's picture is clean: dedup drops it
            else:
                keep, defect = clip_label(it["label"], c["start_s"] + it["shift_s"], c["end_s"] + it["shift_s"])
                rec["clean"], rec["defects"] = keep, set() if keep else {defect or "labelled drop"}
            out.append(rec)
    return out


# --------------------------------------------------------------------------- per rule


def is_picture(column: str) -> bool:
    return column not in NOT_PICTURE and not column.startswith(NOT_PICTURE_PREFIXES)


def _values(clips: list[dict], column: str) -> np.ndarray:
    """The column's scores as float (NaN where null)."""
    return np.array([np.nan if c["row"].get(column) is None else float(c["row"][column]) for c in clips], float)


def fails(values: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """Where a rule with bounds lo/hi fails (NaN never fails, as in curation/filters.py)."""
    out = np.zeros(len(values), bool)
    with np.errstate(invalid="ignore"):
        if lo is not None:
            out |= values < lo
        if hi is not None:
            out |= values > hi
    return out


def _rate(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def _dist(v: np.ndarray) -> dict | None:
    v = v[~np.isnan(v)]
    if not len(v):
        return None
    return {"n": int(len(v)), "min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())}


def sweep(clean: np.ndarray, defect: np.ndarray, side: str, share: float) -> dict:
    """The threshold that drops at most floor(share x clean clips) clean clips, with the recall it leaves.

    side "max": a clip fails when its score is above the threshold; "min": below. Nulls never fail but
    count in the clean total. The threshold sits halfway between the last clean score the budget must
    spare and the nearest defect score it still catches, so a small shift of either keeps the result.
    """
    n = len(clean)
    k = math.floor(share * n + 1e-9)
    c = np.sort(clean[~np.isnan(clean)])
    d = defect[~np.isnan(defect)]
    if side == "max":
        c, d = -c[::-1], -d  # work as a "min" rule on the negated scores
    # a "min" rule at t fails v < t: spare every clean score but the k lowest -> t <= c[k]
    edge = c[k] if k < len(c) else math.inf
    caught = d[d < edge]
    if math.isinf(edge):
        t = (float(d.max()) + 1e-9) if len(d) else None
    else:
        t = (edge + float(caught.max())) / 2 if len(caught) else edge
    fd = int(np.sum(c < t)) if t is not None else 0
    rec = _rate(int(np.sum(d < t)), len(defect)) if t is not None and len(defect) else None  # nulls: not caught
    if side == "max" and t is not None:
        t = -t
    return {"share": share, "allowed": k, "threshold": t, "false_drops": fd, "false_drop_rate": _rate(fd, n),
            "recall": rec}


def rule_rows(cfg, clips: list[dict], budget: float, shares: dict[str, float]) -> list[dict]:
    """One row per filter rule of the config: measured or not, false drops, recall, distributions, sweep."""
    from curation.evaluate import DEFECT_REASONS, reasons_of

    target = {r: d for d, v in DEFECT_REASONS.items() for r in reasons_of(v)}
    real = [c for c in clips if c["set"] == "real" and c["clean"]]
    real_drop = [c for c in clips if c["set"] == "real" and not c["clean"]]
    bars = [c for c in clips if c["set"] == "bars" and c["clean"]]
    clean = real + bars
    corpus = [c for c in clips if c["set"] == "corpus"]
    corpus_clean = [c for c in corpus if c["clean"]]
    measured_picture = [r for r in cfg.filters if is_picture(r.column)
                        and not np.all(np.isnan(_values(clean + corpus, r.column)))]
    default_share = budget / max(1, len(measured_picture))
    rows = []
    for r in cfg.filters:
        v_all = _values(clean + corpus, r.column)
        row = {"reason": r.reason, "column": r.column, "min": r.min, "max": r.max, "picture": is_picture(r.column),
               "measured": not np.all(np.isnan(v_all)), "defect": target.get(r.reason)}
        if not row["measured"]:
            row["status"] = "not measured here (null on every clip: needs model weights or another stage)"
            rows.append(row)
            continue
        if not row["picture"]:
            row["status"] = "not a picture rule (not in the budget)"
        else:
            row["status"] = "measured"
        f_real, f_bars = fails(_values(real, r.column), r.min, r.max), fails(_values(bars, r.column), r.min, r.max)
        row["false_drops"] = {"real": [int(f_real.sum()), len(real)], "bars": [int(f_bars.sum()), len(bars)],
                              "clean": [int(f_real.sum() + f_bars.sum()), len(clean)]}
        row["false_drop_rate"] = {k: _rate(*v) for k, v in row["false_drops"].items()}
        vc = _values(corpus, r.column)
        fc = fails(vc, r.min, r.max)
        has = np.array([row["defect"] in c["defects"] for c in corpus], bool)
        tp = int((fc & has).sum())
        row["corpus"] = {"positives": int(has.sum()), "flagged": int(fc.sum()), "tp": tp,
                         "recall": _rate(tp, int(has.sum())), "precision": _rate(tp, int(fc.sum())),
                         "fp_on_clean": int(fails(_values(corpus_clean, r.column), r.min, r.max).sum())}
        real_defect = [c for c in real_drop if row["defect"] in c["defects"]]  # labelled drop for this rule's defect
        row["real_defect"] = {"positives": len(real_defect),
                              "tp": int(fails(_values(real_defect, r.column), r.min, r.max).sum())}
        vclean = _values(clean, r.column)
        row["scores"] = {"clean_real": _dist(_values(real, r.column)), "clean_bars": _dist(_values(bars, r.column)),
                         "defect": _dist(vc[has]), "clean_corpus": _dist(_values(corpus_clean, r.column))}
        if row["picture"] and (r.min is None) != (r.max is None):
            share = shares.get(r.reason, default_share)
            row["sweep"] = sweep(vclean, vc[has], "max" if r.max is not None else "min", share)
        rows.append(row)
    return rows


def union(clips: list[dict], rules: list[tuple[str, str, float | None, float | None]]) -> dict:
    """Clean clips failing at least one of `rules` (reason, column, min, max), per set."""
    out = {}
    for name, sets in (("real", {"real"}), ("bars", {"bars"}), ("clean", {"real", "bars"})):
        cc = [c for c in clips if c["set"] in sets and c["clean"]]
        hit = np.zeros(len(cc), bool)
        for _, col, lo, hi in rules:
            hit |= fails(_values(cc, col), lo, hi)
        out[name] = {"dropped": int(hit.sum()), "clips": len(cc), "rate": _rate(int(hit.sum()), len(cc))}
    return out


def defect_recall(clips: list[dict], rules) -> dict:
    """Per corpus defect, its clips that at least one of the picture rules meant for it drops (the reasons that
    curation.evaluate.DEFECT_REASONS names for it), and the share of all flagged corpus clips that have it."""
    from curation.evaluate import DEFECT_REASONS, reasons_of

    corpus = [c for c in clips if c["set"] == "corpus"]
    out = {}
    for defect, value in sorted(DEFECT_REASONS.items()):
        mine = [r for r in rules if r[0] in reasons_of(value)]
        has = np.array([defect in c["defects"] for c in corpus], bool)
        if not mine or not has.any():
            continue
        hit = np.zeros(len(corpus), bool)
        for _, col, lo, hi in mine:
            hit |= fails(_values(corpus, col), lo, hi)
        tp = int((hit & has).sum())
        out[defect] = {"reasons": sorted({r[0] for r in mine}), "positives": int(has.sum()), "tp": tp,
                       "recall": _rate(tp, int(has.sum())), "precision": _rate(tp, int(hit.sum()))}
    return out


def failing(c: dict, rules) -> list[str]:
    """The reasons of `rules` (reason, column, min, max) the clip fails, each once (two rules may share one)."""
    return list(dict.fromkeys(reason for reason, col, lo, hi in rules if fails(_values([c], col), lo, hi)[0]))


def expected_box(truth: dict, plain: dict) -> list[int] | None:
    """A variant's content box (x, y, w, h): the plain copy's own box (a source may have bars of its own, as
    chaplin.mp4 does) moved by the variant's bars; None when the scan gives no box."""
    if any(plain["row"].get(f"content_{k}") is None for k in "xywh"):
        return None
    b, r = truth["content_box"], plain["row"]
    return [b["x"] + r["content_x"], b["y"] + r["content_y"], r["content_w"], r["content_h"]]


def bars_agreement(clips: list[dict], items: list[dict], rules, columns: list[str]) -> dict:
    """Bar variants against their plain copy: keep/drop verdicts (all clips); reasons, score differences and
    the content box (clean clips: a black clip has no picture to find)."""
    by_file: dict[str, list[dict]] = {}
    for c in clips:
        if c["set"] == "bars":
            by_file.setdefault(c["file"], []).append(c)
    truth = {it["name"]: it["bars"] for it in items if it["set"] == "bars"}
    n: Counter[str] = Counter()
    by_variant: dict[str, Counter] = {}
    diffs: dict[str, list[float]] = {col: [] for col in columns}
    box_err: list[float] = []
    differ, box_misses = [], []
    for name, vclips in sorted(by_file.items()):
        t = truth[name]
        tally = by_variant.setdefault(f"{t['bars']}_{t['colour']}" if t["bars"] else "plain", Counter())
        for c in vclips:
            if c["clean"]:
                tally["clean clips"] += 1
                tally.update(failing(c, rules))
        plain = by_file.get(name.replace(f"__{t['bars']}_{t['colour']}", "__plain"), []) if t["bars"] else []
        for c in vclips if plain else []:
            p = min(plain, key=lambda x: abs(x["start_s"] - c["start_s"]))
            a, b = failing(c, rules), failing(p, rules)
            n["clips"] += 1
            n["same_verdict"] += bool(a) == bool(b)
            if bool(a) != bool(b) and len(differ) < 20:
                differ.append({"file": name, "start_s": round(c["start_s"], 2), "variant": a, "plain": b})
            if not c["clean"]:
                continue
            n["clean"] += 1
            n["same_reasons"] += a == b
            for col in columns:
                x, y = c["row"].get(col), p["row"].get(col)
                if x is not None and y is not None:
                    diffs[col].append(abs(float(x) - float(y)))
            want = expected_box(t, p)
            if want is not None and c["row"].get("content_x") is not None:
                found = [c["row"][f"content_{k}"] for k in "xywh"]
                box_err.append(max(abs(f - w) for f, w in zip(found, want)))
                if box_err[-1] > 4 and len(box_misses) < 20:
                    box_misses.append({"file": name, "start_s": round(c["start_s"], 2), "expected": want, "found": found})
    return {"clips": n["clips"], "same_verdict": n["same_verdict"], "differ": differ,
            "clean_clips": n["clean"], "same_reasons": n["same_reasons"],
            "false_drops_by_variant": {k: dict(v) for k, v in sorted(by_variant.items())},
            "abs_diff": {col: {"median": float(np.median(v)), "max": float(np.max(v))} for col, v in diffs.items() if v},
            "content_box": {"clips": len(box_err), "max_err_px": max(box_err) if box_err else None,
                            "within_4px": sum(e <= 4 for e in box_err), "misses": box_misses}}


# --------------------------------------------------------------------------- report


def _g(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.1e}"
    return str(x)


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def _bound(r: dict) -> str:
    return " ".join(s for s in (f"> {_g(r['min'])}" if r["min"] is not None else "",
                                f"< {_g(r['max'])}" if r["max"] is not None else "") if s)


def table(rows: list[dict]) -> str:
    from curation.dashboard.text_table import format_table

    out = []
    for r in rows:
        if not r["measured"]:
            out.append([r["reason"], r["column"], _bound(r), "not measured", "", "", "", "", "", "", "", "", ""])
            continue
        fd, cp, s = r["false_drops"], r["corpus"], r["scores"]
        sw = r.get("sweep") or {}
        dist = lambda d: "–" if not d else f"{_g(d['min'])} / {_g(d['median'])} / {_g(d['max'])}"  # noqa: E731
        rd = r["real_defect"]
        out.append([r["reason"] + ("" if r["picture"] else " *"), r["column"], _bound(r),
                    f"{fd['real'][0]}/{fd['real'][1]}", f"{fd['bars'][0]}/{fd['bars'][1]}",
                    f"{rd['tp']}/{rd['positives']}" if rd["positives"] else "–",
                    f"{_pct(cp['recall'])} ({cp['tp']}/{cp['positives']})" if r["defect"] else "no defect",
                    _pct(cp["precision"]) if cp["flagged"] and r["defect"] else "–",
                    dist(s["clean_real"]), dist(s["defect"]) if r["defect"] else "–",
                    _g(sw.get("threshold")) if sw else "–",
                    f"{sw['false_drops']} ({_pct(sw['share'])})" if sw else "–",
                    _pct(sw.get("recall")) if sw and r["defect"] else "–"])
    return format_table(["rule", "column", "keeps", "FD real", "FD bars", "real drops", "recall (corpus)", "precision",
                         "clean real min/med/max", "defect min/med/max", "t @ budget", "FD @ t (share)",
                         "recall @ t"], out)


def markdown_table(result: dict) -> str:
    """The picture rules as a Markdown table (the README's calibration table)."""
    inp = result["inputs"]
    dist = lambda d: "–" if not d else f"{_g(d['min'])} / {_g(d['median'])} / {_g(d['max'])}"  # noqa: E731
    lines = [f"| rule (column) | drops when | false drops: real ({inp['real']['clean_clips']} clips) | bar variants "
             f"({inp['bars']['clean_clips']}) | real clips labelled drop for its defect, dropped | corpus recall "
             "(defect) | precision | clean real min / median / max | defect min / median / max | threshold at its "
             "budget share → recall |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rules"]:
        if not (r["picture"] and r["measured"]):
            continue
        fd, cp, sw = r["false_drops"], r["corpus"], r.get("sweep")
        when = " or ".join(x for x in (f"< {_g(r['min'])}" if r["min"] is not None else "",
                                        f"> {_g(r['max'])}" if r["max"] is not None else "") if x)
        lines.append(
            f"| {r['reason']} (`{r['column']}`) | {when} | {fd['real'][0]} ({_pct(r['false_drop_rate']['real'])}) | "
            f"{fd['bars'][0]} ({_pct(r['false_drop_rate']['bars'])}) | "
            + (f"{r['real_defect']['tp']} of {r['real_defect']['positives']}" if r["real_defect"]["positives"] else "–")
            + " | " + (f"{_pct(cp['recall'])} of {cp['positives']} ({r['defect']})" if r["defect"] else "– (no defect)")
            + f" | {_pct(cp['precision']) if r['defect'] else '–'} | {dist(r['scores']['clean_real'])} | "
            + (dist(r["scores"]["defect"]) if r["defect"] else "–") + " | "
            + (f"{_g(sw['threshold'])} → {_pct(sw['recall'])}" if sw and sw["threshold"] is not None else "–") + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    from pipelines.config import load_config
    from pipelines.params import scan_params

    ap = argparse.ArgumentParser(prog="python -m bench rules", description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vidcurate-bench-rules",
                    help="cache of scans, bar variants and the defect corpus (default: %(default)s)")
    ap.add_argument("--config", help="YAML merged over the default config (its filters and scan settings)")
    ap.add_argument("--real", type=Path, default=Path(os.environ.get("VIDCURATE_REAL_VIDEOS", SHARED / "real")),
                    help="real footage with LABELS.json (default: %(default)s)")
    ap.add_argument("--videos", type=Path,
                    default=Path(os.environ.get("VIDCURATE_TEST_VIDEOS", SHARED / "videos")),
                    help="the shared videos (default: %(default)s)")
    ap.add_argument("--videos-labels", type=Path, default=VIDEOS_LABELS, help="their labels (default: %(default)s)")
    ap.add_argument("--corpus-count", type=int, default=240, help="defect corpus base videos (0: none)")
    ap.add_argument("--seed", type=int, default=0, help="defect corpus seed")
    ap.add_argument("--budget", type=float, default=0.05, help="share of clean real clips all picture rules together "
                                                               "may drop (default 0.05)")
    ap.add_argument("--rule-budget", action="append", default=[], metavar="REASON=SHARE",
                    help="one rule's share of clean real clips (default: the budget split equally)")
    ap.add_argument("--no-bars", action="store_true", help="leave out the bar variants")
    ap.add_argument("--no-text", action="store_true", help="leave text_area_frac null (no text detector)")
    ap.add_argument("--bars-max-s", type=float, default=8.0, help="seconds of each source in its variants")
    ap.add_argument("--bars-width", type=int, default=480, help="variants' picture width at most (px)")
    ap.add_argument("--jobs", type=int, default=1, help="scan processes (default 1)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="result JSON (default: %(default)s)")
    ap.add_argument("--markdown", action="store_true", help="also print the picture rules as a Markdown table")
    args = ap.parse_args(argv)
    shares = {}
    for item in args.rule_budget:
        reason, _, share = item.partition("=")
        shares[reason] = float(share)

    t0 = time.perf_counter()
    cfg = load_config(args.config)
    params = scan_params(cfg)
    args.work.mkdir(parents=True, exist_ok=True)
    key = scan_key(cfg)
    timing: Counter[str] = Counter()
    t = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal t
        timing[what] += time.perf_counter() - t
        t = time.perf_counter()

    items = real_items(args.real, args.real / "LABELS.json") + real_items(args.videos, args.videos_labels)
    if not items:
        raise SystemExit(f"no labelled real footage under {args.real} or {args.videos}")
    scanned = scan_all(items, params, key, args.work, args.jobs)  # the originals first: bar variants cut at clip ends
    lap("scan")
    more = bar_items(items, args.work, args.bars_max_s, args.bars_width) if not args.no_bars else []
    if args.corpus_count:
        more += corpus_items(args.work, args.corpus_count, args.seed)
    lap("write_inputs")
    scanned += scan_all(more, params, key, args.work, args.jobs)
    items += more
    lap("scan")
    text, text_errors = (0, []) if args.no_text else measure_text(items, cfg, args.work)
    lap("text")

    clips = labelled_clips(items)
    rows = rule_rows(cfg, clips, args.budget, shares)
    picture = [r for r in rows if r["picture"] and r["measured"]]
    now = [(r["reason"], r["column"], r["min"], r["max"]) for r in picture]
    swept = [(r["reason"], r["column"], *((r["sweep"]["threshold"], None) if r["min"] is not None
                                          else (None, r["sweep"]["threshold"])))
             for r in picture if r.get("sweep") and r["sweep"]["threshold"] is not None]
    false_drops = [{"set": c["set"], "file": c["file"], "start_s": round(c["start_s"], 2), "end_s": round(c["end_s"], 2),
                    "reasons": failing(c, now)} for c in clips if c["clean"] and c["set"] != "corpus" and failing(c, now)]
    real_drops = [{"file": c["file"], "start_s": round(c["start_s"], 2), "end_s": round(c["end_s"], 2),
                   "label": sorted(c["defects"]), "reasons": failing(c, now)}
                  for c in clips if c["set"] == "real" and not c["clean"]]
    columns = sorted({r["column"] for r in picture})
    result = {
        "config": args.config or "default", "budget": args.budget, "rule_shares": shares,
        "inputs": {s: {"files": sum(it["set"] == s for it in items), "clips": sum(c["set"] == s for c in clips),
                       "clean_clips": sum(c["set"] == s and c["clean"] for c in clips)}
                   for s in ("real", "bars", "corpus")},
        "errors": {it["name"]: it["scan"]["errors"] for it in items if it["scan"]["errors"]},
        "text_errors": text_errors,
        "rules": rows,
        "picture_rules_together": {"now": union(clips, now), "at_swept_thresholds": union(clips, swept)},
        "defects": defect_recall(clips, now),
        "false_drops_now": false_drops,
        "real_labelled_drop": real_drops,
        "bars": bars_agreement(clips, items, now, columns) if not args.no_bars else None,
        "timing_s": {**{k: round(v, 1) for k, v in timing.items()}, "files_scanned": scanned,
                     "clips_text_measured": text,
                     "total": round(time.perf_counter() - t0, 1)},
        "machine": f"{os.cpu_count()} cores (shared)",
    }
    together = result["picture_rules_together"]
    result["summary"] = [
        {"metric": "clean real clips dropped by picture rules (originals + bar variants)",
         "value": together["now"]["clean"]["rate"], "unit": f"of {together['now']['clean']['clips']}"},
        {"metric": "the same at the swept thresholds", "value": together["at_swept_thresholds"]["clean"]["rate"]},
    ] + [{"metric": f"{r['reason']}: false drops real / recall corpus",
          "value": f"{_pct(r['false_drop_rate']['clean'])} / {_pct(r['corpus']['recall'])}"} for r in picture]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print_report(result)
    if args.markdown:
        print("\n" + markdown_table(result) + "\n")
    print(f"wrote {args.out} ({result['timing_s']['total']:.0f} s; {scanned} files scanned, the rest cached "
          f"under {args.work})")
    return result


def print_report(result: dict) -> None:
    inp = result["inputs"]
    print(f"\nclean clips: real {inp['real']['clean_clips']} of {inp['real']['clips']} ({inp['real']['files']} files), "
          f"bar variants {inp['bars']['clean_clips']} of {inp['bars']['clips']} ({inp['bars']['files']} files); "
          f"defect corpus {inp['corpus']['clips']} clips ({inp['corpus']['files']} files)")
    print(table(result["rules"]))
    print("FD: clean clips the rule drops now (real originals, bar variants); real drops: real clips labelled drop for "
          "the rule's defect that it drops; recall/precision: on the defect corpus "
          "for the defect the rule targets; t @ budget: the threshold that drops at most its share of all clean clips; "
          "* not a picture rule")
    for name, u in result["picture_rules_together"].items():
        print(f"picture rules together, {name.replace('_', ' ')}: " + ", ".join(
            f"{k} {v['dropped']}/{v['clips']} ({_pct(v['rate'])})" for k, v in u.items()))
    print("corpus recall per defect, any of its rules (precision): " + ", ".join(
        f"{d} {_pct(v['recall'])} ({_pct(v['precision'])})" for d, v in result["defects"].items()))
    fd = [f for f in result["false_drops_now"] if f["set"] == "real"]
    if fd:
        print("clean real clips dropped now: " + "; ".join(
            f"{f['file']} {f['start_s']}-{f['end_s']} s {','.join(f['reasons'])}" for f in fd))
    print("real clips labelled drop: " + "; ".join(
        f"{d['file']} {d['start_s']}-{d['end_s']} s ({','.join(d['label'])}): {','.join(d['reasons']) or 'KEPT'}"
        for d in result["real_labelled_drop"]))
    b = result.get("bars")
    if b:
        box = b["content_box"]
        print("bar variants' clean clips dropped now, by variant: " + "; ".join(
            f"{k} {v.get('clean clips', 0)}: " + (", ".join(f"{r}={n}" for r, n in v.items() if r != "clean clips")
                                                  or "none") for k, v in b["false_drops_by_variant"].items()))
        print("scores, variant vs plain copy, median |difference|: " + ", ".join(
            f"{k} {_g(v['median'])}" for k, v in b["abs_diff"].items()))
        print(f"bar variants vs their plain copy: same keep/drop verdict {b['same_verdict']}/{b['clips']} clips, same "
              f"reasons {b['same_reasons']}/{b['clean_clips']} clean clips; "
              + (f"content box within 4 px of the plain copy's, moved by the bars: {box['within_4px']}/{box['clips']} "
                 f"(max error {box['max_err_px']} px)" if box["clips"] else "no content box columns in the scan"))
        for m in box["misses"][:6]:
            print(f"  box off: {m['file']} {m['start_s']} s: expected {m['expected']}, found {m['found']}")
    if result["errors"]:
        print(f"files with error rows: {len(result['errors'])}")
    if result["text_errors"]:
        print(f"clips whose text area could not be measured (left null): {len(result['text_errors'])}; first: "
              f"{result['text_errors'][0]}")


if __name__ == "__main__":
    main()
