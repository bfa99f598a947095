"""`mlplab experiment linreg`: SGD reaches the least-squares optimum, least squares recovers the line, the CLI writes its files."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import xml.etree.ElementTree as ElementTree
from itertools import pairwise

import numpy as np
import pytest
import torch

from mlplab.cli.main import main
from mlplab.errors import MlplabError
from mlplab.experiments.linreg import LinregConfig, least_squares, make_data, mean_squared_error, run
from mlplab.plots.backend import pyplot
from mlplab.plots.linreg import loss_curve

FIGURE_PIXELS = (460, 1200)  # (height, width): the 12 x 4.6 inch figure at 100 dpi
RESULT_FIELDS = {"config", "sgd_mse", "least_squares_mse", "true_weights", "true_bias", "least_squares_weights",
                 "least_squares_bias", "sgd_weights", "sgd_bias", "sgd_seconds", "sgd_excess_over_least_squares"}


@pytest.fixture(scope="module")
def default_run():
    """The lab's settings: 1000 samples, 5 features, noise 0.1, batch 8, lr 1e-3, 100 epochs (about a second)."""
    return run(LinregConfig())


def test_sgd_ends_within_one_percent_of_least_squares(default_run):
    assert len(default_run.sgd_mse) == 101  # epoch 0 (before training), then one value per epoch
    assert default_run.sgd_mse[-1] <= 1.01 * default_run.least_squares_mse
    assert default_run.excess == pytest.approx(default_run.sgd_mse[-1] / default_run.least_squares_mse - 1)


def test_least_squares_beats_or_ties_every_sgd_epoch(default_run):
    # Least squares is the exact minimiser of this MSE on these data; the slack only absorbs
    # float64 rounding of a mean of 1000 squares (about 1e-16 relative, allowed 1e-12).
    floor = default_run.least_squares_mse * (1 - 1e-12)
    assert all(mse >= floor for mse in default_run.sgd_mse)


def test_least_squares_is_the_minimum_found_another_way():
    features, targets, _, _ = make_data(LinregConfig(seed=1))
    fit = least_squares(features, targets)
    # The normal equations (A^T A) theta = A^T y, solved by NumPy: an independent route to the same optimum.
    design = np.hstack([features.numpy(), np.ones((len(features), 1))])
    theta = np.linalg.solve(design.T @ design, design.T @ targets.numpy())
    assert np.allclose(fit.weights.numpy(), theta[:-1], atol=1e-10) and fit.bias == pytest.approx(theta[-1], abs=1e-10)
    # Nudging any coefficient either way raises the MSE: the fit sits at the minimum.
    for index in range(len(theta)):
        for step in (-1e-3, 1e-3):
            weights, bias = fit.weights.clone(), fit.bias
            if index < len(weights):
                weights[index] += step
            else:
                bias += step
            assert mean_squared_error(features, targets, weights, bias) > fit.mse


def test_sgd_curve_falls_from_the_start(default_run):
    curve = default_run.sgd_mse
    assert curve[0] > 1  # random initial weights, true ones ~ N(0, 1): far from the data
    assert curve[-1] < curve[0] / 100
    assert all(later < earlier for earlier, later in pairwise(curve[:16]))  # the descent, before SGD's noise floor


def test_least_squares_recovers_the_generating_coefficients():
    # theta_hat - theta = (A^T A)^-1 A^T (noise * eps) ~ N(0, noise^2 (A^T A)^-1) for A = [X, 1], so
    # coefficient j has standard error noise * sqrt([(A^T A)^-1]_jj), about noise / sqrt(N) = 0.0032
    # here. A correct fit lands beyond 5 standard errors with probability 5.7e-7 per coefficient
    # (3e-5 over these 30); a dropped bias column or a misaligned weight is off by O(1).
    for seed in range(5):
        config = LinregConfig(seed=seed)
        features, targets, true_weights, true_bias = make_data(config)
        fit = least_squares(features, targets)
        design = torch.cat([features, torch.ones(len(features), 1, dtype=features.dtype)], dim=1)
        standard_errors = config.noise * torch.linalg.inv(design.T @ design).diagonal().sqrt()  # (P + 1,)
        assert standard_errors.max() < 0.004  # so that the bound below is tight: 5 SE < 0.02
        errors = (torch.cat([fit.weights, torch.tensor([fit.bias])]) -
                  torch.cat([true_weights, torch.tensor([true_bias], dtype=torch.float64)])).abs()
        assert (errors < 5 * standard_errors).all(), (seed, errors / standard_errors)
        # Residual MSE: N * mse / noise^2 ~ chi-squared with N - P - 1 degrees of freedom, so the ratio
        # below is 1 with standard deviation sqrt(2 / (N - P - 1)) = 0.045; allow 5 of them.
        dof = config.samples - config.features - 1
        assert abs(fit.mse / (config.noise ** 2 * dof / config.samples) - 1) < 5 * math.sqrt(2 / dof)


def test_seeds_change_the_data_and_repeat_it_exactly():
    first, again, other = (make_data(LinregConfig(seed=seed)) for seed in (3, 3, 4))
    for a, b, c in zip(first[:3], again[:3], other[:3]):  # X, y, true weights
        assert torch.equal(a, b) and not torch.allclose(a, c)
    assert first[3] == again[3] != other[3]


@pytest.mark.parametrize("settings, message", [
    ({"batch_size": 0}, "batch_size must be a whole number in [1, 100000000]; got 0"),
    ({"samples": 5}, "samples must be at least features + 1 = 6"),
    ({"features": 0}, "features must be a whole number in [1, 10000]; got 0"),
    ({"noise": -0.1}, "noise must be a number in [0, 1000000]; got -0.1"),
    ({"noise": float("nan")}, "noise must be a number in [0, 1000000]; got nan"),
    ({"lr": 0.0}, "lr must be a number in (0, 1000000]; got 0.0"),
    ({"epochs": 0}, "epochs must be a whole number in [1, 1000000]; got 0"),
    ({"samples": 10**12}, "samples must be a whole number in [2, 100000000]; got 1000000000000"),
    ({"seed": -1}, "seed must be a whole number in [0, 4294967295]; got -1"),
])
def test_config_rejects_bad_values_in_one_line(settings, message):
    with pytest.raises(MlplabError, match=re.escape(message)) as caught:
        LinregConfig(**settings)
    assert "\n" not in str(caught.value)


def test_divergence_is_an_error_not_a_curve_of_nans():
    with pytest.raises(MlplabError, match=r"SGD diverged: the MSE is (inf|nan) after epoch \d+; lower lr \(now 2\)"):
        run(LinregConfig(samples=100, lr=2.0, epochs=50))


def test_figure_has_titles_units_and_the_optimum(default_run):
    figure = loss_curve(default_run)
    curve_axis, coefficient_axis = figure.axes
    assert curve_axis.get_yscale() == "log"
    assert curve_axis.get_xlabel() == "epoch (0: before training)"
    assert curve_axis.get_ylabel() == "mean squared error (log scale)"
    dashed = [line for line in curve_axis.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and set(dashed[0].get_ydata()) == {default_run.least_squares_mse}
    assert list(curve_axis.get_lines()[0].get_ydata()) == default_run.sgd_mse
    legend = [text.get_text() for text in curve_axis.get_legend().get_texts()]
    assert any(text.startswith("least squares") for text in legend) and any(text.startswith("SGD") for text in legend)
    assert [label.get_text() for label in coefficient_axis.get_xticklabels()] == ["w0", "w1", "w2", "w3", "w4", "b"]
    assert coefficient_axis.get_ylabel() and coefficient_axis.get_xlabel()
    title = figure._suptitle.get_text()
    for part in ("N = 1000", "P = 5", "noise std 0.1", "batch 8", "lr 0.001"):
        assert part in title
    pyplot().close(figure)


def test_cli_writes_json_and_figures_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--samples", "200", "--features", "3", "--noise", "0.2", "--seed", "4", "--batch-size", "10",
             "--lr", "0.01", "--epochs", "20"]
    assert main(["experiment", "linreg", *flags, "--out", str(out), "--format", "png,svg"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "linear regression: 200 samples, 3 features, noise 0.2, seed 4"
    assert printed[2].startswith("SGD (batch 10, lr 0.01, 20 epochs)  MSE ")
    assert [line.split()[0] for line in printed[4:8]] == ["w0", "w1", "w2", "b"]
    assert printed[-1] == f"wrote {out / 'linreg.json'}, {out / 'linreg.png'}, {out / 'linreg.svg'}"

    data = json.loads((out / "linreg.json").read_text())
    config = LinregConfig(samples=200, features=3, noise=0.2, seed=4, batch_size=10, lr=0.01, epochs=20)
    assert set(data) == RESULT_FIELDS and data["config"] == dataclasses.asdict(config)
    assert len(data["sgd_mse"]) == 21 and len(data["true_weights"]) == len(data["sgd_weights"]) == 3
    again = run(config)  # one seed drives data, initialisation and shuffling: the run repeats exactly
    assert data["sgd_mse"] == again.sgd_mse
    # The LAPACK behind torch.linalg.lstsq may round the last bit differently from call to
    # call (its vector code depends on how the arrays happen to be aligned in memory).
    assert data["least_squares_weights"] == pytest.approx(again.least_squares_weights, rel=1e-12)

    pixels = pyplot().imread(out / "linreg.png")  # (height, width, RGBA) floats in [0, 1]
    assert pixels.shape[:2] == FIGURE_PIXELS
    assert (pixels[..., :3] < 0.9).any(axis=2).mean() > 0.02  # ink, not a blank canvas
    assert ElementTree.parse(out / "linreg.svg").getroot().tag.endswith("svg")


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "batch_size must be a whole number in [1, 100000000]; got 0"),
    (["--samples", "5"], "samples must be at least features + 1"),
    (["--samples", "100000000", "--features", "10000"], "use fewer --samples or --features"),
    (["--format", "jpg"], "--format takes png, svg or png,svg"),
    (["--lr", "fast"], "invalid float value"),
])
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(flags, message, tmp_path, capsys):
    out = tmp_path / "run"
    try:
        status = main(["experiment", "linreg", *flags, "--out", str(out)])
    except SystemExit as exit_:  # argparse's own errors (a flag that is not a number) exit from the parser
        status = exit_.code
    error = capsys.readouterr().err
    assert status == 2 and message in error and len(error.strip().splitlines()) == 1
    assert not out.exists()


def test_an_out_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    assert main(["experiment", "linreg", "--out", str(taken)]) == 2
    assert capsys.readouterr().err == f"mlplab: error: --out {taken} is a file, not a folder; choose another --out\n"
    assert taken.read_text() == "mine"
