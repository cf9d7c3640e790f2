"""Text area cost per clip: our detector-only measure vs rapidocr's full OCR (detection + classifier + recognition).

Both run on the same frames: three per video (10/50/90%), short side 256 px like the
keyframes, from the shared test videos. Writes bench/results/text.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
VIDEOS = Path(os.environ.get("VIDCURATE_TEST_VIDEOS", REPO / ".." / "shared" / "data" / "videos")).resolve()


def keyframe_like(path: Path) -> list[np.ndarray]:
    """Frames at 10/50/90% of a file, short side 256 px."""
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    out = []
    for i in (np.array([0.1, 0.5, 0.9]) * (len(frames) - 1)).round().astype(int):
        f = frames[i]
        s = 256 / min(f.shape[:2])
        out.append(cv2.resize(f, (round(f.shape[1] * s), round(f.shape[0] * s)), interpolation=cv2.INTER_AREA))
    return out


def main(argv: list[str] | None = None) -> dict:
    from rapidocr import RapidOCR

    from curation.text_area import TextAreaMeter, TextAreaParams

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads for both (count)")
    ap.add_argument("--rounds", type=int, default=2, help="timed passes over all clips; the best counts")
    args = ap.parse_args(argv)
    clips = {p.name: keyframe_like(p) for p in sorted(VIDEOS.glob("*")) if p.suffix in (".mp4", ".avi")}
    ours = TextAreaMeter(TextAreaParams(threads=args.threads))
    full = RapidOCR(params={"Global.log_level": "warning", "EngineConfig.onnxruntime.intra_op_num_threads": args.threads,
                            "EngineConfig.onnxruntime.inter_op_num_threads": 1})

    def best(fn) -> float:
        fn(next(iter(clips.values()))[0])  # warm-up
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for frames in clips.values():
                for f in frames:
                    fn(f)
            times.append(time.perf_counter() - t0)
        return min(times) / len(clips)

    ours_s = best(ours.frame_text_area)
    full_s = best(lambda f: full(np.ascontiguousarray(f[..., ::-1])))
    values = {name: ours.clip_text_area(frames) for name, frames in clips.items()}
    result = {
        "benchmark": "text", "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_avg_1m": os.getloadavg()[0], "clips": len(clips), "frames_per_clip": 3, "frame_short_side_px": 256,
        "threads": args.threads, "ours_detector_only_s_per_clip": ours_s, "rapidocr_full_ocr_s_per_clip": full_s,
        "speedup": full_s / ours_s, "text_area_frac": values,
    }
    out = REPO / "bench" / "results" / "text.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"text area, s/clip (3 frames at 256 px, {args.threads} thread): ours {ours_s:.3f}, rapidocr full OCR {full_s:.3f}, "
          f"x{full_s / ours_s:.1f}")
    return result


if __name__ == "__main__":
    main()
