"""The training loop: `train_epoch` and `fit`, in the order they run (`evaluate` is `mlplab.metrics`).

`fit` trains any ``nn.Module`` on any iterable of ``(images, labels)`` batches with any loss
callable, torch optimizer and LR scheduler. Run-directory writing, progress bars and
trackers are callbacks (`mlplab.runs.state.Callback`); nothing here prints or writes files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from mlplab.device import model_device
from mlplab.engines import Engine, Step, resolve_engine
from mlplab.errors import MlplabError
from mlplab.metrics import AverageMeter, Batches, LossFn, default_loss, evaluate
from mlplab.optim import as_schedule
from mlplab.precision import check_precision, compute_dtype
from mlplab.runs.history import History, epoch_record, new_best, test_metrics
from mlplab.runs.state import Callback, FitState, check_callbacks
from mlplab.session import interactive
from mlplab.threads import ThreadGovernor, model_work

if TYPE_CHECKING:
    from mlplab.runs.writer import RunWriter
    from mlplab.training.weights import WeightAverage


def train_epoch(
    model: nn.Module,
    batches: Batches,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    schedule: Any = None,
    *,
    engine: str | Engine = "autograd",
    step: Step | None = None,
    callbacks: Sequence[Callback] = (),
    first_step: int = 0,
    threads: int | None = None,
    augment: Callable[[Tensor, int], Tensor] | None = None,
    after_step: Sequence[Callable[[], None]] = (),
    on_batch_end: Sequence[Callable[[Any], None]] = (),
    precision: str = "32-true",
) -> dict[str, Any]:
    """One pass over ``batches`` in train mode; returns its mean loss, accuracy and every batch's loss.

    Args:
        model: the network; batches are moved to its device when they are elsewhere.
        batches: any iterable of ``(images, labels)``: a ``DataLoader``, `mlplab.Batches`, a list.
        loss_fn: ``(outputs, labels) -> batch-mean loss``.
        optimizer: stepped once per batch.
        schedule: an `mlplab.Schedule` or a PyTorch LR scheduler: stepped here and nowhere else,
            after every optimizer step (per-step schedules) and at the end of the pass (the rest).
        engine: how gradients are computed (`mlplab.engines`): by default the textbook autograd
            step (zero grad, forward, loss, backward, optimizer step); ``auto``, ``manual``, ``scratch``.
        step: a step an engine already built (`fit` builds one per run); overrides ``engine``.
        callbacks: `mlplab.Callback` objects whose per-batch hooks run around every step:
            ``on_batch_start(images, step) -> images``, ``on_step_end()``, ``on_batch_end(loss)``
            (`mlplab.MaxNorm`, `mlplab.WeightAverage`, your own).
        first_step: the run's optimizer steps before this pass (what ``on_batch_start`` is told first).
        threads: CPU threads to compute with; default chosen for the machine's load and the step's
            work, and re-checked as it goes (`mlplab.threads`); inside `fit`, fit's choice holds.
        augment: a plain callable ``augment(images, step) -> images`` (`mlplab.augment`), run on each
            batch before the callbacks' hook of the same moment.
        after_step: a plain callable run after each optimizer step, after the callbacks' hooks.
        on_batch_end: a plain callable run at the end of each batch, after the callbacks' hooks.
        precision: ``"32-true"`` (float32 throughout) or ``"bf16-mixed"``: the step's matrix products in
            bfloat16, the weights and optimizer float32 (`mlplab.precision`); ignored when ``step`` is given.
    """
    model.train()
    device = model_device(model)
    resolved = None
    if step is None:
        resolved = resolve_engine(engine, model, loss_fn, optimizer)
        check_precision(precision, resolved.name, device.type)
        step = resolved.step(model, loss_fn, optimizer, compute_dtype(precision))
    schedule = as_schedule(schedule)
    governor = ThreadGovernor(
        threads,
        work=model_work(model, getattr(batches, "batch_size", None)),
        numpy_blas=resolved is not None and resolved.name == "scratch",
        device=device.type,
    )
    hooks = StepHooks.of(check_callbacks(callbacks), augment, after_step, on_batch_end)
    with governor:
        if governor.active:  # called on its own: this pass re-checks the load as it goes
            governor.at_step(first_step)
            hooks.step_end.append(governor)
        return _train_pass(model, batches, step, schedule, device, hooks, first_step)


@dataclass
class StepHooks:
    """What runs around every training step: the callbacks' per-batch hooks, gathered once per pass
    (only those a callback overrides), as three lists of plain callables."""

    batch_start: list[Callable[[Tensor, int], Tensor]]  # (images, step) -> images, before the step
    step_end: list[Callable[[], None]]  # after the optimizer step, before the schedule steps
    batch_end: list[Callable[[Any], None]]  # (loss), last

    @classmethod
    def of(
        cls,
        callbacks: Sequence[Callback],
        augment: Callable[[Tensor, int], Tensor] | None = None,
        after_step: Sequence[Callable[[], None]] = (),
        on_batch_end: Sequence[Callable[[Any], None]] = (),
    ) -> StepHooks:
        """The hooks of ``callbacks``, in their order, with `train_epoch`'s plain callables added."""

        def bound(hook: str) -> list[Any]:
            return [getattr(callback, hook) for callback in callbacks if callback.overrides(hook)]

        first = [augment] if augment is not None else []
        return cls(
            first + bound("on_batch_start"),
            bound("on_step_end") + list(after_step),
            bound("on_batch_end") + list(on_batch_end),
        )


def _train_pass(
    model: nn.Module,
    batches: Batches,
    step: Step,
    schedule: Any,
    device: torch.device,
    hooks: StepHooks,
    first_step: int,
) -> dict[str, Any]:
    """The body of `train_epoch`: every batch's step, the meters and the schedule."""
    loss_meter = AverageMeter()
    watch = LossWatch(device, first_step)
    all_outputs, targets = [], []
    for index, (images, labels) in enumerate(batches):
        if images.device != device:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        for start_hook in hooks.batch_start:  # augmentation
            images = start_hook(images, first_step + index)
        outputs, loss = step(images, labels)  # zero grad, forward, loss, backward, optimizer step
        watch.check(loss)  # a diverged step stops the pass here, not after the epoch
        for step_hook in hooks.step_end:  # a max-norm constraint, a weight average
            step_hook()
        if schedule is not None:
            schedule.step_batch()
        # Kept as tensors and scored once at the end: no per-batch device sync or argmax.
        loss_meter.update(loss, labels.shape[0])
        all_outputs.append(outputs)
        targets.append(labels)
        for end_hook in hooks.batch_end:
            end_hook(loss)
    watch.flush()
    if schedule is not None:
        schedule.step_epoch(loss_meter.avg if targets else None)
    correct = int((torch.cat(all_outputs).argmax(dim=1) == torch.cat(targets)).sum()) if targets else 0
    return {
        "loss": loss_meter.avg,
        "accuracy": correct / loss_meter.count if targets else float("nan"),
        "batch_losses": loss_meter.values(),
    }


class LossNotFinite(MlplabError):
    """A training step's loss was inf or nan: the pass stopped at that step."""

    def __init__(self, step: int, batch: int, value: float) -> None:
        self.step, self.batch, self.value = step, batch, value
        super().__init__(
            f"the training loss of step {step} (batch {batch + 1} of the pass) is {value}; "
            "lower the learning rate, or change the loss or optimizer"
        )


class LossWatch:
    """Stops a training pass at the first loss that is not a finite number, instead of training the
    rest of the epoch on nan. On the CPU every step is checked (a microsecond); on an accelerator
    the losses are checked every ``every`` steps, so steps do not wait for the device one by one."""

    def __init__(self, device: torch.device, first_step: int, every: int = 32) -> None:
        self.every = 1 if device.type == "cpu" else every
        self.first_step, self.seen = first_step, 0
        self.pending: list[Tensor | float] = []  # the losses not yet checked

    def check(self, loss: Any) -> None:
        """Note one step's loss; raise `LossNotFinite` once a non-finite one is seen."""
        self.seen += 1
        if self.every == 1:  # the CPU: one float, no stacking
            value = float(loss)
            if not math.isfinite(value):
                raise LossNotFinite(self.first_step + self.seen, self.seen - 1, value)
            return
        self.pending.append(loss)
        if len(self.pending) >= self.every:
            self.flush()

    def flush(self) -> None:
        """Check the losses not yet checked."""
        if not self.pending:
            return
        values = torch.stack([torch.as_tensor(loss).detach().float().reshape(()) for loss in self.pending])
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0, 0])
            batch = self.seen - len(self.pending) + first
            raise LossNotFinite(self.first_step + batch + 1, batch, float(values[first]))
        self.pending = []


def fit(
    model: nn.Module,
    train_data: Batches,
    *,
    val_data: Batches | None = None,
    test_data: Batches | None = None,
    loss: LossFn | None = None,
    optimizer: Any = None,
    scheduler: Any = None,
    epochs: int = 1,
    callbacks: Sequence[Callback] = (),
    run_dir: str | Path | RunWriter | None = None,
    resume: bool = False,
    engine: str | Engine = "auto",
    classes: Sequence[str] | None = None,
    log_batches: bool = False,
    augment: Callable[[Tensor, int], Tensor] | None = None,
    max_norm: float | None = None,
    average: float | WeightAverage | None = None,
    patience: int | None = None,
    threads: int | None = None,
    precision: str = "32-true",
    progress: bool | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs; returns the `History` (one record per epoch).

    Args:
        model: any ``nn.Module`` mapping a batch of images to (B, C) class scores.
        train_data: any iterable of ``(images, labels)`` batches, walked once per epoch: a
            ``DataLoader`` or `mlplab.Batches`. Batches move to the model's device.
        val_data: batches scored after every epoch; the best epoch is the one with the highest
            validation accuracy (training accuracy without validation data).
        test_data: batches scored once at the end, with the best epoch's weights; the result
            is ``history.metrics`` (and metrics.json in a run directory).
        loss: any ``(outputs, labels) -> batch-mean loss`` callable (``nn.NLLLoss()``, your
            own function); default cross-entropy (`mlplab.losses`).
        optimizer: a ``torch.optim`` optimizer over ``model.parameters()``, or a function
            making one from the parameters (``functools.partial(torch.optim.Adam, lr=1e-3)``);
            default SGD with lr 0.05 and Nesterov momentum 0.9.
        scheduler: any PyTorch LR scheduler of that optimizer, or an `mlplab.Schedule`;
            stepped by `train_epoch` (per step for OneCycleLR and CyclicLR, else per epoch).
        epochs: the epoch to train up to (a resume continues from its checkpoint's epoch).
        callbacks: `mlplab.Callback` objects: progress, trackers, `mlplab.MaxNorm`,
            `mlplab.WeightAverage`, your own; their hooks run per epoch and around every step, and
            one ends training early by setting ``state.stop = True``.
        run_dir: a folder to write the run into (config, last.pt and best.pt, history,
            metrics; see `mlplab.runs.directory`), or a `mlplab.runs.RunWriter` for one. None writes nothing.
        resume: continue the run in ``run_dir`` from its last.pt, bit for bit: rebuild the
            same model, optimizer, scheduler and data first; the checkpoint restores their
            state, the random streams and the data order.
        engine: how gradients are computed (`mlplab.engines`): ``auto`` (the hand-written
            backprop for mlplab's MLP, autograd for anything else), ``autograd``, ``manual``
            or ``scratch``.
        classes: class names for per-class metrics; default the dataset's ``classes``.
        log_batches: also record every training batch's loss in ``history.batch_losses``
            (the callback `mlplab.training.callbacks.BatchLossLog`).
        augment: ``augment(images, step) -> images`` applied to every training batch, ``step``
            the run's optimizer step (`mlplab.augment.Augmentation`: seeded by the run's seed and
            the step, so a resume distorts exactly as the uninterrupted run).
        max_norm: after every step, scale each unit's incoming weights (each row of every
            ``nn.Linear`` weight) down to this L2 norm at most (the callback `mlplab.MaxNorm`).
        average: keep an exponential moving average of the weights: a decay per step (e.g.
            0.999), or a `mlplab.WeightAverage` of ``model`` you made (to keep hold of it:
            ``average.module`` is the averaged model; giving it in ``callbacks`` does the same).
            The averaged weights are the ones validated, tested and saved as the run's model;
            the raw ones go on training.
        patience: stop once this many epochs pass without a better validation accuracy
            (`mlplab.EarlyStopping`); ``history.stopped`` says when and why.
        threads: CPU threads to train with. Default: chosen for the machine as it is (the CPUs
            other processes leave free, the step's work) and re-checked every second
            (`mlplab.threads`), unless you set ``torch.set_num_threads`` yourself, which is kept.
            Every choice and its reason is in ``history.threads``. Your own setting is restored
            when fit returns.
        precision: ``"32-true"`` (float32 throughout) or ``"bf16-mixed"``: the training steps' matrix
            products in bfloat16, while the weights, optimizer, loss and every evaluation stay float32
            (`mlplab.precision`; faster on CPUs and GPUs that multiply bfloat16 natively).
        progress: show a `ProgressBar` (a bar per epoch, a line per epoch, the test result).
            Default: in a notebook or an interactive Python session, unless ``callbacks`` has one.

    After `fit` the model holds the last epoch's weights (so training can go on); the best
    epoch's are in best.pt (`mlplab.open_run(run_dir).model()`), the averaged ones with ``average``.
    """
    _check_arguments(model, epochs, resume, run_dir)
    loss = loss or default_loss(model)
    optimizer = _optimizer(model, optimizer)
    schedule = as_schedule(scheduler)
    chosen = resolve_engine(engine, model, loss, optimizer)
    check_precision(precision, chosen.name, model_device(model).type)
    shaping = _shorthand_callbacks(model, max_norm, average, log_batches)  # they change what is trained and kept
    callbacks = check_callbacks(callbacks)
    state = FitState(
        model=model,
        optimizer=optimizer,
        schedule=schedule,
        loss=loss,
        engine=chosen.name,
        epochs=epochs,
        train_data=train_data,
        device=model_device(model),
        num_batches=len(train_data) if hasattr(train_data, "__len__") else None,  # type: ignore[arg-type]
        classes=list(classes) if classes is not None else _classes(train_data),
        average=_the_average(model, [*shaping, *callbacks]),
        precision=precision,
    )
    if _show_progress(progress, callbacks):
        from mlplab.training.progress import ProgressBar

        callbacks.append(ProgressBar(bar=None))
    if patience is not None:
        from mlplab.training.callbacks import EarlyStopping

        callbacks.append(EarlyStopping(patience))
    if run_dir is not None:
        from mlplab.runs.writer import RunWriter

        writer = run_dir if isinstance(run_dir, RunWriter) else RunWriter(run_dir, resume=resume)
        callbacks = [writer, *callbacks]  # an epoch is saved before anyone hears it ended
    callbacks = [*shaping, *callbacks]
    governor = ThreadGovernor(
        threads,
        work=model_work(model, getattr(train_data, "batch_size", None)),
        numpy_blas=chosen.name == "scratch",
        device=state.device.type,
    )
    try:
        with governor:
            state.threads = governor
            for callback in callbacks:
                callback.on_fit_start(state)  # the writer of a resume restores the state here
            state.history.threads = governor.continue_log(state.history.threads, state.step)
            _fit_epochs(state, chosen, val_data, test_data, callbacks, augment, governor)
    finally:
        for callback in callbacks:
            callback.close()
    return state.history


def _fit_epochs(
    state: FitState,
    chosen: Engine,
    val_data: Batches | None,
    test_data: Batches | None,
    callbacks: list[Callback],
    augment: Callable[[Tensor, int], Tensor] | None,
    governor: ThreadGovernor,
) -> None:
    """Train the epochs, test the best weights, tell the callbacks: the body of `fit`."""
    step = chosen.step(
        state.model, state.loss, state.optimizer, compute_dtype(state.precision)
    )  # after a resume: the scratch engine views the optimizer state
    _train_epochs(state, step, val_data, callbacks, augment, governor)
    if test_data is not None:
        state.metrics = final_metrics(state, test_data)
    state.history.metrics = state.metrics
    for callback in callbacks:
        callback.on_fit_end(state)


def _train_epochs(
    state: FitState,
    step: Step,
    val_data: Batches | None,
    callbacks: list[Callback],
    augment: Callable[[Tensor, int], Tensor] | None,
    governor: ThreadGovernor,
) -> None:
    """The epoch loop: train, validate, record, let the callbacks save and report."""
    for epoch in range(state.epoch + 1, state.epochs + 1):
        if state.stop:  # a resumed run that had already stopped early
            break
        for callback in callbacks:
            callback.on_epoch_start(state, epoch)
        started = time.perf_counter()
        lr = state.optimizer.param_groups[0]["lr"]
        set_epoch(state.train_data, epoch)
        try:
            train = train_epoch(
                state.model,
                state.train_data,
                state.loss,
                state.optimizer,
                state.schedule,
                step=step,
                callbacks=callbacks,
                first_step=state.step,
                augment=augment,
                after_step=[governor],
            )  # the governor's re-check last: it counts the step
        except LossNotFinite as error:  # stopped at that step: nothing of this epoch is kept
            raise_diverged(
                state, epoch, [f"the training loss of step {error.step} (batch {error.batch + 1}) is {error.value}"]
            )
        val = evaluate(state.eval_model, val_data, state.loss) if val_data is not None else None
        check_finite(state, epoch, train["loss"], val["loss"] if val else None)
        state.step += len(train["batch_losses"])
        record = epoch_record(
            epoch,
            state.step,
            lr,
            train["loss"],
            train["accuracy"],
            val["loss"] if val else None,
            val["accuracy"] if val else None,
            time.perf_counter() - started,
        )
        state.history.append(record)
        state.epoch = epoch
        state.new_best = _update_best(state, record)
        for callback in callbacks:
            callback.on_epoch_end(state, record)
        if state.stop:  # a callback (early stopping) asked for no more epochs
            break
    if state.stop and state.epoch < state.epochs:
        state.history.stopped = {"epoch": state.epoch, "reason": state.stop_reason or "a callback stopped training"}


class TrainingDiverged(MlplabError):
    """The loss or the weights stopped being finite numbers; nothing of that epoch was saved."""

    def __init__(self, epoch: int, problems: list[str], advice: str) -> None:
        self.epoch, self.problems = epoch, problems
        super().__init__(
            f"training diverged in epoch {epoch}: {'; '.join(problems)}; nothing of this epoch was saved; {advice}"
        )


def check_finite(state: FitState, epoch: int, train_loss: float, val_loss: float | None) -> None:
    """Refuse to go on (and so to save) when the losses or any weight stopped being finite numbers."""
    problems = [f"the training loss is {train_loss}"] if not math.isfinite(train_loss) else []
    if val_loss is not None and not math.isfinite(val_loss):
        problems.append(f"the validation loss is {val_loss}")
    broken = [name for name, parameter in state.model.named_parameters() if not bool(torch.isfinite(parameter).all())]
    if broken:
        problems.append(f"parameters {', '.join(broken)} hold inf or nan")
    if problems:
        raise_diverged(state, epoch, problems)


def raise_diverged(state: FitState, epoch: int, problems: list[str]) -> None:
    """Raise `TrainingDiverged` for ``problems``, advising on the optimizer's settings."""
    group = state.optimizer.param_groups[0]
    advice = f"lower the learning rate (now {group['lr']:g})"
    if group.get("momentum"):
        advice += f" or the momentum (now {group['momentum']:g})"
    raise TrainingDiverged(epoch, problems, advice + ", or change the loss or optimizer")


def _update_best(state: FitState, record: dict[str, Any]) -> bool:
    """Record the epoch as the best so far if it is (keeping its weights); returns whether it is."""
    best = new_best(state.best, record)
    if best is None:
        return False
    state.best, state.best_weights = best, _copy_weights(state.eval_model)
    return True


def final_metrics(state: FitState, test_data: Batches) -> dict[str, Any]:
    """Test-set metrics of the best epoch's weights (the model a run directory means), for metrics.json."""
    model, tested = state.eval_model, state.epoch
    if state.best is not None and state.best["epoch"] != state.epoch and state.best_weights is not None:
        current = _copy_weights(model)
        model.load_state_dict(state.best_weights)
        tested = state.best["epoch"]
    try:
        test = evaluate(model, test_data, state.loss)
    finally:
        if tested != state.epoch:
            model.load_state_dict(current)  # the model goes on holding the last epoch's weights
    classes = state.classes or [str(index) for index in range(len(test["per_class_accuracy"]))]
    return test_metrics(
        test, list(classes), state.history, tested, state.best, str(state.device), state.engine, state.precision
    )


def _show_progress(progress: bool | None, callbacks: list[Callback]) -> bool:
    """Whether fit adds a `ProgressBar`: when asked, or by default in an interactive session that has none."""
    from mlplab.training.progress import ProgressBar

    if any(isinstance(callback, ProgressBar) for callback in callbacks):
        return False
    return interactive() if progress is None else bool(progress)


def _copy_weights(model: nn.Module) -> dict[str, Tensor]:
    """A copy of the model's state dict that later training steps do not change."""
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _shorthand_callbacks(model: nn.Module, max_norm: float | None, average: Any, log_batches: bool) -> list[Callback]:
    """The callbacks fit's ``max_norm``, ``average`` and ``log_batches`` stand for, in the order they act."""
    from mlplab.training.callbacks import BatchLossLog
    from mlplab.training.weights import MaxNorm, WeightAverage

    made: list[Callback] = [MaxNorm(model, max_norm)] if max_norm is not None else []
    if isinstance(average, WeightAverage):
        made.append(average)
    elif average is not None:
        if isinstance(average, bool) or not isinstance(average, (int, float)):
            raise TypeError(
                f"average must be a decay in (0, 1) or a mlplab.WeightAverage; got {type(average).__name__}"
            )
        made.append(WeightAverage(model, average))
    if log_batches:
        made.append(BatchLossLog())
    return made


def _the_average(model: nn.Module, callbacks: list[Callback]) -> Any:
    """The `WeightAverage` among the callbacks (its weights are the run's model); None when there is none."""
    from mlplab.training.weights import WeightAverage

    averages = [callback for callback in callbacks if isinstance(callback, WeightAverage)]
    if len(averages) > 1:
        raise ValueError("fit takes one WeightAverage; give it as average= or in callbacks, once")
    if averages and averages[0].model is not model:
        raise ValueError("the WeightAverage given to fit averages another model; make it from the model fit trains")
    return averages[0] if averages else None


def set_epoch(data: Any, epoch: int) -> None:
    """Tell data that has epochs (`mlplab.Batches`, a DataLoader's DistributedSampler) which one starts."""
    for target in (data, getattr(data, "sampler", None), getattr(data, "batch_sampler", None)):
        method = getattr(target, "set_epoch", None)
        if callable(method):
            method(epoch)
            return


def _classes(data: Any) -> list[str] | None:
    """Class names carried by the data: a DataLoader's dataset (through a ``Subset``) or mlplab's split."""
    holder = data
    for _ in range(4):  # DataLoader -> Subset -> MNIST, or Batches -> its split
        classes = getattr(holder, "classes", None)
        if classes is not None:
            return [str(name) for name in classes]
        holder = getattr(holder, "dataset", None) or getattr(holder, "split", None)
    return None


def _optimizer(model: nn.Module, optimizer: Any) -> torch.optim.Optimizer:
    """The optimizer `fit` was given, made from the parameters if it is a factory; the default SGD if None."""
    if optimizer is None:
        from mlplab.config import OptimConfig
        from mlplab.optim import build_optimizer

        return build_optimizer(
            model.parameters(), OptimConfig(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, scheduler="none")
        )
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if callable(optimizer):
        made = optimizer(model.parameters())
        if isinstance(made, torch.optim.Optimizer):
            return made
    raise TypeError(
        "optimizer must be a torch.optim optimizer over model.parameters(), or a function making one "
        f"from them (functools.partial(torch.optim.Adam, lr=1e-3)); got {type(optimizer).__name__}"
    )


def _check_arguments(model: Any, epochs: Any, resume: bool, run_dir: Any) -> None:
    if not isinstance(model, nn.Module):
        hint = " (to train a Config, use mlplab.train(config))" if type(model).__name__ == "Config" else ""
        raise TypeError(f"fit trains an nn.Module; got {type(model).__name__}{hint}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise MlplabError(f"epochs must be a whole number of at least 1; got {epochs!r}")
    if resume and run_dir is None:
        raise MlplabError("resume=True needs the run_dir to continue")
