"""Confidence intervals over seeds and samples: a two-level (hierarchical) percentile bootstrap (Efron & Tibshirani
1993, ch. 13; resampling clusters, then units within them, Davison & Hinkley 1997 §3.8).

A run of an ablation arm has seeds (independent trainings) and samples within each seed. One bootstrap draw picks
S seeds with replacement, then within each picked seed as many samples as it has, with replacement; a statistic is
computed on the pooled draw. Arms are paired by seed (same seed = same initialisation and batch order), so a
difference uses the same seed picks for both arms and independent sample picks.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from training.diffusion.evaluate import frechet_distance

Stat = Callable[[np.ndarray], float]  # indices into the pooled samples of one arm → a number


def _offsets(sizes: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)


def draw(sizes: Sequence[int], seeds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pooled indices of one draw: for each picked seed s, sizes[s] samples of that seed with replacement."""
    off = _offsets(sizes)
    return np.concatenate([off[s] + rng.integers(0, sizes[s], sizes[s]) for s in seeds])


def bootstrap(stats: dict[str, Stat], sizes: dict[str, Sequence[int]], n_boot: int = 1000, seed: int = 0,
              level: float = 0.95) -> dict:
    """Point estimate, percentile CI per arm and paired differences of every arm pair.

    stats: arm → statistic of pooled sample indices; sizes: arm → samples per seed (the same number of seeds in
    every arm, seed k of one arm paired with seed k of the other). Returns {"arms": {arm: {"mean", "lo", "hi"}},
    "differences": {"a - b": {"mean", "lo", "hi", "excludes_zero"}}, "n_boot", "level"}.
    """
    arms = list(stats)
    n_seeds = {len(sizes[a]) for a in arms}
    if len(n_seeds) != 1:
        raise ValueError(f"every arm needs the same number of seeds, got {[len(sizes[a]) for a in arms]}")
    s = n_seeds.pop()
    rng = np.random.default_rng(seed)
    draws = {a: np.empty(n_boot) for a in arms}
    for b in range(n_boot):
        picks = rng.integers(0, s, s)  # the same seeds for every arm: paired
        for a in arms:
            draws[a][b] = stats[a](draw(sizes[a], picks, rng))
    q = (1 - level) / 2
    point = {a: stats[a](np.arange(sum(sizes[a]))) for a in arms}
    out = {"arms": {a: {"mean": float(point[a]), "lo": float(np.quantile(draws[a], q)),
                        "hi": float(np.quantile(draws[a], 1 - q))} for a in arms},
           "differences": {}, "n_boot": n_boot, "level": level}
    for i, a in enumerate(arms):
        for b in arms[i + 1:]:
            d = draws[a] - draws[b]
            lo, hi = float(np.quantile(d, q)), float(np.quantile(d, 1 - q))
            out["differences"][f"{a} - {b}"] = {"mean": float(point[a] - point[b]), "lo": lo, "hi": hi,
                                                "excludes_zero": bool(lo > 0 or hi < 0)}
    return out


def overlap(a: dict, b: dict) -> bool:
    """True when two {"lo", "hi"} intervals overlap."""
    return a["lo"] <= b["hi"] and b["lo"] <= a["hi"]


def mean_stat(values: np.ndarray) -> Stat:
    """Mean of per-sample values (e.g. a 0/1 dropped flag: the defect rate)."""
    v = np.asarray(values, dtype=np.float64)
    return lambda idx: float(v[idx].mean())


def frechet_stat(samples: torch.Tensor, reference: torch.Tensor) -> Stat:
    """Fréchet distance of the indexed sample features (N, D) to the fixed reference features (M, D)."""
    return lambda idx: frechet_distance(samples[torch.as_tensor(idx)], reference)


def kid_stat(samples: torch.Tensor, reference: torch.Tensor) -> Stat:
    """Unbiased MMD² with KID's kernel k(x, y) = (x·y/d + 1)³ (Bińkowski et al. 2018, eq. 3) on all indexed
    samples vs the whole reference; pairs of the same original sample (a bootstrap duplicate included) are left
    out of the within-sample term, as the diagonal is in the unbiased estimator."""
    s, r = samples.double(), reference.double()
    d = s.shape[1]
    kss = ((s @ s.T / d + 1) ** 3).numpy()
    ksr = ((s @ r.T / d + 1) ** 3).numpy()
    krr = ((r @ r.T / d + 1) ** 3).numpy()
    m = len(r)
    rr = (krr.sum() - np.trace(krr)) / (m * (m - 1))

    def stat(idx: np.ndarray) -> float:
        same = idx[:, None] == idx[None, :]
        k = kss[np.ix_(idx, idx)]
        ss = k[~same].mean() if (~same).any() else 0.0
        return float(ss + rr - 2 * ksr[idx].mean())

    return stat
