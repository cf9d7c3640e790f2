"""Helpers for the autoencoder tests: manifests over the real test videos, a quiet torch."""
from pathlib import Path

import torch

import schemas


def quiet_torch() -> None:
    """The test box is 2 cores shared by many processes: one thread (two spin-wait each other, ~10x slower)."""
    torch.set_num_threads(1)


def make_manifest(path: Path, spans: list[tuple[Path | str, int, int, float]], table: str = "curated") -> str:
    """Write a curated/clips table with one kept clip per (video, start_frame, end_frame, fps)."""
    rows = []
    for i, (video, start, end, fps) in enumerate(spans):
        rows.append({
            "clip_id": f"clip{i:03d}", "video_id": f"vid-{Path(video).stem}", "uri": str(video),
            "clip_index": i, "start_frame": start, "end_frame": end, "num_frames": end - start,
            "start_s": start / fps, "end_s": end / fps, "duration_s": (end - start) / fps, "fps": fps,
            "width": 176, "height": 144, "split_reason": "window", "drop_reasons": [], "kept": True,
            "aesthetic": 5.0 + i, "motion": None, "quality": 0.5,
        })
        if "caption" in schemas.TABLES[table].names:  # the captions column, once the manifest has one
            rows[-1]["caption"] = f"caption of clip {i}"
    table_ = schemas.table_from_rows(rows, schemas.TABLES[table], table)
    uri = str(path / f"{table}.parquet")
    schemas.write_table(table_, table, uri)
    return uri


def test_make_manifest_round_trips(tmp_path):
    uri = make_manifest(tmp_path, [("a.mp4", 0, 10, 25.0), ("b.mp4", 5, 20, 25.0)])
    t = schemas.read_table(uri, "curated")
    assert t.column("clip_id").to_pylist() == ["clip000", "clip001"]
    assert t.column("end_frame").to_pylist() == [10, 20]
