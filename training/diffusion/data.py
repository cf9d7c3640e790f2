"""Training data for the diffusion model: the `latents` table plus its safetensors shards.

Each item samples z = mean + std·ε from the stored posterior of one random frame of a clip (EDM2's
"store the distribution, sample at training time"), normalised per channel with stats.json, plus the
curation scores as conditions. A null score is returned as missing (mask False), which the model maps
to that condition's learned null embedding.
"""
import json
import posixpath
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

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """(z - mean_c) / std_c over the channel axis (-3)."""
        return (z - self.mean[:, None, None].to(z)) / self.std[:, None, None].to(z)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of normalize: what the autoencoder's decoder expects."""
        return z * self.std[:, None, None].to(z) + self.mean[:, None, None].to(z)

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


class _Mapped:
    """dict-style access to a memory-mapped safetensors file."""

    def __init__(self, handle):
        self.handle = handle

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.handle.get_tensor(name)


class LatentDataset(torch.utils.data.Dataset):
    """Items: {"x": (C, H, W) normalised posterior sample, "cond": (K,) standardised, "cond_mask": (K,) bool}."""

    def __init__(self, latents_dir: str, conditions: tuple[str, ...] = CONDITIONS,
                 storage_options: dict | None = None):
        self.dir = latents_dir.rstrip("/")
        self.storage_options = storage_options or {}
        table = read_table(posixpath.join(self.dir, "latents.parquet"), "latents", self.storage_options)
        if table.num_rows == 0:
            raise ValueError(f"no latents in {self.dir}/latents.parquet")
        self.rows = table.select(["clip_id", "shard", "key", "shape", "ae_hash"]).to_pylist()
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
        self._shards: dict = {}
        self.latent_shape = tuple(self.rows[0]["shape"][1:])  # (C, H, W)

    def __len__(self) -> int:
        return len(self.rows)

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
        """(mean, std) of clip i, each (T, C, H, W)."""
        row = self.rows[i]
        shard = self._shard(row["shard"])
        return shard[f"{row['key']}.mean"], shard[f"{row['key']}.std"]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        mean, std = self.posterior(i)
        t = int(torch.randint(mean.shape[0], ()))  # a random frame of the clip
        z = mean[t].float() + std[t].float() * torch.randn(mean.shape[1:])  # z ~ N(mean, std²)
        return {"x": self.stats.normalize(z), "cond": self.cond[i], "cond_mask": self.cond_mask[i]}

    def batch(self, indices) -> dict[str, torch.Tensor]:
        """Stack items for `indices`; uses the global torch RNG, so a seeded step draws the same batch."""
        items = [self[int(i)] for i in indices]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def mean_frames(self) -> torch.Tensor:
        """Every frame's posterior mean, normalised: (sum of T, C, H, W) — the reference set for evaluation."""
        return torch.cat([self.stats.normalize(self.posterior(i)[0].float()) for i in range(len(self))])
