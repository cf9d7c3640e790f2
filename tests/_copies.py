"""A generated copy-detection set from the shared videos: each source plus re-published copies of it.

Copies: re-encoded at a low bitrate, at half the frame rate, start shifted by
0.3 s, re-cut (another start and end), horizontally mirrored, letterboxed,
grayscale, and re-muxed with rotation side data (90/180/270: the copy shows
sideways, as a re-upload with a wrong rotation flag does).

Edits as re-uploads carry them on the web (EDITS): a logo box or a text watermark
in a corner (about 3 % of the frame), a coloured border, picture-in-picture at 60 %
on a plain and on a blurred background, crops of 70-90 % zoomed back to full size,
burned-in subtitles, a colour grade, speed 0.8x and 1.25x, and combinations
(mirror + crop + grade, logo + speed). Compilations (COMPILATIONS) join 2 or 3
sources, a few seconds of each.

Sources are cut to their first seconds at 320 px wide so a scan stays fast; the
truth maps every file to the sources whose footage it shows, and two files are a
true pair when they share a source.
"""
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from curation.decode import DecodePlan, decode
from curation.hashes import frame_hashes

SOURCES = ("bikes.mp4", "testvideo.mp4", "cockatoo.mp4", "bigbuckbunny.mp4", "pedestrians.avi", "carphone_pristine.mp4",
           "realshort.mp4", "fades.mp4")
COPIES = ("reencode", "halffps", "shift", "recut", "mirror", "letterbox", "gray", "rot90", "rot180", "rot270")
EDIT_SOURCES = ("bikes.mp4", "testvideo.mp4", "cockatoo.mp4", "bigbuckbunny.mp4", "pedestrians.avi", "carphone_pristine.mp4")
NEGATIVES = ("fades.mp4", "realshort.mp4", "counter.mp4")  # added as they are: a flat white fade (no picture to match),
#                                                          a 1.2 s shot (under segment_min_samples), a counter card
EDITS = ("logo", "watermark", "border", "pip_plain", "pip_blur", "crop70", "crop80", "crop90", "subtitles", "grade",
         "speed080", "speed125", "mirror_crop_grade", "logo_speed")
COMPILATIONS = ("comp2", "comp3")  # each of the first len(sources) - k sources opens one: it, then the next k - 1
# real footage (../shared/data/real): sources, and a real copy with its labelled span
REAL_SOURCES = ("big_buck_bunny_0_30.webm", "chaplin.mp4")
REAL_COPIES = {"bbb_excerpt_2s.mp4": "big_buck_bunny_0_30"}  # LABELS.json: a copy of 4.75-6.75 s
WIDTH = 320
MAX_S = 8.0


def read_frames(path: Path, start_s: float = 0.0, max_s: float = MAX_S) -> tuple[list[np.ndarray], float]:
    """RGB frames of [start_s, start_s + max_s) at WIDTH px wide (even height), and the frame rate."""
    frames = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rate = float(s.average_rate or 25)
        for f in c.decode(s):
            t = float(f.time or 0.0)
            if t < start_s:
                continue
            if t >= start_s + max_s:
                break
            h = max(2, round(f.height * WIDTH / f.width / 2) * 2)
            frames.append(f.to_ndarray(format="rgb24", width=WIDTH, height=h))
    return frames, rate


def write(path: Path, frames: list[np.ndarray], rate: float, crf: int = 23, rotation: int | None = None) -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=Fraction(rate).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "threads": "1", "crf": str(crf)}
        if rotation is not None:
            s.set_display_rotation(rotation)
        for fr in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(fr), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def _letterbox(fr: np.ndarray) -> np.ndarray:
    h, w = fr.shape[:2]
    pad = max(16, (w * 3 // 4 - h) // 2 // 2 * 2)
    return cv2.copyMakeBorder(fr, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def _at_size(fr: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(fr, (w, h), interpolation=cv2.INTER_AREA)


def _logo(fr: np.ndarray, i: int = 0) -> np.ndarray:
    """A station logo: a filled box with a letter in the top-right corner, about 3 % of the frame."""
    out = fr.copy()
    h, w = fr.shape[:2]
    bw, bh = round(w * 0.2), round(h * 0.15)  # 0.2 x 0.15 = 3 % of the area
    x0, y0 = w - bw - round(w * 0.03), round(h * 0.04)
    cv2.rectangle(out, (x0, y0), (x0 + bw, y0 + bh), (230, 40, 40), -1)
    cv2.putText(out, "TV9", (x0 + bw // 8, y0 + bh * 3 // 4), cv2.FONT_HERSHEY_SIMPLEX, bh / 40, (255, 255, 255), 2)
    return out


def _watermark(fr: np.ndarray, i: int = 0) -> np.ndarray:
    """Half-transparent white text in the bottom-left corner."""
    h, w = fr.shape[:2]
    layer = fr.copy()
    cv2.putText(layer, "@reuploads", (round(w * 0.03), round(h * 0.93)), cv2.FONT_HERSHEY_DUPLEX, w / 480, (255, 255, 255), 2)
    return cv2.addWeighted(layer, 0.6, fr, 0.4, 0)


def _border(fr: np.ndarray, frac: float = 0.07, colour=(40, 110, 200)) -> np.ndarray:
    """The picture shrunk inside a coloured border, at the original size."""
    h, w = fr.shape[:2]
    py, px = round(h * frac), round(w * frac)
    return cv2.copyMakeBorder(_at_size(fr, w - 2 * px, h - 2 * py), py, py, px, px, cv2.BORDER_CONSTANT, value=colour)


def _pip(fr: np.ndarray, background: str, scale: float = 0.6) -> np.ndarray:
    """The picture at `scale` of its size, centred on a plain (a grey-blue) or a blurred, enlarged background."""
    h, w = fr.shape[:2]
    if background == "plain":
        out = np.empty_like(fr)
        out[:] = (70, 80, 110)
    else:
        out = cv2.GaussianBlur(_at_size(fr[h // 6:h - h // 6, w // 6:w - w // 6], w, h), (0, 0), 12)
    sw, sh = round(w * scale) // 2 * 2, round(h * scale) // 2 * 2
    y, x = (h - sh) // 2, (w - sw) // 2
    out[y:y + sh, x:x + sw] = _at_size(fr, sw, sh)
    return out


def _crop(fr: np.ndarray, frac: float) -> np.ndarray:
    """`frac` of the width and height, a little off the centre (40 % of the margin left and above), zoomed back."""
    h, w = fr.shape[:2]
    ch, cw = round(h * frac), round(w * frac)
    y, x = round((h - ch) * 0.4), round((w - cw) * 0.4)
    return cv2.resize(fr[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_LINEAR)


SUBTITLES = ("Where are you going?", "I told you already.", "Not this time, not again.", "Look over there!")


def _subtitles(fr: np.ndarray, i: int, rate: float) -> np.ndarray:
    """Two-second subtitle lines, white with a black outline, in the bottom sixth."""
    out = fr.copy()
    h, w = fr.shape[:2]
    text = SUBTITLES[int(i / rate / 2) % len(SUBTITLES)]
    scale = w / 640
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    org = ((w - tw) // 2, round(h * 0.9))
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4)
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2)
    return out


def _grade(fr: np.ndarray) -> np.ndarray:
    """A warm, contrasty colour grade: gamma 0.8, red up, blue down."""
    x = (fr.astype(np.float32) / 255.0) ** 0.8
    x = (x - 0.5) * 1.15 + 0.5
    x *= np.array([1.08, 1.0, 0.88], np.float32)
    return np.clip(x * 255, 0, 255).astype(np.uint8)


def _speed(frames: list[np.ndarray], factor: float) -> list[np.ndarray]:
    """Played `factor` times as fast at the same frame rate (frames dropped or repeated)."""
    n = int(len(frames) / factor)
    return [frames[min(len(frames) - 1, round(i * factor))] for i in range(n)]


def make_copy(how: str, frames: list[np.ndarray], rate: float, out: Path) -> Path:
    if how == "reencode":
        return write(out, frames, rate, crf=38)
    if how == "halffps":
        return write(out, frames[::2], rate / 2)
    if how == "shift":
        return write(out, frames[round(0.3 * rate):], rate)
    if how == "recut":
        n = len(frames)  # another start and end: cut points that fall inside the source's shots
        return write(out, frames[min(round(1.7 * rate), n // 4):n - min(round(1.1 * rate), n // 6)], rate)
    if how == "mirror":
        return write(out, [f[:, ::-1] for f in frames], rate)
    if how == "letterbox":
        return write(out, [_letterbox(f) for f in frames], rate)
    if how == "gray":
        return write(out, [np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) for f in frames], rate)
    if how.startswith("rot"):
        return write(out, frames, rate, rotation=int(how[3:]))
    per_frame = {
        "logo": _logo, "watermark": _watermark, "border": _border, "grade": _grade,
        "pip_plain": lambda f: _pip(f, "plain"), "pip_blur": lambda f: _pip(f, "blur"),
        "crop70": lambda f: _crop(f, 0.7), "crop80": lambda f: _crop(f, 0.8), "crop90": lambda f: _crop(f, 0.9),
        "mirror_crop_grade": lambda f: _grade(_crop(f[:, ::-1], 0.85)),
    }
    if how in per_frame:
        return write(out, [per_frame[how](f) for f in frames], rate)
    if how == "subtitles":
        return write(out, [_subtitles(f, i, rate) for i, f in enumerate(frames)], rate)
    if how.startswith("speed"):
        return write(out, _speed(frames, int(how[5:]) / 100), rate)
    if how == "logo_speed":
        return write(out, [_logo(f) for f in _speed(frames, 1.25)], rate)
    raise ValueError(how)


def compilation(parts: list[tuple[list[np.ndarray], float]], out: Path, seconds: float, skip_s: float = 1.0) -> Path:
    """`seconds` of each (frames, rate) source from skip_s on, one after the other, at the first one's size and rate."""
    h, w = parts[0][0][0].shape[:2]
    rate = parts[0][1]
    frames = []
    for src, r in parts:
        for i in range(round(seconds * rate)):
            j = round(skip_s * r + i * r / rate)
            if j < len(src):
                frames.append(_at_size(src[j], w, h))
    return write(out, frames, rate)


def build(videos: Path, out: Path, sources=SOURCES, copies=COPIES, compilations=(), real: Path | None = None,
          real_sources=REAL_SOURCES, negatives=()) -> dict[str, tuple[str, ...]]:
    """Write sources and copies under `out`; return {file name: names of the sources it shows}.

    compilations: names from COMPILATIONS, built over `sources` in order. real: the folder of the real footage;
    its REAL_SOURCES get the same copies, and REAL_COPIES are added as they are (resized like the rest).
    negatives: more shared videos, added as they are (no copies)."""
    out.mkdir(parents=True, exist_ok=True)
    truth = {}
    for name in negatives:
        frames, rate = read_frames(videos / name)
        truth[write(out / f"{Path(name).stem}.mp4", frames, rate).name] = (Path(name).stem,)
    decoded = []
    paths = [videos / n for n in sources] + ([real / n for n in real_sources] if real else [])
    for path in paths:
        frames, rate = read_frames(path)
        stem = path.stem
        decoded.append((frames, rate))
        truth[write(out / f"{stem}.mp4", frames, rate).name] = (stem,)
        for how in copies:
            truth[make_copy(how, frames, rate, out / f"{stem}__{how}.mp4").name] = (stem,)
    stems = [p.stem for p in paths]
    for name in compilations:
        k = int(name[4:])
        for i in range(len(sources) - k + 1):
            parts = list(range(i, i + k))
            file = f"{name}__{'+'.join(stems[j] for j in parts)}.mp4"
            truth[compilation([decoded[j] for j in parts], out / file, 6.0 / k * 1.5).name] = tuple(stems[j] for j in parts)
    if real:
        for name, src in REAL_COPIES.items():
            frames, rate = read_frames(real / name)
            truth[write(out / f"{Path(name).stem}.mp4", frames, rate).name] = (src,)
    return truth


def sample_hashes(path: Path) -> tuple[list[float], list[int], list[list[int]]]:
    """(t, phash, region hashes) of every analysis sample, decoded and hashed as curation.scan does it (inside the
    sample's content box)."""
    from curation.content_box import crop, frame_bars

    ts, hs, rs = [], [], []

    def on_sample(s) -> None:
        ts.append(s.t)
        pic = crop(s.rgb, frame_bars(cv2.cvtColor(s.rgb, cv2.COLOR_RGB2GRAY)))
        fh = frame_hashes(pic)
        hs.append(int(fh))
        rs.append(fh.regions)

    with open(path, "rb") as f:
        decode(f, DecodePlan(detector_width=0), None, on_sample)
    return ts, hs, rs


def _sources(v) -> tuple[str, ...]:
    return (v,) if isinstance(v, str) else tuple(v)


def true_pairs(truth: dict) -> set[frozenset]:
    """Every pair of files that show footage of one source."""
    names = sorted(truth)
    return {frozenset((a, b)) for i, a in enumerate(names) for b in names[i + 1:] if set(_sources(truth[a])) & set(_sources(truth[b]))}


def source_pairs(truth: dict) -> dict[str, list[frozenset]]:
    """{edit: [(source file, copy file) pairs]}: each copy with each source it shows (a compilation: 2-3 pairs)."""
    out: dict[str, list[frozenset]] = {}
    for name, srcs in truth.items():
        if "__" not in name and name not in {f"{Path(n).stem}.mp4" for n in REAL_COPIES}:
            continue  # a source
        how = "real_copy" if "__" not in name else (name.split("__")[1][:-4] if not name.startswith("comp") else name.split("__")[0])
        out.setdefault(how, []).extend(frozenset((name, f"{s}.mp4")) for s in _sources(srcs))
    return out


def pair_scores(found: set[frozenset], truth: dict) -> dict:
    """Precision / recall of found video pairs against "shares footage", and the false pairs."""
    true = true_pairs(truth)
    tp = len(found & true)
    return {"true_pairs": len(true), "found": len(found), "tp": tp,
            "precision": tp / len(found) if found else 1.0, "recall": tp / len(true) if true else 1.0,
            "false": sorted(tuple(sorted(p)) for p in found - true),
            "missed": sorted(tuple(sorted(p)) for p in true - found)}


def per_edit_recall(found: set[frozenset], truth: dict) -> dict[str, tuple[int, int]]:
    """{edit: (found, total)} over source-copy pairs."""
    return {how: (sum(p in found for p in pairs), len(pairs)) for how, pairs in sorted(source_pairs(truth).items())}
