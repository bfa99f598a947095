"""The 1986 symmetry experiment: the net's gradients, the paper's weights, the structure check, batching."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
import torch

from mlplab.cli.main import main
from mlplab.errors import MlplabError
from mlplab.experiments.symmetry import (PAPER, SymmetryConfig, Weights, cases, error, forward, gradients,
                                         initial_weights, solved, train)
from mlplab.experiments.symmetry_analysis import failure_kind, structure, summarize

KNOWN_SOLVER = 3  # seed 3 solves within the paper's 1,425 sweeps (at sweep 734) with the paper's settings


def test_the_task_has_64_cases_of_which_8_are_symmetric():
    x, d = cases()
    assert x.shape == (64, 6) and set(x.unique().tolist()) == {0.0, 1.0}
    assert len({tuple(row) for row in x.tolist()}) == 64
    assert int(d.sum()) == 8
    assert all(row == row[::-1] for row, target in zip(x.tolist(), d.tolist()) if target == 1)


@pytest.mark.parametrize("activation", ["logistic", "tanh"])
def test_gradients_of_the_6_2_1_net_equal_autograd(activation):
    x, d = cases()
    weights = initial_weights(SymmetryConfig(seeds=5, init_range=2.0))
    tensors = [t.clone().requires_grad_(True) for t in weights.tensors()]
    _, y = forward(Weights(*tensors), x, activation)
    error(y, d).sum().backward()  # seeds are independent: the sum's gradient is each seed's own
    _, E, grads = gradients(weights, x, d, activation)
    assert torch.allclose(E, error(y, d).detach(), rtol=1e-14)
    for got, want in zip(grads, tensors):
        assert ((got - want.grad).norm() / want.grad.norm()).item() <= 1e-12


def test_the_papers_figure_1_weights_classify_all_64_inputs():
    x, d = cases()
    _, y = forward(PAPER, x)
    assert solved(y, d, 0.5).item() and solved(y, d, 0.2).item()
    assert (y[0, d == 1] > 0.8).all() and (y[0, d == 0] < 0.2).all()
    assert error(y, d).item() < 0.5


def test_the_structure_check_accepts_the_papers_weights_and_rejects_others():
    found = structure(PAPER.W1)
    assert found.matches.tolist() == [True]
    assert torch.allclose(found.antisymmetry, torch.zeros_like(found.antisymmetry))
    assert torch.allclose(found.ratios, torch.tensor([2.0, 14.2 / 3.6], dtype=torch.float64).expand(1, 2, 2))
    random = (torch.rand(200, 2, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5) * 0.6
    assert not structure(random).matches.any()
    equal_sizes = torch.tensor([[[5.0, 5.0, 5.0, -5.0, -5.0, -5.0]] * 2], dtype=torch.float64)  # 1:1:1 cancels
    assert not structure(equal_sizes).matches.any()
    not_opposite = PAPER.W1.clone()
    not_opposite[0, 0, 5] *= -1  # the outer pair now has the same sign
    assert structure(not_opposite).matches.tolist() == [False]


def test_a_seed_known_to_solve_within_the_papers_budget_solves():
    training = train(SymmetryConfig(seeds=1, first_seed=KNOWN_SOLVER, long_sweeps=1425))
    assert 0 < training.solved_at.item() <= 1425 and 0 < training.strict_at.item() <= 1425
    x, d = cases()
    assert solved(forward(training.weights, x)[1], d).item()
    assert structure(training.weights.W1).matches.item()  # and it found the paper's solution
    assert training.errors[-1].item() < training.errors[0].item() / 10


def test_batched_training_gives_each_seed_what_it_gets_alone():
    config = SymmetryConfig(seeds=10, sweeps=300, long_sweeps=300)
    together = train(config)
    for seed in (KNOWN_SOLVER, 7):
        alone = train(replace(config, seeds=1, first_seed=seed))
        for mine, batched in zip(alone.weights.tensors(), together.weights.tensors()):
            assert torch.equal(mine[0], batched[seed])
        assert torch.equal(alone.errors[:, 0], together.errors[:, seed])


def test_sgd_is_the_papers_update_rule():
    """dw(t) = -eps dE/dw + alpha dw(t-1), written out here, for 30 sweeps."""
    config = SymmetryConfig(seeds=3, sweeps=30, long_sweeps=30)
    x, d = cases()
    weights = initial_weights(config)
    previous = [torch.zeros_like(t) for t in weights.tensors()]
    for _ in range(30):
        grads = gradients(weights, x, d)[2]
        for value, grad, change in zip(weights.tensors(), grads, previous):
            change.mul_(config.alpha).sub_(config.eps * grad)
            value.add_(change)
    trained = train(config).weights
    for want, got in zip(weights.tensors(), trained.tensors()):
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-14)


def test_summary_counts_solved_seeds_and_names_the_failures():
    training = train(SymmetryConfig(seeds=12, sweeps=1425, long_sweeps=3000))
    summary = summarize(training)
    solved_now = int((training.solved_at >= 0).sum())
    assert summary["within"]["long_budget"]["solved"] == pytest.approx(solved_now / 12)
    assert summary["structure"]["checked"] == solved_now == len(summary["sweeps_to_solve"])
    assert sum(summary["unsolved"]["kinds"].values()) == 12 - solved_now
    json.dumps(summary)  # plain data
    assert failure_kind(torch.zeros(64, dtype=torch.float64)) == (
        "answers 'not symmetric' for every input (the 8 symmetric ones wrong)")
    _, d = cases()
    assert failure_kind(d.clone()) == "0 of 8 symmetric and 0 of 56 asymmetric inputs wrong"


def test_bad_settings_are_one_line_errors(capsys):
    with pytest.raises(MlplabError, match="sweeps"):
        SymmetryConfig(sweeps=2000, long_sweeps=1000).check()
    assert main(["experiment", "symmetry", "--eps", "-1"]) == 2
    error_text = capsys.readouterr().err
    assert error_text == "mlplab: error: eps must be a number in (0, 1000]; got -1.0\n"


@pytest.mark.parametrize("flags, message", [
    (["--seeds", "100000000000"], "seeds must be a whole number in [1, 100000]; got 100000000000"),
    (["--seeds", "100000", "--long-sweeps", "1000000"], "needs about 400.7 GB of memory"),
])
def test_sizes_that_cannot_fit_are_refused_before_training(flags, message, capsys):
    assert main(["experiment", "symmetry", *flags]) == 2
    error_text = capsys.readouterr().err
    assert message in error_text and len(error_text.strip().splitlines()) == 1


def test_a_report_folder_that_is_a_file_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import mlplab.experiments.symmetry as symmetry
    import mlplab.experiments.symmetry_report as report  # imported first: it binds `train` as it loads

    for module in (symmetry, report):
        monkeypatch.setattr(module, "train", lambda *a, **k: pytest.fail("trained before checking --report"))
    taken = tmp_path / "report.txt"
    taken.write_text("mine")
    assert main(["experiment", "symmetry", "--report", str(taken)]) == 2
    assert capsys.readouterr().err == (f"mlplab: error: --report {taken} is a file, not a folder; "
                                       "choose another --report\n")
    assert taken.read_text() == "mine"


def test_the_command_writes_the_report(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["experiment", "symmetry", "--seeds", "6", "--long-sweeps", "1500", "--report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "base configuration: 6 seeds" in printed and "smaller steps (eps 0.05)" in printed
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 8 and results["base configuration"]["seeds"] == 6
    markdown, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    for name in ("weights", "sweeps", "errors", "workarounds"):
        assert f"symmetry_{name}.png" in markdown and (out / f"symmetry_{name}.png").stat().st_size > 10_000
    assert "## Results against the paper" in markdown and "## Workarounds" in markdown
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 4
    solved_share = results["base configuration"]["within"]["paper_budget"]["solved"]
    assert f"{100 * solved_share:.0f}% of seeds" in markdown
