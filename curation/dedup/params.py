"""Settings and result of duplicate detection."""
from dataclasses import dataclass, field

import pyarrow as pa

KINDS = ("exact", "perceptual", "segment", "edited", "semantic")  # strongest first

# Default keep policy: (column, "desc" | "asc"); nulls always sort last.
DEFAULT_KEEP_POLICY: tuple[tuple[str, str], ...] = (
    ("aesthetic", "desc"),
    ("quality", "desc"),
    ("duration_s", "desc"),
    ("uri", "asc"),  # ties (byte-identical copies score alike): the file first in path order, as a person would pick;
    #                  not clip_id alone, which hashes the file's bytes and so moves with the encoder build
    ("clip_id", "asc"),  # ties within a file: deterministic
)


@dataclass(frozen=True)
class DedupParams:
    """Every threshold of duplicate detection, with its unit."""

    kinds: tuple[str, ...] = KINDS  # which detectors run; a subset of KINDS
    # perceptual: 64-bit keyframe phashes (curation/hashes.py)
    phash_max_hamming: int = 6  # bits out of 64; a clip pair is a perceptual duplicate when the
    #                            median Hamming distance over aligned keyframes is <= this.
    #                            Re-encodes measure 0-4 (carphone pair), unrelated shots >= 20.
    phash_symmetric: bool = True  # also match every 90° rotation and mirror of a clip (8 symmetries;
    #                               costs 8 index passes instead of 1)
    phash_index_chunks: int = 0  # multi-index hashing tables: 0 = chunk widths chosen from N (curation/dedup/
    #                              perceptual.py chunk_plan); 3..16 forces that many chunks
    # segment: temporal alignment of per-sample phash sequences (curation/dedup/segments.py)
    segment_max_hamming: int = 10  # bits out of 64 for two samples to vote for an alignment (samples 0.5 s apart
    #                                of a 0.3 s-shifted copy of fast motion measure ~10; distinct videos >= 15)
    segment_seed_bits: int = 32  # a video pair is compared when one sample pair agrees exactly on a slice of
    #                              this many of the 63 AC bits (2 slices at 32). 21 bits (3 slices) seeds more
    #                              fast-motion re-cuts, but random seeds grow as N^2 / 2^bits: fine at 10k clips,
    #                              not at 1M (bench/dedup_bench.py --segment-sizes)
    segment_offset_tol_s: float = 0.6  # s: votes within this window of time offsets are one alignment
    segment_min_samples: int = 4  # distinct matched samples of a segment (~2 s at 2 samples/s)
    segment_min_density: float = 0.5  # matched share of the samples inside the matched span (0..1)
    segment_min_cover: float = 0.8  # a clip pair is a segment duplicate when the aligned overlap covers
    #                                 this share of the shorter clip (0..1)
    segment_max_df: int = 50  # videos: a 32-bit hash half found in more videos is a stop word (logo, card)
    segment_max_per_pair: int = 4  # matched segments reported per video pair and symmetry
    segment_speed_range: tuple[float, float] = (0.8, 1.25)  # speed factors (b's seconds per a's second) tried when
    #                                 aligning; (1.0, 1.0) = a plain time shift, as before
    segment_speed_step: float = 0.02  # relative step between the speed factors tried (refined by a fit afterwards)
    # edited: segment matching over region hashes (centred crops, curation.hashes.region_hashes) of the samples:
    # logos, subtitles, borders, picture-in-picture, crops zoomed back
    edited_seed_bits: int = 32  # as segment_seed_bits, for the (sample, region) hashes (1 + R per sample)
    edited_max_hamming: int = 8  # bits out of 64 for two region hashes to vote (tighter than whole frames: a region
    #                              pair is one of (1 + R)^2 hypotheses, so chance agreements are likelier)
    edited_hypotheses: int = 3  # region pairs aligned per seeded video pair and symmetry (those with most votes)
    # verification of near misses on keyframe JPEGs with ORB + RANSAC (curation/dedup/verify.py); needs keyframes
    verify_extra_bits: int = 6  # bits past the vote limit (segment/edited_max_hamming) that still make a candidate
    verify_min_votes: int = 3  # samples of a candidate video pair within those loose limits
    verify_max_per_clip: int = 8  # candidate clip pairs checked per clip (0: no verification)
    verify_min_inliers: int = 20  # RANSAC inliers of a similarity transform for two keyframes to agree (distinct
    #                               shots of the copy set: 0 of 768 keyframe pairs pass; copies: 34-424)
    # semantic: L2-normalised embeddings (SemDeDup)
    semantic_eps: float = 0.05  # cosine distance; a pair is a duplicate when cos >= 1 - eps
    n_clusters: int | None = None  # k-means clusters; None: ceil(N / points_per_cluster)
    points_per_cluster: int = 1000  # mean cluster size of the default rule (keeps pairwise work ~ N)
    max_clusters_per_point: int = 2  # a point near a cluster border is also compared in its 2nd cluster
    #                                  (1 = plain SemDeDup; see curation/dedup/semantic.py)
    kmeans_iters: int = 10
    kmeans_points_per_centroid: int = 64  # k-means trains on a random sample of k * this points
    block_size: int = 2048  # rows x columns of one similarity block: memory <= block_size^2 * 4 bytes
    # which clip a group keeps
    keep_policy: tuple[tuple[str, str], ...] = DEFAULT_KEEP_POLICY
    prefer_kept: bool = True  # choose the representative among clips kept before dedup first
    keep_longer_ratio: float = 1.25  # a clip paired (not exactly) with one this many times longer gives way to it
    #                                  before keep_policy: the longer clip holds the excerpt's footage and more (0: off)
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"DedupParams.kinds: unknown kind(s) {sorted(unknown)}, expected a subset of {KINDS}")
        if not 0 <= self.phash_max_hamming < 64:
            raise ValueError("DedupParams.phash_max_hamming must be in [0, 63] bits")
        if not (8 <= self.segment_seed_bits <= 63 and 8 <= self.edited_seed_bits <= 63):
            raise ValueError("DedupParams.segment_seed_bits and edited_seed_bits must be in [8, 63] bits")
        lo, hi = self.segment_speed_range
        if not (0 < lo <= 1.0 <= hi and self.segment_speed_step > 0):
            raise ValueError("DedupParams.segment_speed_range must hold 1.0 (lo <= 1 <= hi, lo > 0); segment_speed_step > 0")
        if not 0 <= self.segment_max_hamming < 64:
            raise ValueError("DedupParams.segment_max_hamming must be in [0, 63] bits")
        for name in ("segment_min_density", "segment_min_cover"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"DedupParams.{name} must be in (0, 1]")
        if self.segment_offset_tol_s <= 0 or self.segment_min_samples < 2:
            raise ValueError("DedupParams: segment_offset_tol_s must be > 0 s and segment_min_samples >= 2")
        if not 0.0 <= self.semantic_eps < 1.0:
            raise ValueError("DedupParams.semantic_eps must be in [0, 1) (cosine distance)")
        for col, direction in self.keep_policy:
            if direction not in ("asc", "desc"):
                raise ValueError(f"DedupParams.keep_policy: direction for {col!r} must be 'asc' or 'desc'")


@dataclass
class DedupResult:
    """The clips table with dup_* columns filled, plus what a person should know about the run."""

    table: pa.Table
    notes: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    segments: pa.Table | None = None  # matched segments between videos (segments.SEGMENT_MATCH_SCHEMA); None: not run
