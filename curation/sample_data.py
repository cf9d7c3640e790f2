"""Deterministic demo data set: short videos cut from real photographs, with ground truth.

`write_sample_data(out_dir)` renders a dozen short H.264 videos (512x288,
25 fps) by moving a crop window over photographs shipped inside scikit-image
(`skimage.data`), so every clip has real texture, and every property the
curation pipeline measures is known by construction: pan speed, zoom rate,
hard-cut frames, fades, near-black frames, blur, exposure, duplicates and a
corrupt file. Same seed, same bytes.

The files (frames at 25 fps; every pan moves by whole pixels per frame):

    pan_h2.mp4                 125  coffee, content moves 2 px/frame left        kept
    pan_h6.mp4                  80  camera+brick, 6 px/frame left                kept
    pan_diag.mp4                80  coins+immunohistochemistry, (4, 3) px/frame  kept
    zoom_in.mp4                 80  rocket, zoom in x1.01 per frame              kept
    cuts.mp4                   200  4 shots, hard cuts at 45, 100, 150           kept
    fade_black.mp4             190  moon, fade out 50-74, near-black night sky
                                    75-129, hard cut at 130 to gravel            black_frames
    static.mp4                 100  grass, no motion                             static
    blurry.mp4                 100  moon, Gaussian sigma 5 px, 3 px/frame pan    blurry
    dark.mp4                   100  astronaut at gain 0.12, 3 px/frame pan       dark
    short.mp4                   15  page, 0.6 s                                  too_short
    pan_h2_half_reencoded.mp4  125  pan_h2 decoded, 256x144, crf 30              duplicate
    pan_h2_copy.mp4            125  byte copy of pan_h2                          duplicate
    corrupt_truncated.mp4        -  first 30% of cuts.mp4's bytes (no moov atom) an error row

A duplicate group may keep any one member; the ground truth names the copies
as the duplicates and the original as kept.

OUT/ground_truth.json (also returned as a dict):

    {"generator": "vidcurate.sample_data v1", "seed": int, "videos": {NAME: {
      "kind": "pan" | "zoom" | "cuts" | "fade" | "static" | "blur" | "dark"
              | "short" | "near_duplicate" | "exact_copy" | "corrupt",
      "frames": int,            # decoded frame count (0 for the corrupt file)
      "fps": float | null,      # null for the corrupt file
      "size": [w, h] | null,    # null for the corrupt file
      "shot_starts": [0, ...],  # decoded-frame indices where shots begin (hard cuts only)
      "hard_cuts": [...],       # shot_starts without 0
      "pan_px_per_frame": [dx, dy] | null,
                                # content motion between consecutive frames in
                                # pixels of this file (the optical flow; +x right,
                                # +y down); null unless one pan spans the video
      "motion_norm_per_s": float | null,
                                # mean optical-flow magnitude per second divided by
                                # the frame diagonal: |pan| * fps / sqrt(w^2 + h^2);
                                # for the zoom, the mean of (zoom-1)*|p - centre|
                                # over all pixels p, times fps / diagonal
      "zoom_per_frame": float | null,    # scale factor between consecutive frames
      "near_black_frames": [[a, b], ...],  # inclusive runs of frames whose 99th
                                # percentile of full-range BT.601 luma is < 20
      "fade_to_black_at": [...],  # first near-black frame reached by each fade-out
      "expect_drop": [...],     # reason codes the pipeline should give to at least
                                # one clip of this video ([] = every clip kept):
                                # too_short, static, blurry, dark, black_frames, duplicate
      "duplicate_of": NAME | null,   # content duplicate (exact or near) of NAME
      "exact_copy_of": NAME | null,  # byte-identical copy of NAME
      "corrupt": bool,
      "segments": [{"start": int, "end": int,   # frames [start, end)
                    "photo": str | null,        # skimage.data name; "a+b" = side by side
                    "motion": "pan" | "zoom" | "still" | "fade_out" | "near_black",
                    "pan_px_per_frame": [dx, dy] | null}, ...],
      "encoder": {"codec": str, "crf": int | null},
      ...kind-specific extras: "blur_sigma_px", "gain", "resize_factor", "truncated_fraction",
          "source_of": NAME (the file a copy or truncation was made from)}}}

The seed only moves where each crop window starts inside its photo (and so
which part of the photo is shown); speeds, cuts and durations are fixed.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import av
import cv2
import numpy as np

GENERATOR = "vidcurate.sample_data v1"
FPS = 25
# 16:9, and widths a multiple of 128 (at full and half size): at 480 wide, x264
# (core 165 under PyAV 18) read uninitialised bytes past the input rows and its
# output changed from run to run; 512 and 256 gave identical bytes every time.
WIDTH, HEIGHT = 512, 288
GOP = 50  # a keyframe every 2 s
CRF = 20
NEAR_BLACK_P99 = 20  # luma threshold used for near_black_frames (same as EXPECTED.json)

Frames = list[np.ndarray]  # RGB uint8, (HEIGHT, WIDTH, 3) each


# --------------------------------------------------------------------------- photos


def load_photo(name: str) -> np.ndarray:
    """A photograph from skimage.data as RGB uint8; "a+b" puts photos side by side.

    Side by side (at the smaller height, downscaled) gives the fast pans a wide
    view without upscaling a photo, which would make a kept clip look soft.
    """
    if "+" in name:
        parts = [load_photo(p) for p in name.split("+")]
        h = min(p.shape[0] for p in parts)
        return np.concatenate([_cover(p, 1, h)[:h] for p in parts], axis=1)
    from skimage import data  # local: only this module needs scikit-image

    img = np.asarray(getattr(data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def _cover(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Resize keeping aspect so the image covers at least w x h."""
    ih, iw = img.shape[:2]
    s = max(w / iw, h / ih)
    size = (max(w, math.ceil(iw * s)), max(h, math.ceil(ih * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return cv2.resize(img, size, interpolation=interp)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma of RGB frames, float32."""
    rgb = rgb.astype(np.float32)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


# --------------------------------------------------------------------------- shots


def pan_shot(
    img: np.ndarray, n: int, dx: int, dy: int, rng: np.random.Generator, blur_sigma: float = 0.0,
    size: tuple[int, int] = (WIDTH, HEIGHT),
) -> Frames:
    """n frames of a (w, h) = size crop window moving over img so content moves (dx, dy) px per frame."""
    width, height = size
    need_w, need_h = width + abs(dx) * (n - 1), height + abs(dy) * (n - 1)
    base = _cover(img, need_w, need_h)
    if blur_sigma > 0:  # blur the photo once, at frame scale, before cropping
        base = cv2.GaussianBlur(base, (0, 0), blur_sigma)
    # Slack left over by the aspect ratio: where the seed places the window.
    ox = int(rng.integers(0, base.shape[1] - need_w + 1))
    oy = int(rng.integers(0, base.shape[0] - need_h + 1))
    # Content moving +dx means the window moves -dx: start at the far side.
    x0 = ox + (abs(dx) * (n - 1) if dx > 0 else 0)
    y0 = oy + (abs(dy) * (n - 1) if dy > 0 else 0)
    frames = []
    for t in range(n):
        x, y = x0 - dx * t, y0 - dy * t
        frames.append(np.ascontiguousarray(base[y : y + height, x : x + width]))
    return frames


def zoom_shot(img: np.ndarray, n: int, rate: float, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Frames:
    """n frames of size (w, h) zooming into the centre of img by `rate` per frame (exact affine scale)."""
    width, height = size
    base = _cover(img, width, height)
    bh, bw = base.shape[:2]
    # Start from the largest window of the frame's aspect inside the photo.
    s0 = min(bw / width, bh / height)  # source pixels per output pixel at t=0
    cx, cy = (bw - 1) / 2, (bh - 1) / 2
    ox, oy = (width - 1) / 2, (height - 1) / 2
    frames = []
    for t in range(n):
        s = s0 / rate**t
        # output p -> source c + s * (p - o)
        m = np.array([[s, 0, cx - s * ox], [0, s, cy - s * oy]], dtype=np.float64)
        frames.append(
            cv2.warpAffine(base, m, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT)
        )
    return frames


def fade_out(frames: Frames) -> Frames:
    """Linear fade of frames to black; the last frame is black."""
    n = len(frames)
    return [(f.astype(np.float32) * (1 - (i + 1) / n)).round().astype(np.uint8) for i, f in enumerate(frames)]


def scale_gain(frames: Frames, gain: float) -> Frames:
    """Multiply every pixel by gain (under-exposure / near-black content)."""
    return [(f.astype(np.float32) * gain).round().clip(0, 255).astype(np.uint8) for f in frames]


# --------------------------------------------------------------------------- encoding


def _codec() -> tuple[str, int | None]:
    """libx264 when this PyAV build has it, else mpeg4 (crf does not apply)."""
    try:
        av.codec.Codec("libx264", "w")
        return "libx264", CRF
    except Exception:  # noqa: BLE001 - any failure means: not available
        return "mpeg4", None


def encode(path: Path, frames: Frames, crf: int = CRF, preset: str = "fast", fps: int = FPS) -> dict:
    """Encode RGB frames to an mp4 at FPS, single-threaded so the bytes are deterministic."""
    codec, default_crf = _codec()
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        cc = stream.codec_context
        cc.gop_size = GOP
        cc.thread_count = 1  # x264 frame threads can change the bits; one thread never does
        if codec == "libx264":
            cc.options = {"crf": str(crf), "preset": preset}
        else:
            cc.bit_rate = 2_000_000  # mpeg4 has no crf; ~2 Mb/s is near-transparent at this size
        for i, rgb in enumerate(frames):
            # cv2 (BT.601 limited range, like swscale's default) rather than PyAV's
            # reformat, whose frames made x264's output differ from run to run.
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return {"codec": codec, "crf": crf if default_crf is not None else None}


def decode_rgb(path: Path) -> Frames:
    """All frames of a video as RGB uint8 (PyAV)."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


# --------------------------------------------------------------------------- ground truth


def _runs(mask: list[bool]) -> list[list[int]]:
    """Inclusive [a, b] runs of True in mask."""
    runs, start = [], None
    for i, m in enumerate([*mask, False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append([start, i - 1])
            start = None
    return runs


def _near_black(frames: Frames) -> list[list[int]]:
    return _runs([float(np.percentile(luma(f), 99)) < NEAR_BLACK_P99 for f in frames])


def _diag(w: int = WIDTH, h: int = HEIGHT) -> float:
    return math.hypot(w, h)


def _pan_motion(dx: float, dy: float) -> float:
    return round(math.hypot(dx, dy) * FPS / _diag(), 6)


def _zoom_motion(rate: float) -> float:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    r = np.hypot(xs - (WIDTH - 1) / 2, ys - (HEIGHT - 1) / 2).mean()
    return round((rate - 1) * r * FPS / _diag(), 6)


def _entry(kind: str, frames: Frames, segments: list[dict], encoder: dict, **extra) -> dict:
    starts = [0] + [s["start"] for s in segments if s.get("cut")]
    entry = {
        "kind": kind,
        "frames": len(frames),
        "fps": float(FPS),
        "size": [frames[0].shape[1], frames[0].shape[0]],
        "shot_starts": starts,
        "hard_cuts": starts[1:],
        "pan_px_per_frame": None,
        "motion_norm_per_s": None,
        "zoom_per_frame": None,
        "near_black_frames": _near_black(frames),
        "fade_to_black_at": [],
        "expect_drop": [],
        "duplicate_of": None,
        "exact_copy_of": None,
        "corrupt": False,
        "segments": [{k: v for k, v in s.items() if k != "cut"} for s in segments],
        "encoder": encoder,
    }
    entry.update(extra)
    return entry


def _seg(start: int, n: int, photo: str | None, motion: str, pan=None, cut: bool = False) -> dict:
    return {"start": start, "end": start + n, "photo": photo, "motion": motion,
            "pan_px_per_frame": list(pan) if pan is not None else None, "cut": cut}


# --------------------------------------------------------------------------- the set


def _single_pan(out: Path, name: str, kind: str, photo: str, n: int, pan: tuple[int, int],
                rng: np.random.Generator, blur: float = 0.0, gain: float = 1.0, **extra) -> dict:
    """One panning shot of one photo, optionally blurred or under-exposed."""
    frames = pan_shot(load_photo(photo), n, *pan, rng, blur_sigma=blur)
    if gain != 1.0:
        frames = scale_gain(frames, gain)
        extra["gain"] = gain
    if blur > 0:
        extra["blur_sigma_px"] = blur
    e = _entry(kind, frames, [_seg(0, n, photo, "pan", pan)], encode(out / name, frames), **extra)
    e.update(pan_px_per_frame=list(pan), motion_norm_per_s=_pan_motion(*pan))
    return e


def _pans(out: Path, rng: np.random.Generator) -> dict:
    """Clean pans at known speeds (all kept)."""
    return {
        "pan_h2.mp4": _single_pan(out, "pan_h2.mp4", "pan", "coffee", 125, (-2, 0), rng),
        "pan_h6.mp4": _single_pan(out, "pan_h6.mp4", "pan", "camera+brick", 80, (-6, 0), rng),
        "pan_diag.mp4": _single_pan(out, "pan_diag.mp4", "pan", "coins+immunohistochemistry", 80, (4, 3), rng),
    }


def _zoom(out: Path, rate: float = 1.01, n: int = 80) -> dict:
    """A zoom into the centre at a known scale factor per frame (kept)."""
    frames = zoom_shot(load_photo("rocket"), n, rate)
    e = _entry("zoom", frames, [_seg(0, n, "rocket", "zoom")], encode(out / "zoom_in.mp4", frames))
    e.update(zoom_per_frame=rate, motion_norm_per_s=_zoom_motion(rate))
    return {"zoom_in.mp4": e}


def _cuts(out: Path, rng: np.random.Generator) -> dict:
    """Four gently panning shots of four photos with hard cuts between them (kept)."""
    # No two grey photos meet at a cut: HSV-based detectors (PySceneDetect's
    # ContentDetector) see only a third of a grey-to-grey change and miss it.
    shots = [("astronaut", 45, (-2, 0)), ("coins", 55, (0, -2)), ("chelsea", 50, (0, 2)), ("text", 50, (2, 0))]
    frames, segs, t = [], [], 0
    for photo, n, pan in shots:
        frames += pan_shot(load_photo(photo), n, *pan, rng)
        segs.append(_seg(t, n, photo, "pan", pan, cut=t > 0))
        t += n
    return {"cuts.mp4": _entry("cuts", frames, segs, encode(out / "cuts.mp4", frames))}


def _fade(out: Path, rng: np.random.Generator) -> dict:
    """Content, a 1 s fade to black, 2.2 s of near-black, then a hard cut to new content."""
    first = pan_shot(load_photo("moon"), 75, -2, 0, rng)
    # A night sky at 1.5% gain: pixel values <= 4, so even limited-range luma stays < 20.
    night = scale_gain(pan_shot(load_photo("hubble_deep_field"), 55, -1, 0, rng), 0.015)
    last = pan_shot(load_photo("gravel"), 60, 0, 2, rng)
    frames = first[:50] + fade_out(first[50:]) + night + last
    fade = _seg(50, 25, "moon", "fade_out", (-2, 0))
    segs = [_seg(0, 50, "moon", "pan", (-2, 0)), fade, _seg(75, 55, "hubble_deep_field", "near_black", (-1, 0)),
            _seg(130, 60, "gravel", "pan", (0, 2), cut=True)]
    e = _entry("fade", frames, segs, encode(out / "fade_black.mp4", frames), expect_drop=["black_frames"])
    e["fade_to_black_at"] = [a for a, _ in e["near_black_frames"] if fade["start"] < a <= fade["end"]]
    return {"fade_black.mp4": e}


def _flawed(out: Path, rng: np.random.Generator) -> dict:
    """One thing wrong with each: no motion, blur, exposure, length."""
    img = _cover(load_photo("grass"), WIDTH, HEIGHT)  # sharp: only the motion is missing
    y0 = (img.shape[0] - HEIGHT) // 2
    frames = [np.ascontiguousarray(img[y0 : y0 + HEIGHT, :WIDTH])] * 100
    static = _entry("static", frames, [_seg(0, 100, "grass", "still")], encode(out / "static.mp4", frames),
                    expect_drop=["static"], pan_px_per_frame=[0, 0], motion_norm_per_s=0.0)
    return {
        "static.mp4": static,
        "blurry.mp4": _single_pan(out, "blurry.mp4", "blur", "moon", 100, (-3, 0), rng, blur=5.0,
                                  expect_drop=["blurry"]),
        "dark.mp4": _single_pan(out, "dark.mp4", "dark", "astronaut", 100, (-3, 0), rng, gain=0.12,
                                expect_drop=["dark"]),
        "short.mp4": _single_pan(out, "short.mp4", "short", "page", 15, (-2, 0), rng, expect_drop=["too_short"]),
    }


def _copies(out: Path, src: str, entry: dict) -> dict:
    """A half-size re-encode (near duplicate) and a byte copy (exact duplicate) of src."""
    small = [cv2.resize(f, (WIDTH // 2, HEIGHT // 2), interpolation=cv2.INTER_AREA) for f in decode_rgb(out / src)]
    enc = encode(out / "pan_h2_half_reencoded.mp4", small, crf=30, preset="veryfast")
    half_pan = [p / 2 for p in entry["pan_px_per_frame"]]
    half_pan = [int(p) if float(p).is_integer() else p for p in half_pan]
    near = dict(entry, kind="near_duplicate", size=[WIDTH // 2, HEIGHT // 2], encoder=enc,
                expect_drop=["duplicate"], duplicate_of=src, source_of=src, resize_factor=0.5,
                pan_px_per_frame=half_pan, segments=[dict(s, pan_px_per_frame=half_pan) for s in entry["segments"]])
    # motion_norm_per_s is unchanged: it is normalised by the (halved) diagonal.
    shutil.copyfile(out / src, out / "pan_h2_copy.mp4")
    exact = dict(entry, kind="exact_copy", expect_drop=["duplicate"], duplicate_of=src, exact_copy_of=src,
                 source_of=src)
    return {"pan_h2_half_reencoded.mp4": near, "pan_h2_copy.mp4": exact}


def _corrupt(out: Path, src: str, encoder: dict, fraction: float = 0.3) -> dict:
    """A real mp4 cut to 30% of its bytes: the moov atom (written last) is gone."""
    data = (out / src).read_bytes()
    (out / "corrupt_truncated.mp4").write_bytes(data[: int(len(data) * fraction)])
    return {"corrupt_truncated.mp4": {
        "kind": "corrupt", "frames": 0, "fps": None, "size": None, "shot_starts": [], "hard_cuts": [],
        "pan_px_per_frame": None, "motion_norm_per_s": None, "zoom_per_frame": None,
        "near_black_frames": [], "fade_to_black_at": [], "expect_drop": [], "duplicate_of": None,
        "exact_copy_of": None, "corrupt": True, "segments": [], "encoder": encoder,
        "source_of": src, "truncated_fraction": fraction,
    }}


def write_sample_data(out_dir: str | Path, seed: int = 0) -> dict:
    """Render the demo videos and OUT/ground_truth.json into out_dir; return the ground truth."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    videos: dict[str, dict] = {}
    videos.update(_pans(out, rng))
    videos.update(_zoom(out))
    videos.update(_cuts(out, rng))
    videos.update(_fade(out, rng))
    videos.update(_flawed(out, rng))
    videos.update(_copies(out, "pan_h2.mp4", videos["pan_h2.mp4"]))
    videos.update(_corrupt(out, "cuts.mp4", videos["cuts.mp4"]["encoder"]))
    truth = {"generator": GENERATOR, "seed": seed, "videos": videos}
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    return truth
