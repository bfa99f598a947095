# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 4: Logistic regression, history and overfitting
#
# The simplest classifier of digits is one linear layer, 784 pixels to 10 scores, turned
# into probabilities by a softmax: **multinomial logistic regression**. This lab trains it
# and uses it to build the habits every later lab relies on:
#
# 1. the 784-10 model with `nn.LogSoftmax` and `nn.NLLLoss`;
# 2. `train_epoch` and `validate` functions that return exact epoch averages, and the same
#    two from mlplab (`mlplab.train_epoch`, `mlplab.evaluate`), checked to agree;
# 3. a **history**, one record per epoch, and the training curves it gives;
# 4. **overfitting**: a wide network on 1,000 images, what it looks like in the curves, and a remedy;
# 5. what logistic regression learned: its weights, seen as ten 28×28 images;
# 6. Fashion-MNIST with the same code (when its files are available: they are not bundled).
#
# MNIST ships inside mlplab (no network needed). The notebook runs in about half a minute on a
# 2-core laptop.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

import mlplab
from mlplab.config import DataConfig

# The operations of this lab's small nets are too short to split between CPU threads: a second
# thread mostly waits, and on a busy machine it makes training several times slower. One
# thread also makes every number below repeatable.
torch.set_num_threads(1)

# %% [markdown]
# ## 1. The model: a linear layer and a log-softmax
#
# The data: MNIST's 50,000 training and 10,000 validation images, with pixels scaled to
# [0, 1] (`normalize="unit"`), in batches drawn by `mlplab.Batches`.
#
# The model maps an image x (784 pixels) to ten scores z = Wx + b and turns them into
# log-probabilities, log p_k = z_k − log Σ_j exp z_j (`nn.LogSoftmax`). The loss is the
# negative log-probability of the true class, −log p_y, averaged over the batch
# (`nn.NLLLoss`, which expects log-probabilities). Together they are exactly
# `nn.CrossEntropyLoss` on the scores z; computing the log of the softmax in one step is what
# keeps it from overflowing.
#
# The weights start at **zero**. The loss is convex in (W, b), so any start leads to the same
# minimum, and there is no symmetry to break as in a network with hidden units. Zeros have a
# second merit here: a pixel that is 0 in every image (the border) gets no gradient, so its
# weight stays exactly 0 and the weight images in section 5 show only what was learned.

# %%
data = mlplab.load_data(DataConfig(normalize="unit"))  # MNIST: 50k train / 10k val / 10k test, pixels in [0, 1]
print(f"train {tuple(data.train.images.shape)}, val {tuple(data.val.images.shape)}, from {data.origin_description}")
val_batches = mlplab.Batches(data.val, batch_size=1000)


def logistic_regression():
    """The 784-10 model: flatten, one linear layer (initialised to zero), log-softmax."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.LogSoftmax(dim=1))  # (B, 1, 28, 28) -> (B, 10)
    nn.init.zeros_(model[1].weight)
    nn.init.zeros_(model[1].bias)
    return model


loss_fn = nn.NLLLoss()
model = logistic_regression()
print(model)
print(f"{sum(p.numel() for p in model.parameters())} parameters (784 x 10 weights + 10 biases)")

# %% [markdown]
# ## 2. One epoch of training, one pass of validation
#
# An epoch's loss is the mean over its **images**, not over its batches. The last batch of
# an epoch is usually smaller (50,000 = 781 × 64 + 16), and a plain mean of the batch means
# would count each of its 16 images four times as much as the others. So each batch's mean
# loss is multiplied by its size, summed, and divided by the number of images at the end;
# accuracies are counted the same way.

# %% [markdown] tags=["exercise"]
# **Exercise 1.** Write `train_epoch(model, batches, loss_fn, optimizer)`, one pass over the
# batches in train mode (zero the gradients, forward, loss, backward, step), and
# `validate(model, batches, loss_fn)`, one pass in eval mode without gradients. Each returns
# `{"loss": ..., "accuracy": ...}`: the mean loss and the fraction of images classified
# correctly over the whole pass, weighted by batch size.


# %% tags=["student"]
def train_epoch(model, batches, loss_fn, optimizer):
    """One training pass; returns the epoch's mean loss and accuracy over its images."""
    ...  # your code here


def validate(model, batches, loss_fn):
    """One evaluation pass; returns the mean loss and accuracy over the images."""
    ...  # your code here


# %% tags=["solution"]
def train_epoch(model, batches, loss_fn, optimizer):
    """One training pass; returns the epoch's mean loss and accuracy over its images."""
    model.train()
    loss_sum, correct, count = 0.0, 0, 0
    for images, labels in batches:
        optimizer.zero_grad()
        log_probabilities = model(images)  # (B, 10)
        loss = loss_fn(log_probabilities, labels)  # the mean over the B images
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(labels)  # back to a sum over images
        correct += (log_probabilities.argmax(dim=1) == labels).sum().item()
        count += len(labels)
    return {"loss": loss_sum / count, "accuracy": correct / count}


@torch.no_grad()  # no graph: evaluation never calls backward
def validate(model, batches, loss_fn):
    """One evaluation pass; returns the mean loss and accuracy over the images."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for images, labels in batches:
        log_probabilities = model(images)
        loss_sum += loss_fn(log_probabilities, labels).item() * len(labels)
        correct += (log_probabilities.argmax(dim=1) == labels).sum().item()
        count += len(labels)
    return {"loss": loss_sum / count, "accuracy": correct / count}


# %% [markdown]
# mlplab has the same two functions: `mlplab.train_epoch` (it also steps a learning-rate
# schedule and records every batch's loss) and `mlplab.evaluate` (it also returns per-class
# accuracies and the confusion matrix). Trained from the same start on the same batches
# (two `Batches` with one seed visit the images in the same order), the two versions must
# agree up to float rounding:

# %%
torch.manual_seed(0)
ours, theirs = logistic_regression(), logistic_regression()
ours_optimizer = torch.optim.SGD(ours.parameters(), lr=0.1)
theirs_optimizer = torch.optim.SGD(theirs.parameters(), lr=0.1)

ours_train = train_epoch(ours, mlplab.Batches(data.train, batch_size=64, shuffle=True, seed=0), loss_fn, ours_optimizer)
theirs_train = mlplab.train_epoch(
    theirs, mlplab.Batches(data.train, batch_size=64, shuffle=True, seed=0), loss_fn, theirs_optimizer
)
ours_val, theirs_val = validate(ours, val_batches, loss_fn), mlplab.evaluate(theirs, val_batches, loss_fn)
same_model_val = mlplab.evaluate(ours, val_batches, loss_fn)  # mlplab's evaluation of *our* model

print(f"{'':24}{'ours':>10}{'mlplab':>10}")
for name, mine, other in (
    ("train loss", ours_train["loss"], theirs_train["loss"]),
    ("train accuracy", ours_train["accuracy"], theirs_train["accuracy"]),
    ("val loss", ours_val["loss"], theirs_val["loss"]),
    ("val accuracy", ours_val["accuracy"], theirs_val["accuracy"]),
):
    print(f"{name:24}{mine:10.6f}{other:10.6f}")
weight_gap = max((p - q).abs().max().item() for p, q in zip(ours.parameters(), theirs.parameters(), strict=True))
print(f"largest weight difference after one epoch: {weight_gap:.1e}")
print(f"same model, validate vs mlplab.evaluate: loss {ours_val['loss']:.8f} vs {same_model_val['loss']:.8f}")

# %% [markdown]
# ## 3. A history and its curves
#
# A **history** is a list with one plain dictionary per epoch: the epoch number and the
# training and validation loss and accuracy. Being plain data, it can be printed, saved as
# JSON, turned into a table, and plotted after the fact. (`mlplab.fit` returns the same thing,
# `history.epochs`.) The function below trains a fresh logistic regression on a dataset and
# returns the model and its history, showing the curves live as it goes; section 6 runs it
# again, unchanged, on Fashion-MNIST.


# %%
def train_logistic(dataset, epochs, title, lr=0.1):
    """Train a fresh 784-10 logistic regression on a `load_data` bundle; returns (model, history)."""
    torch.manual_seed(0)
    model = logistic_regression()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    train_batches = mlplab.Batches(dataset.train, batch_size=64, shuffle=True, seed=0)
    validation = mlplab.Batches(dataset.val, batch_size=1000)
    live = mlplab.LivePlot(title=title, epochs=epochs, loss_name="NLL loss (nats per image)")
    history = []
    for epoch in range(1, epochs + 1):
        train = train_epoch(model, train_batches, loss_fn, optimizer)
        val = validate(model, validation, loss_fn)
        record = {
            "epoch": epoch,
            "train_loss": train["loss"],
            "train_accuracy": train["accuracy"],
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
        }
        history.append(record)
        live.update(record)
    return model, history


EPOCHS = 5
model, history = train_logistic(data, EPOCHS, "Logistic regression 784-10 on MNIST")
for record in history:
    print(
        ", ".join(
            f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}" for key, value in record.items()
        )
    )

# %% [markdown]
# The live plot is for watching; the final figure is drawn from the history alone, like any
# plot of a finished run. `plot_history` is used again for every run below.


# %%
def plot_history(history, title, best_epoch=None):
    """Loss (left) and accuracy (right) per epoch, training vs validation; a dotted line at best_epoch."""
    epochs = [record["epoch"] for record in history]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for split, color in (("train", "tab:blue"), ("val", "tab:orange")):
        label = "training" if split == "train" else "validation"
        loss_axis.plot(epochs, [r[f"{split}_loss"] for r in history], marker=".", color=color, label=label)
        accuracy_axis.plot(
            epochs, [100 * r[f"{split}_accuracy"] for r in history], marker=".", color=color, label=label
        )
    loss_axis.set(title="Loss", xlabel="epoch", ylabel="NLL loss (nats per image)")
    accuracy_axis.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    for axis in (loss_axis, accuracy_axis):
        if best_epoch is not None:
            axis.axvline(best_epoch, color="gray", linestyle=":", label=f"lowest validation loss (epoch {best_epoch})")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    plt.show()


plot_history(history, f"Logistic regression 784-10 on MNIST: SGD lr 0.1, batch 64, {EPOCHS} epochs")
logistic_val_accuracy = history[-1]["val_accuracy"]

# %% [markdown]
# After 5 epochs logistic regression classifies 91.95% of the validation images correctly.
# The training and validation curves run close together: a linear model has too few
# parameters (7,850) to memorise 50,000 images, so what it learns on the training set holds
# on new images. (The training loss sits *above* the validation loss because it is the mean
# over an epoch during which the model was still improving, while the validation loss is
# measured at the epoch's end.) Its limit is the model itself: 20 epochs of the same
# training reach 92.8%, while the hidden layers of the previous labs take the same data to
# 96–98%.

# %% [markdown]
# ## 4. Overfitting
#
# Now the opposite case: a network far larger than its data. A 784-512-512-10 MLP has
# 669,706 parameters; we train it on only the first **1,000** training images and still
# validate on all 10,000 validation images. This time the loop is `mlplab.fit`, which runs the same
# `train_epoch`/`evaluate` pair, returns the history (`history.epochs`, a list of dicts as
# above) and takes the `LivePlot` as a callback.

# %%
small = mlplab.data.TensorSplit(data.train.images[:1000], data.train.labels[:1000], "train")  # 1,000 images


def train_wide(weight_decay=0.0, epochs=20):
    """784-512-512-10 ReLU MLP on the 1,000 images, SGD with momentum; returns fit's History."""
    torch.manual_seed(0)
    model = mlplab.MLP(hidden=(512, 512), output="log_softmax")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=weight_decay)
    live = mlplab.LivePlot(
        title=f"784-512-512-10 on 1,000 images, weight decay {weight_decay:g}", loss_name="NLL loss (nats per image)"
    )
    return mlplab.fit(
        model,
        mlplab.Batches(small, batch_size=50, shuffle=True, seed=0),
        val_data=val_batches,
        loss=loss_fn,
        optimizer=optimizer,
        epochs=epochs,
        callbacks=[live],
        progress=False,
    )


overfit = train_wide().epochs
val_losses = [record["val_loss"] for record in overfit]
best_epoch = 1 + int(np.argmin(val_losses))
print(
    f"lowest validation loss {min(val_losses):.4f} at epoch {best_epoch}; at epoch {len(overfit)}: "
    f"{val_losses[-1]:.4f}, training loss {overfit[-1]['train_loss']:.4f}, "
    f"training accuracy {overfit[-1]['train_accuracy']:.2%}, validation accuracy {overfit[-1]['val_accuracy']:.2%}"
)

# %%
plot_history(overfit, "Overfitting: 784-512-512-10 MLP trained on 1,000 MNIST images, validated on 10,000", best_epoch)

# %% [markdown]
# Read the curves. The training loss falls towards zero (0.0005 at epoch 20) and the
# training accuracy reaches 100%: with 670 parameters per image, the network can fit each of
# the 1,000 images, including whatever is peculiar to them. The validation loss falls for the
# first few epochs, while the network learns what digits have in common, reaches its lowest
# point at epoch 4 (0.417, dotted line), and then **turns up** (0.539 at epoch 20): from
# there on, training mostly sharpens the network's certainty on its 1,000 images, and the
# validation images it gets wrong are answered ever more confidently, which the loss
# punishes. The validation accuracy stops at about 90% (89.7%), far below what a network
# like this reaches with all 50,000 images (98.3% for mlplab's default 784-512-10 recipe,
# `mlplab train`). The gap between the training and validation curves is the overfitting.
#
# What reduces it:
#
# - **more data**: the real cure; the gap shrinks as the training set grows;
# - **weight decay** (L2 regularisation): each step also shrinks every weight a little
#   (`weight_decay=λ` adds λ·w to the gradient, the gradient of ½λ‖w‖²), so the network
#   cannot grow the large weights that very confident answers need;
# - **early stopping**: keep the weights of the epoch where the validation score was best,
#   and stop once it has not improved for a few epochs (`mlplab.fit(..., patience=N)`, or the
#   `mlplab.EarlyStopping` callback; `mlplab.fit` keeps the best epoch's weights in a run
#   directory's best.pt).

# %% [markdown] tags=["exercise"]
# **Exercise 2.** Train the same network again with weight decay 1e-3 (`train_wide` takes it)
# and store its history (`.epochs`) in `regularised`. Plot both validation losses against
# the epoch in one figure. Does the validation loss still turn up?

# %% tags=["solution"]
regularised = train_wide(weight_decay=1e-3).epochs

figure, axis = plt.subplots(figsize=(8, 4))
for run, label in ((overfit, "no weight decay"), (regularised, "weight decay 1e-3")):
    epochs = [record["epoch"] for record in run]
    axis.plot(epochs, [record["val_loss"] for record in run], marker=".", label=f"{label}, validation")
    axis.plot(epochs, [record["train_loss"] for record in run], linestyle="--", label=f"{label}, training")
axis.set_yscale("log")
axis.set(
    title="784-512-512-10 on 1,000 images: the effect of weight decay",
    xlabel="epoch",
    ylabel="NLL loss (nats per image, log scale)",
)
axis.grid(alpha=0.3, which="both")
axis.legend()
plt.show()
print(
    f"final validation loss: {overfit[-1]['val_loss']:.4f} without weight decay, "
    f"{regularised[-1]['val_loss']:.4f} with; validation accuracy {overfit[-1]['val_accuracy']:.2%} and "
    f"{regularised[-1]['val_accuracy']:.2%}"
)

# %% [markdown]
# With weight decay the training loss levels off near 0.004 instead of falling on towards
# zero (the penalty keeps the weights from growing without end), and the validation loss no
# longer climbs after its bump: it ends at 0.388 instead of 0.539, at a similar accuracy
# (90.0% against 89.7%). Weight decay does not make 1,000 images as good as 50,000; it stops
# the network from becoming confidently wrong.

# %% [markdown]
# ## 5. What logistic regression learned
#
# Each class k has its own row of 784 weights: the score z_k is the sum of the pixels
# weighted by that row. Shown as a 28×28 image, a row is a **template**: red pixels (positive
# weights) are where ink raises the score of class k, blue ones (negative) where ink lowers
# it. The colour scale is centred at 0 and shared by the ten images; the border is white
# because no image ever has ink there, so those weights never left 0.


# %%
def plot_weights(model, classes, title):
    """The 10 rows of the first layer's weights as 28x28 images, on one diverging colour scale centred at 0."""
    weights = model[1].weight.detach().reshape(10, 28, 28)
    limit = weights.abs().max().item()  # symmetric limits: white is exactly 0
    figure, axes = plt.subplots(2, 5, figsize=(11, 4.6), layout="constrained")
    for axis, image, name in zip(axes.flat, weights, classes, strict=True):
        shown = axis.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axis.set_title(name, fontsize=10)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8, label="weight (score per unit of pixel intensity)")
    figure.suptitle(title)
    plt.show()


plot_weights(model, data.spec.classes, "Logistic regression on MNIST: each class's weights (28×28 pixels)")

# %% [markdown]
# Most templates show their digit: a red ring around a blue centre for 0, a red vertical
# stroke for 1, a red bottom bar under a blue middle for 2; blue marks where other digits put
# ink that this one does not (the centre of the 0, which a 1 or a 7 crosses). One template per
# class is all a linear model has, which is why it stays near 92%: it cannot represent that
# a 7 may or may not have a bar, or that a 4 may be open or closed.

# %% [markdown]
# ## 6. Fashion-MNIST, same code
#
# Fashion-MNIST (Zalando, 2017) has exactly MNIST's shape: 70,000 grayscale 28×28 images of
# ten classes of clothing, in the same four IDX files. So everything above runs on it
# unchanged. Its files are not bundled with mlplab: `mlplab.FashionMNIST("data",
# download=True)` finds them in `data/FashionMNIST/raw` (torchvision's layout) or downloads
# them there, and `mlplab.load_data` then reads them as tensors, split 50k/10k like MNIST.
# Offline and without the files, mlplab raises `mlplab.MlplabError` with its reason; this
# notebook then skips the section.

# %%
try:
    mlplab.FashionMNIST("data", train=True, download=True)  # finds or downloads the four files into data/
    fashion = mlplab.load_data(DataConfig(dataset="fashion-mnist", data_dir="data", normalize="unit"))
except mlplab.MlplabError as error:
    fashion = None
    print(
        "Fashion-MNIST's files are not here (offline): put its four IDX files in data/FashionMNIST/raw "
        "or run with network; skipping"
    )
    print(f"(mlplab: {error})")

# %% [markdown]
# With the files present, the same three calls train, plot and show the weights:

# %%
if fashion is not None:
    fashion_model, fashion_history = train_logistic(fashion, EPOCHS, "Logistic regression 784-10 on Fashion-MNIST")
    plot_history(fashion_history, f"Logistic regression 784-10 on Fashion-MNIST: SGD lr 0.1, batch 64, {EPOCHS} epochs")
    plot_weights(fashion_model, fashion.spec.classes, "Logistic regression on Fashion-MNIST: the weights of each class")
    print(f"Fashion-MNIST validation accuracy: {fashion_history[-1]['val_accuracy']:.2%}")

# %% [markdown]
# Clothes are harder than digits for a linear model: shirts, pullovers and coats share one
# silhouette, so their templates look alike and their scores are close. Its published
# logistic-regression benchmark is about 84% (Xiao, Rasul and Vollgraf, 2017), against 92% on
# MNIST; the templates are recognisable outlines of a trouser, a bag, a sandal.
#
# ## Checks

# %% tags=["checks"]
assert logistic_val_accuracy >= 0.91, logistic_val_accuracy  # 0.9195 measured
for key in ("loss", "accuracy"):  # our functions against mlplab's
    assert abs(ours_train[key] - theirs_train[key]) < 1e-6, (key, ours_train[key], theirs_train[key])
    assert abs(ours_val[key] - theirs_val[key]) < 1e-6, (key, ours_val[key], theirs_val[key])
    assert abs(ours_val[key] - same_model_val[key]) < 1e-6, (key, ours_val[key], same_model_val[key])
assert weight_gap < 1e-5, weight_gap
assert overfit[-1]["train_accuracy"] >= 0.99, overfit[-1]["train_accuracy"]  # it memorises the 1,000 images
assert overfit[-1]["val_loss"] > 1.1 * min(val_losses), val_losses  # and its validation loss turns up
assert best_epoch < len(overfit) - 5, best_epoch
assert regularised[-1]["val_loss"] < overfit[-1]["val_loss"]
if fashion is not None:
    # Not measured here (no network); the published logistic-regression benchmark is about 84%.
    assert fashion_history[-1]["val_accuracy"] > 0.75, fashion_history[-1]["val_accuracy"]
print("all checks passed")
