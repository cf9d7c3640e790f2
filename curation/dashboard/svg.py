"""Inline SVG charts (no scripts, no network): histograms with threshold lines, funnel bars."""
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Threshold:
    """A filter threshold on a score: clips fail below `value` (side="min") or above it (side="max")."""

    value: float
    side: str  # "min" | "max"
    reason: str


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def histogram(
    bins: list[tuple[float, float, int, int]],
    thresholds: list[Threshold],
    title: str,
    width: int = 420,
    height: int = 130,
) -> str:
    """Bars of (lo, hi, clips, kept): all clips in grey, kept clips in blue, thresholds in red."""
    pad_l, pad_r, pad_b = 34, 10, 18
    pad_t = 26 + 10 * len(thresholds)  # room for the title and one label line per threshold
    height += pad_t
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    lo, hi = bins[0][0], bins[-1][1]
    span = (hi - lo) or 1.0
    top = max(max(b[2] for b in bins), 1)

    def x_of(v: float) -> float:
        return pad_l + (v - lo) / span * plot_w

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart hist" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{pad_l}" y="14" class="t">{escape(title)}</text>',
    ]
    bar_w = plot_w / len(bins)
    for i, (b_lo, b_hi, n, kept) in enumerate(bins):
        x = pad_l + i * bar_w
        for count, cls in ((n, "all"), (kept, "kept")):
            if count:
                h = count / top * plot_h
                parts.append(
                    f'<rect class="{cls}" x="{x + 0.5:.1f}" y="{pad_t + plot_h - h:.1f}" '
                    f'width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}">'
                    f"<title>{_fmt(b_lo)}–{_fmt(b_hi)}: {count} {'kept' if cls == 'kept' else 'clips'}</title></rect>"
                )
    base = pad_t + plot_h
    parts.append(f'<line class="axis" x1="{pad_l}" y1="{base}" x2="{pad_l + plot_w}" y2="{base}"/>')
    parts.append(f'<text x="{pad_l}" y="{base + 13}" class="tick">{_fmt(lo)}</text>')
    parts.append(f'<text x="{pad_l + plot_w}" y="{base + 13}" class="tick" text-anchor="end">{_fmt(hi)}</text>')
    parts.append(f'<text x="{pad_l - 4}" y="{pad_t + 8}" class="tick" text-anchor="end">{top}</text>')
    for k, t in enumerate(thresholds):
        # a threshold outside the observed range is pinned to the edge and says so
        inside = lo <= t.value <= hi
        x = x_of(min(max(t.value, lo), hi))
        label = f"{t.reason}: {'<' if t.side == 'min' else '>'} {_fmt(t.value)}{'' if inside else ' (off scale)'}"
        anchor = "start" if x < pad_l + plot_w / 2 else "end"
        dx = 3 if anchor == "start" else -3
        parts.append(f'<line class="thr" x1="{x:.1f}" y1="{20 + 10 * k}" x2="{x:.1f}" y2="{base}"/>')
        parts.append(
            # labels stack in the band between the title and the bars, one line each
            f'<text class="thr-label" x="{x + dx:.1f}" y="{28 + 10 * k}" '
            f'text-anchor="{anchor}">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def funnel_bars(rows: list[tuple[str, int, int]], title: str, width: int = 560, label_width: int = 150) -> str:
    """Horizontal bars of (label, remaining, removed) per step: what is left, what a step took."""
    row_h, pad_l, pad_r = 20, label_width, 120
    height = 24 + row_h * len(rows)
    top = max([r[1] + r[2] for r in rows] + [1])
    plot_w = width - pad_l - pad_r
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart funnel" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" class="t">{escape(title)}</text>',
    ]
    for i, (label, remaining, removed) in enumerate(rows):
        y = 22 + i * row_h
        w_keep = remaining / top * plot_w
        w_drop = removed / top * plot_w
        parts.append(f'<text x="{pad_l - 6}" y="{y + 13}" class="lbl" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect class="kept" x="{pad_l}" y="{y + 2}" width="{w_keep:.1f}" height="{row_h - 5}"/>')
        if removed:
            parts.append(
                f'<rect class="removed" x="{pad_l + w_keep:.1f}" y="{y + 2}" width="{max(w_drop, 1):.1f}" '
                f'height="{row_h - 5}"/>'
            )
        note = f"{remaining}" + (f"  (−{removed})" if removed else "")
        parts.append(f'<text x="{pad_l + w_keep + w_drop + 4:.1f}" y="{y + 13}" class="lbl">{escape(note)}</text>')
    parts.append("</svg>")
    return "".join(parts)
