"""Duplicate pairs between clip rows, as parallel numpy arrays."""
from dataclasses import dataclass

import numpy as np

from curation.dedup.params import KINDS

KIND_CODE = {k: i for i, k in enumerate(KINDS)}  # lower code = stronger kind


@dataclass
class Edges:
    """Pairs (a[i], b[i]) of row indices with a < b, their kind code and similarity in [0, 1]."""

    a: np.ndarray  # (E,) int64
    b: np.ndarray  # (E,) int64
    kind: np.ndarray  # (E,) int8, index into KINDS
    sim: np.ndarray  # (E,) float32: exact 1.0, perceptual 1 - hamming/64, semantic cosine

    @staticmethod
    def empty() -> "Edges":
        return Edges(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int8), np.empty(0, np.float32))

    @staticmethod
    def of(a: np.ndarray, b: np.ndarray, kind: str, sim: np.ndarray | float) -> "Edges":
        """Canonical (a < b), de-duplicated edges of one kind; self-pairs are dropped."""
        a = np.asarray(a, np.int64)
        b = np.asarray(b, np.int64)
        sim = np.broadcast_to(np.asarray(sim, np.float32), a.shape)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        keep = lo != hi
        lo, hi, sim = lo[keep], hi[keep], sim[keep]
        if len(lo):
            # one edge per pair: the most similar one
            order = np.lexsort((-sim, hi, lo))
            lo, hi, sim = lo[order], hi[order], sim[order]
            first = np.r_[True, (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])]
            lo, hi, sim = lo[first], hi[first], sim[first]
        return Edges(lo, hi, np.full(len(lo), KIND_CODE[kind], np.int8), sim.astype(np.float32))

    def __len__(self) -> int:
        return len(self.a)

    def count(self, kind: str) -> int:
        return int(np.sum(self.kind == KIND_CODE[kind]))

    @staticmethod
    def concat(parts: list["Edges"]) -> "Edges":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Edges.empty()
        return Edges(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("a", "b", "kind", "sim")))
