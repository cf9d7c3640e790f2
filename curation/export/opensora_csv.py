"""An Open-Sora-style CSV of exported clips: path, text, num_frames, height, width, aspect_ratio, fps, resolution, ...

Open-Sora's dataset CSV (tools/datasets/README.md there): `path` to the clip
file, `text` the caption, frame count and geometry of the file (the exported
picture: after the crop to the content box), `aspect_ratio`
= height / width, `resolution` = height * width, `aes` the LAION aesthetic score
(the same scorer, so the same scale). Our motion score goes in `motion` (frame
diagonals per second), not in Open-Sora's `flow` (UniMatch pixels), whose unit
differs. `crop_x/y/w/h` say which box of the display frame (`frame_width` x
`frame_height`) the file holds (empty: the full frame). The remaining scalar
manifest columns follow under their own names.
"""
import csv
import io

import pyarrow as pa

from schemas import curated_schema

OPENSORA_COLUMNS = ("path", "text", "num_frames", "height", "width", "aspect_ratio", "fps", "resolution", "aes", "motion")
RENAMED = {"uri": "source_uri"}  # manifest column -> CSV column
SKIPPED = {"caption", "aesthetic", "num_frames", "width", "height", "fps", "motion"}  # already in the Open-Sora part
# list columns (embedding, phash, drop_reasons) stay in the json: a CSV cell is no place for them, null or not
LIST_COLUMNS = {f.name for f in curated_schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)}


def csv_row(path: str, meta: dict) -> dict:
    """One CSV row from a sample's metadata (the manifest row plus its `export` block)."""
    e = meta["export"]
    row = {
        "path": path,
        "text": meta.get("caption"),
        "num_frames": e["num_frames"],
        "height": e["height"],
        "width": e["width"],
        "aspect_ratio": e["height"] / e["width"],
        "fps": e["fps"],
        "resolution": e["height"] * e["width"],
        "aes": meta.get("aesthetic"),
        "motion": meta.get("motion"),
        "has_audio": e["audio"],
    }
    crop = e.get("crop") or {}
    row.update({f"crop_{k}": crop.get(k) for k in ("x", "y", "w", "h")})
    row.update(frame_width=e.get("frame_width"), frame_height=e.get("frame_height"))
    for k, v in meta.items():
        if k in SKIPPED or k in LIST_COLUMNS or k == "export" or isinstance(v, (list, dict)):
            continue
        row[RENAMED.get(k, k)] = v
    return row


def to_csv(rows: list[dict]) -> bytes:
    """CSV text: the Open-Sora columns first, then the others in first-seen order; null is an empty cell."""
    columns = list(OPENSORA_COLUMNS)
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue().encode()
