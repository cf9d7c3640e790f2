"""A panning texture inside bars (letterbox, pillarbox, windowbox; any colour), optionally with display rotation.

The picture is `width` x `height` at (`left`, `top`) of the stored frame; with a
90 or 270 degree rotation the content box at display geometry is the turned one.
"""
from pathlib import Path

import av
import numpy as np

from _videogen import frames


def write_barred(path: Path, seed: int, top: int, left: int, rgb=(0, 0, 0), rotation: int | None = None,
                 width: int = 160, height: int = 90, n: int = 30) -> Path:
    """A panning texture inside bars of colour `rgb`: `top` px above and below, `left` px left and right (stored px)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = width + 2 * left, height + 2 * top, "yuv420p"
        vs.options = {"preset": "ultrafast", "threads": "1", "g": "12"}
        if rotation is not None:
            vs.set_display_rotation(rotation)
        for img in frames(seed, width, height, n, None):
            fr = np.empty((height + 2 * top, width + 2 * left, 3), np.uint8)
            fr[:] = rgb
            fr[top:top + height, left:left + width] = img
            for p in vs.encode(av.VideoFrame.from_ndarray(fr, format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return path


def barred_manifest(folder: Path, video: Path, box: tuple[int, int, int, int] | None, size: tuple[int, int],
                    start: int = 0, end: int = 30, fps: float = 25.0) -> str:
    """A curated table (written through schemas/) with one kept clip of `video`: display `size` (w, h), content
    `box` (x, y, w, h; None: the null columns of an older run)."""
    import schemas

    x, y, w, h = box if box is not None else (None,) * 4
    row = {"clip_id": f"clip-{Path(video).stem}", "video_id": f"vid-{Path(video).stem}", "uri": str(video),
           "clip_index": 0, "start_frame": start, "end_frame": end, "num_frames": end - start, "start_s": start / fps,
           "end_s": end / fps, "duration_s": (end - start) / fps, "fps": fps, "width": size[0], "height": size[1],
           "split_reason": "whole", "drop_reasons": [], "kept": True, "content_x": x, "content_y": y,
           "content_w": w, "content_h": h, "content_aspect": None if box is None else w / h,
           "content_frac": None if box is None else w * h / (size[0] * size[1])}
    uri = str(Path(folder) / "curated.parquet")
    schemas.write_table(schemas.table_from_rows([row], schemas.curated_schema, "curated"), "curated", uri)
    return uri
