"""One clip to one mp4: its exact frames re-encoded (H.264, display geometry) and its audio trimmed to the same span.

Video: libx264 at the configured CRF and preset, yuv420p, rotation and sample
aspect ratio applied (square pixels, upright), sizes rounded to even numbers,
then cropped to the clip's content box when one is given (curation/export/crop.py).
Frame timestamps keep the source's spacing (VFR stays VFR) when the reader
trusts the pts; otherwise frames are spaced at the average rate.
Audio: the source's first audio track, decoded from a short pre-roll before the
clip, cut sample-accurately to [start_s, end_s) of the manifest and encoded as
AAC at the source's rate and layout (stereo when the encoder refuses the layout).
Bytes are reproducible: fixed encoder threads, bitexact flags, no timestamps of
the export's own in the file.
"""
import time
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from curation.decode import DecodeError, open_container
from curation.export.clip_reader import ClipReader, FrameMismatch
from curation.export.crop import Box, ContentBox, even_box
from curation.export.params import ExportParams

AUDIO_PREROLL_S = 0.5  # decode this much audio before the clip, so the decoder's overlap window is primed (s)
AAC_FRAME = 1024  # samples per AAC frame
VIDEO_CODEC = "libx264"


@dataclass
class ClipSpan:
    start_frame: int  # inclusive, 0-based decoded-frame index
    end_frame: int  # exclusive
    start_s: float  # manifest time of the first frame (s)
    end_s: float  # manifest time one frame after the last (s)


@dataclass
class EncodedClip:
    num_frames: int
    width: int  # px, display geometry
    height: int
    fps: float  # frames / duration of the written frames
    audio: bool  # the mp4 holds an audio track
    audio_error: str | None  # why the source's audio was not kept (None when kept or absent)
    read_method: str  # seek | sequential
    encode_s: float  # wall seconds for this clip
    crop: Box | None = None  # the content box applied, px of the display frame (None: the full frame)
    frame_width: int | None = None  # display frame the crop was taken from (px; = width without a crop)
    frame_height: int | None = None


def display_size(width: int, height: int, sar: Fraction | None, rotation: int) -> tuple[int, int]:
    """Upright, square-pixel size (even, as yuv420p needs) of a stored width x height picture."""
    w = width * float(sar) if sar and sar > 0 else float(width)
    h = float(height)
    if rotation in (90, 270):
        w, h = h, w
    return max(2, int(round(w / 2)) * 2), max(2, int(round(h / 2)) * 2)


def _rotation(frame: av.VideoFrame) -> int:
    try:
        return int(round(float(frame.rotation or 0) / 90.0)) * 90 % 360
    except (AttributeError, TypeError, ValueError):
        return 0


class PictureFilter:
    """yuv420p frames turned counter-clockwise by 90/180/270 degrees (as curation.decode turns its samples), then cropped."""

    ROTATE = {90: [("transpose", "cclock")], 180: [("hflip", None), ("vflip", None)], 270: [("transpose", "clock")]}

    def __init__(self, rotation: int, crop: Box | None, width: int, height: int, time_base: Fraction):
        """`width` x `height`: the frames pushed (before rotation); `crop` in px of the rotated frame, even."""
        steps = list(self.ROTATE.get(rotation, []))
        if crop is not None:
            steps.append(("crop", f"w={crop.w}:h={crop.h}:x={crop.x}:y={crop.y}:exact=1"))
        self.graph = av.filter.Graph()
        node = self.graph.add_buffer(width=width, height=height, format="yuv420p", time_base=time_base)
        for name, arg in steps:
            nxt = self.graph.add(name, arg) if arg else self.graph.add(name)
            node.link_to(nxt)
            node = nxt
        sink = self.graph.add("buffersink")
        node.link_to(sink)
        self.graph.configure()

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        self.graph.push(frame)
        return self.graph.pull()


def write_clip(reader: ClipReader, span: ClipSpan, dest_path: str, params: ExportParams,
               audio_path: str | None, box: ContentBox | None = None) -> EncodedClip:
    """Encode `span` of the reader's file to `dest_path` (mp4); audio from `audio_path` when given; cropped to `box`."""
    t0 = time.perf_counter()
    try:
        result = _encode(reader, span, dest_path, params, audio_path, box)
    except FrameMismatch as e:
        reader.fall_back_to_sequential(str(e))
        result = _encode(reader, span, dest_path, params, audio_path, box)
    result.encode_s = time.perf_counter() - t0
    return result


def _encode(reader: ClipReader, span: ClipSpan, dest_path: str, params: ExportParams, audio_path: str | None,
            box: ContentBox | None) -> EncodedClip:
    rate = reader.average_rate or Fraction(25)
    audio, audio_error = None, None
    if params.audio and audio_path is not None:
        try:
            audio = read_audio(audio_path, span.start_s, span.end_s)
        except (DecodeError, av.FFmpegError, ValueError) as e:
            audio_error = f"audio not kept: {' '.join(str(e).split())}"
        if audio is not None and audio.samples.shape[1] == 0:
            audio, audio_error = None, "audio not kept: the audio track has no samples in the clip's span"
        if audio is not None:
            try:
                layout = aac_layout(audio, params)
            except ValueError as e:
                audio, audio_error = None, f"audio not kept: {e}"
    frames = reader.frames(span.start_frame, span.end_frame)
    try:
        first = next(frames)
    except StopIteration:
        raise DecodeError(f"no frames in [{span.start_frame}, {span.end_frame})") from None
    rotation = _rotation(first)
    frame_w, frame_h = display_size(first.width, first.height, reader.sample_aspect_ratio, rotation)
    pre_w, pre_h = (frame_h, frame_w) if rotation in (90, 270) else (frame_w, frame_h)
    crop = even_box(box, frame_w, frame_h) if box is not None else None
    if box is not None and crop is None:
        raise ValueError(f"content box {box.box.as_dict()} of a {box.frame_w}x{box.frame_h} frame leaves no picture")
    width, height = (crop.w, crop.h) if crop is not None else (frame_w, frame_h)
    cropping = crop is not None and (width, height) != (frame_w, frame_h)
    trusted = reader.frame_pts(span.start_frame) is not None
    tb = reader.time_base if trusted else 1 / rate
    base = reader.frame_pts(span.start_frame) if trusted else 0
    n = 0
    last_pts = None
    # bitexact: no encoder/muxer version strings, so the bytes depend on the inputs and settings only
    with av.open(dest_path, "w", format="mp4", options={"movflags": "+faststart", "fflags": "+bitexact"}) as out:
        vs = out.add_stream(VIDEO_CODEC, rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.time_base = tb
        vs.options = {"crf": str(params.crf), "preset": params.preset, "threads": str(params.encoder_threads),
                      "flags": "+bitexact"}
        astream = _add_audio_stream(out, audio, layout, params) if audio is not None else None
        scaler = VideoReformatter()
        picture = PictureFilter(rotation, crop if cropping else None, pre_w, pre_h, tb) if rotation or cropping else None
        frame = first
        while frame is not None:
            pts = (frame.pts - base) if trusted else n
            if last_pts is not None and pts <= last_pts:
                raise DecodeError(f"frame {span.start_frame + n} has pts {pts} after {last_pts}")
            last_pts = pts
            pic = scaler.reformat(frame, width=pre_w, height=pre_h, format="yuv420p", interpolation="BICUBIC")
            pic.pts, pic.time_base = pts, tb  # pic may be `frame` itself (nothing to convert)
            if picture is not None:
                pic = picture(pic)
            for packet in vs.encode(pic):
                out.mux(packet)
            n += 1
            frame = next(frames, None)
        for packet in vs.encode():
            out.mux(packet)
        if astream is not None:
            _encode_audio(out, astream, audio)
    expected = span.end_frame - span.start_frame
    if n != expected:
        raise DecodeError(f"read {n} frames, the clip has {expected}")
    shown_s = float(last_pts * tb)  # first frame to last frame
    fps = (n - 1) / shown_s if n > 1 and shown_s > 0 else float(rate)
    return EncodedClip(num_frames=n, width=width, height=height, fps=fps, audio=astream is not None,
                       audio_error=audio_error, read_method=reader.method, encode_s=0.0, crop=crop,
                       frame_width=frame_w, frame_height=frame_h)


# ------------------------------------------------------------------- audio

@dataclass
class ClipAudio:
    samples: np.ndarray  # (channels, n) float32, planar
    rate: int  # samples/s
    layout: str  # FFmpeg channel layout name
    offset: int  # samples of silence-free gap before the first sample (audio that starts after the clip)


def read_audio(path: str, start_s: float, end_s: float) -> ClipAudio | None:
    """Samples of the first audio track in [start_s, end_s), or None when the file has no audio track."""
    with open_container(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        seek_s = max(0.0, start_s - AUDIO_PREROLL_S)
        if seek_s > 0 and stream.time_base:
            container.seek(int(seek_s / stream.time_base), stream=stream, backward=True, any_frame=False)
        chunks, first_t, rate, layout = [], None, 0, "mono"
        for frame in container.decode(stream):
            if frame.time is None:
                raise DecodeError("audio frames carry no timestamps")
            rate, layout, ft = frame.sample_rate, frame.layout.name, frame.time
            if ft >= end_s:
                break
            a = _planar_float(frame)  # (channels, n)
            i0 = max(0, int(round((start_s - ft) * rate)))
            i1 = min(a.shape[1], int(round((end_s - ft) * rate)))
            if i1 <= i0:
                continue
            if first_t is None:
                first_t = ft + i0 / rate
            chunks.append(a[:, i0:i1])
    if not chunks:
        return ClipAudio(np.zeros((1, 0), np.float32), rate or 48000, layout, 0)
    samples = np.concatenate(chunks, axis=1)
    return ClipAudio(samples, rate, layout, max(0, int(round((first_t - start_s) * rate))))


_INT_SCALE = {"s16": 1 << 15, "s32": 1 << 31, "u8": 1 << 7}


def _planar_float(frame: av.AudioFrame) -> np.ndarray:
    """Samples of a decoded audio frame as (channels, n) float32 in -1..1."""
    a = frame.to_ndarray()
    fmt = frame.format.name
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        a = a.reshape(-1, channels).T  # packed: (1, n*ch) interleaved
    base = fmt.rstrip("p")
    if base == "u8":
        return (a.astype(np.float32) - 128) / 128
    if base in _INT_SCALE:
        return a.astype(np.float32) / _INT_SCALE[base]
    return a.astype(np.float32, copy=False)


def aac_layout(audio: ClipAudio, params: ExportParams) -> str:
    """The channel layout AAC will encode: the source's, else stereo/mono; raises ValueError when AAC refuses both."""
    channels = audio.samples.shape[0]
    tried = []
    for layout in dict.fromkeys([audio.layout, "stereo" if channels > 1 else "mono"]):
        cc = av.CodecContext.create("aac", "w")
        try:
            cc.layout, cc.sample_rate, cc.format = layout, audio.rate, "fltp"
            cc.bit_rate = params.audio_bitrate_per_channel * cc.layout.nb_channels
            cc.open()  # the encoder says here, not mid-clip, whether it takes this layout and rate
            return layout
        except (ValueError, av.FFmpegError) as e:
            tried.append(f"{layout} at {audio.rate} Hz: {' '.join(str(e).split())}")
    raise ValueError("AAC cannot encode " + "; ".join(tried))


def _add_audio_stream(out, audio: ClipAudio, layout: str, params: ExportParams):
    s = out.add_stream("aac", rate=audio.rate)
    s.layout = layout
    s.bit_rate = params.audio_bitrate_per_channel * s.layout.nb_channels
    s.options = {"flags": "+bitexact"}
    s.codec_context.time_base = Fraction(1, audio.rate)
    return s


def _encode_audio(out, stream, audio: ClipAudio) -> None:
    samples = audio.samples
    want = stream.layout.nb_channels
    if samples.shape[0] != want:  # the encoder refused the source layout: downmix to mono/stereo
        samples = _downmix(samples, want)
    layout = stream.layout.name
    n = samples.shape[1]
    for i in range(0, n, AAC_FRAME):
        chunk = np.ascontiguousarray(samples[:, i:i + AAC_FRAME])
        f = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        f.sample_rate, f.pts, f.time_base = audio.rate, audio.offset + i, Fraction(1, audio.rate)
        for packet in stream.encode(f):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def _downmix(samples: np.ndarray, channels: int) -> np.ndarray:
    mono = samples.mean(axis=0, keepdims=True)
    return mono if channels == 1 else np.repeat(mono, channels, axis=0)


def frames_in(path: str) -> int:
    """Frames in the first video stream of an exported file, counted by decoding."""
    with open_container(path) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


def audio_seconds(path: str) -> float | None:
    """Seconds of decoded audio in a file (None without an audio track)."""
    with open_container(path) as c:
        if not c.streams.audio:
            return None
        n = rate = 0
        for f in c.decode(c.streams.audio[0]):
            n += f.samples
            rate = f.sample_rate
        return n / rate if rate else 0.0

