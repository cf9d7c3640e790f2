"""Duplicate detection: planted exact / perceptual / semantic duplicates, keep policy, bounded blocks, real videos."""
import itertools

import numpy as np
import pyarrow as pa
import pytest

from curation.dedup import DedupParams, find_duplicates, semantic_edges
from curation.dedup.perceptual import perceptual_edges
from schemas import clips_schema, table_from_rows, videos_schema

RNG = np.random.default_rng(0)
D = 32


def _unit(v):
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _random_hashes(k):
    return [int(h) for h in RNG.integers(0, 2**63, size=k, dtype=np.int64)]


def _flip(h, bits):
    for b in bits:
        h ^= 1 << b
    return h


def _clip(i, video="v0", start=None, phash=None, emb=None, aesthetic=None, quality=0.5, duration=2.0, drop=()):
    start = i * 100 if start is None else start
    return dict(
        clip_id=f"c{i:03d}", video_id=video, uri=f"file:///{video}.mp4", clip_index=i, start_frame=start,
        end_frame=start + 50, num_frames=50, start_s=start / 25, end_s=(start + 50) / 25, duration_s=duration,
        fps=25.0, width=320, height=240, split_reason="cut", phash=phash, embedding=emb,
        aesthetic=aesthetic, quality=quality, drop_reasons=list(drop), kept=not drop,
    )


def _videos(*pairs):
    return table_from_rows(
        [dict(video_id=v, uri=f"file:///{v}.mp4", relpath=f"{v}.mp4", content_hash=h, file_size=1) for v, h in pairs],
        videos_schema, "videos",
    )


@pytest.fixture(scope="module")
def planted():
    """20 distinct clips plus planted duplicates of each kind; returns (clips, videos, expected groups)."""
    base_emb = _unit(RNG.standard_normal((20, D)))
    rows = [_clip(i, video=f"v{i % 4}", phash=_random_hashes(3), emb=base_emb[i].tolist(), aesthetic=5.0) for i in range(20)]
    # exact: video v9 is a byte copy of v1 -> clip 20 has clip 1's span in it
    rows.append(_clip(20, video="v9", start=rows[1]["start_frame"], phash=_random_hashes(3), emb=_unit(RNG.standard_normal(D)).tolist(), aesthetic=4.0))
    # perceptual: clip 21 = clip 2 with 3 bits flipped in every keyframe (a repeat inside the same video)
    rows.append(_clip(21, video="v2", phash=[_flip(h, [1, 20, 40]) for h in rows[2]["phash"]], emb=_unit(RNG.standard_normal(D)).tolist(), aesthetic=6.0))
    # perceptual with one odd keyframe: median still small
    ph = [_flip(rows[3]["phash"][0], [5]), _random_hashes(1)[0], _flip(rows[3]["phash"][2], [7, 9])]
    rows.append(_clip(22, video="v0", phash=ph, emb=_unit(RNG.standard_normal(D)).tolist(), aesthetic=None))
    # semantic: clips 23, 24 are tiny perturbations of clip 4's embedding
    for i in (23, 24):
        e = _unit(base_emb[4] + 0.02 * RNG.standard_normal(D))
        rows.append(_clip(i, video="v3", phash=_random_hashes(3), emb=e.tolist(), aesthetic=3.0))
    # far-but-not-too-far: 2 of 3 keyframes differ by 12 bits -> not a duplicate at threshold 8
    ph = [_flip(rows[5]["phash"][0], range(12)), _flip(rows[5]["phash"][1], range(20, 32)), rows[5]["phash"][2]]
    rows.append(_clip(25, video="v1", phash=ph, emb=_unit(RNG.standard_normal(D)).tolist(), aesthetic=5.0))
    clips = table_from_rows(rows, clips_schema, "clips")
    videos = _videos(("v0", "h0"), ("v1", "h1"), ("v2", "h2"), ("v3", "h3"), ("v9", "h1"))
    groups = {frozenset({"c001", "c020"}): "exact", frozenset({"c002", "c021"}): "perceptual",
              frozenset({"c003", "c022"}): "perceptual", frozenset({"c004", "c023", "c024"}): "semantic"}
    return clips, videos, groups


def _groups(table):
    out = {}
    for cid, g in zip(table.column("clip_id").to_pylist(), table.column("dup_group_id").to_pylist()):
        if g is not None:
            out.setdefault(g, set()).add(cid)
    return {frozenset(v) for v in out.values()}


def test_planted_duplicates_found_and_nothing_else(planted):
    clips, videos, expected = planted
    res = find_duplicates(clips, videos, DedupParams(points_per_cluster=8))
    assert _groups(res.table) == set(expected)
    rows = {r["clip_id"]: r for r in res.table.to_pylist()}
    for members, kind in expected.items():
        for cid in members:
            if rows[cid]["dup_of"] != cid:
                assert rows[cid]["dup_kind"] == kind, cid
    # non-members are untouched
    assert rows["c025"]["dup_group_id"] is None and rows["c025"]["kept"]
    assert res.stats["dropped"] == 5
    assert sum(not r["kept"] for r in rows.values()) == 5


def test_keep_policy_and_drop_reasons(planted):
    clips, videos, _ = planted
    rows = {r["clip_id"]: r for r in find_duplicates(clips, videos, DedupParams()).table.to_pylist()}
    # highest aesthetic wins: c021 (6.0) over c002 (5.0); null aesthetic loses: c003 (5.0) over c022 (None)
    assert rows["c002"]["dup_of"] == "c021" and rows["c021"]["kept"] and rows["c002"]["drop_reasons"] == ["duplicate"]
    assert rows["c022"]["dup_of"] == "c003" and not rows["c022"]["kept"]
    assert rows["c021"]["dup_of"] == "c021" and rows["c021"]["dup_similarity"] == pytest.approx(1.0)
    assert rows["c002"]["dup_similarity"] == pytest.approx(1 - 3 / 64)
    # another policy: lowest aesthetic first
    pol = DedupParams(keep_policy=(("aesthetic", "asc"), ("clip_id", "asc")))
    rows = {r["clip_id"]: r for r in find_duplicates(clips, videos, pol).table.to_pylist()}
    assert rows["c002"]["dup_of"] == "c002" and rows["c021"]["dup_of"] == "c002"


def test_already_dropped_clip_is_member_but_not_representative(planted):
    clips, videos, _ = planted
    rows = clips.to_pylist()
    for r in rows:
        if r["clip_id"] == "c021":  # best aesthetic, but already dropped for blur
            r["drop_reasons"], r["kept"] = ["blurry"], False
    clips2 = table_from_rows(rows, clips_schema, "clips")
    res = {r["clip_id"]: r for r in find_duplicates(clips2, videos, DedupParams()).table.to_pylist()}
    assert res["c021"]["dup_of"] == "c002" and res["c021"]["drop_reasons"] == ["blurry", "duplicate"]
    assert res["c002"]["kept"] and res["c002"]["dup_of"] == "c002"
    # rerun is idempotent: the earlier "duplicate" verdict is recomputed, not stacked
    again = find_duplicates(find_duplicates(clips2, videos, DedupParams()).table, videos, DedupParams()).table
    assert again.column("drop_reasons").to_pylist() == [res[c]["drop_reasons"] for c in again.column("clip_id").to_pylist()]


def test_no_embeddings_skips_semantic_with_a_note(planted):
    clips, videos, _ = planted
    clips = clips.set_column(clips.schema.get_field_index("embedding"), clips.schema.field("embedding"),
                             pa.nulls(clips.num_rows, pa.list_(pa.float32())))
    res = find_duplicates(clips, videos, DedupParams())
    assert any(n.startswith("semantic dedup: skipped, no embeddings") for n in res.notes)
    assert frozenset({"c004", "c023", "c024"}) not in _groups(res.table)
    assert res.stats["pairs"]["semantic"] == 0


def test_semantic_blocks_and_clusters_match_brute_force():
    """Small blocks and many clusters (the bounded-memory path) find exactly the brute-force pairs."""
    centers = _unit(RNG.standard_normal((30, D)))
    x = _unit(centers[RNG.integers(0, 30, 600)] + 0.35 * RNG.standard_normal((600, D)))
    dup_src = RNG.choice(600, 60, replace=False)
    x = np.concatenate([x, _unit(x[dup_src] + 0.03 * RNG.standard_normal((60, D)))])
    eps = 0.05
    sims = x @ x.T
    iu = np.triu_indices(len(x), 1)
    truth = {(int(a), int(b)) for a, b in zip(*iu) if sims[a, b] >= 1 - eps}
    assert len(truth) >= 60
    small = DedupParams(semantic_eps=eps, points_per_cluster=40, block_size=16, max_clusters_per_point=4)
    edges, stats = semantic_edges(x, small)
    assert stats["k"] > 10
    found = set(zip(edges.a.tolist(), edges.b.tolist()))
    assert found <= truth  # precision is exact by construction
    assert len(found) / len(truth) >= 0.98
    big, _ = semantic_edges(x, DedupParams(semantic_eps=eps, points_per_cluster=40, block_size=4096, max_clusters_per_point=4))
    assert set(zip(big.a.tolist(), big.b.tolist())) == found  # block size changes memory, not results


def test_perceptual_index_matches_brute_force():
    h = np.array([_random_hashes(3) for _ in range(300)], dtype=np.uint64)
    near = h[:40].copy()
    for i in range(40):
        near[i] = [_flip(int(v), RNG.choice(64, RNG.integers(0, 9), replace=False).tolist()) for v in near[i]]
    h = np.concatenate([h, near])
    edges = perceptual_edges(np.arange(len(h)), h, 8, 4)
    d = np.median(np.bitwise_count(h[:, None, :] ^ h[None, :, :]), axis=2)
    truth = {(a, b) for a, b in zip(*np.nonzero(np.triu(d <= 8, 1)))}
    assert set(zip(edges.a.tolist(), edges.b.tolist())) == truth
    assert len(truth) >= 40


def _scan_clips(path, name):
    """Clip rows with the keyframe phashes the pipeline computes (curation.scan: its samples, its keyframe choice)."""
    from curation.scan import ScanParams, _keyframes, _SampleRecord
    from curation.decode import DecodePlan, decode
    from curation.hashes import phash
    from curation.split import ShotDetector, SplitParams, clip_spans, split_black_runs
    from curation.decode import frame_rate

    params = ScanParams()
    det = ShotDetector(params.split)
    samples = []
    with open(path, "rb") as f:
        res = decode(f, DecodePlan(), det.feed, lambda s: samples.append(_SampleRecord(s.index, s.t, {}, phash(s.rgb), b"", (0, 0), None, None, (0, 0))))
    fps = frame_rate(res)
    spans = clip_spans(det.shot_starts(), res.num_frames, fps, params.split.max_clip_s)
    spans = split_black_runs(spans, det.black, max(1, round(params.split.black_min_s * fps)))
    out = []
    for span in spans:
        inside = [s for s in samples if span.start <= s.index < span.end]
        keys = _keyframes(inside, span.start, span.end, params.keyframes_at)
        if keys and span.reason != "black":
            out.append((span.start, span.end, [s.phash for _, s in keys]))
    return out


@pytest.mark.slow
def test_real_videos_only_the_carphones_match(test_videos, expected):
    """Keyframes as the scan picks and hashes them; any rotation or mirror of a clip is compared too."""
    rows, names = [], {}
    for name in expected:
        if name.startswith("_"):
            continue
        for ci, (s, e, hashes) in enumerate(_scan_clips(test_videos / name, name)):
            r = _clip(len(rows), video=name, start=s, phash=hashes)
            r.update(end_frame=e, num_frames=e - s)
            names[r["clip_id"]] = f"{name}#{ci}"
            rows.append(r)
    clips = table_from_rows(rows, clips_schema, "clips")
    videos = _videos(*[(n, f"hash-{n}") for n in {r["video_id"] for r in rows}])
    res = find_duplicates(clips, videos, DedupParams(kinds=("exact", "perceptual")))
    groups = {frozenset(names[c] for c in g) for g in _groups(res.table)}
    assert groups == {frozenset({"carphone_pristine.mp4#0", "carphone_distorted.mp4#0"})}
    # and with a margin on both sides of the threshold, over all 8 symmetries
    from curation.dedup.perceptual import median_hamming

    by_name = {names[r["clip_id"]]: np.array(r["phash"], np.uint64) for r in rows}
    med = {(a, b): float(median_hamming(by_name[a][None], by_name[b][None])[0]) for a, b in itertools.combinations(by_name, 2)}
    carphone_pair = [k for k in med if set(k) == {"carphone_pristine.mp4#0", "carphone_distorted.mp4#0"}]
    assert len(carphone_pair) == 1 and med.pop(carphone_pair[0]) <= 4
    other_video = {k: v for k, v in med.items() if k[0].split("#")[0] != k[1].split("#")[0]}
    assert min(other_video.values()) >= 14, min(other_video.items(), key=lambda kv: kv[1])
    # windows of one long static-camera shot (pedestrians: same street, other people) come closest, still above 6
    assert min(med.values()) >= 8, min(med.items(), key=lambda kv: kv[1])


@pytest.mark.slow
def test_partitioned_dedup_matches_local(planted, ray_local, tmp_path, monkeypatch):
    """The run's dedup over partitions (exact by hash shuffle, perceptual by index partitions, semantic as
    k-means map/reduce: assignment per shard file, pairs per cluster shard) finds find_duplicates' groups."""
    import hashlib

    from curation.sources import VideoFile
    from pipelines.config import load_config
    from pipelines.run import run_table_stages, table_stage_run
    from pipelines.store import RunStore
    from schemas import read_table

    clips, videos, expected = planted
    extra = [_clip(100 + i, video="v0", phash=_random_hashes(3), emb=_unit(RNG.standard_normal(D)).tolist()) for i in range(40)]
    clips = pa.concat_tables([clips, table_from_rows(extra, clips_schema, "clips")])
    params = DedupParams(points_per_cluster=10, kmeans_points_per_centroid=8)
    local = find_duplicates(clips, videos, params)
    # the planted content hashes as hex (the exact key reads 128 bits of them); one scan part per video
    hexed = videos.set_column(videos.schema.get_field_index("content_hash"), "content_hash",
                              pa.array([hashlib.sha256(h.encode()).hexdigest() for h in videos.column("content_hash").to_pylist()]))
    store = RunStore(str(tmp_path / "run"))
    for i, v in enumerate(hexed.column("video_id").to_pylist()):
        store.write_part("scan", {"videos": hexed.filter(pa.compute.equal(hexed.column("video_id"), v)),
                                  "clips": clips.filter(pa.compute.equal(clips.column("video_id"), v))}, part=f"part-{i:06d}")
    monkeypatch.setattr("pipelines.run.groups", lambda parts: [parts[i:i + 2] for i in range(0, len(parts), 2)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("stages:\n  embed: {enabled: false}\n  text: {enabled: false}\n  filter: {enabled: false}\n"
                   "  caption: {enabled: false}\ndedup: {points_per_cluster: 10, kmeans_points_per_centroid: 8}\n")
    files = [VideoFile(u, u.rsplit("/", 1)[1], 1) for u in sorted(set(videos.column("uri").to_pylist()))]
    run = table_stage_run(load_config(cfg), store, files, "scan")
    run_table_stages(run)
    semantic = run.record.counts["dedup"]["semantic"]
    assert semantic["map_tasks"] == len(run.shards.files) == 3 and semantic["reduce_tasks"] >= 2
    got = read_table(store.uri("clips"), "clips").sort_by("clip_id")
    want = local.table.sort_by("clip_id")
    assert _groups(got) == _groups(want) == set(expected)
    assert got.column("kept").to_pylist() == want.column("kept").to_pylist()


def test_groups_never_chain_past_the_threshold():
    """A chain a - b - c (4 bits apart each, a to c 8 bits; limit 6): c is never in a's group through b."""
    base = _random_hashes(3)
    a = base
    b = [_flip(h, [1, 2, 3, 4]) for h in base]
    c = [_flip(h, [1, 2, 3, 4, 10, 11, 12, 13]) for h in base]
    rows = [_clip(0, phash=a, aesthetic=9.0), _clip(1, phash=b, aesthetic=5.0), _clip(2, phash=c, aesthetic=1.0)]
    clips = table_from_rows(rows, clips_schema, "clips")
    res = {r["clip_id"]: r for r in find_duplicates(clips, _videos(("v0", "h0")), DedupParams(kinds=("perceptual",))).table.to_pylist()}
    assert res["c000"]["dup_of"] == "c000" and res["c001"]["dup_of"] == "c000"
    assert res["c002"]["dup_of"] is None and res["c002"]["kept"]  # 8 bits from the kept clip: not its duplicate
    # when the middle clip is the best, it is the centre and both ends are within the limit of it
    rows[1]["aesthetic"] = 10.0
    clips = table_from_rows(rows, clips_schema, "clips")
    res = {r["clip_id"]: r for r in find_duplicates(clips, _videos(("v0", "h0")), DedupParams(kinds=("perceptual",))).table.to_pylist()}
    assert {res[c]["dup_of"] for c in ("c000", "c001", "c002")} == {"c001"}
    assert all(res[c]["dup_similarity"] >= 1 - 6 / 64 for c in ("c000", "c002"))


def test_symmetric_index_matches_brute_force_over_the_8_symmetries():
    from curation.hashes import d4_variants

    h = np.array([_random_hashes(3) for _ in range(200)], dtype=np.uint64)
    turned = d4_variants(h[:30])[:, :, RNG.integers(1, 8, 30)].diagonal(axis1=0, axis2=2).T.copy()  # (30, 3): each clip turned
    for i in range(30):
        turned[i] = [_flip(int(v), RNG.choice(63, RNG.integers(0, 6), replace=False).tolist()) for v in turned[i]]
    h = np.concatenate([h, turned])
    edges = perceptual_edges(np.arange(len(h)), h, 6, 4, symmetric=True)
    v = d4_variants(h)  # (n, 3, 8)
    d = np.median(np.bitwise_count(v[:, None, :, :] ^ h[None, :, :, None]), axis=2).min(axis=-1)  # (n, n)
    truth = {(a, b) for a, b in zip(*np.nonzero(np.triu((d <= 6) | (d.T <= 6), 1)))}
    assert set(zip(edges.a.tolist(), edges.b.tolist())) == truth
    assert len(truth) >= 30


def test_orb_ransac_agrees_on_a_crop_and_its_mirror_not_on_another_photo():
    """Keyframe check (curation/dedup/verify.py): an off-centre crop zoomed back agrees with its source under a
    similarity (scale ~1/0.7); its mirror agrees once turned by the mirror symmetry; another photo does not."""
    import cv2
    from skimage import data

    from curation.dedup.verify import Features, match_pair, turn

    def jpeg(img):
        return cv2.imencode(".jpg", img)[1].tobytes()

    src = cv2.resize(data.astronaut(), (320, 320))
    crop = cv2.resize(src[24:248, 40:264], (320, 320))  # 70 %, off the centre
    f = Features()
    inliers, model = match_pair(f.of("src", jpeg(src)), f.of("crop", jpeg(crop)))
    assert inliers >= 20 and np.hypot(model[0, 0], model[1, 0]) == pytest.approx(1 / 0.7, rel=0.05)
    mirrored = jpeg(np.ascontiguousarray(crop[:, ::-1]))
    assert match_pair(f.of("src", jpeg(src), 2), f.of("mirrored", mirrored))[0] >= 20  # D4 index 2: left-right
    assert np.array_equal(turn(src, 2), src[:, ::-1])
    other = cv2.resize(data.chelsea(), (320, 320))
    assert match_pair(f.of("src", jpeg(src)), f.of("other", jpeg(other)))[0] == 0
