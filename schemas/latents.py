"""The `latents` table: where each clip's autoencoder posterior lives.

Latents are stored as the posterior's mean and std (the EDM2 pattern: store the
distribution, sample at training time) in safetensors shards; this table is the
index. Per-channel statistics for normalisation live in `latents/stats.json`.
"""
import pyarrow as pa

_f = pa.field

latents_schema = pa.schema(
    [
        _f("clip_id", pa.string(), nullable=False),
        _f("video_id", pa.string(), nullable=False),
        _f("shard", pa.string(), nullable=False),  # shard path relative to the latents folder
        _f("key", pa.string(), nullable=False),  # tensor names in the shard: f"{key}.mean", f"{key}.std"
        _f("window", pa.int32()),  # 0-based index of this fixed-length window within the clip (one row per window)
        _f("frame_indices", pa.list_(pa.int64()), nullable=False),  # decoded-frame indices encoded
        _f("shape", pa.list_(pa.int32()), nullable=False),  # (C, T', H', W') of the mean tensor
        _f("height", pa.int32()),  # pixel height of the aspect bucket the frames were resized to
        _f("width", pa.int32()),  # pixel width of that bucket
        _f("fps", pa.float64()),  # frames/s of the encoded frames (after resampling)
        _f("ae_hash", pa.string(), nullable=False),  # sha256 of the autoencoder checkpoint, hex
        # curation scores copied from the manifest: conditions for the diffusion model
        _f("aesthetic", pa.float32()),
        _f("motion", pa.float32()),
        _f("quality", pa.float32()),
        _f("caption", pa.string()),  # the manifest's caption (null when the run had no captioner)
    ]
)
