"""Safety stage: NSFW scores on clean real footage (false positives) and the CPU cost per clip.

Run: python -m bench.safety_bench [--rounds 2] [--corpora shared,real]

Keyframes come from curation.scan.scan_video with the pipeline's default config, per clip
as the safety stage gets them (JPEGs, cropped to the content box), on the shared videos
(VIDCURATE_TEST_VIDEOS) and the real videos (VIDCURATE_REAL_VIDEOS); every one of them is
clean footage, so every flag is a false positive. For each clip it reports:
- ours: nsfw_score as the stage computes it (curation.nsfw with the default config's
  safety section) against the default `unsafe` rule's threshold; and the same on a
  grayscale copy of every keyframe (the issue's grayscale-film false positive);
- stock: NudeNet's own NudeDetector.detect on each keyframe JPEG, flagged when any *_EXPOSED
  class scores >= 0.5 on any keyframe (the rule the issue measured; note that detect feeds
  the model BGR, see curation.nsfw.to_blob).
False-positive rates at clip and video level, the highest score per video (the margin
under the threshold), the highest keyframe score per NudeNet class, and CPU seconds per
clip (thread time of decoding the JPEGs, the forward pass and the scoring, onnxruntime on
one thread in the calling thread; best of --rounds). There are no positive clips here:
recall is not measured. Writes bench/results/safety.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
STOCK_THRESHOLD = 0.5  # NudeNet's usual cut on the exposed classes


def default_safety() -> tuple[dict, float]:
    """The default config's safety section and the `unsafe` rule's max."""
    from pipelines.config import load_config

    cfg = load_config()
    rule = next(r for r in cfg.filters if r.reason == "unsafe")
    return cfg.safety.model_dump(), rule.max


def grayscale(jpeg: bytes) -> bytes:
    grey = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR)
    return cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def measure(det, clips: dict[str, list[bytes]], rounds: int) -> dict[str, dict]:
    """{clip: {"frames": (N, 18) class scores, "cpu_s": best thread time}} as the stage measures a clip."""
    from curation.nsfw import decode_bgr

    out = {}
    for name, jpegs in clips.items():
        best = None
        for _ in range(rounds):
            t = time.thread_time()
            scores = det.class_scores([decode_bgr(j) for j in jpegs])
            cpu = time.thread_time() - t
            best = cpu if best is None else min(best, cpu)
        out[name] = {"frames": scores, "cpu_s": best}
    return out


def stock_flags(clips: dict[str, list[bytes]]) -> tuple[dict[str, float], float]:
    """{clip: highest *_EXPOSED score NudeDetector.detect reports over its keyframes}, and its process CPU s per keyframe."""
    from nudenet import NudeDetector

    det = NudeDetector()
    out, n, t = {}, 0, time.process_time()
    for name, jpegs in clips.items():
        top = 0.0
        for j in jpegs:
            n += 1
            for d in det.detect(j):
                if d["class"].endswith("_EXPOSED"):
                    top = max(top, d["score"])
        out[name] = top
    return out, (time.process_time() - t) / max(n, 1)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--corpora", default="shared,real")
    args = ap.parse_args(argv)
    import onnxruntime

    from bench.text_bench import CORPORA, clip_keyframes
    from curation.nsfw import NUDENET_LABELS, NsfwDetector, NsfwParams, clip_score, keyframe_scores

    section, threshold = default_safety()
    params = NsfwParams(**{**section, "classes": tuple(section["classes"]), "threads": 1})
    det = NsfwDetector(params)
    result = {"host": platform.node(), "cpu": platform.processor() or platform.machine(), "onnxruntime": onnxruntime.__version__,
              "params": {**section, "unsafe_max": threshold}, "corpora": {}}
    rows = []
    for corpus in args.corpora.split(","):
        env, default = CORPORA[corpus]
        folder = Path(os.environ.get(env, default))
        if not folder.is_dir():
            print(f"skipping {corpus}: no folder {folder}", file=sys.stderr)
            continue
        clips = clip_keyframes(folder)
        ours = measure(det, clips, args.rounds)
        grey = measure(det, {k: [grayscale(j) for j in v] for k, v in clips.items()}, 1)
        stock, stock_cpu = stock_flags(clips)
        videos: dict[str, dict] = {}
        per_class = np.zeros(len(NUDENET_LABELS))
        for name in clips:
            video = name.split("/")[0]
            s = clip_score(keyframe_scores(ours[name]["frames"], params.classes).tolist(), params.keyframe_rank)
            g = clip_score(keyframe_scores(grey[name]["frames"], params.classes).tolist(), params.keyframe_rank)
            per_class = np.max([per_class, ours[name]["frames"].max(axis=0), grey[name]["frames"].max(axis=0)], axis=0)
            v = videos.setdefault(video, {"clips": 0, "keyframes": 0, "max_score": 0.0, "max_score_grey": 0.0,
                                          "flagged": 0, "flagged_grey": 0, "stock_flagged": 0, "stock_max": 0.0})
            v["clips"] += 1
            v["keyframes"] += len(clips[name])
            v["max_score"] = max(v["max_score"], s or 0.0)
            v["max_score_grey"] = max(v["max_score_grey"], g or 0.0)
            v["flagged"] += int(s is not None and s > threshold)
            v["flagged_grey"] += int(g is not None and g > threshold)
            v["stock_flagged"] += int(stock[name] >= STOCK_THRESHOLD)
            v["stock_max"] = max(v["stock_max"], stock[name])
        cpu = [o["cpu_s"] for o in ours.values()]
        n_kf = sum(len(v) for v in clips.values())
        result["corpora"][corpus] = {
            "videos": videos, "clips": len(clips), "keyframes": n_kf,
            "clip_fp": sum(v["flagged"] for v in videos.values()), "clip_fp_grey": sum(v["flagged_grey"] for v in videos.values()),
            "video_fp": sum(v["flagged"] > 0 for v in videos.values()),
            "video_fp_grey": sum(v["flagged_grey"] > 0 for v in videos.values()),
            "stock_clip_fp": sum(v["stock_flagged"] for v in videos.values()),
            "stock_video_fp": sum(v["stock_flagged"] > 0 for v in videos.values()),
            "cpu_s_per_clip_median": statistics.median(cpu) if cpu else None,
            "cpu_s_per_clip_mean": statistics.fmean(cpu) if cpu else None,
            "cpu_s_per_keyframe": sum(cpu) / n_kf if n_kf else None,
            "stock_process_cpu_s_per_keyframe": stock_cpu,
            "max_keyframe_score_by_class": {c: round(float(x), 4) for c, x in zip(NUDENET_LABELS, per_class)},
            "max_clip_score_by_rank": {  # the calibration: the highest clean clip score for each keyframe_rank (colour, grey)
                k: [round(max(clip_score(keyframe_scores(m[n]["frames"], params.classes).tolist(), k) for n in clips), 4)
                    for m in (ours, grey)] for k in (1, 2, 3)},
        }
        rows += [(corpus, video, v) for video, v in videos.items()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "safety.json").write_text(json.dumps(result, indent=2))
    print(f"nsfw_score = rank-{params.keyframe_rank} keyframe over {len(params.classes)} classes; unsafe when > {threshold}; "
          f"stock = NudeNet detect, any *_EXPOSED >= {STOCK_THRESHOLD} on any keyframe")
    print(f"{'corpus':7} {'video':28} {'clips':>5} {'max':>6} {'grey':>6} {'flag':>4} {'fl.grey':>7} {'stock':>5} {'st.max':>6}")
    for corpus, video, v in rows:
        print(f"{corpus:7} {video:28} {v['clips']:5d} {v['max_score']:6.3f} {v['max_score_grey']:6.3f} {v['flagged']:4d} "
              f"{v['flagged_grey']:7d} {v['stock_flagged']:5d} {v['stock_max']:6.3f}")
    for corpus, c in result["corpora"].items():
        print(f"{corpus}: clips FP {c['clip_fp']}/{c['clips']} (grey {c['clip_fp_grey']}), videos FP {c['video_fp']}/{len(c['videos'])} "
              f"(grey {c['video_fp_grey']}); stock clips {c['stock_clip_fp']}, videos {c['stock_video_fp']}; "
              f"CPU/clip median {c['cpu_s_per_clip_median']:.4f} s, per keyframe {c['cpu_s_per_keyframe']:.4f} s "
              f"(stock detect {c['stock_process_cpu_s_per_keyframe']:.4f} process-s)")
        print(f"{corpus}: highest clean clip score by keyframe_rank (colour, grey): {c['max_clip_score_by_rank']}")
    return result


if __name__ == "__main__":
    main()
