"""Windows of manifest clips (T consecutive frames at a target fps) as a torch IterableDataset.

Split by clip across ranks and workers.

The stream of every "role" (one DataLoader worker on one rank) is a pure
function of (seed, epoch, role): each epoch the clips are shuffled with the
epoch's seed and dealt out `clips[role::num_roles]`, so no two roles see the
same clip and a rerun sees the same windows. Every sample carries its role and
its position in that stream; the trainer stores the last position per role and
hands it back through `resume_from`, which makes checkpoints resume the data
exactly (see `DataPosition`).
"""
from __future__ import annotations

import hashlib
import logging
import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch.utils.data import IterableDataset, get_worker_info

import schemas
from training.video_frames import BOX_COLUMNS, CropBox, random_resized_crop, read_frames, sample_indices, to_tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipRef:
    """The manifest columns the data loader needs."""

    clip_id: str
    uri: str
    start_frame: int
    end_frame: int
    fps: float
    box: CropBox | None = None  # the content box frames are cropped to (None: the full frame)


def is_heldout(clip_id: str, fraction: float) -> bool:
    """Deterministic train/held-out split by clip_id hash (same answer in every process)."""
    if fraction <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "big")
    return h / 2**64 < fraction


def load_clips(
    manifest: str, table: str = "curated", holdout_fraction: float = 0.0, heldout: bool = False,
    storage_options: dict | None = None,
) -> list[ClipRef]:
    """Clips of a manifest (through schemas/), sorted by clip_id; the train or the held-out part."""
    t = schemas.read_table(manifest, table, storage_options=storage_options)
    base = ["clip_id", "uri", "start_frame", "end_frame", "fps"]
    geometry = [c for c in ("width", "height", *BOX_COLUMNS) if c in t.column_names]  # absent: a manifest without boxes
    clips = [ClipRef(**{k: c[k] for k in base}, box=CropBox.from_row(c)) for c in t.select(base + geometry).to_pylist()
             if is_heldout(c["clip_id"], holdout_fraction) == heldout]
    return sorted(clips, key=lambda c: c.clip_id)


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big") & ((1 << 63) - 1)


@dataclass
class DataPosition:
    """Where each role's stream is: role -> (epoch, plan index, windows of that visit already consumed).

    `worker_offset` rotates the worker roles on resume: a DataLoader hands out
    batches round-robin from worker 0, so after B batches the next batch must
    come from role B % num_workers.
    """

    next: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    worker_offset: int = 0

    def to_dict(self) -> dict:
        return {"next": {str(k): list(v) for k, v in self.next.items()}, "worker_offset": self.worker_offset}

    @classmethod
    def from_dict(cls, d: dict) -> "DataPosition":
        return cls({int(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in d["next"].items()}, int(d["worker_offset"]))


class ClipWindows(IterableDataset):
    """Random crops of windows of `clip_frames` consecutive frames at `fps`, `windows_per_clip` per clip visit.

    Frames are cropped to the clip's content box (`ClipRef.box`) before the random crop, so bars are never trained on.

    Yields dicts: video (3, T, size, size) float in [-1, 1] (one crop for the whole window);
    role, epoch, index, window (ints: the sample's place in its role's stream); clip (index
    into `self.clips`). T = 1 gives single frames, the 2-D autoencoder's images.
    A clip that fails to decode is logged, counted in `num_failed` (shared across
    worker processes) and skipped; the run goes on.
    """

    def __init__(
        self,
        clips: list[ClipRef],
        size: int,
        fps: float | None = 8.0,
        clip_frames: int = 17,
        windows_per_clip: int = 2,
        min_crop_scale: float = 0.5,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        epochs: int | None = None,
        storage_options: dict | None = None,
    ):
        self.clips = clips
        self.size, self.fps, self.min_crop_scale = size, fps, min_crop_scale
        self.clip_frames, self.windows_per_clip = clip_frames, windows_per_clip
        self.seed, self.epochs = seed, epochs  # epochs=None: an endless stream
        if rank is None or world_size is None:
            dist = torch.distributed
            ok = dist.is_available() and dist.is_initialized()
            rank, world_size = (dist.get_rank(), dist.get_world_size()) if ok else (0, 1)
        self.rank, self.world_size = rank, world_size
        self.storage_options = storage_options
        self.position = DataPosition()
        # A shared counter: DataLoader workers are separate processes.
        self._failed = multiprocessing.get_context("fork").Value("i", 0)

    @property
    def num_failed(self) -> int:
        """Clip decodes that failed so far (all workers of this process)."""
        return self._failed.value

    def resume_from(self, position: DataPosition) -> None:
        self.position = position

    def epoch_plan(self, epoch: int, role: int, num_roles: int) -> list[ClipRef]:
        """The clips this role visits in `epoch`, in order."""
        g = torch.Generator().manual_seed(_seed(self.seed, epoch))
        order = torch.randperm(len(self.clips), generator=g).tolist()
        return [self.clips[i] for i in order[role::num_roles]]

    def _role(self) -> tuple[int, int]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        worker = (worker + self.position.worker_offset) % workers
        return self.rank * workers + worker, self.world_size * workers

    def __iter__(self) -> Iterator[dict]:
        role, num_roles = self._role()
        epoch, start, skip = self.position.next.get(role, (0, 0, 0))
        index_of = {c.clip_id: i for i, c in enumerate(self.clips)}
        while self.epochs is None or epoch < self.epochs:
            plan = self.epoch_plan(epoch, role, num_roles)
            if not plan:
                return  # more roles than clips: this role has nothing to do
            for index in range(start, len(plan)):
                clip = plan[index]
                try:
                    windows = self._load(clip, epoch)
                except Exception as e:  # noqa: BLE001 - a bad clip must not stop training
                    with self._failed.get_lock():
                        self._failed.value += 1
                    log.warning("skipping clip %s (%s): %s: %s", clip.clip_id, clip.uri, type(e).__name__, e)
                    continue
                for window, video in enumerate(windows):
                    if index == start and window < skip:
                        continue  # consumed before the checkpoint
                    yield {
                        "video": video, "role": role, "epoch": epoch, "index": index, "window": window,
                        "clip": index_of[clip.clip_id],
                    }
            epoch, start, skip = epoch + 1, 0, 0

    def _load(self, clip: ClipRef, epoch: int) -> list[torch.Tensor]:
        """Decode `windows_per_clip` random windows of one clip (one decode), random-crop each window as a whole.

        Deterministic per (seed, epoch, clip).
        """
        g = torch.Generator().manual_seed(_seed(self.seed, epoch, clip.clip_id))
        candidates = sample_indices(clip.start_frame, clip.end_frame, clip.fps, self.fps)
        t = self.clip_frames
        if len(candidates) < t:
            raise ValueError(f"{len(candidates)} frames at {self.fps} fps, fewer than a window of {t}")
        starts = torch.randint(0, len(candidates) - t + 1, (self.windows_per_clip,), generator=g).tolist()
        wanted = sorted({candidates[s + k] for s in starts for k in range(t)})
        frames = read_frames(clip.uri, wanted, self.storage_options, clip.box)  # (F, H, W, 3), inside the content box
        frames = dict(zip(wanted, to_tensor(frames)))  # (3, H, W) each
        out = []
        for s in starts:
            x = torch.stack([frames[candidates[s + k]] for k in range(t)])  # (T, 3, H, W)
            crop = random_resized_crop(x.flatten(0, 1), self.size, self.min_crop_scale, g)  # (T·3, size, size)
            out.append(crop.unflatten(0, (t, 3)).transpose(0, 1))  # (3, T, size, size)
        return out


def advance(position: DataPosition, batch: dict, num_workers: int) -> DataPosition:
    """The position after the trainer consumed `batch` (with a DataLoader, one batch comes from one role)."""
    nxt = dict(position.next)
    keys = zip(batch["role"].tolist(), batch["epoch"].tolist(), batch["index"].tolist(), batch["window"].tolist())
    for role, epoch, index, window in keys:
        after = (epoch, index, window + 1)  # a batch may end inside a clip visit
        if role not in nxt or after > nxt[role]:
            nxt[role] = after
    offset = (position.worker_offset + 1) % max(num_workers, 1)
    return DataPosition(nxt, offset)
