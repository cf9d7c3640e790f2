"""vidcurate evaluate: known errors in a hand-made run give known precision and recall; one real small run."""
import json

import pytest

from curation.evaluate import (
    clip_defects, copy_groups, evaluate_clips, match_boundaries, normalise_truth, predicted_cuts,
)


def _v(frames, spans=(), cuts=(), ignore=(), dup_of=None, dup_kind=None):
    return {"frames": frames, "defect_spans": [{"defect": d, "start": a, "end": b} for d, a, b in spans],
            "hard_cuts": list(cuts), "ignore_boundaries": list(ignore), "duplicate_of": dup_of, "dup_kind": dup_kind}


TRUTH = {"generator": "hand-made", "videos": {
    "blur_a.mp4": _v(100, [("blur", 0, 100)]),
    "blur_b.mp4": _v(100, [("blur", 0, 100)]),
    "cut.mp4": _v(100, cuts=[50]),
    "cut_far.mp4": _v(100, cuts=[60]),
    "black.mp4": _v(100, [("black", 40, 70)], ignore=[40, 70]),
    "orig.mp4": _v(100),
    "copy_exact.mp4": _v(100, [("duplicate", 0, 100)], dup_of="orig.mp4", dup_kind="exact"),
    "copy_mirror.mp4": _v(100, [("duplicate", 0, 100)], dup_of="orig.mp4", dup_kind="mirrored"),
    "text.mp4": _v(100, [("text", 0, 100)]),
    "flicker.mp4": _v(100, [("flicker", 0, 100)]),
}}


def _c(name, a, b, split="whole", reasons=(), group=None):
    return {"name": name, "start_frame": a, "end_frame": b, "split_reason": split,
            "drop_reasons": list(reasons), "dup_group_id": group}


# Known errors: blur_a missed, a clean clip of cut.mp4 called blurry, cut_far's cut found 4 frames off,
# a false cut in flicker.mp4, the mirrored copy missed, flicker.mp4 wrongly grouped with text.mp4.
CLIPS = [
    _c("blur_a.mp4", 0, 100),
    _c("blur_b.mp4", 0, 100, reasons=["blurry"]),
    _c("cut.mp4", 0, 51, "cut"), _c("cut.mp4", 51, 100, "cut", reasons=["blurry"]),
    _c("cut_far.mp4", 0, 64, "cut"), _c("cut_far.mp4", 64, 100, "cut"),
    _c("black.mp4", 0, 40), _c("black.mp4", 40, 70, "black", reasons=["black_frames", "static"]),
    _c("black.mp4", 70, 100),
    _c("orig.mp4", 0, 100, group="g1"), _c("copy_exact.mp4", 0, 100, reasons=["duplicate"], group="g1"),
    _c("copy_mirror.mp4", 0, 100),
    _c("text.mp4", 0, 100, group="g2"),
    _c("flicker.mp4", 0, 30, "cut", reasons=["duplicate"], group="g2"), _c("flicker.mp4", 30, 100, "cut"),
    _c("not_in_truth.mp4", 0, 10, reasons=["blurry"]),
]
RULES = {"blurry", "black_frames", "static", "duplicate", "dark", "too_short"}


@pytest.fixture(scope="module")
def result():
    return evaluate_clips(CLIPS, TRUTH, RULES)


def _row(result, defect):
    return next(d for d in result["defects"] if d["defect"] == defect)


def test_defect_precision_and_recall_count_the_planted_errors(result):
    blur = _row(result, "blur")
    assert (blur["tp"], blur["fp"], blur["fn"], blur["fp_on_clean"]) == (1, 1, 1, 1)
    assert (blur["precision"], blur["recall"]) == (0.5, 0.5)
    black = _row(result, "black")
    assert (black["tp"], black["fp"], black["fn"]) == (1, 0, 0)
    static = _row(result, "static")  # nothing static in truth: the black clip is a false static, but not clean
    assert (static["positives"], static["fp"], static["fp_on_clean"], static["precision"]) == (0, 1, 0, 0.0)
    assert result["clips_unknown_file"] == 1 and result["clips_scored"] == len(CLIPS) - 1


def test_duplicate_defect_is_scored_per_copy_group(result):
    dup = _row(result, "duplicate")
    # group of 3 should lose 2 (found 1); flicker.mp4 dropped as a duplicate outside any group
    assert (dup["positives"], dup["tp"], dup["fn"], dup["fp"]) == (2, 1, 1, 1)
    assert dup["precision"] == 0.5 and dup["recall"] == 0.5


def test_defects_without_a_rule_are_reported_not_hidden(result):
    assert _row(result, "text")["status"] == "no rule in this run"
    flicker = _row(result, "flicker")  # mapped to a reason that this run's rules (RULES) do not give
    assert flicker["status"] == "no rule in this run" and flicker["reason"] == "flicker"
    assert (flicker["positives"], flicker["recall"]) == (2, 0.0)
    assert flicker["reasons_given"] == {"duplicate": 1, "(kept)": 1}
    assert {"blocky", "shake", "letterbox", "fade"} <= {d["defect"] for d in result["defects"]}
    unmapped = _row(evaluate_clips(CLIPS, TRUTH, RULES, {"flicker": None}), "flicker")
    assert unmapped["status"] == "no matching rule" and unmapped["reason"] is None


def test_every_corpus_defect_maps_to_a_default_rule():
    """fade, flicker, shake, blocky and letterbox are caught by default rules, so evaluate measures them."""
    from curation.evaluate import DEFECT_REASONS
    from pipelines.config import load_config

    from curation.evaluate import reasons_of

    rules = {r.reason for r in load_config().filters}  # which column measures each is the scorers' business
    expected = {"fade": "fade", "flicker": "flicker", "shake": "shaky", "blocky": "blocky", "letterbox": "letterbox"}
    assert {d: reasons_of(DEFECT_REASONS[d])[0] for d in expected} == expected
    assert set(expected.values()) <= rules
    reasons = {"flicker", "fade", "blocky", "shaky", "letterbox"}
    clips = [_c("flicker.mp4", 0, 30, "cut", reasons=["flicker"]), _c("flicker.mp4", 30, 100, "cut"),
             _c("text.mp4", 0, 100, reasons=["flicker"])]
    row = _row(evaluate_clips(clips, TRUTH, reasons), "flicker")
    assert (row["status"], row["tp"], row["fp"], row["fn"]) == ("measured", 1, 1, 1)


def test_a_defect_several_rules_catch_counts_a_clip_any_of_them_flags():
    clips = [_c("blur_a.mp4", 0, 100, reasons=["soft"]), _c("blur_b.mp4", 0, 100, reasons=["blurry"]),
             _c("text.mp4", 0, 100, reasons=["soft"])]
    row = _row(evaluate_clips(clips, TRUTH, {"soft"}, {"blur": ("blurry", "soft")}), "blur")
    assert (row["reason"], row["status"], row["tp"], row["fp"], row["fn"]) == ("blurry|soft", "measured", 2, 1, 0)


def test_shot_boundaries_within_two_frames(result):
    sb = result["shot_boundaries"]
    # cut.mp4: 51 vs 50 (tp); cut_far.mp4: 64 vs 60 (fp + fn); flicker.mp4: 30 (fp); black edges ignored
    assert (sb["tp"], sb["fp"], sb["fn"]) == (1, 2, 1)
    assert match_boundaries([10, 20], [12, 19, 21]) == (2, 1, 0)
    assert match_boundaries([10], [13]) == (0, 1, 1)


def test_predicted_cuts_skip_black_edges_and_windows():
    clips = [_c("x", 0, 40, "cut"), _c("x", 40, 70, "black"), _c("x", 70, 90, "cut"), _c("x", 90, 600, "window"),
             _c("x", 600, 1100, "window"), _c("x", 1100, 1200, "cut")]
    assert predicted_cuts(clips) == [90, 1100]


def test_duplicate_pairs(result):
    dp = result["duplicate_pairs"]
    # truth pairs: orig-exact, orig-mirror, exact-mirror; predicted: orig-exact, flicker-text
    assert (dp["tp"], dp["fp"], dp["fn"]) == (1, 1, 2)
    assert dp["recall_by_copy_kind"] == {"exact": {"pairs": 1, "found": 1, "recall": 1.0},
                                         "mirrored": {"pairs": 1, "found": 0, "recall": 0.0}}
    assert dp["false_pairs"] == [("flicker.mp4", "text.mp4")]


def test_clip_defect_needs_half_the_frames():
    v = _v(100, [("black", 40, 70)])
    assert clip_defects(v, 40, 70) == {"black"}
    assert clip_defects(v, 0, 50) == set()  # 10 of 50 frames
    assert clip_defects(v, 50, 80) == {"black"}  # 20 of 30


def test_demo_set_truth_is_understood():
    """The small demo set's v1 truth: kinds and segments become defect spans."""
    small = {"generator": "vidcurate.sample_data v1", "videos": {
        "blurry.mp4": {"kind": "blur", "frames": 100, "hard_cuts": [], "segments": [], "duplicate_of": None},
        "fade_black.mp4": {"kind": "fade", "frames": 190, "hard_cuts": [130], "duplicate_of": None, "segments": [
            {"start": 0, "end": 50, "motion": "pan"}, {"start": 50, "end": 75, "motion": "fade_out"},
            {"start": 75, "end": 130, "motion": "near_black"}, {"start": 130, "end": 190, "motion": "pan"}]},
        "a.mp4": {"kind": "pan", "frames": 125, "hard_cuts": [], "segments": [], "duplicate_of": None},
        "a_copy.mp4": {"kind": "exact_copy", "frames": 125, "hard_cuts": [], "segments": [], "duplicate_of": "a.mp4"},
        "bad.mp4": {"kind": "corrupt", "corrupt": True, "frames": 0, "hard_cuts": [], "segments": []},
    }}
    v = normalise_truth(small)
    assert "bad.mp4" not in v
    assert v["blurry.mp4"]["defect_spans"] == [{"defect": "blur", "start": 0, "end": 100}]
    assert {(s["defect"], s["start"], s["end"]) for s in v["fade_black.mp4"]["defect_spans"]} == {
        ("fade", 50, 75), ("black", 75, 130)}
    assert v["fade_black.mp4"]["ignore_boundaries"] == [50, 75, 130]
    assert v["a_copy.mp4"]["dup_kind"] == "exact"
    assert copy_groups(v) == [["a.mp4", "a_copy.mp4"]]


def test_end_to_end_on_a_small_defect_corpus(ray_local, tmp_path, capsys):
    """A defect corpus of one video per kind → the pipeline on Ray → `vidcurate evaluate` writes evaluation.json."""
    from curation.defect_corpus import KIND_WEIGHTS, write_defect_corpus
    from pipelines.cli import main
    from pipelines.config import load_config
    from pipelines.run import run_pipeline

    data, out = tmp_path / "in", tmp_path / "out"
    truth = write_defect_corpus(data, count=len(KIND_WEIGHTS))  # one video of each kind
    run_pipeline(str(data), str(out), load_config(), log=lambda *_: None)
    assert main(["evaluate", str(out), "--truth", str(data / "ground_truth.json")]) == 0
    printed = capsys.readouterr().out
    assert "shot boundaries" in printed and "no matching rule" not in printed
    result = json.loads((out / "evaluation.json").read_text())
    assert result["videos_scored"] == len(truth["videos"]) and not result["videos_without_clips"]
    rows = {d["defect"]: d for d in result["defects"]}
    # One video of each kind: the defects the default rules are built for are all found.
    for defect in ("black", "static", "short", "underexposed", "blur", "letterbox", "fade", "flicker", "shake",
                   "blocky"):
        assert rows[defect]["positives"] >= 1 and rows[defect]["recall"] == 1.0, rows[defect]
    assert result["shot_boundaries"]["tp"] >= 1
    assert main(["evaluate", str(out), "--truth", str(tmp_path / "nope.json")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    # The dashboard shows the table: from evaluation.json, or from the truth next to the run's input.
    from curation.dashboard import build_dashboard, query

    for source in ("evaluation.json", "ground truth next to the input"):
        db, html = build_dashboard(str(out))
        rows = query(str(out), "select section, name, tp from evaluation where name in ('black', 'file pairs')")
        assert "black" in rows and "file pairs" in rows, source
        assert "Curation quality against ground truth" in html.read_text(encoding="utf-8"), source
        (out / "evaluation.json").unlink(missing_ok=True)


# --------------------------------------------------------------------------- keep/drop labels

LABELS = {
    "_about": "hand-made",
    "film.mp4": {"keep": True, "spans": [{"start_s": 8.0, "end_s": 10.0, "keep": False, "defect": "black"}],
                 "notes": "ignored"},
    "cartoon.webm": {"keep": "every shot"},
    "bars.mp4": {"keep": False},
    "excerpt.mp4": {"keep": False, "copy_of": {"file": "cartoon.webm", "span_s": [4.0, 6.0]}},
    "absent.mp4": {"keep": True},
}


def _l(name, a, b, reasons=()):
    return {"name": name, "start_s": a, "end_s": b, "drop_reasons": list(reasons)}


# film: 3 clips, the last (8-10 s) labelled drop by its span; one good clip dropped as blocky.
# cartoon: every shot; its 3-7 s clip is dropped as a duplicate of the excerpt, which is kept: right either way.
# bars: dropped as static. A clip under "sub/" matches its label by base name; one file has no label.
LABEL_CLIPS = [
    _l("film.mp4", 0, 4), _l("film.mp4", 4, 8.5, ["blocky"]), _l("film.mp4", 8.5, 10, ["dark", "black_frames"]),
    _l("sub/cartoon.webm", 0, 3), _l("sub/cartoon.webm", 3, 7, ["duplicate"]), _l("sub/cartoon.webm", 7, 9),
    _l("bars.mp4", 0, 10, ["static", "blocky"]),
    _l("excerpt.mp4", 0, 2),
    _l("unlabelled.mp4", 0, 5, ["dark"]),
]


@pytest.fixture(scope="module")
def labelled():
    from curation.evaluate import evaluate_labels

    return evaluate_labels(LABEL_CLIPS, LABELS, {"blocky", "dark", "static", "black_frames", "blurry", "duplicate"})


def test_clean_clip_retention_counts_clips_labelled_keep(labelled):
    ret = labelled["retention"]
    # keep-labelled, counted: film 0-4, film 4-8.5 (span covers 0.5 of 4.5 s: under half), cartoon 0-3, 7-9
    assert (ret["clips"], ret["kept"], ret["retention"]) == (4, 3, 0.75)
    assert ret["dropped_by_reason"] == {"blocky": 1}
    assert labelled["either_way"] == 2  # cartoon 3-7 dropped as duplicate, the excerpt kept instead
    assert labelled["clips_scored"] == 8 and labelled["clips_unlabelled_file"] == 1
    assert labelled["files_without_clips"] == ["absent.mp4"]


def test_reason_precision_and_recall_on_labelled_drops(labelled):
    rows = {r["reason"]: r for r in labelled["reasons"]}
    # labelled drop, counted: film 8.5-10 and bars (2 clips)
    assert (rows["blocky"]["tp"], rows["blocky"]["fp"], rows["blocky"]["precision"], rows["blocky"]["recall"]) == (
        1, 1, 0.5, 0.5)
    assert (rows["dark"]["tp"], rows["dark"]["fp"], rows["dark"]["recall"]) == (1, 0, 0.5)
    assert rows["blurry"]["flagged"] == 0 and rows["blurry"]["precision"] is None
    assert rows["duplicate"]["flagged"] == 0  # the copy group's drop counts neither way
    assert labelled["drops"] == {"clips": 2, "dropped": 2, "recall": 1.0, "precision": round(2 / 3, 4)}
    verdicts = {f["file"]: f["verdict"] for f in labelled["file_verdicts"]}
    assert verdicts == {"film.mp4": "right", "cartoon.webm": "right", "bars.mp4": "right",
                        "excerpt.mp4": "right", "absent.mp4": "no clips"}


def test_every_shot_and_copy_groups_change_the_file_verdict():
    from curation.evaluate import evaluate_labels

    clips = [_l("cartoon.webm", 0, 3, ["blurry"]), _l("cartoon.webm", 3, 7, ["duplicate"]), _l("excerpt.mp4", 0, 2,
                                                                                                 ["duplicate"])]
    res = evaluate_labels(clips, LABELS)
    verdicts = {f["file"]: f["verdict"] for f in res["file_verdicts"]}
    # nothing of the group kept: the duplicate drop of a shot labelled keep is a false drop again
    assert verdicts["cartoon.webm"] == "wrong" and res["either_way"] == 0
    assert res["retention"]["clips"] == 2 and res["retention"]["kept"] == 0


def test_malformed_labels_are_refused_with_the_file_named():
    from curation.evaluate import is_labels, normalise_labels

    with pytest.raises(ValueError, match="film.mp4"):
        normalise_labels({"film.mp4": {"keep": "yes"}})
    with pytest.raises(ValueError, match="end_s"):
        normalise_labels({"film.mp4": {"keep": True, "spans": [{"start_s": 3, "end_s": 1, "keep": False}]}})
    assert is_labels(LABELS) and not is_labels(TRUTH)


def test_shared_labels_file_reads():
    from pathlib import Path

    from curation.evaluate import normalise_labels

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "LABELS.json"
    if not path.exists():
        pytest.skip(f"{path} not present")
    labels = normalise_labels(json.loads(path.read_text()))
    assert labels["big_buck_bunny_0_30.webm"]["every_shot"] and not labels["smpte-2997.mp4"]["keep"]
    assert labels["bbb_excerpt_2s.mp4"]["copy_of"] == {"file": "big_buck_bunny_0_30.webm", "span_s": [4.75, 6.75]}


def test_evaluate_verb_with_labels_writes_retention_the_dashboard_shows(tmp_path, capsys):
    """`vidcurate evaluate OUT --labels FILE` on a synthetic run folder; the dashboard headline shows retention."""
    import os
    from pathlib import Path

    import pyarrow.parquet as pq

    from pipelines.cli import main
    from _dashboard_run import SCRIPT_NAME, make_run

    videos = Path(os.environ.get("VIDCURATE_TEST_VIDEOS", Path(__file__).resolve().parents[2] / "shared/data/videos"))
    if not videos.exists():
        pytest.skip("shared videos not present")
    out = make_run(tmp_path / "out", tmp_path / "in", videos)
    labels = {"nature/bikes.mp4": {"keep": True, "spans": [{"start_s": 0, "end_s": 2.0, "keep": False}]},
              "nature/cockatoo.mp4": {"keep": "every shot"}, SCRIPT_NAME: {"keep": False}}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    assert main(["evaluate", str(out), "--labels", str(tmp_path / "labels.json")]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "evaluation.json").read_text())
    assert "defects" not in result and "clean-clip retention" in printed
    # the same count, straight from the clips table
    clips = pq.read_table(out / "clips").to_pylist()
    names = {"bikes.mp4": "nature/bikes.mp4", "cockatoo.mp4": "nature/cockatoo.mp4"}
    keep = [c for c in clips if any(c["uri"].endswith(k) for k in names)
            and not (c["uri"].endswith("bikes.mp4") and c["end_s"] <= 2.0 + 1e-9)]
    ret = result["labels"]["retention"]
    assert ret["clips"] == len(keep) > 0 and ret["kept"] == sum(not c["drop_reasons"] for c in keep)
    from curation.dashboard import build_dashboard, query

    _, html = build_dashboard(str(out))
    assert f"({ret['kept']} of {ret['clips']} clips a person labelled keep were kept)" in html.read_text(encoding="utf-8")
    assert "clean-clip retention" in query(str(out), "select name from evaluation where section = 'labels'")
    # without evaluation.json the dashboard scores the run against a LABELS.json next to its input
    (out / "evaluation.json").unlink()
    (tmp_path / "in" / "LABELS.json").write_text(json.dumps(labels))
    _, html = build_dashboard(str(out))
    assert f"({ret['kept']} of {ret['clips']} clips a person labelled keep were kept)" in html.read_text(encoding="utf-8")
    assert main(["evaluate", str(out)]) == 2  # neither --truth nor --labels
    (tmp_path / "bad.json").write_text(json.dumps({"x.mp4": {"keep": "maybe"}}))
    assert main(["evaluate", str(out), "--labels", str(tmp_path / "bad.json")]) == 2
    assert "x.mp4" in capsys.readouterr().err
