"""A small synthetic run folder for the dashboard tests (helpers, imported as `_dashboard_run`).

Tables are written through schemas.write_table; `uri` points at symlinks to real
videos in ../shared (never copied), so thumbnails really decode. One input is
named `<script>alert(1)</script>.mp4` (the slash makes it a folder
`<script>alert(1)<` holding `script>.mp4`).
"""
import hashlib
import json
from pathlib import Path

import numpy as np

from schemas import RunRecord, clips_schema, errors_schema, keyframes_schema, table_from_rows, videos_schema, write_table

SCRIPT_NAME = "<script>alert(1)</script>.mp4"
EVIL_MESSAGE = "moov atom not found <img src=x onerror=alert(2)>"

# relpath under the input root -> (real file, duration s, width, height, fps)
INPUTS = {
    "nature/bikes.mp4": ("bikes.mp4", 10.0, 640, 272, 25.0),
    "nature/cockatoo.mp4": ("cockatoo.mp4", 14.0, 1280, 720, 20.0),
    SCRIPT_NAME: ("fades.mp4", 10.0, 480, 320, 25.0),
    "city/pedestrians.avi": ("pedestrians.avi", 79.5, 480, 360, 10.0),
}
BROKEN = "city/broken.mp4"  # an input that only has an error row
CLIPS_PER_VIDEO = 6

FILTERS_A = [
    {"column": "duration_s", "min": 1.0, "max": None, "reason": "too_short"},
    {"column": "motion", "min": 0.002, "max": None, "reason": "static"},
    {"column": "motion", "min": None, "max": 0.5, "reason": "too_much_motion"},
    {"column": "sharpness", "min": 50.0, "max": None, "reason": "blurry"},
    {"column": "luma_mean", "min": 35.0, "max": None, "reason": "dark"},
    {"column": "black_frac", "min": None, "max": 0.5, "reason": "black_frames"},
    {"column": "aesthetic", "min": 4.5, "max": None, "reason": "low_aesthetic"},
]


def filters_for(variant: str) -> list[dict]:
    rules = [dict(r) for r in FILTERS_A]
    if variant == "b":
        rules[3]["min"] = 120.0  # stricter blur threshold: kept clips flip to dropped
        rules[5]["max"] = 0.9  # looser black-frame threshold: dropped clips flip to kept
    return rules


def _id(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _reasons(row: dict, rules: list[dict]) -> list[str]:
    out = []
    for r in rules:
        v = row.get(r["column"])
        if v is None:
            continue  # null scores never fail a rule
        if (r["min"] is not None and v < r["min"]) or (r["max"] is not None and v > r["max"]):
            if r["reason"] not in out:
                out.append(r["reason"])
    return out


def _keyframes(clips: list[dict]) -> list[dict]:
    """Three stored keyframe JPEGs per clip, as the scan writes them (the report's thumbnails come from here)."""
    import cv2

    rows = []
    for i, c in enumerate(clips):
        for pos in (0.1, 0.5, 0.9):
            img = np.zeros((144, 256, 3), np.uint8)
            img[:, :, i % 3] = int(255 * pos)  # each clip and position its own picture
            cv2.putText(img, f"{i}", (20, 100), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 4)
            rows.append(dict(clip_id=c["clip_id"], video_id=c["video_id"], position=pos,
                             frame_index=c["start_frame"], t=c["start_s"], width=256, height=144,
                             jpeg=cv2.imencode(".jpg", img)[1].tobytes()))
    return rows


def make_run(out: Path, inputs_root: Path, videos_dir: Path, variant: str = "a") -> Path:
    """Write a run folder at `out`; symlink the real videos under `inputs_root`."""
    rng = np.random.default_rng(7)  # same scores in both variants: only the config differs
    rules = filters_for(variant)
    videos, clips = [], []
    for relpath, (real, duration, w, h, fps) in INPUTS.items():
        link = inputs_root / relpath
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(videos_dir / real)
        video_id = _id(real, relpath)
        videos.append(dict(
            video_id=video_id, uri=str(link), relpath=relpath, content_hash=_id("hash", real),
            file_size=(videos_dir / real).stat().st_size, container="mov,mp4", codec="h264",
            width=w, height=h, rotation=0, fps=fps, num_frames=int(duration * fps),
            num_frames_meta=int(duration * fps), duration_s=duration, num_clips=CLIPS_PER_VIDEO, decode_s=0.5,
        ))
        step = duration / CLIPS_PER_VIDEO
        for k in range(CLIPS_PER_VIDEO):
            start = k * step
            end = start + (0.5 if k == 0 and relpath.startswith("nature/bikes") else step)  # one too_short clip
            row = dict(
                clip_id=_id(video_id, k), video_id=video_id, uri=str(link), clip_index=k,
                start_frame=int(start * fps), end_frame=int(end * fps), num_frames=int((end - start) * fps),
                start_s=start, end_s=end, duration_s=end - start, fps=fps, width=w, height=h,
                split_reason="window",
                motion=float(rng.uniform(0.0, 0.03)), camera_motion=float(rng.uniform(0, 0.01)),
                local_motion=float(rng.uniform(0, 0.01)),
                # variant b stands for a changed sharpness scorer: every value 20 % higher
                sharpness=float(rng.uniform(20, 400)) * (1.2 if variant == "b" else 1.0), luma_mean=float(rng.uniform(25, 160)),
                contrast=float(rng.uniform(10, 70)), black_frac=float(rng.choice([0.0, 0.1, 0.8])),
                quality=float(rng.uniform(0, 1)),
                # aesthetic, colorfulness, letterbox_frac, ... stay null: "weights not configured"
                drop_reasons=[], kept=True,
            )
            if relpath == SCRIPT_NAME:
                row["black_frac"] = 0.8  # every clip of this input is dropped: an input-level "dropped"
            row["static"] = row["motion"] < 0.002
            clips.append(row)
    # one duplicate pair: the second bikes clip repeats the third
    clips[2].update(dup_group_id="g1", dup_kind="perceptual", dup_of=clips[2]["clip_id"], dup_similarity=1.0)
    clips[1].update(dup_group_id="g1", dup_kind="perceptual", dup_of=clips[2]["clip_id"], dup_similarity=0.97)
    for row in clips:
        row["drop_reasons"] = _reasons(row, rules) + (["duplicate"] if row is clips[1] else [])
        row["kept"] = not row["drop_reasons"]
    errors = [dict(uri=str(inputs_root / BROKEN), video_id=None, stage="probe", error_type="InvalidDataError",
                   message=EVIL_MESSAGE, run_id=f"run-{variant}")]
    (inputs_root / BROKEN).parent.mkdir(parents=True, exist_ok=True)
    (inputs_root / BROKEN).write_bytes(b"not a video")

    write_table(table_from_rows(videos, videos_schema, "videos"), "videos", str(out / "videos" / "part-0.parquet"))
    write_table(table_from_rows(clips, clips_schema, "clips"), "clips", str(out / "clips" / "part-0.parquet"))
    kept = [c for c in clips if c["kept"]]
    write_table(table_from_rows(kept, clips_schema, "curated"), "curated", str(out / "curated" / "part-0.parquet"))
    write_table(table_from_rows(errors, errors_schema, "errors"), "errors", str(out / "errors" / "part-0.parquet"))
    write_table(table_from_rows(_keyframes(clips), keyframes_schema, "keyframes"), "keyframes",
                str(out / "keyframes" / "part-0.parquet"))
    config = {"filters": rules, "split": {"min_clip_s": 1.0}, "aesthetic": {"head_checkpoint": None}}
    record = RunRecord(
        run_id=f"run-{variant}", input_uri=str(inputs_root), output_uri=str(out),
        started_at=f"2026-11-21T10:0{0 if variant == 'a' else 5}:00Z", finished_at="2026-11-21T10:09:00Z",
        config=config, config_hash=_id(json.dumps(config, sort_keys=True)), versions={"vidcurate": "0.1.0"},
        status="succeeded",
        counts={"videos": len(videos), "clips": len(clips), "curated": len(kept), "errors": len(errors)},
        timings={"probe_split_score": 1.0}, not_configured=["aesthetic: not configured"],
    )
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "runs" / f"{record.run_id}.json").write_text(record.to_json())
    return out
