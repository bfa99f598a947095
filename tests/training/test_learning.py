"""Learning tests: mlplab's default recipe and each lab preset, trained on the real MNIST
copy for their epochs, reach a stated test accuracy. The thresholds sit about a point under
what they reach here (default 98.3%, lab 94.6%, twolayer 95.7%, tutorial 97.1%, seq 96.7%,
logistic 91.4%). The `best` preset trains for 13 minutes or more: its test is a soak (``--soak``)."""

import json

import pytest

from mlplab.training import train

THRESHOLDS = {"lab": 0.93, "twolayer": 0.94, "tutorial": 0.96, "seq": 0.95, "logistic": 0.90,
              "fast": 0.975,  # fast reaches 98.2% here; the issue asks its test to hold 97.5% on a slow machine
              "fast99": 0.985,  # 99.2% here in 8 epochs (about a minute on one thread)
              "digits": 0.98}  # 98.6% here: distorted as people's digits are, it loses little on clean MNIST


@pytest.mark.learning
def test_the_default_recipe_reaches_97_percent(make_config):
    """`mlplab train` with no flags: a first run worth having (784-512-10, Nesterov SGD, one-cycle)."""
    config = make_config()
    assert config.model.hidden == (512,) and config.optim.scheduler == "onecycle" and config.preset is None
    history = train(config)
    metrics = json.loads((history.run_dir / "metrics.json").read_text())
    assert len(history) == config.train.epochs == 4
    assert metrics["test_accuracy"] >= 0.97, f"default recipe: {metrics['test_accuracy']:.4f}"


@pytest.mark.learning
@pytest.mark.parametrize("preset", sorted(THRESHOLDS))
def test_preset_reaches_its_accuracy(make_config, preset):
    config = make_config(preset)
    history = train(config)
    metrics = json.loads((history.run_dir / "metrics.json").read_text())
    assert len(history) == config.train.epochs
    assert metrics["test_accuracy"] >= THRESHOLDS[preset], f"{preset}: {metrics['test_accuracy']:.4f}"
    # Learning, not luck: validation accuracy after the last epoch beats the first epoch's.
    assert history[-1]["val_accuracy"] >= history[0]["val_accuracy"]


@pytest.mark.learning
def test_quadratic_and_ccql_losses_learn(make_config):
    for loss in ("quadratic", "ccql"):
        config = make_config("lab", loss=loss, output="logits", epochs=2, lr=0.05, momentum=0.9,
                             out=str(make_config().train.out) + f"-{loss}")
        metrics = json.loads((train(config).run_dir / "metrics.json").read_text())
        assert metrics["test_accuracy"] >= 0.85, f"{loss}: {metrics['test_accuracy']:.4f}"


@pytest.mark.learning
@pytest.mark.soak
def test_the_best_preset_reaches_99_5_percent(make_config):
    """The `best` recipe, whole (13 minutes alone on 2 CPU cores, about half an hour on this test's one
    thread): a plain MLP at or above 99.5% (99.55-99.60% over seeds 0-2 in docs/how-to/recipes.md)."""
    config = make_config("best")
    assert config.data.augment == "both" and config.train.ema is not None and config.data.val_split == "none"
    history = train(config)
    # No validation split: the epoch kept is the one of best training accuracy, late in the annealed schedule.
    assert len(history) == 150 and history.metrics["tested_epoch"] >= 120, history.metrics["tested_epoch"]
    assert history.metrics["test_accuracy"] >= 0.995, f"best: {history.metrics['test_accuracy']:.4f}"
