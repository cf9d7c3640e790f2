"""Read frames of a clip for training: fsspec + PyAV, decoded-frame indices.

training/ may not import curation/, so this is its own small reader. Frame
numbers follow the manifest convention: 0-based indices of decoded frames,
`start_frame` inclusive, `end_frame` exclusive.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import av
import fsspec
import numpy as np
import torch
import torch.nn.functional as F


def sample_indices(start_frame: int, end_frame: int, src_fps: float, target_fps: float | None) -> list[int]:
    """Indices in [start_frame, end_frame) that resample the clip to `target_fps` (all frames if None or faster)."""
    if end_frame <= start_frame:
        return []
    if not target_fps or not src_fps or target_fps >= src_fps:
        return list(range(start_frame, end_frame))
    step = src_fps / target_fps  # source frames per target frame, > 1
    count = math.floor((end_frame - start_frame - 1) / step) + 1
    return [start_frame + int(math.floor(k * step)) for k in range(count)]


def read_frames(uri: str, indices: Sequence[int], storage_options: dict | None = None) -> np.ndarray:
    """Decode the frames at `indices` (sorted or not) of the video at `uri` as uint8 RGB (T, H, W, 3).

    Decodes sequentially from the start and stops after the last wanted frame:
    seeking by timestamp would not give exact decoded-frame indices in general.
    Raises if any index is past the end of the stream.
    """
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        raise ValueError(f"{uri}: no frame indices requested")
    last = wanted[-1]
    got: dict[int, np.ndarray] = {}
    with fsspec.open(uri, "rb", **(storage_options or {})) as f, av.open(f) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        next_wanted = 0
        for i, frame in enumerate(container.decode(stream)):
            if i == wanted[next_wanted]:
                got[i] = frame.to_ndarray(format="rgb24")
                next_wanted += 1
                if next_wanted == len(wanted):
                    break
            if i >= last:
                break
    missing = [i for i in wanted if i not in got]
    if missing:
        raise ValueError(f"{uri}: stream ended before frame(s) {missing[:5]} (decoded {len(got)} of {len(wanted)})")
    return np.stack([got[int(i)] for i in indices])


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (T, 3, H, W) in [-1, 1], the autoencoder's range."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    return x / 127.5 - 1.0


def resize_center_crop(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize (T, C, H, W) so it covers `size` (h, w), then take the center crop."""
    th, tw = (size, size) if isinstance(size, int) else size
    _, _, h, w = x.shape
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - th) // 2, (nw - tw) // 2
    return x[:, :, top : top + th, left : left + tw]


def random_resized_crop(
    x: torch.Tensor, size: int, min_scale: float, generator: torch.Generator
) -> torch.Tensor:
    """A random square crop of side in [min_scale, 1] x short side of (C, H, W), resized to size x size."""
    _, h, w = x.shape
    short = min(h, w)
    frac = min_scale + (1.0 - min_scale) * torch.rand((), generator=generator).item()
    side = max(1, int(round(short * frac)))
    top = int(torch.randint(0, h - side + 1, (), generator=generator))
    left = int(torch.randint(0, w - side + 1, (), generator=generator))
    crop = x[:, top : top + side, left : left + side].unsqueeze(0)  # (1, C, s, s)
    out = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out[0].clamp(-1.0, 1.0)
