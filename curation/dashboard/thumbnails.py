"""Small JPEG thumbnails of clips, as data: URIs for a self-contained HTML page."""
import base64
import logging

import av
import cv2
import fsspec
import numpy as np

from curation.dashboard.run_folder import local_path

log = logging.getLogger(__name__)

THUMB_WIDTH = 160  # px; enough to recognise a shot, small enough for hundreds in one page
JPEG_QUALITY = 70


def frame_at(uri: str, t: float) -> np.ndarray:
    """RGB frame shown at time `t` seconds (the first frame with pts >= t, seeking by time)."""
    path = local_path(uri)
    source = str(path) if path is not None else fsspec.open(uri, "rb").open()
    with av.open(source) as container:
        stream = container.streams.video[0]
        if stream.time_base is not None and t > 0:
            # seek lands on the keyframe at or before t; decode forward from there
            container.seek(int(t / stream.time_base), stream=stream, backward=True, any_frame=False)
        last = None
        for frame in container.decode(stream):
            last = frame
            if frame.time is not None and frame.time >= t:
                break
        if last is None:
            raise ValueError(f"no frame decoded at {t:.2f}s")
        return last.to_ndarray(format="rgb24")


def jpeg_data_uri(rgb: np.ndarray, width: int = THUMB_WIDTH) -> str:
    """Downscale to `width` px wide and encode as a base64 JPEG data: URI."""
    h, w = rgb.shape[:2]
    height = max(1, round(h * width / w))
    small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


class Thumbnailer:
    """Thumbnails of clip middles, cached by clip id; a failure yields None, never an exception."""

    def __init__(self, width: int = THUMB_WIDTH):
        self.width = width
        self._cache: dict[str, str | None] = {}
        self.failures: dict[str, str] = {}  # clip_id -> why it has no thumbnail

    def __call__(self, clip_id: str, uri: str, start_s: float, end_s: float) -> str | None:
        if clip_id not in self._cache:
            try:
                self._cache[clip_id] = jpeg_data_uri(frame_at(uri, (start_s + end_s) / 2), self.width)
            except Exception as e:  # one undecodable clip must not break the report
                log.warning("no thumbnail for clip %s (%s): %s", clip_id, uri, e)
                self.failures[clip_id] = f"{type(e).__name__}: {e}"
                self._cache[clip_id] = None
        return self._cache[clip_id]
