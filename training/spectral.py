"""Spectral tools: radially averaged power spectral density (RAPSD) in space, power spectrum along time, and
where noise overtakes signal.

Natural images (and good latents) have power P(f) ∝ f^(-α), α ≈ 2. White noise of std σ has flat power σ²
(with an orthonormal FFT), so at noise level σ every frequency above the crossover ("hinge") f*(σ), where
P_data(f*) = σ², is drowned out: diffusion generates coarse-to-fine (Dieleman 2024, "Diffusion is spectral
autoregression"; Rissanen et al. 2023). Video is smooth in time too (most power in slow change), so the same
holds along T': noise drowns fast temporal change (flicker, quick motion) first and slow change last.
"""
import json
from pathlib import Path

import numpy as np


def rapsd(images, return_counts: bool = False):
    """RAPSD of (..., H, W) arrays, averaged over leading axes: (freqs in cycles/pixel, power), DC excluded.

    Power is |FFT|² with norm="ortho" (white noise of variance σ² has power σ² at every frequency);
    bins are unit-width rings in integer frequency up to Nyquist, each at its mean |f|.
    """
    a = np.asarray(images, dtype=np.float64)
    h, w = a.shape[-2:]
    power = (np.abs(np.fft.fft2(a, norm="ortho")) ** 2).reshape(-1, h, w).mean(0)  # (H, W)
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")  # cycles/pixel
    f = np.sqrt(fy**2 + fx**2)
    ring = np.rint(f * min(h, w)).astype(int)  # ring index in units of 1/min(H, W)
    keep = (ring >= 1) & (ring <= min(h, w) // 2)  # no DC, nothing past Nyquist
    counts = np.bincount(ring[keep], minlength=min(h, w) // 2 + 1)[1:]
    p = np.bincount(ring[keep], weights=power[keep], minlength=len(counts) + 1)[1:] / np.maximum(counts, 1)
    freqs = np.bincount(ring[keep], weights=f[keep], minlength=len(counts) + 1)[1:] / np.maximum(counts, 1)
    ok = counts > 0
    return (freqs[ok], p[ok], counts[ok]) if return_counts else (freqs[ok], p[ok])


def fit_power_law(freqs, power, fmin: float | None = None, fmax: float | None = None) -> dict:
    """Least-squares fit of log P = log A - α·log f: {"alpha", "amplitude", "n_bins"}; α=None if < 3 bins."""
    freqs, power = np.asarray(freqs), np.asarray(power)
    m = (power > 0) & (freqs > 0)
    if fmin is not None:
        m &= freqs >= fmin
    if fmax is not None:
        m &= freqs <= fmax
    if m.sum() < 3:
        return {"alpha": None, "amplitude": None, "n_bins": int(m.sum())}
    slope, intercept = np.polyfit(np.log(freqs[m]), np.log(power[m]), 1)
    return {"alpha": float(-slope), "amplitude": float(np.exp(intercept)), "n_bins": int(m.sum())}


def power_law_noise(n: int, size: int, alpha: float, seed: int = 0) -> np.ndarray:
    """(n, size, size) Gaussian images with expected power |f|^(-α): white noise shaped in Fourier space."""
    rng = np.random.default_rng(seed)
    white = np.fft.fft2(rng.standard_normal((n, size, size)), norm="ortho")
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    f = np.sqrt(fy**2 + fx**2)
    f[0, 0] = np.inf  # zero mean
    return np.fft.ifft2(white * f ** (-alpha / 2), norm="ortho").real


def crossover_frequency(freqs, data_power, sigma: float) -> float | None:
    """Lowest frequency where white noise (power σ²) overtakes the data; None if the data dominates everywhere.

    Interpolated in log-log between the last bin above σ² and the first below it; the lowest bin if noise
    already dominates there.
    """
    freqs, p = np.asarray(freqs), np.asarray(data_power)
    below = np.nonzero(p < sigma**2)[0]
    if len(below) == 0:
        return None
    i = below[0]
    if i == 0:
        return float(freqs[0])
    lf0, lf1, lp0, lp1 = np.log(freqs[i - 1]), np.log(freqs[i]), np.log(p[i - 1]), np.log(p[i])
    t = (lp0 - 2 * np.log(sigma)) / (lp0 - lp1)
    return float(np.exp(lf0 + t * (lf1 - lf0)))


def spectral_report(data, out_dir: str | Path, samples=None, sigmas=(0.02, 0.1, 0.5, 1.0, 5.0, 20.0),
                    seed: int = 0, name: str = "rapsd") -> dict:
    """RAPSD of data, of data + σ·n for each σ (with the crossover f*), and of samples: {name}.png + .json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.asarray(data, dtype=np.float64)
    rng = np.random.default_rng([seed, 0x5EC7])  # its own stream: never the draws that made synthetic data
    f, p = rapsd(data)
    report = {"n_data": int(np.prod(data.shape[:-2])), "shape": list(data.shape[-2:]),
              "data": {"freqs": f.tolist(), "power": p.tolist(), "fit": fit_power_law(f, p)}, "noised": []}
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.loglog(f, p, "k-", lw=2, label=f"data (α={_fmt(report['data']['fit']['alpha'])})")
    for i, sigma in enumerate(sigmas):
        fn, pn = rapsd(data + sigma * rng.standard_normal(data.shape))
        cross = crossover_frequency(f, p, sigma)
        report["noised"].append({"sigma": sigma, "power": pn.tolist(), "crossover_freq": cross})
        color = plt.cm.viridis(i / max(len(sigmas) - 1, 1))
        ax.loglog(fn, pn, color=color, lw=1, label=f"σ={sigma:g}" + (f", f*={cross:.3f}" if cross else ""))
        if cross:
            ax.axvline(cross, color=color, ls=":", lw=0.8)
    if samples is not None:
        fs, ps = rapsd(np.asarray(samples, dtype=np.float64))
        report["samples"] = {"freqs": fs.tolist(), "power": ps.tolist(), "fit": fit_power_law(fs, ps)}
        ax.loglog(fs, ps, "r--", lw=2, label=f"samples (α={_fmt(report['samples']['fit']['alpha'])})")
    ax.set_xlabel("frequency (cycles/pixel)")
    ax.set_ylabel("power")
    ax.set_title("RAPSD: noise overtakes signal above f*(σ)")
    ax.legend(fontsize=7)
    return _save(fig, report, out_dir, name)


def _save(fig, report: dict, out_dir, name: str) -> dict:
    """Write OUT/name.png and OUT/name.json; returns the report."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=110)
    plt.close(fig)
    (out / f"{name}.json").write_text(json.dumps(report, indent=1))
    return report


def temporal_psd(clips, return_counts: bool = False):
    """Power spectrum along time of (..., T, H, W) arrays: (freqs in cycles/frame, power), DC excluded.

    |FFT_t|² with norm="ortho" over axis -3, averaged over every other axis (positions, channels, clips), so
    white noise of variance σ² has power σ² at every temporal frequency, as in `rapsd`. Bins are the one-sided
    frequencies k/T, k = 1..T//2 (negative frequencies folded into the same bin: real input).
    """
    a = np.asarray(clips, dtype=np.float64)
    t = a.shape[-3]
    if t < 3:
        raise ValueError(f"a temporal spectrum needs at least 3 frames, got T={t}")
    power = np.moveaxis(np.abs(np.fft.fft(a, axis=-3, norm="ortho")) ** 2, -3, 0).reshape(t, -1).mean(1)  # (T,)
    k = np.abs(np.rint(np.fft.fftfreq(t) * t)).astype(int)  # |k| per FFT bin
    keep = (k >= 1) & (k <= t // 2)
    counts = np.bincount(k[keep], minlength=t // 2 + 1)[1:]
    p = np.bincount(k[keep], weights=power[keep], minlength=t // 2 + 1)[1:] / np.maximum(counts, 1)
    freqs = np.arange(1, t // 2 + 1) / t
    return (freqs, p, counts) if return_counts else (freqs, p)


def power_law_clips(n: int, frames: int, size: int, alpha_t: float, seed: int = 0) -> np.ndarray:
    """(n, frames, size, size) Gaussian clips, white in space, with expected temporal power |f_t|^(-α_t)."""
    rng = np.random.default_rng(seed)
    white = np.fft.fft(rng.standard_normal((n, frames, size, size)), axis=1, norm="ortho")
    f = np.abs(np.fft.fftfreq(frames))
    f[0] = np.inf  # no DC
    return np.fft.ifft(white * (f ** (-alpha_t / 2))[None, :, None, None], axis=1, norm="ortho").real


def temporal_report(data, out_dir: str | Path, samples=None, sigmas=(0.02, 0.1, 0.5, 1.0, 5.0, 20.0),
                    seed: int = 0, name: str = "temporal_psd") -> dict:
    """Temporal power spectrum of clips (N, C, T, H, W) (or (..., T, H, W)), of clips + σ·n per σ with the
    crossover f*_t(σ) and the per-frequency SNR, and of samples: {name}.png (next to the spatial RAPSD) + .json.

    `drowned_first` per σ: the temporal frequencies where noise already exceeds the data, highest first
    (empty when the data dominates everywhere); for data smooth in time they are the *highest* ones.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.asarray(data, dtype=np.float64)
    rng = np.random.default_rng([seed, 0x7E3F])
    f, p = temporal_psd(data)
    fs_, ps_ = rapsd(data.reshape(-1, *data.shape[-2:]))
    report = {"n_clips": int(data.shape[0]), "frames": int(data.shape[-3]),
              "data": {"freqs": f.tolist(), "power": p.tolist(), "fit": fit_power_law(f, p)},
              "spatial": {"freqs": fs_.tolist(), "power": ps_.tolist(), "fit": fit_power_law(fs_, ps_)}, "noised": []}
    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(10, 4.2))
    ax_s.loglog(fs_, ps_, "k-", lw=2, label="data")
    # markers: a short window (T' = 3 latent frames) has a single non-DC temporal frequency, and a line of one point is invisible
    ax_t.loglog(f, p, "k-o", lw=2, label=f"data (α_t={_fmt(report['data']['fit']['alpha'])})")
    for i, sigma in enumerate(sigmas):
        noisy = data + sigma * rng.standard_normal(data.shape)
        fn, pn = temporal_psd(noisy)
        snr = p / sigma**2
        cross = crossover_frequency(f, p, sigma)
        report["noised"].append({"sigma": sigma, "power": pn.tolist(), "crossover_freq": cross, "snr": snr.tolist(),
                                 "drowned_first": [float(x) for x in f[snr < 1][::-1]]})
        color = plt.cm.viridis(i / max(len(sigmas) - 1, 1))
        ax_t.loglog(fn, pn, color=color, lw=1, marker="o", label=f"σ={sigma:g}" + (f", f*={cross:.3f}" if cross else ""))
        ax_s.loglog(*rapsd(noisy.reshape(-1, *data.shape[-2:])), color=color, lw=1, label=f"σ={sigma:g}")
        if cross:
            ax_t.axvline(cross, color=color, ls=":", lw=0.8)
    if samples is not None:
        samples = np.asarray(samples, dtype=np.float64)
        fs, ps = temporal_psd(samples)
        report["samples"] = {"freqs": fs.tolist(), "power": ps.tolist(), "fit": fit_power_law(fs, ps)}
        ax_t.loglog(fs, ps, "r--o", lw=2, label="samples")
        ax_s.loglog(*rapsd(samples.reshape(-1, *samples.shape[-2:])), "r--", lw=2, label="samples")
    ax_s.set(xlabel="spatial frequency (cycles/cell)", ylabel="power", title="spatial RAPSD")
    ax_t.set(xlabel="temporal frequency (cycles/frame)", title="temporal power: noise drowns fast change first")
    ax_s.legend(fontsize=6)
    ax_t.legend(fontsize=6)
    return _save(fig, report, out_dir, name)


def _fmt(x):
    return "n/a" if x is None else f"{x:.2f}"
