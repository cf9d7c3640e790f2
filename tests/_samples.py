"""Analysis samples of a real video decoded independently of the pipeline, for scorer tests."""
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np


def analysis_samples(path: Path, fps: float = 2.0, max_s: float = float("inf"),
                     fmt: str = "rgb24") -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame_index, t, frame) at ~fps per second, short side 256, first max_s seconds; fmt rgb24 or gray."""
    with av.open(str(path)) as container:
        next_t = 0.0
        for i, frame in enumerate(container.decode(container.streams.video[0])):
            t = float(frame.pts * frame.time_base)
            if t > max_s:
                break
            if t + 1e-6 < next_t:
                continue
            next_t = t + 1.0 / fps
            a = frame.to_ndarray(format=fmt)
            k = 256 / min(a.shape[:2])
            size = (round(a.shape[1] * k), round(a.shape[0] * k))
            yield i, t, cv2.resize(a, size, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
