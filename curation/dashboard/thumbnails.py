"""Small JPEG thumbnails of clips, as data: URIs for a self-contained HTML page."""
import base64
import hashlib
import logging
import re
import uuid
from collections import defaultdict
from html import escape

import av
import cv2
import fsspec
import numpy as np

from curation.dashboard.run_folder import local_path

log = logging.getLogger(__name__)

THUMB_WIDTH = 160  # px; enough to recognise a shot, small enough for hundreds in one page
JPEG_QUALITY = 70


def frames_at(uri: str, times: list[float]) -> dict[float, np.ndarray]:
    """RGB frames shown at each time (the first frame with pts >= t), seconds -> frame.

    Seeks by time first. Some files mark frames as keyframes that do not decode on
    their own (cockatoo.mp4 in the test set gives green frames after a seek);
    FFmpeg flags those frames as corrupt, and then the remaining times are taken
    from one sequential decode of the file.
    """
    out: dict[float, np.ndarray] = {}
    pending = sorted(set(times))
    with _open(uri) as container:
        stream = container.streams.video[0]
        while pending:
            frame, corrupt = _seek_decode(container, stream, pending[0])
            if corrupt:
                break
            out[pending.pop(0)] = frame
    if pending:
        with _open(uri) as container:
            out.update(_sequential_decode(container, container.streams.video[0], pending))
    missing = [t for t in times if t not in out]
    if missing:
        raise ValueError(f"no frame decoded at {missing[0]:.2f}s")
    return out


def _open(uri: str):
    path = local_path(uri)
    return av.open(str(path) if path is not None else fsspec.open(uri, "rb").open())


def _seek_decode(container, stream, t: float) -> tuple[np.ndarray, bool]:
    if stream.time_base is not None and t > 0:
        # lands on the keyframe at or before t; decode forward from there
        container.seek(int(t / stream.time_base), stream=stream, backward=True, any_frame=False)
    else:
        container.seek(0)
    last, corrupt = None, False
    for frame in container.decode(stream):
        last = frame
        corrupt = corrupt or frame.is_corrupt  # errors propagate to the frames that follow
        if frame.time is not None and frame.time >= t:
            break
    if last is None:
        raise ValueError(f"no frame decoded at {t:.2f}s")
    return _rgb(last), corrupt


def _sequential_decode(container, stream, times: list[float]) -> dict[float, np.ndarray]:
    out, pending, last = {}, list(times), None
    for frame in container.decode(stream):
        last = frame
        while pending and frame.time is not None and frame.time >= pending[0]:
            out[pending.pop(0)] = _rgb(frame)
        if not pending:
            break
    for t in pending:  # past the last frame: the last frame is what a player shows
        if last is not None:
            out[t] = _rgb(last)
    return out


def _rgb(frame) -> np.ndarray:
    """RGB pixels as displayed: display-matrix rotation applied, as curation/decode.py does."""
    rgb = frame.to_ndarray(format="rgb24")
    rotation = int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) * 90 % 360
    return np.ascontiguousarray(np.rot90(rgb, k=rotation // 90)) if rotation else rgb


def frame_at(uri: str, t: float) -> np.ndarray:
    """RGB frame shown at time `t` seconds."""
    return frames_at(uri, [t])[t]


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
    """Collects thumbnail requests while a page is rendered, then decodes each file once.

    `request` returns a unique token to put into the page; `fill` replaces every
    token with an <img> (or a placeholder saying why there is none). A file that
    fails to decode gives placeholders, never an exception.
    """

    def __init__(self, width: int = THUMB_WIDTH):
        self.width = width
        self._nonce = uuid.uuid4().hex
        self._requests: dict[str, tuple[str, float, str]] = {}  # clip_id -> (uri, t, alt text)
        self.images: dict[str, str] = {}  # clip_id -> data: URI
        self.failures: dict[str, str] = {}  # clip_id -> why it has no thumbnail

    def request(self, clip_id: str, uri: str, start_s: float, end_s: float, alt: str) -> str:
        """Ask for the middle frame of a clip; returns the token standing for its <img>."""
        self._requests.setdefault(clip_id, (uri, (start_s + end_s) / 2, alt))
        return self._token(clip_id)

    def _token(self, clip_id: str) -> str:
        return f"thumb-{self._nonce}-{hashlib.sha1(clip_id.encode()).hexdigest()}"

    def resolve(self) -> None:
        """Decode every requested frame, one pass per file."""
        by_uri: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for clip_id, (uri, t, _) in self._requests.items():
            if clip_id not in self.images and clip_id not in self.failures:
                by_uri[uri].append((clip_id, t))
        for uri, wanted in by_uri.items():
            try:
                frames = frames_at(uri, [t for _, t in wanted])
                for clip_id, t in wanted:
                    self.images[clip_id] = jpeg_data_uri(frames[t], self.width)
            except Exception as e:  # one undecodable file must not break the report
                log.warning("no thumbnails for %s: %s", uri, e)
                for clip_id, _ in wanted:
                    self.failures[clip_id] = f"{type(e).__name__}: {e}"

    def fill(self, page: str) -> str:
        """Resolve pending requests and put the images (or placeholders) into `page`."""
        self.resolve()
        html_of = {}
        for clip_id, (_, _, alt) in self._requests.items():
            if clip_id in self.images:
                html = f'<img src="{self.images[clip_id]}" alt="{escape(alt, quote=True)}">'
            else:
                why = self.failures.get(clip_id, "not decoded")
                html = f'<div class="noimg">no thumbnail: {escape(why)}</div>'
            html_of[self._token(clip_id)] = html
        # one pass over the page, however many thumbnails it has
        return re.sub(f"thumb-{self._nonce}-[0-9a-f]{{40}}", lambda m: html_of.get(m.group(0), ""), page)
