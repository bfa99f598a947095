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
# # Lab 1: MNIST and a first MLP
#
# This lab trains a small multilayer perceptron, 784-16-32-24-10, to read handwritten digits.
# Along the way it builds every piece of a PyTorch training run by hand:
#
# 1. look at the data, and answer "how do we plot a 5×28×28 tensor?";
# 2. write the network as an `nn.Module`;
# 3. write the training loop (zero grad, forward, loss, backward, step);
# 4. average the loss over an epoch exactly, first by hand, then with `mlplab.AverageMeter`;
# 5. measure accuracy, and write a test routine;
# 6. save and load the weights (`state_dict`), and a full checkpoint to restart training from;
# 7. write the same network as an `nn.Sequential`;
# 8. train with the quadratic losses and compare them with cross-entropy.
#
# It needs nothing but mlplab: MNIST is bundled with the package, so no network is used.
# The whole notebook runs in about half a minute on a 2-core laptop.

# %%
import math
import shutil
from fractions import Fraction
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import mlplab

# The lab's net is tiny: each of its operations is too small to split over several CPU threads,
# and one thread is faster (mlplab.threads explains). It also makes every number below repeatable.
torch.set_num_threads(1)
torch.manual_seed(0)

RUNS = Path("runs/lab1")  # everything this notebook writes; removed first, so it can be run again
shutil.rmtree(RUNS, ignore_errors=True)
RUNS.mkdir(parents=True)

# %% [markdown]
# ## 1. The data
#
# `mlplab.load_data()` reads MNIST's files once and holds each split whole as one tensor:
# 50,000 training images, 10,000 validation images (the last 10,000 of the training file) and
# the 10,000 test images. The pixels are standardised, `(x / 255 - 0.1307) / 0.3081`, so the
# background is -0.42 and full ink is 2.82: centred inputs make the first steps of training
# better behaved than raw 0–255 values.

# %%
data = mlplab.load_data()
for split in (data.train, data.val, data.test):
    print(
        f"{split.name:5}  images {tuple(split.images.shape)} {split.images.dtype}  "
        f"labels {tuple(split.labels.shape)} {split.labels.dtype}"
    )
print(f"pixel values from {data.train.images.min():.4f} to {data.train.images.max():.4f}")

# %% [markdown]
# One image is a `(1, 28, 28)` tensor: one channel (grey), 28 rows, 28 columns. `plt.imshow`
# wants a 2-D array, so we drop the channel.

# %%
image, label = data.train.images[0], data.train.labels[0]
figure, axis = plt.subplots(figsize=(3.6, 3.2))
shown = axis.imshow(image[0], cmap="gray")
figure.colorbar(shown, label="standardised pixel value")
axis.set_title(f"The first training image: label {label.item()}")
axis.set_xlabel("column (pixel)")
axis.set_ylabel("row (pixel)")
plt.show()

# %% [markdown]
# **How do we plot a 5×28×28 tensor?** `imshow` draws one 2-D array, so five images must become
# one. Put them side by side: concatenating along the width gives a 28×140 array. The same thing
# without a Python list: move the image index next to the columns (`permute`) and merge the two
# (`reshape`). The same trick with two image indices makes a grid.

# %%
five = data.train.images[:5, 0]  # (5, 28, 28)
row = torch.cat(list(five), dim=1)  # (28, 5 * 28): the images side by side
assert torch.equal(row, five.permute(1, 0, 2).reshape(28, 5 * 28))  # the same, as one reshape
print("five images", tuple(five.shape), "-> one row", tuple(row.shape))

figure, axis = plt.subplots(figsize=(8, 2.2))
axis.imshow(row, cmap="gray")
axis.set_title(
    "Five training images, concatenated along the width; labels "
    + " ".join(str(label) for label in data.train.labels[:5].tolist())
)
axis.set_xlabel("column (pixel)")
axis.set_ylabel("row (pixel)")
plt.show()

# %%
ROWS, COLUMNS = 4, 8
batch = data.train.images[: ROWS * COLUMNS, 0]  # (32, 28, 28)
# (4, 8, 28, 28) -> (4, 28, 8, 28): each grid row's image rows, then its images' columns -> (112, 224)
grid = batch.reshape(ROWS, COLUMNS, 28, 28).permute(0, 2, 1, 3).reshape(ROWS * 28, COLUMNS * 28)

figure, axis = plt.subplots(figsize=(8, 4.4))
axis.imshow(grid, cmap="gray")
axis.set_title("The first 32 training images as a 4×8 grid (one reshape and one permute)")
axis.set_xlabel("column (pixel)")
axis.set_ylabel("row (pixel)")
plt.show()
print("their labels, row by row:")
print(data.train.labels[: ROWS * COLUMNS].reshape(ROWS, COLUMNS))

# %% [markdown]
# ## 2. The network as an `nn.Module`
#
# An `nn.Module` declares its layers in `__init__` (which registers their weights as parameters)
# and says in `forward` how an input flows through them. Our net flattens each image to 784
# numbers, then applies three hidden layers of 16, 32 and 24 ReLU units, and a last layer of 10
# scores, one per digit. It returns log-probabilities (`log_softmax`), which `nn.NLLLoss` expects.


# %%
class Net(nn.Module):
    """The lab's 784-16-32-24-10 MLP: ReLU hidden layers, log-probabilities out."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()  # (B, 1, 28, 28) -> (B, 784)
        self.fc1 = nn.Linear(784, 16)
        self.fc2 = nn.Linear(16, 32)
        self.fc3 = nn.Linear(32, 24)
        self.fc4 = nn.Linear(24, 10)
        self.relu = nn.ReLU()  # no weights: one module serves all three layers

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.flatten(images)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        x = self.relu(self.fc3(x))
        return F.log_softmax(self.fc4(x), dim=1)  # (B, 10) log-probabilities


torch.manual_seed(0)
model = Net()
print(model)
print("parameters:", sum(parameter.numel() for parameter in model.parameters()))
outputs = model(data.train.images[:5])
print("outputs", tuple(outputs.shape), "; each row's probabilities sum to", outputs.exp().sum(dim=1))

# %% [markdown]
# 14,146 parameters: 784·16 + 16 weights and biases in the first layer, 16·32 + 32 in the second,
# 32·24 + 24 in the third, 24·10 + 10 in the last. Untrained, the net gives every digit a
# probability near 1/10.
#
# ## 3. The training loop
#
# Training is five lines repeated for every mini-batch:
#
# - `optimizer.zero_grad()`: PyTorch *adds* new gradients to `.grad`, so clear the last batch's;
# - `outputs = model(images)`: the forward pass, which records the operations;
# - `loss = loss_fn(outputs, labels)`: one number, the batch's mean loss;
# - `loss.backward()`: backpropagation fills each parameter's `.grad`;
# - `optimizer.step()`: moves each parameter a little against its gradient.
#
# `mlplab.Batches` deals the training set in shuffled mini-batches of 64 (a `DataLoader` would do
# the same, more slowly). We take 300 steps and print the loss as we go.

# %%
loss_fn = nn.NLLLoss()  # mean of -log p(label) over the batch
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
train = mlplab.Batches(data.train, batch_size=64, shuffle=True, seed=0)

model.train()
for step, (images, labels) in enumerate(train, start=1):
    optimizer.zero_grad()
    outputs = model(images)
    loss = loss_fn(outputs, labels)
    loss.backward()
    optimizer.step()
    if step % 50 == 0:
        print(f"step {step:3}  batch loss {loss.item():.4f}")
    if step == 300:
        break

# %% [markdown]
# The loss falls from about 2.3 (= ln 10: a uniform guess over ten digits) but jumps from batch
# to batch: each batch is a different sample of 64 images. What we want to report is the mean
# loss over the whole epoch.
#
# ## 4. The epoch's loss: a running average
#
# Summing every batch loss and dividing by the number of batches is subtly wrong: the last batch
# of an epoch is smaller (50,000 = 781 × 64 + 16), and a mean of batch means gives its 16 images
# as much weight as 64. The exact mean weights each batch by its size `b`. Kept as a running
# average after `n` images, the update is
#
# $$\bar\ell \leftarrow \frac{\bar\ell\, n + \ell_{\text{batch}}\, b}{n + b}, \qquad n \leftarrow n + b.$$
#
# At every moment, $\bar\ell$ is the mean loss over the images seen so far in the epoch.

# %% [markdown] tags=["exercise"]
# **Exercise 1.** Complete `train_epoch`: after each step, update `running_loss` by the formula
# above (use `loss.item()`, a Python float, so that no computation graph is kept). The function
# also feeds the same numbers to `mlplab.AverageMeter` (which keeps the sums and divides once at
# the end) and counts the correct answers, to return the epoch's accuracy.


# %% tags=["student"]
def train_epoch(model, batches, optimizer, loss_fn, live=None):
    """One pass over ``batches``; returns (running-average loss, AverageMeter, accuracy)."""
    model.train()
    running_loss, seen, correct = 0.0, 0, 0
    meter = mlplab.AverageMeter()
    for images, labels in batches:
        optimizer.zero_grad()
        outputs = model(images)
        loss = loss_fn(outputs, labels)
        loss.backward()
        optimizer.step()

        size = labels.shape[0]
        running_loss = ...  # your code here: the running average after this batch
        seen += size
        meter.update(loss.item(), size)
        correct += (outputs.argmax(dim=1) == labels).sum().item()
        if live is not None:
            live.batch(loss.item())
    return running_loss, meter, correct / seen


# %% tags=["solution"]
def train_epoch(model, batches, optimizer, loss_fn, live=None):
    """One pass over ``batches``; returns (running-average loss, AverageMeter, accuracy)."""
    model.train()
    running_loss, seen, correct = 0.0, 0, 0
    meter = mlplab.AverageMeter()
    for images, labels in batches:
        optimizer.zero_grad()
        outputs = model(images)
        loss = loss_fn(outputs, labels)
        loss.backward()
        optimizer.step()

        size = labels.shape[0]
        running_loss = (running_loss * seen + loss.item() * size) / (seen + size)
        seen += size
        meter.update(loss.item(), size)
        correct += (outputs.argmax(dim=1) == labels).sum().item()
        if live is not None:
            live.batch(loss.item())
    return running_loss, meter, correct / seen


# %% [markdown]
# Train one epoch of a fresh net and compare the two averages, and the naive mean of batch means.

# %%
torch.manual_seed(0)
model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
train.set_epoch(1)  # the shuffling order of epoch 1 (it depends only on the seed and the epoch)
running_loss, meter, train_accuracy = train_epoch(model, train, optimizer, loss_fn)
batch_means = meter.values()
print(f"running average     {running_loss:.12f}")
print(f"AverageMeter.avg    {meter.avg:.12f}   over {meter.count} images")
print(f"mean of batch means {sum(batch_means) / len(batch_means):.12f}   over {len(batch_means)} batches (not exact)")
print(f"training accuracy   {train_accuracy:.4f}")

# %% [markdown]
# The two exact averages agree to the last digits (they round differently along the way); the
# mean of batch means is off because the last batch holds 16 images, not 64.
#
# ## 5. Accuracy, and a test routine
#
# The net's answer is the digit with the highest score, `outputs.argmax(dim=1)`; the accuracy is
# the fraction of images where it equals the label. `train_epoch` counted the correct answers
# batch by batch *while the weights were changing*, so the training accuracy describes a moving
# net. To measure one fixed net we need a test routine.


# %%
def accuracy(outputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows of ``outputs`` (B, 10) whose highest score is at the label."""
    return (outputs.argmax(dim=1) == labels).float().mean().item()


with torch.no_grad():
    outputs = model(data.val.images[:8])
print("predictions", outputs.argmax(dim=1).tolist())
print("labels     ", data.val.labels[:8].tolist())
print(
    f"accuracy on these 8: {accuracy(outputs, data.val.labels[:8]):.3f} "
    f"(mlplab.accuracy says {mlplab.accuracy(outputs, data.val.labels[:8]):.3f})"
)

# %% [markdown] tags=["exercise"]
# **Exercise 2.** Write `test(model, batches, loss_fn)`, returning the mean loss and the accuracy
# over *every* image of `batches`. Three things matter:
#
# - `model.eval()`: layers that behave differently in training (dropout, batch norm) switch to
#   their test behaviour (our net has none, but a test routine must not depend on that);
# - `torch.no_grad()`: no graph is recorded, which saves memory and time;
# - exact means: sum `loss × batch size` and the correct answers, divide by the number of images
#   at the end; never drop the last, smaller batch.


# %% tags=["student"]
def test(model, batches, loss_fn):
    """Mean loss and accuracy of ``model`` over every image of ``batches``."""
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    ...  # your code here: every batch, without recording a graph
    return total_loss / count, correct / count


# %% tags=["solution"]
def test(model, batches, loss_fn):
    """Mean loss and accuracy of ``model`` over every image of ``batches``."""
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for images, labels in batches:
            outputs = model(images)
            total_loss += loss_fn(outputs, labels).item() * labels.shape[0]
            correct += (outputs.argmax(dim=1) == labels).sum().item()
            count += labels.shape[0]
    return total_loss / count, correct / count


# %% [markdown]
# Batches of 512 leave a last batch of 272 images (10,000 = 19 × 512 + 272): a good test of the
# weighting. `mlplab.evaluate` does the same job (and also returns per-class accuracies and the
# confusion matrix); the two must agree.

# %%
val = mlplab.Batches(data.val, batch_size=512)  # in file order: evaluation needs no shuffling
test_batches = mlplab.Batches(data.test, batch_size=512)
val_loss, val_accuracy = test(model, val, loss_fn)
reference = mlplab.evaluate(model, val, loss_fn)
print(f"after one epoch: validation loss {val_loss:.6f}, accuracy {val_accuracy:.4f}")
print(
    f"mlplab.evaluate:  validation loss {reference['loss']:.6f}, accuracy {reference['accuracy']:.4f}"
    f" over {reference['count']} images"
)

# %% [markdown]
# ## Training for three epochs, watching it live
#
# Now the whole run, as the lab does it: a fresh net, three epochs of SGD (learning rate 0.01,
# momentum 0.9, batches of 64), each followed by a pass over the validation set. `mlplab.LivePlot`
# redraws the curves after every epoch: the thin line is every batch's loss, the dots the epoch
# means. The test set is used once, at the end.

# %%
EPOCHS = 3
torch.manual_seed(0)
model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
live = mlplab.LivePlot(title="784-16-32-24-10 MLP on MNIST", epochs=EPOCHS, loss_name="NLL loss (nats per image)")
records = []
for epoch in range(1, EPOCHS + 1):
    train.set_epoch(epoch)
    train_loss, _, train_accuracy = train_epoch(model, train, optimizer, loss_fn, live=live)
    val_loss, val_accuracy = test(model, val, loss_fn)
    live.update(
        epoch=epoch, train_loss=train_loss, train_accuracy=train_accuracy, val_loss=val_loss, val_accuracy=val_accuracy
    )
    records.append((epoch, train_loss, train_accuracy, val_loss, val_accuracy))

print("epoch  train loss  train acc  val loss  val acc")
for epoch, train_loss, train_accuracy, val_loss, val_accuracy in records:
    print(f"{epoch:5}  {train_loss:10.4f}  {100 * train_accuracy:8.2f}%  {val_loss:8.4f}  {100 * val_accuracy:6.2f}%")
test_loss, test_accuracy = test(model, test_batches, loss_fn)
print(f"test loss {test_loss:.4f}, test accuracy {100 * test_accuracy:.2f}% (10,000 images)")

# %% [markdown]
# 94.7% of the test digits after three epochs, a few seconds of training. The validation
# accuracy is still rising, so more epochs would help; a wider net does much better
# (`mlplab train`, 784-512-10, reaches 98.3%).
#
# ## 6. Saving and loading: `state_dict`
#
# A module's `state_dict()` maps each parameter's name to its tensor. `torch.save` writes it;
# to use it again, build the same network and `load_state_dict` into it. Loading with
# `weights_only=True` refuses files that would need to run code to be read.

# %%
for name, tensor in model.state_dict().items():
    print(f"{name:11} {tuple(tensor.shape)}")

torch.save(model.state_dict(), RUNS / "net.pt")
restored = Net()  # fresh random weights...
restored.load_state_dict(torch.load(RUNS / "net.pt", weights_only=True))  # ...replaced by the saved ones
restored.eval()
model.eval()
with torch.no_grad():
    same_outputs = torch.equal(restored(data.test.images), model(data.test.images))
print("the restored net gives identical outputs on all 10,000 test images:", same_outputs)

# %% [markdown]
# ## A full checkpoint, and restarting training from it
#
# The weights alone are enough to *use* a net, not to *go on training* it: SGD with momentum
# keeps a velocity for every parameter, and a restarted run also needs to know which epoch it
# had reached. A checkpoint is one dict with all of it.
#
# The experiment: run A trains epoch 1, saves a checkpoint and "crashes". Run B builds a new
# net and optimizer, loads the checkpoint and trains epoch 2. Run C trains epochs 1 and 2
# without stopping. Since `Batches` draws each epoch's order from (seed, epoch) alone, B and C
# see the same batches, and B's weights must come out identical to C's.


# %%
def save_checkpoint(path, model, optimizer, epoch, loss):
    """Everything needed to go on training: weights, optimizer state, the epoch reached, its loss."""
    torch.save({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "loss": loss}, path)


def new_run(seed=1):
    """A fresh net and its optimizer, initialised from ``seed``."""
    torch.manual_seed(seed)
    net = Net()
    return net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)


# Run A: epoch 1, a checkpoint, then the run stops.
net_a, optimizer_a = new_run()
train.set_epoch(1)
loss_a, _, _ = train_epoch(net_a, train, optimizer_a, loss_fn)
save_checkpoint(RUNS / "checkpoint.pt", net_a, optimizer_a, epoch=1, loss=loss_a)

# Run B: new objects (seed 2: different initial weights, to show the checkpoint overrides them), then resume.
net_b, optimizer_b = new_run(seed=2)
checkpoint = torch.load(RUNS / "checkpoint.pt", weights_only=True)
net_b.load_state_dict(checkpoint["model"])
optimizer_b.load_state_dict(checkpoint["optimizer"])
start = checkpoint["epoch"] + 1
print(f"resuming at epoch {start} (epoch {checkpoint['epoch']} ended with loss {checkpoint['loss']:.4f})")
for epoch in range(start, 3):
    train.set_epoch(epoch)
    train_epoch(net_b, train, optimizer_b, loss_fn)

# Run C: epochs 1 and 2 in one go.
net_c, optimizer_c = new_run()
for epoch in (1, 2):
    train.set_epoch(epoch)
    train_epoch(net_c, train, optimizer_c, loss_fn)

resumed_matches = all(torch.equal(b, c) for b, c in zip(net_b.parameters(), net_c.parameters(), strict=True))
print("resumed run B == uninterrupted run C, bit for bit:", resumed_matches)

# %% [markdown]
# Identical. What if we had saved only the weights? Resume once more, with a fresh optimizer
# (zero momentum) instead of the saved one:

# %%
net_d, optimizer_d = new_run(seed=2)
net_d.load_state_dict(checkpoint["model"])  # the weights, but not the optimizer's state
train.set_epoch(2)
train_epoch(net_d, train, optimizer_d, loss_fn)
gap = max((d - c).abs().max().item() for d, c in zip(net_d.parameters(), net_c.parameters(), strict=True))
print(f"without the optimizer state, the largest weight differs by {gap:.4f} from the uninterrupted run")

# %% [markdown]
# The run goes on, but not the same run. `mlplab.fit(..., run_dir=..., resume=True)` writes
# and reads such checkpoints for you, with the random number generators' states as well (which
# dropout or a `DataLoader`'s shuffling would need).
#
# ## 7. The same net as `nn.Sequential`
#
# When a network is a plain chain of layers, `nn.Sequential` writes it without a class. It
# creates its `Linear` layers in the same order as `Net`, so from the same seed it starts from
# the same weights; its `state_dict` names them by position (`1.weight`) instead of by
# attribute (`fc1.weight`).


# %%
def sequential_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 16),
        nn.ReLU(),
        nn.Linear(16, 32),
        nn.ReLU(),
        nn.Linear(32, 24),
        nn.ReLU(),
        nn.Linear(24, 10),
        nn.LogSoftmax(dim=1),
    )


torch.manual_seed(0)
sequential = sequential_net()
torch.manual_seed(0)
same_start = all(torch.equal(s, n) for s, n in zip(sequential.parameters(), Net().parameters(), strict=True))
print(sequential)
print("same initial weights as Net from the same seed:", same_start)
print("state_dict names:", list(sequential.state_dict())[:4], "...")

# The trained Net's weights, renamed by position, in the Sequential: the same function.
sequential.load_state_dict(dict(zip(sequential.state_dict(), model.state_dict().values(), strict=True)))
sequential.eval()
with torch.no_grad():
    sequential_same = torch.equal(sequential(data.test.images), model(data.test.images))
print("the Sequential with the trained weights gives the same outputs:", sequential_same)

# %% [markdown]
# ## 8. The quadratic loss
#
# Before cross-entropy took over, nets were trained on the squared distance between the
# predicted probabilities $p$ and the one-hot target $e_y$ (1 at the label, 0 elsewhere), the
# **quadratic loss**
#
# $$\mathrm{QL} = \tfrac12 \lVert p - e_y \rVert^2 = \tfrac12 \sum_c (p_c - [c = y])^2,$$
#
# averaged over the batch, with $p = \mathrm{softmax}(\text{outputs})$.
#
# **The lab's worked example.** Four classes, $p = (0.3, 0.2, 0.4, 0.1)$, label $y = 2$ (the
# third class, counting from 0). Then $p - e_y = (0.3, 0.2, -0.6, 0.1)$ and
# $\mathrm{QL} = \tfrac12 (0.09 + 0.04 + 0.36 + 0.01) = \tfrac12 \cdot 0.5 = 0.25$.
#
# In exact fractions first, then as PyTorch computes it:

# %%
probs_example = [Fraction(3, 10), Fraction(2, 10), Fraction(4, 10), Fraction(1, 10)]
label_example = 2
worked = Fraction(1, 2) * sum((p - (c == label_example)) ** 2 for c, p in enumerate(probs_example))
print("QL in exact arithmetic:", worked)


def quadratic_loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1/2 ||softmax(outputs) - one_hot(labels)||^2, averaged over the batch."""
    probs = outputs.softmax(dim=1)  # (B, C); softmax(log p) = p, so logits and log-probabilities both work
    one_hot = F.one_hot(labels, num_classes=outputs.shape[1]).to(probs.dtype)
    return 0.5 * (probs - one_hot).square().sum(dim=1).mean()


# The example as the net would give it: log-probabilities, in float64.
outputs_example = torch.tensor([[0.3, 0.2, 0.4, 0.1]], dtype=torch.float64).log()
labels_example = torch.tensor([label_example])
ql_example = quadratic_loss(outputs_example, labels_example).item()
ql_mlplab = mlplab.losses.quadratic(outputs_example, labels_example, output="log_softmax").item()
print(f"quadratic_loss: {ql_example!r}")
print(f"mlplab.losses.quadratic: {ql_mlplab!r}")

# %% [markdown]
# PyTorch's value is 0.25 up to float64 rounding (the softmax of the logs gives back the
# probabilities to about 1e-16).
#
# The **correct-class quadratic loss** (CCQL) adds a second penalty on the label's own
# probability, weighted by $\beta \ge 0$:
#
# $$\mathrm{CCQL} = \tfrac12 \lVert p - e_y \rVert^2 + \tfrac{\beta}{2} (1 - p_y)^2 .$$
#
# With $\beta = 0$ it is the quadratic loss. In the worked example, $1 - p_y = 0.6$, so with
# $\beta = 1$ it is $0.25 + \tfrac12 \cdot 0.36 = 0.43$.

# %% [markdown] tags=["exercise"]
# **Exercise 3 (homework).** Write `ccql_loss(outputs, labels, beta=1.0)`, averaged over the
# batch like `quadratic_loss`. Check it on the worked example (0.43) and against
# `mlplab.losses.ccql`. Hint: `probs.gather(1, labels.unsqueeze(1))` picks each row's $p_y$.


# %% tags=["student"]
def ccql_loss(outputs: torch.Tensor, labels: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """1/2 ||p - e_y||^2 + beta/2 (1 - p_y)^2, averaged over the batch."""
    ...  # your code here


# %% tags=["solution"]
def ccql_loss(outputs: torch.Tensor, labels: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """1/2 ||p - e_y||^2 + beta/2 (1 - p_y)^2, averaged over the batch."""
    probs = outputs.softmax(dim=1)  # (B, C)
    one_hot = F.one_hot(labels, num_classes=outputs.shape[1]).to(probs.dtype)
    p_correct = probs.gather(1, labels.unsqueeze(1)).squeeze(1)  # (B,) the label's probability
    return (0.5 * (probs - one_hot).square().sum(dim=1) + 0.5 * beta * (1 - p_correct).square()).mean()


# %%
ccql_example = ccql_loss(outputs_example, labels_example).item()
ccql_mlplab = mlplab.losses.ccql(outputs_example, labels_example, output="log_softmax", beta=1.0).item()
print(f"ccql_loss: {ccql_example:.12f}   mlplab.losses.ccql: {ccql_mlplab:.12f}")

# On a batch of real outputs, for several beta (beta = 0 must give the quadratic loss):
with torch.no_grad():
    outputs = model(data.val.images[:256]).double()
labels = data.val.labels[:256]
ccql_gaps = [
    abs(
        ccql_loss(outputs, labels, beta).item()
        - mlplab.losses.ccql(outputs, labels, output="log_softmax", beta=beta).item()
    )
    for beta in (0.0, 1.0, 2.5)
]
beta_zero_gap = abs(ccql_loss(outputs, labels, 0.0).item() - quadratic_loss(outputs, labels).item())
print(f"largest difference from mlplab.losses.ccql: {max(ccql_gaps):.1e}; beta = 0 vs quadratic: {beta_zero_gap:.1e}")

# %% [markdown]
# ## Cross-entropy, quadratic, correct-class quadratic: which learns faster?
#
# Three runs that differ only in the loss: the same initial weights (seed 0), the same batches
# in the same order, the same optimizer (SGD, learning rate 0.01, momentum 0.9), two epochs
# (1,564 steps) each. Every 100 steps we measure the validation accuracy. Each run takes about
# a second, so we draw the comparison once they are done rather than live.

# %%
LOSSES = {
    "cross-entropy": loss_fn,  # NLL of log-probabilities = cross-entropy
    "quadratic": quadratic_loss,
    "correct-class quadratic (β = 1)": ccql_loss,
}
COMPARE_EPOCHS, EVERY = 2, 100


def compare_run(loss):
    """Train a fresh Net with ``loss``; return the steps and the validation accuracy measured at each."""
    torch.manual_seed(0)
    net = Net()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    steps, accuracies, step = [0], [test(net, val, loss_fn)[1]], 0
    for epoch in range(1, COMPARE_EPOCHS + 1):
        train.set_epoch(epoch)
        net.train()
        for images, labels in train:
            optimizer.zero_grad()
            loss(net(images), labels).backward()
            optimizer.step()
            step += 1
            if step % EVERY == 0 or step == COMPARE_EPOCHS * len(train):
                steps.append(step)
                accuracies.append(test(net, val, loss_fn)[1])
                net.train()
    return steps, accuracies


curves = {name: compare_run(loss) for name, loss in LOSSES.items()}


def first_step_reaching(steps, accuracies, level):
    """The first step at which the accuracy reached ``level`` (inf if it never did)."""
    return next((step for step, value in zip(steps, accuracies, strict=True) if value >= level), math.inf)


print(f"{'loss':32} {'val acc, step 200':>17} {'step 800':>9} {'step 1564':>10} {'steps to 90%':>13}")
for name, (steps, accuracies) in curves.items():
    at = dict(zip(steps, accuracies, strict=True))
    print(
        f"{name:32} {100 * at[200]:16.2f}% {100 * at[800]:8.2f}% {100 * at[steps[-1]]:9.2f}% "
        f"{first_step_reaching(steps, accuracies, 0.90)!s:>13}"
    )

# %%
figure, axis = plt.subplots(figsize=(7.5, 4.2))
for name, (steps, accuracies) in curves.items():
    axis.plot(steps, [100 * value for value in accuracies], marker=".", label=name)
axis.axvline(len(train), color="gray", linestyle=":", linewidth=1)
axis.text(len(train), 40, " end of epoch 1", color="gray", fontsize=9)
axis.set_ylim(0, 100)
axis.set_xlabel("training step (batches of 64)")
axis.set_ylabel("validation accuracy (%)")
axis.set_title("784-16-32-24-10 MLP, SGD lr 0.01 momentum 0.9: the loss changes the pace")
axis.grid(alpha=0.3)
axis.legend(loc="lower right")
plt.show()

# %% [markdown]
# Cross-entropy passes 90% validation accuracy after 500 steps, the quadratic loss only after
# 1,000; the correct-class term closes part of the gap (700). After two epochs cross-entropy still
# leads, 94.3% against 91.8% and 92.4%. Why? Look at the gradient each loss sends back to the net's last
# layer, the scores $z$ before the softmax.
#
# - Cross-entropy: $\partial(-\log p_y)/\partial z = p - e_y$. When the net is confidently wrong
#   ($p_y \to 0$), the push on the correct score tends to $-1$: the worst mistakes get the
#   strongest correction.
# - Quadratic loss: the chain rule goes through the softmax's Jacobian,
#   $\partial p_c / \partial z_k = p_c([c = k] - p_k)$, which multiplies everything by
#   probabilities. When $p_y \to 0$ the gradient vanishes: the net barely learns from the very
#   examples it gets most wrong, and at the start, when every $p_c \approx 0.1$, all its
#   gradients are about ten times smaller than cross-entropy's.
# - CCQL's extra term $\tfrac\beta2(1 - p_y)^2$ adds $-\beta (1 - p_y)\, p_y (1 - p_y)$ to the
#   correct score's gradient: larger than the quadratic loss's, but still through a factor
#   $p_y$, so it too fades for confident mistakes.
#
# The figure below computes, with autograd, the gradient on the correct class's score for one
# image, as the probability the net gives the correct class goes from 0 to 1 (the rest spread
# evenly over the other nine classes).

# %%
p_correct = torch.linspace(0.001, 0.999, 500, dtype=torch.float64)
scores = ((1 - p_correct) / 9).log().unsqueeze(1).repeat(1, 10)  # (500, 10): the wrong classes share the rest
scores[:, 0] = p_correct.log()  # class 0 is the label
scores.requires_grad_(True)
targets = torch.zeros(500, dtype=torch.int64)

figure, axis = plt.subplots(figsize=(7.5, 4.2))
for name, loss in LOSSES.items():
    (gradient,) = torch.autograd.grad(loss(F.log_softmax(scores, dim=1), targets) * 500, scores)  # per image
    axis.plot(p_correct, -gradient[:, 0], label=name)
axis.set_xlabel("probability the net gives the correct class, $p_y$")
axis.set_ylabel(r"push on the correct score, $-\partial L / \partial z_y$")
axis.set_title("Gradient on the correct class's score, one image")
axis.grid(alpha=0.3)
axis.legend()
plt.show()

# %% [markdown]
# Cross-entropy pushes hardest exactly where the net is most wrong (left); the quadratic losses
# push hardest around $p_y \approx 0.3$ and hardly at all near $p_y = 0$. That is why they learn
# slower, and why cross-entropy became the standard loss for classification. The gap narrows as
# training goes on (most images end up with a large $p_y$, where all three push alike): from 64
# points at step 200 to 2.6 points at step 1,564 for the quadratic loss.

# %% [markdown]
# ## Checks
#
# Executing this notebook is a test: these asserts fail if a result above goes wrong.

# %% tags=["checks"]
# The worked example: exactly 1/4 in exact arithmetic, and to float64 rounding in PyTorch and mlplab.
assert worked == Fraction(1, 4)
assert math.isclose(ql_example, 0.25, abs_tol=1e-12) and math.isclose(ql_mlplab, 0.25, abs_tol=1e-12)
assert math.isclose(ccql_example, 0.43, abs_tol=1e-12) and math.isclose(ccql_mlplab, 0.43, abs_tol=1e-12)
assert max(ccql_gaps) < 1e-7 and beta_zero_gap < 1e-12  # float32 outputs: mlplab takes exp, we take softmax
# The hand-written running average is AverageMeter's exact mean; the mean of batch means is not.
assert math.isclose(running_loss, meter.avg, rel_tol=1e-12)
assert meter.count == len(data.train) == 50_000
assert abs(sum(batch_means) / len(batch_means) - meter.avg) > 1e-6
# The test routine agrees with mlplab.evaluate.
assert math.isclose(val_loss, mlplab.evaluate(model, val, loss_fn)["loss"], rel_tol=1e-9)
# Restored, resumed and re-written nets are the same functions.
assert same_outputs and sequential_same and same_start
assert resumed_matches and gap > 1e-4
# Three epochs of the lab's recipe: measured 94.5% test accuracy here; a margin of 1.5 points.
assert test_accuracy >= 0.93, test_accuracy
assert records[-1][4] >= 0.93  # validation accuracy after the last epoch
# Cross-entropy beats both quadratic losses at equal steps, and reaches 90% first.
final = {name: accuracies[-1] for name, (steps, accuracies) in curves.items()}
after_epoch = {name: dict(zip(steps, accuracies, strict=True))[800] for name, (steps, accuracies) in curves.items()}
for name in ("quadratic", "correct-class quadratic (β = 1)"):
    assert after_epoch["cross-entropy"] > after_epoch[name] + 0.005, after_epoch
    assert final["cross-entropy"] > final[name], final
    assert first_step_reaching(*curves["cross-entropy"], 0.90) < first_step_reaching(*curves[name], 0.90)
print("all checks passed")
