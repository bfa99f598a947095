"""Device choice, and training leaving the thread setting as it found it (the policy: tests/test_threads.py)."""

import pytest
import torch

from mlplab.errors import MlplabError
from mlplab.device import resolve_device

CPU = torch.device("cpu")


def test_fit_leaves_the_thread_setting_as_it_found_it(make_config):
    from mlplab.training import train

    before = torch.get_num_threads()
    train(make_config(epochs=1, hidden="8", batch_size=32, threads=None))  # the automatic choice
    assert torch.get_num_threads() == before


def test_device_auto_is_cpu_here_and_missing_accelerators_are_user_errors():
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(MlplabError, match="no CUDA GPU"):
            resolve_device("cuda")
    assert resolve_device("cpu") == CPU
