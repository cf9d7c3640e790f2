"""A batch the embed model cannot score becomes error rows for its clips; the other batches are kept."""
import cv2
import numpy as np

from pipelines.embed_stage import _EmbedWorker
from schemas import TABLES, table_from_rows


class _MeanColour:
    """Test double for ClipScorer: the mean RGB of each clip's frames as its 'embedding'."""

    def score_clips(self, clip_frames):
        return [(np.mean([f.mean(axis=(0, 1)) for f in frames], axis=0).tolist(), None) for frames in clip_frames]


def _jpeg(value: int) -> bytes:
    return cv2.imencode(".jpg", np.full((8, 8, 3), value, np.uint8))[1].tobytes()


def test_bad_jpeg_fails_only_its_batch():
    worker = _EmbedWorker.__new__(_EmbedWorker)  # no model load: the scorer is replaced below
    worker.scorer, worker.clips_per_batch = _MeanColour(), 1
    rows = [{"clip_id": f"c{i}", "video_id": "v", "position": 0.5, "frame_index": 0, "t": 0.0, "width": 8, "height": 8,
             "jpeg": b"not a jpeg" if i == 1 else _jpeg(40 * i)} for i in range(3)]
    keyframes = table_from_rows(rows, TABLES["keyframes"], "keyframes")
    owners = {f"c{i}": (f"file:///in/v{i}.mp4", "v") for i in range(3)}
    scored, errors = worker.embed_keyframes(keyframes, owners, "run1")
    assert [r["clip_id"] for r in scored] == ["c0", "c2"]
    assert scored[1]["embedding"] == [80.0, 80.0, 80.0]
    assert [(e["uri"], e["stage"], e["error_type"]) for e in errors] == [("file:///in/v1.mp4", "embed", "ValueError")]
