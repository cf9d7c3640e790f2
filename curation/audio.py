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
BATCH_WINDOWS = 10  # windows measured together (1 s): few lfilter calls and few list entries per hour
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
        self._pending: list[np.ndarray] = []  # decoded samples not yet measured, (C, n) each
        self._pending_n = 0
        # per 100 ms window, in chunks as decoded (a partial window ends the stream):
        self._kweighted_ss: list[np.ndarray] = []  # (K, C) sum of squares of the K-weighted signal
        self._raw_ss: list[np.ndarray] = []  # (K,) sum of squares over all channels
        self._clipped: list[np.ndarray] = []  # (K,) samples at full scale, all channels
        self._counts: list[np.ndarray] = []  # (K,) samples per channel in the window
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
        """Score the last partial window; flush the VAD resampler and model."""
        rest = self._measure()
        if rest.shape[1]:
            self._windows(rest[:, None, :])  # (C, 1, n)
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
        self._pending.append(x)
        self._pending_n += x.shape[1]
        if self._pending_n >= BATCH_WINDOWS * self._window:
            rest = self._measure()
            self._pending, self._pending_n = [rest], rest.shape[1]

    def _measure(self) -> np.ndarray:
        """Measure the whole windows among the pending samples; return the rest (C, n < window)."""
        if not self._pending:
            return np.zeros((self.channels or 1, 0))
        x = np.concatenate(self._pending, axis=1)
        self._pending, self._pending_n = [], 0
        whole = x.shape[1] // self._window * self._window
        if whole:
            self._windows(x[:, :whole].reshape(x.shape[0], -1, self._window))
        return x[:, whole:]

    def _windows(self, windows: np.ndarray) -> None:
        """Statistics of consecutive windows (C, K, W); the K-weighting filter state runs on."""
        c, k, w = windows.shape
        self._raw_ss.append(np.sum(windows**2, axis=(0, 2)))
        self._clipped.append(np.count_nonzero(np.abs(windows) >= self.params.full_scale, axis=(0, 2)))
        self._counts.append(np.full(k, w))
        y = windows.reshape(c, k * w)
        for i, (b, a, gain, state) in enumerate(self._filters):
            y, state = lfilter(b, a, y, axis=1, zi=state)
            y = gain * y
            self._filters[i] = (b, a, gain, state)
        self._kweighted_ss.append(np.sum(y.reshape(c, k, w) ** 2, axis=2).T)  # (K, C)

    def clip_scores(self, start_s: float, end_s: float) -> dict:
        """Scores on the windows whose centre lies in [start_s, end_s); null when none has audio."""
        out = {"audio_coverage": None, "loudness_lufs": None, "silence_frac": None,
               "audio_clipping_frac": None, "speech_frac": None}
        if not self.has_audio or end_s <= start_s:
            return out
        counts = np.concatenate(self._counts) if self._counts else np.zeros(0, int)
        win_s = self._window / self.rate
        lo = max(0, math.ceil((start_s - self.start_s) / win_s - 0.5))  # windows whose centre is in the span
        hi = min(len(counts), math.ceil((end_s - self.start_s) / win_s - 0.5))
        n = counts[lo:hi]
        out["audio_coverage"] = float(min(1.0, n.sum() / self.rate / (end_s - start_s)))
        if not n.sum():
            return out
        raw = np.concatenate(self._raw_ss)[lo:hi] / (n * self.channels)
        with np.errstate(divide="ignore"):
            out["silence_frac"] = float(np.mean(10.0 * np.log10(raw) < self.params.silence_dbfs))
        out["audio_clipping_frac"] = float(np.concatenate(self._clipped)[lo:hi].sum() / (n.sum() * self.channels))
        kw = np.concatenate(self._kweighted_ss)[lo:hi]  # (K, C)
        if len(kw) >= BLOCK_WINDOWS:
            # a block's mean square over its full 400 ms (a short last window counts as zero-padded, as pyloudnorm does)
            blocks = np.lib.stride_tricks.sliding_window_view(kw, BLOCK_WINDOWS, axis=0).sum(axis=2) / (BLOCK_WINDOWS * self._window)
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
