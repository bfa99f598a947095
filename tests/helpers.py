"""Helpers shared by tests of the optimizers, engines and training loop."""

from __future__ import annotations

from typing import Any

from mlplab.config import OptimConfig
from mlplab.training.callbacks import Callback

# PyTorch's own optimizer defaults (no momentum, no schedule), not mlplab's training recipe:
# tests of an optimizer state every setting they exercise on top of these.
PLAIN = dict(optimizer="sgd", lr=0.01, momentum=0.0, nesterov=False, scheduler="none")


def plain_optim(**settings: Any) -> OptimConfig:
    """An `OptimConfig` from PyTorch's plain defaults with ``settings`` on top."""
    return OptimConfig(**{**PLAIN, **settings})


class StopAfter(Callback):
    """A callback that interrupts training like Ctrl-C once epoch ``epoch`` is saved."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state: Any, record: dict[str, Any]) -> None:
        if record["epoch"] == self.epoch:
            raise KeyboardInterrupt


def cli_status(argv: list[str]) -> int:
    """The exit status of ``mlplab ARGV`` run in-process: `main`'s return value, or the status of the
    SystemExit argparse raises for a flag it refuses as it parses (a number outside its range)."""
    from mlplab.cli.main import main

    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def exits_2_with_one_line(capsys, argv: list[str], *fragments: str) -> None:
    """``mlplab ARGV`` in-process exits with status 2 and one line on stderr holding every fragment,
    nothing on stdout and no traceback."""
    from mlplab.cli.main import main

    assert main(argv) == 2
    captured = capsys.readouterr()
    error = captured.err.strip()
    assert "\n" not in error and "Traceback" not in error and captured.out == ""
    for fragment in fragments:
        assert fragment in error, (fragment, error)


def mlplab_process(*args: str, fault: str | None = None, timeout: float = 300):
    """Run ``python -m mlplab ARGS`` in a new process, with the fault point ``fault`` armed
    (``MLPLAB_FAULT``, see `mlplab.files.fault_point`) or none; returns the CompletedProcess."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MLPLAB_FAULT"}
    if fault:
        env["MLPLAB_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "mlplab", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def blobs(n: int = 300, validation: int = 120, spread: float = 3.0):
    """``n`` training samples and ``validation`` more from the same three Gaussian blobs in 5 dimensions,
    standardised (scikit-learn's make_blobs, seeded): ``X, y, X_val, y_val``."""
    from sklearn.datasets import make_blobs
    from sklearn.preprocessing import StandardScaler

    X, y = make_blobs(n + validation, n_features=5, centers=3, cluster_std=spread, random_state=0)
    X = StandardScaler().fit_transform(X)
    return X[:n], y[:n], X[n:], y[n:]
