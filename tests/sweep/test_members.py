"""`mlplab.sweep.members`: which configs train together, what a program refuses, how each member starts."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from mlplab.errors import MlplabError
from mlplab.sweep import check_members, check_program, initial_model, partition
from mlplab.training import prepare

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("second,fragment", [
    (dict(hidden="16,32"), "must share hidden: member 1 has (16, 32)"),
    (dict(batch_size=32), "must share batch_size"),
    (dict(loss="cross_entropy"), "must share loss"),
], ids=["hidden", "batch", "loss"])
def test_members_that_cannot_share_one_program_are_refused_by_check_program(make_config, second, fragment):
    configs = [make_config("lab"), make_config("lab", **second)]
    with pytest.raises(MlplabError, match="sweep them separately") as error:
        check_program(configs)
    assert fragment in str(error.value) and "\n" not in str(error.value)
    check_members(configs)  # a sweep takes them, as two programs
    assert partition(configs) == [[0], [1]]


def test_what_the_trainer_does_not_implement_is_refused(make_config):
    with pytest.raises(MlplabError, match="does not implement dropout"):
        check_members([make_config("lab", dropout=0.2)])


def test_initial_weights_are_what_prepare_builds(make_config):
    for seed in (0, 7):
        config = make_config("lab", seed=seed)
        want = parameters_to_vector(prepare(config).model.parameters())
        torch.manual_seed(123)
        before = torch.random.get_rng_state()
        got = parameters_to_vector(initial_model(config, 784, 10).parameters())
        assert torch.equal(got, want)
        assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is left as it was
