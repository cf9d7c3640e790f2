"""The demo data set: decodes as stated, deterministic, and its ground truth is true of the pixels."""
import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from curation.sample_data import GENERATOR, load_photo, luma, pan_shot, write_sample_data

REASONS = {"too_short", "static", "blurry", "dark", "black_frames", "duplicate"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sample")
    return out, write_sample_data(out, seed=0)


@lru_cache(maxsize=None)
def _decode(path: str) -> tuple[np.ndarray, float, tuple[int, int]]:
    """(frames RGB (N, H, W, 3), average fps, (w, h)) decoded with PyAV."""
    with av.open(path) as c:
        s = c.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(s)])
        return frames, float(s.average_rate), (s.codec_context.width, s.codec_context.height)


def _frames(out: Path, name: str) -> np.ndarray:
    return _decode(str(out / name))[0]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _normal(truth: dict) -> list[str]:
    return [n for n, v in truth["videos"].items() if not v["corrupt"]]


def test_files_and_ground_truth_json(sample):
    out, truth = sample
    assert truth["generator"] == GENERATOR and truth["seed"] == 0
    assert json.loads((out / "ground_truth.json").read_text()) == truth
    kinds = {v["kind"] for v in truth["videos"].values()}
    assert {"pan", "zoom", "cuts", "fade", "static", "blur", "dark", "near_duplicate", "exact_copy", "corrupt"} <= kinds
    for name, v in truth["videos"].items():
        assert (out / name).stat().st_size > 1000, name
        assert set(v["expect_drop"]) <= REASONS, name
        assert v["hard_cuts"] == v["shot_starts"][1:], name


def test_each_video_decodes_as_stated_with_pyav_and_opencv(sample):
    out, truth = sample
    for name in _normal(truth):
        v = truth["videos"][name]
        frames, fps, size = _decode(str(out / name))
        assert len(frames) == v["frames"], name
        assert fps == pytest.approx(v["fps"]), name
        assert list(size) == v["size"], name
        cap = cv2.VideoCapture(str(out / name))
        cv_fps = cap.get(cv2.CAP_PROP_FPS)
        n = 0
        while cap.read()[0]:
            n += 1
        cap.release()
        assert n == v["frames"], name
        assert cv_fps == pytest.approx(v["fps"]), name


def test_duration_and_motion_fields_are_consistent(sample):
    _, truth = sample
    for name in _normal(truth):
        v = truth["videos"][name]
        if v["kind"] != "short":
            assert 3.0 <= v["frames"] / v["fps"] <= 8.0, name
        if v["pan_px_per_frame"] is not None:
            w, h = v["size"]
            want = math.hypot(*v["pan_px_per_frame"]) * v["fps"] / math.hypot(w, h)
            assert v["motion_norm_per_s"] == pytest.approx(want, rel=1e-4), name


def test_exact_copy_is_byte_identical(sample):
    out, truth = sample
    copies = {n: v["exact_copy_of"] for n, v in truth["videos"].items() if v["exact_copy_of"]}
    assert copies
    for name, src in copies.items():
        assert _sha(out / name) == _sha(out / src)
        assert truth["videos"][name]["duplicate_of"] == src


def test_corrupt_file_does_not_decode(sample):
    out, truth = sample
    (name,) = [n for n, v in truth["videos"].items() if v["corrupt"]]
    src = truth["videos"][name]["source_of"]
    assert (out / name).stat().st_size < 0.35 * (out / src).stat().st_size
    n = 0
    try:
        with av.open(str(out / name)) as c:
            for _ in c.decode(video=0):
                n += 1
    except av.error.FFmpegError:
        pass
    assert n < 0.5 * truth["videos"][src]["frames"]
    cap = cv2.VideoCapture(str(out / name))
    ok = cap.isOpened() and cap.read()[0]
    cap.release()
    assert not ok


def test_same_seed_same_bytes(sample, tmp_path):
    out, truth = sample
    again = write_sample_data(tmp_path, seed=0)
    assert again == truth
    for name in truth["videos"]:
        assert _sha(tmp_path / name) == _sha(out / name), name
    assert (tmp_path / "ground_truth.json").read_bytes() == (out / "ground_truth.json").read_bytes()


def test_near_black_frames_are_dark_and_content_is_not(sample):
    out, truth = sample
    v = truth["videos"]["fade_black.mp4"]
    frames = _frames(out, "fade_black.mp4")
    assert v["near_black_frames"] and v["fade_to_black_at"]
    black = np.zeros(len(frames), bool)
    for a, b in v["near_black_frames"]:
        black[a : b + 1] = True
    assert max(b - a + 1 for a, b in v["near_black_frames"]) >= 2 * v["fps"]  # >= 2 s of near-black
    for i, f in enumerate(frames):
        p99 = np.percentile(luma(f), 99)
        if black[i]:
            assert p99 < 20, i
    dark_seg = [s for s in v["segments"] if s["motion"] == "near_black"][0]
    assert luma(frames[dark_seg["start"] : dark_seg["end"]]).max() < 15
    assert luma(frames[0]).mean() > 60 and luma(frames[-1]).mean() > 60  # real content around it
    # The fade is gradual: mean luma falls monotonically-ish over the fade segment.
    fade = [s for s in v["segments"] if s["motion"] == "fade_out"][0]
    means = [luma(frames[i]).mean() for i in range(fade["start"], fade["end"])]
    # Linear: gain 1 - (i+1)/n on a slowly panning picture, so mean luma falls on a straight line to 0.
    n = len(means)
    line = [means[0] * (1 - (i + 1) / n) / (1 - 1 / n) for i in range(n)]
    assert np.abs(np.array(means) - line).max() < 0.05 * means[0]
    assert means[-1] < 0.5
    assert all(b <= a + 2 for a, b in zip(means, means[1:]))


def _phase_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Content shift (dx, dy) from frame a to frame b."""
    ga, gb = (luma(x).astype(np.float32) for x in (a, b))
    win = cv2.createHanningWindow(ga.shape[::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(ga, gb, win)
    return np.array([dx, dy])


def test_pans_move_by_the_stated_pixels_per_frame(sample):
    out, truth = sample
    pans = [n for n in _normal(truth) if truth["videos"][n]["kind"] in ("pan", "blur", "dark", "near_duplicate", "short")]
    assert len(pans) >= 5
    for name in pans:
        want = np.array(truth["videos"][name]["pan_px_per_frame"], float)
        frames = _frames(out, name)
        pairs = np.linspace(1, len(frames) - 2, 9).astype(int)
        got = np.median([_phase_shift(frames[i], frames[i + 1]) for i in pairs], axis=0)
        assert np.linalg.norm(got - want) <= 0.1 * np.linalg.norm(want), (name, got, want)


def test_static_shot_does_not_move(sample):
    out, truth = sample
    frames = _frames(out, "static.mp4").astype(np.int16)
    assert truth["videos"]["static.mp4"]["frames"] >= 3 * 25
    assert np.abs(np.diff(frames, axis=0)).mean() < 0.5
    assert luma(frames[0]).std() > 20  # textured, not flat


def test_zoom_matches_its_rate(sample):
    out, truth = sample
    v = truth["videos"]["zoom_in.mp4"]
    frames = _frames(out, "zoom_in.mp4")
    a, b = (luma(frames[i]).astype(np.float32) for i in (50, 51))
    w, h = v["size"]
    c = ((w - 1) / 2, (h - 1) / 2)

    def err(scale: float) -> float:
        m = cv2.getRotationMatrix2D(c, 0, scale)
        return float(np.abs(cv2.warpAffine(a, m, (w, h))[20:-20, 20:-20] - b[20:-20, 20:-20]).mean())

    assert err(v["zoom_per_frame"]) < 0.5 * err(1.0)
    assert err(v["zoom_per_frame"]) < err(1 / v["zoom_per_frame"])


def test_hard_cuts_are_where_stated(sample):
    out, truth = sample
    for name in ("cuts.mp4", "fade_black.mp4"):
        v = truth["videos"][name]
        assert v["hard_cuts"], name
        # Compare 32x18 thumbnails: a pan moves them by a fraction of a pixel, a cut replaces them.
        thumbs = np.stack([cv2.resize(f, (32, 18), interpolation=cv2.INTER_AREA) for f in _frames(out, name)])
        diffs = np.abs(np.diff(thumbs.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))  # diffs[i]: frame i -> i+1
        across = [diffs[c - 1] for c in v["hard_cuts"]]
        within = np.delete(diffs, [c - 1 for c in v["hard_cuts"]])
        if name == "cuts.mp4":
            assert len(v["shot_starts"]) >= 3
            assert min(np.diff(v["shot_starts"] + [v["frames"]])) >= 1.5 * v["fps"]
        assert min(across) > 5 * within.max(), (name, across, within.max())


def test_blurry_and_dark_clips_are_only_that(sample):
    out, truth = sample

    def sharpness(name: str) -> float:
        g = luma(_frames(out, name)[10]).astype(np.float32)
        return float(cv2.Laplacian(g, cv2.CV_32F).var())

    assert sharpness("blurry.mp4") < 0.1 * min(sharpness("pan_h2.mp4"), sharpness("pan_h6.mp4"))
    dark = luma(_frames(out, "dark.mp4"))
    assert dark.mean() < 30
    assert np.percentile(dark[10], 99) > 20  # under-exposed, not black
    for name in ("pan_h2.mp4", "pan_h6.mp4", "pan_diag.mp4", "blurry.mp4"):
        assert 60 < luma(_frames(out, name)).mean() < 200, name


def test_pyscenedetect_content_detector_agrees_with_the_stated_cuts(sample):
    """An independent detector finds exactly the stated shot starts, and no cut inside fast pans."""
    from scenedetect import ContentDetector, SceneManager, open_video

    out, truth = sample
    for name in ("cuts.mp4", "fade_black.mp4", "pan_h6.mp4", "pan_diag.mp4", "zoom_in.mp4"):
        sm = SceneManager()
        sm.add_detector(ContentDetector())
        sm.detect_scenes(open_video(str(out / name), backend="pyav"))
        starts = [s[0].get_frames() for s in sm.get_scene_list()] or [0]
        assert starts == truth["videos"][name]["shot_starts"], name


@pytest.mark.parametrize("dx, dy", [(-2, 0), (4, 3), (0, -5)])
def test_pan_shot_moves_content_by_exactly_dx_dy(dx, dy):
    """Before encoding, frame t+1 is frame t shifted by (dx, dy): the sign convention of pan_px_per_frame."""
    frames = pan_shot(load_photo("coffee"), 5, dx, dy, np.random.default_rng(0))
    a, b = frames[1].astype(int), frames[2].astype(int)
    h, w = a.shape[:2]
    # b[y, x] == a[y - dy, x - dx] wherever both are inside the frame
    ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    ys0, xs0 = slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    assert np.array_equal(b[ys, xs], a[ys0, xs0])
    assert not np.array_equal(a, b)


def test_seed_moves_the_crop_window():
    one = pan_shot(load_photo("coffee"), 5, -2, 0, np.random.default_rng(0))[0]
    two = pan_shot(load_photo("coffee"), 5, -2, 0, np.random.default_rng(1))[0]
    assert not np.array_equal(one, two)


# --------------------------------------------------------------------------- the defect corpus (--size large)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    from curation.defect_corpus import write_defect_corpus

    out = tmp_path_factory.mktemp("corpus")
    return out, write_defect_corpus(out, count=14, seed=0)


def test_corpus_is_byte_deterministic(corpus, tmp_path):
    from curation.defect_corpus import write_defect_corpus

    out, truth = corpus
    assert write_defect_corpus(tmp_path, count=14, seed=0) == truth
    for name in [*truth["videos"], "ground_truth.json"]:
        assert _sha(tmp_path / name) == _sha(out / name), name


def test_clean_held_out_set(tmp_path):
    from curation.defect_corpus import write_defect_corpus

    truth = write_defect_corpus(tmp_path, count=4, seed=1, weights={"clean": 1}, copies=False)
    assert truth["kind_counts"] == {"clean": 4} and all(not v["defects"] for v in truth["videos"].values())
    with pytest.raises(ValueError, match="unknown kinds"):
        write_defect_corpus(tmp_path, count=4, weights={"sparkly": 1})


def test_corpus_has_every_kind_at_known_counts(corpus):
    from curation.defect_corpus import KIND_WEIGHTS, kind_counts

    out, truth = corpus
    assert set(kind_counts(14)) == set(KIND_WEIGHTS) and all(n == 1 for n in kind_counts(14).values())
    big = kind_counts(240)
    total = sum(KIND_WEIGHTS.values())
    assert sum(big.values()) == 240
    for kind, n in big.items():  # one each, the other 226 by weight
        assert abs(n - 1 - 226 * KIND_WEIGHTS[kind] / total) < 1, kind
    base = {k: n for k, n in truth["kind_counts"].items() if k != "duplicate"}
    assert base == kind_counts(14) and truth["kind_counts"]["duplicate"] >= 1
    assert json.loads((out / "ground_truth.json").read_text()) == truth


def test_corpus_videos_decode_as_stated(corpus):
    out, truth = corpus
    for name, v in truth["videos"].items():
        frames, fps, size = _decode(str(out / name))
        assert (len(frames), fps, list(size)) == (v["frames"], v["fps"], v["size"]), name
        for s in v["defect_spans"]:
            assert 0 <= s["start"] < s["end"] <= v["frames"], name
        assert v["hard_cuts"] == v["shot_starts"][1:]


def _one(truth: dict, kind: str) -> str:
    return next(n for n, v in truth["videos"].items() if v["kind"] == kind)


def test_corpus_defects_are_in_the_pixels(corpus):
    out, truth = corpus
    v = truth["videos"]
    frames = {k: _frames(out, _one(truth, k)).astype(np.float32) for k in
              ("black", "fade", "static", "letterbox", "bars", "dark", "flicker", "clean", "blur")}
    for kind in ("black", "fade"):
        (span,) = [s for s in v[_one(truth, kind)]["defect_spans"] if s["defect"] == "black"]
        assert luma(frames[kind][span["start"]:span["end"]]).max() < 5, kind
        assert luma(frames[kind][span["start"] - 1]).mean() > 5 or kind == "fade"
    assert np.abs(np.diff(frames["static"], axis=0)).mean() < 0.5 and luma(frames["static"][0]).std() > 10
    for kind in ("letterbox", "bars"):  # a plain background of the truth's colour around the truth's box
        x, y, bw, bh = v[_one(truth, kind)]["content_box"]
        colour = np.array(v[_one(truth, kind)]["bar_colour"], np.float32)
        outside = np.ones(frames[kind].shape[1:3], bool)
        outside[max(0, y - 3):y + bh + 3, max(0, x - 3):x + bw + 3] = False  # the codec blurs the box's edge
        assert np.percentile(np.abs(frames[kind][:, outside] - colour), 99) < 12, kind  # chroma bleeds at the edge
        assert frames[kind][:, y:y + bh, x:x + bw].std() > 20, kind
    x, y, bw, bh = v[_one(truth, "letterbox")]["content_box"]
    assert bw * bh < 0.35 * frames["letterbox"].shape[1] * frames["letterbox"].shape[2]
    assert luma(frames["dark"]).mean() < 30 < luma(frames["clean"]).mean()
    means = luma(frames["flicker"]).mean(axis=(1, 2))
    jumps = np.abs(np.diff(means)) / means.max()
    assert (jumps > 0.25).sum() >= len(means) // 4  # brightness jumps by >= 35 % every 1-3 frames

    def sharpness(f):
        return cv2.Laplacian(luma(f), cv2.CV_32F).var()

    assert sharpness(frames["blur"][10]) < 0.2 * sharpness(frames["clean"][10])


def test_corpus_hard_cuts_are_where_stated(corpus):
    out, truth = corpus
    name = _one(truth, "cuts")
    cuts = truth["videos"][name]["hard_cuts"]
    thumbs = np.stack([cv2.resize(f, (32, 18), interpolation=cv2.INTER_AREA) for f in _frames(out, name)])
    diffs = np.abs(np.diff(thumbs.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert cuts and min(diffs[c - 1] for c in cuts) > 3 * np.delete(diffs, [c - 1 for c in cuts]).max()


def test_corpus_copies_are_copies(corpus):
    out, truth = corpus
    copies = {n: v for n, v in truth["videos"].items() if v["duplicate_of"]}
    assert copies
    for name, v in copies.items():
        src = v["duplicate_of"]
        assert truth["videos"][src]["kind"] == "clean" and v["defects"] == ["duplicate"]
        a, b = _frames(out, src).astype(np.float32), _frames(out, name).astype(np.float32)
        if v["dup_kind"] == "exact":
            assert _sha(out / name) == _sha(out / src)
        elif v["dup_kind"] == "mirrored":
            assert np.abs(b[5] - a[5, :, ::-1]).mean() < 0.3 * np.abs(b[5] - a[5]).mean()
        elif v["dup_kind"] == "recut":
            k = v["trimmed"][0]
            assert len(b) == len(a) - k - 3 and np.abs(b[0] - a[k]).mean() < 6
        else:
            assert len(b) == len(a) and np.abs(b[5] - a[5]).mean() < 6
