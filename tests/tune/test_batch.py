"""mlplab tune --batch: trials that share a vectorised program train together (mlplab.tune.batch).

A batch-4 study over a same-shape space finishes exactly its trials, each with a run directory
`open_run` and `mlplab eval` read, its score what its history says and what its own single run
gives; a pruner halts members after an epoch; a space of several shapes trains several programs,
and a config the vectorised trainer refuses trains alone; two worker processes with --batch
share a study, and one killed in the middle of a batch loses none of its trials, on the SQLite
file and on a journal file alike. Tiny trials: 784-16-10 on 10,000 images, one thread.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from types import SimpleNamespace

import pytest

from mlplab.cli.main import main
from mlplab.config import Config, apply_overrides
from mlplab.errors import MlplabError
from mlplab.runs.reader import open_run
from mlplab.tune.objective import trial_dir
from mlplab.tune.space import parse_space

optuna = pytest.importorskip("optuna", reason='the tune extra is not installed: pip install -e ".[dev]"')

from tune_helpers import (STORAGES, check_study, finish, start_worker, storage_flag, storage_url,  # noqa: E402
                          trials_of, tune_args)

TINY = dict(hidden="16", epochs=2, batch_size=512, val_size=50_000, device="cpu", threads=1, progress=False,
            download=False, optimizer="sgd", scheduler="none")
SAME_SHAPE = """\
[lr]
low = 0.01
high = 0.5
log = true

[momentum]
low = 0.0
high = 0.9

[weight_decay]
low = 1e-6
high = 1e-3
log = true
"""


def _tune(folder, base, space, trials, *, batch=4, pruner=None, queued=(), study="batch"):
    """One worker of a fresh study in ``folder``, ``queued`` settings first; its result and lines."""
    from mlplab.tune.study import TuneConfig, tune

    settings = TuneConfig(study=study, trials=trials, out=str(folder), heartbeat=1, batch=batch)
    if queued:
        made = optuna.create_study(storage=settings.storage_url, study_name=study, direction="maximize")
        for params in queued:
            made.enqueue_trial(params)
    lines = []
    result = tune(base, settings, space=parse_space(space), pruner=pruner, say=lines.append)
    return SimpleNamespace(result=result, lines=lines, trials=result.study.get_trials(), folder=folder)


@pytest.fixture(scope="module")
def batch_study(tmp_path_factory, mnist_dir):
    """6 trials of one shape, 4 at a time: a batch of 4, then one of 2."""
    base = apply_overrides(Config(), {**TINY, "data_dir": str(mnist_dir)})
    study = _tune(tmp_path_factory.mktemp("batch"), base, SAME_SHAPE, trials=6,
                  pruner=optuna.pruners.NopPruner())
    study.base = base
    return study


def test_a_batch_study_finishes_exactly_its_trials_trained_together(batch_study):
    states = Counter(trial.state.name for trial in batch_study.trials)
    assert states == {"COMPLETE": 6} and batch_study.result.complete == 6
    together = [line for line in batch_study.lines if " train together, vectorised: " in line]
    assert together == ["trials 0, 1, 2, 3 train together, vectorised: mnist 784-16-10 relu, cross_entropy, sgd, "
                        "batch 512, 2 epochs",
                        "trials 4, 5 train together, vectorised: mnist 784-16-10 relu, cross_entropy, sgd, "
                        "batch 512, 2 epochs"]
    assert sum(line.startswith("trial ") and " complete: " in line for line in batch_study.lines) == 6
    assert (batch_study.folder / "best.toml").exists()


def test_each_trial_has_a_run_directory_that_says_what_its_trial_says(batch_study):
    for trial in batch_study.trials:
        run = open_run(trial_dir(batch_study.folder, trial.number))
        accuracies = run.history.column("val_accuracy")
        assert trial.user_attrs["run_dir"] == str(run.path.resolve())
        assert {epoch: value for epoch, value in enumerate(accuracies, start=1)} == trial.intermediate_values
        assert trial.value == max(accuracies) == accuracies[trial.user_attrs["best_epoch"] - 1]
        assert run.finished and run.best["epoch"] == trial.user_attrs["best_epoch"]
        assert run.config.optim.lr == trial.params["lr"] and run.config.optim.momentum == trial.params["momentum"]
        assert json.loads((run.path / "metrics.json").read_text()) == run.metrics
        assert sum(weights.numel() for weights in run.model().parameters()) == 784 * 16 + 16 + 16 * 10 + 10


def test_a_trials_run_directory_evaluates_to_its_metrics(batch_study, capsys):
    run_dir = trial_dir(batch_study.folder, 1)
    assert main(["eval", str(run_dir), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == open_run(run_dir).metrics["test_accuracy"]
    assert evaluated["checkpoint"].endswith("best.pt")


def test_a_trials_run_directory_cannot_be_resumed(batch_study):
    from mlplab.training.runner import train

    run_dir = trial_dir(batch_study.folder, 0)
    config = apply_overrides(open_run(run_dir).config, {"epochs": 3})
    with pytest.raises(MlplabError, match="cannot be resumed: it was trained outside mlplab train"):
        train(config, resume=True)


def test_a_batched_trial_scores_what_its_own_run_scores(batch_study, tmp_path):
    from mlplab.training.runner import train

    trial = batch_study.trials[2]
    config = apply_overrides(open_run(trial_dir(batch_study.folder, 2)).config,
                             {"out": str(tmp_path / "alone"), "engine": "manual"})
    history = train(config)
    assert history.column("val_accuracy") == [trial.intermediate_values[epoch] for epoch in (1, 2)]


class OddTrialsPruner(optuna.pruners.BasePruner):
    """Prunes every odd-numbered trial at its first report: deterministic, whatever the scores."""

    def prune(self, study, trial):
        return trial.number % 2 == 1


def test_the_pruner_halts_members_after_an_epoch(tmp_path, mnist_dir):
    base = apply_overrides(Config(), {**TINY, "epochs": 3, "data_dir": str(mnist_dir)})
    study = _tune(tmp_path, base, SAME_SHAPE, trials=4, pruner=OddTrialsPruner())
    for trial in study.trials:
        run = open_run(trial_dir(tmp_path, trial.number))
        if trial.number % 2:
            assert trial.state.name == "PRUNED" and sorted(trial.intermediate_values) == [1]
            assert len(run.history) == 1 and run.finished  # stopped training, tested with its best weights
            assert any(line.startswith(f"trial {trial.number} pruned after epoch 1: ") for line in study.lines)
        else:
            assert trial.state.name == "COMPLETE" and sorted(trial.intermediate_values) == [1, 2, 3]
            assert len(run.history) == 3
    assert (study.result.complete, study.result.pruned) == (2, 2)


def test_several_shapes_train_as_several_programs_and_a_refused_config_trains_alone(tmp_path, mnist_dir):
    base = apply_overrides(Config(), {**TINY, "data_dir": str(mnist_dir)})
    space = '[lr]\nlow = 0.01\nhigh = 0.5\n[hidden]\nchoices = ["16", "8,8"]\n[dropout]\nchoices = [0.0, 0.2]\n'
    queued = [{"lr": 0.1, "hidden": "16", "dropout": 0.0}, {"lr": 0.1, "hidden": "8,8", "dropout": 0.0},
              {"lr": 0.1, "hidden": "16", "dropout": 0.2}, {"lr": 0.2, "hidden": "16", "dropout": 0.0}]
    study = _tune(tmp_path, base, space, trials=4, queued=queued, pruner=optuna.pruners.NopPruner())
    assert [trial.state.name for trial in study.trials] == ["COMPLETE"] * 4
    assert "trials 0, 3 train together, vectorised: mnist 784-16-10 relu, cross_entropy, sgd, batch 512, 2 epochs" \
        in study.lines
    assert "trial 1 trains vectorised: mnist 784-8-8-10 relu, cross_entropy, sgd, batch 512, 2 epochs" in study.lines
    assert "trial 2 trains alone: the vectorised trainer does not implement dropout; set --dropout 0" in study.lines
    alone = open_run(trial_dir(tmp_path, 2))
    assert alone.checkpoint("last")["optimizer"] is not None  # a run of mlplab train, resumable
    for trial in study.trials:
        assert trial.value == max(open_run(trial_dir(tmp_path, trial.number)).history.column("val_accuracy"))


def test_a_diverging_member_is_pruned(tmp_path, mnist_dir):
    base = apply_overrides(Config(), {**TINY, "epochs": 1, "data_dir": str(mnist_dir)})
    study = _tune(tmp_path, base, "[lr]\nchoices = [1e6, 0.1]", trials=2,
                  queued=[{"lr": 1e6}, {"lr": 0.1}], pruner=optuna.pruners.NopPruner())
    diverged, fine = study.trials
    assert diverged.state.name == "PRUNED" and diverged.user_attrs["diverged"] == 1
    assert fine.state.name == "COMPLETE" and study.result.best_trial == 1


def test_a_bad_batch_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["tune", "--study", "s", "--trials", "1", "--batch", "0", "--out", str(tmp_path)])
    assert exit.value.code == 2
    assert capsys.readouterr().err.strip() == ("mlplab tune: error: argument --batch: must be a whole number in [1, 1024]; "
                                               "got 0 (see `mlplab tune --help`)")


# --- worker processes --------------------------------------------------------------------------

def _batch_args(study, trials, folder, mnist_dir, kind):
    (folder / "space.toml").write_text(SAME_SHAPE)
    return [*tune_args(study, trials, folder, mnist_dir, storage=storage_flag(kind, folder)), "--batch", "3"]


@pytest.mark.parametrize("kind", STORAGES)
def test_two_batch_workers_share_a_study(tmp_path, mnist_dir, kind):
    args = _batch_args("pair", 7, tmp_path, mnist_dir, kind)
    workers = [start_worker(args, tmp_path) for _ in range(2)]
    outputs = [finish(worker) for worker in workers]
    trials = trials_of("pair", storage_url(kind, tmp_path))
    check_study(trials, 7)
    for output in outputs:
        assert "study pair done: 7 trials finished" in output


@pytest.mark.parametrize("kind", STORAGES)
def test_a_worker_killed_in_a_batch_loses_none_of_its_trials(tmp_path, mnist_dir, kind):
    args = [*_batch_args("killed", 5, tmp_path, mnist_dir, kind), "--epochs", "4"]
    victim = start_worker(args, tmp_path)
    started, line = [], victim.stdout.readline()
    while " train together, " not in line:  # its first batch is under way: kill it there
        assert line, victim.communicate()[1]
        if " started: " in line:
            started.append(int(line.split()[1]))
        line = victim.stdout.readline()
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL
    assert started == [0, 1, 2]
    again = start_worker(args, tmp_path)  # the same command, started again
    finish(again)
    check_study(trials_of("killed", storage_url(kind, tmp_path)), 5, killed=set(started))
