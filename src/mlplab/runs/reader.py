"""A run directory opened for reading: `Run`, `open_run`; one checkpoint of it: `SavedModel`, `load_model`.

**The rule.** A run directory means its **best** checkpoint: ``best.pt``, the epoch with the
highest validation accuracy (training accuracy when the run has no validation split); before
any best.pt exists, ``last.pt``. ``which="last"`` is the newest epoch, the one
``mlplab train --resume`` continues. Every reader follows it: ``mlplab eval``,
``mlplab export``, ``mlplab plot``, ``mlplab report`` and `load_model`.

The run's record (config, history, best epoch, test metrics) is read from last.pt, the one
file that decides what the run is (see `mlplab.runs.directory`); opening a directory first
brings its views (best.pt, history files, metrics.json) in line with it.

Importing this module does not import torch: `Run`'s methods import it when they load a
checkpoint, so ``mlplab`` and its command line start fast.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplab.config import Config, from_dict, load_config
from mlplab.errors import MlplabError, check_choice, one_line

if TYPE_CHECKING:
    import torch
    from torch import nn

    from mlplab.digits import Prediction
    from mlplab.runs.history import History

WHICH = ("best", "last")  # the checkpoints of a run directory a reader may ask for


class Run:
    """A run directory (written by ``mlplab train`` or `fit`) opened for reading.

    A run directory means its **best** checkpoint: best.pt, the epoch with the highest
    validation accuracy (training accuracy without a validation split); before any best.pt
    exists, last.pt. ``which="last"`` asks for the newest epoch instead, the one
    ``mlplab train --resume`` continues.

    Args:
        path: the run directory. Opening it first repairs what a killed writer left
            (`mlplab.runs.directory.repair_run_dir`).

    Each checkpoint file is read once, on first use: open the directory again to see epochs
    saved since.

    Example::

        run = open_run("runs/lab")
        run.history.column("val_accuracy"), run.metrics["test_accuracy"]
        model = run.model()              # the best epoch's MLP, in eval mode
        newest = run.model("last")
    """

    def __init__(self, path: str | Path) -> None:
        from mlplab.runs.directory import repair_run_dir  # the training package imports torch

        self.path = Path(path)
        if not any((self.path / name).is_file() for name in ("last.pt", "config.toml")):
            raise MlplabError(_not_a_run_dir(self.path))
        repair_run_dir(self.path)
        self._loaded: dict[tuple[Path, str], SavedModel] = {}

    @property
    def _record(self) -> dict[str, Any] | None:
        """last.pt's contents (the run's state), or None before its first epoch was saved."""
        return self.checkpoint("last") if (self.path / "last.pt").is_file() else None

    @property
    def config(self) -> Config | None:
        """The run's resolved config; None for a run of a user-defined model (see `model`)."""
        record = self._record
        if record is None:
            return load_config(self.path / "config.toml")  # stopped before its first epoch was saved
        return None if record["config"] is None else from_dict(record["config"])

    @property
    def history(self) -> History:
        """The per-epoch records of every saved epoch (``run_dir`` set to this directory)."""
        from mlplab.runs.history import History

        record = self._record
        history = History.from_dict(record["history"]) if record is not None else History()
        history.run_dir = self.path
        return history

    @property
    def metrics(self) -> dict[str, Any] | None:
        """The test metrics (what metrics.json holds) once the run is finished, else None."""
        record = self._record
        if record is None:
            return None
        if "metrics" in record:
            return record["metrics"]
        # Written before checkpoints carried the metrics: metrics.json is the only record of them.
        return _read_json_record(self.path / "metrics.json") if (self.path / "metrics.json").exists() else None

    @property
    def finished(self) -> bool:
        """Whether the run trained all its epochs and measured its test metrics."""
        return self.metrics is not None

    @property
    def epochs(self) -> int:
        """How many epochs are saved (last.pt's epoch; 0 before the first)."""
        record = self._record
        return 0 if record is None else record["epoch"]

    @property
    def best(self) -> dict[str, Any] | None:
        """The best epoch so far, ``{"epoch", "score", "metric"}``; None before the first epoch."""
        record = self._record
        return None if record is None else record["best"]

    @property
    def architecture(self) -> str | None:
        """The MLP's layer widths, ``"784-256-10"``; None for a user-defined model or before the first epoch."""
        record, config = self._record, self.config
        if record is None or config is None:
            return None
        info = record["model_info"]
        return "-".join(map(str, (info["in_features"], *config.model.hidden, info["num_classes"])))

    def checkpoint_path(self, which: str = "best") -> Path:
        """The file ``which`` names: ``"best"`` (best.pt, else last.pt) or ``"last"`` (last.pt)."""
        from mlplab.runs.directory import last_checkpoint

        check_choice("checkpoint", which, WHICH)
        best = self.path / "best.pt"
        if which == "best" and best.exists() and not best.is_file():  # never the last epoch in its place, silently
            raise MlplabError(
                f"{best} is not a file (a folder?), so the run's best epoch cannot be read; move it "
                f"away, or use the run's last epoch ({self.path / 'last.pt'})"
            )
        if which == "best" and best.is_file():
            return best
        return last_checkpoint(self.path)  # a run with no saved epoch is told how to start again

    def checkpoint(self, which: str = "best", map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """The contents of `checkpoint_path` ``(which)``, loaded safely once per device (see
        `mlplab.runs.checkpoint.load_checkpoint`)."""
        return self.saved(which, map_location).record

    def saved(self, which: str = "best", map_location: str | torch.device = "cpu") -> SavedModel:
        """Checkpoint ``which`` as a `SavedModel` (its model, loss and evaluation), loaded once per device."""
        path = self.checkpoint_path(which)
        key = (path, str(map_location))
        if key not in self._loaded:
            self._loaded[key] = SavedModel(path, map_location=map_location)
        return self._loaded[key]

    def model(
        self, which: str = "best", *, into: nn.Module | None = None, device: str | torch.device = "cpu"
    ) -> nn.Module:
        """The network of checkpoint ``which``, on ``device`` and in eval mode.

        Args:
            which: ``"best"`` (the rule above) or ``"last"``.
            into: a module to load the weights into (strictly: every key and shape must match);
                required for a run of a user-defined model, which mlplab cannot rebuild.
            device: where the returned network lives.
        """
        return self.saved(which).model(into=into, device=device)

    def loss(self) -> Any:
        """The loss the run trained with (its config's name, model output, beta and label smoothing)."""
        from mlplab.losses import config_loss

        return config_loss(_config_of(self.config, self.path))

    def evaluate(
        self, split: str = "test", which: str = "best", *, data_dir: str | None = None, device: str = "auto"
    ) -> dict[str, Any]:
        """Score checkpoint ``which`` on a split of the run's own data with the run's own loss.

        On the test split of the best checkpoint this is what metrics.json holds (``test_loss``,
        ``test_accuracy``), measured again. Returns `mlplab.evaluate`'s dict (``loss``, ``accuracy``,
        ``count``, ``per_class_accuracy``, ``confusion``) with ``classes`` and ``epoch`` added.

        Args:
            split: ``"test"``, ``"val"`` or ``"train"``.
            which: ``"best"`` (the rule above) or ``"last"``.
            data_dir: where the dataset's files are, if not where the run found them.
            device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        """
        return self.saved(which).evaluate(split, data_dir=data_dir, device=device)

    def predict(
        self,
        images: Any,
        which: str = "best",
        *,
        normalize: str | None = None,
        dataset: str | None = None,
        into: nn.Module | None = None,
    ) -> list[Prediction]:
        """What the run's model says of your own digits: one `mlplab.digits.Prediction` per image.

        Each image (a path, bytes, a Pillow image or a NumPy array; PNG, JPEG, WebP, GIF, any
        size, dark ink on light paper or light on dark) is made into an MNIST-style 28x28
        (`mlplab.digits.to_mnist`), normalised as this run's training images were, and
        classified. An unreadable or blank image gets ``error`` set and no prediction.

        Args:
            images: one image or a list of them.
            which: the checkpoint (``"best"``, the rule above, or ``"last"``).
            normalize: how the training images were scaled; read from the run's config (give it for
                a run of a user-defined model).
            dataset: which dataset the training images came from; likewise.
            into: the module to load a user-defined model's weights into (see `model`).

        Example::

            for p in open_run("runs/mnist").predict(["seven.png", "photo.jpg"]):
                print(p.source, p.top(3) if p.found else p.error)
        """
        from mlplab.data import get_spec
        from mlplab.digits import predict

        config = self.config
        if config is not None:
            dataset, normalize = dataset or config.data.dataset, normalize or config.data.normalize
        elif normalize is None or dataset is None:
            raise MlplabError(
                f"{self.path} is a run of a user-defined model: pass normalize= and dataset= "
                "(how its training images were scaled, e.g. normalize='standard', dataset='mnist')"
            )
        spec = get_spec(dataset)
        return predict(self.model(which, into=into), images, normalize=normalize, spec=spec)

    def __repr__(self) -> str:
        try:
            return f"Run({str(self.path)!r}, {self._summary()})"
        except MlplabError as error:  # a repr never raises: say what is wrong instead
            return f"Run({str(self.path)!r}, unreadable: {error})"

    def _summary(self) -> str:
        """``mnist, 784-512-10, 4/4 epochs, best epoch 4, test accuracy 98.34%``."""
        record, config = self._record, self.config
        if record is None:
            return f"{config.data.dataset}, no epoch saved yet" if config else "no epoch saved yet"
        info = record["model_info"]
        if config is None:
            parts = [info.get("class", "a user-defined model"), f"{record['epoch']} epochs"]
        else:
            parts = [config.data.dataset, self.architecture, f"{record['epoch']}/{config.train.epochs} epochs"]
        if record["best"]:
            parts.append(f"best epoch {record['best']['epoch']}")
        metrics = self.metrics
        parts.append(f"test accuracy {100 * metrics['test_accuracy']:.2f}%" if metrics else "not finished")
        return ", ".join(parts)


def open_run(path: str | Path) -> Run:
    """Open the run directory ``path`` for reading (see `Run`)."""
    return Run(path)


def checkpoint_file(path: str | Path, which: str = "best") -> Path:
    """The checkpoint a path means: a run directory's by the rule (see `Run`), or the file itself."""
    path = Path(path)
    return Run(path).checkpoint_path(which) if path.is_dir() else path


def load_model(path: str | Path, which: str = "best", map_location: str | torch.device = "cpu") -> nn.Module:
    """The trained MLP of a run directory (checkpoint ``which``, see `Run`) or of a .pt file, in eval mode.

    Args:
        path: a run directory, or a checkpoint file (best.pt, last.pt) written by mlplab.
        which: for a run directory, ``"best"`` (the rule) or ``"last"``; a file is itself.
        map_location: the device the network is returned on.
    """
    return SavedModel(path, which).model(device=map_location)  # read on the CPU, where the checksum is verified


class SavedModel:
    """One checkpoint opened for reading: a .pt file, or the one a run directory means (the rule above).

    What ``mlplab eval``, ``predict``, ``export`` and ``serve`` read, and what `Run` reads its
    checkpoints through: the record, its config, the network, the loss and an evaluation.

    Args:
        path: a checkpoint file written by mlplab, or a run directory.
        which: for a run directory, ``"best"`` or ``"last"``; a file is itself.
        map_location: the device the record's tensors are loaded on.

    Attributes:
        path: the checkpoint file.
        record: its contents (`mlplab.runs.checkpoint.load_checkpoint`).
    """

    def __init__(self, path: str | Path, which: str = "best", map_location: str | torch.device = "cpu") -> None:
        from mlplab.runs.checkpoint import load_checkpoint

        check_choice("checkpoint", which, WHICH)
        self.path = checkpoint_file(path, which)
        self.record = load_checkpoint(self.path, map_location=map_location)

    @property
    def config(self) -> Config | None:
        """The config the checkpoint was trained from; None for a user-defined model's."""
        return None if self.record["config"] is None else from_dict(self.record["config"])

    @property
    def epoch(self) -> int:
        """The epoch whose weights the checkpoint holds."""
        return self.record["epoch"]

    def model(self, *, into: nn.Module | None = None, device: str | torch.device = "cpu") -> nn.Module:
        """The network: rebuilt from the config (an MLP), or the weights loaded strictly into ``into``;
        on ``device``, in eval mode."""
        info = self.record["model_info"]
        if into is None:
            config = self.config
            if config is None:
                name = info.get("class", "a user-defined module")
                raise MlplabError(
                    f"{self.path} holds a user-defined model ({name}) that mlplab cannot rebuild; "
                    "build the module again and pass it: open_run(...).model(into=...)"
                )
            from mlplab.models import build_model

            into = build_model(config.model, in_features=info["in_features"], num_classes=info["num_classes"])
        try:
            into.load_state_dict(self.record["model"])
        except RuntimeError as error:  # missing, unexpected or misshapen keys: a message over many lines
            raise MlplabError(
                f"{self.path} holds weights that do not fit the {type(into).__name__} given "
                f"({one_line(error)}); pass a module built as the run's was"
            ) from None
        return into.to(device).eval()

    def evaluate(self, split: str = "test", *, data_dir: str | None = None, device: str = "auto") -> dict[str, Any]:
        """The network scored on a split of its run's data with its run's loss (see `Run.evaluate`)."""
        from mlplab.choices import SPLITS
        from mlplab.data import Batches, load_data
        from mlplab.device import resolve_device
        from mlplab.losses import config_loss
        from mlplab.metrics import evaluate

        check_choice("split", split, SPLITS)  # the device is checked by resolve_device
        config = _config_of(self.config, self.path)
        if data_dir:
            config = replace(config, data=replace(config.data, data_dir=data_dir))
        model = self.model()
        target = resolve_device(device)
        data = load_data(config.data, device=target, seed=config.train.seed, progress=False)
        images = {"test": data.test, "val": data.val, "train": data.train}[split]
        if images is None:
            raise MlplabError("this run has no validation split (--val-split none); use --split test or train")
        result = evaluate(
            model.to(target), Batches(images, config.train.eval_batch_size), config_loss(config), len(data.spec.classes)
        )
        return {**result, "classes": tuple(data.spec.classes), "epoch": self.epoch}


def _config_of(config: Config | None, path: Path) -> Config:
    """The config a run or checkpoint was trained from, or a one-line error for a user-defined module's."""
    if config is None:
        raise MlplabError(_user_module(path))
    return config


def _user_module(path: Path) -> str:
    return (
        f"{path} is a run of a user-defined module: mlplab does not know its data or loss; "
        "score it with mlplab.evaluate(model, batches, loss)"
    )


def _not_a_run_dir(path: Path) -> str:
    """The one-line error for a path that is no run directory, with what to give instead."""
    if path.is_file():
        return (
            f"{path} is a file, not a run directory; open the folder that holds it ({path.parent}), "
            "or load a single checkpoint with mlplab.load_model"
        )
    found = "does not exist" if not path.exists() else "has no last.pt and no config.toml"
    return f"{path} is not a run directory ({found}); give a folder written by `mlplab train`"


def _read_json_record(path: Path) -> dict[str, Any]:
    """A run's JSON file as a dict, or a one-line error when it is damaged (and could not be repaired)."""
    import json

    try:
        record = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise MlplabError(
            f"{path} is damaged ({type(error).__name__}) and last.pt could not rewrite it (a run "
            "from an older mlplab, or a folder mlplab cannot write); retrain the run"
        ) from None
    if not isinstance(record, dict):
        raise MlplabError(f"{path} holds a {type(record).__name__}, not a record of mlplab's; retrain the run")
    return record
