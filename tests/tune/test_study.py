"""mlplab.tune: the search space and its errors, the default space, a trial's config, the places
of a study, pruning (a bad trial stops after one epoch), best.toml, and a worker that does not
match its study. What a study keeps in its storage (a study started again, settings, a dead
worker's trial, Ctrl-C) is tested on each storage of one machine: the SQLite file and the
journal file (``--storage journal``). The multi-process tests (workers sharing a study, a killed
worker, PostgreSQL) are in tests/cli/test_tune_cmd.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlplab.choices import PRUNERS
from mlplab.config import Config, apply_overrides, load_config
from mlplab.errors import MlplabError
from mlplab.tune.objective import SURPLUS, SurplusTrial, claim_place, trial_config, trial_dir
from mlplab.tune.space import DEFAULT_SPACE, default_space, parse_space

optuna = pytest.importorskip("optuna", reason='the tune extra is not installed: pip install -e ".[dev]"')

from tune_helpers import STORAGES, plain_storage  # noqa: E402

TINY = dict(hidden="16", epochs=3, batch_size=512, val_size=50_000, device="cpu", threads=1, progress=False,
            download=False)  # 10,000 training images: an epoch takes a fraction of a second


# --- the space ------------------------------------------------------------------------------

def test_a_space_file_reads_every_kind_of_table():
    space = parse_space("""
        [lr]
        low = 1e-3
        high = 0.3
        log = true
        [hidden]
        choices = ["16,32,24", [64, 64], "none"]
        [epochs]
        low = 2
        high = 8
        step = 2
        [optimizer]
        choices = ["sgd", "adam"]
        [nesterov]
        choices = [true, false]
        [dropout]
        low = 0
        high = 0.5
    """)
    by_name = {dimension.name: dimension for dimension in space.dimensions}
    assert space.names == ("lr", "hidden", "epochs", "optimizer", "nesterov", "dropout")
    assert by_name["lr"].log and not by_name["lr"].whole and by_name["lr"].low == 0.001
    assert by_name["hidden"].choices == ("16,32,24", "64,64", "none")  # lists and strings alike
    assert by_name["epochs"].whole and by_name["epochs"].step == 2
    assert by_name["nesterov"].choices == (True, False)
    assert parse_space(space.to_toml()) == space


@pytest.mark.parametrize("text, message", [
    ("[lr\nlow = 1", "is not valid TOML"),
    ("", "has no settings"),
    ("lr = 0.1", "lr must be a table like [lr]"),
    ("[lrr]\nlow = 0.1\nhigh = 1", "unknown setting [lrr] (did you mean [lr]?)"),
    ("[out]\nchoices = ['a']", "[out] cannot be tuned: each trial gets its own run directory"),
    ("[seed]\nlow = 0\nhigh = 9", "[seed] cannot be tuned: the best seed is luck"),
    ("[val_size]\nlow = 1\nhigh = 9", "[val_size] cannot be tuned: it picks the data"),
    ("[lr]\nlo = 0.1\nhigh = 1", "[lr] has unknown key 'lo'; a table takes low, high, log, step, choices"),
    ("[lr]\nlow = 0.1", "[lr] needs low and high (or choices = [...])"),
    ("[lr]\nlow = 0.5\nhigh = 0.1", "[lr] low must be below high; got low = 0.5, high = 0.1"),
    ("[lr]\nlow = 0\nhigh = 0.1", "[lr] low: lr must be a number in (0, 1000000]; got 0.0"),
    ("[lr]\nlow = 'a'\nhigh = 0.1", "[lr] low must be a number; got 'a'"),
    ("[weight_decay]\nlow = 0\nhigh = 0.1\nlog = true", "[weight_decay] log = true needs low > 0; got low = 0.0"),
    ("[lr]\nlow = 0.1\nhigh = 1\nlog = 1", "[lr] log must be true or false; got 1"),
    ("[lr]\nlow = 0.1\nhigh = 1\nlog = true\nstep = 0.1", "[lr] takes log or step, not both"),
    ("[lr]\nlow = 0.1\nhigh = 0.2\nstep = 0.5", "[lr] step must be above 0 and at most high - low; got 0.5"),
    ("[batch_size]\nlow = 8.5\nhigh = 64", "[batch_size] low must be a whole number; got 8.5"),
    ("[batch_size]\nlow = 0\nhigh = 64", "[batch_size] low: batch_size must be a whole number in [1, 1000000]; got 0"),
    ("[batch_size]\nchoices = []", "[batch_size] choices must be a non-empty list"),
    ("[batch_size]\nchoices = [64, 64]", "[batch_size] lists the choice 64 twice"),
    ("[batch_size]\nchoices = [64]\nlow = 1", "[batch_size] gives both choices and low"),
    ("[optimizer]\nchoices = ['sgd', 'lion']", "[optimizer] a choice: optimizer must be one of: sgd, adam"),
    ("[optimizer]\nlow = 1\nhigh = 2", "[optimizer] takes choices = [...], not low and high"),
    ("[hidden]\nlow = 1\nhigh = 2", "[hidden] takes choices = [...], not low and high"),
    ("[hidden]\nchoices = ['16,,32']", "[hidden] a choice: hidden has an empty entry"),
    ("[depth]\nlow = 1\nhigh = 3", "[depth] needs [width] too"),
    ("[width]\nlow = 1\nhigh = 3", "[width] needs [depth] too"),
    ("[depth]\nlow = 1\nhigh = 2\n[width]\nlow = 0\nhigh = 8", "[width] low must be a whole number in [1, 1000000]; got 0"),
    ("[depth]\nlow = 1\nhigh = 2\n[width]\nlow = 8\nhigh = 9\n[hidden]\nchoices = ['8']",
     "[hidden] and [depth]/[width] both set the hidden layers; keep one of them"),
])
def test_a_bad_space_is_one_line_naming_the_file_and_the_table(text, message):
    with pytest.raises(MlplabError) as error:
        parse_space(text, "space.toml")
    line = str(error.value)
    assert line.startswith("search space space.toml") and message in line and "\n" not in line


def test_a_missing_space_file_is_one_line(tmp_path):
    from mlplab.tune.space import load_space

    with pytest.raises(MlplabError, match="search space file .*nope.toml does not exist"):
        load_space(tmp_path / "nope.toml")


def test_the_default_space_samples_lr_depth_width_weight_decay_and_batch_size():
    space = default_space()
    assert space.names == ("lr", "depth", "width", "weight_decay", "batch_size")
    assert "[lr]" in DEFAULT_SPACE and tomllib.loads(DEFAULT_SPACE)  # the text --print-space starts from
    params = space.sample(optuna.trial.FixedTrial(
        {"lr": 0.01, "depth": 2, "width": 64, "weight_decay": 1e-4, "batch_size": 128}))
    config = trial_config(Config(), space, params, "runs/x")
    assert config.model.hidden == (64, 64) and config.optim.lr == 0.01 and config.optim.weight_decay == 1e-4
    assert config.train.batch_size == 128 and config.train.out == "runs/x"
    assert trial_config(Config(), space, {**params, "depth": 0}, None).model.hidden == ()  # logistic regression


def test_every_pruner_is_built():
    from mlplab.tune.study import build_pruner

    built = {name: build_pruner(name, epochs=4) for name in PRUNERS}
    assert isinstance(built["median"], optuna.pruners.MedianPruner)
    assert isinstance(built["hyperband"], optuna.pruners.HyperbandPruner)


# --- places: no study overshoots its trials -------------------------------------------------

def _fake_trial(number, others):
    """A trial numbered ``number`` in a study whose trials have the states ``others`` (by number)."""
    attrs = {}
    trials = [SimpleNamespace(number=n, state=getattr(optuna.trial.TrialState, state)) for n, state in others.items()]
    study = SimpleNamespace(get_trials=lambda deepcopy=False: trials)
    return SimpleNamespace(number=number, study=study, set_user_attr=attrs.__setitem__, attrs=attrs)


def test_a_trial_counts_finished_trials_and_those_numbered_before_it():
    states = {0: "COMPLETE", 1: "PRUNED", 2: "FAIL", 3: "RUNNING", 4: "RUNNING", 5: "RUNNING", 6: "WAITING"}
    claim_place(_fake_trial(4, states), budget=4)  # 0, 1 and 3 hold places; 2 failed; 5 and 6 come after it
    later = _fake_trial(5, states)
    with pytest.raises(SurplusTrial):
        claim_place(later, budget=4)  # 0, 1, 3 and 4: every place is taken
    assert later.attrs == {SURPLUS: True}
    with pytest.raises(SurplusTrial):
        claim_place(_fake_trial(7, {**states, 7: "RUNNING"}), budget=5)  # the queued trial 6 holds the fifth


# --- a study in one process: pruning, best.toml, settings -------------------------------------

def _storage(kind):
    """The --storage value of a study of ``kind``: None (the default SQLite file) or journal (STUDY_DIR/study.log)."""
    return "journal" if kind == "journal" else None


@pytest.fixture(scope="module", params=STORAGES)
def pruned_study(request, tmp_path_factory, mnist_dir):
    """Trial 0 (lr 0.2) runs 3 epochs; trial 1 (lr 1e-6, about chance) is pruned by the median pruner."""
    from mlplab.tune.study import TuneConfig, tune

    folder = tmp_path_factory.mktemp(f"study-{request.param}")
    settings = TuneConfig(study="prune", trials=2, out=str(folder), heartbeat=1, storage=_storage(request.param))
    queued = optuna.create_study(storage=plain_storage(settings.storage_url), study_name="prune", direction="maximize")
    queued.enqueue_trial({"lr": 0.2})
    queued.enqueue_trial({"lr": 1e-6})
    base = apply_overrides(Config(), {**TINY, "data_dir": str(mnist_dir), "optimizer": "sgd", "scheduler": "none"})
    space = parse_space("[lr]\nlow = 1e-6\nhigh = 0.5\nlog = true")
    lines = []
    result = tune(base, settings, space=space, pruner=optuna.pruners.MedianPruner(n_startup_trials=1), say=lines.append)
    return SimpleNamespace(settings=settings, base=base, space=space, result=result, lines=lines, folder=folder)


def test_pruning_stops_a_bad_trial_after_its_first_epoch(pruned_study):
    good, bad = pruned_study.result.study.get_trials()
    assert good.state.name == "COMPLETE" and sorted(good.intermediate_values) == [1, 2, 3]
    assert bad.state.name == "PRUNED" and sorted(bad.intermediate_values) == [1]
    assert bad.intermediate_values[1] < good.intermediate_values[1]
    epochs = json.loads((trial_dir(pruned_study.folder, 1) / "history.json").read_text())
    assert len(epochs["epochs"] if isinstance(epochs, dict) else epochs) == 1  # training stopped, not just the score
    assert (pruned_study.result.complete, pruned_study.result.pruned) == (1, 1)
    assert any(line.startswith("trial 1 pruned after epoch 1: val accuracy ") for line in pruned_study.lines)


def test_a_trial_scores_its_best_epoch(pruned_study):
    good = pruned_study.result.study.trials[0]
    assert good.value == max(good.intermediate_values.values())
    assert good.value == good.intermediate_values[good.user_attrs["best_epoch"]]
    assert pruned_study.result.best_trial == 0 and pruned_study.result.best_value == good.value


def test_best_toml_is_the_best_trials_config_and_reloads(pruned_study):
    best_path = pruned_study.folder / "best.toml"
    assert pruned_study.result.best_path == best_path
    trial_config_file = trial_dir(pruned_study.folder, 0) / "config.toml"
    ran = load_config(trial_config_file)  # what the trial trained, as its run directory says
    assert ran.optim.lr == 0.2
    # best.toml is that config, writing a new run directory, with the base config's progress bar
    assert load_config(best_path) == apply_overrides(ran, {"out": None, "progress": pruned_study.base.train.progress})
    assert load_config(best_path) == pruned_study.result.best_config


def test_a_finished_study_started_again_runs_nothing(pruned_study):
    from mlplab.tune.study import tune

    best_path = pruned_study.folder / "best.toml"
    before = best_path.stat()
    again = tune(pruned_study.base, pruned_study.settings, space=pruned_study.space)
    assert len(again.study.trials) == 2 and again.best_trial == 0
    after = best_path.stat()  # best.toml already says trial 0: not written again (a new file, atomically)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_worker_with_other_settings_is_refused(pruned_study):
    from mlplab.tune.study import tune

    other = apply_overrides(pruned_study.base, {"epochs": 2, "data_dir": "/elsewhere", "threads": 2})
    with pytest.raises(MlplabError, match=r"study prune was started with other settings \(epochs 3 there, 2 here\); "
                                          "start every worker with the same training flags"):
        tune(other, pruned_study.settings, space=pruned_study.space)
    with pytest.raises(MlplabError, match=r"other settings \(the search space\)"):
        tune(pruned_study.base, pruned_study.settings, space=parse_space("[lr]\nlow = 0.1\nhigh = 0.2"))


@pytest.mark.parametrize("kind", STORAGES)
def test_a_study_not_made_by_mlplab_is_refused(tmp_path, kind):
    from mlplab.tune.study import TuneConfig, tune

    settings = TuneConfig(study="theirs", trials=1, out=str(tmp_path), storage=_storage(kind))
    other = optuna.create_study(storage=plain_storage(settings.storage_url), study_name="theirs")
    other.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(MlplabError, match=f"study theirs in {re.escape(settings.storage_url)} was not made by "
                                          "mlplab tune; choose another"):
        tune(Config(), settings)


def test_a_diverging_trial_is_pruned(tmp_path, mnist_dir):
    from mlplab.tune.study import TuneConfig, tune

    base = apply_overrides(Config(), {**TINY, "epochs": 1, "data_dir": str(mnist_dir), "scheduler": "none"})
    result = tune(base, TuneConfig(study="diverge", trials=1, out=str(tmp_path)),
                  space=parse_space("[lr]\nchoices = [1e6]"))
    (trial,) = result.study.trials
    assert trial.state.name == "PRUNED" and trial.user_attrs["diverged"] == 1
    assert result.best_trial is None and not (tmp_path / "best.toml").exists()


def test_a_sampler_seed_draws_the_same_study_again_and_another_seed_another(tmp_path, mnist_dir):
    from mlplab.tune.study import TuneConfig, tune

    base = apply_overrides(Config(), {**TINY, "epochs": 1, "data_dir": str(mnist_dir)})
    space = parse_space("[lr]\nlow = 1e-3\nhigh = 0.3\nlog = true\n[batch_size]\nchoices = [128, 256, 512]")

    def drawn(name, seed):
        settings = TuneConfig(study=name, trials=3, out=str(tmp_path / name), sampler_seed=seed)
        return [trial.params for trial in tune(base, settings, space=space).study.trials]

    first = drawn("a", 7)
    assert drawn("b", 7) == first and drawn("c", 8) != first


def test_a_trial_another_worker_took_for_dead_does_not_end_this_worker(tmp_path, mnist_dir, monkeypatch):
    from optuna.trial import TrialState

    from mlplab.tune.objective import PruningReporter
    from mlplab.tune.study import TuneConfig, tune

    report = PruningReporter.on_epoch_end
    failed = []

    def failed_elsewhere(self, state, record):  # as a worker that saw this trial's heartbeat go stale does
        if not failed:
            failed.append(self.trial.number)
            self.trial.study._storage.set_trial_state_values(self.trial._trial_id, TrialState.FAIL)
        report(self, state, record)

    monkeypatch.setattr(PruningReporter, "on_epoch_end", failed_elsewhere)
    said = []
    base = apply_overrides(Config(), {**TINY, "epochs": 1, "data_dir": str(mnist_dir)})
    result = tune(base, TuneConfig(study="taken", trials=2, out=str(tmp_path)), say=said.append)
    states = [trial.state.name for trial in result.study.trials]
    assert failed == [0] and states == ["FAIL", "COMPLETE", "COMPLETE"]
    assert any("failed by another worker" in line for line in said)


@pytest.mark.parametrize("field, value, message", [
    ("study", "a b", "--study must be a name of letters"),
    ("trials", 0, "--trials must be a whole number >= 1; got 0"),
    ("heartbeat", 0, "--heartbeat must be a whole number of seconds >= 1"),
    ("pruner", "asha", "unknown pruner 'asha'; choose one of: median, hyperband"),
    ("sampler_seed", -1, r"--sampler-seed must be a whole number in \[0, 2\*\*32 - 1\]; got -1"),
    ("sampler_seed", 2**32, r"--sampler-seed must be a whole number in \[0, 2\*\*32 - 1\]"),
    ("storage", "study.db", ("--storage takes a database URL like sqlite:///study.db, a journal file path ending "
                             r"in \.log \(or journal: STUDY_DIR/study\.log\), or postgresql://")),
])
def test_bad_study_settings_are_one_line(tmp_path, field, value, message):
    from mlplab.tune.study import TuneConfig, tune

    settings = TuneConfig(**{"study": "s", "trials": 1, "out": str(tmp_path), field: value})
    with pytest.raises(MlplabError, match=message):
        tune(Config(), settings)


def test_no_validation_split_is_refused(tmp_path):
    from mlplab.tune.study import TuneConfig, tune

    with pytest.raises(MlplabError, match="compares trials on their validation accuracy: set --val-split"):
        tune(apply_overrides(Config(), {"val_split": "none"}), TuneConfig(study="s", trials=1, out=str(tmp_path)))


# --- the extra ------------------------------------------------------------------------------

def test_a_missing_optuna_is_one_line_naming_the_extra(monkeypatch):
    from mlplab.tune.storage import require_optuna

    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    with pytest.raises(MlplabError, match=r'^mlplab tune needs Optuna: pip install "mlplab\[tune\]"$'):
        require_optuna()


def test_mlplab_and_its_command_line_start_without_optuna():
    code = ("import sys, mlplab, mlplab.tune, mlplab.cli.main; mlplab.cli.main.build_parser(); "
            "mlplab.tune.default_space(); sys.exit(2 * ('optuna' in sys.modules) + ('torch' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], env=_env()).returncode == 0


def _env():
    import os

    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}


# --- waiting for other workers ----------------------------------------------------------------

@pytest.mark.parametrize("kind", STORAGES)
def test_a_worker_waits_for_the_last_places_and_takes_over_a_dead_workers_trial(tmp_path, mnist_dir, kind):
    """Trial 0 was taken by a worker that died before it trained (so it has no heartbeat that could
    age): the study's one place is held, this worker waits, then fails it and runs its own."""
    from mlplab.tune.study import SETTINGS_KEY, TuneConfig, build_pruner, recorded_settings, tune

    settings = TuneConfig(study="dead", trials=1, out=str(tmp_path), heartbeat=1, storage=_storage(kind))
    base = apply_overrides(Config(), {**TINY, "epochs": 1, "data_dir": str(mnist_dir)})
    space = parse_space("[lr]\nchoices = [0.1]")
    other = optuna.create_study(storage=plain_storage(settings.storage_url), study_name="dead", direction="maximize")
    other.set_user_attr(SETTINGS_KEY, recorded_settings(apply_overrides(base, {"out": None}), space,
                                                        type(build_pruner("median", 1)).__name__, 1))
    other.ask()  # trial 0: RUNNING, and nobody will ever run it
    lines = []
    result = tune(base, settings, space=space, say=lines.append)
    dead, ran = result.study.get_trials()
    assert dead.state.name == "FAIL" and ran.state.name == "COMPLETE" and result.complete == 1
    assert lines[1] == "waiting for 1 trial running in other workers (this worker takes over any whose worker stops)"


def test_optunas_lines_about_a_surplus_or_interrupted_trial_are_dropped():
    import logging

    from mlplab.tune.study import QuietFailures

    quiet = QuietFailures()

    def passes(message):
        return quiet.filter(logging.LogRecord("optuna", logging.WARNING, "", 0, message, (), None))

    assert not passes("Trial 6 failed with parameters: {} because of the following error: "
                      "SurplusTrial('all 5 trials of the study are taken').")
    assert not passes("Trial 6 failed with value None.")
    assert not passes("Trial 8 failed with parameters: {'lr': 0.1} because of the following error: KeyboardInterrupt().")
    assert passes("Trial 7 failed with parameters: {} because of the following error: ValueError('x').")
    assert passes("Trial 7 failed with value None.") and passes("Trial 6 pruned.")


@pytest.mark.parametrize("kind", STORAGES)
def test_ctrl_c_queues_the_interrupted_trials_settings_again(tmp_path, mnist_dir, monkeypatch, kind):
    import mlplab.training.runner
    from mlplab.tune.study import TuneConfig, tune

    settings = TuneConfig(study="stopped", trials=1, out=str(tmp_path), storage=_storage(kind))
    base = apply_overrides(Config(), {**TINY, "epochs": 1, "data_dir": str(mnist_dir)})
    space = parse_space("[lr]\nlow = 0.01\nhigh = 0.5\nlog = true")
    train = mlplab.training.runner.train

    def interrupted(config, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(mlplab.training.runner, "train", interrupted)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        tune(base, settings, space=space, say=lines.append)
    assert lines[-1] == "trial 0 interrupted: its settings are queued to run again"
    monkeypatch.setattr(mlplab.training.runner, "train", train)
    result = tune(base, settings, space=space)  # started again: the queued settings run first
    stopped, again = result.study.get_trials()
    assert stopped.state.name == "FAIL" and again.state.name == "COMPLETE" and again.params == stopped.params
    assert again.system_attrs["failed_trial"] == 0
