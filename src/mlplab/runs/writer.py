"""`RunWriter`: the callback that writes a run directory as `fit` trains, and restores it on resume.

It follows the protocol of `mlplab.runs.directory` (last.pt decides; best.pt, the history
files and metrics.json are its views) and holds the run directory's lock from the start of
training until `close`, so no second process trains in the same folder.

`write_trained_run` writes the same files, through the same checkpoint record
(`checkpoint_record`) and `publish`, for a run trained outside `fit`: a member of a vectorised
sweep (``mlplab tune --batch``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from mlplab.config import Config, from_dict, model_fields, to_dict
from mlplab.errors import MlplabError, describe_os_error, one_line
from mlplab.optim import load_optimizer_state
from mlplab.runs.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from mlplab.runs.directory import (
    NEXT_BEST,
    check_fresh,
    check_resumable,
    last_checkpoint,
    locked,
    publish,
    write_config,
)
from mlplab.runs.history import History
from mlplab.runs.state import Callback, FitState

# Schedules laid out for the whole run: a resume cannot change their number of epochs.
FIXED_LENGTH = ("cosine", "onecycle", "OneCycleLR", "CosineAnnealingLR")


class RunNotWritten(MlplabError):
    """A write of the run directory failed (a full disk, a quota, a read-only folder); what was saved stays."""


class RunWriter(Callback):
    """Writes ``run_dir`` while training: last.pt and the history every epoch, best.pt on a new best,
    metrics.json at the end; with ``resume``, first restores the run from its last.pt.

    Args:
        run_dir: the run directory (created if missing, unless resuming).
        config: the run's `Config` when it was built from one (`mlplab.train`): written as
            config.toml/json, stored in the checkpoints, and checked against on resume.
        model_info: what rebuilding the model needs besides the config (widths, classes).
        resume: continue the run in ``run_dir`` instead of starting a fresh one.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        config: Config | None = None,
        model_info: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.model_info = model_info
        self.resume = resume
        self._lock = contextlib.ExitStack()
        # The random streams and data order as the last epoch ended. The finishing commit keeps
        # them: scoring the test data in between may draw from the RNG (a DataLoader draws a
        # seed for every iterator), and a run extended later must go on as if it had not.
        self._epoch_end: dict[str, Any] | None = None

    def on_fit_start(self, state: FitState) -> None:
        if self.resume:
            last_checkpoint(self.run_dir)  # a folder with no saved epoch is told how to start again
        else:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        # A resume of a folder that does not exist fails in _restore, with the "no checkpoint" advice.
        if self.run_dir.is_dir():
            self._lock.enter_context(locked(self.run_dir))
        if self.resume:
            self._restore(state)
        else:
            check_fresh(self.run_dir, command_line=self.config is not None)  # under the lock: no other writer
        if self.config is not None:
            with self._reporting_write_errors(state):
                write_config(self.run_dir, self.config)
        state.run_dir = state.history.run_dir = self.run_dir

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        self._epoch_end = _position(state)
        with self._reporting_write_errors(state):
            self._commit(state, new_best=state.new_best)

    def on_fit_end(self, state: FitState) -> None:
        # Finished: in the same step as its metrics. A run stopped early without test data has no
        # metrics, but why it stopped (history.stopped) is saved all the same.
        if state.metrics is not None or state.history.stopped is not None:
            with self._reporting_write_errors(state):
                self._commit(state)

    @contextlib.contextmanager
    def _reporting_write_errors(self, state: FitState) -> Iterator[None]:
        """A write that fails (a full disk, a quota, a read-only folder) as one line that says what is kept.

        Every write is atomic, so the run directory holds what last.pt held before: the epochs
        saved so far, which a resume continues from once the cause is mended.
        """
        try:
            yield
        except OSError as error:
            raise RunNotWritten(f"{describe_os_error(error)}; {self._kept()}") from error

    def _kept(self) -> str:
        """What the run directory holds now, and how to go on from it."""
        last = self.run_dir / "last.pt"
        saved = load_checkpoint(last) if last.is_file() else None
        if saved is None:
            config = self.run_dir / "config.toml"
            if config.is_file():
                return (
                    f"no epoch was saved yet; once there is room, start it again with "
                    f"`mlplab train --config {config} --out {self.run_dir}`"
                )
            return "nothing was saved; once there is room, run the same command again"
        if saved.get("metrics") is not None:
            return (
                f"the finished run is saved in {last}; its other files are written again when it is "
                f"next opened (mlplab eval {self.run_dir})"
            )
        return (
            f"epoch {saved['epoch']} is saved in {self.run_dir}; continue from it with "
            f"`mlplab train --resume {self.run_dir}` (fit(..., resume=True) in Python)"
        )

    def close(self) -> None:
        self._lock.close()

    def _commit(self, state: FitState, new_best: bool = False) -> None:
        """End an epoch (or the run, with its test metrics) in one step: the rename of last.pt.

        A new best is staged first (`rundir.NEXT_BEST`); `publish` then brings best.pt, the
        history files and metrics.json in line with last.pt.
        """
        checkpoint = self.checkpoint(state)
        if new_best:
            save_checkpoint(self.run_dir / NEXT_BEST, checkpoint)
        save_checkpoint(self.run_dir / "last.pt", checkpoint)
        publish(self.run_dir, checkpoint, staged_epoch=state.epoch if new_best else None)

    def checkpoint(self, state: FitState) -> dict[str, Any]:
        """The self-describing dict saved as last.pt / best.pt (tensors and builtins only)."""
        model = state.model
        info = self.model_info or {
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "classes": state.classes,
        }
        record = checkpoint_record(
            config=self.config,
            model=state.eval_model.state_dict(),
            model_info=info,
            optimizer=state.optimizer.state_dict(),
            schedule=state.schedule.state_dict() if state.schedule is not None else None,
            epoch=state.epoch,
            step=state.step,
            best=state.best,
            history=state.history,
            metrics=state.metrics,
            position=self._epoch_end or _position(state),
        )
        if state.average is not None:  # "model" holds the averaged weights: what the run means
            record.update(training_model=model.state_dict(), average=state.average.state_dict())
        return record

    def _restore(self, state: FitState) -> None:
        """Load last.pt into the freshly built objects; refuse a checkpoint that does not match them."""
        path = last_checkpoint(self.run_dir)
        checkpoint = load_checkpoint(path, map_location=state.device)
        publish(self.run_dir, checkpoint)  # views a killed writer left behind, in line with last.pt
        self._check_resumable(checkpoint, path, state.epochs)
        try:
            if ("average" in checkpoint) != (state.average is not None):
                raise ValueError("one of them averages its weights, the other not")
            state.model.load_state_dict(checkpoint.get("training_model", checkpoint["model"]))
            if state.average is not None:
                state.average.load(checkpoint["model"], checkpoint["average"])
            load_optimizer_state(state.optimizer, checkpoint["optimizer"])
            if (checkpoint["schedule"] is None) != (state.schedule is None):
                raise ValueError("one of them has a learning-rate schedule, the other none")
            if state.schedule is not None:
                state.schedule.load_state_dict(checkpoint["schedule"])
            restore_rng_state(checkpoint["rng"])
            restore_data_order(state.train_data, checkpoint.get("data_order") or {})
        except MlplabError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as error:
            reason = one_line(error)
            raise MlplabError(
                f"cannot resume {path}: its model, optimizer, schedule or random state does not fit "
                f"this run ({reason}); start a new run in another folder"
            ) from None
        self._epoch_end = {"rng": checkpoint["rng"], "data_order": checkpoint.get("data_order")}
        state.epoch, state.step, state.best = checkpoint["epoch"], checkpoint["step"], checkpoint["best"]
        state.history = History.from_dict(checkpoint["history"])
        if state.best is not None and state.best["epoch"] != state.epoch and (self.run_dir / "best.pt").is_file():
            state.best_weights = load_checkpoint(self.run_dir / "best.pt", map_location=state.device)["model"]
        elif state.best is not None and state.best["epoch"] == state.epoch:
            # The epoch resumed from is the best so far: keep its weights, as the uninterrupted run kept
            # them when that epoch ended, so that if no later epoch beats it, it is still the one tested.
            state.best_weights = {
                name: tensor.detach().clone() for name, tensor in state.eval_model.state_dict().items()
            }

    def _check_resumable(self, checkpoint: dict[str, Any], path: Path, epochs: int) -> None:
        """Refuse a resume that would not continue the same run, or has nothing left to train."""
        saved = from_dict(checkpoint["config"]) if checkpoint["config"] is not None else None
        if (saved is None) != (self.config is None):
            how = "with `mlplab train --resume`" if saved is not None else "by calling fit with your model"
            raise MlplabError(
                f"cannot resume {path} this way: it was trained {'from a config' if saved else 'with fit'}; "
                f"resume it {how}"
            )
        if saved is not None and self.config is not None:
            _check_same_config(saved, self.config, path)
        if checkpoint["optimizer"] is None:
            raise MlplabError(
                f"{path} cannot be resumed: it was trained outside mlplab train (by the vectorised "
                "trainer), which keeps no optimizer state; train it again with "
                f"`mlplab train --config {self.run_dir / 'config.toml'}` and another --out"
            )
        schedule = (checkpoint["schedule"] or {}).get("name")
        fixed = schedule in FIXED_LENGTH
        finished = checkpoint.get("metrics") is not None or (
            "metrics" not in checkpoint and (self.run_dir / "metrics.json").exists()
        )
        stopped = (checkpoint.get("history") or {}).get("stopped")
        if finished and stopped:
            raise MlplabError(
                f"{self.run_dir} already finished: it stopped after epoch {stopped['epoch']} "
                f"({stopped['reason']}); train a new run with another "
                f"{'--out' if self.config is not None else 'run_dir'}"
            )
        if checkpoint["epoch"] > epochs or (checkpoint["epoch"] == epochs and finished):
            cli = self.config is not None  # resumed by `mlplab train --resume`: say it in flags
            more, elsewhere = ("--epochs", "another --out") if cli else ("epochs", "another run_dir")
            further = (
                f"its {schedule} schedule cannot be extended: train a new run with more {more} and {elsewhere}"
                if fixed
                else f"pass {more} N with N > {checkpoint['epoch']} to train further"
            )
            raise MlplabError(f"{self.run_dir} already finished {checkpoint['epoch']} epochs; {further}")
        if saved is not None and saved.train.epochs != epochs and fixed:
            raise MlplabError(
                f"cannot change --epochs when resuming a {schedule} schedule: it was laid out for "
                f"{saved.train.epochs} epochs; resume with --epochs {saved.train.epochs}, or train a "
                "new run with another --out"
            )


def _check_same_config(saved: Config, asked: Config, path: Path) -> None:
    """A resume from a config must ask for the same model, and change nothing but `RESUMABLE_CHANGES`."""
    saved_model, asked_model = model_fields(saved), model_fields(asked)
    changed = [
        f"{name}={saved_model[name]!r} but you asked for {name}={asked_model[name]!r}"
        for name in saved_model
        if saved_model[name] != asked_model[name]
    ]
    if changed:
        raise MlplabError(
            f"cannot resume {path}: its model has {'; '.join(changed)}; "
            "drop the model flags, or start a new run with another --out"
        )
    check_resumable(saved, asked, path)


def _position(state: FitState) -> dict[str, Any]:
    """Where the run's randomness stands now: the random streams and the data order of the next epoch."""
    return {"rng": rng_state(), "data_order": data_order(state.train_data, state.epoch + 1)}


def _generator(data: Any) -> torch.Generator | None:
    """The generator a DataLoader (or its sampler) shuffles with, when it was given one."""
    for holder in (data, getattr(data, "sampler", None)):
        generator = getattr(holder, "generator", None)
        if isinstance(generator, torch.Generator):
            return generator
    return None


def data_order(data: Any, next_epoch: int) -> dict[str, Any]:
    """What a resume needs to visit the data in the same order: the next epoch (`mlplab.Batches`
    derive their order from it and their seed) and the state of a DataLoader's own generator.
    A DataLoader without one shuffles from the global torch RNG, which checkpoints carry anyway."""
    generator = _generator(data)
    return {
        "seed": getattr(data, "seed", None),
        "next_epoch": next_epoch,
        "generator": generator.get_state() if generator is not None else None,
    }


def restore_data_order(data: Any, order: dict[str, Any]) -> None:
    """Inverse of `data_order` (the epoch itself is set by `fit` before each pass)."""
    generator = _generator(data)
    if generator is not None and order.get("generator") is not None:
        generator.set_state(order["generator"])


def checkpoint_record(
    *,
    config: Config | None,
    model: dict[str, Any],
    model_info: dict[str, Any],
    optimizer: dict[str, Any] | None,
    schedule: dict[str, Any] | None,
    epoch: int,
    step: int,
    best: dict[str, Any] | None,
    history: History,
    metrics: dict[str, Any] | None,
    position: dict[str, Any] | None,
) -> dict[str, Any]:
    """The dict last.pt and best.pt hold (`save_checkpoint` adds format, schema, versions and checksum).

    Args:
        config: the run's config (None for a model `fit` trained but mlplab did not build).
        model: the network's state dict; ``model_info``: what rebuilding it needs besides the config.
        optimizer, schedule: their state dicts; None for a run trained outside `fit` (it cannot be resumed).
        epoch, step: epochs and optimizer steps done; ``best``: ``{"epoch", "score", "metric"}`` so far.
        history: the epochs so far; ``metrics``: the test metrics once the run is finished, else None.
        position: ``{"rng", "data_order"}``, where the run's randomness stands (None: not known).
    """
    return {
        "config": to_dict(config) if config is not None else None,
        "model": model,
        "model_info": model_info,
        "optimizer": optimizer,
        "schedule": schedule,
        "epoch": epoch,
        "step": step,
        "best": best,
        "history": history.to_dict(),
        "metrics": metrics,
        **(position or {"rng": None, "data_order": None}),
    }


def write_trained_run(
    run_dir: str | Path,
    *,
    config: Config,
    model_info: dict[str, Any],
    last_model: torch.nn.Module,
    best_model: torch.nn.Module,
    history: History,
    best: dict[str, Any],
) -> None:
    """Write the run directory of a run trained outside `fit` (a vectorised sweep member), as `RunWriter` would have.

    The folder gets config.toml/json, last.pt (the last epoch, with the test metrics
    ``history.metrics`` when they were measured), best.pt (the best epoch's weights and the
    history up to it), history.json/csv and metrics.json, through the same checkpoint record
    and `publish` as a trained run, under its lock, every file atomically. `mlplab.Run`,
    ``mlplab eval``, ``plot`` and ``export`` read it like any run; it records no optimizer state,
    so ``mlplab train --resume`` refuses it.

    Args:
        run_dir: a folder holding no run yet (created if missing).
        config: the run's config; ``model_info``: ``in_features``, ``num_classes``, ``classes``, ``output``.
        last_model, best_model: the network after the last epoch, and at the best epoch.
        history: one record per epoch (``step`` in each), ``metrics`` the best epoch's test metrics or None.
        best: ``{"epoch", "score", "metric"}``, the epoch best.pt holds.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with locked(run_dir):
        check_fresh(run_dir)
        write_config(run_dir, config)

        def record(model: torch.nn.Module, epochs: list[dict[str, Any]], metrics: dict[str, Any] | None):
            return checkpoint_record(
                config=config,
                model=model.state_dict(),
                model_info=model_info,
                optimizer=None,
                schedule=None,
                epoch=epochs[-1]["epoch"],
                step=epochs[-1]["step"],
                best=best,
                history=History(epochs=epochs),
                metrics=metrics,
                position=None,
            )

        save_checkpoint(run_dir / NEXT_BEST, record(best_model, history.epochs[: best["epoch"]], None))
        last = record(last_model, history.epochs, history.metrics)
        save_checkpoint(run_dir / "last.pt", last)
        publish(run_dir, last, staged_epoch=best["epoch"])
