"""The contracts: Arrow schemas of every table vidcurate writes, with a version.

Everything that writes or reads a table goes through here, so the shape of the
data is defined once and checked at the boundary.
"""
from schemas.tables import (
    SCHEMA_VERSION,
    TABLES,
    clips_schema,
    curated_schema,
    errors_schema,
    keyframes_schema,
    videos_schema,
)
from schemas.latents import latents_schema
from schemas.export import export_report_schema
from schemas.validate import SchemaError, validate_table, table_from_rows
from schemas.io import MANIFEST, read_manifest, read_table, table_files, write_table
from schemas.table_set import FINAL_TABLES, TABLE_SET, TableSet, open_table_set, read_table_set
from schemas.run_record import RunRecord

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "videos_schema",
    "clips_schema",
    "curated_schema",
    "errors_schema",
    "keyframes_schema",
    "latents_schema",
    "export_report_schema",
    "SchemaError",
    "validate_table",
    "table_from_rows",
    "read_table",
    "write_table",
    "table_files",
    "read_manifest",
    "MANIFEST",
    "FINAL_TABLES",
    "TABLE_SET",
    "TableSet",
    "open_table_set",
    "read_table_set",
    "RunRecord",
]
