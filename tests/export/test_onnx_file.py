"""`mlplab.export.onnx_file` and `mlplab export --format onnx`: the ONNX graph gives PyTorch's outputs in
onnxruntime on the whole test set, at any batch size; its metadata alone says how to feed it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import mlplab
from mlplab.choices import NORMALIZATIONS
from mlplab.cli.main import main
from mlplab.errors import MlplabError
from mlplab.export.onnx_file import ONNX_FORMAT, export_onnx, scaling
from mlplab.runs.reader import open_run
from mlplab.runs.checkpoint import load_checkpoint, save_checkpoint
from helpers import cli_status



def _assert_close(got: np.ndarray, expected: np.ndarray) -> None:
    """ONNX's outputs are PyTorch's within 1e-5, plus 1e-6 of the value (8 float32 ulps).

    The relative part is float32 rounding, not slack: onnxruntime's and PyTorch's matrix
    products add the 784 and 256 terms of each dot product in different orders. On the test
    set, PyTorch's own logits are up to 8e-6 from the float64 result, and a few of the 100,000
    outputs (|logit| ~ 24, where one ulp is 2e-6) differ between the two by 1.1e-5.
    """
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    """The session's trained run exported to ONNX once (into a folder of its own)."""
    return export_onnx(trained_run, tmp_path_factory.mktemp("onnx") / "model.onnx")


def _session(path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _metadata(path) -> dict[str, str]:
    return _session(path).get_modelmeta().custom_metadata_map


def _variant(trained_run, path, changes):
    """best.pt of the trained run saved alone at ``path`` (no last.pt beside it), its config's sections
    updated from ``changes`` (``{"model": {"output": ...}}``); None: as a user-defined module's is saved."""
    checkpoint = load_checkpoint(trained_run / "best.pt")
    if changes is None:
        checkpoint["config"] = None
        checkpoint["model_info"] = {"class": "mymodule.MyNet", "num_classes": 10}
    else:
        for section, fields in changes.items():
            checkpoint["config"][section].update(fields)
    save_checkpoint(path, {key: value for key, value in checkpoint.items()
                           if key not in ("format", "schema_version", "versions", "record_sha256")})
    return path


def _one_line_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlplab") and ": error: " in lines[0], lines
    return lines[0]


# --- the graph computes what the PyTorch model computes --------------------------------------

def test_onnx_matches_pytorch_on_the_whole_test_set(trained_run, exported):
    run = open_run(trained_run)
    model = run.model()
    test = mlplab.load_data(run.config.data).test  # (10000, 1, 28, 28), normalised as in training
    session = _session(exported)
    got, expected = [], []
    for start in range(0, len(test), 1000):
        images = test.images[start:start + 1000]
        (outputs,) = session.run(None, {"images": images.numpy()})
        got.append(outputs)
        with torch.no_grad():
            expected.append(model(images).numpy())
    got, expected = np.concatenate(got), np.concatenate(expected)
    assert got.shape == expected.shape == (10_000, 10)
    difference = float(np.abs(got - expected).max())
    print(f"max |ONNX - torch| over the {len(test)} test images: {difference:.3g}")
    _assert_close(got, expected)
    # The accuracy the metadata states is the file's own, measured here from it alone.
    accuracy = float((got.argmax(1) == test.labels.numpy()).mean())
    assert accuracy == pytest.approx(float(_metadata(exported)["test_accuracy"]), abs=1e-12)
    assert accuracy == run.metrics["test_accuracy"]


def test_the_batch_dimension_is_dynamic(trained_run, exported):
    session = _session(exported)
    (images,), (outputs,) = session.get_inputs(), session.get_outputs()
    assert (images.name, images.shape, images.type) == ("images", ["batch", 1, 28, 28], "tensor(float)")
    assert (outputs.name, outputs.shape) == ("logits", ["batch", 10])
    model = open_run(trained_run).model()
    generator = torch.Generator().manual_seed(0)
    for batch in (1, 7, 1000):
        batch_images = torch.randn(batch, 1, 28, 28, generator=generator)
        (got,) = session.run(["logits"], {"images": batch_images.numpy()})
        with torch.no_grad():
            expected = model(batch_images).numpy()
        assert got.shape == (batch, 10)
        _assert_close(got, expected)


# --- the metadata says how to feed it ----------------------------------------------------------

def test_the_metadata_describes_the_run_and_suffices_to_feed_it(trained_run, exported, mnist_dir):
    from mlplab.data import get_spec

    run = open_run(trained_run)
    metadata = _metadata(exported)
    assert metadata["format"] == ONNX_FORMAT and metadata["format_version"] == "1"
    assert metadata["mlplab_version"] == mlplab.__version__
    assert metadata["dataset"] == "mnist"
    assert json.loads(metadata["classes"]) == list(get_spec("mnist").classes)
    assert (metadata["normalize"], float(metadata["mean"]), float(metadata["std"])) == ("standard", 0.1307, 0.3081)
    assert (metadata["input"], metadata["output"]) == ("images", "logits")
    assert metadata["architecture"] == run.model().describe() == "784-256-10 relu MLP -> logits, 203,530 parameters"
    assert json.loads(metadata["config"])["model"]["hidden"] == [256]
    assert int(metadata["epoch"]) == load_checkpoint(trained_run / "best.pt")["epoch"] == run.best["epoch"]
    assert float(metadata["test_accuracy"]) == run.metrics["test_accuracy"]

    # Raw uint8 pixels and the metadata alone give the run's own predictions.
    pixels = mlplab.MNIST(mnist_dir, train=False).data[:500].numpy()  # (500, 28, 28) uint8
    mean, std = float(metadata["mean"]), float(metadata["std"])
    images = ((pixels.astype(np.float32) / 255 - mean) / std)[:, None]  # (500, 1, 28, 28)
    (got,) = _session(exported).run(None, {metadata["input"]: images.astype(np.float32)})
    with torch.no_grad():
        expected = run.model()(mlplab.load_data(run.config.data).test.images[:500]).numpy()
    _assert_close(got, expected)


@pytest.mark.parametrize("kind", NORMALIZATIONS)
def test_the_stated_mean_and_std_are_the_runs_normalisation(kind):
    from mlplab.data.loading import normalize
    from mlplab.data.registry import get_spec

    spec = get_spec("fashion-mnist")  # a mean and std of its own
    pixels = torch.arange(256, dtype=torch.uint8)
    mean, std = scaling(kind, spec.mean, spec.std)
    assert torch.allclose((pixels / 255 - mean) / std, normalize(pixels, kind, spec), atol=1e-6)


def test_a_log_softmax_net_outputs_log_probabilities(trained_run, tmp_path):
    checkpoint = _variant(trained_run, tmp_path / "alone.pt",
                          {"model": {"output": "log_softmax"}, "data": {"normalize": "symmetric"}})
    out = export_onnx(checkpoint, tmp_path / "model.onnx")
    metadata = _metadata(out)
    assert (metadata["output"], metadata["normalize"], metadata["mean"], metadata["std"]) == (
        "log_probabilities", "symmetric", "0.5", "0.5")
    assert metadata["architecture"].endswith("-> log_softmax, 203,530 parameters")
    assert "test_accuracy" not in metadata  # a checkpoint alone, with no finished run around it
    session = _session(out)
    assert [output.name for output in session.get_outputs()] == ["log_probabilities"]
    images = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    (got,) = session.run(None, {"images": images.numpy()})
    assert np.allclose(np.exp(got).sum(1), 1.0, atol=1e-5)
    with torch.no_grad():
        expected = torch.log_softmax(open_run(trained_run).model()(images), dim=1).numpy()
    _assert_close(got, expected)


# --- refusals ----------------------------------------------------------------------------------

def test_a_user_defined_model_is_refused_in_one_line_saying_what_to_do(trained_run, tmp_path, capsys):
    checkpoint = _variant(trained_run, tmp_path / "user.pt", None)
    with pytest.raises(MlplabError, match=r"user-defined model \(mymodule\.MyNet\).*torch\.onnx\.export") as caught:
        export_onnx(checkpoint, tmp_path / "model.onnx")
    assert "\n" not in str(caught.value)
    assert main(["export", str(checkpoint), "--format", "onnx"]) == 2
    assert "mymodule.MyNet" in _one_line_error(capsys)
    assert not (tmp_path / "model.onnx").exists()


def test_a_missing_package_names_the_extra(trained_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` now raises ImportError
    with pytest.raises(MlplabError, match=r'needs onnxscript, which is not installed: pip install "mlplab\[onnx\]"'):
        export_onnx(trained_run, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_a_file_that_disagrees_with_pytorch_is_not_written(trained_run, tmp_path, monkeypatch):
    monkeypatch.setattr("mlplab.export.onnx_file.CHECK_TOLERANCE", -1.0)  # no difference passes
    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous export")
    with pytest.raises(MlplabError, match="disagrees with PyTorch"):
        export_onnx(trained_run, out)
    assert out.read_bytes() == b"the previous export"
    assert [path.name for path in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left


# --- the command line --------------------------------------------------------------------------

def test_the_cli_writes_model_onnx_beside_the_checkpoint(trained_run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    assert main(["export", str(copy), "--format", "onnx"]) == 0
    out = copy / "model.onnx"
    assert capsys.readouterr().out.strip() == f"wrote {out} ({out.stat().st_size} bytes) from {copy / 'best.pt'}"
    assert _metadata(out)["format"] == ONNX_FORMAT
    assert not (copy / "model.safetensors").exists()

    assert main(["export", str(copy / "last.pt"), "--format", "onnx", "--opset", "18", "--out",
                 str(tmp_path / "old.onnx")]) == 0
    model = onnx.load(tmp_path / "old.onnx")
    assert [entry.version for entry in model.opset_import if entry.domain == ""] == [18]
    assert "test_accuracy" in {entry.key for entry in model.metadata_props}  # last.pt is the tested epoch here


@pytest.mark.parametrize("args, fragment", [
    (["export", "no/such/run", "--format", "onnx"], "no checkpoint at no/such/run"),
    (["export", "RUN", "--format", "onnx", "--opset", "3"], "could not convert the model to opset 3"),
    (["export", "RUN", "--format", "onnx", "--opset", "1000"], "argument --opset: must be a whole number in [1, 100]"),
    (["export", "RUN", "--format", "onnx", "--opset", "99"], "opset must be a whole number from 1 to"),
    (["export", "RUN", "--opset", "18"], "--opset applies to --format onnx only"),
], ids=["no-such-path", "old-opset", "opset-out-of-range", "future-opset", "opset-without-onnx"])
def test_bad_export_arguments_exit_2_with_one_line(trained_run, tmp_path, capsys, args, fragment):
    args = [str(trained_run) if arg == "RUN" else arg for arg in args]
    assert cli_status([*args, "--out", str(tmp_path / "model.onnx")]) == 2
    assert fragment in _one_line_error(capsys)
    assert not (tmp_path / "model.onnx").exists()


def test_importing_mlplab_and_exporting_safetensors_import_no_onnx(trained_run, tmp_path):
    code = ("import sys, mlplab, mlplab.export.onnx_file; from mlplab.cli.main import main; "
            "assert 'torch' not in sys.modules; "
            f"assert main(['export', {str(trained_run)!r}, '--out', {str(tmp_path / 'w.safetensors')!r}]) == 0; "
            "loaded = [name for name in ('onnx', 'onnxscript', 'onnxruntime') if name in sys.modules]; "
            "print(loaded, file=sys.stderr); sys.exit(bool(loaded))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "w.safetensors").stat().st_size > 0
