"""build_dashboard: dashboard.duckdb and dashboard.html for one run folder."""
import os
import uuid
from pathlib import Path

import duckdb
import fsspec
from fsspec.implementations.local import LocalFileSystem

from curation.dashboard.database import build_database, duckdb_limits
from curation.dashboard.report import render_html
from curation.dashboard.thumbnails import Thumbnailer

HTML_NAME = "dashboard.html"


def build_dashboard(out_dir: str, storage_options: dict | None = None,
                    limits: dict | None = None) -> tuple[Path | str, Path | str]:
    """Write OUT/dashboard.duckdb and OUT/dashboard.html; return (database, html): local paths, or URIs when remote.
    `limits`: DuckDB memory_limit and temp_directory (database.duckdb_limits; default: its defaults)."""
    options = storage_options or {}
    limits = limits or duckdb_limits()
    db_uri = build_database(out_dir, options, limits)
    fs, db_path = fsspec.core.url_to_fs(db_uri, **options)
    local_copy = None
    if not isinstance(fs, LocalFileSystem):
        protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
        local_copy = fsspec.open_local(f"simplecache::{db_uri}", **{protocol: options})  # the HTML reads a local copy
    con = duckdb.connect(local_copy or db_path, read_only=True, config=limits)
    try:
        html = render_html(con, Thumbnailer(out_dir, options))
    finally:
        con.close()
    html_uri = f"{out_dir.rstrip('/')}/{HTML_NAME}"
    fs_html, html_path = fsspec.core.url_to_fs(html_uri, **options)
    tmp = f"{os.path.dirname(html_path)}/.tmp-{uuid.uuid4().hex}-{HTML_NAME}"
    with fs_html.open(tmp, "w", encoding="utf-8") as f:
        f.write(html)
    fs_html.mv(tmp, html_path)
    if isinstance(fs, LocalFileSystem):
        return Path(db_path), Path(html_path)
    return db_uri, html_uri  # keep the scheme: s3://bucket/out/..., not bucket/out/...
