"""Local-feature verification of candidate keyframe pairs: ORB keypoints, ratio-tested matches, a RANSAC similarity.

The hashes decide most pairs; a few copies sit just past their thresholds: a crop off the centre (no centred
crop of the source hashes like it), a logo over part of every frame, a matched span that covers too little of a
clip. Those candidates (curation/dedup/segments.py near misses and partly covered matches) are checked here on
their keyframe JPEGs (already inside the content box): ORB keypoints (Rublee et al. 2011) of both pictures,
Lowe's ratio test on the two nearest descriptors, then a 4-parameter similarity (rotation, uniform scale,
shift) fitted by RANSAC (cv2.estimateAffinePartial2D). Two pictures of one footage agree on many keypoints under
one such transform -- a crop zoomed back is a scale and a shift, a picture-in-picture a scale -- while two
different shots leave a handful of chance inliers. The work is bounded: only candidate pairs, at most
`verify_max_per_clip` candidates per clip, each keyframe's features computed once.
"""
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.dedup.edges import Edges
from curation.dedup.params import DedupParams
from curation.hashes import D4


@dataclass(frozen=True)
class OrbParams:
    """Thresholds of one keyframe pair's check."""

    features: int = 500  # ORB keypoints per keyframe
    ratio: float = 0.75  # Lowe's ratio: nearest descriptor distance < ratio x the second nearest
    min_inliers: int = 20  # RANSAC inliers of the similarity for a keyframe pair to agree
    min_inlier_share: float = 0.4  # inliers / ratio-tested matches
    reproj_px: float = 4.0  # RANSAC reprojection threshold (px, at the keyframe's size)
    scale_range: tuple[float, float] = (0.4, 2.5)  # the fitted scale must lie in here (a crop to 40 %, PiP at 40 %)
    max_rotation_deg: float = 10.0  # after the candidate's symmetry: copies are not turned by odd angles


def turn(img: np.ndarray, g: int) -> np.ndarray:
    """`img` under D4 symmetry g (curation.hashes.D4: transpose first, then left-right mirror, then up-down flip)."""
    transpose, lr, ud = D4[g]
    if transpose:
        img = np.swapaxes(img, 0, 1)
    if lr:
        img = img[:, ::-1]
    if ud:
        img = img[::-1]
    return np.ascontiguousarray(img)


class Features:
    """ORB keypoints and descriptors of grey keyframes, computed once per (keyframe, symmetry)."""

    def __init__(self, params: OrbParams = OrbParams()):
        self.params = params
        self.orb = cv2.ORB_create(nfeatures=params.features)
        self.cache: dict[tuple, tuple] = {}

    def of(self, key, jpeg: bytes, g: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """(keypoint xy (n, 2) float32, descriptors (n, 32) uint8 or None) of a keyframe JPEG turned by g."""
        if (key, g) not in self.cache:
            gray = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
            kp, des = self.orb.detectAndCompute(turn(gray, g), None) if gray is not None else ((), None)
            self.cache[(key, g)] = (np.array([k.pt for k in kp], np.float32).reshape(-1, 2), des)
        return self.cache[(key, g)]


def match_pair(fa: tuple, fb: tuple, params: OrbParams = OrbParams()) -> tuple[int, np.ndarray | None]:
    """(inliers, 2x3 similarity b <- a or None) of two keyframes' features; inliers 0 when the check fails."""
    (pa_, da), (pb_, db) = fa, fb
    if da is None or db is None or len(da) < 2 or len(db) < 2:
        return 0, None
    knn = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(da, db, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < params.ratio * m[1].distance]
    if len(good) < params.min_inliers:
        return 0, None
    src = pa_[[m.queryIdx for m in good]]
    dst = pb_[[m.trainIdx for m in good]]
    model, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=params.reproj_px,
                                              maxIters=1000, confidence=0.99)
    if model is None:
        return 0, None
    inliers = int(mask.sum())
    scale = float(np.hypot(model[0, 0], model[1, 0]))
    angle = abs(float(np.degrees(np.arctan2(model[1, 0], model[0, 0]))))
    lo, hi = params.scale_range
    if (inliers < params.min_inliers or inliers < params.min_inlier_share * len(good) or not lo <= scale <= hi
            or angle > params.max_rotation_deg):
        return 0, None
    return inliers, model


KeyframeSource = pa.Table | Callable[[list[str]], pa.Table]  # the keyframes table, or a reader of given clip ids


def _rows_at(starts: np.ndarray, ends: np.ndarray, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The clip row (of one video's rows, sorted by start) holding each time t; -1 where none does."""
    i = np.searchsorted(starts, t, side="right") - 1
    ok = (i >= 0) & (t < ends[np.clip(i, 0, None)])
    return np.where(ok, rows[np.clip(i, 0, None)], -1)


def candidate_pairs(clips: pa.Table, matches: pa.Table, near: list[dict], done: Edges, params: DedupParams,
                    video_key: str = "video_id") -> list[tuple[int, int, int, int, float]]:
    """(row a, row b, symmetry, votes, similarity) clip pairs worth a keyframe check, most votes first, at most
    params.verify_max_per_clip per clip, none already paired in `done`:

    - near misses (segments.segment_matches `near`): the clips holding their loose-voting samples;
    - matched segments whose span covers part of a clip pair but less than segment_min_cover of the shorter clip."""
    video = np.asarray(clips.column(video_key).to_pylist(), dtype=object)
    start = clips.column("start_s").to_numpy().astype(np.float64)
    end = clips.column("end_s").to_numpy().astype(np.float64)
    by_video = {}
    for v in np.unique(video):
        rows = np.flatnonzero(video == v)
        rows = rows[np.argsort(start[rows], kind="stable")]
        by_video[v] = (start[rows], end[rows], rows)
    paired = set(zip(done.a.tolist(), done.b.tolist()))
    cand: dict[tuple[int, int], list] = {}

    def add(x: np.ndarray, y: np.ndarray, g: int, sim: float) -> None:
        ok = (x >= 0) & (y >= 0)
        for a, b in zip(x[ok].tolist(), y[ok].tolist()):
            key = (min(a, b), max(a, b))
            if key in paired:
                continue
            c = cand.setdefault(key, [a, b, g, 0, sim])
            c[3] += 1

    for m in near:
        if m["video_a"] in by_video and m["video_b"] in by_video:
            add(_rows_at(*by_video[m["video_a"]], np.asarray(m["ta"])), _rows_at(*by_video[m["video_b"]], np.asarray(m["tb"])),
                m["symmetry"], 1.0 - m["hamming"] / 64.0)
    for m in matches.to_pylist():
        if m["video_a"] not in by_video or m["video_b"] not in by_video:
            continue
        scale = m.get("time_scale") or 1.0
        ta = np.arange(m["a_start_s"], m["a_end_s"], 0.25)  # points of the span, in a's time and in b's
        add(_rows_at(*by_video[m["video_a"]], ta), _rows_at(*by_video[m["video_b"]], scale * ta + m["offset_s"]),
            m["symmetry"], 1.0 - m["mean_hamming"] / 64.0)
    ranked = sorted(cand.values(), key=lambda c: (-c[3], c[0], c[1]))
    per_clip: dict[int, int] = {}
    out = []
    for a, b, g, votes, sim in ranked:
        if per_clip.get(a, 0) >= params.verify_max_per_clip or per_clip.get(b, 0) >= params.verify_max_per_clip:
            continue
        per_clip[a] = per_clip.get(a, 0) + 1
        per_clip[b] = per_clip.get(b, 0) + 1
        out.append((a, b, g, votes, sim))
    return out


def _keyframes_of(keyframes: KeyframeSource, clip_ids: list[str]) -> dict[str, list[tuple]]:
    """{clip_id: [(position, jpeg), ...]} of the given clips (a table, or a reader called once with the ids)."""
    if callable(keyframes):
        table = keyframes(clip_ids)
    else:
        table = keyframes.filter(pc.is_in(keyframes.column("clip_id"), value_set=pa.array(clip_ids, pa.string())))
    out: dict[str, list[tuple]] = {}
    for cid, pos, jpeg in zip(*(table.column(c).to_pylist() for c in ("clip_id", "position", "jpeg"))):
        out.setdefault(cid, []).append((pos, jpeg))
    return out


def verified_edges(clips: pa.Table, candidates: list[tuple], keyframes: KeyframeSource, params: DedupParams,
                   orb: OrbParams | None = None) -> tuple[Edges, dict]:
    """"edited" edges between the candidate clip pairs whose keyframes agree under ORB + RANSAC: at least two
    keyframe pairs (one when a clip has a single keyframe), each keyframe of a against every keyframe of b (a copy
    may be shifted, re-cut or sped up). Similarity: 1 - the candidate's mean region Hamming / 64, as for edited."""
    orb = orb or OrbParams(min_inliers=params.verify_min_inliers)
    stats = {"candidates": len(candidates), "verified": 0, "keyframe_pairs": 0}
    if not candidates:
        return Edges.empty(), stats
    ids = clips.column("clip_id").to_pylist()
    need = sorted({ids[r] for c in candidates for r in c[:2]})
    kf = _keyframes_of(keyframes, need)
    feats = Features(orb)
    a_out, b_out, sim_out = [], [], []
    for a, b, g, _, sim in candidates:
        ka, kb = kf.get(ids[a], []), kf.get(ids[b], [])
        agree = set()
        for pa_, ja in ka:
            fa = feats.of((a, pa_), ja, g)
            for pb_, jb in kb:
                stats["keyframe_pairs"] += 1
                if match_pair(fa, feats.of((b, pb_), jb), orb)[0]:
                    agree.add(pa_)
                    break
        if ka and kb and len(agree) >= min(2, len(ka), len(kb)):
            a_out.append(a)
            b_out.append(b)
            sim_out.append(sim)
    stats["verified"] = len(a_out)
    return Edges.of(np.asarray(a_out, np.int64), np.asarray(b_out, np.int64), "edited", np.asarray(sim_out, np.float32)), stats


def centre_candidates(edges: Edges, rep: np.ndarray, params: DedupParams) -> list[tuple[int, int, int, int, float]]:
    """Clip pairs (clip, the kept clip of a neighbour's group) to check after grouping: groups never chain, so a copy
    paired with a clip that joined another clip's group stays outside it unless it matches that group's kept clip
    too. (row, centre, symmetry 0, 1, similarity of the edge to the neighbour), at most verify_max_per_clip per row."""
    a = np.concatenate([edges.a, edges.b])
    b = np.concatenate([edges.b, edges.a])
    sim = np.concatenate([edges.sim, edges.sim])
    c = rep[b]
    out_of_group = (c >= 0) & (c != a) & (rep[a] != c)
    paired = set(zip(edges.a.tolist(), edges.b.tolist()))
    seen, per_clip, out = set(), {}, []
    for x, y, s in zip(a[out_of_group].tolist(), c[out_of_group].tolist(), sim[out_of_group].tolist()):
        key = (min(x, y), max(x, y))
        if key in seen or key in paired or per_clip.get(x, 0) >= params.verify_max_per_clip:
            continue
        seen.add(key)
        per_clip[x] = per_clip.get(x, 0) + 1
        out.append((x, y, 0, 1, s))
    return out
