"""Silero VAD speech probabilities, streamed: one per 32 ms of 16 kHz mono audio.

The model is the batched ("sequence") ONNX export that ships inside the silero-vad
wheel: the same network as the streaming model, run over blocks of frames with
the LSTM state and the 64-sample context carried between calls, so the output
equals frame-by-frame streaming while the Python loop runs once per ~8 s block.
"""
import functools
import importlib.util
import os

import numpy as np

VAD_RATE = 16000  # Hz, the rate the model was trained at
FRAME = 512  # samples per VAD frame (32 ms at 16 kHz)
CONTEXT = 64  # samples of the previous frame the model sees before each frame
BLOCK_FRAMES = 256  # frames per ONNX call (~8 s): bounds memory and the per-call overhead
MODEL_FILE = "silero_vad_16k_sequence.onnx"


@functools.cache
def vad_session():
    """The ONNX session, loaded once per process from the installed wheel (no download)."""
    import onnxruntime as ort

    # locate the wheel's data without importing the package: its __init__ imports
    # torch and pins torch to one thread for the whole process
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("silero-vad is not installed (needed for speech_frac; or set audio.vad: false)")
    path = os.path.join(spec.submodule_search_locations[0], "data", MODEL_FILE)
    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


class SpeechProbs:
    """Feed 16 kHz mono float32 chunks as they are decoded; `finish()` returns one probability per frame."""

    def __init__(self) -> None:
        self._session = vad_session()
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._probs: list[np.ndarray] = []

    def feed(self, samples: np.ndarray) -> None:
        self._pending.append(np.asarray(samples, np.float32).reshape(-1))
        self._pending_n += self._pending[-1].size
        if self._pending_n >= BLOCK_FRAMES * FRAME:
            buf = np.concatenate(self._pending)
            whole = buf.size // FRAME * FRAME
            self._run(buf[:whole])
            self._pending, self._pending_n = [buf[whole:]], buf.size - whole

    def finish(self) -> np.ndarray:
        """Run the rest (the last partial frame zero-padded, as the package does) and return all probabilities."""
        if self._pending_n:
            buf = np.concatenate(self._pending)
            padded = np.zeros(-(-buf.size // FRAME) * FRAME, np.float32)
            padded[: buf.size] = buf
            self._run(padded)
        self._pending, self._pending_n = [], 0
        return np.concatenate(self._probs) if self._probs else np.zeros(0, np.float32)

    def _run(self, samples: np.ndarray) -> None:
        frames = samples.reshape(-1, FRAME)  # (N, 512)
        contexts = np.empty((len(frames), CONTEXT), np.float32)  # (N, 64)
        contexts[0] = self._context
        contexts[1:] = frames[:-1, -CONTEXT:]
        self._context = frames[-1, -CONTEXT:].copy()
        probs, self._h, self._c = self._session.run(
            ["speech_probs", "hn", "cn"],
            {"input": np.concatenate((contexts, frames), axis=1), "h": self._h, "c": self._c},  # (N, 576)
        )
        self._probs.append(np.asarray(probs, np.float32).reshape(-1))
