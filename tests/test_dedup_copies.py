"""Copies that survive re-publishing: rotation flags, mirroring, re-cutting, shifting, letterboxing, grayscale,
another frame rate or bitrate -- generated from the shared videos, matched without comparing all pairs."""
import numpy as np
import pytest

from _copies import COPIES, build, pair_scores, sample_hashes
from curation.dedup import DedupParams, find_duplicates
from curation.dedup.segments import samples_table, segment_matches
from curation.scan import ScanParams, scan_video
from schemas import TABLES, clips_schema, table_from_rows, videos_schema

SOURCES = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")
# 21-bit seeds: more fast-motion re-cuts seeded, fine for a small corpus; the default (32 bits, for 1M clips)
# is checked too
SMALL = DedupParams(segment_seed_bits=21)


@pytest.fixture(scope="module")
def copies(test_videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("copies")
    truth = build(test_videos, out, SOURCES)
    samples = {name: sample_hashes(out / name) for name in truth}
    return out, truth, samples


def _samples_table(samples, names):
    v, t, h, r = [], [], [], []
    for n in names:
        ts, hs, rs = samples[n]
        v += [n] * len(ts)
        t += ts
        h += hs
        r += rs
    return samples_table(v, t, h, r)


def test_every_copy_matches_its_source_and_nothing_else(copies):
    _, truth, samples = copies
    default = segment_matches(_samples_table(samples, truth), DedupParams())
    score = pair_scores({frozenset((r["video_a"], r["video_b"])) for r in default.to_pylist()}, truth)
    assert score["false"] == [] and score["recall"] >= 0.9, score
    m = segment_matches(_samples_table(samples, truth), SMALL)
    found = {frozenset((r["video_a"], r["video_b"])) for r in m.to_pylist()}
    score = pair_scores(found, truth)
    assert score["false"] == []  # nothing distinct matched
    assert score["recall"] >= 0.95, score["missed"]
    for how in COPIES:  # each kind of copy finds its source
        for src in SOURCES:
            stem = src.rsplit(".", 1)[0]
            assert frozenset((f"{stem}.mp4", f"{stem}__{how}.mp4")) in found, (how, src)


def test_matched_span_of_a_recut_and_shifted_copy(copies):
    _, truth, samples = copies
    m = segment_matches(_samples_table(samples, ["bikes.mp4", "bikes__recut.mp4", "bikes__shift.mp4"]), SMALL)
    spans = {(r["video_a"], r["video_b"]): r for r in m.to_pylist()}
    recut = spans[("bikes.mp4", "bikes__recut.mp4")]
    # the re-cut copy starts 1.68 s (42 frames) into the source and stops 1.08 s before its end (8 s)
    assert recut["offset_s"] == pytest.approx(-1.68, abs=0.35)
    assert recut["a_start_s"] <= 1.68 + 0.8 and recut["a_end_s"] >= 8.0 - 1.08 - 0.8
    assert recut["symmetry"] == 0 and recut["mean_hamming"] <= 10
    shift = spans[("bikes.mp4", "bikes__shift.mp4")]
    assert shift["offset_s"] == pytest.approx(-0.28, abs=0.35)


def test_rotation_mirror_and_distinct_photo_stills(copies):
    """A turned copy matches under the right symmetry; the skimage photos as stills match nothing."""
    from skimage import data

    _, truth, samples = copies
    m = segment_matches(_samples_table(samples, ["bikes.mp4", "bikes__rot90.mp4", "bikes__mirror.mp4"]), DedupParams())
    sym = {r["video_b"]: r["symmetry"] for r in m.to_pylist() if r["video_a"] == "bikes.mp4"}
    assert sym["bikes__mirror.mp4"] != 0 and sym["bikes__rot90.mp4"] != 0
    from curation.hashes import phash

    names, t, h = [], [], []
    for name in ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "immunohistochemistry", "moon"):
        img = getattr(data, name)()
        for i in range(8):  # an 4 s still of the photo, 2 samples/s
            names.append(name)
            t.append(i * 0.5)
            h.append(phash(img))
    photos = samples_table(names, t, h)
    shared = _samples_table(samples, [n for n in truth if "__" not in n])
    import pyarrow as pa

    m = segment_matches(pa.concat_tables([photos, shared]), SMALL)
    assert m.num_rows == 0, m.to_pylist()


def _scan(path, name):
    r = scan_video(str(path), name, ScanParams(), "t")
    assert r.video is not None and not r.errors, r.errors
    return r


def test_rotated_and_mirrored_copies_group_with_their_source_clip_by_clip(copies):
    """Keyframe phashes as the scan computes them: each copy's clip joins the source clip's group; without the
    symmetric index the turned copies stay apart."""
    out, _, _ = copies
    names = ["carphone_pristine.mp4"] + [f"carphone_pristine__{h}.mp4" for h in ("rot90", "rot180", "rot270", "mirror")]
    scans = [_scan(out / n, n) for n in names]
    clips = table_from_rows([c for r in scans for c in r.clips], clips_schema, "clips")
    videos = table_from_rows([r.video for r in scans], videos_schema, "videos")
    assert clips.num_rows == 5  # one shot each
    res = find_duplicates(clips, videos, DedupParams(kinds=("exact", "perceptual")))
    assert len(set(res.table.column("dup_group_id").to_pylist())) == 1 and res.stats["dropped"] == 4
    assert set(res.table.column("dup_kind").to_pylist()) == {"perceptual"}
    plain = find_duplicates(clips, videos, DedupParams(kinds=("exact", "perceptual"), phash_symmetric=False))
    assert plain.stats["dropped"] == 0


def test_recut_copy_clips_are_segment_duplicates(copies):
    """A re-cut copy's clips have other boundaries than the source's: the segment match drops them, with its span."""
    out, _, samples = copies
    names = ["bikes.mp4", "bikes__recut.mp4"]
    scans = [_scan(out / n, n) for n in names]
    clips = table_from_rows([c for r in scans for c in r.clips], clips_schema, "clips")
    videos = table_from_rows([r.video for r in scans], videos_schema, "videos")
    vid_of = {r.video["relpath"]: r.video["video_id"] for r in scans}
    s = _samples_table(samples, names)
    s = samples_table([vid_of[v] for v in s.column("video_id").to_pylist()], s.column("t").to_pylist(), s.column("phash").to_pylist())
    res = find_duplicates(clips, videos, DedupParams(kinds=("exact", "perceptual", "segment"), segment_seed_bits=21), samples=s)
    assert res.segments is not None and res.segments.num_rows >= 1
    rows = res.table.to_pylist()
    copy_clips = [r for r in rows if r["video_id"] == vid_of["bikes__recut.mp4"] and r["duration_s"] >= 1.0]
    assert copy_clips and all(r["dup_of"] is not None for r in copy_clips)
    dropped = [r for r in rows if "duplicate" in r["drop_reasons"]]
    assert dropped and {r["dup_kind"] for r in dropped} <= {"perceptual", "segment"}
    assert any(r["dup_kind"] == "segment" for r in dropped)
    by_id = {r["clip_id"]: r for r in rows}
    for r in dropped:  # every dropped clip is paired with its kept clip directly, in the other video
        assert by_id[r["dup_of"]]["kept"] and by_id[r["dup_of"]]["video_id"] != r["video_id"]
    # the notes give the counts
    assert any(n.startswith("segment dedup:") for n in res.notes)
    assert np.isfinite(res.segments.column("offset_s").to_numpy()).all()


# ---------------------------------------------------------------- edits as re-uploads carry them (issue 21)
EDIT_SET = ("logo", "border", "pip_plain", "pip_blur", "crop80", "subtitles", "speed125", "mirror_crop_grade", "logo_speed")
EDIT_SOURCES = ("bikes.mp4", "bigbuckbunny.mp4")


@pytest.fixture(scope="module")
def edited(test_videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("edited")
    truth = build(test_videos, out, EDIT_SOURCES, EDIT_SET, ("comp2",), negatives=("carphone_pristine.mp4", "cockatoo.mp4"))
    samples = {name: sample_hashes(out / name) for name in truth}
    return truth, _samples_table(samples, truth)


def _found(m):
    return {frozenset((r["video_a"], r["video_b"])) for r in m.to_pylist()}


def test_edited_copies_and_compilations_match_their_sources_and_nothing_else(edited):
    from _copies import per_edit_recall

    truth, table = edited
    m = segment_matches(table, DedupParams())
    score = pair_scores(_found(m), truth)
    assert score["false"] == [], score["false"]  # the distinct videos pair with nothing
    recall = per_edit_recall(_found(m), truth)
    # every copy but one crop (a crop off the centre is the weak case: region hashes are centred crops)
    assert all(got == total for how, (got, total) in recall.items() if how != "crop80") and recall["crop80"][0] >= 1, recall
    rows = m.to_pylist()
    # the compilation's two spans: one row per source, each in its own part of the compilation
    comp = [r for r in rows if "comp2__" in r["video_a"] + r["video_b"] and "__" not in min(r["video_a"], r["video_b"])]
    start = {}  # where each source's footage starts in the compilation (4.5 s of bikes, then of bigbuckbunny)
    for r in comp:
        src, at = (r["video_a"], r["b_start_s"]) if "comp2" in r["video_b"] else (r["video_b"], r["a_start_s"])
        start[src] = min(start.get(src, at), at)
    assert start["bikes.mp4"] <= 0.5 and start["bigbuckbunny.mp4"] >= 3.5, comp
    by = {(r["video_a"], r["video_b"]): r for r in rows}
    for copy in ("bikes__pip_blur.mp4", "bikes__crop80.mp4"):  # found only through the region hashes
        r = by.get(("bikes.mp4", copy)) or by[(copy, "bikes.mp4")]
        assert r["edited"] and min(r["region_a"], r["region_b"]) < 1.0, r
    r = by.get(("bikes.mp4", "bikes__speed125.mp4")) or by[("bikes__speed125.mp4", "bikes.mp4")]
    scale = r["time_scale"] if r["video_a"] == "bikes.mp4" else 1 / r["time_scale"]
    assert scale == pytest.approx(0.8, abs=0.04), r  # 1.25x as fast: a second of the copy is 1.25 s of the source


def test_before_region_hashes_the_edits_were_missed(edited):
    truth, table = edited
    from _copies import per_edit_recall

    before = per_edit_recall(_found(segment_matches(table, DedupParams(kinds=("segment",), segment_speed_range=(1.0, 1.0)))), truth)
    assert before["pip_blur"][0] == 0 and before["crop80"][0] == 0, before  # (a border, a plain PiP: the content box crops)


def test_speed_change_fits_a_time_scale():
    """Synthetic samples: b plays a at 1.25x; the fitted line t_b = s * t_a + o has s = 0.8 and spans all of b."""
    rng = np.random.default_rng(0)
    ha = rng.integers(0, 2**63, 40, dtype=np.int64).astype(np.uint64) | np.uint64(1 << 63)
    ta = np.arange(40) * 0.5
    tb = np.arange(32) * 0.5
    hb = ha[np.minimum(39, np.round(tb * 1.25 / 0.5).astype(int))]
    table = samples_table(["a"] * 40 + ["b"] * 32, list(ta) + list(tb), list(ha) + list(hb))
    m = segment_matches(table, DedupParams()).to_pylist()
    assert len(m) == 1 and m[0]["time_scale"] == pytest.approx(0.8, abs=0.02) and m[0]["samples"] >= 30, m
    plain = segment_matches(table, DedupParams(segment_speed_range=(1.0, 1.0))).to_pylist()
    assert all(r["samples"] < 10 for r in plain), plain  # a shift alone matches a few seconds at most


def test_distinct_fades_are_never_paired(test_videos, tmp_path):
    """Scan level (scan + find_duplicates): fades.mp4, testvideo.mp4 and bigbuckbunny.mp4 open on black or fade
    through it; their flat keyframes must not group them. A re-encoded copy of bigbuckbunny still joins it."""
    truth = build(test_videos, tmp_path, ("bigbuckbunny.mp4",), ("reencode",), negatives=("fades.mp4", "testvideo.mp4"))
    scans = {n: _scan(tmp_path / n, n) for n in truth}
    clips = table_from_rows([c for r in scans.values() for c in r.clips], clips_schema, "clips")
    videos = table_from_rows([r.video for r in scans.values()], videos_schema, "videos")
    samples = table_from_rows([s for r in scans.values() for s in r.samples], TABLES["samples"], "samples")
    name_of = {r.video["video_id"]: n for n, r in scans.items()}
    res = find_duplicates(clips, videos, DedupParams(), samples=samples)
    groups: dict[str, set] = {}
    for v, g in zip(res.table.column("video_id").to_pylist(), res.table.column("dup_group_id").to_pylist()):
        if g is not None:
            groups.setdefault(g, set()).add(name_of[v])
    found = {frozenset((a, b)) for m in groups.values() for a in m for b in m if a < b}
    score = pair_scores(found, truth)
    assert score["false"] == [], score["false"]
    assert frozenset(("bigbuckbunny.mp4", "bigbuckbunny__reencode.mp4")) in found


def _scan_groups(scans, params, keyframes=True):
    clips = table_from_rows([c for r in scans.values() for c in r.clips], clips_schema, "clips")
    videos = table_from_rows([r.video for r in scans.values()], videos_schema, "videos")
    samples = table_from_rows([s for r in scans.values() for s in r.samples], TABLES["samples"], "samples")
    kf = table_from_rows([k for r in scans.values() for k in r.keyframes], TABLES["keyframes"], "keyframes") if keyframes else None
    name_of = {r.video["video_id"]: n for n, r in scans.items()}
    res = find_duplicates(clips, videos, params, samples=samples, keyframes=kf)
    groups: dict[str, set] = {}
    for v, g in zip(res.table.column("video_id").to_pylist(), res.table.column("dup_group_id").to_pylist()):
        if g is not None:
            groups.setdefault(g, set()).add(name_of[v])
    return {frozenset((a, b)) for m in groups.values() for a in m for b in m if a < b}, res


def test_keyframe_verification_finds_off_centre_crops(test_videos, tmp_path):
    """A 70 % crop off the centre, zoomed back, hashes like no centred crop of its source: the hashes alone miss it;
    ORB + RANSAC on the candidate's keyframes confirms it. Distinct footage stays apart."""
    truth = build(test_videos, tmp_path, ("pedestrians.avi", "bikes.mp4"), ("crop70",),
                  negatives=("cockatoo.mp4", "carphone_pristine.mp4"))
    scans = {n: _scan(tmp_path / n, n) for n in truth}
    params = DedupParams()
    found, res = _scan_groups(scans, params)
    assert pair_scores(found, truth)["false"] == []
    assert frozenset(("pedestrians.mp4", "pedestrians__crop70.mp4")) in found, res.notes
    assert res.stats["verify"]["verified"] >= 1
    hashes_only, _ = _scan_groups(scans, params, keyframes=False)
    assert pair_scores(hashes_only, truth)["tp"] < pair_scores(found, truth)["tp"]


def test_an_excerpt_gives_way_to_the_shot_it_was_cut_from(test_videos):
    """Real footage: bbb_excerpt_2s.mp4 is 4.75-6.75 s of big_buck_bunny_0_30.webm's 11.8 s opening shot. Whatever
    the keep policy's scores say (here the excerpt scores higher), the group keeps the longer clip."""
    import pyarrow as pa

    real = test_videos.parent / "real"
    if not (real / "bbb_excerpt_2s.mp4").exists():
        pytest.skip(f"real footage not found at {real}")
    scans = {n: _scan(real / n, n) for n in ("big_buck_bunny_0_30.webm", "bbb_excerpt_2s.mp4")}
    clips = table_from_rows([c for r in scans.values() for c in r.clips], clips_schema, "clips")
    videos = table_from_rows([r.video for r in scans.values()], videos_schema, "videos")
    samples = table_from_rows([s for r in scans.values() for s in r.samples], TABLES["samples"], "samples")
    excerpt = scans["bbb_excerpt_2s.mp4"].video["video_id"]
    is_excerpt = np.array([v == excerpt for v in clips.column("video_id").to_pylist()])
    i = clips.schema.get_field_index("quality")
    clips = clips.set_column(i, clips.schema.field(i), pa.array(np.where(is_excerpt, 0.99, 0.5), pa.float32()))

    def dropped(params):
        rows = find_duplicates(clips, videos, params, samples=samples).table.to_pylist()
        return {(r["video_id"] == excerpt, r["duration_s"] > 5) for r in rows if "duplicate" in r["drop_reasons"]}

    assert dropped(DedupParams()) == {(True, False)}  # the excerpt is dropped, the 11.8 s shot kept
    assert dropped(DedupParams(keep_longer_ratio=0)) == {(False, True)}  # by the scores alone the shot would go
