"""Camera-motion labels: per-label precision and recall on generated moves with known truth.

Run: python -m bench.camera_bench [--seconds 3] [--no-real]

Every clip goes through curation.scan.scan_video with the default config (the label comes from the scan's own
flow: no second decode), and its `camera_motion_type` is compared with the move it was made with:

- generated: photographs from skimage.data, warped per frame with one similarity transform (cv2.warpAffine,
  exact sub-pixel shift, zoom about the centre, rotation about the centre), encoded with the demo set's H.264
  encoder (512x288, 25 fps). Per photo: pans left/right and tilts up/down at a slow and a fast speed, zoom in/out
  at two rates, roll both ways at two rates, a still frame, a still frame with an object crossing it (truth:
  static, the camera does not move), handheld shake at three amplitudes (a sum of sinusoids in shift,
  rotation and zoom with no net drift), a creeping pan (0.5 px/frame) and pans, a tilt and a zoom under shake.
  Truth is the label of the move (a diagonal move is not generated here).
- sample data: curation.sample_data's demo set with its ground truth: pans (content moving left = the camera
  panning right), the diagonal pan (its larger axis), the zoom, the cut shots' pans and tilts, the still clip,
  the blurred and the dark pans, the short clip and the half-size re-encode. A clip's truth is the segment that
  covers most of it; fade-out and near-black segments have no camera truth and are left out.
- real: the shared and real videos (VIDCURATE_TEST_VIDEOS, VIDCURATE_REAL_VIDEOS) have no camera truth: their
  labels are listed, with the clip's camera_motion and motion scores, for a person to judge.

Writes bench/results/camera.json and prints the per-label table and the confusion matrix.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SHARED = REPO.parent / "shared" / "data"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
W, H, FPS = 512, 288, 25

# (truth label, move name, per-frame parameters); shifts in output px/frame, zoom per frame, roll degrees/frame
MOVES = [
    ("pan_left", "pan_left_slow", {"dx": 1.5}), ("pan_left", "pan_left_fast", {"dx": 5.0}),
    ("pan_right", "pan_right_slow", {"dx": -1.5}), ("pan_right", "pan_right_fast", {"dx": -5.0}),
    ("tilt_up", "tilt_up_slow", {"dy": 1.0}), ("tilt_up", "tilt_up_fast", {"dy": 3.5}),
    ("tilt_down", "tilt_down_slow", {"dy": -1.0}), ("tilt_down", "tilt_down_fast", {"dy": -3.5}),
    ("zoom_in", "zoom_in_slow", {"zoom": 1.005}), ("zoom_in", "zoom_in_fast", {"zoom": 1.015}),
    ("zoom_out", "zoom_out_slow", {"zoom": 1 / 1.005}), ("zoom_out", "zoom_out_fast", {"zoom": 1 / 1.012}),
    ("roll", "roll_cw", {"roll": 0.3}), ("roll", "roll_ccw_fast", {"roll": -0.8}),
    ("static", "static", {}), ("static", "static_object", {"object": True}),
    ("handheld", "handheld_small", {"shake": 4.0}), ("handheld", "handheld_large", {"shake": 10.0}),
    # harder: a creeping pan, moves under shake, a barely shaking camera
    ("pan_left", "pan_left_creep", {"dx": 0.5}), ("pan_right", "pan_right_shaky", {"dx": -3.0, "shake": 3.0}),
    ("tilt_down", "tilt_down_shaky", {"dy": -2.0, "shake": 3.0}),
    ("zoom_in", "zoom_in_shaky", {"zoom": 1.01, "shake": 2.0}), ("handheld", "handheld_tiny", {"shake": 1.5}),
]


def _path(n: int, move: dict, rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
    """Per frame (shift_x px, shift_y px, scale, rotation degrees) of the picture relative to frame 0."""
    t = np.arange(n, dtype=np.float64)
    sx, sy = move.get("dx", 0.0) * t, move.get("dy", 0.0) * t
    scale, rot = move.get("zoom", 1.0) ** t, move.get("roll", 0.0) * t
    if "shake" in move:  # handheld: sinusoids at incommensurate frequencies (not multiples of the 2 fps sampling)
        a, secs = move["shake"], t / FPS
        sx = sx + sum(a * rng.uniform(0.4, 1.0) * np.sin(2 * np.pi * rng.uniform(0.6, 3.4) * secs + rng.uniform(0, 6.3))
                      for _ in range(3))
        sy = sy + sum(0.7 * a * rng.uniform(0.4, 1.0) * np.sin(2 * np.pi * rng.uniform(0.6, 3.4) * secs
                                                               + rng.uniform(0, 6.3)) for _ in range(3))
        rot = rot + 0.08 * a * np.sin(2 * np.pi * rng.uniform(0.6, 3.4) * secs + rng.uniform(0, 6.3))
        scale = scale * (1 + 0.002 * a * np.sin(2 * np.pi * rng.uniform(0.6, 3.4) * secs + rng.uniform(0, 6.3)))
    return list(zip(sx, sy, scale, rot))


def _inverse(shift_x: float, shift_y: float, scale: float, rot_deg: float, base_c: np.ndarray) -> np.ndarray:
    """2x3 map from output px to base px for a picture shifted, scaled and turned (clockwise on screen) about the
    output centre: p = c_out + shift + scale * R(rot) (q - c_base)  <=>  q = c_base + R(-rot) (p - c_out - shift) / scale."""
    c_out = np.array([(W - 1) / 2, (H - 1) / 2])
    r = math.radians(rot_deg)
    a = np.array([[math.cos(r), math.sin(r)], [-math.sin(r), math.cos(r)]]) / scale  # R(-rot) / scale
    b = base_c - a @ (c_out + np.array([shift_x, shift_y]))
    return np.hstack([a, b[:, None]])


def render(photo: np.ndarray, n: int, move: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """n RGB frames (H, W) of the photo under the move, never showing past the photo's edge."""
    from curation.sample_data import _cover

    path = _path(n, move, rng)
    corners = np.array([[0, 0, 1], [W - 1, 0, 1], [0, H - 1, 1], [W - 1, H - 1, 1]], np.float64).T
    reach = max(float(np.abs(_inverse(*p, np.zeros(2)) @ corners).max(axis=1).max()) for p in path)
    extent = [max(int(math.ceil(2 * reach)) + 8, s) for s in (W, H)]  # a square base that holds every frame
    side = max(extent)
    base = _cover(photo, side, side)
    y0, x0 = (base.shape[0] - side) // 2, (base.shape[1] - side) // 2
    base = np.ascontiguousarray(base[y0:y0 + side, x0:x0 + side])
    c = np.array([(side - 1) / 2, (side - 1) / 2])
    patch = cv2.resize(photo[::-1, ::-1], (W // 4, H // 3)) if move.get("object") else None
    frames = []
    for i, p in enumerate(path):
        f = cv2.warpAffine(base, _inverse(*p, c), (W, H), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT)
        if patch is not None:  # an object crossing a still frame: local motion, not camera motion
            x = int(20 + i * (W - patch.shape[1] - 40) / max(n - 1, 1))
            y = H // 3
            f[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
        frames.append(f)
    return frames


def sample_truth(entry: dict, start: int, end: int) -> str | None:
    """The camera label of the demo segment covering most of frames [start, end) (None: no camera truth)."""
    best, cover = None, 0
    for s in entry["segments"]:
        o = min(end, s["end"]) - max(start, s["start"])
        if o > cover:
            best, cover = s, o
    if best is None or best["motion"] not in ("pan", "zoom", "still"):
        return None
    if best["motion"] == "still":
        return "static"
    if best["motion"] == "zoom":
        return "zoom_in" if entry["zoom_per_frame"] > 1 else "zoom_out"
    dx, dy = best["pan_px_per_frame"]
    if abs(dx) >= abs(dy):
        return "pan_left" if dx > 0 else "pan_right"  # the picture moves right when the camera turns left
    return "tilt_up" if dy > 0 else "tilt_down"


def _scan(path: Path, params, rel: str) -> tuple[list[dict], float]:
    from curation.scan import scan_video

    t = time.process_time()
    res = scan_video(str(path), rel, params, "camera-bench")
    return res.clips, time.process_time() - t


def table(rows: list[dict]) -> tuple[dict, dict]:
    """Per-label precision/recall/support and the confusion counts {truth: {got: n}}."""
    from curation.camera_motion import LABELS

    conf: dict[str, Counter] = {lab: Counter() for lab in LABELS}
    for r in rows:
        conf[r["truth"]][str(r["got"])] += 1
    out = {}
    for lab in LABELS:
        tp = conf[lab][lab]
        support = sum(conf[lab].values())
        predicted = sum(c[lab] for c in conf.values())
        out[lab] = {"support": support, "predicted": predicted, "tp": tp,
                    "precision": tp / predicted if predicted else None, "recall": tp / support if support else None}
    return out, {k: dict(v) for k, v in conf.items() if v}


def _fmt(x) -> str:
    return "   -" if x is None else f"{x:.2f}"


def format_table(per: dict, title: str) -> str:
    lines = [title, f"  {'label':<10} {'support':>7} {'predicted':>9} {'precision':>9} {'recall':>7}"]
    for lab, r in per.items():
        lines.append(f"  {lab:<10} {r['support']:>7} {r['predicted']:>9} {_fmt(r['precision']):>9} {_fmt(r['recall']):>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each generated clip (s)")
    ap.add_argument("--photos", default=",".join(PHOTOS), help="skimage.data photos, comma separated")
    ap.add_argument("--no-real", action="store_true", help="skip the shared and real videos")
    args = ap.parse_args(argv)
    from curation.sample_data import encode, load_photo, write_sample_data
    from pipelines.config import load_config
    from pipelines.params import scan_params

    cfg = load_config()
    params = scan_params(cfg)
    rng = np.random.default_rng(0)
    n = int(round(args.seconds * FPS))
    rows, cpu = [], []
    with tempfile.TemporaryDirectory(prefix="camera-bench-") as tmp:
        tmp = Path(tmp)
        for photo in args.photos.split(","):
            img = load_photo(photo)
            for truth, name, move in MOVES:
                path = tmp / f"{photo}_{name}.mp4"
                encode(path, render(img, n, move, rng))
                clips, c = _scan(path, params, path.name)
                cpu.append(c)
                for clip in clips:
                    rows.append({"set": "generated", "video": path.name, "clip": clip["clip_index"], "truth": truth,
                                 "got": clip["camera_motion_type"]})
        demo = tmp / "demo"
        truth_all = write_sample_data(demo)
        for name, entry in sorted(truth_all["videos"].items()):
            if entry["corrupt"] or entry.get("exact_copy_of"):
                continue
            clips, _ = _scan(demo / name, params, name)
            for clip in clips:
                t = sample_truth(entry, clip["start_frame"], clip["end_frame"])
                if t is not None:
                    rows.append({"set": "sample_data", "video": name, "clip": clip["clip_index"], "truth": t,
                                 "got": clip["camera_motion_type"]})
    real = []
    if not args.no_real:
        for env, default in (("VIDCURATE_TEST_VIDEOS", SHARED / "videos"), ("VIDCURATE_REAL_VIDEOS", SHARED / "real")):
            folder = Path(os.environ.get(env, default))
            if not folder.is_dir():
                print(f"skipping {folder}: not a folder", file=sys.stderr)
                continue
            for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".mp4", ".webm", ".avi", ".mkv", ".mov")):
                clips, _ = _scan(path, params, path.name)
                for clip in clips:
                    real.append({"video": f"{folder.name}/{path.name}", "clip": clip["clip_index"],
                                 "start_s": round(clip["start_s"], 2), "end_s": round(clip["end_s"], 2),
                                 "camera_motion_type": clip["camera_motion_type"],
                                 "camera_motion": clip["camera_motion"], "motion": clip["motion"]})
    per_all, conf_all = table(rows)
    per_gen, _ = table([r for r in rows if r["set"] == "generated"])
    per_demo, _ = table([r for r in rows if r["set"] == "sample_data"])
    print(format_table(per_all, f"camera_motion_type on {len(rows)} clips with known moves (generated + sample data)"))
    print(format_table(per_gen, f"generated only ({sum(r['set'] == 'generated' for r in rows)} clips)"))
    print(format_table(per_demo, f"sample data only ({sum(r['set'] == 'sample_data' for r in rows)} clips)"))
    print("confusion (truth -> labels given):")
    for k, v in conf_all.items():
        print(f"  {k:<10} {v}")
    wrong = [r for r in rows if r["truth"] != r["got"]]
    for r in wrong:
        print(f"  wrong: {r['set']} {r['video']} clip {r['clip']}: truth {r['truth']}, got {r['got']}")
    if real:
        print("shared and real videos (no camera truth; for a person to judge):")
        for r in real:
            print(f"  {r['video']:<40} clip {r['clip']:>2} {r['start_s']:>6.2f}-{r['end_s']:<6.2f} s "
                  f"{str(r['camera_motion_type']):<10} camera_motion {r['camera_motion'] or 0:.4f} motion {r['motion'] or 0:.4f}")
    correct = sum(r["truth"] == r["got"] for r in rows)
    result = {
        "config": cfg.camera_motion.model_dump(), "clips": len(rows), "accuracy": correct / len(rows),
        "per_label": per_all, "per_label_generated": per_gen, "per_label_sample_data": per_demo,
        "confusion": conf_all, "wrong": wrong, "real": real,
        "scan_cpu_s_per_generated_clip": float(np.median(cpu)) if cpu else None,
        "summary": [{"metric": "clips with known camera moves", "value": len(rows)},
                    {"metric": "accuracy (all labels)", "value": correct / len(rows)}]
                   + [{"metric": f"{lab} precision / recall", "value":
                       f"{_fmt(r['precision'])} / {_fmt(r['recall'])} (n={r['support']})"} for lab, r in per_all.items()],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "camera.json").write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
