"""What the CLI prints while and after training: a progress bar and one line per epoch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mlplab.config import Config
from mlplab.training.callbacks import Callback, FitState


def architecture(in_features: int, hidden: tuple[int, ...] | list[int], num_classes: int) -> str:
    """``784-16-32-24-10``."""
    return "-".join(str(n) for n in (in_features, *hidden, num_classes))


def per_class_table(per_class: dict[str, float]) -> str:
    """Two-column table of class name and accuracy (%)."""
    width = max(len(name) for name in per_class)
    return "\n".join(f"  {name:<{width}}  {100 * value:6.2f}%" for name, value in per_class.items())


class TrainProgress(Callback):
    """Training callbacks that print: the run's header, a tqdm bar per epoch (terminal only) and a summary line.

    Args:
        config: the run's config.
        progress: show the bar (only on a terminal).
        stream: where lines go (stdout).

    Set ``setup`` to the run's objects (`mlplab.training.runner.prepare`) before training: the
    header describes its data, model and engine.
    """

    def __init__(self, config: Config, progress: bool = True, stream: Any = None) -> None:
        self.setup: Any = None
        self.config = config
        self.progress = progress
        self.stream = stream or sys.stdout
        self.bar: Any = None
        self.run_dir: Path | None = None

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_fit_start(self, state: FitState) -> None:
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
            f"batch {self.config.train.batch_size}; device {setup.device}; engine {setup.engine.name}; seed {self.config.train.seed}"
        )
        self._print(f"run directory: {run_dir}")

    def on_epoch_start(self, state: FitState, epoch: int) -> None:
        if self.progress:
            from tqdm import tqdm

            # disable=None: shown only when stderr is a terminal, so logs and CI stay clean.
            self.bar = tqdm(total=state.num_batches, desc=f"epoch {epoch}/{self.config.train.epochs}",
                            unit="batch", leave=False, disable=None, mininterval=0.2)

    def on_batch_end(self, loss: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        line = (f"epoch {record['epoch']:>{len(str(self.config.train.epochs))}}/{self.config.train.epochs}  "
                f"train loss {record['train_loss']:.4f} acc {100 * record['train_accuracy']:6.2f}%")
        if record["val_loss"] is not None:
            line += f"  val loss {record['val_loss']:.4f} acc {100 * record['val_accuracy']:6.2f}%"
        line += f"  lr {record['lr']:.4g}  {record['seconds']:.1f}s"
        self._print(line)

    def on_fit_end(self, state: FitState) -> None:
        metrics = state.metrics
        self._print(f"test loss {metrics['test_loss']:.4f}  accuracy {100 * metrics['test_accuracy']:.2f}% "
                    f"({metrics['test_count']} images)")
        self._print("per-class accuracy:\n" + per_class_table(metrics["per_class_accuracy"]))
        self._print(f"saved: {self.run_dir}/{{config.toml, history.json, history.csv, last.pt, best.pt, metrics.json}}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def interrupted(self) -> None:
        """Ctrl-C: say what was kept and how to continue."""
        self.close()
        saved = _saved_epoch(self.run_dir) if self.run_dir is not None else 0
        if saved:
            self._print(f"interrupted: epoch {saved} is saved in {self.run_dir}/last.pt; "
                        f"continue with `mlplab train --resume {self.run_dir}`")
        else:
            self._print("interrupted before the first epoch finished; nothing was saved")


def _saved_epoch(run_dir: Path) -> int:
    """The epoch last.pt holds (what a resume continues from), read from disk: the one true answer."""
    from mlplab.errors import MlplabError
    from mlplab.training import load_checkpoint

    try:
        return int(load_checkpoint(run_dir / "last.pt")["epoch"])
    except MlplabError:
        return 0
