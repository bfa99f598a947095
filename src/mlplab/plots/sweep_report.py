"""One self-contained HTML page for a sweep directory: the plan, every setting ranked, the figures.

Like a run's report (`mlplab.plots.report`) it has no external resources: styles inline,
figures as base64 PNG data URIs, so it opens offline and can be handed in as one file.
"""

from __future__ import annotations

import json
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from mlplab.errors import MlplabError
from mlplab.files import atomic_write_text
from mlplab.plots.report import escape, html_page, percent, png_data
from mlplab.plots.sweep import plot_sweep

BY_FIELD_CAPTION = (
    "Each marker is a setting's mean over its seeds, its error bar the standard deviation. A line "
    "joins only values on one ordered scale (learning rates, widths of nets of one depth); "
    "architectures of different depths are separate categories and stand apart."
)


def is_sweep_dir(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by ``mlplab sweep`` (it holds sweep.toml)."""
    return (Path(path) / "sweep.toml").is_file()


def write_sweep_report(sweep_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``SWEEP_DIR/report.html`` (or ``out``) for a finished sweep; returns its path."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / "results.json").is_file():
        raise MlplabError(
            f"{sweep_dir} holds a sweep that did not finish (no results.json); finish it with "
            f"`mlplab sweep --resume {sweep_dir}`"
        )
    settings = json.loads((sweep_dir / "settings.json").read_text())
    results = json.loads((sweep_dir / "results.json").read_text())
    plan = json.loads((sweep_dir / "plan.json").read_text())
    grid = tomllib.loads((sweep_dir / "sweep.toml").read_text())["grid"]
    with tempfile.TemporaryDirectory() as scratch:  # the PNGs only live inside the page
        figures = {path.stem: png_data(path) for path in plot_sweep(sweep_dir, scratch)}
    path = Path(out) if out else sweep_dir / "report.html"
    atomic_write_text(path, _page(sweep_dir, grid, settings, results, plan, figures))
    return path


def _page(
    sweep_dir: Path,
    grid: dict[str, Any],
    settings: list[dict[str, Any]],
    results: list[dict[str, Any]],
    plan: dict[str, Any],
    figures: dict[str, str],
) -> str:
    rows = results  # one record per configuration
    swept = ", ".join(f"{name} ({len(values)})" for name, values in grid.items())
    best = settings[0] if settings else {}
    parts = [
        f"<h1>{escape(sweep_dir.name)}</h1>",
        f"<p class=sub>a sweep over {escape(swept)}: {len(rows)} configurations in {len(settings)} settings</p>",
        "<div class=grid>",
        f"<div><div class=metric>{escape(best.get('setting', '-'))}</div>best setting (by validation accuracy)</div>",
        f"<div><div class=metric>{percent(best.get('test_accuracy_mean'))}</div>its test accuracy, mean of "
        f"{best.get('seeds', 0)} seed(s) (std {percent(best.get('test_accuracy_std'))})</div>",
        f"<div><div class=metric>{sum(1 for r in rows if r.get('diverged'))}</div>diverged</div>",
        "</div>",
        "<h2>Settings, best first</h2>",
        _settings_table(settings, [n for n in grid if n != "seed"]),
    ]
    titles = {"curves": "Validation curves of the best settings"}
    for name, data in sorted(figures.items(), key=lambda item: item[0] != "curves"):
        title = titles.get(name, "Accuracy by " + name.removeprefix("accuracy_by_"))
        caption = "" if name == "curves" else f"<figcaption>{BY_FIELD_CAPTION}</figcaption>"
        parts.append(
            f'<figure><h2>{escape(title)}</h2><img alt="{escape(title)}" src="data:image/png;base64,{data}">'
            f"{caption}</figure>"
        )
    parts += [
        "<h2>Plan</h2>",
        f"<pre>{escape(json.dumps(plan, indent=1))}</pre>",
        f"<p class=sub>rerun the best: <code>mlplab train --config {escape(str(sweep_dir / 'best.toml'))}</code></p>",
    ]
    body = "\n".join(parts)
    return html_page(f"mlplab sweep {sweep_dir.name}", body)


def _settings_table(settings: list[dict[str, Any]], fields: list[str]) -> str:
    head = "".join(f"<th class=k>{escape(name)}</th>" for name in fields)
    lines = [f"<table><tr>{head}<th>seeds</th><th>diverged</th><th>val accuracy</th><th>test accuracy</th></tr>"]
    for row in settings:
        values = "".join(f"<td class=k>{escape(_plain(row.get(name)))}</td>" for name in fields)
        lines.append(
            f"<tr>{values}<td>{row['seeds']}</td><td>{row['diverged']}</td>"
            f"<td>{_mean_std(row, 'val')}</td><td>{_mean_std(row, 'test')}</td></tr>"
        )
    return "\n".join(lines) + "</table>"


def _mean_std(row: dict[str, Any], split: str) -> str:
    mean, std = row.get(f"{split}_accuracy_mean"), row.get(f"{split}_accuracy_std")
    return "-" if mean is None else f"{percent(mean)} &plusmn; {100 * (std or 0):.2f}"


def _plain(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)
