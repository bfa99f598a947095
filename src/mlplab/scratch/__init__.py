"""Backprop from scratch: an MLP, its losses and optimizers in NumPy, checked against autograd.

Each layer keeps its forward computation and backward rule side by side
(`mlplab.scratch.layers`); losses return their gradient with respect to the network's
outputs (`mlplab.scratch.losses`); `Sequential` chains the layers and runs their
backward rules in reverse; `SGD` and `Adam` update the arrays in place; `gradcheck`
compares any of them with finite differences. Nothing here imports torch, except
`to_torch`, which copies weights into a torch model, and `mlplab.scratch.reference`
(not imported by default), which checks the gradients against autograd.

    from mlplab import scratch
    net = scratch.mlp((784, 16, 32, 24, 10), "relu", "log_softmax", dtype=np.float64)
    loss_fn = scratch.NLL()
    optimizer = scratch.SGD(net.parameters(), lr=0.01, momentum=0.9)
    scratch.train_epoch(net, loss_fn, optimizer, scratch.batches(x, y, 64, rng))
"""

from mlplab.scratch.gradcheck import GradcheckResult, gradcheck
from mlplab.scratch.layers import (
    ACTIVATION_LAYERS,
    ELU,
    Layer,
    LeakyReLU,
    Linear,
    LogSoftmax,
    Parameter,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    log_softmax,
    softmax,
)
from mlplab.scratch.loop import batches, evaluate, train_epoch, train_step
from mlplab.scratch.losses import MSE, NLL, Loss, OnSoftmax, Quadratic, SoftmaxCrossEntropy, loss_for, one_hot
from mlplab.scratch.network import Sequential, from_config, from_torch, mlp, to_torch
from mlplab.scratch.optim import SGD, Adam, AdamW

__all__ = [
    "ACTIVATION_LAYERS",
    "ELU",
    "MSE",
    "NLL",
    "SGD",
    "Adam",
    "AdamW",
    "GradcheckResult",
    "Layer",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "Loss",
    "OnSoftmax",
    "Parameter",
    "Quadratic",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "Tanh",
    "batches",
    "evaluate",
    "from_config",
    "from_torch",
    "gradcheck",
    "log_softmax",
    "loss_for",
    "mlp",
    "one_hot",
    "softmax",
    "to_torch",
    "train_epoch",
    "train_step",
]
