"""Device choice and the CPU thread rule."""

import pytest
import torch

from mlplab.errors import MlplabError
from mlplab.training.device import SINGLE_THREAD_BELOW, cpu_threads, resolve_device, using_threads

CPU = torch.device("cpu")


def test_small_cpu_batches_train_on_one_thread_and_large_ones_on_the_default():
    assert cpu_threads(None, SINGLE_THREAD_BELOW - 1, CPU) == 1
    assert cpu_threads(None, SINGLE_THREAD_BELOW, CPU) == torch.get_num_threads()
    assert cpu_threads(None, 4, torch.device("cuda")) == torch.get_num_threads()
    assert cpu_threads(3, 4, CPU) == 3


def test_bad_thread_count_is_a_user_error():
    with pytest.raises(MlplabError, match="threads must be at least 1"):
        cpu_threads(0, 64, CPU)


def test_using_threads_restores_the_previous_setting():
    before = torch.get_num_threads()
    with using_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_the_scratch_engines_threads_go_to_numpys_blas():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    before, blas_before = torch.get_num_threads(), blas_threads()
    with using_threads(1, numpy_blas=True):
        assert torch.get_num_threads() == 1 and blas_threads() == {1}
    with using_threads(3, numpy_blas=True):
        assert torch.get_num_threads() == 1 and blas_threads() == {3}
    assert torch.get_num_threads() == before and blas_threads() == blas_before


def test_fit_leaves_the_thread_setting_as_it_found_it(make_config):
    from mlplab.training import train

    before = torch.get_num_threads()
    train(make_config(epochs=1, hidden="8", batch_size=32))
    assert torch.get_num_threads() == before


def test_device_auto_is_cpu_here_and_missing_accelerators_are_user_errors():
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(MlplabError, match="no CUDA GPU"):
            resolve_device("cuda")
    assert resolve_device("cpu") == CPU
