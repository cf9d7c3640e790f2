"""Cluster-balanced selection: big concepts shrink, small ones survive; weights; quotas."""
import numpy as np
import pyarrow as pa
import pytest

from curation.balance import BalanceParams, balance, diversity, fill
from schemas import clips_schema, table_from_rows

D = 16


def _clips(n_per_concept, seed=0, widths=None, with_emb=True):
    """Clips in well-separated concepts of the given sizes (the first one dominates)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((len(n_per_concept), D)) * 3
    rows, concept = [], []
    for c, m in enumerate(n_per_concept):
        for _ in range(m):
            i = len(rows)
            e = centers[c] + rng.standard_normal(D) * 0.3
            w = widths[i % len(widths)] if widths else 640
            rows.append(dict(
                clip_id=f"c{i:05d}", video_id="v", uri="file:///v.mp4", clip_index=i, start_frame=i, end_frame=i + 1,
                num_frames=1, start_s=0.0, end_s=1.0, duration_s=1.0, fps=25.0, width=w, height=360, split_reason="cut",
                embedding=(e / np.linalg.norm(e)).tolist() if with_emb else None, quality=float(rng.random()),
                drop_reasons=[], kept=True,
            ))
            concept.append(c)
    return table_from_rows(rows, clips_schema, "clips"), np.array(concept)


@pytest.fixture(scope="module")
def skewed():
    return _clips([800, 60, 50, 40, 30, 20])  # one concept holds 80 %


def test_fill_is_water_filling():
    assert fill(10, np.array([2, 100, 100])).tolist() == [2, 4, 4]
    assert fill(10, np.array([1, 1, 1])).tolist() == [1, 1, 1]  # budget above capacity: everything
    assert fill(9, np.array([5, 5]), shares=np.array([2.0, 1.0])).tolist() == [5, 4]  # share 6 capped at 5
    assert fill(3, np.array([10, 10]), integer=False).tolist() == [1.5, 1.5]


def test_select_balances_concepts(skewed):
    clips, concept = skewed
    res = balance(clips, BalanceParams(target_size=200, levels=(24, 6)))
    kept = np.array(res.table.column("kept").to_pylist())
    assert kept.sum() == 200
    share_before = np.mean(concept == 0)
    share_after = np.mean(concept[kept] == 0)
    assert share_before == pytest.approx(0.8) and share_after < 0.5
    # a random 20 % sample would keep ~40 clips of the small concepts; balancing keeps far more, from each
    assert np.sum(concept[kept] > 0) >= 100
    assert all(np.sum(concept[kept] == c) >= 0.3 * np.sum(concept == c) for c in range(1, 6))
    top = res.report["diversity"]["top"]
    assert top["after"]["entropy_norm"] > top["before"]["entropy_norm"]
    assert top["after"]["top10pct_share"] < top["before"]["top10pct_share"]
    dropped = [r for r in res.table.to_pylist() if not r["kept"]]
    assert all(r["drop_reasons"] == ["balance"] for r in dropped)
    assert any("entropy" in n for n in res.notes)


def test_weight_mode_drops_nothing_and_upweights_rare_concepts(skewed):
    clips, concept = skewed
    res = balance(clips, BalanceParams(mode="weight", target_fraction=0.2, levels=(24, 6)))
    w = np.array(res.table.column("sample_weight").to_pylist(), dtype=float)
    assert all(res.table.column("kept").to_pylist())
    assert np.mean(w) == pytest.approx(1.0, abs=1e-4)
    assert w[concept == 5].mean() > 3 * w[concept == 0].mean()
    top = res.report["diversity"]["top"]
    assert top["after"]["entropy_norm"] > top["before"]["entropy_norm"]


def test_dropped_clips_do_not_take_part(skewed):
    clips, _ = skewed
    rows = clips.to_pylist()
    for r in rows[:100]:
        r["drop_reasons"], r["kept"] = ["blurry"], False
    res = balance(table_from_rows(rows, clips_schema, "clips"), BalanceParams(target_size=100, levels=(12,)))
    out = res.table.to_pylist()
    assert all(r["drop_reasons"] == ["blurry"] and r["sample_weight"] is None for r in out[:100])
    assert sum(r["kept"] for r in out) == 100 and res.report["eligible"] == 900


def test_quotas_split_budget_over_buckets():
    clips, _ = _clips([300, 100], widths=[640, 640, 640, 1920])  # 3/4 at 360p short side... all height 360
    clips = clips.set_column(clips.schema.get_field_index("height"), "height",
                             pa.array([360 if w == 640 else 1080 for w in clips.column("width").to_pylist()], pa.int32()))
    res = balance(clips, BalanceParams(target_size=100, levels=(8,), quota_by="resolution",
                                       quota_shares=(("360-719p", 0.5), (">=1080p", 0.5))))
    kept = [r for r in res.table.to_pylist() if r["kept"]]
    assert len(kept) == 100
    assert sum(r["height"] == 1080 for r in kept) == 50  # half of the budget, though only a quarter of the clips
    assert res.report["quota"][">=1080p"]["allocated"] == 50


def test_without_embeddings_only_quotas_apply():
    clips, _ = _clips([50, 50], with_emb=False)
    res = balance(clips, BalanceParams(target_size=30))
    assert sum(res.table.column("kept").to_pylist()) == 30
    assert any("no embeddings" in n for n in res.notes)


def test_diversity_metrics():
    even = diversity(np.repeat(np.arange(10), 5))
    skew = diversity(np.r_[np.zeros(91, int), np.arange(1, 10)])
    assert even["entropy_norm"] == pytest.approx(1.0) and even["top10pct_share"] == pytest.approx(0.1)
    assert skew["top10pct_share"] == pytest.approx(0.91) and skew["entropy_norm"] < 0.5


def test_rank_by_takes_the_best_clips_of_each_leaf(skewed):
    clips, _ = skewed
    res = balance(clips, BalanceParams(target_size=10, levels=(1,), rank_by="quality"))
    q = np.array(clips.column("quality").to_pylist())
    kept = np.array(res.table.column("kept").to_pylist())
    assert sorted(q[kept]) == sorted(np.sort(q)[-10:])
