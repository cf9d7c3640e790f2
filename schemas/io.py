"""Read and write tables through fsspec, validated, versioned and atomic."""
import posixpath
import uuid

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

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


def read_table(
    uri: str,
    name: str,
    storage_options: dict | None = None,
    schema: pa.Schema | None = None,
) -> pa.Table:
    """Read every visible Parquet file of table `name` under `uri` (a file or a folder)."""
    schema = schema if schema is not None else TABLES[name]
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    if fs.isdir(path):
        files = sorted(
            p for p in fs.find(path) if p.endswith(".parquet") and not posixpath.basename(p).startswith((".", "_"))
        )
    elif fs.exists(path):
        files = [path]
    else:
        files = []
    tables = []
    for p in files:
        with fs.open(p, "rb") as f:
            t = pq.read_table(f)
        version = (t.schema.metadata or {}).get(VERSION_KEY, b"?").decode()
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise SchemaError(f"{name}: {p} has schema version {version}, this code reads {SCHEMA_VERSION}")
        tables.append(validate_table(t.replace_schema_metadata(None), schema, name))
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables)
