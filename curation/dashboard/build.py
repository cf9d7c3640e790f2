"""build_dashboard: dashboard.duckdb and dashboard.html for one run folder."""
import os
import uuid
from pathlib import Path

import duckdb
import fsspec
from fsspec.implementations.local import LocalFileSystem

from curation.dashboard.database import DATABASE_NAME, build_database
from curation.dashboard.report import render_html
from curation.dashboard.thumbnails import Thumbnailer

HTML_NAME = "dashboard.html"


def build_dashboard(out_dir: str) -> tuple[Path, Path]:
    """Write OUT/dashboard.duckdb and OUT/dashboard.html; return their paths (database, html)."""
    db_uri = build_database(out_dir)
    fs, db_path = fsspec.core.url_to_fs(db_uri)
    local_copy = None
    if not isinstance(fs, LocalFileSystem):
        local_copy = fsspec.open_local(f"simplecache::{db_uri}")  # the HTML reads a local copy
    con = duckdb.connect(local_copy or db_path, read_only=True)
    try:
        html = render_html(con, Thumbnailer())
    finally:
        con.close()
    html_uri = f"{out_dir.rstrip('/')}/{HTML_NAME}"
    fs_html, html_path = fsspec.core.url_to_fs(html_uri)
    tmp = f"{os.path.dirname(html_path)}/.tmp-{uuid.uuid4().hex}-{HTML_NAME}"
    with fs_html.open(tmp, "w", encoding="utf-8") as f:
        f.write(html)
    fs_html.mv(tmp, html_path)
    return Path(db_path), Path(html_path)
