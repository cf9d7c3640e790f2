"""A user-defined pipeline stage, as a config's `entrypoint: "custom_stage_example:drop_short_names"` names it."""
import pyarrow as pa


def drop_short_names(clips: pa.Table, stage: dict) -> pa.Table:
    """Drop clips whose file name (without folder) is shorter than 10 characters."""
    reasons = clips.column("drop_reasons").to_pylist()
    names = [u.rsplit("/", 1)[-1] for u in clips.column("uri").to_pylist()]
    new = [r + ["short_name"] if len(n) < 10 and "short_name" not in r else r for r, n in zip(reasons, names)]
    clips = clips.set_column(clips.schema.get_field_index("drop_reasons"), "drop_reasons", pa.array(new, pa.list_(pa.string())))
    return clips.set_column(clips.schema.get_field_index("kept"), "kept", pa.array([not r for r in new]))
