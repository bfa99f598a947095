"""`mlplab predict`: lines, JSON and a figure for your own digits; bad images get one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mlplab.cli.main import main
from mlplab.data import MNIST
from helpers import cli_status


@pytest.fixture(scope="module")
def own_images(tmp_path_factory, mnist_dir):
    """Three MNIST test digits drawn dark on white, as PNG, JPEG and WebP; a blank canvas; a text file."""
    test = MNIST(mnist_dir, train=False)
    folder = tmp_path_factory.mktemp("own")
    paths, labels = [], []
    for index, kind in zip((0, 1, 2), ("png", "jpg", "webp")):
        digit = Image.fromarray(test.data[index].numpy()).resize((160, 160), Image.Resampling.BICUBIC)
        canvas = Image.new("L", (240, 240), 0)
        canvas.paste(digit, (40, 30))
        path = folder / f"digit{index}.{kind}"
        Image.fromarray(255 - np.asarray(canvas)).convert("RGB").save(path)
        paths.append(str(path))
        labels.append(int(test.targets[index]))
    blank = folder / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    text = folder / "notes.txt"
    text.write_text("not an image")
    return paths, labels, str(blank), str(text)


def test_prints_the_top_classes_of_each_image(trained_run, own_images, capsys):
    paths, labels, _, _ = own_images
    assert main(["predict", str(trained_run), *paths, "--top", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line, path, label in zip(lines, paths, labels):
        assert line.startswith(path)
        first = line[len(path):].split()[0]
        assert first == str(label)  # "7 - seven 99.9%   ...": the top class first
        assert line.count("%") == 2


def test_bad_images_get_one_line_each_and_exit_2_the_rest_are_predicted(trained_run, own_images, capsys, tmp_path):
    paths, labels, blank, text = own_images
    missing = str(tmp_path / "missing.png")
    assert main(["predict", str(trained_run), paths[0], blank, text, missing, paths[1]]) == 2
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 5 and "Traceback" not in captured.err
    assert lines[0].startswith(paths[0]) and lines[4].startswith(paths[1])
    assert lines[1] == f"{blank}: no digit found: the image is blank (no ink stands out from the background)"
    assert lines[2].startswith(f"{text}: not an image Pillow can read") and "PNG, JPEG, WebP or GIF" in lines[2]
    assert lines[3] == f"{missing}: no such file"


def test_json_for_scripts(trained_run, own_images, capsys):
    paths, labels, blank, _ = own_images
    assert main(["predict", str(trained_run), paths[2], blank, "--json"]) == 2
    records = json.loads(capsys.readouterr().out)
    assert records[0]["found"] is True and records[0]["label"] == labels[2]
    assert len(records[0]["top"]) == 3 and sum(records[0]["probabilities"]) == pytest.approx(1.0)
    assert records[1] == {"source": blank, "found": False, "error": records[1]["error"]}
    assert "no digit found" in records[1]["error"]


def test_show_draws_inputs_what_the_model_saw_and_the_bars(trained_run, own_images, tmp_path, capsys):
    paths, _, blank, _ = own_images
    out = tmp_path / "show.png"
    assert main(["predict", str(trained_run / "best.pt"), *paths, blank, "--show", str(out)]) == 2
    assert f"wrote {out}" in capsys.readouterr().out
    with Image.open(out) as figure:
        assert figure.format == "PNG" and figure.height > 4 * 150  # a row per image


@pytest.mark.parametrize("arguments, fragment", [
    (["predict", "{missing_run}", "x.png"], "give a run directory or a .pt file"),
    (["predict", "{run}", "{image}", "--top", "0"], "argument --top: must be a whole number in [1, 100]; got 0"),
])
def test_user_mistakes_are_one_line(trained_run, own_images, tmp_path, capsys, arguments, fragment):
    names = {"missing_run": str(tmp_path / "nothing"), "run": str(trained_run), "image": own_images[0][0]}
    assert cli_status([argument.format(**names) for argument in arguments]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and fragment in error[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_degenerate_images_get_one_line_each_no_numpy_warnings_and_no_hang(trained_run, own_images, tmp_path):
    """A named pipe hung the call forever; 1x1 and one-pixel-wide images printed NumPy RuntimeWarnings;
    a float TIFF with NaN pixels was called blank. Run as a user runs it, to see its stderr."""
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    images = {"1x1.png": np.zeros((1, 1)), "1x1000000.png": np.arange(1000000)[:, None] // 50 % 2 * 255,
              "1000000x1.png": np.arange(1000000)[None, :] // 50 % 2 * 255}
    for name, pixels in images.items():
        Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / name)
    nan = np.full((60, 60), 0.9, dtype=np.float32)
    nan[20:40, 28:32] = np.nan
    Image.fromarray(nan, mode="F").save(tmp_path / "nan.tif")
    names = [str(pipe), *(str(tmp_path / name) for name in images), str(tmp_path / "nan.tif"), own_images[0][0]]
    done = subprocess.run([sys.executable, "-m", "mlplab", "predict", str(trained_run), *names,
                           "--show", str(tmp_path / "show.png")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr == "", done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[:5] == [
        f"{pipe}: is a named pipe (FIFO), not an image",
        f"{tmp_path / '1x1.png'}: no digit found: the image is 1x1 pixels, too small or thin to hold a digit "
        "(at least 8 pixels each way)",
        f"{tmp_path / '1x1000000.png'}: no digit found: the image is 1x1000000 pixels, too small or thin to hold "
        "a digit (at least 8 pixels each way)",
        f"{tmp_path / '1000000x1.png'}: no digit found: the image is 1000000x1 pixels, too small or thin to hold "
        "a digit (at least 8 pixels each way)",
        f"{tmp_path / 'nan.tif'}: the image has NaN pixels (80 of 3,600); every pixel needs a finite grey level",
    ]
    assert lines[5].startswith(own_images[0][0]) and lines[6] == f"wrote {tmp_path / 'show.png'}"
