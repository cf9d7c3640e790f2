"""Toy problems with known answers, written in the real latents contract (windows (C, T', H', W') in safetensors
shards, the `latents` table, stats.json): a Gaussian mixture of still clips with its exact (analytic) denoiser,
clips of a blob moving at a known speed, and a small MLP denoiser. Used by tests, the bench and the ablation
demo; nothing here is needed for real training.
"""
import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from schemas import latents_schema, table_from_rows, write_table


def write_latents(out_dir: str | Path, windows: list[dict], ae_hash: str = "toy") -> Path:
    """Write a latents folder in the real contract: shards/000.safetensors, latents.parquet, stats.json.

    Each window is {"mean": (C, T', H', W'), "std": same shape or a float, plus optional table fields: clip_id,
    video_id, aesthetic, motion, quality, caption, fps, height, width, window}. Shapes may differ per window.
    """
    out = Path(out_dir)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    tensors, rows = {}, []
    for i, w in enumerate(windows):
        mean = w["mean"].float().contiguous()
        std = w.get("std", 0.05)
        std = torch.full_like(mean, std) if isinstance(std, float) else std.float().contiguous()
        key = w.get("clip_id", f"clip{i:05d}") + f"_w{w.get('window', 0)}"
        tensors[f"{key}.mean"], tensors[f"{key}.std"] = mean, std
        c, t, h, ww = mean.shape
        rows.append({"clip_id": w.get("clip_id", f"clip{i:05d}"), "video_id": w.get("video_id", f"video{i // 2:05d}"),
                     "shard": "shards/000.safetensors", "key": key, "window": w.get("window", 0),
                     "frame_indices": list(range(t)), "shape": [c, t, h, ww], "height": w.get("height", 8 * h),
                     "width": w.get("width", 8 * ww), "fps": w.get("fps", 8.0), "ae_hash": ae_hash,
                     **{k: w.get(k) for k in ("aesthetic", "motion", "quality", "caption")}})
    save_file(tensors, str(out / "shards" / "000.safetensors"))
    write_table(table_from_rows(rows, latents_schema, "latents"), "latents", str(out / "latents.parquet"),
                schema=latents_schema)
    flat = torch.cat([v.flatten(1) for n, v in tensors.items() if n.endswith(".mean")], dim=1)  # (C, all cells)
    stats = {"mean": flat.mean(1).tolist(), "std": flat.std(1).tolist(), "ae_hash": ae_hash, "count": len(rows)}
    (out / "stats.json").write_text(json.dumps(stats))
    return out


def mode_patterns(k: int = 4, shape=(2, 4, 4), seed: int = 0) -> torch.Tensor:
    """k well-separated ±1 patterns of `shape` (C, H, W): the means of the mixture, (k, C, H, W)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (k, *shape), generator=g).float() * 2 - 1


def write_gmm_latents(out_dir: str | Path, n_clips: int = 64, frames: int = 2, k: int = 4, shape=(2, 4, 4),
                      within_std: float = 0.1, posterior_std: float = 0.05, junk_fraction: float = 0.0,
                      null_fraction: float = 0.0, seed: int = 0, captions: bool = False) -> Path:
    """A latents folder of (C, frames, H, W) windows from a k-mode mixture of still clips.

    Clip i belongs to mode i % k (the ±1 pattern repeated over its frames, plus within_std noise per cell) and
    carries aesthetic = mode/(k-1) (the condition that selects a mode), quality = 1, and with `captions` the
    caption f"pattern {mode}". `junk_fraction` of extra clips are pure N(0, 1) noise with quality 0, a random
    aesthetic and no caption: what curation removes. `null_fraction` of clips get a null motion score.
    """
    g = torch.Generator().manual_seed(seed + 1)
    modes = mode_patterns(k, shape, seed)
    windows = []
    n_junk = int(round(n_clips * junk_fraction))
    c, h, w = shape
    for i in range(n_clips + n_junk):
        junk = i >= n_clips
        if junk:
            mean = torch.randn(c, frames, h, w, generator=g)
            aesthetic, quality, caption = float(torch.rand((), generator=g)), 0.0, None
        else:
            m = i % k
            mean = modes[m].unsqueeze(1) + within_std * torch.randn(c, frames, h, w, generator=g)
            aesthetic, quality, caption = m / max(k - 1, 1), 1.0, (f"pattern {m}" if captions else None)
        motion = None if float(torch.rand((), generator=g)) < null_fraction else float(torch.rand((), generator=g))
        windows.append({"mean": mean, "std": posterior_std, "aesthetic": aesthetic, "motion": motion,
                        "quality": quality, "caption": caption})
    return write_latents(out_dir, windows)


def moving_blob(speed: float, frames: int = 6, size: int = 8, start: float = 0.0, width: float = 1.2,
                channels: int = 1) -> torch.Tensor:
    """(channels, frames, size, size): a Gaussian blob on a ring (x wraps) moving right by `speed` cells/frame."""
    t = torch.arange(frames, dtype=torch.float32).reshape(-1, 1, 1)
    y = torch.arange(size, dtype=torch.float32).reshape(1, -1, 1)
    x = torch.arange(size, dtype=torch.float32).reshape(1, 1, -1)
    cx = (start + speed * t) % size
    dx = torch.remainder(x - cx + size / 2, size) - size / 2  # wrapped distance
    blob = torch.exp(-(dx**2 + (y - size / 2 + 0.5) ** 2) / (2 * width**2)) * 2 - 1  # (T, H, W) in [-1, 1]
    return blob.unsqueeze(0).expand(channels, -1, -1, -1).clone()


def write_moving_latents(out_dir: str | Path, n_clips: int = 64, speeds=(0.0, 1.0), frames: int = 6, size: int = 8,
                         seed: int = 0) -> Path:
    """Toy "latents" whose motion is known: a blob moving at one of `speeds` (cells/frame), motion = speed."""
    g = torch.Generator().manual_seed(seed)
    windows = []
    for i in range(n_clips):
        speed = speeds[i % len(speeds)]
        start = float(torch.rand((), generator=g)) * size
        windows.append({"mean": moving_blob(speed, frames, size, start), "std": 0.02, "motion": speed,
                        "aesthetic": None, "quality": None})
    return write_latents(out_dir, windows)


def gmm_denoiser(means: torch.Tensor, std: float, weights: torch.Tensor | None = None):
    """Exact D(x; σ) = E[y | x] for y ~ Σ_k w_k N(μ_k, s²I): a posterior-weighted shrink toward each mean."""
    means = means.flatten(1).double()  # (K, P)
    logw = (weights.double() if weights is not None else torch.full((means.shape[0],), 1 / means.shape[0],
            dtype=torch.float64)).log()

    def denoise(x, sigma, cond=None, cond_mask=None):
        shape, xf = x.shape, x.flatten(1).double()  # (N, P)
        var = std**2 + sigma.double().reshape(-1, 1) ** 2  # (N, 1): variance of x under each component
        logp = logw - ((xf.unsqueeze(1) - means) ** 2).sum(2) / (2 * var) - means.shape[1] / 2 * var.log()  # (N, K)
        r = logp.softmax(1)  # responsibilities
        post = means + (std**2 / var).unsqueeze(1) * (xf.unsqueeze(1) - means)  # (N, K, P): per-component E[y|x]
        return (r.unsqueeze(2) * post).sum(1).reshape(shape).to(x.dtype)

    return denoise


class ToyMLP(nn.Module):
    """F(x, c_noise) for flat toy data: an MLP on [x, Fourier(x), Fourier(c_noise)]; cond arguments are ignored.

    Fourier features of x (Tancik et al. 2020) matter: the EDM target for well-separated modes is a sawtooth
    in x, orthogonal to linear functions of x, and a plain MLP sits on that plateau for a long time.
    """

    def __init__(self, dim: int, hidden: int = 256, num_freqs: int = 16, x_freqs: int = 32, x_scale: float = 1.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("freqs", torch.randn(num_freqs, generator=g))
        self.register_buffer("x_freqs", torch.randn(dim, x_freqs, generator=g) * x_scale)
        self.net = nn.Sequential(nn.Linear(dim + 2 * x_freqs + 2 * num_freqs, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x, c_noise, cond=None, cond_mask=None):
        phase = 2 * math.pi * c_noise.float().unsqueeze(1) * self.freqs  # (N, F)
        px = 2 * math.pi * x.flatten(1) @ self.x_freqs  # (N, Fx)
        h = torch.cat([x.flatten(1), px.cos(), px.sin(), phase.cos(), phase.sin()], dim=1)  # (N, P + 2Fx + 2F)
        return self.net(h).reshape(x.shape)
