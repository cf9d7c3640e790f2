"""The pipeline on the generated demo set, against its ground_truth.json."""
import json
from collections import defaultdict

import pytest

from pipelines.config import load_config
from pipelines.run import run_pipeline
from schemas import read_table


@pytest.fixture(scope="module")
def demo_run(ray_local, demo_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_run") / "out"
    record = run_pipeline(str(demo_data), str(out), load_config(), log=lambda *_: None)
    truth = json.loads((demo_data / "ground_truth.json").read_text())["videos"]
    clips = read_table(str(out / "clips"), "clips").to_pylist()
    by_file = defaultdict(list)
    for c in sorted(clips, key=lambda c: (c["uri"], c["clip_index"])):
        by_file[c["uri"].rsplit("/", 1)[-1]].append(c)
    return out, record, truth, by_file


def test_every_hard_cut_is_found(demo_run):
    _, _, truth, by_file = demo_run
    checked = 0
    for name, t in truth.items():
        for cut in t["hard_cuts"]:
            starts = [c["start_frame"] for c in by_file[name]]
            assert any(abs(s - cut) <= 1 for s in starts), (name, cut, starts)
            checked += 1
    assert checked >= 3


def test_corrupt_file_is_an_error_row_and_the_run_succeeds(demo_run):
    out, record, truth, by_file = demo_run
    errors = read_table(str(out / "errors"), "errors").to_pylist()
    corrupt = [n for n, t in truth.items() if t["corrupt"]]
    assert corrupt and record.status == "succeeded"
    for name in corrupt:
        assert name not in by_file
        assert any(e["uri"].endswith(name) and e["message"] for e in errors)
    assert set(by_file) | {e["uri"].rsplit("/", 1)[-1] for e in errors} == set(truth)


def test_pan_speeds_recovered_within_15_percent(demo_run):
    _, _, truth, by_file = demo_run
    checked = 0
    for name, t in truth.items():
        if t["kind"] == "pan" and t["motion_norm_per_s"]:
            (clip,) = by_file[name]
            assert clip["motion"] == pytest.approx(t["motion_norm_per_s"], rel=0.15), name
            checked += 1
    assert checked >= 2


def test_expected_drop_reasons(demo_run):
    _, _, truth, by_file = demo_run
    for name, t in truth.items():
        if t["corrupt"]:
            continue
        reasons = {r for c in by_file[name] for r in c["drop_reasons"]}
        assert set(t["expect_drop"]) <= reasons, (name, t["expect_drop"], reasons)
        if t["kind"] in ("blur", "dark"):
            assert all(not c["kept"] for c in by_file[name])
        if not t["expect_drop"]:
            assert all(c["kept"] for c in by_file[name]), (name, [c["drop_reasons"] for c in by_file[name]])


def test_duplicates_found_and_nothing_else_grouped(demo_run):
    _, _, truth, by_file = demo_run
    grouped = {n for n, cs in by_file.items() for c in cs if c["dup_group_id"]}
    copies = {n for n, t in truth.items() if t["duplicate_of"] or t["exact_copy_of"]}
    originals = {t["duplicate_of"] or t["exact_copy_of"] for n, t in truth.items() if n in copies}
    assert grouped == copies | originals
    for name in copies:
        (clip,) = by_file[name]
        assert "duplicate" in clip["drop_reasons"]
        assert clip["dup_kind"] == ("exact" if truth[name]["exact_copy_of"] else "perceptual")
    for name in originals:
        assert all(c["kept"] for c in by_file[name])


def test_second_run_gives_identical_ids(demo_run, demo_data, tmp_path):
    _, _, _, by_file = demo_run
    run_pipeline(str(demo_data), str(tmp_path / "again"), load_config(), log=lambda *_: None)
    again = read_table(str(tmp_path / "again" / "clips"), "clips")
    first = sorted(c["clip_id"] for cs in by_file.values() for c in cs)
    assert sorted(again.column("clip_id").to_pylist()) == first
