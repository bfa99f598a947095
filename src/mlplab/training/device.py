"""Pick the training device: one code path for cpu, cuda and mps."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from mlplab.choices import DEVICES
from mlplab.config import THREADS_PER_CPU
from mlplab.errors import MlplabError, check_choice


def resolve_device(name: str = "auto") -> torch.device:
    """The device named ``name``, one of `mlplab.choices.DEVICES`: ``auto`` picks cuda, then mps, then cpu;
    asking for a missing accelerator is an error."""
    check_choice("device", name, DEVICES)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MlplabError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise MlplabError("--device mps was asked for but this PyTorch has no MPS backend; use --device cpu or auto")
    return torch.device(name)


# Below this batch size an MLP's ops are too small for a second CPU thread to pay for its
# synchronisation: on a 2-core machine one thread gave the same epoch time at batch 64
# (0.24 s) with far less spread (0.24-0.30 s with two), and 30% less at batch 4.
SINGLE_THREAD_BELOW = 128


def check_threads(requested: int) -> int:
    """``requested`` if it is at least 1 and at most `THREADS_PER_CPU` per CPU of this machine."""
    if requested < 1:
        raise MlplabError(f"threads must be at least 1; got {requested}")
    cpus = os.cpu_count() or 1
    if requested > THREADS_PER_CPU * cpus:
        raise MlplabError(f"threads must be at most {THREADS_PER_CPU * cpus} on this machine "
                          f"({THREADS_PER_CPU} per CPU, {cpus} CPUs); got {requested}")
    return requested


def cpu_threads(requested: int | None, batch_size: int, device: torch.device) -> int:
    """Threads to train with: ``requested`` if given, else 1 for small CPU batches, else PyTorch's default."""
    if requested is not None:
        return check_threads(requested)
    if device.type == "cpu" and batch_size < SINGLE_THREAD_BELOW:
        return 1
    return torch.get_num_threads()


@contextlib.contextmanager
def using_threads(count: int, numpy_blas: bool = False) -> Iterator[None]:
    """Run a block with ``count`` PyTorch CPU threads, then restore the previous setting.

    With ``numpy_blas`` (the scratch engine, whose arithmetic is NumPy's) the ``count``
    threads go to NumPy's BLAS instead, and PyTorch, which then only gathers batches,
    gets one. Two pools each spinning two threads on two cores made an epoch at batch
    256 six times slower (1.8 s against 0.3).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1 if numpy_blas else count)
    try:
        if numpy_blas:
            from threadpoolctl import threadpool_limits  # only the scratch engine needs it

            with threadpool_limits(limits=count, user_api="blas"):
                yield
        else:
            yield
    finally:
        torch.set_num_threads(previous)
