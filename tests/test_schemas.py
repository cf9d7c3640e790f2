"""Schemas: validation names the column; files carry the version; writes are atomic."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import SCHEMA_VERSION, SchemaError, read_table, table_from_rows, validate_table, write_table
from schemas.io import VERSION_KEY


def _error(**over):
    row = {"uri": "a.mp4", "video_id": None, "stage": "decode", "error_type": "DecodeError", "message": "bad", "run_id": "r"}
    row.update(over)
    return row


def test_rows_round_trip_with_version(tmp_path):
    from schemas import errors_schema

    t = table_from_rows([_error(), _error(uri="b.mp4")], errors_schema, "errors")
    write_table(t, "errors", str(tmp_path / "errors" / "part-0.parquet"))
    meta = pq.read_schema(tmp_path / "errors" / "part-0.parquet").metadata
    assert meta[VERSION_KEY].decode() == SCHEMA_VERSION
    back = read_table(str(tmp_path / "errors"), "errors")
    assert back.column("uri").to_pylist() == ["a.mp4", "b.mp4"]
    assert not [p for p in (tmp_path / "errors").iterdir() if p.name.startswith(".tmp")]


def test_wrong_type_names_the_column():
    from schemas import videos_schema

    row = {"video_id": "v", "uri": "u", "relpath": "r", "content_hash": "h", "file_size": "big"}
    with pytest.raises(SchemaError, match="'file_size'"):
        table_from_rows([row], videos_schema, "videos")


def test_missing_required_value_names_the_column():
    from schemas import errors_schema

    with pytest.raises(SchemaError, match="'stage'"):
        table_from_rows([_error(stage=None)], errors_schema, "errors")


def test_unknown_and_missing_columns_refused():
    from schemas import errors_schema

    with pytest.raises(SchemaError, match="unknown column"):
        table_from_rows([_error(colour="red")], errors_schema, "errors")
    with pytest.raises(SchemaError, match="missing column"):
        validate_table(pa.table({"uri": ["x"]}), errors_schema, "errors")


def test_writer_refuses_mismatching_table(tmp_path):
    bad = pa.table({"uri": ["x"], "stage": ["s"]})
    with pytest.raises(SchemaError):
        write_table(bad, "errors", str(tmp_path / "e.parquet"))
    assert not list(tmp_path.iterdir())


def test_an_older_minor_version_reads_with_the_added_columns_null(tmp_path):
    """Minor versions only add nullable columns: a manifest written before them (1.0: no nsfw_score) still reads."""
    from schemas import TABLES

    row = {"clip_id": "c0", "video_id": "v", "uri": "file:///v.mp4", "clip_index": 0, "start_frame": 0, "end_frame": 25,
           "num_frames": 25, "start_s": 0.0, "end_s": 1.0, "duration_s": 1.0, "fps": 25.0, "width": 64, "height": 36,
           "split_reason": "whole", "drop_reasons": [], "kept": True}
    table = table_from_rows([row], TABLES["clips"], "clips")
    old = table.drop_columns(["nsfw_score"]).replace_schema_metadata({VERSION_KEY: b"1.0"})
    pq.write_table(old, tmp_path / "old.parquet")
    back = read_table(str(tmp_path / "old.parquet"), "clips")
    assert back.column("nsfw_score").to_pylist() == [None]
    assert back.column("clip_id").to_pylist() == table.column("clip_id").to_pylist()
    pq.write_table(old.replace_schema_metadata({VERSION_KEY: SCHEMA_VERSION.encode()}), tmp_path / "now.parquet")
    with pytest.raises(SchemaError, match="missing column"):  # at this version the column must be there
        read_table(str(tmp_path / "now.parquet"), "clips")
