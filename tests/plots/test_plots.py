"""Figures, `mlplab plot`, `mlplab show samples` and `mlplab report`, drawn from a real short run."""

from __future__ import annotations

import base64
import json
import re
import sys
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
import torch

from mlplab.cli.main import main
from mlplab.config import Config, DataConfig, apply_overrides
from mlplab.errors import MlplabError
from mlplab.plots import FIGURES, images, plot_run, sample_figure
from mlplab.plots.backend import pyplot
from mlplab.plots.run import figure_drawers, read_run
from mlplab.runs.reader import open_run
from mlplab.training import train

# Pixel sizes at 100 dpi, from each figure's size in inches.
SIZES = {"curves": (1100, 420), "batch_loss": (1000, 420), "confusion": (750, 650), "per_class": (900, 450),
         "weights": (1120, 310), "predictions": (1250, 489), "mistakes": (1250, 346)}


@pytest.fixture(scope="module")
def run_dir(mnist_dir, tmp_path_factory):
    """Two epochs of a small MLP on real MNIST, with per-batch losses logged."""
    out = tmp_path_factory.mktemp("plots") / "run"
    config = apply_overrides(Config(), {"data_dir": str(mnist_dir), "device": "cpu", "progress": False,
                                        "download": False, "out": str(out), "hidden": (20,), "epochs": 2,
                                        "batch_size": 256, "log_batches": True})
    train(config)
    return out


@pytest.fixture(scope="module")
def figures(run_dir):
    return plot_run(run_dir, ("png", "svg"))


def _pixels(path):
    """The PNG as an (H, W, channels) float array in [0, 1], read by matplotlib's own PNG reader."""
    return pyplot().imread(path)


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_is_a_non_blank_image_of_its_size(figures, name):
    png, svg = figures.written[name]
    pixels = _pixels(png)
    assert (pixels.shape[1], pixels.shape[0]) == SIZES[name]
    gray = pixels[..., :3].mean(axis=2)
    assert gray.var() > 1e-3, f"{name} looks blank"
    assert (gray < 0.5).mean() > 0.002  # some dark ink: text, lines or digits
    root = ElementTree.parse(svg).getroot()
    assert root.tag.endswith("svg") and len(svg.read_bytes()) > 10_000


def test_figures_land_in_the_run_directory_and_name_their_content(run_dir, figures):
    assert not figures.skipped
    assert sorted(p.name for p in (run_dir / "figures").iterdir()) == sorted(
        f"{name}.{kind}" for name in FIGURES for kind in ("png", "svg"))
    drawers = figure_drawers(read_run(run_dir))
    curves = drawers["curves"]()
    titles = [axis.get_title() for axis in curves.axes]
    labels = [axis.get_ylabel() for axis in curves.axes]
    assert titles == ["Loss", "Accuracy"] and labels == ["cross_entropy (mean per image)", "accuracy (%)"]
    assert all(axis.get_xlabel() == "epoch" for axis in curves.axes)
    history = json.loads((run_dir / "history.json").read_text())["epochs"]
    accuracy_lines = {line.get_label(): list(line.get_ydata()) for line in curves.axes[1].get_lines()}
    assert accuracy_lines["validation (end of epoch)"] == pytest.approx([100 * r["val_accuracy"] for r in history])
    best = json.loads((run_dir / "metrics.json").read_text())["best"]["epoch"]
    assert f"best epoch: {best} (by validation accuracy)" in accuracy_lines
    pyplot().close("all")


def test_most_confident_mistakes_are_the_models_surest_wrong_answers(run_dir, mnist_dir):
    """The captions name the wrong predictions of highest probability, most confident first, of the
    best model (the run's model, as every reader takes it)."""
    figure = figure_drawers(read_run(run_dir))["mistakes"]()
    captions = [axis.get_xlabel() for axis in figure.axes if axis.get_images()]
    model = open_run(run_dir).model()
    from mlplab.data import load_data

    data = load_data(DataConfig(data_dir=str(mnist_dir), download=False))
    with torch.no_grad():
        probabilities = model(data.test.images).softmax(dim=1)
    confidence, predicted = probabilities.max(dim=1)
    wrong = (predicted != data.test.labels).nonzero().squeeze(1)
    surest = wrong[confidence[wrong].argsort(descending=True)][:20]
    expected = [f"pred {int(predicted[i])} ({100 * float(confidence[i]):.1f}%)\ntrue {int(data.test.labels[i])}"
                for i in surest]
    assert captions == expected
    assert f"of {len(wrong)}" in figure.texts[0].get_text()  # the suptitle counts every mistake
    pyplot().close("all")


def test_predictions_grid_marks_exactly_the_mistakes():
    labels, predictions = np.array([1, 2, 3, 4]), np.array([1, 5, 3, 0])
    figure = images.predictions_grid(np.random.default_rng(0).random((4, 28, 28)), labels, predictions,
                                     [str(c) for c in range(10)], "t")
    framed = [axis.spines["top"].get_edgecolor() == pytest.approx((0.839, 0.153, 0.157, 1.0), abs=1e-3)
              for axis in figure.axes]
    assert framed == [False, True, False, True]
    assert [axis.get_xlabel() for axis in figure.axes] == ["pred 1\ntrue 1", "pred 5\ntrue 2", "pred 3\ntrue 3",
                                                          "pred 0\ntrue 4"]
    pyplot().close(figure)


def test_weight_images_use_a_colour_scale_centred_on_zero():
    weights = np.random.default_rng(0).normal(0.3, 1.0, (5, 784))  # mostly positive: a naive scale would not centre
    figure = images.weight_images(weights, [f"unit {i}" for i in range(5)], "w")
    shown = [image for axis in figure.axes for image in axis.get_images()]
    assert len(shown) == 5
    for image in shown:
        low, high = image.get_clim()
        assert low == -high == pytest.approx(-np.abs(weights).max())
        assert image.get_cmap().name == "RdBu_r"
    assert "weight" in figure.axes[-1].get_ylabel()  # the colour bar is labelled
    pyplot().close(figure)


def test_batch_loss_is_skipped_with_a_reason_when_not_logged(make_config, tmp_path):
    history = train(make_config(epochs=1, hidden=(8,), batch_size=512))
    result = plot_run(history.run_dir)
    assert result.skipped == {"batch_loss": "the run logged no per-batch losses: train with --log-batches"}
    assert set(result.written) == set(FIGURES) - {"batch_loss"}


def test_plot_command_lists_files_and_rejects_bad_input(run_dir, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["plot", str(run_dir), "--format", "svg", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert all(f"{name}.svg" in printed for name in FIGURES) and len(list(out.glob("*.svg"))) == len(FIGURES)
    assert main(["plot", str(run_dir), "--units", "5", "--out", str(tmp_path / "five")]) == 0
    figure = figure_drawers(read_run(run_dir), weight_units=5)["weights"]()
    assert [axis.get_xlabel() for axis in figure.axes if axis.get_images()] == [f"unit {i}" for i in range(5)]
    assert _pixels(tmp_path / "five" / "weights.png").shape[1] == int(100 * (5 * 1.25 + 1.2))
    pyplot().close(figure)
    assert main(["plot", str(run_dir), "--format", "jpg"]) == 2
    assert "--format takes png, svg" in capsys.readouterr().err
    assert main(["plot", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "is not a run directory" in error and len(error.strip().splitlines()) == 1


def test_show_samples_filters_by_class(mnist_dir, tmp_path, capsys):
    figure = sample_figure(DataConfig(data_dir=str(mnist_dir), download=False), "test", 12, "seven", seed=3)
    captions = [axis.get_xlabel() for axis in figure.axes if axis.get_images()]
    assert captions == ["7 - seven"] * 12
    assert "12 random images" in figure.texts[0].get_text()
    pyplot().close(figure)
    path = tmp_path / "grid.png"
    assert main(["show", "samples", "--n", "20", "--class", "3", "--data-dir", str(mnist_dir), "--out", str(path)]) == 0
    pixels = _pixels(path)
    assert pixels.shape[:2] == (int(100 * (2 * 1.25 + 0.6)), 1250) and pixels.var() > 1e-3
    assert main(["show", "samples", "--class", "eleven", "--data-dir", str(mnist_dir)]) == 2
    assert "unknown class 'eleven'" in capsys.readouterr().err


def test_report_is_one_self_contained_page_with_every_figure(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"{100 * metrics['test_accuracy']:.2f}%" in page
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(FIGURES)
    assert all(base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n") for data in embedded)
    assert not re.search(r'(src|href)="(https?:|//)', page)  # nothing fetched from elsewhere
    for name, accuracy in metrics["per_class_accuracy"].items():
        assert f"<td class=k>{name}</td><td>{100 * accuracy:.2f}%</td>" in page
    assert "wrote" in capsys.readouterr().out


def test_a_missing_matplotlib_is_a_one_line_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MlplabError, match=r'pip install "mlplab\[plots\]"'):
        pyplot()


@pytest.mark.parametrize("damage", [b"", b'{"epochs": [', b"\x00\xff\xfe binary", b"[1, 2]"],
                         ids=["empty", "truncated", "binary", "not-a-record"])
def test_damaged_run_files_are_rewritten_from_last_pt_or_refused_in_one_line(run_dir, tmp_path, damage, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    for name in ("history.json", "metrics.json"):
        (copy / name).write_bytes(damage)
    assert main(["report", str(copy)]) == 0  # the views are rewritten from last.pt before reading
    assert json.loads((copy / "history.json").read_text()) == json.loads((run_dir / "history.json").read_text())
    capsys.readouterr()
    # A run directory whose last.pt cannot mend it (written before checkpoints held the metrics).
    from mlplab.runs.checkpoint import load_checkpoint, save_checkpoint

    old = load_checkpoint(copy / "last.pt")
    del old["metrics"]
    save_checkpoint(copy / "last.pt", {k: v for k, v in old.items() if k not in ("tensor_sha256",)})
    (copy / "metrics.json").write_bytes(damage)
    assert main(["report", str(copy)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "metrics.json" in error


def _config_rows(page):
    """The Configuration table's ``{setting: value}`` rows of a report page."""
    table = page.split("<h2>Configuration</h2>", 1)[1].split("</table>", 1)[0]
    return dict(re.findall(r"<tr><td class=k>\w+</td><td class=k>(\w+)</td><td class=k>([^<]*)</td></tr>", table))


@pytest.fixture(scope="module")
def report_page(run_dir, tmp_path_factory):
    """The report page of the module's run (augment none), written once."""
    from mlplab.plots.report import write_report

    return write_report(run_dir, out=tmp_path_factory.mktemp("report") / "report.html").read_text()


def test_report_leaves_out_augmentation_settings_when_augment_is_none(report_page):
    page = report_page
    rows = _config_rows(page)
    assert rows["augment"] == "none" and rows["hidden"] == "[20]"  # the table is there, and read right
    assert "rotate" not in page and "elastic" not in page
    assert not {"scale", "shear", "translate", "stroke", "blur"} & set(rows)
    assert "Augmentation settings that do not act on this run are left out (augment none, stroke and blur 0)" in page


def test_report_lists_only_the_augmentation_settings_that_act(make_config, tmp_path):
    from mlplab.plots.report import write_report

    history = train(make_config(epochs=1, hidden=(8,), batch_size=512, val_size=50_000, augment="elastic",
                                elastic_alpha=20.0, stroke=0.5))
    rows = _config_rows(write_report(history.run_dir).read_text())
    assert rows["augment"] == "elastic"
    assert (rows["elastic_alpha"], rows["elastic_sigma"], rows["stroke"]) == ("20.0", "4.0", "0.5")
    assert not {"rotate", "scale", "shear", "translate", "blur"} & set(rows)  # affine sizes and a zero blur


@pytest.mark.parametrize("augment, stroke, blur, expected", [
    ("none", 0.0, 0.0, []),
    ("none", 0.0, 1.0, ["blur"]),
    ("affine", 0.0, 0.0, ["rotate", "scale", "shear", "translate"]),
    ("elastic", 0.5, 0.0, ["elastic_alpha", "elastic_sigma", "stroke"]),
    ("both", 0.5, 1.0, ["rotate", "scale", "shear", "translate", "elastic_alpha", "elastic_sigma", "stroke", "blur"]),
])
def test_augment_fields_are_the_settings_the_augmentation_reads(augment, stroke, blur, expected):
    from mlplab.plots.samples import AUGMENT_FIELDS, augment_fields

    config = DataConfig(augment=augment, stroke=stroke, blur=blur, download=False)
    assert augment_fields(config) == expected
    assert set(AUGMENT_FIELDS) <= {field for field in DataConfig.__dataclass_fields__}


def test_report_shows_versions_as_a_table(run_dir, report_page):
    table = report_page.split("<h2>Software</h2>", 1)[1].split("</table>", 1)[0]
    assert table.startswith("\n<table><tr><th class=k>library</th><th class=k>version</th></tr>")
    rows = re.findall(r"<tr><td class=k>([^<]*)</td><td class=k>([^<]*)</td></tr>", table)
    versions = json.loads((run_dir / "metrics.json").read_text())["versions"]
    assert rows == list(versions.items()) and {"mlplab", "torch", "python"} <= versions.keys()
    assert "&quot;" not in report_page  # no JSON printed raw
