"""The export report: one row per curated clip that `vidcurate export` tried, exported or not."""
import pyarrow as pa

_f = pa.field

export_report_schema = pa.schema(
    [
        _f("clip_id", pa.string(), nullable=False),
        _f("video_id", pa.string()),
        _f("uri", pa.string(), nullable=False),  # source file of the clip
        _f("status", pa.string(), nullable=False),  # ok | error
        _f("shard", pa.string()),  # WebDataset: tar file name holding the sample; null for csv and errors
        _f("path", pa.string()),  # csv: URI of the clip's mp4; WebDataset: the mp4's member name in the shard
        _f("bytes", pa.int64()),  # size of the clip's mp4
        _f("num_frames", pa.int64()),  # frames in the mp4 (= end_frame - start_frame of the manifest)
        _f("width", pa.int32()),  # px, display geometry as written
        _f("height", pa.int32()),
        _f("fps", pa.float64()),  # frames/s of the written frames
        _f("audio", pa.bool_()),  # the mp4 carries the source's audio, trimmed to the clip
        _f("audio_error", pa.string()),  # why the source's audio was not kept (null when kept or absent)
        _f("read_method", pa.string()),  # seek | sequential (frames read by seeking or from the file's start)
        _f("encode_s", pa.float64()),  # wall seconds to read and encode the clip
        _f("error_type", pa.string()),  # SourceMissing | SourceChanged | DecodeError ... (null when ok)
        _f("message", pa.string()),  # one line a person understands (null when ok)
    ]
)
