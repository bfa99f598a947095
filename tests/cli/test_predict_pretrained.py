"""`mlplab predict IMAGE...` and `mlplab serve` with no run: the cached digits model, trained on first
use and loaded after, said on stderr; the forms with a run work as before; mistakes are one line.

The digits preset is made tiny (784-16-10, one epoch): the real recipe is never trained here. Each
test has its own cache ($MLPLAB_CACHE_DIR, tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image
from serve_helpers import SRC

import mlplab.config
from mlplab.cli.main import main
from helpers import cli_status

TINY = dict(hidden=(16,), epochs=1, batch_size=512, device="cpu", threads=1)


@pytest.fixture
def tiny(monkeypatch, trainings):
    """The digits preset as a recipe that trains in a second or two; counts the trainings."""
    monkeypatch.setitem(mlplab.config.PRESETS, "digits", dict(TINY))
    return trainings


@pytest.fixture(scope="module")
def seven(tmp_path_factory, mnist_dir):
    """The first MNIST test digit (a 7) drawn dark on white, 200x200, as a PNG."""
    from mlplab.data import MNIST

    digit = MNIST(mnist_dir, train=False).data[0].numpy()
    path = tmp_path_factory.mktemp("own") / "seven.png"
    Image.fromarray(255 - digit).resize((200, 200), Image.Resampling.BICUBIC).save(path)
    return str(path)


def test_images_alone_train_the_digits_model_once_then_load_it(tiny, seven, capsys):
    assert main(["predict", seven]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{seven}  7 - seven") and len(tiny) == 1
    first, last = captured.err.strip().splitlines()
    assert first.startswith("no run given: training the digits model once (784-16-10, 1 epoch on MNIST; ")
    assert "kept in " in first and "models/digits-" in first and first.endswith("later calls load it")
    assert last.startswith("trained in ") and last.endswith("% on MNIST's test set")

    assert main(["predict", seven, "--json"]) == 0
    captured = capsys.readouterr()
    assert len(tiny) == 1 and json.loads(captured.out)[0]["label"] == 7  # stdout is the JSON alone
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("no run given: using the cached digits model (") and "784-16-10, " in line
    assert line.endswith("% on MNIST's test set")


def test_retrain_trains_the_cached_model_again(tiny, seven, capsys):
    assert main(["predict", seven]) == 0 and main(["predict", "--retrain", seven]) == 0
    assert len(tiny) == 2 and "training the digits model once" in capsys.readouterr().err


def test_a_run_first_is_used_as_before(tiny, trained_run, seven, capsys):
    for arguments in ([str(trained_run), seven], [str(trained_run / "best.pt"), seven],
                      [str(trained_run), "--top", "2", seven]):  # images after an option, as argparse took them
        assert main(["predict", *arguments]) == 0
        captured = capsys.readouterr()
        assert captured.out.startswith(f"{seven}  7 - seven") and captured.err == ""
    assert tiny == []


@pytest.mark.parametrize("arguments, fragment", [
    (["{folder}", "{image}"], "is a folder but not a run directory (no last.pt or config.toml)"),
    (["{missing}"], "no such file: {missing}; give image files (or a run directory first)"),
    (["{missing}", "{image}"], "no checkpoint at {missing}: give a run directory or a .pt file"),
    (["{run}"], "no images given after the model"),
    (["{run}", "{image}", "--retrain"], "--retrain trains the cached digits model, used when no run is given"),
])
def test_mistakes_are_one_line_and_train_nothing(tiny, trained_run, seven, tmp_path, capsys, arguments, fragment):
    names = {"folder": str(tmp_path), "image": seven, "missing": str(tmp_path / "nothing"), "run": str(trained_run)}
    assert cli_status(["predict", *(argument.format(**names) for argument in arguments)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and fragment.format(**names) in error[0], error
    assert tiny == []


def test_help_gives_both_forms(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "[RUN_DIR | CHECKPOINT.pt] IMAGE [IMAGE ...]" in text and "--retrain" in text
    assert "`mlplab predict seven.png photo.jpg`" in text and "`mlplab predict runs/mnist seven.png`" in text


# `mlplab serve` with the digits preset made tiny, in a process of its own (the server runs until Ctrl+C).
_SERVE = """
import json, sys
import mlplab.config
from mlplab.cli.main import console
mlplab.config.PRESETS["digits"] = json.loads(sys.argv[1])
sys.exit(console(["serve", "--port", "0"]))
"""


def test_serve_with_no_run_serves_the_cached_model_and_shows_its_accuracy():
    pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')
    httpx = pytest.importorskip("httpx")
    process = subprocess.Popen([sys.executable, "-c", _SERVE, json.dumps(TINY)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": SRC})
    try:
        line = process.stdout.readline()  # after the training: the model loads before the port is bound
        assert line.startswith("mlplab serve: http://127.0.0.1:"), line + process.stderr.read()
        assert "(mnist, 784-16-10, test accuracy " in line
        url = line.split()[2]
        deadline = time.monotonic() + 30
        while True:
            try:
                model = httpx.get(url + "api/model", timeout=5).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer within 30 s"
                time.sleep(0.1)
        assert model["preset"] == "digits" and model["run"].startswith("digits-") and model["epochs"] == 1
        assert 0.5 < model["test_accuracy"] <= 1
        page = httpx.get(url, timeout=5).text
        assert "Test accuracy" in page and "model.test_accuracy" in page and "model.preset" in page
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0 and "mlplab serve: stopped" in out, out + err
        assert err.startswith("no run given: training the digits model once (784-16-10"), err
        assert "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def test_serve_refuses_retrain_with_a_run(trained_run, capsys):
    pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')
    assert main(["serve", str(trained_run), "--retrain"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "--retrain trains the cached digits model" in error
