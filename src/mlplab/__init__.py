"""mlplab: train, inspect and understand multilayer perceptrons on MNIST-family data."""

__version__ = "0.1.0"
