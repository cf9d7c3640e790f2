"""Samples as media: mp4 files (PyAV) and a contact sheet (one row of frames per sample, PNG)."""
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch


def to_uint8_frames(clip: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] → (T, H, W, 3) uint8."""
    a = ((clip.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (3, T, H, W)
    return a.permute(1, 2, 3, 0).numpy()  # (T, H, W, 3)


def write_mp4(clip: torch.Tensor, path: str | Path, fps: float = 8.0, codec: str = "libx264", crf: int = 18) -> Path:
    """Write a (3, T, H, W) clip in [-1, 1] as an mp4 (yuv420p; odd sides are padded by one pixel, as 4:2:0 needs).

    codec: libx264 (CRF `crf`) or mpeg4 (qscale 2) where the local FFmpeg has no libx264.
    """
    import av

    frames = to_uint8_frames(clip)
    t, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # even sides for 4:2:0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf)} if codec == "libx264" else {"qscale": "2"}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(stream.encode(None))  # flush
    return path


def save_contact_sheet(videos: torch.Tensor, path: str | Path, max_frames: int = 8, value_range=(-1.0, 1.0)) -> Path:
    """One PNG: sample i is row i, its frames left to right (at most `max_frames`, evenly spaced in time).

    videos: (N, C, T, H, W). C = 3 is shown as RGB in `value_range`; other C (latents) show the first 3 channels
    (or channel 0 in grey) on one percentile scale for the whole sheet, so panels stay comparable.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    a = videos.detach().float().cpu().numpy()
    n, c, t, h, w = a.shape
    keep = np.unique(np.linspace(0, t - 1, min(t, max_frames)).round().astype(int))
    a = a[:, :, keep]
    if c == 3:
        lo, hi = value_range
    else:
        a = a[:, :3] if c >= 3 else a[:, :1]
        lo, hi = np.percentile(a, 1), np.percentile(a, 99)
    a = np.clip((a - lo) / max(hi - lo, 1e-8), 0, 1)
    c, k = a.shape[1], len(keep)
    sheet = np.ones((n * (h + 1) + 1, k * (w + 1) + 1, c), np.float32)
    for i in range(n):
        for j in range(k):
            sheet[1 + i * (h + 1): 1 + i * (h + 1) + h, 1 + j * (w + 1): 1 + j * (w + 1) + w] = a[i, :, j].transpose(1, 2, 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(path, sheet[..., 0] if c == 1 else sheet, cmap="gray" if c == 1 else None)
    return path


__all__ = ["to_uint8_frames", "write_mp4", "save_contact_sheet"]
