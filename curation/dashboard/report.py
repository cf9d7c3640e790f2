"""Render OUT/dashboard.html: one self-contained page (inline CSS, SVG, base64 JPEGs, no script).

Every piece of text that comes from data (file names, reasons, error messages,
config values) goes through `esc` (html.escape): a file named
`<script>alert(1)</script>.mp4` is shown as text, never interpreted.
"""
import json
import math
from datetime import datetime, timezone
from html import escape

import duckdb

from curation.dashboard import svg
from curation.dashboard.counting import COUNTING_RULE
from curation.dashboard.thumbnails import Thumbnailer
from curation.evaluate import RETENTION_ROW
from curation.hashes import D4_NAMES

QUANTILES = (5, 25, 50, 75, 95)
NEIGHBOURS = 2  # clips shown on each side of a threshold
MAX_TABLE_ROWS = 200

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:12px}
.wide{max-width:100%;overflow-x:auto}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top;max-width:480px;overflow-wrap:break-word}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:6px}
.muted{color:#777}
.score{border:1px solid #e3e3e3;padding:8px;margin:10px 0}
.row{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}
figure{margin:0;width:164px;font-size:11px}
figure img{width:160px;display:block;border:1px solid #ccc}
.matched{position:relative;width:162px}
.matched i{position:absolute;border:2px solid #e0218a;box-sizing:border-box;pointer-events:none}
figcaption{word-break:break-all}
figcaption q.caption{word-break:normal;font-style:italic}
.noimg{width:160px;height:90px;background:#eee;color:#a00;font-size:11px;overflow:hidden;padding:2px;box-sizing:border-box}
.kept{fill:#3b7dd8}.all{fill:#c8c8c8}.removed{fill:#e4a0a0}
.axis{stroke:#555}.thr{stroke:#d00;stroke-width:1.5;stroke-dasharray:4 2}
.thr-label{fill:#b00;font-size:10px}.t{font-size:12px;font-weight:600}.tick,.lbl{font-size:10px;fill:#333}
.tag-kept{color:#185}.tag-dropped{color:#a22}
"""


def esc(value) -> str:
    """Text from data, made safe for HTML element content and attribute values."""
    return escape("" if value is None else str(value), quote=True)


def _cell(value) -> tuple[str, bool]:
    if value is None:
        return '<span class="muted">–</span>', False
    if isinstance(value, bool):
        return esc(value), False
    if isinstance(value, float):
        return ("–" if math.isnan(value) else esc(f"{value:.4g}")), True
    if isinstance(value, int):
        return esc(value), True
    if isinstance(value, (list, tuple)):
        return esc(", ".join(map(str, value))), False
    return esc(value), False


def html_table(con: duckdb.DuckDBPyConnection, sql: str, limit: int = MAX_TABLE_ROWS) -> str:
    """An HTML table of a query's result (at most `limit` rows, says when cut)."""
    cur = con.execute(sql)
    columns = [d[0] for d in cur.description]
    rows = cur.fetchmany(limit + 1)
    if not rows:
        return '<p class="muted">(none)</p>'
    # wide tables (by_source has a column per score) scroll in their own box instead of widening the page
    out = ['<div class="wide"><table><tr>' + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>"]
    for row in rows[:limit]:
        cells = []
        for v in row:
            text, numeric = _cell(v)
            cells.append(f'<td class="n">{text}</td>' if numeric else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    if len(rows) > limit:
        out.append(f'<p class="muted">first {limit} rows shown; query dashboard.duckdb for all</p>')
    return "".join(out)


def _records(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _fate(clip: dict) -> str:
    """kept, or every drop reason (the first one, in funnel order, is where the funnel counts it as removed)."""
    if clip["kept"]:
        return '<span class="tag-kept">kept</span>'
    reasons = list(clip.get("drop_reasons") or [])
    first = clip.get("first_reason")
    if first in reasons:  # the funnel's step first, then the others as recorded
        reasons.remove(first)
        reasons.insert(0, first)
    return f'<span class="tag-dropped">dropped: {esc(", ".join(reasons) or first)}</span>'


def _figure(clip: dict, label: str, thumbs: Thumbnailer) -> str:
    value, start = f"{clip['value']:.4g}", f"{clip['start_s']:.1f}"
    caption = (
        f"<b>{esc(label)}</b> = {esc(value)}<br>{esc(clip['relpath'])} "
        f"#{esc(clip['clip_index'])} @{esc(start)}s<br>{_fate(clip)}"
    )
    if clip.get("caption") is not None:  # the VLM's caption, shortened
        text = clip["caption"] if len(clip["caption"]) <= CAPTION_CHARS else clip["caption"][: CAPTION_CHARS - 1] + "…"
        caption += f'<br><q class="caption">{esc(text) or "(empty caption)"}</q>'
    image = thumbs.request(clip["clip_id"], f"{clip['relpath']} clip {clip['clip_index']}")
    return f"<figure>{image}<figcaption>{caption}</figcaption></figure>"


DUP_GROUPS_SHOWN = 20  # largest duplicate groups drawn with thumbnails
DUP_MEMBERS_SHOWN = 8  # members drawn per group (the kept clip first)


def _dup_section(con, thumbs: Thumbnailer) -> str:
    """The largest duplicate groups, each as a row of thumbnails: the kept clip, then its duplicates with the span
    and how they matched it (a segment duplicate: the matched span in its video and in the kept clip's video)."""
    groups = _records(con, f"SELECT dup_group_id, clips FROM dup_groups LIMIT {DUP_GROUPS_SHOWN}")
    if not groups:
        return "<p class=muted>no duplicate groups</p>"
    members = _records(
        con,
        f"""
        SELECT o.dup_group_id, o.dup_of, o.dup_kind, o.dup_similarity, o.drop_reasons, o.video_id,
               kc.video_id AS kept_video_id, kc.relpath AS kept_relpath,
               {_CLIP_COLUMNS},
               row_number() OVER (PARTITION BY o.dup_group_id ORDER BY o.clip_id = o.dup_of DESC, o.dup_similarity DESC,
                                  o.clip_id) AS k
        FROM clip_outcomes o LEFT JOIN clip_outcomes kc ON kc.clip_id = o.dup_of
        WHERE o.dup_group_id IN (SELECT unnest(?))
        QUALIFY k <= {DUP_MEMBERS_SHOWN}
        ORDER BY o.dup_group_id, k
        """,
        [[g["dup_group_id"] for g in groups]],
    )
    spans = _segment_spans(con, members)
    by_group: dict[str, list[dict]] = {}
    for m in members:
        by_group.setdefault(m["dup_group_id"], []).append(m)
    rows = []
    for g in groups:
        figs = []
        for m in by_group.get(g["dup_group_id"], []):
            span = f"matched span {m['start_s']:.1f}–{m['end_s']:.1f} s"
            if m["clip_id"] == m["dup_of"]:
                how = "kept clip of the group"
            elif m["dup_kind"] in ("segment", "edited"):  # the clip's own span, then where its footage is in both videos
                span = f"clip {m['start_s']:.1f}–{m['end_s']:.1f} s"
                how = (f"{m['dup_kind']} match ({m['dup_similarity']:.3f}), the kept clip's footage aligned in time: "
                       f"{_segment_match(m, spans)}")
            else:
                how = f"{m['dup_kind']} match, similarity {m['dup_similarity']:.3f}, whole span"
            caption = f"{esc(m['relpath'])} #{esc(m['clip_index'])}<br>{esc(span)}<br>{esc(how)}<br>{_fate(m)}"
            image = thumbs.request(m["clip_id"], f"{m['relpath']} clip {m['clip_index']}")
            figs.append(f"<figure>{_outlined(image, _matched_region(m, spans))}<figcaption>{caption}</figcaption></figure>")
        more = g["clips"] - len(figs)
        tail = f'<span class="muted">+{more} more</span>' if more > 0 else ""
        rows.append(f'<h3>group {esc(g["dup_group_id"])} ({g["clips"]} clips)</h3><div class="row">{"".join(figs)}{tail}</div>')
    return "".join(rows)


_D4_INVERSE = {5: 6, 6: 5}  # the two quarter turns undo each other; every other symmetry is its own inverse


def _segment_spans(con, members: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Matched segments (view dup_segment_spans) between each segment member's video and its kept clip's video."""
    pairs = sorted({"/".join(sorted((m["video_id"], m["kept_video_id"]))) for m in members
                    if m["dup_kind"] in ("segment", "edited") and m["kept_video_id"] and m["clip_id"] != m["dup_of"]})
    if not pairs:
        return {}
    rows = _records(con, "SELECT * FROM dup_segment_spans WHERE least(video_a, video_b) || '/' || greatest(video_a, video_b) "
                         "IN (SELECT unnest(?))", [pairs])
    out: dict[tuple[str, str], list[dict]] = {}
    for r in rows:  # keyed by the sorted pair: a row's (a, b) order is the matcher's, not the ids'
        out.setdefault(tuple(sorted((r["video_a"], r["video_b"]))), []).append(r)
    return out


def _seen_from(r: dict, video_id: str) -> tuple[tuple[float, float], tuple[float, float], int]:
    """A dup_segments row from one of its videos: (span there, span in the other video, the D4 symmetry that turns the
    other video's frames into this one's)."""
    if r["video_a"] == video_id:  # D4[symmetry] turns a's frames into b's
        return (r["a_start_s"], r["a_end_s"]), (r["b_start_s"], r["b_end_s"]), _D4_INVERSE.get(r["symmetry"], r["symmetry"])
    return (r["b_start_s"], r["b_end_s"]), (r["a_start_s"], r["a_end_s"]), r["symmetry"]


def _best_segment(m: dict, spans: dict[tuple[str, str], list[dict]]) -> dict | None:
    """The segment (of the member's and its kept clip's videos) that covers most of the member."""
    rows = spans.get(tuple(sorted((m["video_id"], m["kept_video_id"] or ""))))
    if not rows:
        return None

    def cover(r: dict) -> tuple[float, int]:
        (h0, h1), _, _ = _seen_from(r, m["video_id"])
        return min(h1, m["end_s"]) - max(h0, m["start_s"]), r["samples"]

    return max(rows, key=cover)


def _segment_match(m: dict, spans: dict[tuple[str, str], list[dict]]) -> str:
    """The matched span in both videos (and, for an edited copy, the part of each picture that matched)."""
    r = _best_segment(m, spans)
    if r is None:
        return "matched span not recorded (no dup_segments row)"
    (h0, h1), (k0, k1), g = _seen_from(r, m["video_id"])
    turned = f", {D4_NAMES[g]}" if g else ""
    speed = f", {r['time_scale']:.2f}x speed" if r.get("time_scale") and abs(r["time_scale"] - 1) > 0.01 else ""
    region = ""
    if r.get("edited"):
        here, there = (r["region_a"], r["region_b"]) if r["video_a"] == m["video_id"] else (r["region_b"], r["region_a"])
        region = f"; the centre {here:.0%} of this picture = the centre {there:.0%} of the kept one (outlined)"
    return (f"matched span {h0:.1f}–{h1:.1f} s of this file = {k0:.1f}–{k1:.1f} s of "
            f"{m['kept_relpath']} ({r['samples']} samples, {r['mean_hamming']:.1f} bits{turned}{speed}){region}")


def _matched_region(m: dict, spans: dict[tuple[str, str], list[dict]]) -> float | None:
    """The share of this member's picture (a centred crop) whose hashes matched its kept clip; None: the whole
    frame, or not an edited match."""
    r = _best_segment(m, spans) if m["dup_kind"] == "edited" and m["clip_id"] != m["dup_of"] else None
    if r is None or not r.get("edited"):
        return None
    share = r["region_a"] if r["video_a"] == m["video_id"] else r["region_b"]
    return share if share is not None and share < 0.999 else None


def _outlined(image: str, share: float | None) -> str:
    """A thumbnail with the centred crop of `share` of its width and height outlined (the matched region)."""
    if share is None:
        return image
    edge = f"{(1 - share) / 2:.1%}"
    return (f'<div class="matched">{image}<i style="left:{edge};top:{edge};width:{share:.1%};height:{share:.1%}" '
            f'title="matched region: the centre {share:.0%}"></i></div>')


_CLIP_COLUMNS = "o.clip_id, o.uri, o.relpath, o.clip_index, o.start_s, o.end_s, o.kept, o.first_reason, o.drop_reasons, o.caption"
CAPTION_CHARS = 160  # longest caption shown under a thumbnail (characters)


SAMPLE_CLIPS = 20_000  # percentile examples are picked from a reservoir sample of this many clips (fixed seed)


def _score_values(score: str) -> str:
    """The measured, finite values of one score column of `clips` (score names come from the schema and the rules)."""
    col = '"' + score.replace('"', '""') + '"'
    return f"SELECT clip_id, CAST({col} AS DOUBLE) AS value FROM clips WHERE {col} IS NOT NULL AND isfinite({col})"


def _quantile_clips(con, score: str) -> list[dict]:
    """(q, clip_id, value): the clip at each of QUANTILES of `score` (nearest rank) in a reservoir sample of
    SAMPLE_CLIPS clips, so a 10M-clip run sorts 20k values, not 10M (all clips when there are fewer)."""
    qs = ", ".join(f"({q})" for q in QUANTILES)
    return _records(
        con,
        f"""
        WITH s AS (SELECT * FROM ({_score_values(score)}) USING SAMPLE reservoir({SAMPLE_CLIPS} ROWS) REPEATABLE (7)),
        ranked AS (SELECT clip_id, value, row_number() OVER (ORDER BY value, clip_id) - 1 AS r, count(*) OVER () AS n FROM s),
        qs(q) AS (VALUES {qs})
        SELECT qs.q, ranked.clip_id, ranked.value
        FROM qs JOIN ranked ON ranked.r = round(qs.q / 100 * (ranked.n - 1))::BIGINT ORDER BY qs.q
        """,
    )


def _threshold_clips(con, score: str, value: float) -> list[dict]:
    """(below, clip_id, value): the NEIGHBOURS clips just below and just above a threshold (two top-N scans)."""
    return _records(
        con,
        f"""
        WITH v AS ({_score_values(score)})
        SELECT * FROM (
            (SELECT true AS below, clip_id, value FROM v WHERE value < ? ORDER BY value DESC, clip_id LIMIT {NEIGHBOURS})
            UNION ALL
            (SELECT false, clip_id, value FROM v WHERE value >= ? ORDER BY value, clip_id LIMIT {NEIGHBOURS})
        ) ORDER BY value
        """,
        [value, value],
    )


class _ClipDetails:
    """What a thumbnail caption shows about a clip, looked up for the few clips shown (never a whole-table view)."""

    def __init__(self, con):
        self.con = con
        order = [r[0] for r in con.execute("SELECT reason FROM reason_steps ORDER BY step").fetchall()]
        self.rank = {reason: i for i, reason in enumerate(order)}

        self.cache: dict[str, dict] = {}

    def fetch(self, ids) -> None:
        """Look up every clip of `ids` not yet known, in one scan of clips (and one of videos)."""
        ids = sorted(set(ids) - set(self.cache))
        if not ids:
            return
        clips = _records(self.con, "SELECT clip_id, uri, clip_index, start_s, end_s, kept, drop_reasons, caption FROM clips "
                                   "WHERE clip_id IN (SELECT unnest(?))", [ids])
        uris = sorted({c["uri"] for c in clips})
        relpath = dict(self.con.execute("SELECT uri, relpath FROM videos WHERE uri IN (SELECT unnest(?))", [uris]).fetchall())
        for c in clips:
            c["relpath"] = relpath.get(c["uri"], c["uri"])
            reasons = list(c["drop_reasons"] or [])
            c["first_reason"] = None if c["kept"] else (
                min(reasons, key=lambda x: self.rank.get(x, len(self.rank))) if reasons else "(no reason recorded)")
            self.cache[c["clip_id"]] = c

    def add(self, rows: list[dict]) -> list[dict]:
        """`rows` (each with a clip_id) merged with the clip's span, file, fate and caption."""
        self.fetch(r["clip_id"] for r in rows)
        return [dict(self.cache[r["clip_id"]], **r) for r in rows]


def _thresholds(rules: list[dict]) -> list[svg.Threshold]:
    return [svg.Threshold(r[side], side, r["reason"]) for r in rules for side in ("min", "max") if r[side] is not None]


def _score_section(q_all: dict, q_kept: dict, rules: list[dict], thumbs: Thumbnailer, bins: list[tuple],
                   at_quantiles: list[dict], near_thresholds: list[list[dict]]) -> str:
    """One score: histogram with thresholds, quantile table, example clips (rows already with their details)."""
    score = q_all["score"]
    thresholds = _thresholds(rules)
    chart = svg.histogram(bins, thresholds, f"{score}: all clips (grey), kept (blue)")
    stats = "".join(
        f"<tr><th>{esc(name)}</th>"
        + "".join(
            f'<td class="n">{_cell(q[k])[0]}</td>' for k in ("measured", "min", "p05", "p25", "p50", "p75", "p95", "max")
        )
        + "</tr>"
        for name, q in (("all", q_all), ("kept", q_kept))
    )
    stats_table = (
        "<table><tr><th></th>"
        + "".join(f"<th>{h}</th>" for h in ("measured", "min", "p5", "p25", "p50", "p75", "p95", "max"))
        + f"</tr>{stats}</table>"
    )
    # with few distinct values several percentiles land on one clip: show it once
    merged: dict[str, tuple[list[str], dict]] = {}
    for c in at_quantiles:
        merged.setdefault(c["clip_id"], ([], c))[0].append(f"p{c['q']}")
    figures = "".join(_figure(c, ", ".join(labels), thumbs) for labels, c in merged.values())
    sampled = f" of a random sample of {SAMPLE_CLIPS:,} clips" if (q_all["measured"] or 0) > SAMPLE_CLIPS else ""
    parts = [
        f'<div class="score" id="score-{esc(score)}"><h3>{esc(score)}</h3>',
        f'<div class="row">{chart}{stats_table}</div>',
        f"<p>Clips at percentiles 5 / 25 / 50 / 75 / 95{sampled}:</p><div class=\"row\">{figures}</div>",
    ]
    if q_all.get("quantiles", "exact") != "exact":
        parts.insert(2, f'<p class="muted">percentiles from a {esc(q_all["quantiles"])} (approximate) over all clips</p>')
    for t, near in zip(thresholds, near_thresholds):
        op = "<" if t.side == "min" else ">"
        figs = "".join(
            _figure(c, f"{'below' if c['below'] else 'above'} {t.value:.4g}", thumbs) for c in near
        )
        parts.append(
            f"<p>Around the threshold of <b>{esc(t.reason)}</b> ({esc(score)} {op} {esc(f'{t.value:.4g}')} "
            f"fails):</p><div class=\"row\">{figs or '<span class=muted>(no clips)</span>'}</div>"
        )
    parts.append("</div>")
    return "".join(parts)


def _funnel_section(con) -> str:
    rows = _records(con, "SELECT * FROM funnel")
    out = []
    for level in ("inputs", "clips"):
        steps = [r for r in rows if r["level"] == level]
        bars = [
            (r["label"], int(r["remaining"]), int(r["count"]) if r["kind"] == "removed" else 0)
            for r in steps
        ]
        out.append(svg.funnel_bars(bars, f"{level}: remaining after each step (red: removed by the step)",
                                   width=760, label_width=380))
    curated_rows = con.execute("SELECT count(*) FROM curated").fetchone()[0]
    kept = con.execute("SELECT count(*) FROM clips WHERE kept").fetchone()[0]
    warn = (
        f'<p class="warn">curated table has {curated_rows} rows but {kept} clips are marked kept</p>'
        if curated_rows != kept
        else ""
    )
    return (
        '<div class="row">' + "".join(out) + "</div>" + warn
        + f'<p class="muted">Counting: {esc(COUNTING_RULE)}. The CLI summary&#39;s &ldquo;clips flagged by reason&rdquo; are the flagged numbers.</p>'
        + html_table(con, 'SELECT level, step, label AS "what is counted", count AS "count (removed at this step)", '
                     'flagged AS "flagged (clips with the reason)", round(hours, 3) AS hours, remaining, '
                     "round(remaining_hours, 3) AS remaining_hours, stage, reasons FROM funnel")
        + "<h3>Captions</h3>" + html_table(con, "SELECT * FROM caption_counts")
    )


# --- audio ---
AUDIO_SCORES = ("loudness_lufs", "silence_frac", "audio_clipping_frac", "speech_frac", "audio_coverage")


def _audio_section(con, measured: list[str]) -> str:
    """Audio presence per input and links to the audio score histograms (drawn under Scores)."""
    links = " · ".join(f'<a href="#score-{esc(s)}">{esc(s)}</a>' for s in AUDIO_SCORES if s in measured)
    return (
        html_table(con, "SELECT * FROM audio_presence")
        + f"<p>Histograms: {links or '<span class=muted>no clip had sound</span>'}. "
        "Loudness is BS.1770 integrated LUFS (-70 = silent); null scores mean the clip has no sound.</p>"
    )
# --- end audio ---
# --- evaluation against ground truth (evalcorpus) ---
def _evaluation_section(con) -> str:
    """Precision and recall per defect, when the run has a truth file (else nothing)."""
    if not con.execute("SELECT count(*) FROM evaluation").fetchone()[0]:
        return ""
    retention = con.execute("SELECT recall, tp, positives FROM evaluation WHERE section = 'labels' AND name = ?",
                            [RETENTION_ROW]).fetchone()
    headline = "" if retention is None or retention[0] is None else (
        f'<p>Clean-clip retention on labelled footage: <b>{retention[0]:.0%}</b> '
        f"({retention[1]} of {retention[2]} clips a person labelled keep were kept).</p>")
    return (
        "<h2>Curation quality against ground truth</h2>" + headline +
        '<p class="muted">From vidcurate evaluate: per defect, the precision and recall of the drop reason meant '
        "to catch it (a clip has a defect when it covers at least half its frames); status says when no rule "
        "catches it yet. Section labels: against a person's keep/drop labels, where a clip labelled drop is a "
        "correct drop for any reason.</p>"
        + html_table(con, "SELECT section, name, reason, status, positives, flagged, tp, fp, fn, "
                     'round("precision", 3) AS "precision", round(recall, 3) AS recall, note FROM evaluation')
    )
# --- end evaluation ---


def render_html(con: duckdb.DuckDBPyConnection, thumbs: Thumbnailer | None = None) -> str:
    """The whole report for the run whose dashboard database is `con`."""
    run = (_records(con, "SELECT * FROM latest_run") or [{}])[0]  # the latest succeeded run: its tables are on disk
    newer = _records(con, "SELECT run_id, status, error_type, error_message FROM run_records WHERE started_at > ? "
                          "ORDER BY started_at", [run.get("started_at")]) if run.get("status") == "succeeded" else []
    thumbs = thumbs or Thumbnailer(run.get("output_uri"))
    if thumbs.out_dir is None:  # thumbnails come from the run's keyframes table
        thumbs.out_dir = run.get("output_uri")
    not_configured = json.loads(run.get("not_configured") or "[]")
    rules = _records(con, "SELECT * FROM filter_rules ORDER BY position")
    quantiles = _records(con, "SELECT * FROM score_quantiles")
    details = _ClipDetails(con)
    by_score: dict[str, dict[str, dict]] = {}
    for q in quantiles:
        by_score.setdefault(q["score"], {})[q["subset"]] = q
    measured = [s for s, q in by_score.items() if q["all"]["measured"]]
    unmeasured = [s for s, q in by_score.items() if not q["all"]["measured"]]
    bins: dict[str, list[tuple]] = {}
    for r in _records(con, "SELECT score, bin_lo, bin_hi, clips, kept FROM score_histograms ORDER BY position, bin"):
        bins.setdefault(r["score"], []).append((r["bin_lo"], r["bin_hi"], r["clips"], r["kept"]))
    # pick every example clip first, then look all of them up in one scan
    rules_of = {s: [r for r in rules if r["column"] == s] for s in measured}
    picks = {s: (_quantile_clips(con, s), [_threshold_clips(con, s, t.value) for t in _thresholds(rules_of[s])])
             for s in measured}
    details.fetch(r["clip_id"] for q, near in picks.values() for rows in [q, *near] for r in rows)
    score_html = "".join(
        _score_section(by_score[s]["all"], by_score[s]["kept"], rules_of[s], thumbs, bins[s],
                       details.add(picks[s][0]), [details.add(n) for n in picks[s][1]])
        for s in measured
    )
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = " · ".join(f'<a href="#score-{esc(s)}">{esc(s)}</a>' for s in measured)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>vidcurate dashboard: {esc(run.get("run_id"))}</title>
<style>{CSS}</style></head><body>
<h1>vidcurate run {esc(run.get("run_id"))}</h1>
<p>status <b>{esc(run.get("status"))}</b> · started {esc(run.get("started_at"))} · finished {esc(run.get("finished_at"))}
· config {esc(run.get("config_hash"))}<br>input {esc(run.get("input_uri"))} · output {esc(run.get("output_uri"))}
<br><span class="muted">report built {esc(built)}; the same data is in dashboard.duckdb next to this file</span></p>
{"".join(f'<p class="warn">not configured: {esc(n)}</p>' for n in not_configured)}
{"".join(f'<p class="warn">a later run, {esc(n["run_id"])}, is {esc(n["status"])}'
         + (f' ({esc(n["error_type"])}: {esc(n["error_message"])})' if n["error_type"] else "")
         + '; it wrote no tables, so this report shows the run above (see Runs)</p>' for n in newer)}
<h2>Funnel</h2>
{_funnel_section(con)}
<h2>Scores</h2>
<p>{nav}</p>
<p class="muted">Not measured in this run (all null): {esc(", ".join(unmeasured) or "none")}</p>
{score_html}
<h2>Audio</h2>
{_audio_section(con, measured)}
{_evaluation_section(con)}
<h2>By source (top folder)</h2>
{html_table(con, "SELECT * FROM by_source")}
<h2>By resolution</h2>
{html_table(con, "SELECT * FROM by_resolution")}
<h2>Inputs not curated</h2>
{html_table(con, "SELECT relpath, outcome, reasons, n_clips, duration_s, uri FROM inputs WHERE outcome <> 'curated' ORDER BY outcome, relpath")}
<h2>Duplicate groups</h2>
<p class="muted">Every member is paired directly with its group's kept clip (groups never chain through others).
Exact and perceptual matches cover the whole clip; a segment match is a re-cut of the same footage that covers
most of the shorter clip.</p>
{_dup_section(con, thumbs)}
{html_table(con, "SELECT * FROM dup_groups", limit=50)}
<h2>Errors</h2>
{html_table(con, "SELECT * FROM error_summary")}
{html_table(con, "SELECT uri, stage, error_type, message FROM errors ORDER BY stage, uri")}
<h2>Runs</h2>
<p class="muted">Every run on this folder: failed runs say why, interrupted ones were stopped (SIGINT/SIGTERM) or found
still "running" by a later run after their process was gone. Numbers on this page come from the latest succeeded run.</p>
{html_table(con, "SELECT run_id, status, started_at, finished_at, error_type, error_message, config_hash, "
                 "project_version, git_commit, host, command_line, not_configured FROM runs")}
<div class="row"><div><h3>Counts (latest succeeded run)</h3>
{html_table(con, "SELECT j.key, j.value::VARCHAR AS value FROM (SELECT counts::JSON AS counts FROM latest_run) r, json_each(r.counts) j ORDER BY j.key")}
</div><div><h3>Timings, s (latest succeeded run)</h3>
{html_table(con, "SELECT j.key, round(j.value::DOUBLE, 2) AS seconds FROM (SELECT timings::JSON AS timings FROM latest_run) r, json_each(r.timings) j ORDER BY j.key")}
</div></div>
<h3>Filter rules</h3>
{html_table(con, 'SELECT position, "column", "min", "max", reason FROM filter_rules ORDER BY position')}
</body></html>
"""
    return thumbs.fill(page)
