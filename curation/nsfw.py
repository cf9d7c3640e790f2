"""NSFW score of a clip from its keyframes, with NudeNet's ONNX body-part detector (its weights ship in the wheel).

NudeNet (a YOLOv8n, 320x320 input) scores 18 classes per anchor box: exposed and
covered body parts, faces, feet. A keyframe's score is the highest box score among
the counted classes (`classes`), each box assigned to its best class as NudeNet does;
we skip NudeNet's non-maximum suppression, so our keyframe score is never below the
one its `detect` reports (the top box survives NMS unless a higher box of another
class overlaps it). A clip's score is the `keyframe_rank`-th highest keyframe score:
with 3 keyframes and rank 2, two keyframes must agree before the clip scores high,
so one odd frame (a pink blob in an animated film) cannot drop a clip. A clip with
fewer keyframes than the rank takes its lowest (all of them must agree).

The `unsafe` rule (a `filters:` entry on `nsfw_score`) holds the threshold. Stock
NudeNet (0.5 on any *_EXPOSED class, one frame) flagged clean footage here; the
default classes, rank and threshold are calibrated on the shared and real videos
(`python -m bench.safety_bench`). No positive footage is available to measure recall.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# NudeNet 3.x's class order (nudenet/nudenet.py `__labels`): index i is output row 4 + i.
NUDENET_LABELS = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED", "FEET_COVERED", "ARMPITS_COVERED",
    "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
# Explicit nudity: the exposed classes a general-purpose training set removes. MALE_BREAST, BELLY, FEET and
# ARMPITS_EXPOSED are ordinary footage (a beach, a gym) and are left out.
EXPLICIT_CLASSES = ("FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
                    "BUTTOCKS_EXPOSED", "ANUS_EXPOSED")


@dataclass(frozen=True)
class NsfwParams:
    classes: tuple[str, ...] = EXPLICIT_CLASSES  # NudeNet classes whose boxes count (names of NUDENET_LABELS)
    keyframe_rank: int = 2  # a clip's score is its k-th highest keyframe score (k keyframes must agree)
    input_size: int = 320  # detector input side (px); the wheel's model is trained at 320
    threads: int = 1  # onnxruntime intra-op threads per detector

    def __post_init__(self):
        unknown = [c for c in self.classes if c not in NUDENET_LABELS]
        if unknown or not self.classes:
            raise ValueError(f"nsfw classes must be a non-empty subset of {NUDENET_LABELS}, got unknown {unknown}")
        if self.keyframe_rank < 1:
            raise ValueError(f"keyframe_rank must be >= 1, got {self.keyframe_rank}")


def class_scores(output: np.ndarray) -> np.ndarray:
    """(N, 18) best box score per class per image from the model's raw (N, 4 + 18, anchors) output.

    Each anchor box counts only for its best class (as NudeNet's postprocess); 0 where no box has that class."""
    cls = output[:, 4:, :]  # (N, C, A)
    best = cls.argmax(axis=1)  # (N, A)
    top = cls.max(axis=1)  # (N, A)
    onehot = best[:, None, :] == np.arange(cls.shape[1])[None, :, None]  # (N, C, A)
    return np.where(onehot, top[:, None, :], 0.0).max(axis=2)  # (N, C)


def keyframe_scores(scores: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """(N,) each image's highest score among the counted classes, from class_scores' (N, 18)."""
    idx = [NUDENET_LABELS.index(c) for c in classes]
    return scores[:, idx].max(axis=1)


def clip_score(frame_scores: Sequence[float], keyframe_rank: int) -> float | None:
    """The k-th highest keyframe score (the lowest when there are fewer than k keyframes); None without keyframes."""
    if len(frame_scores) == 0:
        return None
    ordered = sorted((float(s) for s in frame_scores), reverse=True)
    return ordered[min(keyframe_rank, len(ordered)) - 1]


def model_path() -> Path:
    """The ONNX detector inside the nudenet wheel (ImportError when the wheel is not installed)."""
    import nudenet

    return Path(nudenet.__file__).parent / "320n.onnx"


def to_blob(bgr: np.ndarray, size: int) -> np.ndarray:
    """(1, 3, size, size) float32 RGB in 0..1: the frame padded bottom/right to a square, then resized (NudeNet's input).

    RGB, as the YOLOv8 was trained: NudeNet 3.4's own _read_image applies COLOR_RGBA2BGR to a 3-channel BGR frame (a
    swap) and then swapRB, so it feeds BGR (notAI-tech/NudeNet#203); on the shared bunny keyframe that reads 0.74
    where RGB reads 0.64."""
    h, w = bgr.shape[:2]
    side = max(h, w)
    square = cv2.copyMakeBorder(bgr, 0, side - h, 0, side - w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return cv2.dnn.blobFromImage(square, 1 / 255.0, (size, size), (0, 0, 0), swapRB=True, crop=False)


class NsfwDetector:
    """One NudeNet ONNX session (load once per actor), scoring keyframe JPEGs or BGR frames."""

    def __init__(self, params: NsfwParams = NsfwParams(), path: str | Path | None = None):
        import onnxruntime as ort

        self.params = params
        so = ort.SessionOptions()
        so.intra_op_num_threads = params.threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path or model_path()), so, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def class_scores(self, frames_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 18) best box score per NudeNet class for each frame (one batched forward pass)."""
        if not frames_bgr:
            return np.zeros((0, len(NUDENET_LABELS)), np.float32)
        blob = np.concatenate([to_blob(f, self.params.input_size) for f in frames_bgr])
        return class_scores(self.session.run(None, {self.input_name: blob})[0])

    def frame_scores(self, jpegs: Sequence[bytes]) -> np.ndarray:
        """(N,) score of each keyframe JPEG over the counted classes."""
        return keyframe_scores(self.class_scores([decode_bgr(j) for j in jpegs]), self.params.classes)

    def clip_nsfw_score(self, jpegs: Sequence[bytes]) -> float | None:
        """A clip's nsfw_score from its keyframe JPEGs (None: no keyframes)."""
        return clip_score(self.frame_scores(jpegs).tolist(), self.params.keyframe_rank) if jpegs else None


def decode_bgr(jpeg: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"keyframe is not a decodable JPEG ({len(jpeg)} bytes)")
    return bgr
