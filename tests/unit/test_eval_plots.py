"""The comparison's files: PNG plots, one self-contained HTML page, results.json, report.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from crewkit.evaluation import plots, report
from tests.unit.test_eval_report import comparison, model_results, row, with_models

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def rep(settings):
    results = model_results("fast-cheap", 0.3, 0.1) + model_results("strong-dear", 0.9, 0.8)
    # a model whose every call failed: no latency figure, still in the cost plot and the tables
    results += [row("plain", "r0", error="boom <b>", passed=False, score=0.0)]
    return report.build(comparison(results), with_models(settings, "startup"), votes=[])


def test_write_puts_every_file_in_place(rep, tmp_path):
    import os

    out = tmp_path / "out" / "run1"
    old = os.umask(0o022)
    try:
        paths = report.write(rep, out)
    finally:
        os.umask(old)
    assert [p.name for p in paths] == list(report.FILES)
    assert all(p.parent == out and p.stat().st_size > 0 for p in paths)
    assert not list(out.glob(".*.tmp"))  # no temporary file left behind
    assert all(p.stat().st_mode & 0o044 == 0o044 for p in paths)  # readable by others (umask 022)
    for name in ("quality_cost.png", "quality_latency.png"):
        assert (out / name).read_bytes().startswith(PNG)
    data = json.loads((out / "results.json").read_text())
    assert data["schema"] == report.SCHEMA and len(data["cases"]) == 41
    md = (out / "report.md").read_text()
    assert md.startswith("# Model comparison: synthetic") and "![quality vs cost](quality_cost.png)" in md


def test_html_is_one_self_contained_file(rep, tmp_path):
    report.write(rep, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "href=" not in page and "<script" not in page and "<link" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    import base64

    assert base64.b64decode(sources[0].split(",", 1)[1]) == (tmp_path / "quality_cost.png").read_bytes()
    assert "<table>" in page and "<th>model</th>" in page and "<h1>Model comparison: synthetic</h1>" in page


def test_html_escapes_text_and_keeps_table_cells():
    md = "# A <b>\n\n| a | b |\n|---|---|\n| x \\| y | `z<` |\n\n- **one** & two\n![gone](missing.png)\ntext\n#tag\n"
    page = plots.html_page("t <x>", md, {})
    assert "<title>t &lt;x&gt;</title>" in page and "<h1>A &lt;b&gt;</h1>" in page
    assert "<td>x | y</td><td><code>z&lt;</code></td>" in page
    assert "<li><strong>one</strong> &amp; two</li>" in page
    assert "<img" not in page  # an image not given is left out, never linked
    assert "<p>text</p>" in page and "<p>#tag</p>" in page  # not a heading (no space), not lost


def test_plots_draw_the_profiles_limit_and_name_each_model(rep, monkeypatch):
    from matplotlib.axes import Axes

    seen: dict[str, list] = {"vlines": [], "labels": []}
    axvline, annotate = Axes.axvline, Axes.annotate
    monkeypatch.setattr(
        Axes, "axvline", lambda self, x, **kw: seen["vlines"].append(x) or axvline(self, x, **kw)
    )
    monkeypatch.setattr(
        Axes,
        "annotate",
        lambda self, text, xy, **kw: seen["labels"].append(text) or annotate(self, text, xy, **kw),
    )
    assert plots.quality_cost(rep).startswith(PNG)
    assert seen["vlines"] == [0.01] and sorted(seen["labels"]) == ["fast-cheap", "plain", "strong-dear"]
    seen["vlines"].clear(), seen["labels"].clear()
    assert plots.quality_latency(rep).startswith(PNG)
    # plain has no latency figure (every call failed): left out of this plot
    assert seen["vlines"] == [200] and sorted(seen["labels"]) == ["fast-cheap", "strong-dear"]


def test_importing_the_report_does_not_import_matplotlib_or_scipy():
    code = (
        "import sys; import crewkit.evaluation.report, crewkit.evaluation.plots;"
        "heavy = [m for m in ('matplotlib', 'scipy') if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_model_far_past_the_limit_is_still_plotted(settings):
    slow = report.build(comparison(model_results("fast-cheap", 0.5, 60.0)), with_models(settings), votes=[])
    assert slow.model("fast-cheap").latency_ms["p95"] == pytest.approx(60_000)
    assert plots.quality_latency(slow).startswith(PNG)


def test_names_of_models_at_nearly_the_same_point_do_not_overlap():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    ax = Figure(figsize=(7, 4.5), dpi=100).subplots()
    ax.set_xlim(0, 0.06)
    ax.set_ylim(-0.05, 1.1)
    points = [(0.0, 0.75, "local-small"), (0.0015, 0.75, "local-small-hot"), (0.05, 0.75, "far-away")]
    offsets = plots.label_offsets(ax, points)
    assert offsets[0] != offsets[1]  # the two close names are stacked
    assert offsets[2] == plots.LABEL_DY  # a name with room keeps its place
