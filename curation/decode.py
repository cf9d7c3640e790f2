"""Decode a video once, feeding the shot detector, the analysis samples and the audio meter in one pass.

Memory stays bounded: full-resolution frames live only inside the decode loop;
what is kept per frame is a timestamp, and per analysis sample (~2 fps) small
records from the consumers plus a JPEG of the sample for the model stages.
"""
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import av
from av.video.reformatter import VideoReformatter
import numpy as np

# Counts container opens in this process: the "decode once" property is tested on it.
DECODER_OPENS = {"count": 0}


# Demuxers of single pictures (FFmpeg names them "<codec>_pipe" when probing a file by content).
STILL_IMAGE_FORMATS = frozenset({"image2", "image2pipe"})


class DecodeError(RuntimeError):
    """The file is not a decodable video (no video stream, corrupt, zero frames)."""


@dataclass
class StreamInfo:
    container: str | None
    codec: str | None
    width: int  # as stored
    height: int
    rotation: int  # degrees, counter-clockwise display rotation from metadata
    sar: float  # sample (pixel) aspect ratio, pixel width / pixel height (1.0 = square)
    fps: float  # average frame rate from the container (may be absurd; we check)
    num_frames_meta: int | None  # frame count the container claims
    duration_meta: float | None = None  # seconds of video the container declares (stream's, else the file's)
    audio_codec: str | None = None  # first audio stream, from the probe (None = no audio stream)
    audio_sample_rate: int | None = None  # Hz
    audio_channels: int | None = None

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown: sample aspect ratio applied to the width, then rotation."""
        w, h = max(1, round(self.width * self.sar)), self.height
        return (h, w) if self.rotation in (90, 270) else (w, h)


@dataclass
class Sample:
    """An analysis frame: RGB uint8, short side ~analysis_short_side, at display geometry (SAR and rotation applied)."""

    index: int  # decoded-frame index
    t: float  # seconds
    rgb: np.ndarray
    # the decoded luma plane, uint8 (H, W) at coded geometry (before scaling, SAR and rotation), valid only
    # during the on_sample call: the coding-block grid is still on it (curation/defects.py measures blocking)
    luma: np.ndarray | None = None
    rotation: int = 0  # degrees counter-clockwise that turn `luma` to display orientation (rgb is already turned)
    sar: float = 1.0  # sample aspect ratio of `luma` (pixel width / height)
    luma_full_range: bool = False  # `luma` spans 0..255 (JPEG range); else 16..235 (video range)


@dataclass
class DecodePlan:
    sample_fps: float = 2.0  # analysis samples per second
    analysis_short_side: int = 256  # px
    detector_width: int = 256  # px, 0 = no detector frames
    threads: int = 0  # 0 = FFmpeg's choice


@dataclass
class DecodeResult:
    info: StreamInfo
    pts: list[float] = field(default_factory=list)  # seconds per decoded frame
    truncated_error: str | None = None  # set when decoding stopped early on a corrupt packet
    timing_error: str | None = None  # set when timestamps were implausible and were rebuilt
    audio_error: str | None = None  # set when the audio stream stopped decoding; the picture went on
    # per decoded frame: the codec's quantiser (H.264 QP 0..51) where the decoder exports it, else nan
    qp: list[float] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.pts)


def open_container(fileobj) -> av.container.InputContainer:
    """Open with PyAV; every decode in vidcurate goes through here (and is counted)."""
    DECODER_OPENS["count"] += 1
    try:
        return av.open(fileobj, mode="r")
    except av.FFmpegError as e:
        if _mp4_without_index(fileobj):
            raise DecodeError("truncated or index missing: an MP4 file without its index (no 'moov' box), "
                              f"usually a download or copy cut short: {_one_line(e)}") from None
        raise DecodeError(f"not a readable media file: {_one_line(e)}") from None


def _mp4_without_index(fileobj) -> bool:
    """True for an ISO-BMFF file (ftyp box first) whose top-level boxes hold no 'moov' before the file ends."""
    if not hasattr(fileobj, "seek"):
        return False
    try:
        fileobj.seek(0, os.SEEK_END)
        size, pos, seen = fileobj.tell(), 0, []
        while pos + 8 <= size and len(seen) < 10_000:
            fileobj.seek(pos)
            head = fileobj.read(16)
            box_size, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if box_size == 1 and len(head) >= 16:
                box_size = int.from_bytes(head[8:16], "big")  # 64-bit size
            elif box_size == 0:
                box_size = size - pos  # to the end of the file
            if box_size < 8:
                break
            seen.append(kind)
            pos += box_size
        fileobj.seek(0)
        return bool(seen) and seen[0] == b"ftyp" and b"moov" not in seen
    except (OSError, ValueError):
        return False


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def stream_info(container, stream) -> StreamInfo:
    cc = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    return StreamInfo(
        container=container.format.name if container.format else None,
        codec=cc.name if cc else None,
        width=int(cc.width or 0),
        height=int(cc.height or 0),
        rotation=0,  # known from the first decoded frame
        sar=_sample_aspect(stream),
        fps=fps,
        num_frames_meta=int(stream.frames) if stream.frames else None,
        duration_meta=_declared_duration(container, stream),
    )


def _declared_duration(container, stream) -> float | None:
    """Seconds the container declares for the video: the stream's duration, else the file's (WebM/MKV carry only that)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE microseconds
    return None


MAX_SAR = 4.0  # a pixel wider or taller than this is broken metadata, not a real format


def _sample_aspect(stream) -> float:
    """Pixel aspect ratio as FFmpeg guesses it: the container's, else the codec's, else square."""
    for sar in (getattr(stream, "sample_aspect_ratio", None), getattr(stream.codec_context, "sample_aspect_ratio", None)):
        if sar and sar.numerator > 0 and 1 / MAX_SAR <= float(sar) <= MAX_SAR:
            return float(sar)
    return 1.0


def audio_probe(info: StreamInfo, stream) -> None:
    """Record the audio stream's codec, rate and channels in `info`."""
    cc = stream.codec_context
    if cc is None:  # a codec this FFmpeg build does not know
        info.audio_codec = "unknown"
        return
    info.audio_codec = cc.name
    info.audio_sample_rate = int(cc.sample_rate or 0) or None
    info.audio_channels = len(cc.layout.channels) if cc.layout else None


def _rotation(frame) -> int:
    """Display rotation of a frame from its display-matrix side data (0/90/180/270)."""
    try:
        return int(round(float(frame.rotation or 0) / 90.0)) * 90 % 360
    except (AttributeError, TypeError, ValueError):
        return 0


# Frame threading keeps about one decoded frame per thread in flight; at 8K that is
# 50 MB each, so a many-core worker would scale its memory with its core count.
FRAME_THREAD_BUDGET_BYTES = 128 << 20


def decode_threads(requested: int, width: int, height: int) -> int:
    """Decoder threads: the plan's count (0 = FFmpeg's choice), capped so frames in flight fit the budget."""
    frame_bytes = width * height * 3 // 2  # yuv420p
    cap = max(1, FRAME_THREAD_BUDGET_BYTES // max(frame_bytes, 1))
    want = requested or (os.cpu_count() or 1)
    if want <= cap:
        return requested  # keep 0 = FFmpeg's choice when it fits
    return cap


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def _scaled(w: int, h: int, short_side: int) -> tuple[int, int]:
    s = short_side / min(w, h)
    if s >= 1:
        return _even(w), _even(h)
    return _even(w * s), _even(h * s)


def decode(
    fileobj,
    plan: DecodePlan,
    on_detector_frame: Callable[[int, np.ndarray], None] | None = None,
    on_sample: Callable[[Sample], None] | None = None,
    on_audio: Callable[[av.AudioFrame], None] | None = None,
) -> DecodeResult:
    """Decode every frame once; call the consumers as frames arrive.

    `on_detector_frame(index, bgr)` gets every frame at `detector_width` (BGR, as
    PySceneDetect expects); `on_sample(sample)` gets frames at `sample_fps`;
    `on_audio(frame)` gets the first audio stream's decoded frames, demuxed from the
    same container (None = the audio packets are not decoded).
    """
    with open_container(fileobj) as container:
        if not container.streams.video:
            raise DecodeError("no video stream (audio-only or not a video)")
        fmt = container.format.name if container.format else ""
        if fmt in STILL_IMAGE_FORMATS or fmt.endswith("_pipe"):
            # FFmpeg opens a lone JPEG/PNG as a one-frame "video": it is a picture, not footage
            raise DecodeError(f"a still image ({fmt}), not a video")
        stream = container.streams.video[0]
        info = stream_info(container, stream)
        if info.width <= 0 or info.height <= 0:
            raise DecodeError(f"video stream has no frame size ({info.width}x{info.height})")
        stream.thread_type = "AUTO"
        # the quantiser of each frame rides along as side data (FFmpeg exports it for H.264, VP9, MPEG-1/2/4)
        stream.codec_context.options = {"export_side_data": "venc_params"}
        threads = decode_threads(plan.threads, info.width, info.height)
        if threads:
            stream.codec_context.thread_count = threads
        astream = container.streams.audio[0] if container.streams.audio else None
        if astream is not None:
            audio_probe(info, astream)
        if on_audio is None:
            astream = None
        result = DecodeResult(info=info)
        wide = info.width * info.sar  # stored width at display aspect (before rotation)
        sw, sh = _scaled(wide, info.height, plan.analysis_short_side)
        dw = plan.detector_width
        dh = _even(info.height * dw / wide) if dw else 0
        period = 1.0 / plan.sample_fps
        next_sample_t = -math.inf
        fallback_dt = 1.0 / info.fps if 0 < info.fps < MAX_FPS else 1.0 / FALLBACK_FPS
        # one reformatter per conversion, reused across frames: swscale keeps its initialised
        # context (a fresh one per frame, as frame.reformat makes, costs ~4 ms at 720p); same pixels
        det_scale, det_bgr, smp_scale, smp_rgb, smp_gray = (VideoReformatter() for _ in range(5))
        try:
            for frame in _video_frames(container, stream, astream, on_audio, result):
                index = len(result.pts)
                t = float(frame.time) if frame.time is not None else index * fallback_dt
                if result.pts and t <= result.pts[-1]:
                    t = result.pts[-1] + fallback_dt  # broken or repeated timestamps
                result.pts.append(t)
                result.qp.append(frame_qp(frame))
                if index == 0:
                    info.rotation = _rotation(frame)
                if on_detector_frame is not None and dw:
                    # scale in YUV, then convert: swscale's fused scale+convert shifts
                    # near-black pixels' hue and makes fades look like cuts
                    bgr = det_bgr.reformat(det_scale.reformat(frame, width=dw, height=dh), format="bgr24").to_ndarray()
                    on_detector_frame(index, bgr)
                if on_sample is not None and t >= next_sample_t:
                    rgb = smp_rgb.reformat(smp_scale.reformat(frame, width=sw, height=sh), format="rgb24").to_ndarray()
                    if info.rotation:
                        rgb = np.ascontiguousarray(np.rot90(rgb, k=info.rotation // 90))
                    on_sample(Sample(index=index, t=t, rgb=rgb, luma=luma_plane(frame, smp_gray),
                                     rotation=info.rotation, sar=info.sar, luma_full_range=full_range_luma(frame)))
                    next_sample_t = (t if next_sample_t == -math.inf else next_sample_t) + period
                    if next_sample_t <= t:  # a gap in time (VFR): resync on this frame
                        next_sample_t = t + period
        except av.FFmpegError as e:
            if not result.pts:
                raise DecodeError(f"no frame could be decoded: {_one_line(e)}") from None
            result.truncated_error = _one_line(e)  # decoded a prefix; the caller records it
        if not result.pts:
            raise DecodeError("the video stream holds no decodable frames")
        _check_timing(result)
        return result


H264_CODECS = frozenset({"h264"})  # decoders whose exported quantiser is H.264's QP (0..51)


def frame_qp(frame: av.VideoFrame) -> float:
    """The frame's base quantiser from its VIDEO_ENC_PARAMS side data (nan when the decoder exports none).

    Looked up by type: PyAV's side-data container iterates over its entries up to 18.1.0 and over their types
    from 18.1.1, and `get(type)` works in both."""
    data = frame.side_data.get(av.sidedata.sidedata.Type.VIDEO_ENC_PARAMS)
    return float(data.qp) if data is not None else math.nan


def full_range_luma(frame: av.VideoFrame) -> bool:
    """Whether luma_plane(frame) spans 0..255: JPEG-range YUV, or a format it converts to grey."""
    fmt = frame.format
    if getattr(fmt, "is_rgb", False) or fmt.name.startswith(("pal", "bayer", "xyz", "gray")):
        return True
    return fmt.name.startswith("yuvj") or frame.color_range == 2  # AVCOL_RANGE_JPEG


def luma_plane(frame: av.VideoFrame, gray: VideoReformatter) -> np.ndarray:
    """The frame's luma as uint8 (H, W), coded geometry: plane 0 of 8-bit YUV/grey formats without a copy
    (a view, valid while the frame lives), high bit depths shifted to 8 bits, other formats converted to grey."""
    fmt = frame.format
    first = fmt.components[0]
    if not getattr(fmt, "is_rgb", False) and first.plane == 0 and not fmt.name.startswith(("pal", "bayer", "xyz")):
        plane = frame.planes[0]
        if first.bits == 8:
            return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        if 8 < first.bits <= 16 and fmt.name.endswith("le"):
            y = np.frombuffer(plane, "<u2").reshape(plane.height, plane.line_size // 2)[:, : plane.width]
            return (y >> (first.bits - 8)).astype(np.uint8)
    return gray.reformat(frame, format="gray").to_ndarray()


MAX_FPS = 1000.0  # above this a frame rate is a broken time base, not footage
FALLBACK_FPS = 25.0


def _check_timing(result: DecodeResult) -> None:
    """Rebuild timestamps at a plausible rate when they claim more than MAX_FPS (time-base tricks)."""
    n = result.num_frames
    span = result.pts[-1] - result.pts[0]
    if n < 2 or span <= 0 or (n - 1) / span <= MAX_FPS:
        return
    claimed = (n - 1) / span
    fps = result.info.fps if 0 < result.info.fps <= MAX_FPS else FALLBACK_FPS
    result.pts = [i / fps for i in range(n)]
    result.timing_error = f"timestamps claim {claimed:.6g} frames/s (above {MAX_FPS:g}); assumed {fps:g} frames/s"


def _video_frames(container, stream, astream, on_audio, result: DecodeResult):
    """Demux video (and audio) packets once; decode audio into `on_audio`, yield video frames.

    An audio packet that fails to decode stops the audio (recorded in `result.audio_error`),
    never the picture; a damaged video packet or container raises FFmpegError as before.
    """
    if astream is None:
        yield from container.decode(stream)
        return
    for packet in container.demux(stream, astream):
        if packet.stream.index != astream.index:
            yield from packet.decode()
        elif result.audio_error is None:
            try:
                for frame in packet.decode():
                    on_audio(frame)
            except (av.FFmpegError, ValueError) as e:  # ValueError: the resampler met a changed format mid-stream
                result.audio_error = _one_line(e)


def frame_rate(result: DecodeResult) -> float:
    """Frames per second from decoded timestamps (robust to absurd metadata)."""
    n = result.num_frames
    if n >= 2:
        span = result.pts[-1] - result.pts[0]
        if span > 0:
            return (n - 1) / span
    fps = result.info.fps
    return fps if 0 < fps < MAX_FPS else FALLBACK_FPS

