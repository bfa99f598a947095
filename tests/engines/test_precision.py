"""Mixed precision (`mlplab.precision`): bfloat16 products, float32 weights, optimizer and evaluation."""

from __future__ import annotations

import json

import pytest
import torch

from mlplab.config import apply_overrides, from_preset
from mlplab.engines import AutogradStep, ManualStep
from mlplab.errors import MlplabError
from mlplab.losses import build_loss
from mlplab.models import MLP
from mlplab.precision import check_precision, compute_dtype
from mlplab.training import fit, train

from helpers import exits_2_with_one_line

pytestmark = pytest.mark.usefixtures("one_thread")


def _model_and_batch(seed=0, label_smoothing=0.0):
    torch.manual_seed(seed)
    model = MLP(hidden=(64, 32))
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(48, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (48,), generator=generator)
    return model, build_loss("cross_entropy", "logits", label_smoothing=label_smoothing), images, labels


def _gradients(step_type, dtype, label_smoothing=0.0):
    """One step's loss and gradients (lr 0: the weights stay where they are)."""
    model, loss_fn, images, labels = _model_and_batch(label_smoothing=label_smoothing)
    step = step_type(model, loss_fn, torch.optim.SGD(model.parameters(), lr=0.0), dtype)
    outputs, loss = step(images, labels)
    return model, outputs, float(loss), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("step_type", [ManualStep, AutogradStep], ids=["manual", "autograd"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_bfloat16_products_give_float32_gradients_close_to_float32s(step_type, label_smoothing):
    model, outputs, loss, low = _gradients(step_type, torch.bfloat16, label_smoothing)
    _, _, loss32, full = _gradients(step_type, None, label_smoothing)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(g.dtype == torch.float32 for g in low) and outputs.dtype == torch.float32
    assert loss == pytest.approx(loss32, rel=2e-2)
    for got, want in zip(low, full):
        error = ((got - want).norm() / want.norm()).item()
        # bfloat16's 8-bit mantissa: close, and not float32's own numbers. The hidden layers' gradients
        # are sums of many cancelling terms of an untrained net, so their relative error reaches ~5%.
        assert 0 < error < 0.1
    # the two engines compute the same mixed-precision step (their roundings differ a little)
    _, _, loss_other, other = _gradients(AutogradStep if step_type is ManualStep else ManualStep, torch.bfloat16,
                                         label_smoothing)
    for got, want in zip(low, other):
        assert ((got - want).norm() / want.norm()).item() < 1e-2


def test_float32_is_unchanged_by_asking_for_it():
    """``32-true`` is the step it always was, bit for bit."""
    _, _, loss_none, none = _gradients(ManualStep, None)
    _, _, loss_f32, f32 = _gradients(ManualStep, torch.float32)
    assert loss_none == loss_f32 and all(torch.equal(a, b) for a, b in zip(none, f32))


def test_a_bfloat16_run_learns_as_float32_does_and_is_scored_in_float32(mnist_dir):
    from mlplab.data import MNIST

    train_set, test_set = MNIST(mnist_dir, train=True), MNIST(mnist_dir, train=False)
    scale = lambda images: (images.float() / 255 - 0.1307) / 0.3081  # noqa: E731
    batches = [(scale(train_set.data[i:i + 100]), train_set.targets[i:i + 100]) for i in range(0, 6000, 100)]
    test_images = scale(test_set.data)
    accuracy = {}
    for precision in ("32-true", "bf16-mixed"):
        torch.manual_seed(0)
        model = MLP(hidden=(128,))
        history = fit(model, batches, test_data=[(test_images, test_set.targets)], epochs=2, precision=precision,
                      optimizer=lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9), progress=False)
        assert next(model.parameters()).dtype == torch.float32
        accuracy[precision] = history.metrics["test_accuracy"]
    assert accuracy["bf16-mixed"] > 0.85 and abs(accuracy["bf16-mixed"] - accuracy["32-true"]) < 0.01
    assert accuracy["bf16-mixed"] != accuracy["32-true"]  # it did compute in bfloat16
    with torch.no_grad():  # the test was scored in float32, outside autocast
        loss = torch.nn.functional.cross_entropy(model.eval()(test_images), test_set.targets)
    assert history.metrics["test_loss"] == pytest.approx(float(loss), rel=1e-5)


def test_config_and_cli_refuse_what_cannot_compute_in_bfloat16(make_config, capsys, tmp_path):
    with pytest.raises(MlplabError, match="scratch engine computes in NumPy, which has no bfloat16"):
        make_config(engine="scratch", precision="bf16-mixed")
    with pytest.raises(MlplabError, match="precision must be one of: 32-true, bf16-mixed; got 'bf16'"):
        make_config(precision="bf16")
    exits_2_with_one_line(capsys, ["train", "--precision", "bf16-mixed", "--engine", "scratch"],
                          "--precision bf16-mixed needs PyTorch's matrix products", "--engine manual")
    exits_2_with_one_line(capsys, ["sweep", "--preset", "fast", "--grid", "lr=0.1,0.2", "--out", str(tmp_path / "never")],
                          "vectorised trainer computes in float32", "--precision 32-true")
    assert not (tmp_path / "never").exists()
    with pytest.raises(MlplabError, match="not offered on mps"):
        check_precision("bf16-mixed", "auto", "mps")
    assert compute_dtype("32-true") is None and compute_dtype("bf16-mixed") is torch.bfloat16
    model = MLP(hidden=(8,))
    with pytest.raises(MlplabError, match="scratch engine"):
        fit(model, [(torch.zeros(4, 784), torch.zeros(4, dtype=torch.long))], engine="scratch", precision="bf16-mixed",
            progress=False)


def test_a_sweep_refuses_bfloat16():
    from mlplab.sweep.members import check_program

    config = apply_overrides(from_preset("fast"), {"epochs": 1})
    assert config.train.precision == "bf16-mixed"
    with pytest.raises(MlplabError, match="vectorised trainer computes in float32.*--precision 32-true"):
        check_program([config])
    check_program([apply_overrides(config, {"precision": "32-true"})])


def test_a_run_records_its_precision_and_resume_cannot_change_it(make_config):
    history = train(make_config(hidden="32", epochs=1, precision="bf16-mixed"))
    saved = json.loads((history.run_dir / "config.json").read_text())
    metrics = json.loads((history.run_dir / "metrics.json").read_text())
    assert saved["train"]["precision"] == metrics["precision"] == "bf16-mixed" and metrics["engine"] == "manual"
    with pytest.raises(MlplabError, match="precision"):
        train(make_config(hidden="32", epochs=2, precision="32-true"), resume=True)
