"""Encode manifest clips into latents: posterior mean + std per fixed-length window, in safetensors shards.

Each clip is resampled to a target fps and cut into consecutive windows of T
frames (T = 1 + temporal_factor * k; a clip shorter than T gives one shorter
window of that form). Frames are cropped to the clip's content box (the
manifest's content_x/y/w/h: bars never reach the autoencoder) and resized to a
fixed square, or to the aspect bucket nearest the clip's `content_aspect` (its
display shape when the manifest has no box; training/buckets.py) when a bucket
area is set. Layout under OUT (any fsspec URI):

    OUT/latents.parquet          the `latents` table (schemas/latents.py), one row per window
    OUT/shards/*.safetensors     f"{key}.mean", f"{key}.std": float32 (C, T', H', W')
    OUT/stats.json               {"mean": [C], "std": [C], "ae_hash", "count", ...}

Incremental: clips already encoded with the same checkpoint hash and settings
are skipped (all windows of a clip are committed together). A different hash (or settings) invalidates everything: old shards,
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
from training.autoencoder.model import checkpoint_hash, compression, encode_video, load_autoencoder
from training.video_frames import BOX_COLUMNS, CropBox, read_frames, resize_center_crop, sample_indices, to_tensor

log = logging.getLogger(__name__)

TABLE_FILE = "latents.parquet"
STATS_FILE = "stats.json"
SHARD_DIR = "shards"
_ROW_COLUMNS = ["clip_id", "video_id", "uri", "start_frame", "end_frame", "fps", "aesthetic", "motion", "quality"]
_OPTIONAL_COLUMNS = ["caption", "width", "height", *BOX_COLUMNS, "content_aspect"]  # copied when the manifest has them


@dataclass(frozen=True)
class EncodeSettings:
    """What, besides the checkpoint, decides the latents; a change invalidates the folder."""

    fps: float | None = 8.0  # frames/s each clip is resampled to (None = every source frame)
    size: int = 256  # square center crop side, pixels (a multiple of the AE's downsampling); unused with buckets
    frames: int = 17  # frames T per window (1 + temporal_factor * k)
    max_windows: int | None = None  # first N windows per clip (None = all)
    bucket_area: int | None = None  # pixels per frame of the aspect buckets (None = the fixed square `size`)
    bucket_multiple: int = 16  # bucket sides are multiples of this many pixels
    crop_to_content: bool = True  # crop frames to the clip's content box and bucket by content_aspect (False: full frame)

    def check(self, temporal_factor: int, spatial_factor: int) -> None:
        """Fail fast on settings this autoencoder cannot encode exactly."""
        if self.frames < 1 or (self.frames - 1) % temporal_factor:
            raise ValueError(f"encode: frames must be 1 + {temporal_factor}*k for this autoencoder (got {self.frames})")
        side = self.bucket_multiple if self.bucket_area else self.size
        if side % spatial_factor:
            raise ValueError(f"encode: {'bucket_multiple' if self.bucket_area else 'size'} {side} is not a multiple "
                             f"of the autoencoder's spatial factor {spatial_factor}")


@dataclass
class ChannelStats:
    """Running per-channel moments of z ~ posterior: E[z] = mean, E[z^2] = mean^2 + std^2."""

    n: int = 0  # latent elements per channel
    sum: list[float] = field(default_factory=list)
    sum_sq: list[float] = field(default_factory=list)

    def add(self, mean: torch.Tensor, std: torch.Tensor) -> None:  # (C, T', H', W')
        m, s = mean.double(), std.double()
        tot = m.sum(dim=(1, 2, 3))
        sq = (m.pow(2) + s.pow(2)).sum(dim=(1, 2, 3))
        if not self.sum:
            self.sum, self.sum_sq = [0.0] * len(tot), [0.0] * len(tot)
        self.sum = [a + b for a, b in zip(self.sum, tot.tolist())]
        self.sum_sq = [a + b for a, b in zip(self.sum_sq, sq.tolist())]
        self.n += m.numel() // m.shape[0]

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


def clip_windows(row: dict, settings: EncodeSettings, temporal_factor: int) -> list[list[int]]:
    """Decoded-frame indices of the clip's windows: consecutive runs of `frames` frames at the target fps.

    A clip shorter than one window gives one window of the longest length 1 + temporal_factor * k it has.
    """
    idx = sample_indices(int(row["start_frame"]), int(row["end_frame"]), float(row["fps"]), settings.fps)
    t = settings.frames
    if len(idx) >= t:
        windows = [idx[i : i + t] for i in range(0, len(idx) - t + 1, t)]
    else:
        windows = [idx[: 1 + (len(idx) - 1) // temporal_factor * temporal_factor]] if idx else []
    return windows[: settings.max_windows] if settings.max_windows else windows


def encoded_fps(src_fps: float, target_fps: float | None) -> float:
    """Frames/s of the encoded frames: the target, or the source when the target is missing or faster."""
    return float(target_fps) if target_fps and target_fps < src_fps else float(src_fps)


def frame_size(h: int, w: int, settings: EncodeSettings, aspect: float | None = None) -> tuple[int, int]:
    """(height, width) the frames are resized to: the aspect bucket nearest `aspect` (w / h; default the frames'
    own w / h), or the fixed square."""
    if not settings.bucket_area:
        return settings.size, settings.size
    from training.buckets import bucket_for_aspect, make_buckets  # the reader's module (training/buckets.py)

    buckets = make_buckets(settings.bucket_area, settings.bucket_multiple)
    return tuple(bucket_for_aspect(aspect if aspect and aspect > 0 else w / h, buckets))


def resize_frames(x: torch.Tensor, size: tuple[int, int], settings: EncodeSettings) -> torch.Tensor:
    """Frames (T, 3, H, W) resized to `size`: to the bucket (training/buckets.py) or center-cropped to the square."""
    if not settings.bucket_area:
        return resize_center_crop(x, size)
    from training.buckets import resize_to_bucket

    return resize_to_bucket(x, size)


@torch.no_grad()
def check_window(ae, settings: EncodeSettings) -> None:
    """Fail fast unless a window of `settings.frames` frames encodes to exactly 1 + (T - 1) / temporal latent frames.

    Settings first, then a probe on a tiny black clip: some classes encode in fixed chunks
    (AutoencoderKLWan: the first frame, then 4 at a time) and would silently drop a remainder.
    """
    temporal, spatial = compression(ae)
    settings.check(temporal, spatial)
    mean, _ = encode_video(ae, torch.zeros(1, 3, settings.frames, 2 * spatial, 2 * spatial))
    if mean.shape[2] != 1 + (settings.frames - 1) // temporal:
        raise ValueError(f"encode: {type(ae).__name__} encodes {settings.frames} frames to {mean.shape[2]} latent "
                         f"frames, not 1 + (T - 1) / {temporal}; use frames = 1 + 4k")


@torch.no_grad()
def encode_windows(ae, clips: torch.Tensor, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of clips (N, 3, T, H, W) in [-1, 1] -> two float32 (N, C, T', H', W') on CPU."""
    means, stds = [], []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for chunk in clips.split(batch_size):
        with autocast:
            mean, std = encode_video(ae, chunk.to(device))
        means.append(mean.float().cpu())
        stds.append(std.float().cpu())
    return torch.cat(means), torch.cat(stds)


def encode_clips_to_shard(
    ae, clips: list[dict], out_dir: str, ae_hash: str, settings: EncodeSettings, batch_size: int,
    device: torch.device, storage_options: dict | None = None,
) -> tuple[list[dict], ChannelStats, list[dict]]:
    """Encode clips (manifest rows) into one new shard; returns (latents rows, stats, failures).

    Shared by the local loop and the Ray actors. A clip that fails to decode is a
    failure record, not an exception. `batch_size` counts windows per forward pass.
    """
    tensors: dict[str, torch.Tensor] = {}
    rows, failures, stats = [], [], ChannelStats()
    shard = posixpath.join(SHARD_DIR, f"{ae_hash[:12]}-{uuid.uuid4().hex[:12]}.safetensors")
    temporal, _ = compression(ae)
    for row in clips:
        try:
            windows = clip_windows(row, settings, temporal)
            if not windows:
                raise ValueError("no frames in the clip's span")
            wanted = sorted({i for w in windows for i in w})
            box = CropBox.from_row(row) if settings.crop_to_content else None  # None: no box, the full frame
            frames = to_tensor(read_frames(row["uri"], wanted, storage_options, box))  # (F, 3, H, W), in the box
            size = frame_size(frames.shape[-2], frames.shape[-1], settings, row.get("content_aspect") if box else None)
            frames = dict(zip(wanted, resize_frames(frames, size, settings)))
        except Exception as e:  # noqa: BLE001 - errors are data
            log.warning("cannot decode clip %s (%s): %s: %s", row["clip_id"], row["uri"], type(e).__name__, e)
            failures.append({"clip_id": row["clip_id"], "uri": row["uri"], "error": f"{type(e).__name__}: {e}"})
            continue
        x = torch.stack([torch.stack([frames[i] for i in w], dim=1) for w in windows])  # (W, 3, T, h, w)
        means, stds = encode_windows(ae, x, batch_size, device)  # (W, C, T', H', W')
        for n, (window, mean, std) in enumerate(zip(windows, means, stds)):
            key = f"{row['clip_id']}.w{n:04d}"
            tensors[f"{key}.mean"], tensors[f"{key}.std"] = mean.contiguous(), std.contiguous()
            stats.add(mean, std)
            rows.append({
                "clip_id": row["clip_id"], "video_id": row["video_id"], "shard": shard, "key": key, "window": n,
                "frame_indices": window, "shape": list(mean.shape), "height": size[0], "width": size[1],
                "fps": encoded_fps(float(row["fps"]), settings.fps), "ae_hash": ae_hash,
                "aesthetic": row.get("aesthetic"), "motion": row.get("motion"), "quality": row.get("quality"),
                "caption": row.get("caption"),
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
            "count": len(self.rows),  # windows (table rows)
            "clips": len(self.done),
            "num_frames": sum(r["shape"][1] for r in self.rows),  # latent frames
            "settings": asdict(self.settings),
            "accumulators": asdict(self.stats),  # for incremental updates
        }
        _write_bytes(self._uri(STATS_FILE), json.dumps(stats, indent=2).encode(), self.storage_options)


def manifest_rows(manifest_uri: str, table: str = "curated", storage_options: dict | None = None,
                  max_clips: int | None = None) -> list[dict]:
    """Manifest rows sorted by clip_id; `max_clips` keeps the first N, a deterministic random sample
    (clip ids are hashes), e.g. an uncurated set of the curated set's size for the ablation."""
    t = schemas.read_table(manifest_uri, table, storage_options)
    cols = _ROW_COLUMNS + [c for c in _OPTIONAL_COLUMNS if c in t.column_names]
    return sorted(t.select(cols).to_pylist(), key=lambda r: r["clip_id"])[:max_clips]


def encode_manifest(
    manifest_uri: str,
    checkpoint: str,
    out_dir: str,
    *,
    fps: float | None = 8.0,
    size: int = 256,
    frames: int = 17,
    max_windows: int | None = None,
    bucket_area: int | None = None,
    bucket_multiple: int = 16,
    batch_size: int = 4,
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
    settings = EncodeSettings(fps, size, frames, max_windows, bucket_area, bucket_multiple)
    ae = load_autoencoder(checkpoint, use_ema=use_ema)
    check_window(ae, settings)
    store = LatentStore(out_dir, ae_hash, settings, storage_options)
    rows = manifest_rows(manifest_uri, table, storage_options, max_clips)
    todo = [r for r in rows if r["clip_id"] not in store.done]
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    failures: list[dict] = []
    if todo:
        ae = ae.to(dev)
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
    """(mean, std) of one latents-table row, each (C, T', H', W')."""
    with fsspec.open(posixpath.join(out_dir, row["shard"]), "rb", **(storage_options or {})) as f:
        tensors = st_load(f.read())
    return tensors[f"{row['key']}.mean"], tensors[f"{row['key']}.std"]
