"""Shot detection, ours vs TransNetV2 vs their ensemble: cut recall/precision and CPU, side by side in one run.

`python -m bench.shots_bench` (or `python -m bench shots`). Every video is scanned by
`curation.scan.scan_video` with `split.detector: ensemble`: one decode feeds our
detector and TransNetV2's 48x27 consumer, and every variant's cuts come from
`curation.split.combine_cuts` on that same decode:

  ours            adaptive (PySceneDetect + structure check), today's default
  transnetv2      TransNetV2 alone, threshold 0.5 on the single-frame prediction
  ensemble_union  our cuts plus TransNetV2's that ours has none near
  ensemble_vote   our cuts that TransNetV2 confirms

Truth:
  shared     ../shared/data/videos/EXPECTED.json: `shot_starts` (bikes) or `hard_cuts` (testvideo, fades, counter,
             bigbuckbunny, pedestrians; [] = no cut). A cut within a labelled fade or near-black run +-10 frames
             (testvideo's near_black_frames, fades' fade_to_black_at, the file's stated fade tolerance) is neither
             right nor wrong. Files without cut labels are scanned for CPU and listed, not scored.
  generated  photos from skimage panned as in curation/sample_data.py, joined by hard cuts, dissolves (6-24
             frames) and fades through black (fade out, 0-10 black frames, fade in), encoded with
             sample_data.encode. The transition's frames are known; a cut anywhere in them +-2 counts.
  real       ../shared/data/real (no cut labels): cut counts and CPU only.

A cut matches a truth transition within +-2 frames (each transition and each cut match once); a second cut inside an
already matched transition (a fade through black: into black, out of black) is counted as `extra`, not as a false
positive. CPU: process CPU
(time.process_time: every thread, FFmpeg's and torch's) per second of video, with torch.set_num_threads(1) so the
number is per core. `scan_cpu` is the whole scan (decode, every scorer) with that detector configured, measured by
scanning again with it; `detector_cpu` is the detector's own component (ScanResult.cpu_s shot_detector / transnet).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
TOL = 2  # frames
FADE_TOL = 10  # frames around a labelled fade or near-black run (EXPECTED.json: "fade edges +-10 frames")
VARIANTS = ("ours", "transnetv2", "ensemble_union", "ensemble_vote")


def variant_params(base, name: str):
    if name == "ours":
        return dataclasses.replace(base, detector="adaptive")
    if name == "transnetv2":
        return dataclasses.replace(base, detector="transnetv2")
    return dataclasses.replace(base, detector="ensemble", ensemble_mode=name.split("_")[1])


# --------------------------------------------------------------------------- truth


def shared_truth() -> dict[str, dict]:
    """{file: {"transitions": [(lo, hi)], "ignore": [(lo, hi)]}} for the EXPECTED.json files with cut labels."""
    exp = json.loads((SHARED / "videos" / "EXPECTED.json").read_text())
    out = {}
    for name, e in exp.items():
        if not isinstance(e, dict):
            continue
        cuts = e["shot_starts"][1:] if "shot_starts" in e else e.get("hard_cuts")
        if cuts is None:
            out[name] = None  # no cut labels: CPU only
            continue
        ignore = [(a - FADE_TOL, b + FADE_TOL) for a, b in e.get("near_black_frames", [])]
        ignore += [(f - FADE_TOL, f + FADE_TOL) for f in e.get("fade_to_black_at", [])]
        out[name] = {"transitions": [(c, c) for c in cuts], "ignore": ignore}
    return out


def generated_videos(folder: Path, seed: int = 0) -> dict[str, dict]:
    """Three videos (hard cuts, dissolves, fades through black) and their transitions' frames."""
    from curation.defect_corpus import PHOTOS, _photo as load_photo
    from curation.sample_data import encode, fade_out, pan_shot

    rng = np.random.default_rng(seed)
    size = (320, 180)
    photos = {}

    def shot(i: int, n: int) -> list[np.ndarray]:
        name = PHOTOS[i % len(PHOTOS)]
        photos.setdefault(name, load_photo(name))
        dx, dy = int(rng.integers(-2, 3)), int(rng.integers(-1, 2))
        return pan_shot(photos[name], n, dx, dy, rng, size=size)

    specs = {
        "gen_hard_cuts.mp4": [("cut", 0)] * 6,
        "gen_dissolves.mp4": [("dissolve", n) for n in (6, 10, 16, 24, 12, 8)],
        "gen_fades.mp4": [("fade", n) for n in (8, 12, 16, 20, 10, 14)],
    }
    out, k = {}, 0
    for name, joins in specs.items():
        frames, transitions = shot(k, int(rng.integers(40, 60))), []
        k += 1
        for kind, n in joins:
            nxt = shot(k, int(rng.integers(40, 60)) + n)
            k += 1
            a = len(frames)
            if kind == "cut":
                frames += nxt
                transitions.append((a, a))
            elif kind == "dissolve":  # the last n frames of the shot blend into the next shot's first n
                prev = frames[-n:]
                frames[-n:] = [(p * (1 - (i + 1) / (n + 1)) + q * ((i + 1) / (n + 1))).round().astype(np.uint8)
                               for i, (p, q) in enumerate(zip((x.astype(np.float32) for x in prev), nxt[:n]))]
                frames += nxt[n:]
                transitions.append((a - n, a - 1))
            else:  # fade: the last n frames fade to black, black frames, the next shot fades in over n frames
                frames[-n:] = fade_out(frames[-n:])
                black = [np.zeros_like(frames[0])] * int(rng.integers(0, 11))
                fade_in = fade_out(nxt[:n][::-1])[::-1]
                frames += black + fade_in + nxt[n:]
                transitions.append((a - n, a + len(black) + n - 1))
        encode(folder / name, frames)
        out[name] = {"transitions": transitions, "ignore": [], "kind": joins[0][0], "frames": len(frames)}
    return out


# --------------------------------------------------------------------------- scoring


def match(cuts: list[int], truth: dict, tol: int = TOL) -> dict:
    """True positives (transitions with a cut within +-tol), false negatives, false positives (unmatched cuts
    outside the ignore zones)."""
    free = sorted(cuts)
    tp = 0
    for lo, hi in sorted(truth["transitions"]):
        near = [c for c in free if lo - tol <= c <= hi + tol]
        if near:
            free.remove(min(near, key=lambda c: min(abs(c - lo), abs(c - hi))))
            tp += 1
    within = [c for c in free if any(lo - tol <= c <= hi + tol for lo, hi in truth["transitions"])]
    fp = [c for c in free if c not in within and not any(a <= c <= b for a, b in truth["ignore"])]
    return {"tp": tp, "fn": len(truth["transitions"]) - tp, "fp": len(fp), "fp_frames": fp, "extra": len(within)}


def summarise(scores: list[dict]) -> dict:
    tp, fn, fp, extra = (sum(s[k] for s in scores) for k in ("tp", "fn", "fp", "extra"))
    return {"tp": tp, "fn": fn, "fp": fp, "extra": extra, "recall": tp / (tp + fn) if tp + fn else None,
            "precision": tp / (tp + fp) if tp + fp else None}


# --------------------------------------------------------------------------- scanning


class _Captured:
    """Patches curation.scan._Consumers to keep the consumers of the latest scan (its detector and TransNetV2)."""

    def __enter__(self):
        import curation.scan as scan

        self._scan, self._orig, self.last = scan, scan._Consumers, None
        outer = self

        class Keep(self._orig):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                outer.last = self

        scan._Consumers = Keep
        return self

    def __exit__(self, *exc):
        self._scan._Consumers = self._orig


def scan_one(path: Path, params, capture: _Captured | None = None) -> tuple[object, float]:
    from curation.scan import scan_video

    c0 = time.process_time()
    r = scan_video(str(path), path.name, params, "bench")
    cpu = time.process_time() - c0
    if r.video is None:
        raise RuntimeError(f"{path.name}: {r.errors}")
    return r, cpu


def measure(path: Path, base, cpu_passes: bool) -> dict:
    """Cuts of every variant from one ensemble scan; CPU of each detector (and whole scans when `cpu_passes`)."""
    from curation.split import combine_cuts

    with _Captured() as cap:
        r, cpu_ens = scan_one(path, dataclasses.replace(base, split=variant_params(base.split, "ensemble_union")))
        feed = cap.last
    preds = feed.transnet.predictions()
    video_s = r.video["duration_s"]
    row = {"frames": r.video["num_frames"], "video_s": video_s,
           "cuts": {v: combine_cuts(variant_params(base.split, v), feed.detector, preds)[0][1:] for v in VARIANTS},
           "detector_cpu_per_video_s": {"ours": r.cpu_s["shot_detector"] / video_s,
                                        "transnetv2": r.cpu_s["transnet"] / video_s},
           "scan_cpu_per_video_s": {"ensemble": cpu_ens / video_s}}
    if cpu_passes:
        for v, det in (("ours", "adaptive"), ("transnetv2", "transnetv2")):
            _, cpu = scan_one(path, dataclasses.replace(base, split=dataclasses.replace(base.split, detector=det)))
            row["scan_cpu_per_video_s"][v] = cpu / video_s
    return row


def main(argv: list[str] | None = None) -> dict:
    import torch

    from curation.transnet import load_model
    from pipelines.config import load_config
    from pipelines.params import scan_params

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="shared,generated,real", help="comma-separated subset of shared, generated, real")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "shots.json"))
    args = ap.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    torch.set_num_threads(1)  # a per-core number; process CPU still counts every thread
    base = scan_params(load_config())
    load_model("cpu")  # once per process, outside the measured scans (as in a Ray actor)
    videos: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="vidcurate-shotsbench-") as tmp:
        todo = []
        if "shared" in sets:
            todo += [("shared", SHARED / "videos" / n, t) for n, t in shared_truth().items()]
        if "generated" in sets:
            todo += [("generated", Path(tmp) / n, t) for n, t in generated_videos(Path(tmp)).items()]
        if "real" in sets:
            todo += [("real", p, None) for p in sorted((SHARED / "real").iterdir()) if p.suffix in (".mp4", ".webm")]
        for corpus, path, truth in todo:
            row = measure(path, base, cpu_passes=corpus != "generated")
            row["corpus"] = corpus
            if truth is not None:
                row["truth"] = truth["transitions"]
                row["scores"] = {v: match(row["cuts"][v], truth) for v in VARIANTS}
            videos[path.name] = row
            print(f"{corpus:9s} {path.name:28s} " + "  ".join(f"{v}={row['cuts'][v]}" for v in ("ours", "transnetv2"))
                  + (f"  truth={truth['transitions']}" if truth else ""), file=sys.stderr, flush=True)
    table = {}
    for corpus in sets:
        rows = [r for r in videos.values() if r["corpus"] == corpus]
        scored = [r for r in rows if "scores" in r]
        vs = sum(r["video_s"] for r in rows)
        entry = {"videos": len(rows), "video_s": vs}
        for v in VARIANTS:
            entry[v] = summarise([r["scores"][v] for r in scored]) if scored else {"cuts": sum(len(r["cuts"][v]) for r in rows)}
        entry["detector_cpu_per_video_s"] = {d: sum(r["detector_cpu_per_video_s"][d] * r["video_s"] for r in rows) / vs
                                             for d in ("ours", "transnetv2")}
        entry["scan_cpu_per_video_s"] = {k: sum(r["scan_cpu_per_video_s"][k] * r["video_s"] for r in rows) / vs
                                         for k in rows[0]["scan_cpu_per_video_s"]}
        table[corpus] = entry
    result = {"benchmark": "shots", "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              "shared with other jobs", "torch_threads": 1, "tolerance_frames": TOL, "summary": table, "videos": videos}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print_table(table)
    return result


def print_table(table: dict) -> None:
    f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    print(f"{'set':10s} {'detector':15s} {'tp':>4s} {'fn':>4s} {'fp':>4s} {'extra':>5s} {'recall':>7s} {'prec':>6s}")
    for corpus, e in table.items():
        for v in VARIANTS:
            s = e[v]
            if "cuts" in s:
                print(f"{corpus:10s} {v:15s} cuts found: {s['cuts']} (no labels)")
            else:
                print(f"{corpus:10s} {v:15s} {s['tp']:4d} {s['fn']:4d} {s['fp']:4d} {s['extra']:5d} {f(s['recall']):>7s} {f(s['precision']):>6s}")
        print(f"{corpus:10s} CPU-s per video-s (torch 1 thread): detector ours {f(e['detector_cpu_per_video_s']['ours'])}, "
              f"transnetv2 {f(e['detector_cpu_per_video_s']['transnetv2'])}; whole scan "
              + ", ".join(f"{k} {f(v)}" for k, v in e["scan_cpu_per_video_s"].items()) + f"  ({e['video_s']:.0f} video-s)")


if __name__ == "__main__":
    main()
