"""Sound, measured in the scan's single decode: per-100 ms window statistics, then per-clip scores.

Clip spans are known only after the whole file is decoded (shot detection ends
at the last frame), so the meter keeps small statistics per 100 ms window
instead of samples: memory grows by a few numbers per channel per second, and
any span's scores come from its windows afterwards.

Loudness is ITU-R BS.1770-4: K-weighting (pyloudnorm's filter coefficients,
applied as a stream), 400 ms gating blocks with 75 % overlap (= four
consecutive 100 ms windows), an absolute gate at -70 LKFS and a relative gate
10 LU below the ungated level.
"""
import math
from dataclasses import dataclass

import av
import numpy as np
import pyloudnorm
from av.audio.resampler import AudioResampler
from scipy.signal import lfilter

from curation.audio_vad import FRAME, VAD_RATE, SpeechProbs

WINDOW_S = 0.1  # seconds per statistics window (BS.1770's gating step; silence_frac's unit)
BLOCK_WINDOWS = 4  # a 400 ms gating block = 4 windows (BS.1770-4, 75 % overlap)
ABSOLUTE_GATE_LKFS = -70.0  # BS.1770-4 eq. 6: blocks below this are ignored
RELATIVE_GATE_LU = -10.0  # BS.1770-4 eq. 6: relative to the absolutely gated level
SURROUND_GAIN = 1.41  # BS.1770-4 Table 3: weight of the surround channels
LOUDNESS_FLOOR_LUFS = ABSOLUTE_GATE_LKFS  # reported when every block is below the absolute gate (silence)


@dataclass(frozen=True)
class AudioParams:
    enabled: bool = True  # demux and measure the first audio stream in the scan's decode
    silence_dbfs: float = -60.0  # a 100 ms window whose RMS is below this is silent (dBFS)
    full_scale: float = 0.999  # |sample| at or above this counts as clipped (fraction of full scale)
    vad: bool = True  # Silero VAD speech_frac
    vad_threshold: float = 0.5  # speech probability at or above which a 32 ms frame is speech


def channel_gains(layout: av.AudioLayout) -> np.ndarray:
    """BS.1770-4 channel weights: 1.0 front, 1.41 surround/back, LFE excluded (0)."""
    gains = []
    for ch in layout.channels:
        name = ch.name
        if name.startswith("LFE"):
            gains.append(0.0)
        elif name.startswith(("S", "B")) or name in ("TBL", "TBR"):
            gains.append(SURROUND_GAIN)
        else:
            gains.append(1.0)
    return np.asarray(gains or [1.0], np.float64)


def block_loudness(z: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """BS.1770-4 eq. 4: l_j = -0.691 + 10 log10(sum_i G_i z_ij) for mean squares z (J, C)."""
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(z @ gains)


def gated_loudness(z: np.ndarray, gains: np.ndarray) -> float:
    """BS.1770-4 eqs. 5-7: integrated loudness of blocks z (J, C), absolute then relative gate."""
    lj = block_loudness(z, gains)
    above = lj >= ABSOLUTE_GATE_LKFS
    if not above.any():
        return LOUDNESS_FLOOR_LUFS
    gamma_r = block_loudness(z[above].mean(axis=0, keepdims=True), gains)[0] + RELATIVE_GATE_LU
    both = above & (lj > gamma_r)
    return float(block_loudness(z[both].mean(axis=0, keepdims=True), gains)[0])


class AudioMeter:
    """Consumes decoded audio frames in order; keeps per-window statistics and VAD probabilities."""

    def __init__(self, params: AudioParams) -> None:
        self.params = params
        self.rate: int | None = None
        self.channels: int | None = None
        self.start_s: float | None = None  # presentation time of the first decoded sample
        self.num_samples = 0  # per channel, decoded
        self._native: AudioResampler | None = None  # format conversion only (same rate, same layout)
        self._to_vad: AudioResampler | None = None  # mono 16 kHz for Silero VAD
        self._vad = SpeechProbs() if params.vad else None
        self._window = 0
        self._gains: np.ndarray | None = None
        self._filters: list[tuple[np.ndarray, np.ndarray, float, np.ndarray]] = []  # (b, a, gain, state)
        self._carry: np.ndarray | None = None  # samples short of a whole window, (C, n)
        self._kweighted_ms: list[np.ndarray] = []  # per window (C,): K-weighted mean square
        self._raw_ms: list[np.ndarray] = []  # per window: mean square over all channels
        self._clipped: list[np.ndarray] = []  # per window: samples at full scale, all channels
        self.speech_probs: np.ndarray | None = None  # per 32 ms VAD frame, set by finish()

    @property
    def has_audio(self) -> bool:
        return self.num_samples > 0

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.rate if self.rate else 0.0

    def feed(self, frame: av.AudioFrame) -> None:
        if self.rate is None:
            self._start(frame)
        for f in self._native.resample(frame):
            x = f.to_ndarray().astype(np.float64)  # (C, n), fltp
            self.num_samples += x.shape[1]
            self._add(x)
        if self._vad is not None:
            for f in self._to_vad.resample(frame):
                self._vad.feed(f.to_ndarray())

    def finish(self) -> None:
        """Flush the VAD resampler and model (the last partial 100 ms window is not scored)."""
        if self._vad is not None:
            if self._to_vad is not None:
                for f in self._to_vad.resample(None):
                    self._vad.feed(f.to_ndarray())
            self.speech_probs = self._vad.finish()

    def _start(self, frame: av.AudioFrame) -> None:
        self.rate = int(frame.sample_rate)
        layout = frame.layout
        self.channels = len(layout.channels) or 1
        self.start_s = float(frame.time) if frame.time is not None else 0.0
        self._native = AudioResampler(format="fltp", layout=layout, rate=self.rate)
        self._to_vad = AudioResampler(format="flt", layout="mono", rate=VAD_RATE)
        self._window = max(1, round(self.rate * WINDOW_S))
        self._gains = channel_gains(layout)
        for stage in pyloudnorm.Meter(self.rate)._filters.values():  # K-weighting: high shelf, then high pass
            state = np.zeros((self.channels, max(len(stage.a), len(stage.b)) - 1))
            self._filters.append((np.asarray(stage.b), np.asarray(stage.a), float(stage.passband_gain), state))

    def _add(self, x: np.ndarray) -> None:
        if self._carry is not None and self._carry.shape[1]:
            x = np.concatenate((self._carry, x), axis=1)
        whole = x.shape[1] // self._window * self._window
        self._carry = x[:, whole:]
        if not whole:
            return
        x = x[:, :whole]
        c, w = x.shape[0], self._window
        windows = x.reshape(c, -1, w)  # (C, K, W)
        self._raw_ms.append(np.mean(windows**2, axis=(0, 2)))
        self._clipped.append(np.count_nonzero(np.abs(windows) >= self.params.full_scale, axis=(0, 2)))
        y = x
        for i, (b, a, gain, state) in enumerate(self._filters):
            y, state = lfilter(b, a, y, axis=1, zi=state)
            y = gain * y
            self._filters[i] = (b, a, gain, state)
        self._kweighted_ms.append(np.mean(y.reshape(c, -1, w) ** 2, axis=2).T)  # (K, C)

    def clip_scores(self, start_s: float, end_s: float) -> dict:
        """Scores on the windows whose centre lies in [start_s, end_s); null when none has audio."""
        out = {"audio_coverage": None, "loudness_lufs": None, "silence_frac": None,
               "audio_clipping_frac": None, "speech_frac": None}
        if not self.has_audio or end_s <= start_s:
            return out
        n_win = sum(len(r) for r in self._raw_ms)
        win_s = self._window / self.rate
        lo = max(0, math.ceil((start_s - self.start_s) / win_s - 0.5))
        hi = min(n_win, math.ceil((end_s - self.start_s) / win_s - 0.5))
        out["audio_coverage"] = float(min(1.0, max(0, hi - lo) * win_s / (end_s - start_s)))
        if hi <= lo:
            return out
        raw = np.concatenate(self._raw_ms)[lo:hi]
        with np.errstate(divide="ignore"):
            out["silence_frac"] = float(np.mean(10.0 * np.log10(raw) < self.params.silence_dbfs))
        clipped = np.concatenate(self._clipped)[lo:hi]
        out["audio_clipping_frac"] = float(clipped.sum() / (len(clipped) * self._window * self.channels))
        kw = np.concatenate(self._kweighted_ms)[lo:hi]  # (K, C)
        if len(kw) >= BLOCK_WINDOWS:
            blocks = np.lib.stride_tricks.sliding_window_view(kw, BLOCK_WINDOWS, axis=0).mean(axis=2)  # (K-3, C)
            out["loudness_lufs"] = gated_loudness(blocks, self._gains)
        if self.speech_probs is not None and len(self.speech_probs):
            frame_s = FRAME / VAD_RATE
            a = max(0, math.ceil((start_s - self.start_s) / frame_s - 0.5))
            b = min(len(self.speech_probs), math.ceil((end_s - self.start_s) / frame_s - 0.5))
            if b > a:
                out["speech_frac"] = float(np.mean(self.speech_probs[a:b] >= self.params.vad_threshold))
        return out

    def video_columns(self, video_duration_s: float, video_start_s: float) -> dict:
        """The videos-table audio columns (has_audio false when no sample could be decoded)."""
        if not self.has_audio:
            return {"has_audio": False}
        return {
            "has_audio": True,
            "audio_sample_rate": self.rate,
            "audio_channels": self.channels,
            "audio_start_s": self.start_s - video_start_s,
            "audio_duration_s": self.duration_s,
            "av_duration_gap_s": video_duration_s - self.duration_s,
        }
