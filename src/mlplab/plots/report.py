"""One self-contained HTML page per run: config, metrics, per-class table and every figure, embedded.

The page has no external resources (styles inline, figures as base64 PNG data URIs), so
it opens offline and can be handed in as a single file.
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path
from typing import Any

from mlplab.config import Config, to_dict
from mlplab.files import atomic_write_text
from mlplab.plots.run import draw_run, finished_metrics, read_run
from mlplab.plots.samples import AUGMENT_FIELDS, augment_fields
from mlplab.runs.reader import Run

CAPTIONS = {
    "curves": (
        "Training curves",
        "Loss and accuracy per epoch on the training and validation images; "
        "the dashed line marks the epoch with the best validation accuracy.",
    ),
    "batch_loss": (
        "Per-batch loss",
        "The loss of every training batch, with a moving average; dotted lines end epochs.",
    ),
    "confusion": ("Confusion matrix", "Test images counted by true class (rows) and predicted class (columns)."),
    "per_class": ("Per-class accuracy", "The share of each class's test images classified correctly."),
    "weights": (
        "First-layer weights",
        "Each unit's 784 input weights drawn as a 28x28 image: red pixels raise the unit's input, blue ones lower it.",
    ),
    "predictions": ("Predictions", "The best model's predictions on the first test images; mistakes in red."),
    "mistakes": ("Most confident mistakes", "Misclassified test images the model was surest about."),
}
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em}.sub{color:#555;margin-top:0}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}td.k,th.k{text-align:left}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#444}
.metric{font-size:1.6em;font-weight:600}.grid{display:flex;gap:3em;flex-wrap:wrap}"""


def html_page(title: str, body: str) -> str:
    """A self-contained HTML page in mlplab's report style (run, sweep and symmetry reports alike)."""
    return (
        f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def png_data(path: Path) -> str:
    """A PNG file as the base64 text of a ``data:image/png`` URI (pages carry their figures inside)."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def write_report(run_dir: str | Path, data_dir: str | None = None, out: str | Path | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``) for the run in ``run_dir``; returns its path."""
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    with tempfile.TemporaryDirectory() as scratch_dir:  # the PNGs only live inside the page
        figures = draw_run(run, Path(scratch_dir), ("png",), data_dir=data_dir)  # the run is read once
        embedded = {name: png_data(paths[0]) for name, paths in figures.written.items()}
    path = Path(out) if out else run_dir / "report.html"
    atomic_write_text(path, _page(run, embedded, figures.skipped))
    return path


def _page(run: Run, figures: dict[str, str], skipped: dict[str, str]) -> str:
    config, metrics, records = run.config, finished_metrics(run), run.history.epochs
    best = metrics.get("best") or {}
    parts = [
        f"<h1>{escape(run.path.name)}</h1>",
        f"<p class=sub>{escape(_recipe(run))}, {metrics['epochs']} epochs, "
        f"engine {escape(metrics.get('engine', '?'))}, device {escape(metrics.get('device', '?'))}</p>",
        "<div class=grid>",
        f"<div><div class=metric>{100 * metrics['test_accuracy']:.2f}%</div>test accuracy "
        f"({metrics['test_count']} images)</div>",
        f"<div><div class=metric>{metrics['test_loss']:.4f}</div>test loss</div>",
        f"<div><div class=metric>{best.get('epoch', '-')}</div>best epoch ({escape(best.get('metric', ''))})</div>",
        f"<div><div class=metric>{sum(r['seconds'] for r in records):.1f} s</div>training time</div>",
        "</div>",
        "<h2>History</h2>",
        _history_table(records),
        *_steering(run.history),
        "<h2>Per-class test accuracy</h2>",
        _per_class_table(metrics),
    ]
    for name, (title, caption) in CAPTIONS.items():
        if name in figures:
            parts.append(
                f'<figure><h2>{title}</h2><img alt="{title}" src="data:image/png;base64,{figures[name]}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
        elif name in skipped:
            parts.append(f"<h2>{title}</h2><p><i>Not drawn: {escape(skipped[name])}.</i></p>")
    if config is not None:
        parts += ["<h2>Configuration</h2>", *_config_table(config)]
    parts += ["<h2>Software</h2>", _versions_table(metrics.get("versions") or {})]
    body = "\n".join(parts)
    return html_page(f"mlplab run {run.path.name}", body)


def _recipe(run: Run) -> str:
    """``mnist, 784-16-10 MLP (relu), loss nll, sgd lr 0.01``; a user-defined model by its class."""
    config, info = run.config, run.checkpoint()["model_info"]
    if config is None:
        return f"{info.get('class', 'user-defined')} (a user-defined model)"
    return (
        f"{config.data.dataset}, {run.architecture} MLP ({config.model.activation}), loss {config.train.loss}, "
        f"{config.optim.optimizer} lr {config.optim.lr:g}"
    )


def _history_table(records: list[dict[str, Any]]) -> str:
    columns = ("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "s")
    header = "<tr>" + "".join(f"<th>{column}</th>" for column in columns) + "</tr>"
    rows = [
        f"<tr><td>{r['epoch']}</td><td>{r['train_loss']:.4f}</td><td>{percent(r['train_accuracy'])}</td>"
        f"<td>{_number(r['val_loss'])}</td><td>{percent(r['val_accuracy'])}</td><td>{r['lr']:.4g}</td>"
        f"<td>{r['seconds']:.1f}</td></tr>"
        for r in records
    ]
    return "<table>" + header + "".join(rows) + "</table>"


def _steering(history: Any) -> list[str]:
    """What was changed while the run trained (`mlplab.Steering`, ``mlplab studio``) and why it stopped early."""
    parts = []
    if history.changes:
        rows = "".join(
            f"<tr><td>{change['step']}</td><td>{change['epoch']}</td>"
            f"<td class=k>{escape(name)}</td><td>{change[name]:g}</td></tr>"
            for change in history.changes
            for name in ("lr", "momentum")
            if name in change
        )
        parts += [
            "<h2>Changed while training</h2>",
            "<table><tr><th>after step</th><th>in epoch</th><th class=k>setting</th><th>new value</th></tr>"
            f"{rows}</table>",
            "<p class=sub>Each took effect from the next optimizer step. "
            "<code>mlplab.Steering(replay=history.changes)</code> trains the same run again, bit for bit.</p>",
        ]
    if history.stopped:
        parts.append(f"<p>Stopped after epoch {history.stopped['epoch']}: {escape(history.stopped['reason'])}.</p>")
    return parts


def _per_class_table(metrics: dict[str, Any]) -> str:
    counts = [sum(row) for row in metrics["confusion"]]
    rows = [
        f"<tr><td class=k>{escape(name)}</td><td>{percent(accuracy)}</td><td>{count}</td></tr>"
        for (name, accuracy), count in zip(metrics["per_class_accuracy"].items(), counts, strict=True)
    ]
    return "<table><tr><th class=k>class</th><th>accuracy</th><th>images</th></tr>" + "".join(rows) + "</table>"


def _config_table(config: Config) -> list[str]:
    """Every setting of the run, less the augmentation sizes that did not act on it (all of them for augment none)."""
    idle = set(AUGMENT_FIELDS) - set(augment_fields(config.data))
    rows = [
        f"<tr><td class=k>{escape(section)}</td><td class=k>{escape(key)}</td><td class=k>{escape(value)}</td></tr>"
        for section, values in to_dict(config).items()
        if isinstance(values, dict)
        for key, value in values.items()
        if not (section == "data" and key in idle)
    ]
    table = (
        "<table><tr><th class=k>section</th><th class=k>setting</th><th class=k>value</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    if not idle:
        return [table]
    # Say that they were left out on purpose, and why, without naming them (nothing here acted).
    off = " and ".join(name for name in ("stroke", "blur") if name in idle)
    why = f"augment {config.data.augment}" + (f", {off} 0" if off else "")
    return [table, f"<p class=sub>Augmentation settings that do not act on this run are left out ({escape(why)}).</p>"]


def _versions_table(versions: dict[str, str]) -> str:
    """The software that wrote the run, one library a row (``mlplab``, ``torch``, ``python``)."""
    rows = "".join(
        f"<tr><td class=k>{escape(name)}</td><td class=k>{escape(version)}</td></tr>"
        for name, version in versions.items()
    )
    return (
        "<table><tr><th class=k>library</th><th class=k>version</th></tr>"
        + (rows or "<tr><td class=k colspan=2>not recorded</td></tr>")
        + "</table>"
    )


def percent(value: float | None) -> str:
    """``94.46%`` for 0.9446; ``-`` when unknown."""
    return "-" if value is None else f"{100 * value:.2f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def escape(value: Any) -> str:
    """Any value as HTML text."""
    return html.escape(str(value))
