"""Encode manifest clips into latents: posterior mean + std per clip, in safetensors shards.

Layout under OUT (any fsspec URI):

    OUT/latents.parquet          the `latents` table (schemas/latents.py), one row per clip
    OUT/shards/*.safetensors     f"{key}.mean", f"{key}.std": float32 (T, C, H, W)
    OUT/stats.json               {"mean": [C], "std": [C], "ae_hash", "count", ...}

Incremental: clips already encoded with the same checkpoint hash and settings
are skipped. A different hash (or settings) invalidates everything: old shards,
table and stats are removed before encoding again, so a folder never mixes
autoencoders. A shard is written before the table that points to it, so a crash
leaves at worst an unreferenced shard, never a dangling row.
"""
from __future__ import annotations

import json
import logging
import posixpath
import uuid
from dataclasses import asdict, dataclass, field

import fsspec
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from tqdm import tqdm

import schemas
from training.autoencoder.model import checkpoint_hash, load_autoencoder
from training.video_frames import read_frames, resize_center_crop, sample_indices, to_tensor

log = logging.getLogger(__name__)

TABLE_FILE = "latents.parquet"
STATS_FILE = "stats.json"
SHARD_DIR = "shards"
_ROW_COLUMNS = ["clip_id", "video_id", "uri", "start_frame", "end_frame", "fps", "aesthetic", "motion", "quality"]


@dataclass(frozen=True)
class EncodeSettings:
    """What, besides the checkpoint, decides the latents; a change invalidates the folder."""

    fps: float | None = 4.0  # frames/s sampled within each clip (None = every frame)
    size: int = 256  # square center crop side, pixels (a multiple of the AE's downsampling)
    max_frames: int | None = 16  # first N sampled frames per clip (None = all)


@dataclass
class ChannelStats:
    """Running per-channel moments of z ~ posterior: E[z] = mean, E[z^2] = mean^2 + std^2."""

    n: int = 0  # latent elements per channel
    sum: list[float] = field(default_factory=list)
    sum_sq: list[float] = field(default_factory=list)

    def add(self, mean: torch.Tensor, std: torch.Tensor) -> None:  # (T, C, H, W)
        m, s = mean.double(), std.double()
        tot = m.sum(dim=(0, 2, 3))
        sq = (m.pow(2) + s.pow(2)).sum(dim=(0, 2, 3))
        if not self.sum:
            self.sum, self.sum_sq = [0.0] * len(tot), [0.0] * len(tot)
        self.sum = [a + b for a, b in zip(self.sum, tot.tolist())]
        self.sum_sq = [a + b for a, b in zip(self.sum_sq, sq.tolist())]
        self.n += m.numel() // m.shape[1]

    def merge(self, other: "ChannelStats") -> None:
        if not other.n:
            return
        if not self.sum:
            self.sum, self.sum_sq = [0.0] * len(other.sum), [0.0] * len(other.sum)
        self.sum = [a + b for a, b in zip(self.sum, other.sum)]
        self.sum_sq = [a + b for a, b in zip(self.sum_sq, other.sum_sq)]
        self.n += other.n

    def mean_std(self) -> tuple[list[float], list[float]]:
        mean = [s / self.n for s in self.sum]
        std = [max(q / self.n - m * m, 0.0) ** 0.5 for q, m in zip(self.sum_sq, mean)]
        return mean, std


def clip_frame_indices(row: dict, settings: EncodeSettings) -> list[int]:
    idx = sample_indices(int(row["start_frame"]), int(row["end_frame"]), float(row["fps"]), settings.fps)
    return idx[: settings.max_frames] if settings.max_frames else idx


@torch.no_grad()
def encode_frames(ae, frames: torch.Tensor, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of frames (T, 3, H, W) in [-1, 1] -> two float32 (T, C, h, w) on CPU."""
    means, stds = [], []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for chunk in frames.split(batch_size):
        with autocast:
            post = ae.encode(chunk.to(device)).latent_dist
        means.append(post.mean.float().cpu())
        stds.append(post.std.float().cpu())
    return torch.cat(means), torch.cat(stds)


def encode_clips_to_shard(
    ae, clips: list[dict], out_dir: str, ae_hash: str, settings: EncodeSettings, batch_size: int,
    device: torch.device, storage_options: dict | None = None,
) -> tuple[list[dict], ChannelStats, list[dict]]:
    """Encode clips (manifest rows) into one new shard; returns (latents rows, stats, failures).

    Shared by the local loop and the Ray actors. A clip that fails to decode is a
    failure record, not an exception.
    """
    tensors: dict[str, torch.Tensor] = {}
    rows, failures, stats = [], [], ChannelStats()
    shard = posixpath.join(SHARD_DIR, f"{ae_hash[:12]}-{uuid.uuid4().hex[:12]}.safetensors")
    for row in clips:
        try:
            idx = clip_frame_indices(row, settings)
            frames = resize_center_crop(to_tensor(read_frames(row["uri"], idx, storage_options)), settings.size)
        except Exception as e:  # noqa: BLE001 - errors are data
            log.warning("cannot decode clip %s (%s): %s: %s", row["clip_id"], row["uri"], type(e).__name__, e)
            failures.append({"clip_id": row["clip_id"], "uri": row["uri"], "error": f"{type(e).__name__}: {e}"})
            continue
        mean, std = encode_frames(ae, frames, batch_size, device)
        key = row["clip_id"]
        tensors[f"{key}.mean"], tensors[f"{key}.std"] = mean.contiguous(), std.contiguous()
        stats.add(mean, std)
        rows.append({
            "clip_id": row["clip_id"], "video_id": row["video_id"], "shard": shard, "key": key,
            "frame_indices": idx, "shape": list(mean.shape), "ae_hash": ae_hash,
            "aesthetic": row.get("aesthetic"), "motion": row.get("motion"), "quality": row.get("quality"),
        })
    if tensors:
        _write_bytes(posixpath.join(out_dir, shard), st_save(tensors), storage_options)
    return rows, stats, failures


def _write_bytes(uri: str, data: bytes, storage_options: dict | None) -> None:
    """Write next to the destination, then rename: readers never see half a file."""
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    tmp = posixpath.join(posixpath.dirname(path), f".tmp-{uuid.uuid4().hex}")
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


class LatentStore:
    """The latents folder: what is done, invalidation on a new hash, and atomic commits of table + stats."""

    def __init__(self, out_dir: str, ae_hash: str, settings: EncodeSettings, storage_options: dict | None = None):
        self.out_dir, self.ae_hash, self.settings = out_dir.rstrip("/"), ae_hash, settings
        self.storage_options = storage_options
        self.fs, self.root = fsspec.core.url_to_fs(self.out_dir, **(storage_options or {}))
        self.rows: list[dict] = []
        self.stats = ChannelStats()
        self.invalidated = False
        old = self._read_stats()
        if old is not None:
            same = old.get("ae_hash") == ae_hash and old.get("settings") == asdict(settings)
            if same:
                self.rows = schemas.read_table(self._uri(TABLE_FILE), "latents", storage_options).to_pylist()
                acc = old.get("accumulators", {})
                self.stats = ChannelStats(acc.get("n", 0), acc.get("sum", []), acc.get("sum_sq", []))
            else:
                self._clear()
                self.invalidated = True
        elif self.fs.exists(posixpath.join(self.root, TABLE_FILE)):
            self._clear()  # a table without stats is an interrupted first commit: start over
            self.invalidated = True

    def _uri(self, name: str) -> str:
        return posixpath.join(self.out_dir, name)

    def _read_stats(self) -> dict | None:
        p = posixpath.join(self.root, STATS_FILE)
        if not self.fs.exists(p):
            return None
        with self.fs.open(p, "rb") as f:
            return json.loads(f.read())

    def _clear(self) -> None:
        log.info("latents in %s were made by another autoencoder or settings: removing them", self.out_dir)
        for name in (TABLE_FILE, STATS_FILE):
            p = posixpath.join(self.root, name)
            if self.fs.exists(p):
                self.fs.rm(p)
        shards = posixpath.join(self.root, SHARD_DIR)
        if self.fs.exists(shards):
            self.fs.rm(shards, recursive=True)

    @property
    def done(self) -> set[str]:
        return {r["clip_id"] for r in self.rows}

    def add(self, rows: list[dict], stats: ChannelStats) -> None:
        self.rows.extend(rows)
        self.stats.merge(stats)

    def commit(self) -> None:
        """Rewrite the table, then stats.json (stats' `count` says how many rows it covers)."""
        table = schemas.table_from_rows(self.rows, schemas.latents_schema, "latents")
        schemas.write_table(table, "latents", self._uri(TABLE_FILE), self.storage_options)
        mean, std = self.stats.mean_std() if self.stats.n else ([], [])
        stats = {
            "mean": mean, "std": std, "ae_hash": self.ae_hash,
            "count": len(self.rows),  # clips
            "num_frames": sum(r["shape"][0] for r in self.rows),  # latent frames
            "settings": asdict(self.settings),
            "accumulators": asdict(self.stats),  # for incremental updates
        }
        _write_bytes(self._uri(STATS_FILE), json.dumps(stats, indent=2).encode(), self.storage_options)


def manifest_rows(manifest_uri: str, table: str = "curated", storage_options: dict | None = None,
                  max_clips: int | None = None) -> list[dict]:
    """Manifest rows sorted by clip_id; `max_clips` keeps the first N, a deterministic random sample
    (clip ids are hashes), e.g. an uncurated set of the curated set's size for the ablation."""
    t = schemas.read_table(manifest_uri, table, storage_options)
    return sorted(t.select(_ROW_COLUMNS).to_pylist(), key=lambda r: r["clip_id"])[:max_clips]


def encode_manifest(
    manifest_uri: str,
    checkpoint: str,
    out_dir: str,
    *,
    fps: float | None = 4.0,
    size: int = 256,
    max_frames: int | None = 16,
    batch_size: int = 16,
    clips_per_shard: int = 64,
    device: str = "auto",
    use_ema: bool = True,
    table: str = "curated",
    storage_options: dict | None = None,
    progress: bool = True,
    max_clips: int | None = None,
) -> dict:
    """Encode every clip of the manifest not yet encoded with this checkpoint; return a summary dict."""
    ae_hash = checkpoint_hash(checkpoint)
    settings = EncodeSettings(fps, size, max_frames)
    store = LatentStore(out_dir, ae_hash, settings, storage_options)
    rows = manifest_rows(manifest_uri, table, storage_options, max_clips)
    todo = [r for r in rows if r["clip_id"] not in store.done]
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    failures: list[dict] = []
    if todo:
        ae = load_autoencoder(checkpoint, use_ema=use_ema).to(dev)
        bar = tqdm(total=len(todo), disable=not progress, desc="encode", unit="clip")
        for i in range(0, len(todo), clips_per_shard):
            chunk = todo[i : i + clips_per_shard]
            new_rows, stats, failed = encode_clips_to_shard(
                ae, chunk, out_dir, ae_hash, settings, batch_size, dev, storage_options
            )
            store.add(new_rows, stats)
            failures.extend(failed)
            store.commit()
            bar.update(len(chunk))
        bar.close()
    elif store.invalidated or not store.rows:
        store.commit()
    return encode_summary(ae_hash, rows, todo, failures, store, out_dir)


def encode_summary(ae_hash: str, rows: list, todo: list, failures: list, store: "LatentStore", out_dir: str) -> dict:
    """What an encode call did, for the CLI and the caller (local and Ray encoders alike)."""
    return {
        "ae_hash": ae_hash,
        "clips": len(rows),
        "encoded": len(todo) - len(failures),
        "skipped": len(rows) - len(todo),
        "failed": failures,
        "invalidated": store.invalidated,
        "out_dir": out_dir,
    }


def read_latents(out_dir: str, row: dict, storage_options: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of one latents-table row, each (T, C, H, W)."""
    with fsspec.open(posixpath.join(out_dir, row["shard"]), "rb", **(storage_options or {})) as f:
        tensors = st_load(f.read())
    return tensors[f"{row['key']}.mean"], tensors[f"{row['key']}.std"]
