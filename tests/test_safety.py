"""Safety stage: NudeNet's bundled ONNX detector on keyframes, the rank-k aggregation, the `unsafe` rule, and a run
on real shared footage (all clean: every clip scored, none dropped as unsafe).

No footage with nudity exists here, so the high-score side of the rule is tested with stub detector outputs
(labelled as such below), never with made-up "positive" images."""
import shutil

import cv2
import numpy as np
import pyarrow as pa
import pytest

from curation.filters import Rule, apply_filters
from curation.nsfw import EXPLICIT_CLASSES, NUDENET_LABELS, NsfwDetector, NsfwParams, class_scores, clip_score, keyframe_scores
from pipelines.config import ConfigError, load_config
from schemas import TABLES, read_table


def _unsafe_rule() -> Rule:
    r = next(r for r in load_config().filters if r.reason == "unsafe")
    return Rule(r.column, r.min, r.max, r.reason)


def _stub_output(boxes: list[dict[str, float]], anchors: int = 50) -> np.ndarray:
    """STUB detector output (1, 4 + 18, anchors): one anchor per {class: score} dict, every other anchor ~0."""
    out = np.full((1, 4 + len(NUDENET_LABELS), anchors), 1e-4, np.float32)
    for a, box in enumerate(boxes):
        for cls, score in box.items():
            out[0, 4 + NUDENET_LABELS.index(cls), a] = score
    return out


def test_rank_k_is_the_score_k_keyframes_reach():
    assert clip_score([0.9, 0.1, 0.2], 1) == pytest.approx(0.9)
    assert clip_score([0.9, 0.1, 0.2], 2) == pytest.approx(0.2)  # one odd keyframe does not make the clip
    assert clip_score([0.7, 0.1, 0.8], 2) == pytest.approx(0.7)
    assert clip_score([0.7, 0.6, 0.8], 3) == pytest.approx(0.6)
    assert clip_score([0.7], 2) == pytest.approx(0.7)  # fewer keyframes than k: all of them (here the one) must agree
    assert clip_score([0.7, 0.3], 3) == pytest.approx(0.3)
    assert clip_score([], 2) is None


def test_each_box_counts_for_its_best_class_only():
    """STUB output: a box that is mostly a face and a little 'exposed' does not count as exposed (NudeNet's argmax)."""
    out = _stub_output([{"FACE_FEMALE": 0.9, "FEMALE_BREAST_EXPOSED": 0.6}, {"BUTTOCKS_EXPOSED": 0.3}])
    s = class_scores(out)
    assert s.shape == (1, len(NUDENET_LABELS))
    assert s[0, NUDENET_LABELS.index("FACE_FEMALE")] == pytest.approx(0.9)
    assert s[0, NUDENET_LABELS.index("FEMALE_BREAST_EXPOSED")] == 0.0
    assert keyframe_scores(s, EXPLICIT_CLASSES)[0] == pytest.approx(0.3)
    assert keyframe_scores(s, ("FACE_FEMALE",))[0] == pytest.approx(0.9)


def test_the_unsafe_rule_drops_two_agreeing_keyframes_only():
    """STUB outputs through the real aggregation and the default rule: two keyframes at 0.8 drop the clip, one does not,
    a covered or non-explicit class does not, and an unscored clip (null) is kept."""
    def clip(*frames):
        return clip_score(keyframe_scores(np.concatenate([class_scores(_stub_output([f])) for f in frames]),
                                          EXPLICIT_CLASSES).tolist(), NsfwParams().keyframe_rank)

    hi, lo = {"FEMALE_GENITALIA_EXPOSED": 0.8}, {"FEMALE_GENITALIA_EXPOSED": 0.05}
    scores = [clip(hi, hi, lo), clip(hi, lo, lo), clip({"FEMALE_BREAST_COVERED": 0.9}, {"BELLY_EXPOSED": 0.9}, lo), None]
    t = TABLES["clips"].empty_table().select(["nsfw_score", "drop_reasons", "kept"])
    t = pa.table({"nsfw_score": pa.array(scores, pa.float32()), "drop_reasons": pa.array([[]] * 4, pa.list_(pa.string())),
                  "kept": pa.array([True] * 4)}, schema=t.schema)
    out = apply_filters(t, [_unsafe_rule()])
    assert out.column("drop_reasons").to_pylist() == [["unsafe"], [], [], []]


def test_config_rejects_unknown_classes_and_a_zero_rank():
    with pytest.raises(ConfigError, match="nsfw classes"):
        load_config(overrides={"safety": {"classes": ["NSFW"]}})
    with pytest.raises(ConfigError, match="keyframe_rank"):
        load_config(overrides={"safety": {"keyframe_rank": 0}})


@pytest.fixture(scope="module")
def detector():
    return NsfwDetector()


def _keyframes(path, n: int = 3) -> list[bytes]:
    """n JPEG frames spread over a video, 256 px short side (what the scan stores)."""
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    out = []
    for i in np.linspace(0, total - 1, n + 2)[1:-1].astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, bgr = cap.read()
        assert ok
        h, w = bgr.shape[:2]
        bgr = cv2.resize(bgr, (round(w * 256 / min(h, w)), 256), interpolation=cv2.INTER_AREA)
        out.append(cv2.imencode(".jpg", bgr)[1].tobytes())
    return out


def test_scores_match_nudenets_own_detect(detector, test_videos):
    """Our batched, vectorised scoring gives NudeNet's detect() scores when both feed the model RGB (detect swaps the
    channels of what it is given, notAI-tech/NudeNet#203, so it gets the RGB array): the best box per class it reports
    (after its NMS) equals our best score for that class."""
    from nudenet import NudeDetector

    stock = NudeDetector()
    jpegs = _keyframes(test_videos / "bigbuckbunny.mp4") + _keyframes(test_videos / "testvideo.mp4")
    frames = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
    ours = detector.class_scores(frames)
    reported = 0
    for row, bgr in zip(ours, frames):
        best = {}
        for d in stock.detect(np.ascontiguousarray(bgr[..., ::-1])):
            reported += 1
            best[d["class"]] = max(best.get(d["class"], 0), d["score"])
        for cls, score in best.items():
            assert row[NUDENET_LABELS.index(cls)] == pytest.approx(score, abs=1e-4)
    assert reported > 0  # faces and feet at least: the comparison compared something


def test_a_bad_keyframe_gives_an_error_for_its_clip_only(test_videos):
    from pipelines.safety_stage import _SafetyWorker

    worker = _SafetyWorker(load_config().safety.model_dump(), threads=1)
    rows = worker.score([("a", _keyframes(test_videos / "bikes.mp4")), ("b", [b"not a jpeg"])])
    assert rows[0]["clip_id"] == "a" and 0 <= rows[0]["nsfw_score"] < 0.5
    assert rows[1] == {"clip_id": "b", "error": "ValueError: keyframe is not a decodable JPEG (10 bytes)"}


def test_real_footage_is_scored_and_none_is_unsafe(ray_local, test_videos, tmp_path):
    """The pipeline on the shared videos that score highest (bigbuckbunny: one keyframe over NudeNet's stock 0.5;
    testvideo: two near 0.4) and a plain one: nsfw_score on every clip, no clip dropped as unsafe, a rerun reuses
    the committed scores."""
    from pipelines.run import run_pipeline

    data = tmp_path / "input"
    data.mkdir()
    for name in ("bigbuckbunny.mp4", "testvideo.mp4", "bikes.mp4"):
        shutil.copy(test_videos / name, data / name)
    cfg = load_config(overrides={"stages": {"text": {"enabled": False}, "dedup": {"enabled": False}}})
    record = run_pipeline(str(data), str(tmp_path / "out"), cfg, log=lambda *_: None)
    clips = read_table(str(tmp_path / "out" / "clips"), "clips")
    assert clips.num_rows >= 8
    with_keyframes = set(read_table(str(tmp_path / "out" / "keyframes"), "keyframes").column("clip_id").to_pylist())
    scores = dict(zip(clips.column("clip_id").to_pylist(), clips.column("nsfw_score").to_pylist()))
    # every clip with keyframes is scored; a clip too short to hold an analysis sample (bikes' last 0.32 s) stays null
    assert {c for c, s in scores.items() if s is not None} == with_keyframes and len(with_keyframes) >= 8
    scores = {c: s for c, s in scores.items() if s is not None}
    assert all(0 <= s <= _unsafe_rule().max for s in scores.values()), scores
    assert max(scores.values()) > 0.1  # the detector ran on real pixels (testvideo's leaf scores ~0.4)
    assert "unsafe" not in record.counts["drop_reasons"]
    assert record.counts["safety"]["clips_scored"] == len(with_keyframes)
    assert not any(line.startswith("safety") for line in record.not_configured)
    again = run_pipeline(str(data), str(tmp_path / "out"), load_config(overrides={"stages": {"text": {"enabled": False}}}),
                         log=lambda *_: None)
    assert again.counts["safety"] == {"parts_to_score": 0, "parts_already_scored": 1}
