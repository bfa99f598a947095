"""What the CLI prints while and after training: a progress bar and one line per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplab.config import Config
from mlplab.runs.history import judged_by
from mlplab.runs.state import FitState
from mlplab.training.progress import ProgressBar


def architecture(in_features: int, hidden: tuple[int, ...] | list[int], num_classes: int) -> str:
    """``784-16-32-24-10``."""
    return "-".join(str(n) for n in (in_features, *hidden, num_classes))


def per_class_table(per_class: dict[str, float]) -> str:
    """Two-column table of class name and accuracy (%)."""
    width = max(len(name) for name in per_class)
    return "\n".join(f"  {name:<{width}}  {100 * value:6.2f}%" for name, value in per_class.items())


class TrainProgress(ProgressBar):
    """What `mlplab train` prints: the run's header, a bar per epoch (terminal only), one line per
    epoch, and the test result with its per-class table.

    Args:
        config: the run's config.
        progress: show the bar (only on a terminal).
        stream: where lines go (stdout).

    Set ``setup`` to the run's objects (`mlplab.training.runner.prepare`) before training: the
    header describes its data, model and engine.
    """

    def __init__(self, config: Config, progress: bool = True, stream: Any = None) -> None:
        # None: shown only when stderr is a terminal, so logs and CI stay clean.
        super().__init__(bar=None if progress else False, stream=stream)
        self.setup: Any = None
        self.config = config
        self.run_dir: Path | None = None

    def _print(self, text: str) -> None:
        self.write(text)

    def on_fit_start(self, state: FitState) -> None:
        super().on_fit_start(state)
        setup, model = self.setup, self.config.model
        data = setup.data
        self.run_dir = run_dir = state.run_dir
        sizes = f"{len(data.train)} train / {len(data.val) if data.val is not None else 0} val / {len(data.test)} test"
        self._print(
            f"{self.config.data.dataset}: {sizes} images from {data.source} "
            f"({data.origin_description}; normalize={self.config.data.normalize})"
        )
        widths = architecture(data.train.images[0].numel(), model.hidden, setup.num_classes)
        kind = f"{widths} MLP, {model.activation}" if model.hidden else f"{widths} logistic regression"
        self._print(
            f"model: {kind}, output {model.output}, {sum(p.numel() for p in setup.model.parameters())} parameters; "
            f"loss {self.config.train.loss}; {self.config.optim.optimizer} lr {self.config.optim.lr}; "
            f"batch {self.config.train.batch_size}; device {setup.device}; engine {setup.engine.name}"
            + ("" if self.config.train.precision == "32-true" else f" ({self.config.train.precision})")
            + f"; seed {self.config.train.seed}"
        )
        if state.threads is not None and state.threads.active:
            self._print(f"threads: {state.threads.describe()}")
        self._print(f"run directory: {run_dir}")

    def on_fit_end(self, state: FitState) -> None:
        metrics = state.metrics
        if metrics is None:  # fit had no test data to score (`mlplab train` always gives it)
            return
        self._print(
            f"test loss {metrics['test_loss']:.4f}  accuracy {100 * metrics['test_accuracy']:.2f}% "
            f"({metrics['test_count']} images{_tested(metrics, state.epoch)})"
        )
        self._print("per-class accuracy:\n" + per_class_table(metrics["per_class_accuracy"]))
        self._print(f"saved: {self.run_dir}/{{config.toml, history.json, history.csv, last.pt, best.pt, metrics.json}}")

    def interrupted(self) -> None:
        """Ctrl-C: say what was kept and how to continue."""
        self.close()
        saved = _saved_epoch(self.run_dir) if self.run_dir is not None else 0
        if saved:
            self._print(
                f"interrupted: epoch {saved} is saved in {self.run_dir}/last.pt; "
                f"continue with `mlplab train --resume {self.run_dir}`"
            )
        else:
            self._print("interrupted before the first epoch finished; nothing was saved")


def _saved_epoch(run_dir: Path) -> int:
    """The epoch last.pt holds (what a resume continues from), read from disk: the one true answer."""
    from mlplab.errors import MlplabError
    from mlplab.runs import SavedModel

    try:
        return int(SavedModel(run_dir / "last.pt").epoch)
    except MlplabError:
        return 0


def _tested(metrics: dict[str, Any], last_epoch: int) -> str:
    """Which epoch's weights the test scored, said only when it is not the last epoch trained."""
    best = metrics.get("best")
    if metrics["tested_epoch"] == last_epoch or best is None:
        return ""
    return f"; epoch {metrics['tested_epoch']}'s weights, the best {judged_by(best)}"
