"""One video, one decode: probe, shot detection, motion, quality, sound, keyframes and hashes.

`scan_video` is the unit of work the pipeline runs per input file. It returns
plain rows for the videos, clips, keyframes and errors tables; it never raises
for a bad file (errors are data), only for bugs.
"""
import contextlib
import math
import hashlib
import os
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import fsspec
import numpy as np

from curation import ids
from curation.audio import AudioMeter, AudioParams
from curation.camera_motion import CameraMotionParams, classify
from curation.content_box import Bars, BoxParams, box_columns, clip_box, crop, frame_bars, rotate_bars, scale_bars
from curation.decode import DECODER_OPENS, H264_CODECS, DecodeError, DecodePlan, Sample, decode, frame_rate
from curation.defects import DefectParams, FrameSignals
from curation.hashes import frame_hashes
from curation.motion import MotionParams, PairMotion, aggregate_motion, pair_flow, to_gray
from curation.quality import QualityParams, aggregate_quality, black_or_blank, detail_sharpness, frame_quality
from curation.split import ShotDetector, SplitParams, clip_spans, combine_cuts, split_black_runs, uses_transnet


MIN_FLOW_SIDE_PX = 16  # analysis samples smaller than this on a side get no motion scores


@dataclass(frozen=True)
class ScanParams:
    decode: DecodePlan = field(default_factory=DecodePlan)
    split: SplitParams = field(default_factory=SplitParams)
    motion: MotionParams = field(default_factory=MotionParams)
    camera: CameraMotionParams = field(default_factory=CameraMotionParams)
    quality: QualityParams = field(default_factory=QualityParams)
    audio: AudioParams = field(default_factory=AudioParams)
    defects: DefectParams = field(default_factory=DefectParams)
    box: BoxParams = field(default_factory=BoxParams)
    keyframes_at: tuple[float, ...] = (0.1, 0.5, 0.9)  # fractions of the clip
    jpeg_quality: int = 90  # keyframe JPEGs (0..100)


@dataclass
class ScanResult:
    video: dict | None = None
    clips: list[dict] = field(default_factory=list)
    keyframes: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)  # {video_id, t, phash} per analysis sample (segment dedup)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds per scan component for this file (CPU_COMPONENTS)


@dataclass
class _SampleRecord:
    index: int
    t: float
    quality: dict
    phash: int
    jpeg: bytes  # the sample inside its content box
    size: tuple[int, int]  # (width, height) of the JPEG
    bars: Bars | None  # the sample's own bars in display-oriented plane px; None = not measurable (flat, black)
    used: Bars | None  # the bars it was measured inside (its own, else the recent samples'), same px
    plane: tuple[int, int]  # (W, H) of the plane the bars were found on


def error_row(uri: str, video_id: str | None, stage: str, error_type: str, message: str, run_id: str) -> dict:
    return {
        "uri": uri,
        "video_id": video_id,
        "stage": stage,
        "error_type": error_type,
        "message": " ".join(str(message).split())[:2000],
        "run_id": run_id,
    }


@contextlib.contextmanager
def local_copy(uri: str, storage_options: dict | None, payload: bytes | None = None) -> Iterator[tuple[str, str, int]]:
    """Yield (local path, sha256 hex, size): remote files are fetched once, hashed on the way.

    `payload` is the file's bytes when the caller had to read them itself (a process-local
    filesystem such as memory:// that a worker process cannot open).
    """
    if payload is not None:
        with tempfile.NamedTemporaryFile(suffix=os.path.splitext(uri)[1]) as tmp:
            tmp.write(payload)
            tmp.flush()
            yield tmp.name, hashlib.sha256(payload).hexdigest(), len(payload)
        return
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    if "file" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)):
        h, size = hashlib.sha256(), 0
        with open(path, "rb") as f:
            while block := f.read(8 << 20):
                h.update(block)
                size += len(block)
        yield path, h.hexdigest(), size
        return
    h, size = hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile(suffix=os.path.splitext(path)[1]) as tmp:
        with fs.open(path, "rb") as src:
            while block := src.read(8 << 20):
                h.update(block)
                size += len(block)
                tmp.write(block)
        tmp.flush()
        yield tmp.name, h.hexdigest(), size


# Where a scan's CPU goes, per file (ScanResult.cpu_s). Each component is the calling thread's CPU time
# (time.thread_time, ~1 us a reading) around the code that does it. "frame_convert" is the calling thread's
# time inside decode() outside the consumers: demuxing, audio decoding, scaling and colour conversion of the
# detector frames and samples, reading the quantiser. "decode" is the rest of the process's CPU over the
# call: FFmpeg's decoder threads, and any helper threads (OpenCV's pool, torch's) the components start.
# "transnet" is TransNetV2's calling-thread time (split.detector transnetv2 or ensemble; 0 otherwise).
CPU_COMPONENTS = ("read_hash", "decode", "frame_convert", "content_box", "shot_detector", "transnet", "defects",
                  "quality", "flow", "phash", "jpeg", "audio_vad", "clip_rows")


class CpuTally(dict):
    """Thread CPU seconds per component, accumulated: `t = tally.lap("flow", t)` adds the time since `t`."""

    def lap(self, name: str, since: float) -> float:
        now = time.thread_time()
        self[name] = self.get(name, 0.0) + (now - since)
        return now


def scan_video(uri: str, relpath: str, params: ScanParams, run_id: str, storage_options: dict | None = None,
               payload: bytes | None = None) -> ScanResult:
    """Probe, split and score one file; a bad file gives an error row, not an exception."""
    out, tally = ScanResult(), CpuTally()
    t0, cpu0, th = time.perf_counter(), time.process_time(), time.thread_time()
    with contextlib.ExitStack() as stack:
        try:
            path, digest, size = stack.enter_context(local_copy(uri, storage_options, payload))
        except (OSError, PermissionError) as e:
            out.errors.append(error_row(uri, None, "read", type(e).__name__, f"cannot read file: {e}", run_id))
            return out
        tally.lap("read_hash", th)
        src = _Source(path, uri, relpath, ids.video_id(digest, relpath), digest, size)
        if size == 0:
            out.errors.append(error_row(uri, src.video_id, "probe", "EmptyFile", "file is empty (0 bytes)", run_id))
            return out
        try:
            out = _scan_decoded(src, params, run_id, tally)
        except DecodeError as e:
            out.errors.append(error_row(uri, src.video_id, "decode", "DecodeError", str(e), run_id))
        except MemoryError:
            out.errors.append(error_row(uri, src.video_id, "decode", "MemoryError", "ran out of memory decoding this file",
                                        run_id))
        if out.video is not None:
            out.video["decode_s"] = time.perf_counter() - t0
        tally["decode"] = max(0.0, time.process_time() - cpu0 - sum(tally.values()))
        out.cpu_s = {k: tally.get(k, 0.0) for k in CPU_COMPONENTS}
        return out


@dataclass(frozen=True)
class _Source:
    """A file as it is known before decoding."""

    path: str  # local path
    uri: str
    relpath: str
    video_id: str
    digest: str  # sha256 hex
    size: int  # bytes


RECENT_BOXES = 8  # motion and per-frame signals crop to the largest picture of this many recent samples (~4 s at 2 fps)


def _sample_bars(s: Sample, box: BoxParams) -> tuple[Bars | None, tuple[int, int]]:
    """(bars in display-oriented plane px, (W, H) of that plane): found on the full-resolution decoded luma when
    there is one (exact to a pixel), else on the sample."""
    if s.luma is None:
        gray = to_gray(s.rgb)
        return frame_bars(gray, box), (gray.shape[1], gray.shape[0])
    coded = frame_bars(s.luma, box)
    h, w = s.luma.shape
    return (None if coded is None else rotate_bars(coded, s.rotation)), ((h, w) if s.rotation in (90, 270) else (w, h))


class _RecentBox:
    """The largest picture over the last few measured samples, as shares of the frame: a crop that holds still
    within a shot, and the crop of a sample whose own box cannot be measured (a dark picture meeting its bars)."""

    def __init__(self, n: int = RECENT_BOXES):
        self._shares: deque[tuple[float, float, float, float]] = deque(maxlen=n)

    def add(self, bars: Bars | None, size: tuple[int, int]) -> None:
        if bars is not None:
            w, h = size
            self._shares.append((bars[0] / h, bars[1] / h, bars[2] / w, bars[3] / w))

    def bars(self, size: tuple[int, int]) -> Bars | None:
        """The recent box in px of a (W, H) image (None before any sample was measured)."""
        if not self._shares:
            return None
        w, h = size
        t, b, l, r = np.min(np.array(self._shares), axis=0)
        return int(np.ceil(t * h)), int(np.ceil(b * h)), int(np.ceil(l * w)), int(np.ceil(r * w))

    def crop(self, img: np.ndarray) -> np.ndarray:
        return crop(img, self.bars((img.shape[1], img.shape[0])))


class _Consumers:
    """What the one decode feeds: the shot detector, TransNetV2's 48x27 frames (when configured), the per-frame defect
    signals, the content box, and the analysis samples (quality, motion, hashes, keyframe JPEG)."""

    def __init__(self, params: ScanParams, tally: CpuTally | None = None):
        self.params = params
        self.cpu = CpuTally() if tally is None else tally
        self.detector = ShotDetector(params.split)
        self.transnet = None
        if uses_transnet(params.split):
            from curation.transnet import TransNetFeeder  # torch only when configured

            self.transnet = TransNetFeeder(params.split.transnet_device)
        self.signals = FrameSignals(params.defects)
        self.samples: list[_SampleRecord] = []
        self.pairs: list[tuple[int, int, PairMotion]] = []  # (prev sample index, sample index, motion)
        self._recent = _RecentBox()
        self._prev: dict = {}

    def on_detector_frame(self, index: int, bgr: np.ndarray) -> None:
        t = time.thread_time()
        picture = self._recent.crop(bgr)
        self.detector.feed(index, bgr, picture)  # cuts on the whole frame; near-black judged on the picture
        t = self.cpu.lap("shot_detector", t)
        if self.transnet is not None:
            self.transnet.feed(index, bgr)  # resized to 48x27 from this same frame: no second decode
            t = self.cpu.lap("transnet", t)
        if self.params.defects.enabled:
            self.signals.feed_frame(index, picture)
            self.cpu.lap("defects", t)

    def on_sample(self, s: Sample) -> None:
        p, cpu, t = self.params, self.cpu, time.thread_time()
        measured, plane_size = _sample_bars(s, p.box)
        box = measured if measured is not None else self._recent.bars(plane_size)  # no box of its own: the recent one
        bars = None if box is None else scale_bars(box, plane_size, (s.rgb.shape[1], s.rgb.shape[0]))
        coded_bars = None if box is None or s.luma is None else rotate_bars(box, -s.rotation)
        t = cpu.lap("content_box", t)
        sharpness = None
        if s.luma is not None:
            sharpness = detail_sharpness(crop(s.luma, coded_bars), s.sar, s.luma_full_range, p.quality)
        quality = frame_quality(s.rgb, p.quality, bars, sharpness)
        if quality["near_black"] or quality["blank"]:
            measured = None  # a black picture's edges cannot be told from bars
        self._recent.add(measured, plane_size)
        t = cpu.lap("quality", t)
        if p.defects.enabled:
            self.signals.feed_sample(s.index, s.luma, coded_bars)
            t = cpu.lap("defects", t)
        self._motion(s)
        t = cpu.lap("flow", t)
        pic = crop(s.rgb, bars)
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(pic, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, p.jpeg_quality])
        t = cpu.lap("jpeg", t)
        hashes = frame_hashes(pic)
        cpu.lap("phash", t)
        self.samples.append(_SampleRecord(s.index, s.t, quality, hashes, jpg.tobytes(),
                                          (pic.shape[1], pic.shape[0]), measured, box, plane_size))

    def on_audio(self, meter: AudioMeter):
        """`meter.feed`, timed as the audio component."""
        def feed(frame) -> None:
            t = time.thread_time()
            meter.feed(frame)
            self.cpu.lap("audio_vad", t)
        return feed

    def _motion(self, s: Sample) -> None:
        """Optical flow from the previous sample, inside the recent box (a crop that holds still within a shot)."""
        gray, prev = self._recent.crop(to_gray(s.rgb)), self._prev
        # optical flow needs a few pixels (DIS refuses frames under 12 px): a
        # 1x1 video has no measurable motion, so its clips get null motion
        if prev and min(gray.shape[:2]) >= MIN_FLOW_SIDE_PX and prev["gray"].shape == gray.shape:
            dt = s.t - prev["t"]
            if dt > 0:
                self.pairs.append((prev["index"], s.index, pair_flow(prev["gray"], gray, dt, self.params.motion)))
        prev.update(index=s.index, t=s.t, gray=gray)


def _scan_decoded(src: _Source, params: ScanParams, run_id: str, tally: CpuTally | None = None) -> ScanResult:
    """Decode once, then turn what the consumers kept into the clips, keyframes, samples, video and error rows."""
    out, feed = ScanResult(), _Consumers(params, tally)
    meter = AudioMeter(params.audio) if params.audio.enabled else None
    opens_before = DECODER_OPENS["count"]
    consumers_before, t = sum(feed.cpu.values()), time.thread_time()
    with open(src.path, "rb") as f:
        result = decode(f, params.decode, feed.on_detector_frame, feed.on_sample, feed.on_audio(meter) if meter else None)
    consumers = sum(feed.cpu.values()) - consumers_before
    t = feed.cpu.lap("frame_convert", t)
    feed.cpu["frame_convert"] -= consumers  # the consumers' own time is theirs
    if meter is not None:
        meter.finish()
        t = feed.cpu.lap("audio_vad", t)
    fps = frame_rate(result)
    predictions = None
    if feed.transnet is not None:
        predictions = feed.transnet.predictions()  # the last, padded window
        t = feed.cpu.lap("transnet", t)
    spans = _spans(feed.detector, predictions, result.num_frames, fps, params.split)
    for i, span in enumerate(spans):
        row, keys = _clip_row(src, i, span, result, fps, feed, meter, params)
        out.clips.append(row)
        out.keyframes += [{"clip_id": row["clip_id"], "video_id": src.video_id, "position": pos, "frame_index": s.index,
                           "t": s.t, "width": s.size[0], "height": s.size[1], "jpeg": s.jpeg} for pos, s in keys]
    out.samples = [{"video_id": src.video_id, "t": s.t, "phash": int(s.phash), "regions": s.phash.regions}
                   for s in feed.samples]
    out.video = _video_row(src, result, fps, len(spans), DECODER_OPENS["count"] - opens_before, meter)
    out.errors += _decode_errors(src, result, fps, meter, run_id)
    feed.cpu.lap("clip_rows", t)
    return out


def _spans(detector: ShotDetector, transnet, n: int, fps: float, p: SplitParams) -> list:
    """Clip spans: shots (ours, TransNetV2's or both, per split.detector), long shots cut into windows, near-black
    runs as clips of their own."""
    starts, detected = combine_cuts(p, detector, transnet)
    spans = clip_spans(starts, n, fps, p.max_clip_s)
    if p.black_min_s is not None:
        spans = split_black_runs(spans, detector.black, max(1, round(p.black_min_s * fps)), detected,
                                 p.black_snap_frames)
    return spans


def _clip_row(src: _Source, i: int, span, result, fps: float, feed: _Consumers, meter: AudioMeter | None,
              params: ScanParams) -> tuple[dict, list[tuple[float, _SampleRecord]]]:
    """One clip's row of the clips table, and its keyframes."""
    pts, info = result.pts, result.info
    width, height = info.display_size
    start_s, end_s = pts[span.start], pts[span.end - 1] + 1.0 / fps
    inside = [s for s in feed.samples if span.start <= s.index < span.end]
    row = {
        "clip_id": ids.clip_id(src.video_id, span.start, span.end), "video_id": src.video_id, "uri": src.uri,
        "clip_index": i, "start_frame": span.start, "end_frame": span.end, "num_frames": span.end - span.start,
        "start_s": start_s, "end_s": end_s, "duration_s": end_s - start_s, "fps": fps, "width": width,
        "height": height, "split_reason": span.reason, "drop_reasons": [], "kept": True,
    }
    pairs = [m for a, b, m in feed.pairs if span.start <= a and b < span.end]
    row.update(aggregate_motion(pairs, params.motion))
    row["camera_motion_type"] = classify([m.move for m in pairs if m.move is not None], params.camera)
    row.update(box_columns(_clip_box(inside, (width, height)), width, height))
    row.update(aggregate_quality([s.quality for s in inside], params.quality))
    row.update(feed.signals.clip_scores(span.start, span.end, feed.detector.black, fps))
    row["qp"] = _mean_qp(result.qp[span.start : span.end]) if info.codec in H264_CODECS else None
    if meter is not None:
        row["audio_channels"] = meter.channels if meter.has_audio else 0
        row.update(meter.clip_scores(start_s, end_s))
    keys = _keyframes(inside, span.start, span.end, params.keyframes_at)
    row["phash"] = [s.phash for _, s in keys] or None
    return row, keys


def _video_row(src: _Source, result, fps: float, num_clips: int, opens: int, meter: AudioMeter | None) -> dict:
    """The file's row of the videos table."""
    info, pts = result.info, result.pts
    width, height = info.display_size
    row = {
        "video_id": src.video_id, "uri": src.uri, "relpath": src.relpath, "content_hash": src.digest,
        "file_size": src.size, "container": info.container, "codec": info.codec, "width": info.width,
        "height": info.height, "rotation": info.rotation, "sar": info.sar, "display_width": width,
        "display_height": height, "display_aspect": width / height, "fps": fps, "num_frames": result.num_frames,
        "num_frames_meta": info.num_frames_meta, "duration_s": (pts[-1] - pts[0]) + 1.0 / fps,
        "num_clips": num_clips, "decoder_opens": opens, "audio_codec": info.audio_codec,
        "audio_sample_rate": info.audio_sample_rate, "audio_channels": info.audio_channels,
    }
    if meter is not None:
        row.update(meter.video_columns(row["duration_s"], pts[0]))
    return row


def _decode_errors(src: _Source, result, fps: float, meter: AudioMeter | None, run_id: str) -> list[dict]:
    """Error rows for what decoded only in part: the audio, frames or time the container promised, the timing."""
    info, pts, n = result.info, result.pts, result.num_frames
    uri, vid, errors = src.uri, src.video_id, []
    if meter is not None and (result.audio_error or (info.audio_codec and not meter.has_audio)):
        errors.append(
            error_row(uri, vid, "audio", "AudioDecodeError",
                      f"the {info.audio_codec} audio stream stopped decoding after {meter.duration_s:.2f} s "
                      f"({result.audio_error or 'no audio frame decoded'}); the picture was processed", run_id)
        )
    missing = _frames_missing(info.num_frames_meta, n)
    if missing and not result.truncated_error:
        # a cut-off file often decodes cleanly up to where it ends: only the count tells
        errors.append(
            error_row(uri, vid, "decode", "FramesMissing",
                      f"decoded {n} of the {info.num_frames_meta} frames the container declares ({missing} missing): "
                      "the file ends early (truncated or damaged); clips cover the decoded frames", run_id)
        )
    short = _time_missing(info.duration_meta, pts[-1] - pts[0] + 1.0 / fps)
    if short and not missing and not result.truncated_error:
        # no usable frame count (WebM, MKV): the decoded end time tells instead
        errors.append(
            error_row(uri, vid, "decode", "FramesMissing",
                      f"decoded {pts[-1] - pts[0] + 1.0 / fps:.2f} s of the {info.duration_meta:.2f} s the container declares "
                      f"({short:.2f} s missing): the file ends early (truncated or damaged); clips cover the decoded frames", run_id)
        )
    if result.timing_error:
        errors.append(error_row(uri, vid, "decode", "ImplausibleFrameRate", result.timing_error, run_id))
    if result.truncated_error:
        errors.append(
            error_row(uri, vid, "decode", "PartialDecode",
                      f"stream is damaged after frame {n - 1}; clips cover the {n} frames before it: {result.truncated_error}", run_id)
        )
    return errors


def _frames_missing(declared: int | None, decoded: int) -> int:
    """Frames the container declares but the decoder never produced, beyond a small tolerance
    (declared counts of some containers are estimates; edit lists can trim a frame or two)."""
    if not declared or declared <= decoded:
        return 0
    gap = declared - decoded
    return gap if gap >= max(2, math.ceil(0.02 * declared)) else 0


def _time_missing(declared_s: float | None, decoded_s: float) -> float:
    """Seconds the container declares beyond the decoded end, beyond a tolerance (audio may outlast the picture by a
    little; a declared duration is rounded): max(1 s, 5 %)."""
    if not declared_s or declared_s <= decoded_s:
        return 0.0
    gap = declared_s - decoded_s
    return gap if gap >= max(1.0, 0.05 * declared_s) else 0.0


def _mean_qp(qp: list[float]) -> float | None:
    """Mean quantiser of the frames that exported one (None when none did)."""
    q = np.asarray(qp, np.float64)
    q = q[~np.isnan(q)]
    return float(q.mean()) if q.size else None


def _clip_box(inside: list[_SampleRecord], display: tuple[int, int]) -> Bars | None:
    """The clip's bars in display px: from the samples that measured a box, else from the boxes its samples were
    measured inside (a dark or black clip between letterboxed shots keeps their letterbox)."""
    box = clip_box([s.bars for s in inside]) or clip_box([s.used for s in inside])
    return None if box is None else scale_bars(box, inside[0].plane, display)


def _keyframes(inside: list[_SampleRecord], start: int, end: int, fractions) -> list[tuple[float, _SampleRecord]]:
    """The samples nearest each fraction of the clip (none when the clip has no sample)."""
    if not inside:
        return []
    n = end - start
    return [(f, min(inside, key=lambda s: abs(s.index - (start + f * n)))) for f in fractions]
