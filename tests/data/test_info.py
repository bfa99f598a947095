"""bundle_statistics() and `mlplab data info`: the numbers the labs print."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from data_helpers import pixel_stats

from mlplab.cli import data_cmd
from mlplab.config import DataConfig
from mlplab.data import bundle_statistics, get_spec, load_data
from mlplab.data.arrays import read_dataset
from mlplab.errors import MlplabError


@pytest.fixture(scope="module")
def bundle(mnist_dir):
    return load_data(DataConfig(data_dir=str(mnist_dir)))


def test_describe_counts_and_stats(bundle, mnist_dir):
    raw = read_dataset(get_spec("mnist"), mnist_dir)
    summary = bundle_statistics(bundle)
    splits = summary["splits"]
    assert list(splits) == ["train", "val", "test"]
    for split in splits.values():
        assert sum(split["class_counts"]) == split["size"] and len(split["class_counts"]) == 10
    # Counts computed from the files, not hard-coded: the first 50k training labels and the test labels.
    assert splits["train"]["class_counts"] == np.bincount(raw.train_labels[:50000], minlength=10).tolist()
    assert splits["test"]["class_counts"] == np.bincount(raw.test_labels, minlength=10).tolist()
    mean, std = pixel_stats(raw.train_images[:50000])
    assert splits["train"]["raw_mean"] == pytest.approx(mean, abs=1e-5)
    assert splits["train"]["raw_std"] == pytest.approx(std, abs=1e-5)
    assert splits["train"]["mean"] == pytest.approx((mean - 0.1307) / 0.3081, abs=1e-4)
    assert splits["train"]["min"] == pytest.approx(-0.1307 / 0.3081, abs=1e-5)
    assert splits["train"]["shape"] == [50000, 1, 28, 28]
    json.dumps(summary)  # plain data


def test_describe_unit_raw_equals_normalised(mnist_dir):
    split = bundle_statistics(load_data(DataConfig(data_dir=str(mnist_dir), normalize="unit", val_split="none")))["splits"]
    assert "val" not in split
    assert split["train"]["raw_mean"] == pytest.approx(split["train"]["mean"])
    assert split["train"]["min"] == 0.0 and split["train"]["max"] == 1.0


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="mlplab")
    data_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_json(mnist_dir, capsys):
    assert run_cli(["data", "info", "--data-dir", str(mnist_dir), "--json", "--no-download"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dataset"] == "mnist" and summary["splits"]["val"]["size"] == 10000


def test_cli_table(mnist_dir, capsys):
    assert run_cli(["data", "info", "--data-dir", str(mnist_dir), "--val-split", "none"]) == 0
    out = capsys.readouterr().out
    assert "MNIST from" in out and "60000x1x28x28" in out and "class counts" in out
    assert "val " not in out


def test_cli_errors_are_mlplab_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("MLPLAB_DATA_DIR", raising=False)
    with pytest.raises(MlplabError, match="--no-download"):
        run_cli(["data", "info", "--dataset", "fashion-mnist", "--cache-dir", str(tmp_path), "--no-download"])
    with pytest.raises(MlplabError, match="unknown dataset"):
        run_cli(["data", "info", "--dataset", "svhn"])
