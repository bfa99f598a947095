"""Every choice list of mlplab, declared once: the names a setting or flag takes, in help order.

The modules that implement the choices keep their own tables keyed by these names (the
activation functions in `mlplab.models`, the losses, optimizers, dataset specs, ...),
and ``tests/test_choices.py`` checks that each table covers exactly its list. Where a
name needs a word of explanation in the help, a ``*_NOTES`` dict gives it, and `listing`
writes the help text from the two.

Nothing here imports torch or NumPy: the config and the CLI read these lists, and
``mlplab --help`` starts without torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# Datasets mlplab can fetch and verify: each has a spec in `mlplab.data.registry`.
DATASETS = ("mnist", "fashion-mnist", "kmnist")
# How pixel intensities are scaled before training (`mlplab.data.loading.normalize`).
NORMALIZATIONS = ("standard", "unit", "symmetric")
NORMALIZATION_NOTES = {"standard": "dataset mean/std", "unit": "[0, 1]", "symmetric": "[-1, 1]"}
# How training batches are distorted on the fly (`mlplab.augment`): random affine maps (rotation,
# scale, shear, translation), Simard's elastic distortions, or both. Stroke width and blur are
# settings of their own (`DataConfig.stroke`, `DataConfig.blur`) that apply with any of these.
AUGMENTS = ("none", "affine", "elastic", "both")
AUGMENT_NOTES = {"elastic": "Simard 2003", "both": "affine, then elastic"}
# Which of the 60k training images are held out for validation (`mlplab.data.loading.split_indices`).
VAL_SPLITS = ("last", "random", "none")
VAL_SPLIT_NOTES = {"last": "last val_size of train", "random": "seeded"}
# The splits a command can read: `mlplab eval --split`, `mlplab show samples --split`.
SPLITS = ("train", "val", "test")

# Hidden-layer nonlinearities of the MLP (`mlplab.models.ACTIVATION_FUNCTIONS`).
ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "leaky_relu", "elu")
# What the MLP's last layer gives: raw class scores, or log-probabilities.
OUTPUTS = ("logits", "log_softmax")
# How the MLP's weights and biases are first drawn (`mlplab.models.MLP`).
INITS = ("default", "uniform", "xavier", "kaiming")
INIT_NOTES = {"default": "PyTorch's", "uniform": "U(-init_range, init_range)"}

# Built-in classification losses (`mlplab.losses`).
LOSSES = ("cross_entropy", "nll", "quadratic", "ccql", "mse")
# Torch optimizers (`mlplab.optim`).
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
# Learning-rate schedules (`mlplab.optim.build_schedule`); none keeps lr fixed.
SCHEDULERS = ("none", "exponential", "step", "cosine", "onecycle")
# How a training step computes its gradients (`mlplab.engines`).
ENGINES = ("auto", "autograd", "manual", "scratch")
# What a training step computes in (`mlplab.precision`), named as Lightning names them: all float32, or the
# matrix products in bfloat16 with float32 weights, optimizer and evaluation.
PRECISIONS = ("32-true", "bf16-mixed")
PRECISION_NOTES = {"32-true": "float32 throughout", "bf16-mixed": "matrix products in bfloat16"}
# Where training runs (`mlplab.device.resolve_device`); auto picks cuda, then mps, then cpu.
DEVICES = ("auto", "cpu", "cuda", "mps")
# Figure files the plots write (`mlplab.plots.backend.save`); --format takes one or several, comma-separated.
FIGURE_FORMATS = ("png", "svg")
# What `mlplab export --format` writes: weights for PyTorch (`mlplab.export`), or a graph for any
# ONNX runtime (`mlplab.export.onnx_file`).
EXPORT_FORMATS = ("safetensors", "onnx")
# How `mlplab tune` stops a trial early (`mlplab.tune.study.build_pruner`): below the median of
# earlier trials at the same epoch, or Hyperband's successive halving.
PRUNERS = ("median", "hyperband")

# The symmetry experiment's own lists (`mlplab experiment symmetry`): the paper's units and rules.
SYMMETRY_ACTIVATIONS = ("logistic", "tanh")
SYMMETRY_OPTIMIZERS = ("sgd", "adam")
SYMMETRY_SCHEDULERS = ("none", "cosine", "exponential")


def listing(names: Sequence[str], notes: Mapping[str, str] | None = None) -> str:
    """``"standard (dataset mean/std) | unit ([0, 1]) | none"``: the names, each with its note if it has one."""
    notes = notes or {}
    return " | ".join(f"{name} ({notes[name]})" if name in notes else name for name in names)
