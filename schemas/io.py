"""Read and write tables through fsspec, validated, versioned and atomic.

A table folder of many files is replaced as a set: the writer puts the new
files next to the old ones under new names, then atomically replaces
`<folder>/_MANIFEST.json`, which lists the files of the current version;
readers read exactly those. A folder without a manifest (older runs,
hand-made tables) reads as every visible Parquet file in it. Above the
folders, a run folder's table set (schemas/table_set.py) names the files of
every final table of one run version; where there is one, it decides.
"""
import posixpath
import uuid

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.table_set import MANIFEST, folder_files, read_manifest  # noqa: F401 (MANIFEST, read_manifest: re-exported)
from schemas.tables import SCHEMA_VERSION, TABLES
from schemas.validate import SchemaError, validate_table

VERSION_KEY = b"vidcurate.schema_version"
TABLE_KEY = b"vidcurate.table"


def write_table(
    table: pa.Table,
    name: str,
    uri: str,
    storage_options: dict | None = None,
    schema: pa.Schema | None = None,
) -> str:
    """Validate `table` as table `name` and write it to `uri` atomically.

    The file is written next to its destination under a hidden temporary name
    and renamed into place, so readers never see a partial Parquet file.
    """
    schema = schema if schema is not None else TABLES[name]
    table = validate_table(table, schema, name)
    meta = dict(table.schema.metadata or {})
    meta.update({VERSION_KEY: SCHEMA_VERSION.encode(), TABLE_KEY: name.encode()})
    table = table.replace_schema_metadata(meta)
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    parent = posixpath.dirname(path)
    fs.makedirs(parent, exist_ok=True)
    tmp = posixpath.join(parent, f".tmp-{uuid.uuid4().hex}-{posixpath.basename(path)}")
    with fs.open(tmp, "wb") as f:
        pq.write_table(table, f, compression="zstd")
    fs.mv(tmp, path)
    return uri


def table_files(uri: str, storage_options: dict | None = None) -> tuple:
    """(fs, paths) of the Parquet files that make up the table at `uri` (a file or a folder), in order.

    A folder: the files its run folder's table set names, else its manifest's, else every visible Parquet file
    under it (schemas.table_set.folder_files).
    """
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    return fs, folder_files(fs, path)


def read_table(
    uri: str,
    name: str,
    storage_options: dict | None = None,
    schema: pa.Schema | None = None,
) -> pa.Table:
    """Read every visible Parquet file of table `name` under `uri` (a file or a folder)."""
    schema = schema if schema is not None else TABLES[name]
    for attempt in (1, 2):
        fs, files = table_files(uri, storage_options)
        try:
            return read_files(fs, files, name, schema)
        except FileNotFoundError:  # a writer replaced the set (and removed the old files) while we read it
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _with_added_columns(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """`t` with every nullable column of `schema` it lacks, as nulls (minor versions only add nullable columns)."""
    for field in schema:
        if field.name not in t.column_names and field.nullable:
            t = t.append_column(field, pa.nulls(t.num_rows, field.type))
    return t


def read_files(fs, files: list[str], name: str, schema: pa.Schema) -> pa.Table:
    """The given Parquet files of table `name`, each checked for its schema version and validated, concatenated."""
    tables = []
    for p in files:
        with fs.open(p, "rb") as f:
            t = pq.read_table(f)
        version = (t.schema.metadata or {}).get(VERSION_KEY, b"?").decode()
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise SchemaError(f"{name}: {p} has schema version {version}, this code reads {SCHEMA_VERSION}")
        t = t.replace_schema_metadata(None)
        if version != SCHEMA_VERSION:  # an older minor version: the columns added since are null there
            t = _with_added_columns(t, schema)
        tables.append(validate_table(t, schema, name))
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables)
