"""`mlplab.runs.reader`: one object opens a run directory, and every reader takes the same checkpoint from it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from mlplab.cli.main import main
from mlplab.config import Config, apply_overrides, to_dict
from mlplab.errors import MlplabError
from mlplab.runs.reader import Run, SavedModel, load_model, open_run
from mlplab.training import Callback, load_checkpoint, save_checkpoint, train


class Stop(Exception):
    """Raised by a callback to end `fit` early, as a kill would, once an epoch is saved."""


class StopAt(Callback):
    """A callback that stops training at one of fit's moments (a hook name and an epoch)."""

    def __init__(self, hook, epoch=None):
        setattr(self, hook, self.stop)
        self.epoch = epoch

    def stop(self, *args):
        record = next((arg for arg in args if isinstance(arg, dict)), None)
        if self.epoch is None or (isinstance(record, dict) and record["epoch"] == self.epoch):
            raise Stop


def _config(out, mnist_dir, **overrides):
    """A tiny run on real MNIST: one validation image, so the first epoch (which gets it right)
    stays the best and epoch 2 is newer than the best."""
    fields = {"data_dir": str(mnist_dir), "device": "cpu", "progress": False, "download": False, "out": str(out),
              "hidden": (8,), "epochs": 2, "batch_size": 1000, "val_size": 1, "scheduler": "none"}
    return apply_overrides(Config(), {**fields, **overrides})


@pytest.fixture(scope="module")
def finished(mnist_dir, tmp_path_factory):
    """A finished two-epoch run whose best epoch is 1 (its one validation image right from epoch 1)."""
    out = tmp_path_factory.mktemp("run") / "finished"
    train(_config(out, mnist_dir))
    assert load_checkpoint(out / "last.pt")["best"]["epoch"] == 1, "the setup needs epoch 1 to be the best"
    return out


@pytest.fixture(scope="module")
def unfinished(mnist_dir, tmp_path_factory):
    """The same run stopped once its first epoch is saved (no test metrics yet)."""
    out = tmp_path_factory.mktemp("run") / "unfinished"
    with pytest.raises(Stop):
        train(_config(out, mnist_dir), callbacks=[StopAt("on_epoch_end", epoch=1)])
    return out


def _equal_weights(model, weights):
    state = model.state_dict()
    return set(state) == set(weights) and all(torch.equal(state[name], weights[name]) for name in weights)


def _one_line_error(call, *fragments):
    with pytest.raises(MlplabError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and all(fragment in message for fragment in fragments), message
    return message


def test_a_finished_run_reads_its_record_from_last_pt(finished):
    run = open_run(finished)
    assert isinstance(run, Run) and run.path == finished
    assert to_dict(run.config) == json.loads((finished / "config.json").read_text())
    assert run.history.to_dict() == json.loads((finished / "history.json").read_text())
    assert run.history.run_dir == finished and [r["epoch"] for r in run.history] == [1, 2]
    assert run.metrics == json.loads((finished / "metrics.json").read_text())
    assert run.finished and run.epochs == 2
    assert run.best == {"epoch": 1, "score": 1.0, "metric": "val_accuracy"}
    assert repr(run) == (f"Run({str(finished)!r}, mnist, 784-8-10, 2/2 epochs, best epoch 1, "
                         f"test accuracy {100 * run.metrics['test_accuracy']:.2f}%)")


def test_an_unfinished_run_has_its_saved_epochs_and_no_metrics(unfinished):
    run = open_run(unfinished)
    assert run.config.train.epochs == 2 and run.epochs == 1 and len(run.history) == 1
    assert run.metrics is None and not run.finished
    assert run.checkpoint_path() == unfinished / "best.pt" and run.checkpoint()["epoch"] == 1
    assert repr(run).endswith("1/2 epochs, best epoch 1, not finished)")


def test_a_run_stopped_before_its_first_epoch_says_how_to_start_again(mnist_dir, tmp_path):
    out = tmp_path / "none"
    with pytest.raises(Stop):
        train(_config(out, mnist_dir), callbacks=[StopAt("on_fit_start")])
    run = open_run(out)  # config.toml alone is a run directory
    assert run.config.model.hidden == (8,) and run.epochs == 0 and len(run.history) == 0
    assert run.metrics is None and run.best is None and not run.finished
    assert "no epoch saved yet" in repr(run)
    _one_line_error(run.model, "has no saved epoch yet", f"--out {out}")


def test_the_rule_best_pt_else_last_pt_and_which_last(finished, tmp_path):
    run = open_run(finished)
    assert run.checkpoint_path() == finished / "best.pt" and run.checkpoint()["epoch"] == 1
    assert run.checkpoint_path("last") == finished / "last.pt" and run.checkpoint("last")["epoch"] == 2
    assert run.checkpoint() is run.checkpoint("best")  # loaded once
    best, last = run.model(), run.model("last")
    assert _equal_weights(best, load_checkpoint(finished / "best.pt")["model"])
    assert _equal_weights(last, load_checkpoint(finished / "last.pt")["model"])
    assert not _equal_weights(best, last.state_dict())  # epoch 2 moved the weights
    assert not best.training and not last.training
    # Before any best.pt exists (a run from before best checkpoints, or killed before publishing one): last.pt.
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    (copy / "best.pt").unlink()
    assert open_run(copy).checkpoint_path() == copy / "last.pt"
    assert _equal_weights(load_model(copy), load_checkpoint(finished / "last.pt")["model"])


def test_load_model_takes_a_run_directory_or_a_checkpoint_file(finished):
    best_weights = load_checkpoint(finished / "best.pt")["model"]
    assert _equal_weights(load_model(finished), best_weights)
    assert _equal_weights(load_model(finished / "best.pt"), best_weights)
    assert _equal_weights(load_model(finished, which="last"), load_checkpoint(finished / "last.pt")["model"])
    model = load_model(finished, map_location="meta")  # the device the network comes back on
    assert all(parameter.is_meta for parameter in model.parameters())


def test_into_loads_the_weights_into_a_module_strictly(finished):
    net = nn.Sequential()
    net.layers = nn.ModuleList([nn.Linear(784, 8), nn.Linear(8, 10)])
    assert open_run(finished).model(into=net) is net and not net.training
    assert _equal_weights(net, load_checkpoint(finished / "best.pt")["model"])
    _one_line_error(lambda: open_run(finished).model(into=nn.Linear(784, 10)),
                    "do not fit the Linear given", "pass a module built as the run's was")


@pytest.mark.parametrize("call", [lambda run: run.checkpoint_path("first"), lambda run: run.model("latest"),
                                  lambda run: load_model(run.path / "best.pt", which="newest")],
                         ids=["checkpoint_path", "model", "load_model"])
def test_an_unknown_which_is_refused_in_one_line(finished, call):
    _one_line_error(lambda: call(open_run(finished)), "unknown checkpoint", "choose one of: best, last")


def test_what_is_not_a_run_directory_is_refused_in_one_line(finished, tmp_path):
    _one_line_error(lambda: open_run(tmp_path), "is not a run directory (has no last.pt and no config.toml)",
                    "give a folder written by `mlplab train`")
    _one_line_error(lambda: open_run(tmp_path / "nothing"), "is not a run directory (does not exist)")
    _one_line_error(lambda: open_run(finished / "best.pt"), "is a file, not a run directory", str(finished))
    _one_line_error(lambda: load_model(tmp_path / "nothing.pt"), "no checkpoint at")


def test_opening_a_run_repairs_what_a_killed_writer_left(finished, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    (copy / "history.json").write_text("{")
    (copy / "metrics.json").unlink()
    open_run(copy)
    assert json.loads((copy / "history.json").read_text()) == json.loads((finished / "history.json").read_text())
    assert json.loads((copy / "metrics.json").read_text()) == json.loads((finished / "metrics.json").read_text())


def test_eval_export_and_plot_read_the_best_checkpoint(finished, mnist_dir, tmp_path, capsys):
    from mlplab.data import Batches, load_data
    from mlplab.export import export_safetensors, load_safetensors
    from mlplab.losses import build_loss
    from mlplab.plots.backend import pyplot
    from mlplab.plots.run import figure_drawers, read_run
    from mlplab.training import evaluate

    run = open_run(finished)
    best = run.model()
    assert main(["eval", str(finished), "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    data = load_data(run.config.data)
    ours = evaluate(best, Batches(data.test, 1000), build_loss(run.config.train.loss, run.config.model.output))
    assert result["checkpoint"] == str(finished / "best.pt") and result["epoch"] == 1
    assert result["accuracy"] == ours["accuracy"] and result["confusion"] == ours["confusion"]

    assert main(["export", str(finished), "--out", str(tmp_path / "w.safetensors")]) == 0
    assert capsys.readouterr().out.strip().endswith(f"from {finished / 'best.pt'}")
    assert _equal_weights(load_safetensors(tmp_path / "w.safetensors"), best.state_dict())
    export_safetensors(finished, tmp_path / "last.safetensors", which="last")
    assert _equal_weights(load_safetensors(tmp_path / "last.safetensors"), run.model("last").state_dict())

    assert main(["plot", str(finished), "--units", "2", "--out", str(tmp_path / "figures")]) == 0
    assert "weights" in capsys.readouterr().out
    figure = figure_drawers(read_run(finished), weight_units=2)["weights"]()
    drawn = [image.get_array() for axis in figure.axes for image in axis.get_images()]
    weight = best.layers[0].weight.detach()  # (8, 784): the best epoch's, not the last one's
    assert [torch.equal(torch.as_tensor(image.data).float(), unit.reshape(28, 28)) for image, unit
            in zip(drawn, weight)] == [True, True]
    pyplot().close("all")


def test_plot_and_report_refuse_an_unfinished_run_in_one_line(unfinished, capsys):
    for command in ("plot", "report"):
        assert main([command, str(unfinished)]) == 2
        error = capsys.readouterr().err.strip()
        assert "is not a finished run (1 epochs saved, no test metrics yet)" in error and "\n" not in error
        assert f"mlplab train --resume {unfinished}" in error


def _user_defined_run(finished, tmp_path):
    """A copy of ``finished`` as a run of a user-defined module would be saved: no config, its class named."""
    import shutil

    copy = tmp_path / "user"
    shutil.copytree(finished, copy)
    for name in ("last.pt", "best.pt"):
        checkpoint = load_checkpoint(copy / name)
        checkpoint["config"] = None
        checkpoint["model_info"] = {"class": "mymodule.MyNet", "classes": checkpoint["model_info"]["classes"],
                                    "num_classes": 10}
        save_checkpoint(copy / name, {key: value for key, value in checkpoint.items()
                                      if key not in ("format", "schema_version", "versions", "record_sha256")})
    try:
        load_checkpoint(copy / "last.pt")
    except MlplabError as error:
        pytest.skip(f"load_checkpoint does not accept a checkpoint without a config yet ({error})")
    return copy


def test_a_user_defined_model_loads_only_into_its_module(finished, tmp_path):
    copy = _user_defined_run(finished, tmp_path)
    run = open_run(copy)
    assert run.config is None and run.finished and run.epochs == 2
    assert "mymodule.MyNet, 2 epochs, best epoch 1" in repr(run)
    _one_line_error(run.model, "mymodule.MyNet", "into=")
    _one_line_error(lambda: load_model(copy), "mymodule.MyNet", "into=")
    net = nn.Sequential()
    net.layers = nn.ModuleList([nn.Linear(784, 8), nn.Linear(8, 10)])
    net.train()
    assert run.model(into=net) is net and not net.training
    assert _equal_weights(net, load_checkpoint(finished / "best.pt")["model"])


def test_a_user_defined_models_run_still_has_its_curves_and_report(finished, tmp_path):
    from mlplab.plots import plot_run
    from mlplab.plots.report import write_report

    copy = _user_defined_run(finished, tmp_path)
    figures = plot_run(copy)
    assert {"curves", "confusion", "per_class"} <= set(figures.written)
    assert {"weights", "predictions", "mistakes"} <= set(figures.skipped)
    page = write_report(copy).read_text()
    assert "mymodule.MyNet (a user-defined model)" in page and "Configuration" not in page


def test_importing_mlplab_run_does_not_import_torch():
    code = "import sys, mlplab.runs.reader; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


PRESET_RUNS = {name: ["--preset", name] for name in ("lab", "fast", "fast99", "best", "digits", "logistic", "seq", "tutorial", "twolayer")}
PRESET_RUNS["(default)"] = []
PRESET_RUNS["ccql, beta 2"] = ["--hidden", "32", "--loss", "ccql", "--beta", "2"]
PRESET_RUNS["quadratic, log_softmax"] = ["--hidden", "32", "--loss", "quadratic", "--output", "log_softmax"]


@pytest.mark.parametrize("flags", PRESET_RUNS.values(), ids=PRESET_RUNS.keys())
def test_eval_and_run_evaluate_score_a_run_as_its_metrics_json_does(flags, tmp_path, capsys):
    """Every preset (label smoothing, weight averaging, NLL of log-probabilities, the quadratic losses)
    is scored by `mlplab eval` and `Run.evaluate` with the loss it trained on: metrics.json again."""
    out = tmp_path / "run"
    assert main(["train", *flags, "--epochs", "1", "--threads", "1", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    again = open_run(out).evaluate()
    for scored in (evaluated, again):
        assert scored["loss"] == pytest.approx(metrics["test_loss"], rel=1e-5)
        assert scored["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-4)  # one image in 10,000
        assert scored["count"] == metrics["test_count"] == 10_000
    config, loss = open_run(out).config, open_run(out).loss()
    assert (loss.name, loss.output, loss.label_smoothing) == (config.train.loss, config.model.output,
                                                             config.train.label_smoothing)


def test_a_saved_model_reads_a_checkpoint_file_or_the_one_a_run_directory_means(finished):
    by_rule, by_file = SavedModel(finished), SavedModel(finished / "last.pt")
    assert by_rule.path == open_run(finished).checkpoint_path() and by_file.path == finished / "last.pt"
    assert by_rule.epoch == open_run(finished).best["epoch"] and by_file.epoch == open_run(finished).epochs
    assert by_rule.config == open_run(finished).config
    assert _equal_weights(by_rule.model(), load_checkpoint(by_rule.path)["model"])
    run = open_run(finished)
    assert run.saved("last") is run.saved("last")  # each checkpoint is read once per run
    _one_line_error(lambda: SavedModel(finished, which="newest"), "checkpoint", "best")
