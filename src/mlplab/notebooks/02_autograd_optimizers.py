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
# # Lab 2: Autograd and optimizers
#
# Training a network means three things, over and over: compute a loss, get its gradient
# with respect to every parameter, move the parameters a little against it. PyTorch's
# **autograd** does the second, `torch.optim` does the third. This lab takes them apart:
#
# 1. tensors that record operations (`requires_grad`), `backward()` and `.grad`, checked
#    against derivatives done by hand;
# 2. composed functions, and why an intermediate tensor has no `.grad` unless you ask;
# 3. gradient accumulation: why `zero_grad()` exists, and how micro-batches add up to a big batch;
# 4. `torch.optim.SGD` against the same step written by hand, and a learning-rate schedule;
# 5. linear regression by SGD against the exact least-squares answer;
# 6. a 784-32-16-10 MNIST classifier trained by a loop you write, with its per-batch loss curve.
#
# It needs nothing but mlplab (MNIST ships inside the package; no network) and runs in
# about 15 seconds on a 2-core laptop.

# %%
import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import mlplab

# The operations of this lab's small nets are too short to split between CPU threads: a second
# thread mostly waits, and on a busy machine it makes training several times slower. One
# thread also makes every number below repeatable.
torch.set_num_threads(1)

# %% [markdown]
# ## 1. Tensors that remember how they were made
#
# A tensor created with `requires_grad=True` is a **leaf** of the computation graph: every
# operation on it records how to differentiate itself (the result's `grad_fn`). Calling
# `backward()` on a scalar result walks that record backwards (the chain rule) and stores
# d(result)/d(leaf) in the leaf's `.grad`.
#
# Take f(x) = x³ + 2x at x = 2. By hand: f'(x) = 3x² + 2, so f'(2) = 14.

# %%
x = torch.tensor(2.0, requires_grad=True)
f = x**3 + 2 * x
print("f =", f)  # grad_fn: the last operation, where backward starts
print("x is a leaf:", x.is_leaf, "  f is a leaf:", f.is_leaf)
f.backward()
by_hand = 3 * 2.0**2 + 2
print(f"autograd: df/dx = {x.grad.item()}   by hand: 3x² + 2 = {by_hand}")
cubic_grad = x.grad.item()

# %% [markdown]
# The same works for a vector of parameters, as long as the result is a **scalar** (a loss
# always is): for L(w) = Σ wᵢ², ∂L/∂wᵢ = 2wᵢ, so `w.grad` is 2w, one entry per entry of `w`.

# %%
w = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
L = (w**2).sum()
L.backward()
print("w.grad =", w.grad, "  2w =", 2 * w.detach())

# %% [markdown]
# ## 2. Composed functions and `retain_grad()`
#
# With y = x² and z = 3y + 1, the chain rule gives dz/dx = dz/dy · dy/dx = 3 · 2x; at x = 2,
# dz/dy = 3 and dz/dx = 12.
#
# `y` is not a leaf: it was computed from `x`. Autograd passes the gradient *through* `y` on
# its way to `x` but does not keep it, because in a network the intermediates are every
# layer's activations, for every image of the batch: storing all their gradients would
# double the memory for numbers you almost never look at. The parameters, the leaves, are
# what the optimizer needs. Ask for an intermediate's gradient with `y.retain_grad()` before
# calling `backward()`.

# %%
x = torch.tensor(2.0, requires_grad=True)
y = x**2
y.retain_grad()  # without this line, y.grad stays None (and PyTorch warns when you read it)
z = 3 * y + 1
z.backward()
dz_dy, dz_dx = y.grad.item(), x.grad.item()
print(f"dz/dy = {dz_dy}  (by hand: 3)")
print(f"dz/dx = {dz_dx}  (by hand: 3 * 2x = {3 * 2 * 2.0})")

y_plain = torch.tensor(2.0, requires_grad=True) ** 2  # a non-leaf, no retain_grad()
(3 * y_plain + 1).backward()
print("without retain_grad(), y.grad is", y_plain.grad)  # None, with PyTorch's warning below

# %% [markdown] tags=["exercise"]
# **Exercise 1.** Let f(a, b) = (a·b + sin a)². Work out ∂f/∂a and ∂f/∂b by hand, evaluate
# them at a = 1.5, b = −2, and check them against autograd. Store autograd's values in
# `grad_a`, `grad_b` and yours in `hand_a`, `hand_b` (Python floats).

# %% tags=["student"]
a = torch.tensor(1.5, requires_grad=True)
b = torch.tensor(-2.0, requires_grad=True)
# your code here: f, backward, then grad_a, grad_b (autograd) and hand_a, hand_b (your formulas)

# %% tags=["solution"]
a = torch.tensor(1.5, requires_grad=True)
b = torch.tensor(-2.0, requires_grad=True)
f = (a * b + torch.sin(a)) ** 2
f.backward()
grad_a, grad_b = a.grad.item(), b.grad.item()

# f = u² with u = ab + sin a:  ∂f/∂a = 2u (b + cos a),  ∂f/∂b = 2u a
u = 1.5 * -2.0 + np.sin(1.5)
hand_a, hand_b = 2 * u * (-2.0 + np.cos(1.5)), 2 * u * 1.5
print(f"df/da: autograd {grad_a:.6f}   by hand {hand_a:.6f}")
print(f"df/db: autograd {grad_b:.6f}   by hand {hand_b:.6f}")

# %% [markdown]
# ## 3. Gradients accumulate
#
# `backward()` **adds** into `.grad`; it never overwrites it. Call it twice and you get twice
# the gradient:

# %%
x = torch.tensor(3.0, requires_grad=True)
(x**2).backward()
print("after one backward:", x.grad.item(), " (d(x²)/dx = 2x = 6)")
(x**2).backward()
print("after two:         ", x.grad.item(), " (6 + 6)")
accumulated_twice = x.grad.item()
x.grad = None  # what optimizer.zero_grad() does to every parameter (x.grad.zero_() also works)
(x**2).backward()
print("after clearing:    ", x.grad.item())

# %% [markdown]
# That is why every training step starts with `optimizer.zero_grad()`: without it each step
# would follow the sum of all the gradients so far. It is also a feature. A batch too big
# for memory can be cut into **micro-batches** whose gradients are accumulated before one
# optimizer step. The loss is a *mean* over the batch, so each micro-batch's mean loss must
# be weighted by its share of the batch, n/N; then the accumulated gradient is exactly the
# big batch's.
#
# Below: a small net and 64 MNIST images, once as one batch of 64, once as four
# micro-batches of 16 with each loss scaled by 16/64.

# %%
data = mlplab.load_data()  # MNIST as tensors: 50k train / 10k val / 10k test, standardised
images, labels = data.train.images[:64], data.train.labels[:64]  # (64, 1, 28, 28), (64,)

torch.manual_seed(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


def gradients(module):
    """A copy of every parameter's .grad, flattened into one vector."""
    return torch.cat([p.grad.flatten() for p in module.parameters()]).clone()


net.zero_grad()
F.cross_entropy(net(images), labels).backward()  # the mean over 64 images
big_batch = gradients(net)

net.zero_grad()
for chunk_images, chunk_labels in zip(images.split(16), labels.split(16), strict=True):
    loss = F.cross_entropy(net(chunk_images), chunk_labels)  # the mean over 16 images
    (loss * len(chunk_labels) / len(labels)).backward()  # weighted by 16/64; .grad adds up
micro_batches = gradients(net)

accumulation_error = (big_batch - micro_batches).abs().max().item()
print(f"largest difference, one batch of 64 vs 4 x 16 accumulated: {accumulation_error:.2e}")

net.zero_grad()
for chunk_images, chunk_labels in zip(images.split(16), labels.split(16), strict=True):
    F.cross_entropy(net(chunk_images), chunk_labels).backward()  # forgot the 16/64
print(f"without the weights, the gradient is {(gradients(net).norm() / big_batch.norm()).item():.2f} times too long")

# %% [markdown] tags=["exercise"]
# **Exercise 2.** Micro-batches need not be equal. Accumulate the gradient of the same 64
# images over the micro-batches of 40 and 24 images (`images.split([40, 24])`), weighting each
# correctly, and store the result in `uneven` (use `gradients(net)`). It must match
# `big_batch` to 1e-6. What goes wrong if you scale each loss by ½ instead?

# %% tags=["solution"]
net.zero_grad()
for chunk_images, chunk_labels in zip(images.split([40, 24]), labels.split([40, 24]), strict=True):
    loss = F.cross_entropy(net(chunk_images), chunk_labels)
    (loss * len(chunk_labels) / len(labels)).backward()  # 40/64 and 24/64
uneven = gradients(net)
print(f"largest difference, 64 vs 40 + 24: {(uneven - big_batch).abs().max().item():.2e}")
# With ½ each, the 24 images of the second micro-batch would count as much as the 40 of the
# first: each of them weighs 40/24 times more than it should, a gradient of another loss.

# %% [markdown]
# ## 4. `torch.optim`: the step, by hand and by the optimizer
#
# Plain SGD moves every parameter against its gradient: p ← p − lr · ∂L/∂p. With **momentum**
# μ it follows a running sum of the gradients instead, which smooths the noise of single
# batches and builds up speed along directions the gradients agree on:
#
#   v ← μ·v + ∂L/∂p  (v = ∂L/∂p on the first step),   p ← p − lr · v.
#
# Below, two identical copies of the net: one updated by these two lines, written out under
# `torch.no_grad()` (an update must not itself be recorded by autograd), the other by
# `torch.optim.SGD(..., momentum=0.9)`. After three steps on different batches they hold the
# same weights.

# %%
lr, momentum = 0.1, 0.9
by_hand_net, by_optim_net = copy.deepcopy(net), copy.deepcopy(net)
optimizer = torch.optim.SGD(by_optim_net.parameters(), lr=lr, momentum=momentum)
velocities = [torch.zeros_like(p) for p in by_hand_net.parameters()]

for step in range(3):
    rows = slice(64 * step, 64 * (step + 1))  # a different batch each step
    batch_images, batch_labels = data.train.images[rows], data.train.labels[rows]

    by_hand_net.zero_grad()
    F.cross_entropy(by_hand_net(batch_images), batch_labels).backward()
    with torch.no_grad():
        for p, v in zip(by_hand_net.parameters(), velocities, strict=True):
            v.mul_(momentum if step else 0).add_(p.grad)  # v = μ v + g  (v = g on the first step)
            p.sub_(lr * v)  # p = p - lr v

    optimizer.zero_grad()
    F.cross_entropy(by_optim_net(batch_images), batch_labels).backward()
    optimizer.step()

step_error = max(
    (p - q).abs().max().item() for p, q in zip(by_hand_net.parameters(), by_optim_net.parameters(), strict=True)
)
print(f"largest weight difference after 3 steps, by hand vs optimizer.step(): {step_error:.2e}")

# %% [markdown]
# ### A learning-rate schedule
#
# A scheduler changes the optimizer's learning rate as training goes. `ExponentialLR`
# multiplies it by `gamma` at each `scheduler.step()`, called **once per epoch, after that
# epoch's optimizer steps**, so epoch e trains with lr₀ · γᵉ. A geometric sequence is a
# straight line on a logarithmic axis.

# %%
weight = torch.zeros(3, requires_grad=True)
optimizer = torch.optim.SGD([weight], lr=0.1)
scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.8)
learning_rates = []
for _epoch in range(10):
    learning_rates.append(optimizer.param_groups[0]["lr"])  # the lr this epoch trains with
    # ... this epoch's batches: zero_grad, forward, loss, backward, optimizer.step() ...
    optimizer.step()
    scheduler.step()
for epoch, rate in enumerate(learning_rates):
    print(f"epoch {epoch}: lr {rate:.5f}   0.1 * 0.8^{epoch} = {0.1 * 0.8**epoch:.5f}")

figure, axis = plt.subplots(figsize=(6, 3.5))
axis.semilogy(range(10), learning_rates, marker="o")
axis.set(title="ExponentialLR: lr₀ = 0.1, γ = 0.8", xlabel="epoch", ylabel="learning rate (log scale)")
axis.grid(alpha=0.3, which="both")
plt.show()

# %% [markdown]
# ## 5. Linear regression: SGD against least squares
#
# A problem whose answer we know exactly. Data y = X·w + b + noise: 1,000 rows, 5 features
# drawn from N(0, 1), noise of standard deviation 0.1. The mean squared error
# MSE(w, b) = mean over rows of (x·w + b − y)² is minimised exactly by **least squares**:
# solve [X, 1]·θ ≈ y in closed form (`torch.linalg.lstsq`), θ = (w, b). No method can reach
# a lower MSE on this data, so least squares is the yardstick for SGD.
#
# Everything here is float64, so that rounding plays no part when the two MSEs agree to many
# digits. (`mlplab experiment linreg` runs this same comparison from the command line.)

# %%
generator = torch.Generator().manual_seed(0)
true_w = torch.randn(5, generator=generator, dtype=torch.float64)
true_b = torch.randn((), generator=generator, dtype=torch.float64)
X = torch.randn(1000, 5, generator=generator, dtype=torch.float64)  # (N, P)
y = X @ true_w + true_b + 0.1 * torch.randn(1000, generator=generator, dtype=torch.float64)  # (N,)

design = torch.cat([X, torch.ones(1000, 1, dtype=torch.float64)], dim=1)  # (N, P + 1): the 1s carry b
theta_ls = torch.linalg.lstsq(design, y.unsqueeze(1)).solution.squeeze(1)  # (P + 1,)
mse_ls = ((design @ theta_ls - y) ** 2).mean().item()
print("true w, b:         ", [round(v, 4) for v in true_w.tolist()], round(true_b.item(), 4))
print("least-squares w, b:", [round(v, 4) for v in theta_ls[:5].tolist()], round(theta_ls[5].item(), 4))
print(f"least-squares MSE: {mse_ls:.6f}   (about the noise variance, 0.1² = 0.01)")

# %% [markdown] tags=["exercise"]
# **Exercise 3.** Fit the same data with `nn.Linear(5, 1)` (float64) trained by mini-batch
# SGD on `nn.MSELoss()`: batches of 8 rows in a fresh random order every epoch
# (`torch.randperm`), lr 0.001, 60 epochs. After every epoch (and once before the first),
# append to `sgd_mse` the MSE over **all** 1,000 rows, and to `distance` the distance
# ‖θ_SGD − θ_LS‖ between the model's (w, b) and least squares'.

# %% tags=["student"]
torch.manual_seed(0)
model = nn.Linear(5, 1, dtype=torch.float64)
optimizer = torch.optim.SGD(model.parameters(), lr=0.001)
loss_fn = nn.MSELoss()
sgd_mse, distance = [], []
# your code here: 60 epochs of mini-batch SGD, recording sgd_mse and distance after each epoch

# %% tags=["solution"]
torch.manual_seed(0)
model = nn.Linear(5, 1, dtype=torch.float64)
optimizer = torch.optim.SGD(model.parameters(), lr=0.001)
loss_fn = nn.MSELoss()
sgd_mse, distance = [], []


def record():
    """Whole-data MSE and distance to the least-squares parameters, after an epoch."""
    with torch.no_grad():
        sgd_mse.append(loss_fn(model(X), y.unsqueeze(1)).item())
        theta = torch.cat([model.weight[0], model.bias])
        distance.append((theta - theta_ls).norm().item())


record()  # epoch 0: before training
for _epoch in range(60):
    order = torch.randperm(len(X))  # a fresh shuffle every epoch
    for batch in order.split(8):
        optimizer.zero_grad()
        loss = loss_fn(model(X[batch]), y[batch].unsqueeze(1))
        loss.backward()
        optimizer.step()
    record()
print(
    f"after {len(sgd_mse) - 1} epochs: SGD MSE {sgd_mse[-1]:.8f}, least squares {mse_ls:.8f}, "
    f"gap {sgd_mse[-1] - mse_ls:.1e}, distance {distance[-1]:.1e}"
)

# %% [markdown]
# On a linear axis the SGD curve would sit on the least-squares line after a few epochs and
# show nothing more. On a **semilog** plot (logarithmic y) the gap |MSE_SGD − MSE_LS| keeps
# telling: it falls along a straight line, a constant factor per epoch (geometric
# convergence), until it flattens at a floor set by the noise of single mini-batches, which
# keeps SGD jittering around the optimum with a fixed learning rate. Here the gap falls
# from about 10 before training to about 10⁻⁸ by epoch 40 and then hovers there. The
# distance to the least-squares parameters behaves the same way (down to about 10⁻⁴); the
# gap in MSE goes as its square.

# %%
epochs = np.arange(len(sgd_mse))
gap = np.abs(np.array(sgd_mse) - mse_ls)
figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
left.semilogy(epochs, sgd_mse, label="SGD, MSE over all rows")
left.axhline(mse_ls, color="tab:orange", linestyle="--", label=f"least squares, {mse_ls:.5f}")
left.set(title="MSE per epoch", xlabel="epoch (0: before training)", ylabel="mean squared error (log scale)")
right.semilogy(epochs, gap, label="|MSE_SGD − MSE_LS|")
right.semilogy(epochs, distance, label="‖θ_SGD − θ_LS‖ (parameter distance)")
right.set(
    title="How far SGD is from least squares",
    xlabel="epoch (0: before training)",
    ylabel="gap (log scale; MSE units, parameter units)",
)
for axis in (left, right):
    axis.grid(alpha=0.3, which="both")
    axis.legend()
figure.suptitle("Linear regression, 1,000 rows, 5 features: mini-batch SGD (batch 8, lr 0.001) vs least squares")
figure.tight_layout()
plt.show()

# %% [markdown]
# ## 6. An MNIST classifier, trained by a loop you write
#
# The network is 784-32-16-10 with ReLUs, trained by SGD with momentum 0.9 and lr 0.01 on
# batches of 64, with cross-entropy. mlplab supplies the data as tensors (`load_data`, above)
# and draws the batches (`mlplab.Batches`: a fresh seeded order each epoch); the loop is
# yours. Every batch's loss goes into a list for the curve below and into a `LivePlot`,
# which redraws the curves as training goes.

# %%
train_batches = mlplab.Batches(data.train, batch_size=64, shuffle=True, seed=0)  # 782 batches per epoch
val_batches = mlplab.Batches(data.val, batch_size=1000)

torch.manual_seed(0)
classifier = nn.Sequential(
    nn.Flatten(),  # (B, 1, 28, 28) -> (B, 784)
    nn.Linear(784, 32),
    nn.ReLU(),
    nn.Linear(32, 16),
    nn.ReLU(),
    nn.Linear(16, 10),  # (B, 10) logits
)
loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(classifier.parameters(), lr=0.01, momentum=0.9)
EPOCHS = 3

# %% [markdown] tags=["exercise"]
# **Exercise 4.** Write the training loop: for each of `EPOCHS` epochs, put the model in
# train mode, and for each batch clear the gradients, compute the outputs and the loss,
# backpropagate and step. Append every batch's loss (a float) to `batch_losses` and pass it
# to `live.batch(...)`; at the end of the epoch, score the validation set with
# `mlplab.evaluate(classifier, val_batches, loss_fn)` and call `live.update(...)` with the
# epoch's mean training loss, training accuracy and the validation loss and accuracy. Leave
# the last epoch's validation accuracy in `val_accuracy`.

# %% tags=["student"]
live = mlplab.LivePlot(title="784-32-16-10 on MNIST, SGD with momentum", epochs=EPOCHS)
batch_losses = []
for epoch in range(1, EPOCHS + 1):
    ...  # your code here

# %% tags=["solution"]
live = mlplab.LivePlot(title="784-32-16-10 on MNIST, SGD with momentum", epochs=EPOCHS)
batch_losses = []
for epoch in range(1, EPOCHS + 1):
    classifier.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for images, labels in train_batches:
        optimizer.zero_grad()
        outputs = classifier(images)
        loss = loss_fn(outputs, labels)
        loss.backward()
        optimizer.step()

        batch_losses.append(loss.item())
        live.batch(batch_losses[-1])
        loss_sum += batch_losses[-1] * len(labels)  # exact epoch means: weight each batch by its size
        correct += (outputs.argmax(dim=1) == labels).sum().item()
        seen += len(labels)
    scores = mlplab.evaluate(classifier, val_batches, loss_fn)
    live.update(
        epoch=epoch,
        train_loss=loss_sum / seen,
        train_accuracy=correct / seen,
        val_loss=scores["loss"],
        val_accuracy=scores["accuracy"],
    )
    print(
        f"epoch {epoch}: train loss {loss_sum / seen:.4f} acc {correct / seen:.2%}   "
        f"val loss {scores['loss']:.4f} acc {scores['accuracy']:.2%}"
    )
val_accuracy = scores["accuracy"]

# %% [markdown]
# ### The per-batch loss curve
#
# Each batch's loss is a noisy estimate of the loss over the whole training set: 64 images
# are a small sample. The thin line is every batch; the thick one is a moving average over
# 50 batches, which shows the trend: a fast fall in the first few hundred steps, then a slow
# decline. The spread around it is the gradient noise that SGD lives with (and that the
# momentum averages out).

# %%
window = 50
smoothed = np.convolve(batch_losses, np.ones(window) / window, mode="valid")
figure, axis = plt.subplots(figsize=(10, 4))
axis.plot(np.arange(1, len(batch_losses) + 1), batch_losses, linewidth=0.5, alpha=0.4, label="every batch")
axis.plot(
    np.arange(window, len(batch_losses) + 1), smoothed, linewidth=2, label=f"moving average over {window} batches"
)
for epoch in range(1, EPOCHS):
    axis.axvline(epoch * len(train_batches), color="gray", linestyle=":", linewidth=1)
axis.set_yscale("log")
axis.set(
    title=f"784-32-16-10 on MNIST: training loss per batch (batch 64, {EPOCHS} epochs; dotted: epoch ends)",
    xlabel="optimizer step (batch)",
    ylabel="cross-entropy (nats, log scale)",
)
axis.grid(alpha=0.3, which="both")
axis.legend()
plt.show()

# %% [markdown]
# After 3 epochs the net classifies 96.1% of the 10,000 validation images correctly, and
# the training and validation losses are still falling together: a small net trained
# briefly. Lab 4 looks at what happens when training goes on long enough to overfit.
#
# ## Checks

# %% tags=["checks"]
assert cubic_grad == 14.0 and torch.equal(w.grad, 2 * w.detach())  # exact: small integers and halves
assert dz_dy == 3.0 and dz_dx == 12.0
assert accumulated_twice == 12.0
assert abs(grad_a - hand_a) < 1e-5 and abs(grad_b - hand_b) < 1e-5, (grad_a, hand_a, grad_b, hand_b)
assert accumulation_error < 1e-6, accumulation_error
assert (uneven - big_batch).abs().max().item() < 1e-6
assert step_error < 1e-6, step_error
assert all(abs(rate - 0.1 * 0.8**epoch) < 1e-12 for epoch, rate in enumerate(learning_rates))
assert (sgd_mse[-1] - mse_ls) / mse_ls < 1e-4, (sgd_mse[-1], mse_ls)  # within 0.01% of the optimum
assert distance[-1] < 1e-2, distance[-1]
assert len(batch_losses) == EPOCHS * len(train_batches)
assert val_accuracy > 0.95, val_accuracy  # 0.9606 measured
print("all checks passed")
