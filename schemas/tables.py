"""Arrow schemas of the run's tables: videos, clips, curated, errors.

Columns that a stage may not have produced (a scorer switched off, weights not
configured) are nullable: null means "not measured", never zero.
"""
import pyarrow as pa

from schemas.latents import latents_schema

# Bump on any change of column names, types or meaning; written into every
# Parquet file's metadata under b"vidcurate.schema_version".
SCHEMA_VERSION = "1.2"  # 1.1: clips.nsfw_score, the nsfw_scores work table; 1.2: clips.camera_motion_type

_f = pa.field

videos_schema = pa.schema(
    [
        _f("video_id", pa.string(), nullable=False),  # sha256(content_hash, relpath)[:16]
        _f("uri", pa.string(), nullable=False),  # full fsspec URI as listed
        _f("relpath", pa.string(), nullable=False),  # path relative to the input root
        _f("content_hash", pa.string(), nullable=False),  # sha256 of the file bytes, hex
        _f("file_size", pa.int64(), nullable=False),  # bytes
        _f("container", pa.string()),  # demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
        _f("codec", pa.string()),  # video codec name, e.g. "h264"
        _f("width", pa.int32()),  # pixels, as stored (before rotation)
        _f("height", pa.int32()),
        _f("rotation", pa.int32()),  # degrees from display-matrix metadata (0/90/180/270)
        _f("fps", pa.float64()),  # average frame rate, frames/s
        _f("num_frames", pa.int64()),  # frames actually decoded
        _f("num_frames_meta", pa.int64()),  # frame count claimed by the container (may lie)
        _f("duration_s", pa.float64()),  # seconds, from decoded timestamps
        _f("num_clips", pa.int32()),
        _f("decode_s", pa.float64()),  # wall seconds spent decoding + scoring this file
        _f("decoder_opens", pa.int32()),  # times the file was opened by a decoder in this run (1 = decoded once)
        # --- display geometry (curation/decode.py): what a viewer sees ---
        _f("sar", pa.float64()),  # sample (pixel) aspect ratio, pixel width / height; 1.0 = square pixels
        _f("display_width", pa.int32()),  # pixels as shown: width x sar, then rotation applied
        _f("display_height", pa.int32()),
        _f("display_aspect", pa.float64()),  # display_width / display_height
        # --- audio (curation/audio.py): first audio stream; null = not analysed (audio.enabled false) ---
        _f("has_audio", pa.bool_()),  # an audio stream that decoded at least one sample
        _f("audio_codec", pa.string()),  # e.g. "aac", "mp3float"; null = no audio stream
        _f("audio_sample_rate", pa.int32()),  # Hz
        _f("audio_channels", pa.int32()),  # count (5.1 = 6)
        _f("audio_start_s", pa.float64()),  # first audio sample minus first video frame, seconds
        _f("audio_duration_s", pa.float64()),  # seconds of decoded audio
        _f("av_duration_gap_s", pa.float64()),  # video duration_s - audio_duration_s, seconds (> 0: audio shorter)
        # --- end audio ---
    ]
)

_score_fields = [
    # motion (curation/motion.py): optical flow on ~2 fps frames, short side ~256 px
    _f("motion", pa.float32()),  # mean flow magnitude / frame diagonal, per second
    _f("camera_motion", pa.float32()),  # global (median) flow part, same unit
    _f("local_motion", pa.float32()),  # residual flow part, same unit
    _f("static", pa.bool_()),  # motion below config threshold
    # camera-motion label (curation/camera_motion.py), from the camera model of the same flow: static | pan_left |
    # pan_right | tilt_up | tilt_down | zoom_in | zoom_out | roll | handheld (moving, no one direction); null = no
    # sample pair in the clip. Parquet dictionary-encodes it.
    _f("camera_motion_type", pa.string()),
    # content box (curation/content_box.py): the picture inside bars of one level (letterbox, pillarbox,
    # windowbox, a coloured border), the largest over the clip's samples; display px. Every picture score
    # below is measured inside it, keyframes are stored cropped to it, export crops to it.
    _f("content_x", pa.int32()),  # left edge, px
    _f("content_y", pa.int32()),  # top edge, px
    _f("content_w", pa.int32()),  # px
    _f("content_h", pa.int32()),  # px
    _f("content_aspect", pa.float32()),  # content_w / content_h
    _f("content_frac", pa.float32()),  # content area / frame area, 0..1 (rule letterbox: a thumbnail or inset picture)
    # technical quality (curation/quality.py), inside the content box
    _f("sharpness", pa.float32()),  # variance of Laplacian at a fixed analysis size
    _f("luma_mean", pa.float32()),  # 0..255
    _f("luma_p99", pa.float32()),  # 99th percentile of luma, mean over samples, 0..255 (rule dark: even the highlights are dim)
    _f("clipped_dark_frac", pa.float32()),  # share of pixels with luma <= 2
    _f("clipped_bright_frac", pa.float32()),  # share of pixels with luma >= 253
    _f("contrast", pa.float32()),  # RMS contrast: std of luma, 0..255
    _f("colorfulness", pa.float32()),  # Hasler & Suesstrunk 2003
    _f("black_frac", pa.float32()),  # share of sampled frames that are near-black/blank
    _f("quality", pa.float32()),  # combined technical quality, 0..1
    # --- defects (curation/defects.py): every decoded frame of the scan pass; null = not measured ---
    _f("fade_frac", pa.float32()),  # share of the clip's frames on a luma ramp into or out of near-black, 0..1
    _f("flicker", pa.float32()),  # median |second difference| of per-frame mean luma / clip mean luma, unitless (clean < 0.01)
    _f("shake", pa.float32()),  # RMS of the camera path minus its moving average, frame diagonals
    _f("blockiness", pa.float32()),  # mean |luma step| across 8x8 block boundaries / inside blocks, ratio (1 = no grid)
    _f("qp", pa.float32()),  # H.264 quantiser (QP 0..51) of the clip's frames, mean; null for other codecs
    # --- end defects ---
    # model scores (null when weights are not configured)
    _f("aesthetic", pa.float32()),  # LAION improved-aesthetic head, ~1..10
    _f("embedding", pa.list_(pa.float32())),  # L2-normalised CLIP image embedding
    _f("phash", pa.list_(pa.uint64())),  # 64-bit DCT perceptual hash of keyframes
    # --- audio (curation/audio.py), on the clip's span; null = no audio in the span or not analysed ---
    _f("audio_channels", pa.int32()),  # channels of the video's decoded audio; 0 = none (rule no_audio)
    _f("audio_coverage", pa.float32()),  # share of the clip's span with decoded audio, 0..1 (rule av_gap)
    _f("loudness_lufs", pa.float32()),  # BS.1770-4 integrated loudness, LUFS; -70 = all blocks below the absolute gate
    _f("silence_frac", pa.float32()),  # share of 100 ms windows with RMS below audio.silence_dbfs
    _f("audio_clipping_frac", pa.float32()),  # share of samples at or above audio.full_scale
    _f("speech_frac", pa.float32()),  # share of 32 ms frames Silero VAD marks as speech
    # --- end audio ---
    # --- on-screen text and captions (curation/text_area.py, captions.py, caption_hygiene.py) ---
    _f("text_area_frac", pa.float32()),  # share of the frame covered by detected text lines, median over keyframes, 0..1
    _f("caption", pa.string()),  # VLM caption of a kept clip (null: not captioned or not configured)
    _f("caption_words", pa.int32()),  # words in the caption (0 = empty output)
    _f("caption_repetition", pa.float32()),  # share of the caption's word n-grams that repeat an earlier one, 0..1
    _f("caption_boilerplate_words", pa.int32()),  # words of a boilerplate opening ("The video shows"), 0 = none
    # --- end text and captions ---
    # --- safety (curation/nsfw.py) ---
    _f("nsfw_score", pa.float32()),  # NudeNet explicit-class box score, k-th highest over the keyframes, 0..1 (rule unsafe)
    # --- end safety ---
]

clips_schema = pa.schema(
    [
        _f("clip_id", pa.string(), nullable=False),  # sha256(video_id, start, end)[:16]
        _f("video_id", pa.string(), nullable=False),
        _f("uri", pa.string(), nullable=False),
        _f("clip_index", pa.int32(), nullable=False),  # 0-based order within the video
        _f("start_frame", pa.int64(), nullable=False),  # first frame, inclusive, 0-based decoded index
        _f("end_frame", pa.int64(), nullable=False),  # one past the last frame (exclusive)
        _f("num_frames", pa.int64(), nullable=False),
        _f("start_s", pa.float64(), nullable=False),  # PTS of the first frame, seconds
        _f("end_s", pa.float64(), nullable=False),  # PTS of the last frame + one frame duration
        _f("duration_s", pa.float64(), nullable=False),
        _f("fps", pa.float64(), nullable=False),
        _f("width", pa.int32(), nullable=False),  # display size (after rotation)
        _f("height", pa.int32(), nullable=False),
        _f("split_reason", pa.string(), nullable=False),  # cut | window | whole | black (a near-black run cut out)
        *_score_fields,
        # duplicates (curation/dedup)
        _f("dup_group_id", pa.string()),
        _f("dup_kind", pa.string()),  # exact | perceptual | segment | edited | semantic (see curation/dedup/find.py)
        _f("dup_of", pa.string()),  # clip_id of the kept representative
        _f("dup_similarity", pa.float32()),
        _f("sample_weight", pa.float32()),  # balance weight (null when balance is off)
        # filtering
        _f("drop_reasons", pa.list_(pa.string()), nullable=False),  # empty = kept
        _f("kept", pa.bool_(), nullable=False),
    ]
)

# The hand-off to training: exactly the kept rows of `clips`, same columns.
curated_schema = clips_schema

# Small JPEGs of each clip's keyframes (the analysis samples nearest 10/50/90% of
# the clip): the model stages and the dashboard read these instead of the video.
keyframes_schema = pa.schema(
    [
        _f("clip_id", pa.string(), nullable=False),
        _f("video_id", pa.string(), nullable=False),
        _f("position", pa.float32(), nullable=False),  # fraction of the clip, e.g. 0.1/0.5/0.9
        _f("frame_index", pa.int64(), nullable=False),  # decoded-frame index of the sample
        _f("t", pa.float64(), nullable=False),  # seconds
        _f("width", pa.int32(), nullable=False),
        _f("height", pa.int32(), nullable=False),
        _f("jpeg", pa.binary(), nullable=False),
    ]
)

# Model-stage results per clip, cached between runs (a work table under _work/).
embeddings_schema = pa.schema(
    [
        _f("clip_id", pa.string(), nullable=False),
        _f("embedding", pa.list_(pa.float32())),
        _f("aesthetic", pa.float32()),
    ]
)

# --- text and caption stage results per clip, cached between runs (work tables under _work/) ---
text_areas_schema = pa.schema(
    [
        _f("clip_id", pa.string(), nullable=False),
        _f("text_area_frac", pa.float32()),  # as in clips
        _f("ocr_s", pa.float32()),  # wall seconds the text detector spent on this clip's keyframes
    ]
)

captions_schema = pa.schema(
    [
        _f("clip_id", pa.string(), nullable=False),
        _f("caption", pa.string(), nullable=False),
    ]
)
# --- end text and caption work tables ---

# --- safety stage results per clip, cached between runs (a work table under _work/) ---
nsfw_scores_schema = pa.schema(
    [
        _f("clip_id", pa.string(), nullable=False),
        _f("nsfw_score", pa.float32()),  # as in clips
        _f("nsfw_s", pa.float32()),  # wall seconds the detector spent on this clip's keyframes
    ]
)
# --- end safety work table ---

# --- segment duplicates (curation/dedup/segments.py) ---
# A per-part scan table: the 64-bit pHash of every analysis sample (about decode.sample_fps per second), the input
# of re-cut (segment) duplicate matching. Rows of one video share its video_id.
samples_schema = pa.schema(
    [
        _f("video_id", pa.string()),
        _f("t", pa.float64()),  # seconds, the sample's decoded timestamp
        _f("phash", pa.uint64()),  # 64-bit sign-bit DCT pHash at display geometry (curation/hashes.py; 0 = flat frame)
        _f("regions", pa.list_(pa.uint64())),  # pHashes of centred crops (curation.hashes.REGION_FRACS; 0 = plain region)
    ]
)

# A final table: one row per matched segment between two videos (a and b in no fixed order; see `symmetry`).
dup_segments_schema = pa.schema(
    [
        _f("video_a", pa.string()),
        _f("video_b", pa.string()),
        _f("a_start_s", pa.float64()),  # matched span in video a, seconds (decoded timestamps)
        _f("a_end_s", pa.float64()),
        _f("b_start_s", pa.float64()),  # the same footage in video b, seconds
        _f("b_end_s", pa.float64()),
        _f("offset_s", pa.float64()),  # t_b - time_scale * t_a of the matched samples (median), seconds
        _f("samples", pa.int32()),  # count of distinct samples of a matched in b
        _f("mean_hamming", pa.float32()),  # bits out of 64, mean over the matched sample pairs
        _f("symmetry", pa.int8()),  # index into curation.hashes.D4 that turns a's frames into b's (0 = as is)
        _f("time_scale", pa.float64()),  # b's seconds per second of a: t_b = time_scale * t_a + offset_s (1 = same speed)
        _f("region_a", pa.float32()),  # share of a's picture (a centred crop) whose hashes matched; 1 = the whole frame
        _f("region_b", pa.float32()),  # the same in b (region_a 1, region_b 0.6: b shows a at 60 %, picture-in-picture)
        _f("edited", pa.bool_()),  # found only through region hashes (dup_kind "edited"), not the whole frames
    ]
)
# --- end segment duplicates ---

errors_schema = pa.schema(
    [
        _f("uri", pa.string(), nullable=False),
        _f("video_id", pa.string()),  # null when the file could not even be hashed
        _f("stage", pa.string(), nullable=False),  # list | probe | decode | split | score | embed ...
        _f("error_type", pa.string(), nullable=False),  # exception class or our code
        _f("message", pa.string(), nullable=False),  # one line a person understands
        _f("run_id", pa.string(), nullable=False),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "videos": videos_schema,
    "clips": clips_schema,
    "curated": curated_schema,
    "errors": errors_schema,
    "keyframes": keyframes_schema,
    "embeddings": embeddings_schema,
    "latents": latents_schema,
    "text_areas": text_areas_schema,
    "captions": captions_schema,
    "nsfw_scores": nsfw_scores_schema,
    "samples": samples_schema,
    "dup_segments": dup_segments_schema,
}
