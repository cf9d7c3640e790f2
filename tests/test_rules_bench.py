"""`python -m bench rules`: its threshold sweep on hand-made scores, and one small run end to end (cached rerun)."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # bench/ is a folder of scripts in the repo, not an installed package

from bench import rules_bench  # noqa: E402

VIDEOS = Path(os.environ.get("VIDCURATE_TEST_VIDEOS", REPO.parent / "shared" / "data" / "videos"))


def test_sweep_spares_the_clean_clips_within_the_share():
    clean = np.array([0.1, 0.2, 0.3, 0.9, np.nan, 0.15, 0.25, 0.05, 0.12, 0.22])  # 10 clips, one unmeasured
    defect = np.array([0.5, 0.8, 1.2, np.nan])
    s = rules_bench.sweep(clean, defect, "max", 0.0)  # fail above t; nothing may drop: t above 0.9
    assert s["false_drops"] == 0 and s["threshold"] == pytest.approx((0.9 + 1.2) / 2) and s["recall"] == 0.25
    s = rules_bench.sweep(clean, defect, "max", 0.1)  # one clean clip may drop: the 0.9
    assert (s["allowed"], s["false_drops"]) == (1, 1)
    assert s["threshold"] == pytest.approx((0.3 + 0.5) / 2) and s["recall"] == 0.75  # the null defect is missed
    low = rules_bench.sweep(-clean, -defect, "min", 0.1)  # the same rule mirrored: fail below t
    assert low["threshold"] == pytest.approx(-s["threshold"]) and low["recall"] == s["recall"]
    none = rules_bench.sweep(clean, np.array([]), "max", 0.0)  # no defect targeted: the edge of the clean scores
    assert none["threshold"] == 0.9 and none["recall"] is None


def test_nulls_never_fail_and_variants_cut_at_clip_ends():
    assert rules_bench.fails(np.array([1.0, np.nan, 3.0]), 2.0, None).tolist() == [True, False, False]
    clips = [{"start_s": 0.1, "end_s": 2.1}, {"start_s": 2.1, "end_s": 7.1}, {"start_s": 7.1, "end_s": 12.0}]
    assert rules_bench.whole_clips_s(clips, 8.0) == pytest.approx(7.0)
    assert rules_bench.whole_clips_s(clips[2:], 3.0) == 3.0  # a first clip longer than the cut: cut inside it
    assert rules_bench.is_picture("sharpness") and not rules_bench.is_picture("audio_coverage")


def test_small_run_reads_the_rules_from_the_config_and_reruns_from_its_cache(tmp_path):
    from curation.defect_corpus import KIND_WEIGHTS

    src = VIDEOS / "realshort.mp4"  # 1.2 s, 320x240, sharpness ~28
    if not src.exists():
        pytest.skip(f"{src} not present")
    real = tmp_path / "real"
    real.mkdir()
    (real / "realshort.mp4").symlink_to(src)
    (real / "LABELS.json").write_text(json.dumps({"realshort.mp4": {"keep": True}}))
    (tmp_path / "cfg.yaml").write_text(
        "filters:\n"
        "  - {column: sharpness, min: 1000.0, reason: blurry}\n"  # every clip fails: a false drop on real footage
        "  - {column: contrast, min: 1000.0, reason: flat_picture}\n"  # a rule the bench has never heard of
        "  - {reason: letterbox, enabled: false}\n")
    argv = ["--work", str(tmp_path / "work"), "--config", str(tmp_path / "cfg.yaml"), "--real", str(real),
            "--videos", str(tmp_path / "none"), "--corpus-count", str(len(KIND_WEIGHTS)), "--no-bars", "--no-text",
            "--out", str(tmp_path / "rules.json")]
    first = rules_bench.main(argv)
    rows = {r["reason"]: r for r in first["rules"]}
    assert "letterbox" not in rows and rows["flat_picture"]["measured"] and rows["flat_picture"]["picture"]
    blurry = rows["blurry"]
    assert blurry["false_drops"]["real"] == [1, 1] and blurry["defect"] == "blur"
    assert blurry["corpus"]["positives"] >= 1 and blurry["corpus"]["recall"] == 1.0
    sw = blurry["sweep"]  # the budget split over the measured picture rules: nothing may drop of one clean clip
    assert sw["false_drops"] == 0 and sw["threshold"] < rows["blurry"]["scores"]["clean_real"]["min"] and sw["recall"] == 1.0
    assert first["picture_rules_together"]["now"]["real"] == {"dropped": 1, "clips": 1, "rate": 1.0}
    assert first["defects"]["blur"]["reasons"] == ["blurry"] and first["defects"]["blur"]["recall"] == 1.0
    assert "letterbox" not in first["defects"]  # its rule is off in this config
    assert first["timing_s"]["files_scanned"] == 1 + first["inputs"]["corpus"]["files"]
    md = rules_bench.markdown_table(first).splitlines()
    assert md[0].startswith("| rule") and "| blurry (`sharpness`) | < 1000 | 1 (100%) | 0 (–) | – |" in "\n".join(md)
    assert not any("too_short" in line for line in md)  # not a picture rule
    again = rules_bench.main(argv)  # everything from the cache
    assert again["timing_s"]["files_scanned"] == 0 and again["rules"] == first["rules"]
    assert json.loads((tmp_path / "rules.json").read_text())["rules"] == json.loads(json.dumps(first["rules"]))
    assert again["picture_rules_together"]["at_swept_thresholds"]["real"]["dropped"] == 0
