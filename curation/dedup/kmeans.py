"""k-means on embeddings (faiss), trained on a sample, and nearest-centroid assignment."""
import faiss
import numpy as np


def train_kmeans(
    x: np.ndarray, k: int, iters: int = 10, points_per_centroid: int = 64, seed: int = 0, spherical: bool = True,
    nredo: int = 1,
) -> np.ndarray:
    """(k, d) float32 centroids; faiss trains on a random sample of at most k * points_per_centroid rows.

    nredo > 1 restarts from other random seeds and keeps the lowest-error run.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    k = max(1, min(int(k), len(x)))
    km = faiss.Kmeans(
        x.shape[1], k, niter=iters, seed=seed, spherical=spherical, verbose=False,
        max_points_per_centroid=points_per_centroid, min_points_per_centroid=1, nredo=nredo,
    )
    km.train(x)
    return np.asarray(km.centroids, dtype=np.float32)


def nearest_centroids(x: np.ndarray, centroids: np.ndarray, m: int = 1, batch: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """(dist, idx), each (n, m): squared L2 distances to and ids of the m nearest centroids, nearest first."""
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    m = min(m, len(centroids))
    ds, ids = [], []
    for i in range(0, len(x), batch):  # batches keep faiss' distance buffers small
        d, j = index.search(np.ascontiguousarray(x[i:i + batch], dtype=np.float32), m)
        ds.append(d)
        ids.append(j)
    if not ds:
        return np.empty((0, m), np.float32), np.empty((0, m), np.int64)
    return np.concatenate(ds), np.concatenate(ids)
