"""Duplicates at scale: exact (file bytes), perceptual (keyframe phash, any rotation or mirror), segment (re-cut
copies: aligned per-sample phash sequences), semantic (embeddings)."""
from curation.dedup.edges import Edges
from curation.dedup.find import DROP_REASON, find_duplicates
from curation.dedup.params import KINDS, DedupParams, DedupResult
from curation.dedup.segments import SAMPLES_SCHEMA, SEGMENT_MATCH_SCHEMA, samples_table, segment_matches
from curation.dedup.semantic import semantic_edges

__all__ = ["DROP_REASON", "KINDS", "SAMPLES_SCHEMA", "SEGMENT_MATCH_SCHEMA", "DedupParams", "DedupResult", "Edges",
           "find_duplicates", "samples_table", "segment_matches", "semantic_edges"]
