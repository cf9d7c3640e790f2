"""A deterministic defect-labelled corpus: a few hundred short clips with known defects and cuts.

`write_defect_corpus(out_dir, count)` renders `count` base videos (256x144,
25 fps, 1.6-3 s) plus copies of some of them, and OUT/ground_truth.json. Every
base video shows its own source: a crop of a scikit-image photo (random region,
scale, mirror and colour variant) or a procedural scene (gradient, shapes,
lines, grain), moved by a whole-pixel pan, an exact zoom, or (the `static`
defect) not at all. Defects are assigned by exact counts from KIND_WEIGHTS
(one of each, the rest by weight, largest remainder), so their rates are known:

    clean       one shot, nothing wrong                      (kept)
    cuts        2-3 shots of different sources, hard cuts    (kept; cuts at known frames)
    blur        Gaussian blur, sigma 2.5-4 px                blur
    dark        gain 0.08-0.18                               underexposed
    black       a 1.2-1.6 s black segment between two shots  black
    fade        a 0.8 s fade to black, 1.1 s black, a cut    fade, black
    static      the same frame throughout                    static
    bars        letterbox, pillarbox or windowbox; black,    (kept: bars are cropped, not a defect;
                grey or a colour                             truth "content_box")
    letterbox   an inset picture (a thumbnail: under a third letterbox
                of the frame) on a black or plain background
    text        2-3 lines of burned-in text (cv2.putText)    text
    flicker     brightness jumps 1.0 <-> 0.5-0.65            flicker
    shake       +-4 px random jitter on a pan                shake
    blocky      encoded at crf 48                            blocky
    short       0.5-0.8 s                                    short

Duplicates: every DUP_EVERY-th clean video gets 1-3 copies, cycling through
exact (byte copy), reencode (crf 34), recut (first 8-14 and last 3 frames
dropped, re-encoded) and mirrored (horizontal flip, re-encoded). A copy carries
the defect `duplicate`; its original does not (a group may keep any member:
evaluate.py scores the group, not the choice).

OUT/ground_truth.json:

    {"generator": GENERATOR, "seed": int, "count": int, "kind_counts": {kind: n},
     "weights": {kind: share} (only when not the default mix),
     "videos": {NAME: {
        "kind": str, "frames": int, "fps": 25.0, "size": [w, h],
        "defects": [str, ...],                  # every defect anywhere in the video
        "defect_spans": [{"defect": str, "start": int, "end": int}, ...],  # frames [start, end)
        "shot_starts": [0, ...], "hard_cuts": [...],   # content-to-content cuts only
        "ignore_boundaries": [...],             # frames next to black/fade: a boundary there is neither right nor wrong
        "duplicate_of": NAME | null, "dup_kind": "exact" | "reencode" | "recut" | "mirrored" | null,
        "segments": [{"start", "end", "source", "motion", "pan_px_per_frame", "zoom_per_frame"}],
        "encoder": {"codec": str, "crf": int | null}}}}

Same seed and count, same bytes (x264 single-threaded; a video's randomness
comes from its own index and the seed).
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np

from curation.sample_data import (
    FPS, _cover, decode_rgb, encode, fade_out, load_photo, pan_shot, scale_gain, zoom_shot,
)

GENERATOR = "vidcurate.defect_corpus v2"  # v2: `bars` (kept) and `letterbox` as an inset picture
SIZE = (256, 144)  # (w, h); a width of 256 keeps x264's output deterministic (see sample_data.WIDTH)
DEFAULT_COUNT = 240  # base videos; about 290 files with the copies
DUP_EVERY = 3  # every third clean video gets copies
# Photos bundled with scikit-image that hold no text, are not mostly black and are sharp
# (clock and cell measured sharpness 0.1-0.7 at any crop, below the blurry rule's 2.5:
# a "clean" clip of them would be soft, so the truth would be wrong; moon and retina likewise).
PHOTOS = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
          "immunohistochemistry", "rocket", "motorcycle")
# Share of base videos of each kind (normalised; largest remainder, at least 1 each).
KIND_WEIGHTS = {
    "clean": 30, "cuts": 10, "blur": 6, "dark": 6, "black": 5, "fade": 5, "static": 5, "bars": 6, "letterbox": 4,
    "text": 6, "flicker": 5, "shake": 5, "blocky": 5, "short": 4,
}
DEFECT_OF_KIND = {"blur": "blur", "dark": "underexposed", "static": "static", "letterbox": "letterbox",
                  "text": "text", "flicker": "flicker", "shake": "shake", "blocky": "blocky", "short": "short"}
COPY_KINDS = ("exact", "reencode", "recut", "mirrored")
# Slow enough that the default too_much_motion rule (0.25 diagonals/s) never fires:
# 2.24 px/frame * 25 / 293.7 px = 0.19 diagonals/s at most.
PANS = ((1, 0), (2, 0), (-1, 0), (-2, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (2, 1), (-2, -1))
WORDS = ("BREAKING", "NEWS", "LIVE", "SALE", "50% OFF", "SUBSCRIBE", "EPISODE 4", "WORLD CUP", "TODAY",
         "COPYRIGHT 2024", "WATCH NOW", "EXCLUSIVE", "TRAILER", "HD", "FINAL")

Frames = list[np.ndarray]


# --------------------------------------------------------------------------- sources


def _photo(name: str) -> np.ndarray:
    if name == "motorcycle":
        from skimage import data

        return np.ascontiguousarray(data.stereo_motorcycle()[0])
    return load_photo(name)


def _colour_variant(img: np.ndarray, v: int) -> np.ndarray:
    """0 as is, 1 channels reversed, 2 hue rotated by 60 degrees, 3 warm tint."""
    if v == 1:
        return np.ascontiguousarray(img[..., ::-1])
    if v == 2:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + 30) % 180
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if v == 3:
        return (img.astype(np.float32) * np.array([1.1, 1.0, 0.8])).clip(0, 255).astype(np.uint8)
    return img


def photo_source(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A random region of a photo, maybe mirrored, in a colour variant; and its description."""
    name = PHOTOS[int(rng.integers(len(PHOTOS)))]
    img = _photo(name)
    h, w = img.shape[:2]
    f = float(rng.uniform(0.7, 1.0))  # a larger region: less upscaling, no soft "clean" clips
    cw, ch = max(64, int(w * f)), max(64, int(h * f))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img[y : y + ch, x : x + cw]
    flip, colour = bool(rng.integers(2)), int(rng.integers(4))
    if flip:
        img = img[:, ::-1]
    img = _colour_variant(np.ascontiguousarray(img), colour)
    return img, f"{name}[{x},{y},{cw}x{ch}]{'/flip' if flip else ''}/c{colour}"


def procedural_source(rng: np.random.Generator, size: tuple[int, int] = (640, 400)) -> np.ndarray:
    """A gradient with random filled shapes, lines and fine grain: sharp, textured, distinct."""
    w, h = size
    c0, c1 = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    img = np.ascontiguousarray(np.broadcast_to(c0 * (1 - t) + c1 * t, (h, w, 3)).astype(np.uint8))
    for _ in range(int(rng.integers(25, 45))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(3))
        cx, cy, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(8, 70))
        if kind == 0:
            cv2.circle(img, (cx, cy), r, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img, (cx - r, cy - r // 2), (cx + r, cy + r // 2), colour, -1)
        else:
            pts = rng.integers(-r, r, (3, 2)) + np.array([cx, cy])
            cv2.fillPoly(img, [pts.astype(np.int32)], colour, cv2.LINE_AA)
    for _ in range(int(rng.integers(10, 25))):
        p, q = rng.integers(0, (w, h), 2), rng.integers(0, (w, h), 2)
        cv2.line(img, tuple(int(v) for v in p), tuple(int(v) for v in q),
                 tuple(int(c) for c in rng.integers(0, 256, 3)), int(rng.integers(1, 4)), cv2.LINE_AA)
    grain = rng.normal(0, 7, img.shape[:2])[..., None]
    return (img.astype(np.float32) + grain).clip(0, 255).astype(np.uint8)


def source(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Half photos, half procedural scenes."""
    if rng.integers(2):
        return photo_source(rng)
    seed = int(rng.integers(2**31))
    return procedural_source(np.random.default_rng(seed)), f"procedural[{seed}]"


# --------------------------------------------------------------------------- shots


def shot(rng: np.random.Generator, n: int, motion: str, size: tuple[int, int] = SIZE) -> tuple[Frames, dict]:
    """n frames of a fresh source under `motion` (pan | zoom | static), and its segment entry."""
    img, name = source(rng)
    seg = {"source": name, "motion": motion, "pan_px_per_frame": None, "zoom_per_frame": None}
    if motion == "pan":
        dx, dy = PANS[int(rng.integers(len(PANS)))]
        seg["pan_px_per_frame"] = [dx, dy]
        return pan_shot(img, n, dx, dy, rng, size=size), seg
    if motion == "zoom":
        rate = round(float(rng.uniform(1.004, 1.012)), 4)
        seg["zoom_per_frame"] = rate
        return zoom_shot(img, n, rate, size=size), seg
    w, h = size
    base = _cover(img, w, h)
    frame = np.ascontiguousarray(base[(base.shape[0] - h) // 2 :][:h, (base.shape[1] - w) // 2 :][:, :w])
    return [frame] * n, seg


def _moving(rng: np.random.Generator) -> str:
    return "zoom" if rng.random() < 0.3 else "pan"


BAR_COLOURS = ((0, 0, 0), (16, 16, 16), (128, 128, 128), (30, 60, 160), (200, 40, 40))  # RGB


def _boxed(frames: Frames, box: tuple[int, int, int, int], colour) -> Frames:
    """Each frame resized into `box` (x, y, w, h) on a plain background of `colour`."""
    x, y, bw, bh = box
    out = []
    for f in frames:
        g = np.empty_like(f)
        g[:] = colour
        g[y : y + bh, x : x + bw] = cv2.resize(f, (bw, bh), interpolation=cv2.INTER_AREA)
        out.append(g)
    return out


def _bars(frames: Frames, rng: np.random.Generator) -> tuple[Frames, dict]:
    """Letterbox (2.35:1 in 16:9), pillarbox (4:3) or windowbox bars in black, grey or a colour: a clean picture."""
    h, w = frames[0].shape[:2]
    kind = ("letterbox", "pillarbox", "windowbox")[int(rng.integers(3))]
    if kind == "letterbox":
        bar = int(round(h * (1 - (w / h) / 2.35) / 2))
        box = (0, bar, w, h - 2 * bar)
    elif kind == "pillarbox":
        bar = int(round((w - h * 4 / 3) / 2))
        box = (bar, 0, w - 2 * bar, h)
    else:
        box = (w // 10, h // 10, w - 2 * (w // 10), h - 2 * (h // 10))
    colour = BAR_COLOURS[int(rng.integers(len(BAR_COLOURS)))]
    return _boxed(frames, box, colour), {"bars": kind, "bar_colour": list(colour), "content_box": list(box)}


def _letterbox(frames: Frames, rng: np.random.Generator) -> tuple[Frames, dict]:
    """An inset picture: the frame at 40-55% of each side (16-30% of the area), somewhere on a plain background."""
    h, w = frames[0].shape[:2]
    scale = float(rng.uniform(0.4, 0.55))
    bw, bh = int(round(w * scale)) // 2 * 2, int(round(h * scale)) // 2 * 2
    x, y = int(rng.integers(4, w - bw - 4)), int(rng.integers(4, h - bh - 4))
    colour = BAR_COLOURS[int(rng.integers(len(BAR_COLOURS)))]
    return _boxed(frames, (x, y, bw, bh), colour), {"bar_colour": list(colour), "content_box": [x, y, bw, bh]}


def _burn_text(frames: Frames, rng: np.random.Generator) -> tuple[Frames, dict]:
    """2-3 lines of large outlined text at fixed places (a title and subtitles)."""
    h, w = frames[0].shape[:2]
    lines = [" ".join(WORDS[int(i)] for i in rng.integers(0, len(WORDS), 2)) for _ in range(int(rng.integers(2, 4)))]
    scale = float(rng.uniform(0.55, 0.75))
    placed = []
    for i, text in enumerate(lines):
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
        x = max(2, (w - tw) // 2)
        y = 22 + i * (th + 10) if i == 0 else h - 10 - (len(lines) - 1 - i) * (th + 10)
        placed.append((text, (x, y)))
    out = []
    for f in frames:
        g = f.copy()
        for text, org in placed:
            cv2.putText(g, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
            cv2.putText(g, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)
        out.append(g)
    return out, {"text_lines": lines}


def _flicker(frames: Frames, rng: np.random.Generator) -> tuple[Frames, dict]:
    """Brightness jumps between 1 and a lower gain every 1-3 frames."""
    low = round(float(rng.uniform(0.5, 0.65)), 3)
    gains, g, i = [], 1.0, 0
    while i < len(frames):
        run = int(rng.integers(1, 4))
        gains += [g] * run
        g = low if g == 1.0 else 1.0
        i += run
    out = [(f.astype(np.float32) * gains[k]).round().astype(np.uint8) for k, f in enumerate(frames)]
    return out, {"flicker_gain": low}


def _shake(rng: np.random.Generator, n: int) -> tuple[Frames, dict]:
    """A pan rendered with a margin, then cropped at a random +-4 px offset per frame."""
    w, h = SIZE
    m = 4
    frames, seg = shot(rng, n, "pan", size=(w + 2 * m, h + 2 * m))
    jitter = rng.integers(-m, m + 1, (n, 2))
    out = [np.ascontiguousarray(f[m + jy : m + jy + h, m + jx : m + jx + w]) for f, (jx, jy) in zip(frames, jitter)]
    return out, dict(seg, shake_px=m)


# --------------------------------------------------------------------------- one video


def _video(kind: str, rng: np.random.Generator) -> tuple[Frames, dict]:
    """Frames of one base video of `kind` and its truth (without encoder and name)."""
    n = int(rng.integers(40, 76))
    spans, cuts, ignore, segs, extra = [], [], [], [], {}

    def add(frames_: Frames, seg: dict, at: int) -> None:
        segs.append(dict(seg, start=at, end=at + len(frames_)))

    if kind in ("cuts", "black", "fade"):
        frames: Frames = []
        parts = int(rng.integers(2, 4)) if kind == "cuts" else 2
        for p in range(parts):
            m = int(rng.integers(25, 41))
            f, seg = shot(rng, m, _moving(rng))
            if p and kind == "cuts":
                cuts.append(len(frames))
            if p and kind != "cuts":  # black (and a fade before it) between the two shots
                if kind == "fade":
                    faded = fade_out(frames[-20:])
                    a = len(frames) - 20
                    frames[a:] = faded
                    spans.append({"defect": "fade", "start": a, "end": a + 20})
                    ignore.append(a)
                k = int(rng.integers(28, 35)) if kind == "fade" else int(rng.integers(30, 41))
                a = len(frames)
                frames += [np.zeros_like(f[0])] * k
                segs.append({"start": a, "end": a + k, "source": None, "motion": "black",
                             "pan_px_per_frame": None, "zoom_per_frame": None})
                spans.append({"defect": "black", "start": a, "end": a + k})
                ignore += [a, a + k]
            add(f, seg, len(frames))
            frames += f
    elif kind == "short":
        frames, seg = shot(rng, int(rng.integers(12, 21)), "pan")
        add(frames, seg, 0)
    elif kind == "static":
        frames, seg = shot(rng, n, "static")
        add(frames, seg, 0)
    elif kind == "shake":
        frames, seg = _shake(rng, n)
        add(frames, seg, 0)
    else:
        frames, seg = shot(rng, n, _moving(rng))
        add(frames, seg, 0)
        if kind == "blur":
            sigma = round(float(rng.uniform(2.5, 4.0)), 2)
            frames = [cv2.GaussianBlur(f, (0, 0), sigma) for f in frames]
            extra["blur_sigma_px"] = sigma
        elif kind == "dark":
            gain = round(float(rng.uniform(0.08, 0.18)), 3)
            frames = scale_gain(frames, gain)
            extra["gain"] = gain
        elif kind == "letterbox":
            frames, more = _letterbox(frames, rng)
            extra.update(more)
        elif kind == "bars":
            frames, more = _bars(frames, rng)
            extra.update(more)
        elif kind == "text":
            frames, more = _burn_text(frames, rng)
            extra.update(more)
        elif kind == "flicker":
            frames, more = _flicker(frames, rng)
            extra.update(more)
    if kind in DEFECT_OF_KIND:
        spans.append({"defect": DEFECT_OF_KIND[kind], "start": 0, "end": len(frames)})
    return frames, _truth(kind, len(frames), spans, cuts, ignore, segs, extra)


def _truth(kind: str, n: int, spans: list, cuts: list, ignore: list, segs: list, extra: dict) -> dict:
    return {
        "kind": kind, "frames": n, "fps": float(FPS), "size": list(SIZE),
        "defects": sorted({s["defect"] for s in spans}),
        "defect_spans": sorted(spans, key=lambda s: (s["start"], s["defect"])),
        "shot_starts": [0, *cuts], "hard_cuts": list(cuts), "ignore_boundaries": sorted(set(ignore)),
        "duplicate_of": None, "dup_kind": None,
        "segments": sorted(segs, key=lambda s: s["start"]), **extra,
    }


# --------------------------------------------------------------------------- copies


def _copy(out: Path, name: str, src: str, truth: dict, how: str, rng: np.random.Generator) -> dict:
    """A copy of src made `how`; its truth is the source's plus the duplicate defect."""
    t = dict(truth, kind="duplicate", duplicate_of=src, dup_kind=how, hard_cuts=[], shot_starts=[0],
             ignore_boundaries=[])
    if how == "exact":
        shutil.copyfile(out / src, out / name)
        n = truth["frames"]
    else:
        frames = decode_rgb(out / src)
        if how == "recut":
            a = int(rng.integers(8, 15))
            frames = frames[a:-3]
            t["trimmed"] = [a, 3]
        elif how == "mirrored":
            frames = [np.ascontiguousarray(f[:, ::-1]) for f in frames]
        t["encoder"] = encode(out / name, frames, crf=34 if how == "reencode" else 26, preset="veryfast")
        n = len(frames)
    t["frames"] = n
    t["defects"] = ["duplicate"]
    t["defect_spans"] = [{"defect": "duplicate", "start": 0, "end": n}]
    t["segments"] = [dict(s, start=0, end=n) for s in truth["segments"][:1]]
    return t


# --------------------------------------------------------------------------- the corpus


def kind_counts(count: int, weights: dict[str, float] | None = None) -> dict[str, int]:
    """Exact number of base videos of each kind: one each, the rest by weight (largest remainder)."""
    weights = weights or KIND_WEIGHTS
    total = sum(weights.values())
    rest = count - len(weights)
    want = {k: rest * w / total for k, w in weights.items()}
    got = {k: 1 + math.floor(v) for k, v in want.items()}
    by_remainder = sorted(want, key=lambda k: (-(want[k] - math.floor(want[k])), k))
    for k in by_remainder[: count - sum(got.values())]:
        got[k] += 1
    return got


def kind_sequence(count: int, seed: int, weights: dict[str, float] | None = None) -> list[str]:
    """Kinds of the base videos in file order (a seeded shuffle of kind_counts)."""
    kinds = [k for k, n in kind_counts(count, weights).items() for _ in range(n)]
    order = np.random.default_rng([seed, 7]).permutation(len(kinds))
    return [kinds[i] for i in order]


def write_defect_corpus(out_dir: str | Path, count: int = DEFAULT_COUNT, seed: int = 0,
                        weights: dict[str, float] | None = None, copies: bool = True, progress=None) -> dict:
    """Render `count` base videos plus their copies and OUT/ground_truth.json; return the truth.

    `weights` (kind -> share, kinds from KIND_WEIGHTS) changes the mix, e.g.
    {"clean": 1}, copies=False and another seed give a clean held-out set.
    """
    weights = weights or KIND_WEIGHTS
    unknown = sorted(set(weights) - set(KIND_WEIGHTS))
    if unknown:
        raise ValueError(f"unknown kinds {unknown}; kinds are {sorted(KIND_WEIGHTS)}")
    if count < len(weights):
        raise ValueError(f"count must be at least {len(weights)} (one video of each kind), got {count}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    videos: dict[str, dict] = {}
    clean_seen = 0
    kinds = kind_sequence(count, seed, weights)
    for i, kind in enumerate(kinds):
        rng = np.random.default_rng([seed, i])  # per video: the set is stable under a larger count
        frames, truth = _video(kind, rng)
        name = f"v{i:04d}_{kind}.mp4"
        crf = 48 if kind == "blocky" else None
        truth["encoder"] = encode(out / name, frames, **({"crf": crf} if crf else {}))
        videos[name] = truth
        if kind == "clean" and copies:
            clean_seen += 1
            if clean_seen % DUP_EVERY == 1:
                for j in range(1 + (clean_seen // DUP_EVERY) % 3):
                    how = COPY_KINDS[(clean_seen // DUP_EVERY + j) % len(COPY_KINDS)]
                    cname = f"v{i:04d}_copy{j}_{how}.mp4"
                    videos[cname] = _copy(out, cname, name, truth, how, rng)
        if progress:
            progress(i + 1, len(kinds))
    counts: dict[str, int] = {}
    for v in videos.values():
        counts[v["kind"]] = counts.get(v["kind"], 0) + 1
    truth = {"generator": GENERATOR, "seed": seed, "count": count, "kind_counts": dict(sorted(counts.items())),
             "videos": videos}
    if weights is not KIND_WEIGHTS:
        truth["weights"] = dict(weights)
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    return truth
