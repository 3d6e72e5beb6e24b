"""Plots of a model comparison and its one-file HTML page.

`quality_cost(report)` and `quality_latency(report)` return PNG bytes: each model's quality
(the profile-weighted mean of its quality metrics, 0..1) against its price per 1k tokens or its
p95 latency per call, the profile's limit drawn as a dashed line, each point named; models
within the profile's limits are drawn as circles, those breaking one as crosses. An axis whose
points lie far past the limit (over 20 times) is logarithmic beyond a tenth of the limit.
`html_page(title, markdown, images)` renders the report's markdown as one self-contained HTML
page, the PNGs inlined as base64 data URIs (no external file, script or style sheet).

matplotlib is imported inside the functions (Agg backend): `crewkit --help` stays fast.
"""

from __future__ import annotations

import base64
import html
import io
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crewkit.evaluation.report import ModelSummary, Report


LABEL_DY = 6  # points above a marker where its name starts
_LINE = 11  # points per label line (fontsize 9)


def label_offsets(ax: Any, points: list[tuple[float, float, str]]) -> list[float]:
    """Vertical offsets (points) for the names of `points` so that no two overlap: a name that
    would cover one already placed moves up a line at a time (two models at nearly the same cost
    and quality stay readable). Call after the axes' limits and scales are set."""
    scale = ax.figure.dpi / 72
    placed: list[tuple[float, float, float, float]] = []
    offsets = [0.0] * len(points)
    for i in sorted(range(len(points)), key=lambda i: (points[i][1], points[i][0])):
        x, y, name = points[i]
        px, py = ax.transData.transform((x, y))
        width = (len(name) * 5.5 + 4) * scale
        dy = LABEL_DY
        while True:
            box = (px + 6 * scale, py + dy * scale, px + 6 * scale + width, py + (dy + _LINE) * scale)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
            dy += _LINE
        placed.append(box)
        offsets[i] = dy
    return offsets


def _scatter(
    report: Report,
    x_of: Any,
    xlabel: str,
    limit: float,
    limit_label: str,
    title: str,
) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.subplots()
    points: list[tuple[float, float, ModelSummary]] = []
    missing = []
    for m in report.models:
        x = x_of(m)
        if x is None or m.quality_score is None:
            missing.append(m.model)
            continue
        points.append((x, m.quality_score, m))
    for x, y, m in points:
        ok = not m.breaches
        ax.scatter(
            [x], [y], marker="o" if ok else "x", s=60, color="tab:green" if ok else "tab:red", zorder=3
        )
    ax.axvline(limit, linestyle="--", color="tab:gray", label=limit_label)
    right = max([limit, *(x for x, _, _ in points)]) * 1.2 or 1.0
    if right > 20 * limit:  # far past the limit: a log axis keeps the limit and the points readable
        ax.set_xscale("symlog", linthresh=limit / 10)
        ax.set_xlim(0, right * 2)
    else:
        ax.set_xlim(-0.02 * right, right)
    ax.set_ylim(-0.05, 1.1)
    for (x, y, m), dy in zip(points, label_offsets(ax, [(x, y, m.model) for x, y, m in points]), strict=True):
        lead = {"arrowprops": {"arrowstyle": "-", "color": "0.6", "lw": 0.6}} if dy > LABEL_DY else {}
        ax.annotate(m.model, (x, y), textcoords="offset points", xytext=(6, dy), fontsize=9, **lead)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("quality (weighted, 0..1)")
    ax.set_title(f"{title} (profile {report.profile})")
    ax.grid(True, alpha=0.3)
    handles = [
        ax.scatter([], [], marker="o", color="tab:green", label="within limits"),
        ax.scatter([], [], marker="x", color="tab:red", label="breaks a limit"),
    ]
    ax.legend(handles=[*handles, ax.get_lines()[0]], loc="lower right", fontsize=8)
    if missing:
        fig.text(0.01, 0.01, "not plotted (no figure): " + ", ".join(missing), fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def quality_cost(report: Report) -> bytes:
    """PNG: quality against price per 1k tokens, the profile's price ceiling as a line."""
    return _scatter(
        report,
        lambda m: m.price_per_1k,
        "price per 1k tokens (USD, the dearer of input and output)",
        report.price_ceiling_per_1k,
        f"ceiling ${report.price_ceiling_per_1k:g}/1k",
        "Quality vs cost",
    )


def quality_latency(report: Report) -> bytes:
    """PNG: quality against p95 latency per call, the profile's latency limit as a line."""
    return _scatter(
        report,
        lambda m: m.latency_ms["p95"],
        "p95 latency per call (ms)",
        report.latency_ms,
        f"limit {report.latency_ms:g} ms",
        "Quality vs latency",
    )


# --- HTML ----------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f3f3f3; }
code { background: #f3f3f3; padding: 0 0.2rem; }
img { max-width: 100%; }
"""
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)$")


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def html_page(title: str, markdown: str, images: dict[str, bytes]) -> str:
    """The markdown of a report (headings, tables, lists, paragraphs, images) as one HTML page;
    an image whose file is in `images` is inlined as a data URI, any other is left out."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head><body>",
    ]
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif m := re.match(r"^(#{1,6}) (.*)$", line):
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
        elif m := _IMAGE.match(line.strip()):
            alt, src = m.groups()
            if src in images:
                data = base64.b64encode(images[src]).decode()
                out.append(f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>')
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            out.append("<table>")
            head, body = rows[0], [r for r in rows[1:] if not re.fullmatch(r"\|[-:| ]+\|", r.strip())]
            out.append("<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in _cells(head)) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(r)) + "</tr>" for r in body]
            out.append("</table>")
        elif line.startswith("- "):
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                out.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("</ul>")
        else:
            para, i = [line], i + 1
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#|\||- |!\[)", lines[i]):
                para.append(lines[i])
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
