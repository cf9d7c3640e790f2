"""Small synthetic videos with sound for the audio tests, written with PyAV.

Signals: a sine tone, digital silence, a square wave driven past full scale
(clipped), and speech-like sound made with a source-filter model (a glottal
pulse train through vowel formant resonators, in syllables: how formant
synthesisers make vowels). Pictures are a slow pan over a seeded texture.
"""
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from scipy.signal import butter, lfilter

from tests._videogen import frames


def tone(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.float32)


def clipped_square(seconds: float, rate: int, freq: float = 220.0) -> np.ndarray:
    """A square wave at full scale: every sample sits at +-1."""
    t = np.arange(int(seconds * rate)) / rate
    return np.where(np.sin(2 * np.pi * freq * t) >= 0, 1.0, -1.0).astype(np.float32)


VOWEL_FORMANTS = {"a": (730, 1090, 2440), "i": (270, 2290, 3010), "u": (300, 870, 2240),
                  "e": (530, 1840, 2480), "o": (570, 840, 2410)}  # Hz, F1-F3 (Peterson & Barney 1952)


def formant_speech(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Consonant-vowel syllables: a high-passed noise burst, then a ~120 Hz pulse train (pitch
    contour, jitter, aspiration) through three vowel formant resonators; quiet noise between syllables."""
    rng = np.random.default_rng(seed)
    b_hp, a_hp = butter(2, 3000 / (rate / 2), "high")
    out, total = [], 0
    while total < int(seconds * rate):
        m = int(0.04 * rate)  # fricative-like consonant
        out.append(0.05 * lfilter(b_hp, a_hp, rng.normal(0, 1, m)))
        formants = VOWEL_FORMANTS["aiueo"[rng.integers(5)]]
        n = int(rng.uniform(0.15, 0.3) * rate)
        f0 = 120 * (1 + 0.15 * np.sin(np.linspace(0, np.pi, n))) * rng.uniform(0.85, 1.2)
        f0 = f0 * (1 + 0.01 * rng.normal(size=n))  # jitter
        src = (np.diff(np.floor(np.cumsum(f0 / rate)), prepend=0) > 0).astype(float)  # one pulse per period
        src = src + 0.02 * rng.normal(size=n)  # aspiration
        y = lfilter([1], [1, -0.97], src)  # glottal roll-off
        for f, bw in zip(formants, (80, 100, 120)):
            r, th = np.exp(-np.pi * bw / rate), 2 * np.pi * f / rate
            y = lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], y)
        out.append(y / np.abs(y).max() * np.sin(np.linspace(0, np.pi, n)) ** 0.5)
        gap = int(rng.uniform(0.03, 0.12) * rate)
        out.append(rng.normal(0, 1e-3, gap))
        total += m + n + gap
    x = np.concatenate(out)[: int(seconds * rate)]
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def write_av(path: Path, audio: np.ndarray | None, rate: int = 48000, video_s: float | None = 2.0, seed: int = 0,
             width: int = 96, height: int = 64, fps: int = 10, audio_codec: str = "aac") -> Path:
    """Write an mp4 with a panning picture of `video_s` seconds (None = audio only) and mono
    `audio` (None = no audio stream)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        vs = None
        if video_s is not None:
            vs = out.add_stream("libx264", rate=fps)
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            vs.options = {"preset": "ultrafast", "threads": "1"}
        aus = out.add_stream(audio_codec, rate=rate, layout="mono") if audio is not None else None
        if vs is not None:
            for img in frames(seed, width, height, int(round(video_s * fps)), None):
                out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            out.mux(vs.encode())
        if aus is not None:
            step = 1024
            for i in range(0, len(audio), step):
                chunk = np.ascontiguousarray(audio[None, i:i + step])
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = rate, i, Fraction(1, rate)
                out.mux(aus.encode(frame))
            out.mux(aus.encode())
    return path


def write_sar(path: Path, width: int, height: int, sar: Fraction | None, seconds: float = 1.0, fps: int = 10,
              picture: np.ndarray | None = None) -> Path:
    """A video whose stored pixels are `picture` resized to width x height, flagged with sample aspect `sar`."""
    import cv2

    path = Path(path)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "threads": "1"}
        if sar is not None:
            vs.codec_context.sample_aspect_ratio = sar
        img = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)
        for _ in range(int(seconds * fps)):
            out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(vs.encode())
    return path
