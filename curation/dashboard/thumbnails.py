"""Small JPEG thumbnails of clips from the run's `keyframes` table, as data: URIs for a self-contained HTML page.

The scan already stored a JPEG of each clip's keyframes (the analysis samples
nearest 10/50/90 % of the clip, at display geometry). The report shows the
middle one and never opens a source video: sources may have moved, sit behind
other credentials, or need a video reader the report should not carry.
"""
import base64
import hashlib
import logging
import posixpath
import re
import uuid
from html import escape

import cv2
import duckdb
import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
from fsspec.implementations.local import LocalFileSystem

from schemas import table_files

log = logging.getLogger(__name__)

THUMB_WIDTH = 160  # px; enough to recognise a shot, small enough for hundreds in one page
JPEG_QUALITY = 70
KEYFRAME_POSITION = 0.5  # which stored keyframe stands for a clip (fraction of the clip)


def keyframe_jpegs(out_dir: str, clip_ids: list[str], storage_options: dict | None = None) -> dict[str, bytes]:
    """clip_id -> JPEG bytes of the stored keyframe nearest KEYFRAME_POSITION, for the clips that have one."""
    if not clip_ids:
        return {}
    fs, files = table_files(posixpath.join(out_dir.rstrip("/"), "keyframes"), storage_options)  # the current set (manifest)
    if not files:
        return {}
    wanted = sorted(set(clip_ids))
    if isinstance(fs, LocalFileSystem):
        # DuckDB filters on clip_id first and decodes the JPEG pages only where a requested clip sits:
        # a report asks for a few hundred clips out of millions of keyframes
        con = duckdb.connect()
        try:
            rows = con.execute("SELECT clip_id, position, jpeg FROM read_parquet(?) WHERE clip_id IN (SELECT unnest(?))",
                               [files, wanted]).fetchall()
        finally:
            con.close()
    else:
        dataset = ds.dataset(files, format="parquet", filesystem=fs)
        t = dataset.to_table(columns=["clip_id", "position", "jpeg"], filter=pc.field("clip_id").isin(wanted))
        rows = zip(t.column("clip_id").to_pylist(), t.column("position").to_pylist(), t.column("jpeg").to_pylist())
    out: dict[str, tuple[float, bytes]] = {}
    for cid, pos, jpeg in rows:
        if cid not in out or abs(pos - KEYFRAME_POSITION) < abs(out[cid][0] - KEYFRAME_POSITION):
            out[cid] = (pos, jpeg)
    return {cid: jpeg for cid, (_, jpeg) in out.items()}


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
    """Collects thumbnail requests while a page is rendered, then reads their keyframes in one scan.

    `request` returns a unique token to put into the page; `fill` replaces every
    token with an <img> (or a placeholder saying why there is none). A clip
    without a stored keyframe, or a keyframe that does not decode, gives a
    placeholder, never an exception.
    """

    def __init__(self, out_dir: str | None = None, storage_options: dict | None = None, width: int = THUMB_WIDTH):
        self.out_dir = out_dir  # the run folder whose keyframes table holds the JPEGs
        self.storage_options = storage_options or {}
        self.width = width
        self._nonce = uuid.uuid4().hex
        self._requests: dict[str, str] = {}  # clip_id -> alt text
        self.images: dict[str, str] = {}  # clip_id -> data: URI
        self.failures: dict[str, str] = {}  # clip_id -> why it has no thumbnail

    def request(self, clip_id: str, alt: str) -> str:
        """Ask for a clip's thumbnail; returns the token standing for its <img>."""
        self._requests.setdefault(clip_id, alt)
        return self._token(clip_id)

    def _token(self, clip_id: str) -> str:
        return f"thumb-{self._nonce}-{hashlib.sha1(clip_id.encode()).hexdigest()}"

    def resolve(self) -> None:
        """Read every requested keyframe (one filtered scan of the keyframes table)."""
        todo = [c for c in self._requests if c not in self.images and c not in self.failures]
        if not todo:
            return
        if self.out_dir is None:
            self.failures.update((c, "no run folder given") for c in todo)
            return
        try:
            jpegs = keyframe_jpegs(self.out_dir, todo, self.storage_options)
        except Exception as e:  # an unreadable keyframes table must not break the report
            log.warning("no thumbnails from %s/keyframes: %s", self.out_dir, e)
            self.failures.update((c, f"keyframes table unreadable: {type(e).__name__}: {e}") for c in todo)
            return
        for clip_id in todo:
            data = jpegs.get(clip_id)
            if data is None:
                self.failures[clip_id] = "no keyframe stored for this clip"
                continue
            rgb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if rgb is None:
                self.failures[clip_id] = "stored keyframe is not a decodable JPEG"
                continue
            self.images[clip_id] = jpeg_data_uri(cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB), self.width)

    def fill(self, page: str) -> str:
        """Resolve pending requests and put the images (or placeholders) into `page`."""
        self.resolve()
        html_of = {}
        for clip_id, alt in self._requests.items():
            if clip_id in self.images:
                html = f'<img src="{self.images[clip_id]}" alt="{escape(alt, quote=True)}">'
            else:
                why = self.failures.get(clip_id, "not read")
                html = f'<div class="noimg">no thumbnail: {escape(why)}</div>'
            html_of[self._token(clip_id)] = html
        # one pass over the page, however many thumbnails it has
        return re.sub(f"thumb-{self._nonce}-[0-9a-f]{{40}}", lambda m: html_of.get(m.group(0), ""), page)
