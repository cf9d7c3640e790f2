"""Evaluation of a latent video diffusion model, all in latent space (no decoder needed), on windows
(N, C, T', H', W'):

- loss per σ bin (which noise levels the model has learned),
- a distribution distance: KID (Bińkowski et al. 2018) and Fréchet distance (Heusel et al. 2017) on the
  features of a small *fixed, randomly initialised* 3-D conv net (no pretrained video features such as I3D for
  FVD exist here, so the numbers compare runs with each other, not with published FVD/KID),
- spatial RAPSD and temporal power-law slopes of samples vs data,
- nearest-neighbour distance samples → training latents, against training → training (memorisation).
Windows of several shapes are compared within one shape: the reference set's most common bucket.
"""
import math

import numpy as np
import torch
from torch import nn

from training.diffusion.edm import _bcast, _precond
from training.spectral import fit_power_law, rapsd, temporal_psd

FEATURE_SEED = 0
FEATURE_DIM = 64


class RandomConvFeatures(nn.Module):
    """Fixed random 3-D conv net (seed FEATURE_SEED): conv3³(C→32)-GELU-conv3³ s(1,2,2)(32→64)-GELU-conv3³(64→64),
    then global mean and std pooling over (T', H', W') → 2·64 = 128 features per window (any shape; T' = 1 works).
    Random conv features preserve much of the structure of their input; they are a stand-in, stated as such,
    for a trained feature network (I3D for FVD)."""

    def __init__(self, in_channels: int):
        super().__init__()
        g = torch.Generator().manual_seed(FEATURE_SEED)
        self.net = nn.Sequential(nn.Conv3d(in_channels, 32, 3, padding=1), nn.GELU(),
                                 nn.Conv3d(32, FEATURE_DIM, 3, stride=(1, 2, 2), padding=1), nn.GELU(),
                                 nn.Conv3d(FEATURE_DIM, FEATURE_DIM, 3, padding=1))
        for m in self.net:
            if isinstance(m, nn.Conv3d):
                fan_in = m.weight[0].numel()
                m.weight.data = torch.randn(m.weight.shape, generator=g) / math.sqrt(fan_in)
                m.bias.data.zero_()
        self.requires_grad_(False).eval()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x.float())  # (N, 64, T', H'/2, W'/2)
        return torch.cat([h.mean((2, 3, 4)), h.std((2, 3, 4))], dim=1)  # (N, 128)


def kid(fa: torch.Tensor, fb: torch.Tensor, subsets: int = 20, subset_size: int = 200, seed: int = 0) -> dict:
    """Kernel Inception Distance: unbiased MMD² with k(x,y) = (x·y/d + 1)³, averaged over subsets."""
    fa, fb = fa.double(), fb.double()
    m = min(subset_size, len(fa), len(fb))
    g = torch.Generator().manual_seed(seed)
    d = fa.shape[1]
    vals = []
    for _ in range(subsets):
        a = fa[torch.randperm(len(fa), generator=g)[:m]]
        b = fb[torch.randperm(len(fb), generator=g)[:m]]
        kaa, kbb, kab = ((a @ a.T / d + 1) ** 3), ((b @ b.T / d + 1) ** 3), ((a @ b.T / d + 1) ** 3)
        off = (kaa.sum() - kaa.diag().sum() + kbb.sum() - kbb.diag().sum()) / (m * (m - 1))
        vals.append((off - 2 * kab.mean()).item())
    return {"kid": float(np.mean(vals)), "kid_std": float(np.std(vals)), "subset_size": m, "subsets": subsets}


def frechet_distance(fa: torch.Tensor, fb: torch.Tensor) -> float:
    """‖μ_a - μ_b‖² + tr(Σ_a + Σ_b - 2(Σ_a^½ Σ_b Σ_a^½)^½) between Gaussian fits of two feature sets."""
    fa, fb = fa.double(), fb.double()
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    ca, cb = torch.cov(fa.T), torch.cov(fb.T)

    def sqrtm_psd(m):
        w, v = torch.linalg.eigh((m + m.T) / 2)
        return (v * w.clamp_min(0).sqrt()) @ v.T

    sa = sqrtm_psd(ca)
    cross = sqrtm_psd(sa @ cb @ sa)
    return float(((mu_a - mu_b) ** 2).sum() + torch.trace(ca) + torch.trace(cb) - 2 * torch.trace(cross))


def nearest_neighbour(samples: torch.Tensor, train: torch.Tensor) -> dict:
    """Mean L2 (RMS per element) distance samples → nearest training latent, and training → nearest other
    training latent; a ratio ≪ 1 means samples sit closer to training points than those do to each other."""
    s, t = samples.flatten(1).double(), train.flatten(1).double()
    d_st = torch.cdist(s, t).min(1).values
    d_tt = torch.cdist(t, t)
    d_tt.fill_diagonal_(float("inf"))
    d_tt = d_tt.min(1).values
    scale = math.sqrt(s.shape[1])
    return {"samples_to_train": float(d_st.mean() / scale), "train_to_train": float(d_tt.mean() / scale),
            "ratio": float(d_st.mean() / d_tt.mean())}


@torch.no_grad()
def loss_per_sigma(denoiser, x: torch.Tensor, cond=None, cond_mask=None, edges=(0.002, 0.02, 0.1, 0.5, 2.0, 10.0, 80.0),
                   seed: int = 0) -> list[dict]:
    """Weighted denoising loss λ(σ)‖D(y+σn; σ) - y‖² per σ bin, σ log-uniform within each bin, on latents x."""
    g = torch.Generator().manual_seed(seed)
    out = []
    p = _precond(denoiser)
    for lo, hi in zip(edges[:-1], edges[1:]):
        u = torch.rand(x.shape[0], generator=g)
        sigma = (math.log(lo) + u * (math.log(hi) - math.log(lo))).exp()
        n = torch.randn(x.shape, generator=g)
        d = denoiser(x + _bcast(sigma, x) * n, sigma, cond, cond_mask)
        loss = (_bcast(p.weight(sigma), x) * (d - x) ** 2).flatten(1).mean(1)
        out.append({"sigma_lo": lo, "sigma_hi": hi, "loss": float(loss.mean()), "n": int(x.shape[0])})
    return out


def rapsd_slope(x: torch.Tensor) -> float | None:
    """Power-law exponent α of the spatial RAPSD (P ∝ f^-α) of (..., H, W) latents; None below 3 frequency bins."""
    f, p = rapsd(x.detach().double().cpu().numpy())
    return fit_power_law(f, p)["alpha"]


def temporal_slope(x: torch.Tensor) -> float | None:
    """Power-law exponent α_t of the temporal spectrum of (N, C, T', H', W') latents; None below 3 bins (T' < 6)."""
    if x.shape[-3] < 3:
        return None
    f, p = temporal_psd(x.detach().double().cpu().numpy())
    return fit_power_law(f, p)["alpha"]


def distribution_metrics(samples: torch.Tensor, reference: torch.Tensor, train: torch.Tensor | None = None,
                         seed: int = 0) -> dict:
    """KID, Fréchet distance (random-conv features), RAPSD slopes and NN distances of samples vs reference."""
    feats = RandomConvFeatures(samples.shape[1])
    fs, fr = feats(samples), feats(reference)
    out = {"n_samples": int(len(samples)), "n_reference": int(len(reference)),
           "features": f"RandomConvFeatures(seed={FEATURE_SEED}, dim={2 * FEATURE_DIM})",
           **kid(fs, fr, seed=seed), "frechet": frechet_distance(fs, fr),
           "rapsd_alpha_samples": rapsd_slope(samples), "rapsd_alpha_reference": rapsd_slope(reference),
           "temporal_alpha_samples": temporal_slope(samples), "temporal_alpha_reference": temporal_slope(reference)}
    out["nearest_neighbour"] = nearest_neighbour(samples, train if train is not None else reference)
    return out


def evaluate_checkpoint(checkpoint: str, reference_dir: str, train_dir: str | None = None, n_samples: int = 256,
                        steps: int = 32, sampler: str = "heun", max_reference: int = 2000, seed: int = 0) -> dict:
    """All metrics for one checkpoint against a reference latents folder (unconditional samples).

    Samples are drawn at the reference's most common window shape (C, T', H', W') and compared with the reference
    windows of that shape. They are mapped back to raw latents with the checkpoint's stats and compared in the
    reference's normalisation, so models trained on differently normalised sets are comparable.
    """
    from training.diffusion.data import LatentDataset
    from training.diffusion.samplers import sample
    from training.diffusion.train import latent_stats_of, load_checkpoint

    net, ck = load_checkpoint(checkpoint)
    own = latent_stats_of(ck)
    ref = LatentDataset(reference_dir, tuple(ck["config"]["conditions"]))
    g = torch.Generator().manual_seed(seed)
    shape = ref.common_shape
    ref_raw = ref.stats.denormalize(ref.mean_windows(shape))
    ref_raw = ref_raw[torch.randperm(len(ref_raw), generator=g)[:max_reference]]
    z = sample(net, shape, n_samples, steps=steps, sampler=sampler, generator=g)
    samples = ref.stats.normalize(own.denormalize(z))
    tr = LatentDataset(train_dir, tuple(ck["config"]["conditions"])) if train_dir is not None else None
    own_train = tr is not None and shape in tr.shapes  # else the training set has no windows of this shape
    if own_train:
        train = ref.stats.normalize(tr.stats.denormalize(tr.mean_windows(shape)))[:max_reference]
    else:
        train = ref.stats.normalize(ref_raw)
    metrics = distribution_metrics(samples, ref.stats.normalize(ref_raw), train, seed=seed)
    metrics["nearest_neighbour"]["train_set"] = "train" if own_train else "reference"
    metrics["loss_per_sigma"] = loss_per_sigma(net, own.normalize(ref_raw), seed=seed)
    metrics["sampler"] = {"name": sampler, "steps": steps}
    metrics["window_shape"] = list(shape)
    return metrics
