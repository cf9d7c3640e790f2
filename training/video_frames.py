"""Read frames of a clip for training: fsspec + PyAV, exact decoded-frame indices, display geometry.

training/ may not import curation/, so this is its own small reader. Frame
numbers follow the manifest convention: 0-based indices of decoded frames,
`start_frame` inclusive, `end_frame` exclusive.

A clip is read by seeking: the packets of a file are demuxed once (no
decoding) into a frame table (presentation timestamps in order = decoded-frame
indices; keyframes), cached per (uri, size, mtime) in the process. A read seeks
to the keyframe at or before the first wanted frame, decodes forward and
identifies frames by their timestamps, so it returns exactly what sequential
decoding returns. Where the timestamps cannot be trusted for that (missing or
duplicate, B-frames without reordered timestamps as in AVI, a frame count that
disagrees) the reader decodes sequentially from the start instead, says so in
`ClipRead.seeked`, and logs it once per file.

Frames come out at display geometry, as FFmpeg displays them: rotation
metadata (display matrix, multiples of 90 degrees) applied, and the sample
aspect ratio applied by resizing the width (display width = width x SAR).
Given a `CropBox` (the clip's content box from the manifest), each frame is then
cropped to it, so bars never reach the model.
"""
from __future__ import annotations

import itertools
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import fsspec
import numpy as np
import torch
import torch.nn.functional as F
from av.video.reformatter import VideoReformatter

log = logging.getLogger(__name__)


def sample_indices(start_frame: int, end_frame: int, src_fps: float, target_fps: float | None) -> list[int]:
    """Indices in [start_frame, end_frame) that resample the clip to `target_fps` (all frames if None or faster)."""
    if end_frame <= start_frame:
        return []
    if not target_fps or not src_fps or target_fps >= src_fps:
        return list(range(start_frame, end_frame))
    step = src_fps / target_fps  # source frames per target frame, > 1
    count = math.floor((end_frame - start_frame - 1) / step) + 1
    return [start_frame + int(math.floor(k * step)) for k in range(count)]


@dataclass(frozen=True)
class FrameTable:
    """One file's video frames in presentation order, from its packets (demuxed, not decoded)."""

    pts: np.ndarray  # int64 (N,): pts[i] is the timestamp of decoded frame i (stream time base)
    key_pts: np.ndarray  # int64 (K,): timestamps of keyframe packets, ascending
    time_base: Fraction
    average_fps: float  # the container's average rate (0 if unknown)
    inexact: str | None  # None when seeking by timestamp is exact; else why it is not

    @property
    def num_frames(self) -> int:
        return len(self.pts)


@dataclass
class ClipRead:
    """Frames of one clip at display geometry, and how they were read."""

    frames: np.ndarray  # uint8 (T, H, W, 3), display geometry
    indices: list[int]  # decoded-frame index of each returned frame
    fps: float  # effective frame rate after resampling
    seeked: bool  # False: decoded sequentially from the start (the timestamps could not be trusted)
    decoded_frames: int = 0  # frames the decoder produced for this read (cost)
    fallback_reason: str | None = None  # why it did not seek, when it did not


_TABLES: OrderedDict[tuple, FrameTable] = OrderedDict()
_TABLES_LOCK = threading.Lock()
MAX_CACHED_FRAMES = 10_000_000  # frames over all cached tables (~8 bytes each: ~80 MB, ~90 h of 30 fps video)


class _NotExact(Exception):
    """Seeking would not reproduce sequential decoding for this file."""


def frame_table(container, stream) -> FrameTable:
    """Demux every packet of `stream` (no decoding) into a FrameTable, judging whether its timestamps allow exact seeks."""
    keys, decode_order = [], []
    all_pts_known, packets = True, 0
    for packet in container.demux(stream):
        if packet.size == 0:  # the demuxer's end-of-stream marker
            continue
        packets += 1
        if packet.pts is None:
            all_pts_known = False
            continue
        if packet.is_keyframe:
            keys.append(packet.pts)
        if packet.is_discard:  # edit-list padding: the decoder drops these frames
            continue
        decode_order.append(packet.pts)
    order = np.asarray(decode_order, dtype=np.int64)
    table_pts = np.sort(order)
    rate = stream.average_rate or stream.guessed_rate
    inexact = None
    if not packets:
        inexact = "no video packets"
    elif not all_pts_known:
        inexact = "packets without timestamps"
    elif len(np.unique(table_pts)) != len(table_pts):
        inexact = "duplicate timestamps"
    elif not keys:
        inexact = "no keyframes flagged"
    elif stream.codec_context.has_b_frames and len(order) > 2 and bool(np.all(np.diff(order) > 0)):
        # a reordering codec whose packets carry decode-order timestamps (AVI): frames cannot be told apart by pts
        inexact = "B-frames with timestamps in decode order"
    elif stream.frames and int(stream.frames) != packets:
        inexact = f"container claims {int(stream.frames)} frames, demuxed {packets}"
    return FrameTable(pts=table_pts, key_pts=np.unique(np.asarray(keys, dtype=np.int64)),
                      time_base=stream.time_base or Fraction(1, 1), average_fps=float(rate) if rate else 0.0,
                      inexact=inexact)


def _cache_key(fs, path: str, uri: str) -> tuple:
    info = fs.info(path)
    stamp = next((info[k] for k in ("mtime", "LastModified", "last_modified", "ETag", "etag", "created") if k in info), None)
    return (uri, info.get("size"), str(stamp))


def _cached_table(key: tuple, fs, path: str, uri: str) -> FrameTable:
    with _TABLES_LOCK:
        table = _TABLES.get(key)
        if table is not None:
            _TABLES.move_to_end(key)
            return table
    with fs.open(path, "rb") as f, av.open(f) as container:
        if not container.streams.video:
            raise ValueError(f"{uri}: no video stream")
        table = frame_table(container, container.streams.video[0])
    if table.inexact:
        log.warning("%s: cannot seek exactly (%s); its clips are decoded sequentially from the start", uri, table.inexact)
    _remember(key, table)
    return table


def _remember(key: tuple, table: FrameTable) -> None:
    with _TABLES_LOCK:
        _TABLES[key] = table
        _TABLES.move_to_end(key)
        while len(_TABLES) > 1 and sum(t.num_frames for t in _TABLES.values()) > MAX_CACHED_FRAMES:
            _TABLES.popitem(last=False)  # least recently used first


def clear_frame_tables() -> None:
    """Forget every cached frame table (tests, benchmarks)."""
    with _TABLES_LOCK:
        _TABLES.clear()


# ----------------------------------------------------------------------------------------------- geometry


def sample_aspect_ratio(stream) -> Fraction:
    """The stream's sample (pixel) aspect ratio, container first then codec, as FFmpeg guesses it; 1 if unknown."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar is not None and sar.numerator > 0 and sar.denominator > 0:
            return Fraction(sar)
    return Fraction(1)


def display_width(width: int, sar: Fraction) -> int:
    """Stored width to display width: width x SAR (FFmpeg keeps the height and stretches the width)."""
    return max(1, int(round(width * sar)))


def rotation_quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that bring a frame upright, from its display-matrix rotation."""
    try:
        return int(round(float(frame.rotation or 0) / 90.0)) % 4
    except (AttributeError, TypeError, ValueError):
        return 0


BOX_COLUMNS = ("content_x", "content_y", "content_w", "content_h")  # the manifest's content box, display px


@dataclass(frozen=True)
class CropBox:
    """A clip's content box (the picture inside letterbox/pillarbox/coloured bars) on a frame_w x frame_h frame."""

    x: int
    y: int
    w: int
    h: int
    frame_w: int  # display size the box was measured on (the manifest's width, height)
    frame_h: int

    @classmethod
    def from_row(cls, row: dict) -> CropBox | None:
        """The box of a manifest row; None when a box column is null or absent (older manifests: the full frame)."""
        vals = [row.get(k) for k in (*BOX_COLUMNS, "width", "height")]
        if any(v is None for v in vals) or min(int(v) for v in vals[2:]) <= 0:
            return None
        return cls(*(int(v) for v in vals))

    def slices(self, height: int, width: int) -> tuple[slice, slice]:
        """(rows, columns) of the box on a height x width frame (scaled when the frame's size differs, clamped)."""
        sx, sy = width / self.frame_w, height / self.frame_h
        x0, y0 = min(width - 1, max(0, round(self.x * sx))), min(height - 1, max(0, round(self.y * sy)))
        x1, y1 = min(width, round((self.x + self.w) * sx)), min(height, round((self.y + self.h) * sy))
        return slice(y0, max(y0 + 1, y1)), slice(x0, max(x0 + 1, x1))


class DisplayFrames:
    """Converts decoded frames to RGB at display geometry, cropped to `box`; swscale contexts are kept across frames."""

    def __init__(self, sar: Fraction, box: CropBox | None = None):
        self.sar, self.box = sar, box
        self.scale, self.rgb = VideoReformatter(), VideoReformatter()

    def __call__(self, frame) -> np.ndarray:
        w = display_width(frame.width, self.sar)
        if w != frame.width:  # scale in YUV, then convert (as curation does: swscale's fused path shifts dark hues)
            frame_ = self.scale.reformat(frame, width=w, height=frame.height, interpolation="BICUBIC")
        else:
            frame_ = frame
        rgb = self.rgb.reformat(frame_, format="rgb24").to_ndarray()  # (H, W, 3)
        k = rotation_quarter_turns(frame)
        if k:
            rgb = np.rot90(rgb, k=k)
        if self.box is not None:
            rgb = rgb[self.box.slices(*rgb.shape[:2])]
        return np.ascontiguousarray(rgb)


# -------------------------------------------------------------------------------------------------- reading


def _decode_sequential(container, stream, wanted: list[int], display: DisplayFrames) -> tuple[dict[int, np.ndarray], int]:
    """Decode from the start, counting frames; convert the wanted ones. (frames by index, frames decoded)."""
    got: dict[int, np.ndarray] = {}
    want, last, decoded = set(wanted), wanted[-1], 0
    for i, frame in enumerate(container.decode(stream)):
        decoded += 1
        if i in want:
            got[i] = display(frame)
        if i >= last:
            break
    return got, decoded


def _decode_seeking(container, stream, table: FrameTable, wanted: list[int], display: DisplayFrames) -> tuple[dict[int, np.ndarray], int]:
    """Seek to the keyframe at or before the first wanted frame, decode forward, identify frames by pts."""
    first_pts = table.pts[wanted[0]]
    key = int(table.key_pts[np.searchsorted(table.key_pts, first_pts, side="right") - 1])
    packets = container.demux(stream)
    if key > table.key_pts[0]:  # else decode from the start as it is: nothing to skip
        _prime(container, stream)
        packets = _seek_keyframe(container, stream, table, key)
    got: dict[int, np.ndarray] = {}
    want, last, decoded = set(wanted), wanted[-1], 0
    landed = expected = None
    for packet in packets:
        if landed is None and packet.size:
            landed = packet.pts
            if landed is None or landed > key or not packet.is_keyframe:
                raise _NotExact(f"seek to pts {key} landed on packet pts {landed} (keyframe: {packet.is_keyframe})")
            expected = int(np.searchsorted(table.pts, landed))  # first frame at or after the keyframe
        for frame in packet.decode():
            decoded += 1
            if frame.pts is None:
                raise _NotExact("a decoded frame has no timestamp")
            if landed is None or frame.pts < landed:
                continue  # a leading picture of an open GOP: shown before the keyframe, never wanted
            i = int(np.searchsorted(table.pts, frame.pts))
            if i != expected or i >= table.num_frames or table.pts[i] != frame.pts:
                raise _NotExact(f"decoded pts {frame.pts} is not frame {expected} of the table")
            expected = i + 1
            if i in want:
                got[i] = display(frame)
            if i >= last:
                return got, decoded
    raise _NotExact(f"the stream ended at frame {expected} of the table's {table.num_frames}")


def _seek_keyframe(container, stream, table: FrameTable, key: int, tries: int = 3):
    """Packets from a keyframe at or before pts `key`: the demuxer's seek, then skip to its next keyframe packet.

    Index-based containers (MP4, MKV) land on the keyframe itself; MPEG-TS
    seeks by byte position and may land a little after it, so on a miss we
    seek again to the keyframe before.
    """
    earlier = table.key_pts[: np.searchsorted(table.key_pts, key, side="right")][::-1][:tries]
    for target in earlier:
        container.seek(int(target), stream=stream, backward=True)
        packets = container.demux(stream)
        for packet in packets:
            if packet.size == 0:
                break  # the end of the stream: no keyframe after this seek
            if packet.is_keyframe and packet.pts is not None:
                if packet.pts <= key:
                    return itertools.chain([packet], packets)
                break  # landed after the keyframe: try the one before
    raise _NotExact(f"no seek landed on a keyframe at or before pts {key}")


def _prime(container, stream) -> None:
    """Feed the decoder the stream's first packet before seeking away from it.

    Some decoder state is set only at the start of a stream: FFmpeg's H.264
    decoder reads x264's version from an SEI in the first packet and turns on
    workarounds for old x264 bugs with it (cockatoo.mp4, 4:4:4, decodes
    differently without). The seek then flushes the frames but keeps that state.
    """
    for packet in container.demux(stream):
        if packet.size:
            try:
                packet.decode()
            except av.FFmpegError:
                pass  # a broken first packet: the consistency checks after the seek still apply
            return


def _read(uri: str, indices: Sequence[int], storage_options: dict | None, fps: float | None = None,
          span: tuple[int, int] | None = None, box: CropBox | None = None) -> ClipRead:
    """Read `indices` (or `span` resampled to `fps`) of `uri`, cropped to `box`: by seeking when its frame table
    allows, else sequentially."""
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    key = _cache_key(fs, path, uri)
    table = _cached_table(key, fs, path, uri)
    with fs.open(path, "rb") as f, av.open(f) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        src_fps = _source_fps(table, span)
        if span is not None:
            indices = sample_indices(span[0], span[1], src_fps, fps)
        wanted = sorted(set(int(i) for i in indices))
        if not wanted:
            raise ValueError(f"{uri}: no frame indices requested")
        if wanted[0] < 0:
            raise ValueError(f"{uri}: negative frame index {wanted[0]}")
        display = DisplayFrames(sample_aspect_ratio(stream), box)
        reason = table.inexact
        if reason is None and wanted[-1] >= table.num_frames:
            reason = f"frame {wanted[-1]} is past the {table.num_frames} frames demuxed"
        elif reason is None and _before_first_keyframe(table, wanted[0]):
            reason = "the clip starts before the first keyframe"
        got = None
        if reason is None:
            try:
                got, decoded = _decode_seeking(container, stream, table, wanted, display)
            except _NotExact as e:
                reason = str(e)
                log.warning("%s: cannot seek exactly (%s); decoding sequentially from now on", uri, reason)
                _remember(key, FrameTable(table.pts, table.key_pts, table.time_base, table.average_fps, reason))
    if got is None:
        with fs.open(path, "rb") as f, av.open(f) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            got, decoded = _decode_sequential(container, stream, wanted, display)
        log.debug("%s: read sequentially (%s)", uri, reason)
    missing = [i for i in wanted if i not in got]
    if missing:
        raise ValueError(f"{uri}: stream ended before frame(s) {missing[:5]} (decoded {len(got)} of {len(wanted)})")
    frames = np.stack([got[int(i)] for i in indices])
    eff_fps = src_fps if not fps or fps >= src_fps else float(fps)
    return ClipRead(frames=frames, indices=[int(i) for i in indices], fps=eff_fps, seeked=reason is None,
                    decoded_frames=decoded, fallback_reason=reason)


def _before_first_keyframe(table: FrameTable, index: int) -> bool:
    """True when frame `index` comes before the file's first keyframe (nothing to seek back to)."""
    return bool(table.pts[index] < table.key_pts[0])


def _source_fps(table: FrameTable, span: tuple[int, int] | None) -> float:
    """Frames per second over the clip's own span from its timestamps (VFR-aware), else the container's rate."""
    if span is not None and table.inexact is None and span[1] - span[0] >= 2 and span[1] <= table.num_frames:
        seconds = float((table.pts[span[1] - 1] - table.pts[span[0]]) * table.time_base)
        if seconds > 0:
            return (span[1] - 1 - span[0]) / seconds
    return table.average_fps


def read_clip(uri: str, start_frame: int, end_frame: int, fps: float | None = None,
              storage_options: dict | None = None, box: CropBox | None = None) -> ClipRead:
    """Frames [start_frame, end_frame) of the video at `uri`, resampled to `fps` (None: all), at display geometry,
    cropped to `box` when given."""
    if end_frame <= start_frame:
        raise ValueError(f"{uri}: empty clip [{start_frame}, {end_frame})")
    return _read(uri, (), storage_options, fps=fps, span=(int(start_frame), int(end_frame)), box=box)


def read_frames(uri: str, indices: Sequence[int], storage_options: dict | None = None,
                box: CropBox | None = None) -> np.ndarray:
    """Decode the frames at `indices` (any order, repeats allowed) as uint8 RGB (T, H, W, 3) at display geometry,
    cropped to `box` when given.

    Seeks when the file's timestamps allow an exact seek, else decodes
    sequentially; the frames are the same either way. Raises if any index is
    past the end of the stream.
    """
    return _read(uri, indices, storage_options, box=box).frames


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
