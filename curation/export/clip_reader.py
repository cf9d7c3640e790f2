"""Exact frames of a clip: seek to the keyframe at or before it, decode forward, match frames by pts.

Frame numbers are 0-based decoded-frame indices, as in curation.decode, and a
reader that seeks must return exactly what sequential decoding returns. A packet
index (demuxed once, nothing decoded) says which presentation timestamp the i-th
decoded frame carries. When it cannot say (a packet without pts, repeated pts, a
packet count that differs from the frames the scan decoded), or when the frames
decoded after a seek do not carry the expected pts, the reader decodes
sequentially from the start of the file instead, and says so in `method`.
"""
import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av

from curation.decode import DecodeError, decode_threads, open_container


class FrameMismatch(RuntimeError):
    """Frames decoded after a seek are not the ones the packet index promised."""


@dataclass
class PacketIndex:
    pts: list[int]  # presentation timestamps in decoded order (ascending), stream time base
    keyframes: list[int]  # decoded-frame indices of keyframes, ascending
    seek_ts: dict[int, int]  # keyframe index -> timestamp to seek to (its dts, else its pts)
    reliable: bool
    why: str | None = None  # why the index is not used (None when reliable)


def build_index(container, stream, expected_frames: int | None) -> PacketIndex:
    """Demux every packet of `stream` (no decoding) and map decoded-frame index -> pts."""
    packets = [(p.pts, p.dts, p.is_keyframe) for p in container.demux(stream) if p.size]
    container.seek(0)
    pts = [p[0] for p in packets]
    if not packets:
        return PacketIndex([], [], {}, False, "no video packets")
    if any(p is None for p in pts):
        return PacketIndex([], [], {}, False, "packets without pts")
    if len(set(pts)) != len(pts):
        return PacketIndex([], [], {}, False, "repeated pts")
    if expected_frames is not None and len(pts) != expected_frames:
        return PacketIndex([], [], {}, False, f"{len(pts)} packets but the scan decoded {expected_frames} frames")
    order = sorted(pts)
    rank = {p: i for i, p in enumerate(order)}
    keyframes, seek_ts = [], {}
    for p, dts, key in packets:
        if key:
            i = rank[p]
            keyframes.append(i)
            seek_ts[i] = dts if dts is not None else p
    keyframes.sort()
    if not keyframes or keyframes[0] != 0:
        return PacketIndex([], [], {}, False, "the first frame is not a keyframe")
    return PacketIndex(order, keyframes, seek_ts, True)


class ClipReader:
    """Reads spans of one video file in display order; spans read in ascending order decode each frame once."""

    def __init__(self, path: str, expected_frames: int | None = None, threads: int = 0):
        self.path = path
        self.expected_frames = expected_frames
        self.threads = threads
        self.container = None
        self.stream = None
        self._open()
        self.index = build_index(self.container, self.stream, expected_frames)
        self._rank = {p: i for i, p in enumerate(self.index.pts)}
        self.sequential = not self.index.reliable  # set for good after a mismatch
        self.why_sequential = self.index.why
        self.seeks = 0
        self._frames: Iterator | None = None  # decode iterator, positioned at self._pos
        self._pos: int | None = None  # decoded-frame index of the next frame self._frames yields
        self._seek_key = -1  # keyframe index of the last seek

    def _open(self) -> None:
        if self.container is not None:
            self.container.close()
        self.container = open_container(self.path)
        if not self.container.streams.video:
            raise DecodeError("no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        cc = self.stream.codec_context
        threads = decode_threads(self.threads, cc.width or 1, cc.height or 1)
        if threads:
            cc.thread_count = threads

    @property
    def time_base(self) -> Fraction:
        return self.stream.time_base

    @property
    def sample_aspect_ratio(self) -> Fraction | None:
        return self.stream.sample_aspect_ratio or self.stream.codec_context.sample_aspect_ratio

    @property
    def average_rate(self) -> Fraction | None:
        return self.stream.average_rate or self.stream.guessed_rate

    @property
    def method(self) -> str:
        return "sequential" if self.sequential else "seek"

    def frame_pts(self, index: int) -> int | None:
        """Pts of decoded frame `index` (stream time base), when the index is trusted."""
        return None if self.sequential else self.index.pts[index]

    def fall_back_to_sequential(self, why: str) -> None:
        """Stop trusting the index: every later read decodes from the start of the file."""
        self.sequential, self.why_sequential = True, why
        self._frames, self._pos = None, None

    def frames(self, start: int, end: int) -> Iterator[av.VideoFrame]:
        """Decoded frames start..end-1 (0-based decoded-frame indices, end exclusive).

        Raises FrameMismatch (seek mode) when the decoder disagrees with the index;
        the caller discards what it got and reads again after fall_back_to_sequential.
        """
        if not 0 <= start < end:
            raise ValueError(f"empty or negative span [{start}, {end})")
        if self.sequential:
            yield from self._sequential(start, end)
            return
        if end > len(self.index.pts):
            raise DecodeError(f"span [{start}, {end}) beyond the {len(self.index.pts)} frames of the file")
        k = self.index.keyframes[bisect.bisect_right(self.index.keyframes, start) - 1]
        if self._pos is None or not (k <= self._pos <= start):
            self._seek(k)  # decoding forward from where we are would cost more than seeking
        while self._pos < end:
            try:
                frame = next(self._frames)
            except StopIteration:
                raise FrameMismatch(f"stream ended at frame {self._pos}, before {end}") from None
            except av.FFmpegError as e:
                raise FrameMismatch(f"decoding after a seek failed: {' '.join(str(e).split())}") from None
            i = self._rank.get(frame.pts)
            if self._pos == self._seek_key and i is not None and i < self._seek_key:
                continue  # decoded after the seek but shown before the keyframe (open GOP, or an earlier keyframe)
            if i != self._pos:
                raise FrameMismatch(f"expected frame {self._pos} (pts {self.index.pts[self._pos]}), decoded pts {frame.pts}")
            self._pos += 1
            if i >= start:
                yield frame

    def _seek(self, k: int) -> None:
        self.container.seek(self.index.seek_ts[k], stream=self.stream, backward=True, any_frame=False)
        self.seeks += 1
        self._frames = self.container.decode(self.stream)
        self._pos = self._seek_key = k

    def _sequential(self, start: int, end: int) -> Iterator[av.VideoFrame]:
        if self._pos is None or self._pos > start:
            self._open()  # a fresh open: exactly the decode curation.decode does
            self._frames, self._pos = self.container.decode(self.stream), 0
        try:
            while self._pos < end:
                try:
                    frame = next(self._frames)
                except StopIteration:
                    raise DecodeError(f"the file holds {self._pos} frames, the clip ends at {end}") from None
                i = self._pos
                self._pos += 1
                if i >= start:
                    yield frame
        except av.FFmpegError as e:
            raise DecodeError(f"decoding stopped at frame {self._pos}: {' '.join(str(e).split())}") from None

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
