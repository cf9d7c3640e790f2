"""Training data for the diffusion model: the `latents` table plus its safetensors shards.

One item is one fixed-length window of a clip (a row of the table): z = mean + std·ε of shape (C, T', H', W')
sampled from its stored posterior (EDM2's "store the distribution, sample at training time"), normalised per
channel with stats.json, plus the curation scores as conditions and the index of its caption. A null score is
returned as missing (mask False), which the model maps to that condition's learned null embedding; a null
caption is index -1 (no caption: the same as a caption dropped for guidance).

Rows may differ in T', H', W' (aspect buckets; images are T' = 1), so batches are drawn from one shape at a
time (`BucketBatchSampler`).
"""
import json
import posixpath
import random
from collections import Counter
from dataclasses import dataclass

import fsspec
import torch
from fsspec.implementations.local import LocalFileSystem
from safetensors import safe_open
from safetensors.torch import load as load_safetensors

from schemas import read_table

CONDITIONS: tuple[str, ...] = ("aesthetic", "motion", "quality")


@dataclass
class LatentStats:
    """Per-channel normalisation statistics of the latents (stats.json next to latents.parquet)."""

    mean: torch.Tensor  # (C,)
    std: torch.Tensor  # (C,)
    ae_hash: str | None = None
    count: int | None = None

    @classmethod
    def load(cls, latents_dir: str) -> "LatentStats":
        with fsspec.open(posixpath.join(latents_dir, "stats.json"), "r") as f:
            d = json.load(f)
        return cls(torch.tensor(d["mean"], dtype=torch.float32), torch.tensor(d["std"], dtype=torch.float32),
                   d.get("ae_hash"), d.get("count"))

    def _c(self, v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return v.reshape(-1, 1, 1, 1).to(z)  # (C, 1, 1, 1): channel axis -4 of (C, T', H', W') or (N, C, T', H', W')

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """(z - mean_c) / std_c over the channel axis (-4) of clips (C, T', H', W') or batches (N, C, T', H', W')."""
        return (z - self._c(self.mean, z)) / self._c(self.std, z)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of normalize: what the autoencoder's decoder expects."""
        return z * self._c(self.std, z) + self._c(self.mean, z)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "ae_hash": self.ae_hash, "count": self.count}


@dataclass
class CondStats:
    """Mean/std of each raw condition over the training table; conditions enter the model standardised."""

    names: tuple[str, ...]
    mean: torch.Tensor  # (K,)
    std: torch.Tensor  # (K,)

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.mean.to(raw)) / self.std.to(raw)

    def to_dict(self) -> dict:
        return {"names": list(self.names), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "CondStats":
        return cls(tuple(d["names"]), torch.tensor(d["mean"]), torch.tensor(d["std"]))


def conditions_tensor(values: dict[str, float | None], names: tuple[str, ...] = CONDITIONS):
    """Raw condition dict → (values (K,), mask (K,)); absent or None means missing."""
    raw = [values.get(k) for k in names]
    mask = torch.tensor([v is not None for v in raw])
    return torch.tensor([0.0 if v is None else float(v) for v in raw]), mask


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches of row indices that share one latent shape (C, T', H', W'): aspect and length buckets train together.

    `sample(batch_size, generator)` draws one batch (a bucket with probability ∝ its rows, then rows uniformly
    with replacement), which is what the step-seeded training loop uses; iterating gives epochs for a DataLoader
    (each bucket shuffled and cut into batches, batches shuffled; `set_epoch` as DistributedSampler has).
    """

    def __init__(self, shapes: list[tuple[int, ...]], batch_size: int, seed: int = 0, drop_last: bool = False):
        self.buckets: dict[tuple[int, ...], list[int]] = {}
        for i, shape in enumerate(shapes):
            self.buckets.setdefault(tuple(shape), []).append(i)
        self.keys = sorted(self.buckets)
        self.sizes = torch.tensor([len(self.buckets[k]) for k in self.keys], dtype=torch.float64)
        self.batch_size, self.seed, self.drop_last, self.epoch = batch_size, seed, drop_last, 0

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> list[int]:
        """One batch from one bucket (uses the global torch RNG unless a generator is given)."""
        rows = self.buckets[self.keys[int(torch.multinomial(self.sizes, 1, generator=generator))]]
        return [rows[int(j)] for j in torch.randint(len(rows), (batch_size,), generator=generator)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        out = []
        for k in self.keys:
            rows = list(self.buckets[k])
            rng.shuffle(rows)
            out += [rows[i:i + self.batch_size] for i in range(0, len(rows), self.batch_size)
                    if not self.drop_last or i + self.batch_size <= len(rows)]
        rng.shuffle(out)
        return out

    def __iter__(self):
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


class _Mapped:
    """dict-style access to a memory-mapped safetensors file."""

    def __init__(self, handle):
        self.handle = handle

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.handle.get_tensor(name)


class LatentDataset(torch.utils.data.Dataset):
    """Items: {"x": (C, T', H', W') normalised posterior sample of one window, "cond": (K,) standardised,
    "cond_mask": (K,) bool, "caption": index into `captions` (-1 = none)}."""

    def __init__(self, latents_dir: str, conditions: tuple[str, ...] = CONDITIONS,
                 storage_options: dict | None = None):
        self.dir = latents_dir.rstrip("/")
        self.storage_options = storage_options or {}
        table = read_table(posixpath.join(self.dir, "latents.parquet"), "latents", self.storage_options)
        if table.num_rows == 0:
            raise ValueError(f"no latents in {self.dir}/latents.parquet")
        self.rows = table.select(["clip_id", "shard", "key", "shape", "ae_hash", "fps"]).to_pylist()
        bad = [r["clip_id"] for r in self.rows if len(r["shape"]) != 4]
        if bad:
            raise ValueError(f"{self.dir}: latents must be (C, T', H', W') windows; clip {bad[0]} has another shape")
        self.shapes = [tuple(r["shape"]) for r in self.rows]
        channels = {s[0] for s in self.shapes}
        if len(channels) != 1:
            raise ValueError(f"{self.dir}: latents with different channel counts {sorted(channels)}")
        self.channels = channels.pop()
        self.stats = LatentStats.load(self.dir)
        self.conditions = tuple(conditions)
        raw = torch.tensor([[float("nan") if row[k] is None else row[k] for k in self.conditions]
                            for row in table.select(list(self.conditions)).to_pylist()],
                           dtype=torch.float32).reshape(len(self.rows), len(self.conditions))  # (N, K), NaN = null
        self.cond_mask = ~raw.isnan()
        mean = torch.stack([raw[m, i].mean() if m.any() else torch.tensor(0.0)
                            for i, m in enumerate(self.cond_mask.T)]) if self.conditions else torch.zeros(0)
        std = torch.stack([raw[m, i].std() if m.sum() > 1 else torch.tensor(1.0)
                           for i, m in enumerate(self.cond_mask.T)]) if self.conditions else torch.zeros(0)
        self.cond_stats = CondStats(self.conditions, mean, std.nan_to_num(1.0).clamp_min(1e-6))
        self.cond = self.cond_stats.normalize(raw.nan_to_num(0.0)) * self.cond_mask
        captions = table.column("caption").to_pylist()
        self.captions: list[str] = sorted({c for c in captions if c})  # distinct captions: each encoded once
        index = {c: i for i, c in enumerate(self.captions)}
        self.caption_idx = torch.tensor([index[c] if c else -1 for c in captions], dtype=torch.long)  # (N,)
        self._shards: dict = {}

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def common_shape(self) -> tuple[int, ...]:
        """The most frequent (C, T', H', W'); ties go to the larger clip."""
        counts = Counter(self.shapes)
        return max(counts, key=lambda s: (counts[s], s[1] * s[2] * s[3]))

    def batch_sampler(self, batch_size: int, seed: int = 0) -> BucketBatchSampler:
        return BucketBatchSampler(self.shapes, batch_size, seed)
    def _shard(self, rel: str):
        """A shard's tensors by name: memory-mapped for local files (only the tensors used are read, so
        memory does not grow with the dataset); loaded whole and kept for remote URIs."""
        if rel not in self._shards:
            fs, path = fsspec.core.url_to_fs(posixpath.join(self.dir, rel), **self.storage_options)
            if isinstance(fs, LocalFileSystem):
                handle = safe_open(path, framework="pt")
                self._shards[rel] = _Mapped(handle)
            else:
                with fs.open(path, "rb") as f:
                    self._shards[rel] = load_safetensors(f.read())
        return self._shards[rel]

    def __getstate__(self):  # picklable for DataLoader workers: open shard handles are not
        return {**self.__dict__, "_shards": {}}

    def posterior(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of window i, each (C, T', H', W')."""
        row = self.rows[i]
        shard = self._shard(row["shard"])
        return shard[f"{row['key']}.mean"], shard[f"{row['key']}.std"]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        mean, std = self.posterior(i)
        z = mean.float() + std.float() * torch.randn(mean.shape)  # z ~ N(mean, std²), (C, T', H', W')
        return {"x": self.stats.normalize(z), "cond": self.cond[i], "cond_mask": self.cond_mask[i],
                "caption": self.caption_idx[i]}

    def batch(self, indices) -> dict[str, torch.Tensor]:
        """Stack items for `indices` (one shape); uses the global torch RNG, so a seeded step draws the same batch."""
        items = [self[int(i)] for i in indices]
        shapes = {tuple(it["x"].shape) for it in items}
        if len(shapes) > 1:
            raise ValueError(f"a batch must share one latent shape, got {sorted(shapes)}: use batch_sampler()")
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def mean_windows(self, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """Posterior means, normalised, of every window of one shape (default: the most common): (N, C, T', H', W')."""
        shape = tuple(shape or self.common_shape)
        idx = [i for i, s in enumerate(self.shapes) if s == shape]
        return torch.stack([self.stats.normalize(self.posterior(i)[0].float()) for i in idx])
