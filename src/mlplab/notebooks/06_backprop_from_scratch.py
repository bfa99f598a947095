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
# # Lab 6: The classifier tutorial and backprop from scratch
#
# This lab has three parts.
#
# 1. **The classifier tutorial.** PyTorch's "Training a classifier" tutorial, adapted to MNIST
#    and an MLP: load and normalise the data, define the network, the loss and the optimizer,
#    train with the tutorial's loop (batch 4, SGD with momentum, a running loss printed every few
#    hundred mini-batches), then test it, class by class.
# 2. **Backprop from scratch.** The gradients of softmax + cross-entropy, of a Linear layer and
#    of ReLU, derived on paper, written in NumPy without autograd, checked against autograd and
#    against finite differences, and used to train MNIST. Then the two classic bugs of a
#    from-scratch network: an optimizer that climbs the loss, and a backward pass that hands
#    the wrong array to the layer below.
# 3. **Your own digit.** A digit drawn with Pillow, saved as a PNG file, read by a trained
#    model: the original, the 28×28 the model saw, and its class probabilities.
#
# It needs nothing but mlplab: MNIST is bundled with the package, so no network is used. The
# whole notebook runs in about half a minute on a 2-core laptop.

# %%
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from threadpoolctl import threadpool_limits
from torch import nn, optim

import mlplab
from mlplab import scratch

# These nets are small: each operation is too small to split over several CPU threads, and one
# thread is faster, for PyTorch and for NumPy's BLAS alike (mlplab.threads explains). It also
# makes every number below repeatable.
torch.set_num_threads(1)
threadpool_limits(limits=1, user_api="blas")
torch.manual_seed(0)

RUNS = Path("runs/lab6")  # everything this notebook writes; removed first, so it can be run again
shutil.rmtree(RUNS, ignore_errors=True)
RUNS.mkdir(parents=True)

# %% [markdown]
# ## Part 1. The classifier tutorial, on MNIST
#
# The tutorial trains a small convolutional net on CIFAR-10 in five steps. We keep the steps,
# the loop and the optimizer, and change the data and the net:
#
# | | the tutorial | here |
# |---|---|---|
# | data | CIFAR-10, 50,000 colour 32×32 images | MNIST, a random 10,000 of the 50,000 training images |
# | net | two conv layers, then 400-120-84-10 | an MLP 784-120-256-10 (mlplab's `tutorial` preset's shape) |
# | loss, optimizer | cross-entropy; SGD, lr 0.001, momentum 0.9 | the same |
# | batches | 4 images, 2 epochs, loss printed every 2,000 mini-batches | the same, printed every 500 |
#
# Batches of 4 make 2,500 optimizer steps per epoch on the 10,000 images: tiny steps, each
# dominated by PyTorch's per-operation overhead, so the subset keeps this part to a few seconds.
#
# ### 1. Load and normalise MNIST
#
# `mlplab.load_data()` gives the splits as tensors, standardised as `(x / 255 - 0.1307) /
# 0.3081` (the tutorial's `transforms.Normalize` does the same job). `mlplab.Batches` is the
# `DataLoader`: it draws batches of 4 by index from the tensors, in a new order every epoch.

# %%
data = mlplab.load_data()
classes = data.spec.classes  # ('0 - zero', '1 - one', ...)

subset = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[:10_000]
trainset = mlplab.data.TensorSplit(data.train.images[subset], data.train.labels[subset], "train")
trainloader = mlplab.Batches(trainset, batch_size=4, shuffle=True, seed=0)
valloader = mlplab.Batches(data.val, batch_size=1000)
testloader = mlplab.Batches(data.test, batch_size=1000)
print(
    f"{len(trainset)} training images in {len(trainloader)} mini-batches of 4; "
    f"{len(data.val)} validation and {len(data.test)} test images"
)

# %% [markdown]
# As in the tutorial, a look at one mini-batch:

# %%
images, labels = next(iter(trainloader))
figure, axes = plt.subplots(1, 4, figsize=(6, 1.9))
for axis, image, label in zip(axes, images, labels, strict=True):
    axis.imshow(image[0], cmap="gray")
    axis.set_title(classes[label], fontsize=10)
    axis.set_axis_off()
figure.suptitle("One mini-batch of 4 training images (28×28 pixels)")
figure.tight_layout()
plt.show()

# %% [markdown]
# ### 2. Define the network
#
# The tutorial's `Net`, with its convolutions replaced by a flatten: 784 pixels in, two hidden
# ReLU layers of 120 and 256 units, 10 scores (logits) out.


# %%
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 120)
        self.fc2 = nn.Linear(120, 256)
        self.fc3 = nn.Linear(256, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)  # (B, 1, 28, 28) -> (B, 784)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)  # (B, 10) logits


torch.manual_seed(0)
net = Net()
print(net)
print(f"{sum(p.numel() for p in net.parameters()):,} parameters")

# %% [markdown]
# ### 3. Define a loss function and optimizer
#
# Classification cross-entropy, and SGD with momentum, exactly as the tutorial.

# %%
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

# %% [markdown]
# ### 4. Train the network
#
# The tutorial's loop: for every mini-batch, zero the gradients, forward, loss, backward, step;
# the loss averaged over the last 500 mini-batches is printed, and drawn as the thin line of the
# live plot. After each epoch we also measure the net on the 10,000 validation images
# (`mlplab.evaluate`, in eval mode and without gradients), which the tutorial does not.

# %%
live = mlplab.LivePlot(
    title="Tutorial net 784-120-256-10, batch 4, SGD lr 0.001 momentum 0.9", epochs=2, loss_name="cross-entropy (nats)"
)
for epoch in range(2):  # loop over the dataset multiple times
    net.train()
    running_loss, epoch_loss, correct = 0.0, 0.0, 0
    for i, (inputs, labels) in enumerate(trainloader):
        optimizer.zero_grad()  # zero the parameter gradients
        outputs = net(inputs)  # forward + backward + optimize
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()

        running_loss += loss.item()  # print statistics
        epoch_loss += loss.item() * len(labels)
        correct += (outputs.argmax(dim=1) == labels).sum().item()
        if i % 500 == 499:  # every 500 mini-batches
            print(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss / 500:.3f}")
            live.batch(running_loss / 500)
            running_loss = 0.0
    val = mlplab.evaluate(net, valloader, criterion)
    live.update(
        epoch=epoch + 1,
        train_loss=epoch_loss / len(trainset),
        train_accuracy=correct / len(trainset),
        val_loss=val["loss"],
        val_accuracy=val["accuracy"],
    )
print("Finished Training")

# %% [markdown]
# ### 5. Test the network on the test data
#
# The tutorial first counts the correct answers over the whole test set, then per class.
# `mlplab.evaluate` does both in one pass: it builds the confusion matrix (row = true class,
# column = predicted class), and `mlplab.per_class_accuracy` reads each class's accuracy off it
# (the diagonal over the row sums).

# %%
scores = mlplab.evaluate(net, testloader, criterion)
tutorial_accuracy = scores["accuracy"]
per_class = mlplab.per_class_accuracy(torch.tensor(scores["confusion"]))
print(f"Accuracy of the network on the {scores['count']} test images: {100 * tutorial_accuracy:.2f} %")
for name, accuracy in zip(classes, per_class, strict=True):
    print(f"Accuracy for class: {name:9s} is {100 * accuracy:.1f} %")

# %%
figure, axis = plt.subplots(figsize=(7, 3.4))
bars = axis.bar(range(10), [100 * a for a in per_class], color="#1f77b4")
axis.bar_label(bars, fmt="%.1f", fontsize=8)
axis.axhline(
    100 * tutorial_accuracy,
    color="black",
    linestyle="--",
    linewidth=1,
    label=f"all classes: {100 * tutorial_accuracy:.1f}%",
)
axis.set_xticks(range(10))
axis.set_ylim(80, 104)
axis.set_xlabel("true digit")
axis.set_ylabel("accuracy (%), axis from 80")
axis.set_title("Tutorial net: test accuracy per class (10,000 test images)")
axis.legend(loc="upper right")
figure.tight_layout()
plt.show()

# %% [markdown]
# Two epochs of batch 4 on 10,000 images bring the running loss from 1.179 down to about 0.22,
# and the net to 93.41% on the test set. The classes are not equally hard: ones and zeros are
# read best (98.5%, 98.0%), eights worst (85.0%), then fives and twos (about 90%): an eight shares
# strokes with a three, a five and a nine. The same loop on
# all 50,000 training images (25,000 mini-batches, about 20 s of CPU on our 2-core machine)
# reached 96.9%.
#
# ## Part 2. Backprop from scratch
#
# Autograd computed every gradient above. Now we write them ourselves: first on paper, then in
# NumPy, then we check them.
#
# ### The derivations
#
# A batch holds $B$ images; rows are samples. The net is Linear, ReLU, Linear, ReLU, Linear,
# and the loss is the mean cross-entropy of the softmax of the last layer's outputs $z$. The
# backward pass starts from the loss and walks down the layers; each layer receives
# $\partial L / \partial(\text{its output})$, written $dy$, and must (a) store the gradients of
# its parameters and (b) hand $dx = \partial L / \partial(\text{its input})$ to the layer below.
#
# **Softmax + cross-entropy (negative log-likelihood).** With $p_{bc} = e^{z_{bc}} / \sum_k e^{z_{bk}}$
# and labels $y_b$,
#
# $$L = -\frac1B \sum_b \log p_{b y_b}, \qquad \log p_{b y_b} = z_{b y_b} - \log \sum_k e^{z_{bk}}.$$
#
# Differentiating one sample's log-probability by $z_{bc}$: the first part gives $[c = y_b]$ (1
# for the label's column, 0 elsewhere), the second $e^{z_{bc}} / \sum_k e^{z_{bk}} = p_{bc}$, so
# $\partial \log p_{b y_b} / \partial z_{bc} = [c = y_b] - p_{bc}$. With the minus sign and the
# $1/B$ of the mean,
#
# $$\frac{\partial L}{\partial z_{bc}} = \frac{p_{bc} - [c = y_b]}{B}, \qquad
# dz = \frac{P - Y}{B},$$
#
# with $P$ the $(B, C)$ probabilities and $Y$ the one-hot labels: the prediction minus the truth,
# divided by $B$ because the loss is a mean. Every row of $dz$ sums to zero, and no division by
# a tiny $p$ ever happens, which is why softmax and the loss are computed as one step.
#
# **Linear.** $y = xW + b$ with $x$ $(B, n_\text{in})$, $W$ $(n_\text{in}, n_\text{out})$,
# $b$ $(n_\text{out})$: $y_{bj} = \sum_i x_{bi} W_{ij} + b_j$. Each $W_{ij}$ and $b_j$ is used in
# every row $b$, and each $x_{bi}$ in every output $j$, so the chain rule sums over them:
#
# $$dW_{ij} = \sum_b x_{bi}\, dy_{bj} \;\Rightarrow\; dW = x^\top dy \quad (n_\text{in}, n_\text{out}),$$
# $$db_j = \sum_b dy_{bj} \;\Rightarrow\; db = \textstyle\sum_\text{rows} dy \quad (n_\text{out}),$$
# $$dx_{bi} = \sum_j dy_{bj} W_{ij} \;\Rightarrow\; dx = dy\, W^\top \quad (B, n_\text{in}).$$
#
# The shapes are a check on their own: each gradient has the shape of what it is the gradient of,
# and there is only one way to multiply the arrays to get it.
#
# **ReLU.** $h = \max(x, 0)$ elementwise: the slope is 1 where $x > 0$ and 0 elsewhere, so
#
# $$dx = dy \odot [x > 0].$$
#
# The gradient passes through the units that were on and stops at the others.
#
# *PyTorch's layout.* `nn.Linear` stores `weight` $= W^\top$, $(n_\text{out}, n_\text{in})$, and
# computes $x\,\text{weight}^\top + b$; its gradient is therefore $dy^\top x$, the same numbers
# transposed. `mlplab.scratch` (our reference below) follows PyTorch's layout.
#
# ### The layers in NumPy
#
# Each piece gets a `forward`, which keeps what its backward rule needs, and a `backward`, which
# applies the rule. You write four of them; `mlplab.scratch` holds a reference implementation
# (`src/mlplab/scratch/layers.py`, `losses.py`, `optim.py`) that we check yours against.

# %% [markdown] tags=["exercise"]
# **Exercise 1.** Write `softmax_cross_entropy(z, labels)`, returning the mean loss (a float) and
# $dz = (P - Y) / B$. Compute the log-probabilities stably: subtract each row's maximum before
# exponentiating (it changes nothing in the result, and `np.exp` never overflows).


# %% tags=["student"]
def softmax_cross_entropy(z, labels):
    """z (B, C) logits, labels (B,) ints -> (mean of -log p_y, dL/dz (B, C))."""
    ...  # your code here
    return loss, dz


# %% tags=["solution"]
def softmax_cross_entropy(z, labels):
    """z (B, C) logits, labels (B,) ints -> (mean of -log p_y, dL/dz (B, C))."""
    rows = np.arange(len(labels))
    shifted = z - z.max(axis=1, keepdims=True)  # every entry <= 0: no overflow in exp
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (B, C)
    loss = -log_p[rows, labels].mean()
    dz = np.exp(log_p)  # P
    dz[rows, labels] -= 1  # P - Y
    return float(loss), dz / len(labels)


# %% [markdown] tags=["exercise"]
# **Exercise 2.** Complete `Linear`: `forward` computes $y = xW + b$ and keeps $x$;
# `backward(dy)` stores `self.dW` and `self.db` and returns $dx$.


# %% tags=["student"]
class Linear:
    """y = x W + b for a batch x (B, n_in); W (n_in, n_out), b (n_out,), updated in place by the optimizer."""

    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x): ...  # your code here

    def backward(self, dy): ...  # your code here: set self.dW and self.db, return dx


# %% tags=["solution"]
class Linear:
    """y = x W + b for a batch x (B, n_in); W (n_in, n_out), b (n_out,), updated in place by the optimizer."""

    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.x = x  # (B, n_in), needed for dW
        return x @ self.W + self.b  # (B, n_out)

    def backward(self, dy):
        self.dW = self.x.T @ dy  # (n_in, B) @ (B, n_out)
        self.db = dy.sum(axis=0)  # (n_out,)
        return dy @ self.W.T  # dx: (B, n_out) @ (n_out, n_in)


# %% [markdown] tags=["exercise"]
# **Exercise 3.** Complete `ReLU`: `forward` returns $\max(x, 0)$ and keeps where $x > 0$;
# `backward(dy)` returns $dy \odot [x > 0]$.


# %% tags=["student"]
class ReLU:
    """h = max(x, 0) elementwise."""

    def forward(self, x): ...  # your code here

    def backward(self, dy): ...  # your code here


# %% tags=["solution"]
class ReLU:
    """h = max(x, 0) elementwise."""

    def forward(self, x):
        self.on = x > 0  # (B, n) booleans: the units that are on
        return np.maximum(x, 0)

    def backward(self, dy):
        return dy * self.on  # the gradient passes where the unit was on, else 0


# %% [markdown]
# The network chains the layers: `forward` runs them in order, `backward` in reverse, each
# layer's $dx$ becoming the $dy$ of the layer below. The weights start as PyTorch's
# `nn.Linear` starts them, uniform in $\pm 1/\sqrt{n_\text{in}}$.


# %%
class ScratchNet:
    """Linear, ReLU, Linear, ReLU, ..., Linear: an MLP with the given widths, e.g. (784, 128, 128, 10)."""

    def __init__(self, widths, seed=0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        self.layers = []
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
            bound = 1 / np.sqrt(n_in)
            W = rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype)
            b = rng.uniform(-bound, bound, n_out).astype(dtype)
            self.layers += [Linear(W, b), ReLU()]
        self.layers.pop()  # no ReLU after the last Linear: its outputs are the logits

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dz):
        grad = dz  # dL/dz, the logits' gradient; then each layer's dx is the next one's dy
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def linears(self):
        return [layer for layer in self.layers if isinstance(layer, Linear)]


# %% [markdown]
# ### Checking the gradients
#
# A backward pass can be wrong and still produce arrays of the right shapes, so we compare its
# numbers with two independent sources, in float64 (float32 keeps only about 7 digits):
#
# - **autograd**: the same forward computation written with torch tensors that require grad;
# - **finite differences**: nudge one entry $\theta$ by $\pm\varepsilon$ and measure
#   $\big(L(\theta + \varepsilon) - L(\theta - \varepsilon)\big) / 2\varepsilon$, whose error is
#   $O(\varepsilon^2)$; this needs only the forward pass, so it cannot share a bug with `backward`;
#
# and with the reference, `mlplab.scratch`. The measure is the relative error
# $\lVert a - b\rVert / \max(\lVert a\rVert, \lVert b\rVert)$: about $10^{-16}$ for the same
# numbers rounded differently, about 1 for unrelated ones. For a layer on its own, the loss is a
# random projection of its output, $L = \sum y \odot R$, so that $dy = R$ and every output entry
# is tested at once.


# %%
def relative_error(a, b):
    """||a - b|| / max(||a||, ||b||): 0 for equal arrays, about 1 for unrelated ones."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


def finite_differences(loss_of, array, entries=None, eps=1e-6, seed=0):
    """Central differences of ``loss_of()`` at some flat entries of ``array`` (all by default): (index, values)."""
    flat = array.reshape(-1)  # a view: changing flat[i] changes array
    index = np.arange(flat.size)
    if entries is not None and entries < flat.size:
        index = np.sort(np.random.default_rng(seed).choice(flat.size, entries, replace=False))
    values = np.empty(len(index))
    for k, i in enumerate(index):
        saved = flat[i]
        flat[i] = saved + eps
        plus = loss_of()
        flat[i] = saved - eps
        minus = loss_of()
        flat[i] = saved
        values[k] = (plus - minus) / (2 * eps)
    return index, values


def table(rows):
    """Print relative errors, one row per array: name, shape, then one column per comparison."""
    columns = list(rows[0][2])
    print(f"{'array':<22}{'shape':>10}" + "".join(f"{c:>22}" for c in columns))
    for name, shape, errors in rows:
        print(f"{name:<22}{'x'.join(map(str, shape)):>10}" + "".join(f"{errors[c]:>22.1e}" for c in columns))


# %% [markdown]
# Each of your three pieces on a small random batch (8 samples, float64):

# %%
rng = np.random.default_rng(0)
layer_rows = []

# Softmax + cross-entropy: dz against F.cross_entropy's autograd, finite differences, scratch.SoftmaxCrossEntropy.
z, labels = rng.standard_normal((8, 10)), rng.integers(0, 10, 8)
loss, dz = softmax_cross_entropy(z, labels)
z_torch = torch.tensor(z, requires_grad=True)
F.cross_entropy(z_torch, torch.from_numpy(labels)).backward()
_, numeric = finite_differences(lambda: softmax_cross_entropy(z, labels)[0], z)
reference = scratch.SoftmaxCrossEntropy()
reference.forward(z, labels)
layer_rows.append(
    (
        "softmax+CE: dz",
        dz.shape,
        {
            "vs autograd": relative_error(dz, z_torch.grad),
            "vs finite diff.": relative_error(dz.reshape(-1), numeric),
            "vs mlplab.scratch": relative_error(dz, reference.backward()),
        },
    )
)

# Linear 5 -> 4: dW, db, dx with L = sum(y * R).
x, W, b, R = (
    rng.standard_normal((8, 5)),
    rng.standard_normal((5, 4)),
    rng.standard_normal(4),
    rng.standard_normal((8, 4)),
)
linear = Linear(W, b)
linear.forward(x)
dx = linear.backward(R)
x_t, W_t, b_t = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
((x_t @ W_t + b_t) * torch.from_numpy(R)).sum().backward()
reference = scratch.Linear(W.T.copy(), b.copy())  # PyTorch's layout: weight = W^T
reference.forward(x)
reference_dx = reference.backward(R)
for name, ours, auto, ref, array in (
    ("Linear: dW", linear.dW, W_t.grad, reference.dW.T, W),
    ("Linear: db", linear.db, b_t.grad, reference.db, b),
    ("Linear: dx", dx, x_t.grad, reference_dx, x),
):
    _, numeric = finite_differences(lambda: float(np.sum(linear.forward(x) * R)), array)
    layer_rows.append(
        (
            name,
            ours.shape,
            {
                "vs autograd": relative_error(ours, auto),
                "vs finite diff.": relative_error(ours.reshape(-1), numeric),
                "vs mlplab.scratch": relative_error(ours, ref),
            },
        )
    )

# ReLU: dx with L = sum(h * R).
x, R = rng.standard_normal((8, 5)), rng.standard_normal((8, 5))
relu = ReLU()
relu.forward(x)
dx = relu.backward(R)
x_t = torch.tensor(x, requires_grad=True)
(torch.relu(x_t) * torch.from_numpy(R)).sum().backward()
_, numeric = finite_differences(lambda: float(np.sum(relu.forward(x) * R)), x)
reference = scratch.ReLU()
reference.forward(x)
layer_rows.append(
    (
        "ReLU: dx",
        dx.shape,
        {
            "vs autograd": relative_error(dx, x_t.grad),
            "vs finite diff.": relative_error(dx.reshape(-1), numeric),
            "vs mlplab.scratch": relative_error(dx, reference.backward(R)),
        },
    )
)
table(layer_rows)

# %% [markdown]
# Then the whole network, 784-128-128-10 in float64, on 16 real MNIST images with the real loss.
# Autograd runs the same arithmetic on torch tensors; the finite differences nudge 20 random
# entries of each weight matrix (each entry costs two forward passes); the reference is
# `mlplab.scratch`'s network built on the same weights. `check_network` is reused below, on a
# network with a bug.


# %%
def autograd_gradients(net, x, labels):
    """The loss's gradient for every W and b of ``net``, by autograd on the same forward computation."""
    tensors = [torch.tensor(a, requires_grad=True) for layer in net.linears() for a in (layer.W, layer.b)]
    h = torch.from_numpy(x)
    for k in range(0, len(tensors), 2):
        h = h @ tensors[k] + tensors[k + 1]
        if k + 2 < len(tensors):
            h = torch.relu(h)
    F.cross_entropy(h, torch.from_numpy(labels)).backward()
    return [t.grad.numpy() for t in tensors]


def scratch_gradients(net, x, labels):
    """The same gradients from mlplab.scratch's network on the same weights (PyTorch's layout, transposed back)."""
    layers = []
    for layer in net.linears():
        layers += [scratch.Linear(layer.W.T.copy(), layer.b.copy()), scratch.ReLU()]
    reference, loss_fn = scratch.Sequential(*layers[:-1]), scratch.SoftmaxCrossEntropy()
    loss_fn.forward(reference.forward(x), labels)
    reference.backward(loss_fn.backward())
    return [g for linear in reference.linears() for g in (linear.dW.T, linear.db)]


def check_network(net, x, labels, entries=20):
    """Relative errors of ``net.backward``'s gradients against autograd, finite differences and mlplab.scratch."""
    loss, dz = softmax_cross_entropy(net.forward(x), labels)
    net.backward(dz)
    arrays = [(f"{kind}{k + 1}", layer) for k, layer in enumerate(net.linears()) for kind in ("W", "b")]
    rows = []
    for (name, layer), auto, ref in zip(
        arrays, autograd_gradients(net, x, labels), scratch_gradients(net, x, labels), strict=True
    ):
        ours, value = getattr(layer, "d" + name[0]), getattr(layer, name[0])
        index, numeric = finite_differences(lambda: softmax_cross_entropy(net.forward(x), labels)[0], value, entries)
        rows.append(
            (
                name,
                ours.shape,
                {
                    "vs autograd": relative_error(ours, auto),
                    "vs finite diff.": relative_error(ours.reshape(-1)[index], numeric),
                    "vs mlplab.scratch": relative_error(ours, ref),
                },
            )
        )
    return rows


x_check = data.val.images[:16].numpy().reshape(16, 784).astype(np.float64)  # (16, 784), standardised
labels_check = data.val.labels[:16].numpy()
net64 = ScratchNet((784, 128, 128, 10), seed=0, dtype=np.float64)
network_rows = check_network(net64, x_check, labels_check)
table(network_rows)

# %% [markdown]
# Every gradient matches. Against autograd and against `mlplab.scratch` the differences are a
# few units of float64 rounding ($10^{-16}$), or exactly 0 where the same operations run in the
# same order; against finite differences they are $10^{-10}$ to $10^{-7}$, the differences' own
# error (the step $\varepsilon = 10^{-6}$ leaves rounding of about $10^{-16}/10^{-6}$, times the
# size of $L$'s values). What a match looks like is "much smaller than $10^{-5}$"; a bug gives
# errors of order 1, as we will see. (`mlplab gradcheck --preset tutorial` runs the same checks
# on mlplab's own engine from the command line.)
#
# ### Training MNIST from scratch
#
# The last piece is the optimizer. Plain SGD moves every parameter a small step *against* its
# gradient, the direction in which the loss falls fastest: $\theta \leftarrow \theta - \eta\,
# d\theta$. There is no `zero_grad`: each backward pass overwrites every `dW` and `db`.

# %% [markdown] tags=["exercise"]
# **Exercise 4.** Write `sgd_step(net, lr)`: update every Linear layer's `W` and `b` in place
# from its `dW` and `db`.


# %% tags=["student"]
def sgd_step(net, lr):
    """One step of plain SGD on every Linear layer of ``net``, in place."""
    ...  # your code here


# %% tags=["solution"]
def sgd_step(net, lr):
    """One step of plain SGD on every Linear layer of ``net``, in place."""
    for layer in net.linears():
        layer.W -= lr * layer.dW
        layer.b -= lr * layer.db


# %% [markdown]
# The training loop, in NumPy. It is the PyTorch loop of Part 1 with each line written out:
# `net.forward` for `net(inputs)`, `softmax_cross_entropy` for the criterion (it returns the
# gradient too), `net.backward` for `loss.backward()`, `sgd_step` for `optimizer.step()`.

# %%
x_train, y_train = data.train.images.numpy().reshape(-1, 784), data.train.labels.numpy()  # float32, shared memory
x_val, y_val = data.val.images.numpy().reshape(-1, 784), data.val.labels.numpy()
x_test, y_test = data.test.images.numpy().reshape(-1, 784), data.test.labels.numpy()


def train_epoch(net, images, labels, lr, rng, step=sgd_step, batch_size=64, on_batch=None):
    """One shuffled pass of forward, loss, backward, step; returns the exact mean loss and accuracy."""
    order = rng.permutation(len(labels))
    total_loss, correct = 0.0, 0
    for start in range(0, len(labels), batch_size):
        index = order[start : start + batch_size]
        x, y = images[index], labels[index]
        z = net.forward(x)
        loss, dz = softmax_cross_entropy(z, y)
        net.backward(dz)
        step(net, lr)
        total_loss += loss * len(y)
        correct += int((z.argmax(axis=1) == y).sum())
        if on_batch is not None:
            on_batch(loss)
    return total_loss / len(labels), correct / len(labels)


def evaluate(net, images, labels):
    """Mean loss and accuracy over every image (forward only)."""
    z = net.forward(images)
    return softmax_cross_entropy(z, labels)[0], float((z.argmax(axis=1) == labels).mean())


# %% [markdown]
# Three epochs of the whole training split, batch 64, float32. The net is 784-128-128-10: two
# equal hidden widths, which matters for the second bug below. The learning rate is 0.1 for two
# epochs, then 0.01 for the last: at 0.1 single steps are large (one unlucky step, such as the
# last, smaller batch of an epoch, can cost a few points of accuracy), and the smaller rate at
# the end lets the weights settle.

# %%
scratch_net = ScratchNet((784, 128, 128, 10), seed=0)
rng = np.random.default_rng(0)
live = mlplab.LivePlot(
    title="From-scratch NumPy MLP 784-128-128-10, batch 64, SGD lr 0.1, 0.1, 0.01",
    epochs=3,
    loss_name="cross-entropy (nats)",
)
for epoch, lr in zip(range(1, 4), (0.1, 0.1, 0.01), strict=True):
    train_loss, train_accuracy = train_epoch(scratch_net, x_train, y_train, lr, rng, on_batch=live.batch)
    val_loss, val_accuracy = evaluate(scratch_net, x_val, y_val)
    live.update(
        epoch=epoch, train_loss=train_loss, train_accuracy=train_accuracy, val_loss=val_loss, val_accuracy=val_accuracy
    )
    print(
        f"epoch {epoch} (lr {lr}): train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
        f"val accuracy {val_accuracy:.2%}"
    )
scratch_test_loss, scratch_accuracy = evaluate(scratch_net, x_test, y_test)
print(f"test loss {scratch_test_loss:.4f}, test accuracy {scratch_accuracy:.2%}")

# %% [markdown]
# A few dozen lines of NumPy train MNIST to 97.39% on the test set in three epochs: no autograd,
# no `nn.Module`, no optimizer class, only the three derivations above and a minus sign.
#
# ### Two classic bugs
#
# **Bug 1: the optimizer adds the gradient.** `W += lr * dW` instead of `W -= lr * dW` is one
# character. It climbs the loss instead of descending it. Both runs below start from the same
# weights and see the same batches.


# %%
def sgd_step_climbing(net, lr):
    """BUG: moves every parameter *along* its gradient, uphill."""
    for layer in net.linears():
        layer.W += lr * layer.dW
        layer.b += lr * layer.db


subset_size = 100 * 64  # 100 steps of batch 64
curves = {}
with np.errstate(over="ignore", invalid="ignore"):  # the climbing run overflows float32
    for name, step in (("fixed: W -= lr * dW", sgd_step), ("bug: W += lr * dW", sgd_step_climbing)):
        losses = []
        train_epoch(
            ScratchNet((784, 128, 128, 10), seed=0),
            x_train[:subset_size],
            y_train[:subset_size],
            0.1,
            np.random.default_rng(0),
            step=step,
            on_batch=losses.append,
        )
        curves[name] = np.array(losses)
climbing, descending = curves["bug: W += lr * dW"], curves["fixed: W -= lr * dW"]
first_nan = int(np.argmax(~np.isfinite(climbing)))
print(f"fixed: loss {descending[0]:.3f} at step 1, {descending[-10:].mean():.3f} over the last 10 steps")
print(
    f"bug:   loss {climbing[0]:.3f} at step 1, {climbing[first_nan - 1]:.3g} at step {first_nan}, "
    f"then {climbing[first_nan]} (overflow) from step {first_nan + 1} on"
)

# %%
figure, axis = plt.subplots(figsize=(7, 3.6))
steps = np.arange(1, subset_size // 64 + 1)
for name, losses in curves.items():
    axis.plot(steps, losses, label=name, color="#d62728" if name.startswith("bug") else "#1f77b4")
axis.axvline(first_nan + 1, color="#d62728", linestyle=":", linewidth=1)
axis.annotate(
    f"loss is nan from step {first_nan + 1}",
    (first_nan + 1, climbing[first_nan - 1]),
    xytext=(first_nan + 8, climbing[first_nan - 1]),
    color="#d62728",
    fontsize=9,
    va="center",
)
axis.set_yscale("log")
axis.set_xlabel("optimizer step (batches of 64)")
axis.set_ylabel("training loss, cross-entropy (nats, log scale)")
axis.set_title("Bug 1: the optimizer adds the gradient")
axis.legend(loc="center right")
figure.tight_layout()
plt.show()

# %% [markdown]
# The fixed run's loss falls from 2.317 to 0.476 (the mean of its last 10 steps). The climbing
# run's loss creeps up for about ten steps, then explodes: 2.93e+21 at step 15, and from step 16 the float32 numbers
# overflow and the loss is `nan`. Climbing feeds itself: larger weights give larger activations,
# which give larger gradients for the weights. A loss that rises from the very first steps
# points at the sign of the update; one that falls for a while and then blows up points at
# the learning rate. The fix is the sign: `W -= lr * dW`.
#
# **Bug 2: the backward pass hands on the wrong array.** A Linear layer must give the layer below
# $dx = dy\,W^\top$. A common slip is to return something else that is at hand: `dy` itself
# (the gradient it received), or `self.dW`. Usually the shapes betray it: in our net, the last
# Linear returning its $(B, 10)$ `dy` to a ReLU of 128 units makes NumPy stop with a broadcasting
# error, the lucky case. But where a layer's input and output widths agree, as in the
# 128 → 128 middle layer, `dy` has exactly the right shape, and nothing stops.
#
# Below, the middle Linear is swapped for one that computes its own `dW` and `db` correctly
# but returns `dy`. Both nets train from the same weights on the same 300 batches:


# %%
class LinearHandsOnDy(Linear):
    """BUG: the right dW and db, but the layer below receives dy instead of dx = dy W^T."""

    def backward(self, dy):
        super().backward(dy)
        return dy


def with_wrong_tensor(net):
    """``net`` with its middle Linear (128 -> 128) replaced by the buggy one, on the same weights."""
    middle = net.layers[2]
    net.layers[2] = LinearHandsOnDy(middle.W, middle.b)
    return net


bug_curves, bug_accuracy = {}, {}
for name, net_ in (
    ("fixed", ScratchNet((784, 128, 128, 10), seed=0)),
    ("bug: returns dy", with_wrong_tensor(ScratchNet((784, 128, 128, 10), seed=0))),
):
    losses = []
    train_epoch(net_, x_train[: 300 * 64], y_train[: 300 * 64], 0.1, np.random.default_rng(0), on_batch=losses.append)
    bug_curves[name], bug_accuracy[name] = np.array(losses), evaluate(net_, x_val, y_val)[1]
    print(
        f"{name:16s} mean loss over the last 50 steps {bug_curves[name][-50:].mean():.4f}, "
        f"val accuracy {bug_accuracy[name]:.2%}"
    )


# %%
def moving_average(values, width=20):
    return np.convolve(values, np.ones(width) / width, mode="valid")


figure, axis = plt.subplots(figsize=(7, 3.6))
for name, losses in bug_curves.items():
    color = "#d62728" if name.startswith("bug") else "#1f77b4"
    axis.plot(np.arange(1, len(losses) + 1), losses, color=color, alpha=0.2, linewidth=0.7)
    axis.plot(
        np.arange(20, len(losses) + 1),
        moving_average(losses),
        color=color,
        label=f"{name} (val accuracy {bug_accuracy[name]:.1%})",
    )
axis.set_xlabel("optimizer step (batches of 64)")
axis.set_ylabel("training loss, cross-entropy (nats)")
axis.set_title("Bug 2: the middle Linear hands on dy (thin: each batch; thick: mean of 20)")
axis.legend()
figure.tight_layout()
plt.show()

# %% [markdown]
# The buggy net *trains*: its loss falls nearly as fast, and after 300 steps it reaches 91.93%
# validation accuracy against 93.12% for the correct one. The top two Linear layers get correct
# gradients; the first layer gets the middle layer's `dy`, as if $W_2$ were the identity matrix.
# That is a wrong direction, but a fixed one, and the layers above can adapt to it (a backward
# pass through a fixed wrong matrix still trains a network to a degree: Lillicrap et al. named it
# "feedback alignment" in 2016). So nothing looks broken; the net is just a little worse, and
# you could spend days tuning it. Loss curves cannot find this bug.
#
# The gradient check does not need to guess. Run on the buggy network, it points at the layers
# whose gradients are wrong:

# %%
buggy_rows = check_network(
    with_wrong_tensor(ScratchNet((784, 128, 128, 10), seed=0, dtype=np.float64)), x_check, labels_check
)
table(buggy_rows)

# %% [markdown]
# The two top layers pass (their gradients come from the correct `dy`, before the wrong array is
# handed on); $W_1$ and $b_1$ fail with relative errors of about 1, against all three references.
# The first failing layer sits right under the bug, so the place to look is the `backward` of
# the layer above it. The fix is the one line the bug replaced: `return dy @ self.W.T`.
#
# ## Part 3. Your own digit
#
# A model trained on MNIST has only seen digits made one way: light strokes on black, scaled to
# fit a 20×20 box, centred by their centre of mass in 28×28. An image of your own must be made
# into that first. `Run.predict` does it (with `mlplab.digits.to_mnist`: grey, background
# removed, ink found, cropped, scaled, centred), normalises it as the run's training images were,
# and returns a `Prediction`: the class probabilities and the 28×28 the model saw.
#
# `Run.predict` reads a run directory, so we first train one: mlplab's `fast` recipe (784-384-10,
# two epochs, a one-cycle schedule), written to `runs/lab6/own-digit`. We turn its label
# smoothing off: it aims the net at 91% for the right class and 1% for each of the others, and
# here we want probabilities that say how sure the net is.

# %%
config = mlplab.from_preset("fast")
config.train.out = str(RUNS / "own-digit")
config.train.label_smoothing = 0.0
live = mlplab.LivePlot(title="fast recipe 784-384-10, label smoothing off", loss_name="cross-entropy (nats)")
history = mlplab.train(config, callbacks=[live, mlplab.ProgressBar()])
run = mlplab.open_run(config.train.out)
print(run)

# %% [markdown]
# Now the digit: a thick dark "7" drawn with Pillow on a white 200×200 canvas, saved as a PNG
# file, as if from a drawing program.

# %%
seven = Image.new("L", (200, 200), color=255)  # grey levels, white paper
pen = ImageDraw.Draw(seven)
pen.line([(55, 45), (150, 45), (90, 165)], fill=20, width=16, joint="curve")  # dark ink
seven_path = RUNS / "seven.png"
seven.save(seven_path)


def show_prediction(path, prediction):
    """The image file, the 28x28 the model saw, and the class probabilities, side by side."""
    figure, (original, seen, bars) = plt.subplots(1, 3, figsize=(11, 3.4), width_ratios=(1, 1, 1.6))
    image = Image.open(path)
    original.imshow(image, cmap="gray", vmin=0, vmax=255)
    original.set_title(f"{path.name} ({image.width}×{image.height} px)")
    seen.imshow(prediction.image, cmap="gray", vmin=0, vmax=255)
    seen.set_title("what the model saw (28×28 px)")
    for axis in (original, seen):
        axis.set_xlabel("x (pixel)")
        axis.set_ylabel("y (pixel)")
    probabilities = 100 * np.array(prediction.probabilities)
    colors = ["#2ca02c" if k == prediction.label else "#7f7f7f" for k in range(10)]
    bars.bar(range(10), probabilities, color=colors)
    bars.set_xticks(range(10))
    bars.set_ylim(0, 105)
    bars.set_xlabel("digit")
    bars.set_ylabel("probability (%)")
    name, probability = prediction.top(1)[0]
    bars.set_title(f"prediction: {name} ({100 * probability:.2f}%)")
    figure.tight_layout()
    plt.show()


(seven_prediction,) = run.predict([seven_path])
print(seven_prediction.source, ", ".join(f"{name} {p:.6%}" for name, p in seven_prediction.top(3)))
show_prediction(seven_path, seven_prediction)

# %% [markdown]
# The run reaches 97.94% on the test set, and it reads the drawn 7 as a 7 with probability
# 99.9998%. The middle panel is what made that possible: the black-on-white 200×200
# drawing has become a white stroke on black, 20 pixels tall, centred by its centre of mass,
# like the digits the net was trained on.

# %% [markdown] tags=["exercise"]
# **Exercise 5.** Draw a "3" of your own (two arcs, `ImageDraw.arc`, or any strokes you like),
# save it as `runs/lab6/three.png`, and ask the run what it is. Try thinner or thicker strokes,
# a smaller digit in a corner, light ink on a dark background: `to_mnist` should cope with all
# of them.

# %% tags=["solution"]
three = Image.new("L", (200, 200), color=255)
pen = ImageDraw.Draw(three)
pen.arc((60, 25, 140, 100), start=-170, end=90, fill=20, width=14)  # the upper bowl
pen.arc((55, 95, 145, 180), start=-90, end=165, fill=20, width=14)  # the lower bowl
three_path = RUNS / "three.png"
three.save(three_path)
(three_prediction,) = run.predict([three_path])
print(three_prediction.source, ", ".join(f"{name} {p:.6%}" for name, p in three_prediction.top(3)))
show_prediction(three_path, three_prediction)

# %% [markdown]
# ## Checks
#
# Executing this notebook is a test: these asserts fail if a result above goes wrong.


# %% tags=["checks"]
def worst(rows, column, names=None):
    return max(errors[column] for name, _, errors in rows if names is None or name in names)


# The tutorial net, 2 epochs of batch 4 on 10,000 images: measured 93.41% test accuracy here
# (worst class 85.0%); a margin of 1.5 and 5 points.
assert tutorial_accuracy >= 0.92, tutorial_accuracy
assert min(per_class) >= 0.80, per_class
# The hand-written gradients equal autograd's and mlplab.scratch's to rounding, and the finite
# differences to their O(eps^2) error, for each layer and for the whole network (float64).
for rows in (layer_rows, network_rows):
    assert worst(rows, "vs autograd") < 1e-5 and worst(rows, "vs mlplab.scratch") < 1e-5, rows
    assert worst(rows, "vs finite diff.") < 1e-5, rows
# The from-scratch net: measured 97.39% test accuracy after 3 epochs; a margin of 1.4 points.
assert scratch_accuracy >= 0.96, scratch_accuracy
# Bug 1: the climbing optimizer's loss rises until it is no longer a number; the fixed one's falls.
assert climbing[first_nan - 1] > 10 * climbing[0] and not np.all(np.isfinite(climbing))
assert descending[-10:].mean() < 0.5 * descending[0]
# Bug 2: the gradient check flags the layers under the wrong tensor (large relative error) and
# clears those above it; the buggy net still trains, a little worse.
assert worst(buggy_rows, "vs autograd", {"W1", "b1"}) > 0.1, buggy_rows
assert worst(buggy_rows, "vs finite diff.", {"W1", "b1"}) > 0.1, buggy_rows
assert worst(buggy_rows, "vs autograd", {"W2", "b2", "W3", "b3"}) < 1e-5, buggy_rows
assert bug_accuracy["bug: returns dy"] < bug_accuracy["fixed"]
# Your own digits are read as the digits drawn.
assert run.metrics["test_accuracy"] >= 0.97
assert seven_prediction.found and seven_prediction.label == 7, seven_prediction.top(3)
assert three_prediction.found and three_prediction.label == 3, three_prediction.top(3)
print("all checks passed")
