"""Typed run configuration: four small dataclasses, presets, and TOML/dict round-trips.

Every field has exactly one CLI flag (`--batch-size` is `train.batch_size`), so field
names are unique across the sections. A resolved config is plain data: `to_dict` gives
builtins only (it goes into checkpoints loaded with ``weights_only=True``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mlplab import choices
from mlplab.errors import MlplabError, check_choice
from mlplab.precision import check_precision

# The largest integer any field takes: TOML integers, JSON readers and torch's int64 all hold it.
INT64_MAX = 2**63 - 1

# The widest U(-a, a) for init=uniform: 280 times PyTorch's default bound on 784 inputs
# (1/sqrt(784) = 0.036), far past anything that trains, yet a forward pass through six
# hidden layers of 512 stays finite in float32 (outputs near 1e14 on MNIST). 1e308 made
# torch fail with a traceback: the bound does not fit in a float32.
MAX_INIT_RANGE = 10.0

# The most CPU threads per CPU of the machine: more only wait on each other, and far more
# break PyTorch's OpenMP pool (4096 hung and 100000 crashed the process on 2 cores). The
# limit depends on the machine, so it is checked where training starts
# (`mlplab.threads.check_threads`): a run's config stays loadable on any machine.
THREADS_PER_CPU = 4


@dataclass(frozen=True)
class Bounds:
    """The values a number field takes: ``low`` to ``high`` (None: no upper limit), each end included unless open.

    Every number must also be finite: nan and inf are never a setting.
    """

    low: float
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def admits(self, value: float | numbers.Real) -> bool:
        """Whether ``value`` is finite and within the bounds."""
        if isinstance(value, float) and not math.isfinite(value):  # ints are finite (and may not fit a float)
            return False
        if value <= self.low if self.low_open else value < self.low:
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def requirement(self, whole: bool) -> str:
        """``a whole number >= 1``, ``a finite number > 0``, ``a number in [0, 1)``: for error messages."""
        kind = "a whole number" if whole else "a number" if self.high is not None else "a finite number"
        return f"{kind} {self}"

    def __str__(self) -> str:
        """``>= 1``, ``> 0``, ``in [0, 1)``, ``in [0, 2**63 - 1]``: how the CLI help and errors state them."""
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        return (
            f"in {'(' if self.low_open else '['}{_number(self.low)}, "
            f"{_number(self.high)}{')' if self.high_open else ']'}"
        )


def _number(value: float) -> str:
    if value == INT64_MAX:
        return "2**63 - 1"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"  # 1000000, not 1e+06


# Every number has a declared range: the upper ends are far past any sensible setting, and keep
# a typo (an extra few zeros) from asking for days of work or terabytes of memory.
COUNT = Bounds(1, 1_000_000)  # epochs, batch sizes, patience: counts and sizes
FRACTION = Bounds(0, 1, high_open=True)  # dropout 1 zeroes every unit; momentum 1 never forgets a step
LARGE = 1e6  # the largest rate, penalty or weight a setting takes


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None, bounds: Bounds | None = None) -> Any:
    """A config field whose help text, allowed values and numeric bounds feed the CLI and validation."""
    return field(default=default, metadata={"help": help, "choices": choices, "bounds": bounds})


def one_of(default: str, names: tuple[str, ...], notes: dict[str, str] | None = None, more: str = "") -> Any:
    """A `setting` that takes one of ``names``, a list from `mlplab.choices`: its help lists them
    (``notes`` glosses some), then goes on with ``more``."""
    return setting(default, choices.listing(names, notes) + more, choices=names)


@dataclass
class DataConfig:
    """Where the images come from and how they are split and scaled; checks its values when built."""

    dataset: str = one_of("mnist", choices.DATASETS)
    data_dir: str | None = setting(
        None,
        "folder holding the four IDX files (raw or .gz); default: $MLPLAB_DATA_DIR, else the download cache, "
        "else the copy bundled with mlplab (MNIST), else the mirrors",
    )
    cache_dir: str | None = setting(None, "download cache; default: $MLPLAB_CACHE_DIR, else ~/.cache/mlplab")
    download: bool = setting(
        True, "fetch from the mirrors when no local copy is found (MNIST never needs to: mlplab bundles it)"
    )
    normalize: str = one_of("standard", choices.NORMALIZATIONS, choices.NORMALIZATION_NOTES)
    val_split: str = one_of("last", choices.VAL_SPLITS, choices.VAL_SPLIT_NOTES)
    val_size: int = setting(10_000, "images held out of the 60k training set for validation", bounds=COUNT)
    drop_last: bool = setting(False, "drop the last partial training batch (evaluation never drops)")
    augment: str = one_of(
        "none",
        choices.AUGMENTS,
        choices.AUGMENT_NOTES,
        more=(": distort every training batch on the fly, drawn from the seed and the step (resume stays exact)"),
    )
    rotate: float = setting(12.0, "augment: largest rotation, degrees either way", bounds=Bounds(0, 180))
    scale: float = setting(
        0.12,
        "augment: largest change of size, a fraction either way (0.12: 0.88 to 1.12 times)",
        bounds=Bounds(0, 1, high_open=True),
    )
    shear: float = setting(8.0, "augment: largest shear, degrees either way", bounds=Bounds(0, 60))
    translate: float = setting(2.0, "augment: largest shift, pixels either way on each axis", bounds=Bounds(0, 14))
    elastic_alpha: float = setting(
        34.0, "augment: elastic displacement scale alpha, pixels (Simard 2003: 34)", bounds=Bounds(0, 1000)
    )
    elastic_sigma: float = setting(
        4.0,
        "augment: width sigma of the Gaussian smoothing the displacement field, pixels (Simard 2003: 4)",
        bounds=Bounds(0, 28, low_open=True),
    )
    stroke: float = setting(
        0.0,
        "augment: largest change of stroke width, MNIST pixels per side either way: each image "
        "is dilated (bolder) or eroded (thinner) by U(-stroke, stroke) px; applies with any "
        "--augment, none included; 0: off",
        bounds=Bounds(0, 2),
    )
    blur: float = setting(
        0.0,
        "augment: largest Gaussian blur, standard deviation in pixels: each image is blurred by "
        "sigma U(0, blur), then its strongest ink brought back to the level it had; applies with "
        "any --augment, none included; 0: off",
        bounds=Bounds(0, 3),
    )

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class ModelConfig:
    """The network: an MLP over flattened 28x28 images; checks its values when built."""

    hidden: tuple[int, ...] = setting(
        (512,), "hidden layer widths, comma-separated, each >= 1; none is logistic regression"
    )
    activation: str = one_of("relu", choices.ACTIVATIONS)
    output: str = one_of("logits", choices.OUTPUTS)
    dropout: float = setting(0.0, "dropout probability after each hidden activation", bounds=FRACTION)
    init: str = one_of("default", choices.INITS, choices.INIT_NOTES)
    init_range: float = setting(0.1, "a in U(-a, a) for init=uniform", bounds=Bounds(0, MAX_INIT_RANGE, low_open=True))

    def __post_init__(self) -> None:
        check_fields(self)


# The optimizers that take momentum, and the one that takes Nesterov momentum.
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")
NESTEROV_OPTIMIZERS = ("sgd",)

# Settings only some optimizers take, with their "off" value. An override that switches the
# optimizer drops inherited values the new one cannot take (`--optimizer adam` on the default
# recipe), while a value the same overrides set is kept and refused (`--optimizer adam
# --momentum 0.9` is still an error).
OPTIMIZER_ONLY = {"momentum": (MOMENTUM_OPTIMIZERS, 0.0), "nesterov": (NESTEROV_OPTIMIZERS, False)}


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule; checks its values, and the settings its optimizer takes, when built."""

    optimizer: str = one_of("sgd", choices.OPTIMIZERS)
    lr: float = setting(0.2, "learning rate (peak rate for onecycle)", bounds=Bounds(0, LARGE, low_open=True))
    momentum: float = setting(0.9, "sgd and rmsprop momentum", bounds=FRACTION)
    nesterov: bool = setting(True, "sgd Nesterov momentum (needs momentum > 0)")
    weight_decay: float = setting(0.0, "L2 penalty (decoupled for adamw)", bounds=Bounds(0, LARGE))
    scheduler: str = one_of("onecycle", choices.SCHEDULERS)
    gamma: float = setting(
        0.9,
        "lr decay factor per epoch (exponential) or per step_size epochs (step)",
        bounds=Bounds(0, 1, low_open=True),
    )
    step_size: int = setting(1, "epochs between decays for scheduler=step", bounds=COUNT)
    max_norm: float | None = setting(
        None,
        "after every step, scale each unit's incoming weights down to this L2 norm "
        "at most (Srivastava et al. 2014; default: off)",
        bounds=Bounds(0, LARGE, low_open=True),
    )

    def __post_init__(self) -> None:
        check_fields(self)
        name = self.optimizer
        if self.momentum > 0 and name not in MOMENTUM_OPTIMIZERS:
            raise MlplabError(
                f"momentum applies only to {' and '.join(MOMENTUM_OPTIMIZERS)}, not {name}; "
                "set --momentum 0 or change --optimizer"
            )
        if self.nesterov and name not in NESTEROV_OPTIMIZERS:
            raise MlplabError(f"nesterov applies only to --optimizer sgd, not {name}; drop --nesterov")
        if self.nesterov and self.momentum <= 0:
            raise MlplabError("nesterov needs momentum > 0; set --momentum (e.g. 0.9) or drop --nesterov")


# The losses that take label smoothing.
SMOOTHED_LOSSES = ("cross_entropy", "nll")


@dataclass
class TrainConfig:
    """The loop: loss, batches, epochs, seed, device and where results go; checks its values when built."""

    loss: str = one_of("cross_entropy", choices.LOSSES)
    beta: float = setting(1.0, "extra weight on the correct class's residual for loss=ccql", bounds=Bounds(0, LARGE))
    label_smoothing: float = setting(
        0.0, "aim cross_entropy and nll at (1 - e) one-hot + e / classes instead of one-hot (0: off)", bounds=FRACTION
    )
    patience: int | None = setting(
        None,
        "stop early when the validation accuracy has not improved for this many epochs (default: train every epoch)",
        bounds=COUNT,
    )
    ema: float | None = setting(
        None,
        "keep an exponential moving average of the weights with this decay per step "
        "(e.g. 0.999): it is what is validated, tested and saved (default: off)",
        bounds=Bounds(0, 1, low_open=True, high_open=True),
    )
    batch_size: int = setting(256, "training batch size", bounds=COUNT)
    eval_batch_size: int = setting(1000, "evaluation batch size (never drops samples)", bounds=COUNT)
    epochs: int = setting(4, "number of passes over the training split", bounds=COUNT)
    seed: int = setting(0, "drives the split, initialisation, shuffling and dropout", bounds=Bounds(0, INT64_MAX))
    threads: int | None = setting(
        None,
        f"CPU threads for PyTorch while training, at most {THREADS_PER_CPU} per CPU; default: chosen for the "
        "machine as it is (the CPUs other processes leave free, the work of a step) and re-checked every second "
        "(mlplab.threads)",
        bounds=Bounds(1, 4096),
    )
    engine: str = one_of(
        "auto",
        choices.ENGINES,
        more=(
            ": how gradients are computed; manual writes the MLP's backprop out by hand (the same gradients, faster "
            "on small nets), auto uses it wherever it applies (no dropout, a built-in loss); scratch computes the "
            "whole step in NumPy (mlplab.scratch, CPU only)"
        ),
    )
    precision: str = one_of(
        "32-true",
        choices.PRECISIONS,
        choices.PRECISION_NOTES,
        more=(
            ": bf16-mixed keeps the weights, optimizer, loss and evaluation in float32 and is faster only where the "
            "hardware multiplies bfloat16 (AVX512-BF16 or AMX CPUs, recent GPUs; mlplab.precision)"
        ),
    )
    device: str = one_of("auto", choices.DEVICES)
    out: str | None = setting(None, "run directory; default runs/<dataset>-<preset or mlp>-<time>")
    log_batches: bool = setting(False, "also record every training batch's loss (batches.csv)")
    tensorboard: bool = setting(
        False, "also write TensorBoard logs into RUN_DIR/tensorboard (needs the tensorboard extra)"
    )
    wandb: bool = setting(
        False, "also log to Weights & Biases, online or with WANDB_MODE=offline (needs the wandb extra)"
    )
    wandb_project: str = setting("mlplab", "Weights & Biases project for --wandb")
    progress: bool = setting(True, "tqdm bar (only shown on a terminal)")

    def __post_init__(self) -> None:
        check_fields(self)
        check_smoothing(self.loss, self.label_smoothing)
        check_precision(self.precision, self.engine, self.device)
        if self.engine == "scratch" and self.device not in ("auto", "cpu"):
            raise MlplabError(
                f"--engine scratch computes in NumPy on the CPU, not on {self.device}; use --device cpu or auto"
            )


@dataclass
class Config:
    """A whole run: data, model, optimizer and loop settings.

    Each section checks its own values when built (types, choices, bounds, and the rules
    between its fields); the config checks its preset's name and the rule between sections
    (nll reads log-probabilities). That is the one place a setting is checked: the builders
    that take a config (`mlplab.optim.build_optimizer`, `mlplab.data.load_data`,
    `mlplab.losses.config_loss`, ...) trust it. `dataclasses.replace` builds, so it checks too;
    assigning a field of a built config does not: change configs with `replace` or `apply_overrides`.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str | None = None  # the lab recipe this config started from, if any

    def __post_init__(self) -> None:
        if self.preset is not None:
            check_choice("preset", self.preset, sorted(PRESETS))
        check_output(self.train.loss, self.model.output)


SECTIONS = ("data", "model", "optim", "train")
# Fields that say where a run's files go, where its data is found, and how visibly and on how
# many threads it trains: not what it trains. A cached model's fingerprint reads them at their
# defaults (`mlplab.training.pretrained`); the workers of a study may differ in them, and in the
# device (`mlplab.tune.study.LOCAL_FIELDS`).
PLACE_FIELDS = (
    "out",
    "progress",
    "threads",
    "data_dir",
    "cache_dir",
    "download",
    "log_batches",
    "tensorboard",
    "wandb",
    "wandb_project",
)
SECTION_TYPES = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "train": TrainConfig}

# The defaults above are mlplab's own recipe, chosen for a first run: 784-512-10, SGD with
# Nesterov momentum 0.9, a one-cycle schedule peaking at lr 0.2, batch 256, 4 epochs. It
# reaches 98.3% test accuracy on MNIST in 3 to 4 s of training on 2 CPU cores (docs/how-to/train.md).

# What the lab recipes share, whatever the defaults: the lab net, plain SGD at a fixed rate.
_LAB: dict[str, Any] = dict(
    hidden=(16, 32, 24),
    optimizer="sgd",
    lr=0.01,
    momentum=0.0,
    nesterov=False,
    scheduler="none",
    batch_size=64,
    epochs=3,
)

# Lab recipes: overrides of the defaults above, keyed by field name; each states every
# setting of its lab, so changing mlplab's defaults never changes a lab's recipe.
PRESETS: dict[str, dict[str, Any]] = {
    # The MLP lab: 784-16-32-24-10 with log-softmax output and NLL loss.
    "lab": {**_LAB, "output": "log_softmax", "loss": "nll", "momentum": 0.9},
    # A two-hidden-layer net, 784-32-16-10.
    "twolayer": {**_LAB, "hidden": (32, 16), "momentum": 0.9},
    # The tutorial's wider net, 784-120-256-10, trained with Adam.
    "tutorial": {**_LAB, "hidden": (120, 256), "optimizer": "adam", "lr": 1e-3},
    # nn.Sequential lab net, 784-64-64-10.
    "seq": {**_LAB, "hidden": (64, 64), "momentum": 0.9},
    # Logistic regression 784-10 as in "What is torch.nn really?": lr 0.5, batch 64, 2 epochs.
    "logistic": {**_LAB, "hidden": (), "lr": 0.5, "epochs": 2, "normalize": "unit"},
    # mlplab's own recipes, each stating every setting it relies on (docs/how-to/recipes.md):
    # 98% on MNIST in under a second of training on 2 CPU cores: one wide layer, two epochs, a one-cycle
    # schedule to a high rate, label smoothing, the matrix products in bfloat16 (`mlplab.precision`: 1.7x
    # sooner where the CPU multiplies bfloat16 natively, at the same accuracy; elsewhere add --precision 32-true).
    # 384 units rather than 512: 98.22% over 30 seeds against 98.27% over 10, in three quarters of the time.
    "fast": dict(
        hidden=(384,),
        activation="relu",
        optimizer="sgd",
        lr=0.3,
        momentum=0.9,
        nesterov=True,
        weight_decay=0.0,
        scheduler="onecycle",
        batch_size=256,
        epochs=2,
        loss="cross_entropy",
        label_smoothing=0.1,
        augment="none",
        val_split="last",
        val_size=10_000,
        precision="bf16-mixed",
    ),
    # 99% on MNIST in about 21 s of training on 2 CPU cores: best's two layers of 1024 for 8 epochs at batch
    # 512, milder distortions (a short schedule cannot fit best's), bfloat16 products.
    "fast99": dict(
        hidden=(1024, 1024),
        activation="relu",
        optimizer="sgd",
        lr=0.4,
        momentum=0.9,
        nesterov=True,
        weight_decay=0.0,
        scheduler="onecycle",
        batch_size=512,
        epochs=8,
        loss="cross_entropy",
        label_smoothing=0.1,
        augment="both",
        rotate=8.0,
        scale=0.08,
        shear=6.0,
        translate=1.5,
        elastic_alpha=28.0,
        elastic_sigma=4.0,
        val_split="last",
        val_size=5_000,
        precision="bf16-mixed",
    ),
    # As good as a plain MLP gets in 15 minutes on 2 CPU cores (99.57% over 3 seeds in about 13): two layers
    # of 1024, affine and elastic distortions of every batch, label smoothing, a moving average of the weights,
    # 150 epochs on all 60,000 training images (no validation split: the epoch kept is the one of best training
    # accuracy, in practice one of the last), bfloat16 products.
    "best": dict(
        hidden=(1024, 1024),
        activation="relu",
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        nesterov=True,
        weight_decay=0.0,
        scheduler="onecycle",
        batch_size=128,
        epochs=150,
        loss="cross_entropy",
        label_smoothing=0.1,
        augment="both",
        ema=0.999,
        val_split="none",
        precision="bf16-mixed",
    ),
    # For people's own digits (`mlplab predict` and `serve` with no run): 784-512-10 as fast had it, trained 12 epochs
    # on digits distorted as people hand them in: affine and elastic, strokes bolder or thinner by up to
    # half a pixel, blurred up to sigma 1 (docs/how-to/predict.md, "A model for your own digits").
    # About 30 s on 2 CPU cores.
    "digits": dict(
        hidden=(512,),
        activation="relu",
        optimizer="sgd",
        lr=0.3,
        momentum=0.9,
        nesterov=True,
        weight_decay=0.0,
        scheduler="onecycle",
        batch_size=256,
        epochs=12,
        loss="cross_entropy",
        label_smoothing=0.1,
        augment="both",
        rotate=12.0,
        scale=0.15,
        shear=8.0,
        translate=2.0,
        elastic_alpha=34.0,
        elastic_sigma=4.0,
        stroke=0.5,
        blur=1.0,
        val_split="last",
        val_size=5_000,
        precision="32-true",
    ),
}


def field_owner() -> dict[str, str]:
    """Map every field name to the section that owns it (``"lr" -> "optim"``)."""
    return {f.name: section for section, kind in SECTION_TYPES.items() for f in fields(kind)}


def field_types() -> dict[str, Any]:
    """Map every field name to its dataclass field (for types and defaults)."""
    return {f.name: f for kind in SECTION_TYPES.values() for f in fields(kind)}


def _kind(f: dataclasses.Field) -> str:
    """How a field's values are read and checked: ``hidden``, ``bool``, ``int``, ``float``, ``choice`` or ``text``."""
    kind = str(f.type)  # the annotation as written: "int | None", "tuple[int, ...]"
    if f.name == "hidden":
        return "hidden"
    if isinstance(f.default, bool) or kind == "bool":
        return "bool"
    if "int" in kind and "float" not in kind:
        return "int"
    if "float" in kind:
        return "float"
    return "choice" if f.metadata.get("choices") else "text"


def check_fields(section: Any) -> None:
    """Refuse, in one line, the first field of a config section whose value its type, choices or bounds exclude
    (any dataclass whose fields are `setting`s: the run's sections, the experiments' configs)."""
    for f in fields(section):
        _check_value(f, getattr(section, f.name))


def check_setting(name: str, value: Any) -> None:
    """Refuse ``value`` for the config field ``name`` as a config would (for values that reach a builder from
    Python)."""
    _check_value(field_types()[name], value)


def _check_value(f: dataclasses.Field, value: Any) -> None:
    name, kind = f.name, _kind(f)
    if value is None:
        if "None" not in str(f.type):
            raise MlplabError(f"{name} needs a value")
    elif kind == "hidden":
        _check_widths(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise _not_boolean(name, value)
    elif kind in ("int", "float"):
        _check_number(name, value, kind == "int", f.metadata.get("bounds"))
    elif kind == "text" and not isinstance(value, str):
        raise MlplabError(f"{name} must be text (a quoted string in a TOML file); got {value!r}")
    elif kind == "choice" and (not isinstance(value, str) or value not in f.metadata["choices"]):
        raise MlplabError(f"{name} must be one of: {', '.join(f.metadata['choices'])}; got {value!r}")


def _check_number(name: str, value: Any, whole: bool, bounds: Bounds | None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if whole else numbers.Real):
        raise _not_number(name, value, whole)
    if bounds is not None and not bounds.admits(value):
        raise MlplabError(f"{name} must be {bounds.requirement(whole)}; got {value!r}")
    _check_int64(name, value)


def _check_int64(name: str, number: Any) -> None:
    """Refuse an integer that TOML and torch's int64 cannot hold (beyond that torch fails with a traceback)."""
    if isinstance(number, numbers.Integral) and abs(int(number)) > INT64_MAX:
        raise MlplabError(f"{name} must be at most 2**63 - 1; got {number}")


def _check_widths(widths: Any) -> None:
    """Refuse hidden layer widths unless they are a sequence of positive integers that int64 holds."""
    if not isinstance(widths, (tuple, list)) or not all(
        isinstance(width, numbers.Integral) and not isinstance(width, bool) for width in widths
    ):
        raise _not_widths(widths)
    if any(width <= 0 for width in widths):
        raise MlplabError(f"hidden layer widths must be positive; got {widths!r}")
    _check_int64("a hidden layer width", max(widths, default=0))


def check_smoothing(loss: str, label_smoothing: float) -> None:
    """Refuse label smoothing for a loss that does not take it (only cross_entropy and nll do)."""
    if label_smoothing and loss not in SMOOTHED_LOSSES:
        raise MlplabError(
            f"label smoothing applies to the cross_entropy and nll losses, not {loss}; "
            "set --label-smoothing 0 or --loss cross_entropy"
        )


def check_output(loss: str, output: str) -> None:
    """Refuse a loss that cannot read the model's output: nll reads log-probabilities, not logits."""
    if loss == "nll" and output == "logits":
        raise MlplabError(
            "loss 'nll' expects log-probabilities but the model outputs logits; "
            "use --output log_softmax or --loss cross_entropy"
        )


def setting_value(name: str, value: Any) -> Any:
    """``value`` (from a flag, TOML or a sweep's grid) as the field ``name`` takes it, checked on its own: its
    type, choices and bounds. The rules between fields need a whole config; they are checked when one is built."""
    if name not in field_types():
        raise _unknown_field(name)
    value = _coerce(name, value)
    check_setting(name, value)
    return value


def _unknown_field(name: str) -> MlplabError:
    return MlplabError(f"unknown config field {name!r}; see `mlplab train --help` for the fields")


def _coerce(name: str, value: Any) -> Any:
    """Convert a value read from TOML/JSON/CLI to the field's type; the section checks it when built."""
    f = field_types()[name]
    kind = _kind(f)
    if kind == "hidden":
        return _hidden(value)
    if value is None:
        return None
    if kind == "bool":
        return _boolean(name, value)
    if kind == "int":
        try:
            return _integer(value)
        except (TypeError, ValueError):
            raise _not_number(name, value, whole=True) from None
    if kind == "float":
        try:
            return float(_not_bool(value))
        except (TypeError, ValueError):
            raise _not_number(name, value, whole=False) from None
    if isinstance(value, os.PathLike):  # a path given from Python
        return os.fspath(value)
    if isinstance(value, str) or kind == "choice":  # a choice that is no text is refused with the list
        return value
    raise MlplabError(f"{name} must be text (a quoted string in a TOML file); got {value!r}")


def _not_number(name: str, value: Any, whole: bool) -> MlplabError:
    return MlplabError(f"{name} must be {'an integer' if whole else 'a number'}; got {value!r}")


def _not_bool(value: Any) -> Any:
    """``value``, unless it is a bool (``True`` is an int to Python but never a number setting)."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a number")
    return value


def _integer(value: Any) -> int:
    """An int from an int, a whole float or a string of digits; else ValueError/TypeError."""
    if isinstance(_not_bool(value), float) and not value.is_integer():
        raise ValueError("not a whole number")
    return int(value)


def _hidden(value: Any) -> tuple[int, ...]:
    """Layer widths from ``"16,32,24"``, ``"none"`` or a list; an empty entry (``16,,32``) is an error."""
    entries = value
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("none", "()", "[]"):
            return ()
        if not text:
            raise MlplabError("hidden needs layer widths like 16,32,24, or none for no hidden layer")
        entries = [entry.strip() for entry in text.split(",")]
        if "" in entries:
            raise MlplabError(
                f"hidden has an empty entry in {value!r}; give widths like 16,32,24, or none for no hidden layer"
            )
        entries = [width for entry in entries for width in entry.split()]  # "16 32" also works
    try:
        return tuple(_integer(width) for width in entries)
    except (TypeError, ValueError):
        raise _not_widths(value) from None


def _not_widths(value: Any) -> MlplabError:
    return MlplabError(f"hidden must be a list of layer widths like 16,32,24; got {value!r}")


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise _not_boolean(name, value)


def _not_boolean(name: str, value: Any) -> MlplabError:
    return MlplabError(f"{name} must be true or false; got {value!r}")


def apply_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """Return a copy of ``config`` with flat ``{field: value}`` overrides applied (each section checks them
    when built)."""
    owner = field_owner()
    sections = {s: dataclasses.asdict(getattr(config, s)) for s in SECTIONS}
    preset = config.preset
    named = {name.replace("-", "_"): value for name, value in overrides.items()}
    for name, value in named.items():
        if name == "preset":
            preset = value
            continue
        if name not in owner:
            raise _unknown_field(name)
        sections[owner[name]][name] = _coerce(name, value)
    if "optimizer" in named:
        optim = sections["optim"]
        for name, (takers, off) in OPTIMIZER_ONLY.items():
            if name not in named and optim["optimizer"] not in takers:
                optim[name] = off
    return Config(preset=preset, **{s: SECTION_TYPES[s](**sections[s]) for s in SECTIONS})


def from_preset(name: str) -> Config:
    """The config of a lab recipe; unknown names list the choices."""
    base = Config(preset=name)  # refuses an unknown name, listing the presets
    return apply_overrides(base, PRESETS[name])


def changed_fields(config: Config) -> dict[str, Any]:
    """The fields of ``config`` that differ from the defaults, flat: what a file says over a preset."""
    default = Config()
    return {
        field.name: getattr(getattr(config, section), field.name)
        for section, kind in SECTION_TYPES.items()
        for field in dataclasses.fields(kind)
        if getattr(getattr(config, section), field.name) != getattr(getattr(default, section), field.name)
    }


def resolve_config(
    preset: str | None = None,
    file: Config | None = None,
    flags: dict[str, Any] | None = None,
    *,
    base: Config | None = None,
) -> Config:
    """A config from its layers, later winning: what ``mlplab train``, ``sweep`` and ``tune`` do with their flags.

    Args:
        preset: a lab recipe's name (`PRESETS`): the layer over the defaults.
        file: a config read from a TOML file. Over a preset it sets the fields it changes from
            the defaults; without one it is the whole config (a file is a whole config).
        flags: flat ``{field: value}`` overrides, the last layer.
        base: the config to start from instead of the defaults or the preset (a resumed run's).
    """
    config = base if base is not None else from_preset(preset) if preset else Config()
    if file is not None:
        config = apply_overrides(config, changed_fields(file)) if preset else file
    return apply_overrides(config, flags or {})


def to_dict(config: Config) -> dict[str, Any]:
    """Nested builtins (tuples become lists) for JSON, TOML and checkpoints."""
    result: dict[str, Any] = {"preset": config.preset}
    for section in SECTIONS:
        values = dataclasses.asdict(getattr(config, section))
        result[section] = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    return result


def from_dict(data: dict[str, Any]) -> Config:
    """Inverse of `to_dict`; also accepts a flat ``{field: value}`` mapping."""
    flat: dict[str, Any] = {}
    base = Config()
    for key, value in data.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise MlplabError(f"config section [{key}] must be a table of fields")
            flat.update(value)
        elif key == "preset":
            if value is not None:
                base = from_preset(value)
        elif isinstance(value, dict):
            raise MlplabError(_unknown_section(key))
        else:
            flat[key] = value
    return apply_overrides(base, flat)


def _unknown_section(name: str) -> str:
    """The error for a TOML table mlplab does not read, naming the ones it does."""
    known = ", ".join(f"[{section}]" for section in SECTIONS)
    close = difflib.get_close_matches(name, SECTIONS, n=1)
    hint = f" (did you mean [{close[0]}]?)" if close else ""
    return f"unknown config section [{name}]{hint}; the sections are {known}"


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The tables of a TOML file, or a one-line error naming it as ``what`` (missing, not UTF-8, not TOML)."""
    from mlplab.files import read_settings_text

    text = read_settings_text(path, what)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MlplabError(f"{what} {path} is not valid TOML: {error}") from None


def load_config(path: str | Path) -> Config:
    """Read a config file written by `save_toml` (sections) or by hand (flat keys)."""
    return from_dict(read_toml(path))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def to_toml(config: Config) -> str:
    """TOML text of the resolved config; fields that are None are left out."""
    data = to_dict(config)
    lines = [] if data["preset"] is None else [f"preset = {_toml_value(data['preset'])}", ""]
    for section in SECTIONS:
        lines.append(f"[{section}]")
        for key, value in data[section].items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def model_fields(config: Config) -> dict[str, Any]:
    """The settings that fix the architecture (a resume must match these)."""
    return {"dataset": config.data.dataset, **to_dict(config)["model"]}
