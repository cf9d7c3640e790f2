"""Toy problems with known answers: a Gaussian-mixture "latent" dataset written in the real latents
contract, its exact (analytic) denoiser, and a small MLP denoiser. Used by tests, the bench and the
ablation demo; nothing here is needed for real training.
"""
import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from schemas import latents_schema, table_from_rows, write_table


def mode_patterns(k: int = 4, shape=(2, 4, 4), seed: int = 0) -> torch.Tensor:
    """k well-separated ±1 patterns of `shape`: the means of the mixture, (k, C, H, W)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (k, *shape), generator=g).float() * 2 - 1


def write_gmm_latents(out_dir: str | Path, n_clips: int = 64, frames: int = 4, k: int = 4, shape=(2, 4, 4),
                      within_std: float = 0.1, posterior_std: float = 0.05, junk_fraction: float = 0.0,
                      null_fraction: float = 0.0, seed: int = 0) -> Path:
    """Write a latents folder (latents.parquet, shards/, stats.json) whose frames come from a k-mode mixture.

    Clip i belongs to mode i % k and carries aesthetic = mode/(k-1) (the condition that selects a mode),
    quality = 1. `junk_fraction` of extra clips are pure N(0, 1) noise with quality 0 and a random
    aesthetic: what curation removes. `null_fraction` of clips get a null motion score.
    """
    out = Path(out_dir)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed + 1)
    modes = mode_patterns(k, shape, seed)
    tensors, rows = {}, []
    n_junk = int(round(n_clips * junk_fraction))
    for i in range(n_clips + n_junk):
        junk = i >= n_clips
        if junk:
            mean = torch.randn(frames, *shape, generator=g)
            aesthetic, quality = float(torch.rand((), generator=g)), 0.0
        else:
            m = i % k
            mean = modes[m] + within_std * torch.randn(frames, *shape, generator=g)
            aesthetic, quality = m / max(k - 1, 1), 1.0
        key = f"clip{i:05d}"
        tensors[f"{key}.mean"] = mean.contiguous()
        tensors[f"{key}.std"] = torch.full((frames, *shape), posterior_std)
        motion = None if float(torch.rand((), generator=g)) < null_fraction else float(torch.rand((), generator=g))
        rows.append({"clip_id": key, "video_id": f"video{i // 2:05d}", "shard": "shards/000.safetensors",
                     "key": key, "frame_indices": list(range(frames)), "shape": [frames, *shape],
                     "ae_hash": "toy", "aesthetic": aesthetic, "motion": motion, "quality": quality})
    save_file(tensors, str(out / "shards" / "000.safetensors"))
    write_table(table_from_rows(rows, latents_schema, "latents"), "latents", str(out / "latents.parquet"),
                schema=latents_schema)
    allm = torch.stack([v for n, v in tensors.items() if n.endswith(".mean")]).transpose(0, 2)  # (C, clips, T, H, W)
    stats = {"mean": allm.flatten(1).mean(1).tolist(), "std": allm.flatten(1).std(1).tolist(),
             "ae_hash": "toy", "count": len(rows)}
    (out / "stats.json").write_text(json.dumps(stats))
    return out


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
