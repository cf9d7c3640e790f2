"""Check tables against their schema; refuse mismatches with the column's name."""
from collections.abc import Iterable, Mapping

import pyarrow as pa


class SchemaError(ValueError):
    """A table or row does not match its schema; the message names the column."""


def table_from_rows(rows: Iterable[Mapping], schema: pa.Schema, name: str = "table") -> pa.Table:
    """Build a validated table from dict rows; missing nullable columns become null."""
    rows = list(rows)
    for i, row in enumerate(rows):
        unknown = set(row) - set(schema.names)
        if unknown:
            raise SchemaError(f"{name}: row {i} has unknown column(s) {sorted(unknown)}")
    columns = {}
    for field in schema:
        values = [row.get(field.name) for row in rows]
        try:
            columns[field.name] = pa.array(values, type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as e:
            bad = next((v for v in values if not _fits(v, field.type)), None)
            raise SchemaError(
                f"{name}: column '{field.name}' expects {field.type}, got {bad!r} ({e})"
            ) from None
    return validate_table(pa.table(columns, schema=schema), schema, name)


def _fits(value, type_: pa.DataType) -> bool:
    try:
        pa.array([value], type=type_)
        return True
    except Exception:
        return False


def validate_table(table: pa.Table, schema: pa.Schema, name: str = "table") -> pa.Table:
    """Return `table` cast to `schema`, or raise SchemaError naming the first bad column."""
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise SchemaError(f"{name}: missing column(s) {missing}")
    extra = [n for n in table.column_names if n not in schema.names]
    if extra:
        raise SchemaError(f"{name}: unknown column(s) {extra}")
    columns = []
    for field in schema:
        col = table.column(field.name)
        if not col.type.equals(field.type):
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise SchemaError(
                    f"{name}: column '{field.name}' has type {col.type}, expected {field.type} ({e})"
                ) from None
        if not field.nullable and col.null_count:
            raise SchemaError(f"{name}: column '{field.name}' has {col.null_count} null value(s) but is required")
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)
