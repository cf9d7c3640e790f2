"""SQL of the dashboard's views, over the tables that database.py materialises.

Materialised tables (snapshots of the run folder, see database.py for why):
  run_records, filter_rules, score_columns, videos, clips, curated, errors, evaluation_rows, dup_segments.
Views, for people and for the HTML report:
  latest_run, inputs, clip_first_reason, clip_outcomes, reason_steps, clip_scores, funnel, score_quantiles,
  score_histograms, by_source, by_resolution, dup_groups, dup_segment_spans, error_summary, runs,
  audio_presence, caption_counts, evaluation.
"""

HISTOGRAM_BINS = 20

# Where a file sits under the input root: its top folder, the unit of "source".
_SOURCE_OF_RELPATH = "CASE WHEN contains(relpath, '/') THEN split_part(relpath, '/', 1) ELSE '(top level)' END"

LATEST_RUN = """
CREATE VIEW latest_run AS
-- The run whose tables are on disk: the latest succeeded one (failed, interrupted and running
-- runs wrote no final tables), else the latest record of any status. Same rule as RunFolder.latest_run.
SELECT * FROM run_records ORDER BY status = 'succeeded' DESC, started_at DESC, run_id DESC LIMIT 1
"""

INPUTS = f"""
CREATE VIEW inputs AS
-- One row per input file: a video row, an error row, or both; `outcome` counts it once.
WITH latest AS (SELECT input_uri FROM latest_run),
all_uris AS (SELECT uri FROM videos UNION SELECT uri FROM errors),
clip_stats AS (
    SELECT uri,
           count(*) AS n_clips,
           count(*) FILTER (WHERE kept) AS n_kept,
           sum(duration_s) / 3600 AS clip_hours,
           coalesce(sum(duration_s) FILTER (WHERE kept), 0) / 3600 AS kept_hours,
           list_sort(list_distinct(flatten(list(drop_reasons)))) AS clip_reasons
    FROM clips GROUP BY uri
),
err AS (
    SELECT uri, count(*) AS n_errors,
           string_agg(DISTINCT stage || ': ' || error_type, '; ' ORDER BY stage || ': ' || error_type) AS error
    FROM errors GROUP BY uri
),
joined AS (
    SELECT a.uri,
           coalesce(v.relpath,
                    CASE WHEN l.input_uri IS NOT NULL AND starts_with(a.uri, l.input_uri)
                         THEN ltrim(substr(a.uri, length(l.input_uri) + 1), '/')
                         ELSE a.uri END) AS relpath,
           v.video_id, v.duration_s, v.width, v.height,
           v.has_audio,  -- audio
           coalesce(c.n_clips, 0) AS n_clips, coalesce(c.n_kept, 0) AS n_kept,
           coalesce(c.clip_hours, 0) AS clip_hours, coalesce(c.kept_hours, 0) AS kept_hours,
           coalesce(e.n_errors, 0) AS n_errors, e.error, c.clip_reasons
    FROM all_uris a
    LEFT JOIN videos v USING (uri)
    LEFT JOIN clip_stats c USING (uri)
    LEFT JOIN err e USING (uri)
    LEFT JOIN latest l ON true
)
SELECT *,
       {_SOURCE_OF_RELPATH} AS source,
       CASE WHEN n_kept > 0 THEN 'curated'
            WHEN n_clips > 0 THEN 'dropped'
            WHEN n_errors > 0 THEN 'error'
            ELSE 'dropped' END AS outcome,
       -- why it is not curated: its clips' reasons, its error, or no clip at all
       CASE WHEN n_kept > 0 THEN []
            WHEN n_clips > 0 THEN clip_reasons
            WHEN n_errors > 0 THEN [error]
            ELSE ['no_clips'] END AS reasons
FROM joined
"""

REASON_STEPS = """
CREATE VIEW reason_steps AS
-- The funnel's order: filter rules as configured, then reasons that no rule
-- names (duplicate, balance, ...) as found in the data, alphabetically.
WITH rule_reasons AS (
    SELECT reason, min(position) AS pos,
           string_agg(CASE WHEN "min" IS NOT NULL THEN "column" || ' < ' || "min" END, ' or ') AS below,
           string_agg(CASE WHEN "max" IS NOT NULL THEN "column" || ' > ' || "max" END, ' or ') AS above
    FROM filter_rules GROUP BY reason
),
data_reasons AS (SELECT DISTINCT unnest(drop_reasons) AS reason FROM clips),
ordered AS (
    SELECT reason, 0 AS src, pos, concat_ws(' or ', below, above) AS rule FROM rule_reasons
    UNION ALL
    SELECT reason, 1, 0, NULL FROM data_reasons WHERE reason NOT IN (SELECT reason FROM rule_reasons)
)
SELECT reason, row_number() OVER (ORDER BY src, pos, reason) AS step, rule FROM ordered
"""

CLIP_FIRST_REASON = """
CREATE VIEW clip_first_reason AS
-- Each dropped clip's first reason in funnel order (where the funnel counts it as removed).
WITH exploded AS (SELECT clip_id, unnest(drop_reasons) AS reason FROM clips WHERE NOT kept)
SELECT e.clip_id, arg_min(e.reason, coalesce(r.step, 1e18)) AS first_reason
FROM exploded e LEFT JOIN reason_steps r USING (reason) GROUP BY e.clip_id
"""

CLIP_OUTCOMES = """
CREATE VIEW clip_outcomes AS
-- Every clip with its file and the first reason (in funnel order) it was dropped for.
WITH firsts AS (SELECT * FROM clip_first_reason)
SELECT c.*, i.relpath, i.source,
       CASE WHEN c.kept THEN NULL ELSE coalesce(f.first_reason, '(no reason recorded)') END AS first_reason
FROM clips c
LEFT JOIN firsts f USING (clip_id)
LEFT JOIN inputs i ON i.uri = c.uri
"""

FUNNEL = """
CREATE VIEW funnel AS
-- Two funnels whose counts add up: inputs (total = error + dropped + curated) and
-- clips (total = removed at each reason step + curated). A clip dropped for several
-- reasons is removed at its first step; `flagged` counts every clip with the reason.
WITH input_steps(step, stage, kind) AS (
    VALUES (1, 'error', 'removed'), (2, 'dropped', 'removed'), (3, 'curated', 'remaining')
),
input_rows AS (
    SELECT 'inputs' AS level, 0 AS step, 'inputs' AS stage, 'total' AS kind,
           count(*) AS count, coalesce(sum(duration_s), 0) / 3600 AS hours,
           NULL AS rule, NULL::BIGINT AS flagged, NULL AS reasons,
           count(*) FILTER (WHERE has_audio) AS with_audio
    FROM inputs
    UNION ALL
    SELECT 'inputs', s.step, s.stage, s.kind, count(i.uri), coalesce(sum(i.duration_s), 0) / 3600,
           NULL, NULL,
           nullif(array_to_string(list_sort(list_distinct(flatten(list(i.reasons)))), ', '), ''),
           count(i.uri) FILTER (WHERE i.has_audio)
    FROM input_steps s LEFT JOIN inputs i ON i.outcome = s.stage
    GROUP BY s.step, s.stage, s.kind
),
fates AS (  -- clips with their first reason only: the funnel needs no file columns (no join with inputs)
    SELECT c.clip_id, c.duration_s, c.audio_channels,
           CASE WHEN c.kept THEN NULL ELSE coalesce(f.first_reason, '(no reason recorded)') END AS first_reason
    FROM clips c LEFT JOIN clip_first_reason f USING (clip_id)
),
flags AS (SELECT reason, count(*) AS flagged FROM (SELECT unnest(list_distinct(drop_reasons)) AS reason FROM clips) GROUP BY reason),
clip_steps AS (
    SELECT step, reason, rule FROM reason_steps
    UNION ALL
    SELECT (SELECT count(*) + 1 FROM reason_steps), '(no reason recorded)', NULL
    WHERE EXISTS (SELECT 1 FROM fates WHERE first_reason = '(no reason recorded)')
),
clip_rows AS (
    SELECT 'clips' AS level, 0 AS step, 'clips' AS stage, 'total' AS kind,
           count(*) AS count, coalesce(sum(duration_s), 0) / 3600 AS hours,
           NULL AS rule, NULL::BIGINT AS flagged, NULL AS reasons,
           count(*) FILTER (WHERE audio_channels > 0) AS with_audio
    FROM clips
    UNION ALL
    SELECT 'clips', s.step, s.reason, 'removed', count(o.clip_id), coalesce(sum(o.duration_s), 0) / 3600,
           s.rule,
           coalesce(any_value(fl.flagged), 0),
           s.reason,
           count(o.clip_id) FILTER (WHERE o.audio_channels > 0)
    FROM clip_steps s LEFT JOIN fates o ON o.first_reason = s.reason
    LEFT JOIN flags fl ON fl.reason = s.reason
    GROUP BY s.step, s.reason, s.rule
    UNION ALL
    SELECT 'clips', coalesce((SELECT max(step) FROM clip_steps), 0) + 1, 'curated', 'remaining',
           count(*), coalesce(sum(duration_s), 0) / 3600,
           NULL, NULL, NULL,
           count(*) FILTER (WHERE audio_channels > 0)
    FROM clips WHERE kept
),
all_rows AS (SELECT * FROM input_rows UNION ALL SELECT * FROM clip_rows)
SELECT level, step, stage,
       -- what the row counts, in words (the report's funnel shows this, not the stage code)
       CASE WHEN level = 'inputs' AND kind = 'total' THEN 'input files (each listed file once)'
            WHEN level = 'inputs' AND stage = 'error' THEN 'input files with an error and no clips (not decoded)'
            WHEN level = 'inputs' AND stage = 'dropped' THEN 'input files decoded into clips, none curated'
            WHEN level = 'inputs' AND stage = 'curated' THEN 'input files with at least one curated clip'
            WHEN kind = 'total' THEN 'clips cut from the decoded videos'
            WHEN stage = 'curated' THEN 'curated clips (no drop reason)'
            WHEN stage = 'duplicate' THEN 'clips removed at dedup (duplicate of a kept clip)'
            WHEN stage = 'balance' THEN 'clips removed at balance (over-represented group)'
            WHEN rule IS NOT NULL THEN 'clips removed by filter rule ' || stage || ' (' || rule || ' fails)'
            WHEN stage = '(no reason recorded)' THEN 'clips not kept, no reason recorded'
            ELSE 'clips removed for reason ' || stage END AS label,
       kind, count, hours,
       -- what is left after this step: total minus everything removed so far
       sum(CASE WHEN kind = 'total' THEN count WHEN kind = 'removed' THEN -count ELSE 0 END)
           OVER (PARTITION BY level ORDER BY step) AS remaining,
       sum(CASE WHEN kind = 'total' THEN hours WHEN kind = 'removed' THEN -hours ELSE 0 END)
           OVER (PARTITION BY level ORDER BY step) AS remaining_hours,
       rule, flagged, reasons,
       with_audio  -- audio: inputs with a decodable audio stream / clips with sound
FROM all_rows
ORDER BY level DESC, step
"""

# Exact quantiles hold one score column's values per running aggregate (8 bytes x clips); measured at 1M clips
# they cost less CPU than DuckDB's t-digest (1.2 s vs 1.8 s for 25 scores x 2 subsets), so the sketch is
# kept for runs so large that a column no longer fits comfortably in memory.
EXACT_QUANTILE_MAX_CLIPS = 20_000_000


def _measured(score: str) -> str:
    """The finite values of one score column (with `kept`), read column-wise from clips: no long-form unpivot."""
    col = '"' + score.replace('"', '""') + '"'
    return f"SELECT CAST({col} AS DOUBLE) AS value, kept FROM clips WHERE isfinite(CAST({col} AS DOUBLE))"


def _literal(text: str) -> str:
    return text.replace("'", "''")


def score_quantiles_sql(score_columns: list[str], exact: bool) -> str:
    """Quantiles of every score over all clips and over kept clips; a score that was never measured (scorer off,
    weights not configured) has measured = 0 and nulls. One single-column scan per (score, subset). `exact`:
    quantile_cont (holds the group's values in memory); else approx_quantile, DuckDB's t-digest sketch."""
    fn = "quantile_cont" if exact else "approx_quantile"
    parts = []
    for i, score in enumerate(score_columns):
        for subset, where in (("all", "true"), ("kept", "kept")):
            parts.append(
                f"SELECT {i} AS position, '{_literal(score)}' AS score, '{subset}' AS subset, count(value) AS measured, "
                f"min(value) AS min, {fn}(value, [0.05, 0.25, 0.5, 0.75, 0.95]) AS q, max(value) AS max, "
                f"avg(value) AS mean FROM ({_measured(score)}) WHERE {where}"
            )
    body = "\nUNION ALL\n".join(parts) or (
        "SELECT 0 AS position, '' AS score, '' AS subset, 0 AS measured, NULL::DOUBLE AS min, NULL::DOUBLE[] AS q, "
        "NULL::DOUBLE AS max, NULL::DOUBLE AS mean WHERE false")
    return f"""
CREATE VIEW score_quantiles AS
-- Quantiles of every score over all clips and over kept clips ({"exact" if exact else "t-digest sketch"}).
WITH sizes AS (SELECT 'all' AS subset, count(*) AS clips FROM clips
               UNION ALL SELECT 'kept', count(*) FROM clips WHERE kept),
per_score AS (
{body}
)
SELECT p.position, p.score, p.subset, z.clips, p.measured, p.min,
       p.q[1] AS p05, p.q[2] AS p25, p.q[3] AS p50, p.q[4] AS p75, p.q[5] AS p95,
       p.max, p.mean, '{"exact" if exact else "t-digest sketch"}' AS quantiles
FROM per_score p JOIN sizes z USING (subset)
ORDER BY p.position, p.subset
"""


def score_histograms_sql(score_columns: list[str]) -> str:
    """HISTOGRAM_BINS equal-width bins per measured score over its observed range: two single-column scans per score
    (bounds, then counts), exact at any size and in bounded memory."""
    n = HISTOGRAM_BINS
    parts = []
    for i, score in enumerate(score_columns):
        parts.append(f"""
SELECT {i} AS position, '{_literal(score)}' AS score, r.range AS bin,
       b.lo + (b.hi - b.lo) * r.range / {n} AS bin_lo, b.lo + (b.hi - b.lo) * (r.range + 1) / {n} AS bin_hi,
       coalesce(h.clips, 0) AS clips, coalesce(h.kept, 0) AS kept
FROM (SELECT min(value) AS lo, max(value) AS hi FROM ({_measured(score)})) b
CROSS JOIN range({n}) r
LEFT JOIN (
    SELECT least(CASE WHEN b2.hi > b2.lo THEN floor((v.value - b2.lo) / (b2.hi - b2.lo) * {n}) ELSE 0 END, {n - 1})::BIGINT AS bin,
           count(*) AS clips, count(*) FILTER (WHERE v.kept) AS kept
    FROM ({_measured(score)}) v, (SELECT min(value) AS lo, max(value) AS hi FROM ({_measured(score)})) b2
    GROUP BY bin
) h ON h.bin = r.range
WHERE b.lo IS NOT NULL""")
    body = "\nUNION ALL\n".join(parts) or (
        "SELECT 0 AS position, '' AS score, 0 AS bin, 0.0 AS bin_lo, 0.0 AS bin_hi, 0 AS clips, 0 AS kept WHERE false")
    return f"""
CREATE VIEW score_histograms AS
-- {n} equal-width bins per measured score over its observed range.
SELECT * FROM ({body}
) ORDER BY position, bin
"""


BY_SOURCE = """
CREATE VIEW by_source AS
-- audio columns: per source, from its clips (null where no clip had sound)
WITH audio AS (
    SELECT source,
           count(*) FILTER (WHERE audio_channels > 0) AS clips_with_audio,
           count(*) FILTER (WHERE kept AND audio_channels > 0) AS kept_clips_with_audio,
           median(loudness_lufs) AS median_loudness_lufs,
           avg(silence_frac) AS mean_silence_frac,
           avg(speech_frac) AS mean_speech_frac
    FROM clip_outcomes GROUP BY source
)
SELECT source,
       count(*) AS inputs,
       count(*) FILTER (WHERE outcome = 'error') AS error_inputs,
       count(*) FILTER (WHERE outcome = 'dropped') AS dropped_inputs,
       count(*) FILTER (WHERE outcome = 'curated') AS curated_inputs,
       sum(n_clips) AS clips, sum(n_kept) AS kept_clips,
       coalesce(sum(duration_s), 0) / 3600 AS input_hours,
       sum(clip_hours) AS clip_hours, sum(kept_hours) AS kept_hours,
       sum(kept_hours) / nullif(sum(clip_hours), 0) AS kept_share,
       count(*) FILTER (WHERE has_audio) AS inputs_with_audio,
       any_value(a.clips_with_audio) AS clips_with_audio,
       any_value(a.kept_clips_with_audio) AS kept_clips_with_audio,
       any_value(a.median_loudness_lufs) AS median_loudness_lufs,
       any_value(a.mean_silence_frac) AS mean_silence_frac,
       any_value(a.mean_speech_frac) AS mean_speech_frac
FROM inputs LEFT JOIN audio a USING (source) GROUP BY source ORDER BY source
"""

# --- audio ---
AUDIO_PRESENCE = """
CREATE VIEW audio_presence AS
-- Inputs by what their sound is: decoded audio, an audio stream that failed to
-- decode, no audio stream, or not analysed (audio.enabled false); with their clips.
WITH v AS (
    SELECT uri,
           CASE WHEN has_audio THEN 'audio'
                WHEN has_audio IS NULL THEN 'not analysed'
                WHEN audio_codec IS NOT NULL THEN 'audio did not decode'
                ELSE 'no audio stream' END AS audio,
           audio_codec, audio_channels
    FROM videos
)
SELECT v.audio, count(DISTINCT v.uri) AS inputs,
       string_agg(DISTINCT v.audio_codec || ' ' || v.audio_channels || 'ch', ', ') AS codecs,
       count(c.clip_id) AS clips, count(c.clip_id) FILTER (WHERE c.kept) AS kept_clips,
       coalesce(sum(c.duration_s), 0) / 3600 AS clip_hours,
       median(c.loudness_lufs) AS median_loudness_lufs,
       avg(c.silence_frac) AS mean_silence_frac,
       avg(c.speech_frac) AS mean_speech_frac,
       count(c.clip_id) FILTER (WHERE c.audio_coverage < 1.0) AS clips_partly_without_sound
FROM v LEFT JOIN clips c USING (uri)
GROUP BY v.audio ORDER BY inputs DESC, v.audio
"""
# --- end audio ---

BY_RESOLUTION = """
CREATE VIEW by_resolution AS
-- Bucketed by the short side of the displayed frame (rotation applied).
WITH c AS (SELECT *, least(width, height) AS short_side FROM clips)
SELECT CASE WHEN short_side >= 2160 THEN '2160p+' WHEN short_side >= 1080 THEN '1080p'
            WHEN short_side >= 720 THEN '720p' WHEN short_side >= 480 THEN '480p'
            WHEN short_side >= 360 THEN '360p' WHEN short_side >= 240 THEN '240p'
            ELSE '<240p' END AS resolution,
       min(short_side) AS min_short_side,
       count(*) AS clips, count(*) FILTER (WHERE kept) AS kept_clips,
       sum(duration_s) / 3600 AS clip_hours,
       coalesce(sum(duration_s) FILTER (WHERE kept), 0) / 3600 AS kept_hours,
       string_agg(DISTINCT width || 'x' || height, ', ' ORDER BY width || 'x' || height) AS sizes
FROM c GROUP BY resolution ORDER BY min_short_side DESC
"""

DUP_GROUPS = """
CREATE VIEW dup_groups AS
-- One row per duplicate group. Groups are centre-based (curation/dedup/find.py): every member is
-- paired directly with the kept clip, so min_similarity is the least similar member to it.
SELECT dup_group_id,
       string_agg(DISTINCT dup_kind, ', ') FILTER (WHERE clip_id <> dup_of) AS dup_kind,
       count(*) AS clips, count(*) FILTER (WHERE kept) AS kept_clips,
       min(dup_of) AS representative,
       min(dup_similarity) FILTER (WHERE clip_id <> dup_of) AS min_similarity,
       max(dup_similarity) FILTER (WHERE clip_id <> dup_of) AS max_similarity,
       list(clip_id ORDER BY clip_id) AS clip_ids,
       string_agg(DISTINCT relpath, ', ' ORDER BY relpath) AS files
FROM clip_outcomes WHERE dup_group_id IS NOT NULL
GROUP BY dup_group_id ORDER BY clips DESC, dup_group_id
"""

DUP_SEGMENT_SPANS = """
CREATE VIEW dup_segment_spans AS
-- Re-cut copies (dedup kind segment, curation/dedup/segments.py): one row per matched segment between two
-- videos, its span in each (seconds, clamped to the file: the table's spans reach half a sample period past the
-- first and last matched sample) and the files. symmetry indexes curation.hashes.D4 (0 = as is, 2 = mirrored).
-- Edited copies (dedup kind edited): region_a / region_b, the centred crop of each picture whose hashes
-- matched (share of width and height; 1 = the whole frame), and time_scale, b's seconds per second of a.
SELECT va.relpath AS relpath_a, greatest(s.a_start_s, 0) AS a_start_s, least(s.a_end_s, va.duration_s) AS a_end_s,
       vb.relpath AS relpath_b, greatest(s.b_start_s, 0) AS b_start_s, least(s.b_end_s, vb.duration_s) AS b_end_s,
       s.offset_s, s.samples, s.mean_hamming, s.symmetry, s.video_a, s.video_b,
       s.time_scale, s.region_a, s.region_b, s.edited
FROM dup_segments s
LEFT JOIN videos va ON va.video_id = s.video_a
LEFT JOIN videos vb ON vb.video_id = s.video_b
ORDER BY s.samples DESC, relpath_a, relpath_b, s.a_start_s
"""

ERROR_SUMMARY = """
CREATE VIEW error_summary AS
-- The example message and file come from one row: the first by (uri, message).
WITH numbered AS (
    SELECT *, row_number() OVER (PARTITION BY stage, error_type ORDER BY uri, message) AS k FROM errors
)
SELECT stage, error_type, count(*) AS errors, count(DISTINCT uri) AS inputs,
       any_value(message) FILTER (WHERE k = 1) AS example_message,
       any_value(uri) FILTER (WHERE k = 1) AS example_uri
FROM numbered GROUP BY stage, error_type ORDER BY errors DESC, stage, error_type
"""

EVALUATION = """
CREATE VIEW evaluation AS
-- Curation quality against ground truth (vidcurate evaluate; empty without a truth file):
-- per defect the precision and recall of its drop reason, then shot boundaries and duplicate pairs.
SELECT section, name, reason, status, positives, flagged, tp, fp, fn, "precision", recall, note
FROM evaluation_rows ORDER BY position
"""

# --- captions ---
CAPTION_COUNTS = """
CREATE VIEW caption_counts AS
-- Captions (written for clips that filter and dedup kept) and what caption hygiene found in them.
SELECT count(caption) AS captioned,
       count(caption) FILTER (WHERE kept) AS captioned_curated,
       count(*) FILTER (WHERE caption_words = 0) AS empty,
       count(*) FILTER (WHERE caption_boilerplate_words > 0) AS boilerplate_opening,
       count(*) FILTER (WHERE contains(',' || array_to_string(drop_reasons, ','), ',caption_')) AS dropped_by_caption_rules,
       round(median(caption_words), 1) AS median_words,
       round(max(caption_repetition), 3) AS max_repetition
FROM clips
"""
# --- end captions ---

RUNS = """
CREATE VIEW runs AS
-- Every run record: succeeded, failed (error_type, error_message), interrupted (SIGINT/SIGTERM, or
-- found still running by a later run after its process was gone) and running.
SELECT run_id, status, started_at, finished_at, input_uri, output_uri, config_hash,
       counts::JSON AS counts, timings::JSON AS timings, not_configured::JSON AS not_configured,
       versions::JSON AS versions, config::JSON AS config,
       error_type, error_message, host, project_version, git_commit, command_line
FROM run_records ORDER BY started_at, run_id
"""


def clip_scores_sql(score_columns: list[str]) -> str:
    """Long form of the score columns: one row per (clip, measured finite score)."""
    parts = [
        f"SELECT clip_id, uri, kept, '{name}' AS score, CAST(\"{name}\" AS DOUBLE) AS value "
        f"FROM clips WHERE \"{name}\" IS NOT NULL AND isfinite(\"{name}\")"
        for name in score_columns
    ]
    return "CREATE VIEW clip_scores AS\n" + "\nUNION ALL\n".join(parts)


def all_views(score_columns: list[str], n_clips: int = 0) -> list[str]:
    """CREATE VIEW statements in dependency order; `n_clips` decides exact or sketched quantiles."""
    return [
        LATEST_RUN, INPUTS, REASON_STEPS, CLIP_FIRST_REASON, CLIP_OUTCOMES, clip_scores_sql(score_columns), FUNNEL,
        score_quantiles_sql(score_columns, exact=n_clips <= EXACT_QUANTILE_MAX_CLIPS),
        score_histograms_sql(score_columns), BY_SOURCE, BY_RESOLUTION, DUP_GROUPS, DUP_SEGMENT_SPANS,
        ERROR_SUMMARY, RUNS, AUDIO_PRESENCE, CAPTION_COUNTS, EVALUATION,
    ]
