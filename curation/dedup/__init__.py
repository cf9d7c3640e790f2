"""Duplicates at scale: exact (file bytes), perceptual (keyframe phash), semantic (embeddings)."""
from curation.dedup.edges import Edges
from curation.dedup.find import DROP_REASON, find_duplicates
from curation.dedup.params import KINDS, DedupParams, DedupResult
from curation.dedup.semantic import semantic_edges

__all__ = ["DROP_REASON", "KINDS", "DedupParams", "DedupResult", "Edges", "find_duplicates", "semantic_edges"]
