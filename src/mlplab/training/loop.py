"""The training loop: `train_epoch`, `evaluate` and `fit`, in the order they run.

Extension points are plain callbacks: any object with some of
``on_fit_start(setup, run_dir)``, ``on_epoch_start(epoch, num_batches)``,
``on_batch_end(loss)``, ``on_epoch_end(record)`` and ``on_fit_end(metrics)``. The CLI uses them for the progress bar and the summary lines;
nothing here prints.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mlplab.config import Config, from_dict, model_fields, to_dict
from mlplab.errors import MlplabError, one_line
from mlplab.optim import Schedule, load_optimizer_state
from mlplab.training.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint, versions
from mlplab.training.device import using_threads
from mlplab.training.history import History
from mlplab.training.metrics import AverageMeter, confusion_matrix, per_class_accuracy
from mlplab.training.rundir import (NEXT_BEST, check_fresh, check_resumable, create_run_dir, last_checkpoint, locked,
                                   publish, write_config)
from mlplab.training.setup import LossFn, Setup, prepare
from mlplab.training.steps import make_step
from mlplab.training.tracking import trackers


def train_epoch(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule | None = None,
    on_batch_end: Sequence[Callable[[Tensor], None]] = (),
    engine: str = "autograd",
) -> dict[str, Any]:
    """One pass over ``batches``; returns mean loss, accuracy and every batch's loss.

    ``engine`` (see `mlplab.training.steps`) decides how gradients are computed:
    ``autograd``, ``manual`` (the MLP's backprop written out by hand) or ``auto``.
    """
    model.train()
    step = make_step(engine, model, loss_fn, optimizer)
    loss_meter = AverageMeter()
    all_outputs, targets = [], []
    for images, labels in batches:
        outputs, loss = step(images, labels)  # zero grad, forward, loss, backward, optimizer step
        if schedule is not None:
            schedule.step_batch()
        # Kept as tensors and scored once at the end: no per-batch device sync or argmax.
        loss_meter.update(loss, labels.shape[0])
        all_outputs.append(outputs)
        targets.append(labels)
        for hook in on_batch_end:
            hook(loss)
    correct = int((torch.cat(all_outputs).argmax(dim=1) == torch.cat(targets)).sum()) if targets else 0
    return {
        "loss": loss_meter.avg,
        "accuracy": correct / loss_meter.count if targets else float("nan"),
        "batch_losses": loss_meter.values(),
    }


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], loss_fn: LossFn,
             num_classes: int = 10) -> dict[str, Any]:
    """Loss, accuracy, per-class accuracy and confusion matrix over every sample of ``batches``."""
    model.eval()
    loss_meter = AverageMeter()
    predictions, targets = [], []
    for images, labels in batches:
        outputs = model(images)
        loss_meter.update(loss_fn(outputs, labels), labels.shape[0])
        predictions.append(outputs.argmax(dim=1))
        targets.append(labels)
    confusion = confusion_matrix(torch.cat(predictions), torch.cat(targets), num_classes).cpu()
    return {
        "loss": loss_meter.avg,
        "accuracy": int(confusion.trace()) / loss_meter.count,
        "count": loss_meter.count,
        "per_class_accuracy": per_class_accuracy(confusion),
        "confusion": confusion.tolist(),
    }


def fit(config: Config, *, callbacks: Sequence[Any] = (), loss_fn: LossFn | None = None,
        resume: bool = False) -> History:
    """Train ``config`` end to end and write its run directory; returns the history.

    Args:
        config: the resolved run config (see `mlplab.config`).
        callbacks: objects with any of on_epoch_start / on_batch_end / on_epoch_end / on_fit_end.
        loss_fn: a custom ``(outputs, labels) -> mean loss`` callable used instead of ``config.train.loss``.
        resume: continue the run in ``config.train.out`` from its last.pt, bit-identically.
    """
    if config.train.epochs < 1:
        raise MlplabError(f"epochs must be at least 1; got {config.train.epochs}")
    tracking = trackers(config)  # built first: a missing extra fails before any data loads
    try:
        return _fit(config, [*callbacks, *tracking], loss_fn, resume)
    finally:
        # Close event files and wandb runs even when training fails or is interrupted.
        for tracker in tracking:
            tracker.close()


def _fit(config: Config, callbacks: Sequence[Any], loss_fn: LossFn | None, resume: bool) -> History:
    """The body of `fit`: prepare, (re)open the run directory, train, test."""
    run = prepare(config, loss_fn)
    run_dir = Path(config.train.out) if resume else create_run_dir(config)
    # A resume of a folder that does not exist fails in _resume, with the "no checkpoint" advice.
    with locked(run_dir) if run_dir.is_dir() else contextlib.nullcontext():
        if resume:
            state = _resume(run_dir, run)
        else:
            check_fresh(run_dir)  # under the lock: no other writer can be at work in it
            state = {"epoch": 0, "step": 0, "best": None, "history": History()}
        write_config(run_dir, config)
        history: History = state["history"]
        history.run_dir = run_dir
        _call(callbacks, "on_fit_start", run, run_dir)
        with using_threads(run.threads, numpy_blas=run.engine == "scratch"):
            _train_epochs(run, run_dir, state, history, callbacks)
        metrics = _final_metrics(run, state, history)
        _commit(run, run_dir, state, history, metrics=metrics)  # finished: in the same step as its metrics
    _call(callbacks, "on_fit_end", metrics)
    return history


def _train_epochs(run: Setup, run_dir: Path, state: dict[str, Any], history: History,
                  callbacks: Sequence[Any]) -> None:
    """The epoch loop: train, validate, step the schedule, record, checkpoint."""
    config = run.config
    batch_hooks = [cb.on_batch_end for cb in callbacks if hasattr(cb, "on_batch_end")]
    for epoch in range(state["epoch"] + 1, config.train.epochs + 1):
        _call(callbacks, "on_epoch_start", epoch, len(run.train_batches))
        started = time.perf_counter()
        lr = run.optimizer.param_groups[0]["lr"]
        run.train_batches.set_epoch(epoch)
        train = train_epoch(run.model, run.train_batches, run.loss_fn, run.optimizer, run.schedule, batch_hooks,
                            engine=run.engine)
        val = evaluate(run.model, run.val_batches, run.loss_fn, run.num_classes) if run.val_batches else None
        run.schedule.step_epoch()
        _check_finite(run, epoch, train["loss"], val["loss"] if val else None)
        state["step"] += len(run.train_batches)
        record = {
            "epoch": epoch, "step": state["step"], "lr": lr,
            "train_loss": train["loss"], "train_accuracy": train["accuracy"],
            "val_loss": val["loss"] if val else None, "val_accuracy": val["accuracy"] if val else None,
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        if config.train.log_batches:
            history.batch_losses.extend(train["batch_losses"])
        state["epoch"] = epoch
        _commit(run, run_dir, state, history, new_best=_update_best(state, record))
        _call(callbacks, "on_epoch_end", record)


def _check_finite(run: Setup, epoch: int, train_loss: float, val_loss: float | None) -> None:
    """Refuse to go on (and so to save) when the losses or any weight stopped being finite numbers."""
    problems = [f"the training loss is {train_loss}"] if not math.isfinite(train_loss) else []
    if val_loss is not None and not math.isfinite(val_loss):
        problems.append(f"the validation loss is {val_loss}")
    broken = [name for name, parameter in run.model.named_parameters() if not bool(torch.isfinite(parameter).all())]
    if broken:
        problems.append(f"parameters {', '.join(broken)} hold inf or nan")
    if problems:
        raise MlplabError(f"training diverged in epoch {epoch}: {'; '.join(problems)}; nothing of this epoch was "
                          f"saved; {_divergence_advice(run.config)}")


def _divergence_advice(config: Config) -> str:
    """The settings that matter for a diverging run, with their values, for the optimizer in use."""
    optim = config.optim
    advice = f"lower --lr (now {optim.lr})"
    if optim.optimizer in ("sgd", "rmsprop") and optim.momentum > 0:
        advice += f" or --momentum (now {optim.momentum})"
    if optim.scheduler == "onecycle":
        advice += " (onecycle peaks at --lr)"
    return advice + ", or pick another --loss/--optimizer"


def _update_best(state: dict[str, Any], record: dict[str, Any]) -> bool:
    """Record the epoch as the best so far if it is; returns whether it is."""
    # "Best" is judged on validation accuracy, or on training accuracy without a validation split.
    metric = "val_accuracy" if record["val_accuracy"] is not None else "train_accuracy"
    if state["best"] is not None and record[metric] <= state["best"]["score"]:
        return False
    state["best"] = {"epoch": record["epoch"], "score": record[metric], "metric": metric}
    return True


def _commit(run: Setup, run_dir: Path, state: dict[str, Any], history: History, new_best: bool = False,
            metrics: dict[str, Any] | None = None) -> None:
    """End an epoch (or the run, with its test ``metrics``) in one step: the rename of last.pt.

    A new best is staged first (`rundir.NEXT_BEST`); `publish` then brings best.pt, the history
    files and metrics.json in line with last.pt. See `mlplab.training.rundir`.
    """
    checkpoint = _checkpoint(run, state["epoch"], state, history, metrics)
    if new_best:
        save_checkpoint(run_dir / NEXT_BEST, checkpoint)
    save_checkpoint(run_dir / "last.pt", checkpoint)
    publish(run_dir, checkpoint, staged_epoch=state["epoch"] if new_best else None)


def _final_metrics(run: Setup, state: dict[str, Any], history: History) -> dict[str, Any]:
    """Test-set metrics of the final model, for metrics.json."""
    test = evaluate(run.model, run.test_batches, run.loss_fn, run.num_classes)
    return {
        "test_loss": test["loss"], "test_accuracy": test["accuracy"], "test_count": test["count"],
        "per_class_accuracy": dict(zip(run.data.spec.classes, test["per_class_accuracy"])),
        "confusion": test["confusion"], "epochs": len(history), "best": state["best"],
        "device": str(run.device), "engine": run.engine, "versions": versions(),
    }


def _call(callbacks: Sequence[Any], name: str, *args: Any) -> None:
    for callback in callbacks:
        method = getattr(callback, name, None)
        if method is not None:
            method(*args)


def _checkpoint(run: Setup, epoch: int, state: dict[str, Any], history: History,
                metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """The self-describing dict saved as last.pt / best.pt (tensors and builtins only)."""
    return {
        "config": to_dict(run.config),
        "model": run.model.state_dict(),
        "model_info": {"in_features": run.data.train.images[0].numel(), "num_classes": run.num_classes,
                       "classes": list(run.data.spec.classes), "output": run.model.output},
        "optimizer": run.optimizer.state_dict(),
        "schedule": run.schedule.state_dict(),
        "epoch": epoch,
        "step": state["step"],
        "best": state["best"],
        "history": history.to_dict(),
        "metrics": metrics,  # the test metrics once the run is finished, else None
        "rng": rng_state(),
        "data_order": {"seed": run.config.train.seed, "next_epoch": epoch + 1},
    }


def _resume(run_dir: Path, run: Setup) -> dict[str, Any]:
    """Load last.pt into the freshly built objects; refuse a checkpoint that does not match."""
    path = last_checkpoint(run_dir)
    checkpoint = load_checkpoint(path, map_location=run.device)
    publish(run_dir, checkpoint)  # views a killed writer left behind, in line with last.pt
    saved = from_dict(checkpoint["config"])
    saved_model, asked_model = model_fields(saved), model_fields(run.config)
    changed = [f"{name}={saved_model[name]!r} but you asked for {name}={asked_model[name]!r}"
               for name in saved_model if saved_model[name] != asked_model[name]]
    if changed:
        raise MlplabError(f"cannot resume {path}: its model has {'; '.join(changed)}; "
                          "drop the model flags, or start a new run with another --out")
    check_resumable(saved, run.config, path)
    fixed = saved.optim.scheduler in ("cosine", "onecycle")  # the lr curve is laid out for the whole run
    # Finished: its metrics are in last.pt (or, for runs written before they were, in metrics.json).
    finished = checkpoint.get("metrics") is not None or ("metrics" not in checkpoint
                                                         and (run_dir / "metrics.json").exists())
    if checkpoint["epoch"] > run.config.train.epochs or (checkpoint["epoch"] == run.config.train.epochs and finished):
        further = (f"its {saved.optim.scheduler} schedule cannot be extended: train a new run with more --epochs "
                   "and another --out" if fixed else
                   f"pass --epochs N with N > {checkpoint['epoch']} to train further")
        raise MlplabError(f"{run_dir} already finished {checkpoint['epoch']} epochs; {further}")
    if saved.train.epochs != run.config.train.epochs and fixed:
        raise MlplabError(f"cannot change --epochs when resuming a {saved.optim.scheduler} schedule: "
                          f"it was laid out for {saved.train.epochs} epochs; resume with --epochs "
                          f"{saved.train.epochs}, or train a new run with another --out")
    try:
        run.model.load_state_dict(checkpoint["model"])
        load_optimizer_state(run.optimizer, checkpoint["optimizer"])
        run.schedule.load_state_dict(checkpoint["schedule"])
        restore_rng_state(checkpoint["rng"])
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as error:
        reason = one_line(error)
        raise MlplabError(f"cannot resume {path}: its optimizer, schedule or random state does not fit this run "
                          f"({reason}); start a new run with another --out") from None
    return {"epoch": checkpoint["epoch"], "step": checkpoint["step"], "best": checkpoint["best"],
            "history": History.from_dict(checkpoint["history"])}
