"""Copies that survive re-publishing: rotation flags, mirroring, re-cutting, shifting, letterboxing, grayscale,
another frame rate or bitrate -- generated from the shared videos, matched without comparing all pairs."""
import numpy as np
import pytest

from _copies import COPIES, build, pair_scores, sample_hashes
from curation.dedup import DedupParams, find_duplicates
from curation.dedup.segments import samples_table, segment_matches
from curation.scan import ScanParams, scan_video
from schemas import clips_schema, table_from_rows, videos_schema

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
    v, t, h = [], [], []
    for n in names:
        ts, hs = samples[n]
        v += [n] * len(ts)
        t += ts
        h += hs
    return samples_table(v, t, h)


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
