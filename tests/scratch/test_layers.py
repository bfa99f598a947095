"""mlplab.scratch by hand: every layer and loss on a tiny example worked out on paper, and gradcheck."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mlplab import scratch

RNG = np.random.default_rng(0)


def test_linear_on_a_hand_computed_example():
    W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # (n_out=3, n_in=2)
    b = np.array([0.5, -1.0, 0.0])
    layer = scratch.Linear(W, b)
    x = np.array([[1.0, -1.0], [2.0, 0.0]])  # (B=2, n_in=2)
    # z = x W^T + b: row 1: [1-2, 3-4, 5-6] + b = [-0.5, -2, -1]; row 2: [2, 6, 10] + b = [2.5, 5, 10]
    np.testing.assert_array_equal(layer.forward(x), [[-0.5, -2.0, -1.0], [2.5, 5.0, 10.0]])
    dz = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 1.0]])
    dx = layer.backward(dz)
    # dx = dz W: row 1: [1-5, 2-6] = [-4, -4]; row 2: [6+5, 8+6] = [11, 14]
    np.testing.assert_array_equal(dx, [[-4.0, -4.0], [11.0, 14.0]])
    # dW = dz^T x: [[1, -1], [4, 0], [-1+2, 1+0]]; db = column sums of dz
    np.testing.assert_array_equal(layer.dW, [[1.0, -1.0], [4.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(layer.db, [1.0, 2.0, 0.0])
    assert layer.backward(dz, input_grad=False) is None


def test_activations_on_hand_computed_examples():
    z = np.array([[-2.0, 0.0, 3.0]])
    grad = np.array([[1.0, 1.0, 2.0]])
    relu = scratch.ReLU()
    np.testing.assert_array_equal(relu.forward(z), [[0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(relu.backward(grad), [[0.0, 0.0, 2.0]])  # 1[z > 0]: 0 at z = 0, as PyTorch
    leaky = scratch.LeakyReLU(0.1)
    np.testing.assert_allclose(leaky.forward(z), [[-0.2, 0.0, 3.0]])
    np.testing.assert_allclose(leaky.backward(grad), [[0.1, 0.1, 2.0]])
    sigmoid = scratch.Sigmoid()
    h = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(sigmoid.forward(z), h, rtol=1e-14)
    np.testing.assert_allclose(sigmoid.backward(grad), grad * h * (1 - h), rtol=1e-14)
    np.testing.assert_allclose(sigmoid.forward(np.array([[0.0, -1000.0]])), [[0.5, 0.0]])  # no overflow
    tanh = scratch.Tanh()
    np.testing.assert_allclose(tanh.forward(z), np.tanh(z))
    np.testing.assert_allclose(tanh.backward(grad), grad * (1 - np.tanh(z) ** 2))
    elu = scratch.ELU()
    np.testing.assert_allclose(elu.forward(z), [[np.exp(-2) - 1, 0.0, 3.0]])
    np.testing.assert_allclose(elu.backward(grad), [[np.exp(-2), 1.0, 2.0]])


def test_softmax_and_log_softmax_on_a_hand_computed_example():
    z = np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]])  # p = [1/4, 3/4]; huge but equal logits: [1/2, 1/2]
    softmax = scratch.Softmax()
    np.testing.assert_allclose(softmax.forward(z), [[0.25, 0.75], [0.5, 0.5]], rtol=1e-15)
    # dz = p * (dp - sum dp p): row 1 with dp = [1, 0]: [1/4 (1 - 1/4), 3/4 (0 - 1/4)] = [3/16, -3/16]
    np.testing.assert_allclose(softmax.backward(np.array([[1.0, 0.0], [0.0, 0.0]])), [[3 / 16, -3 / 16], [0, 0]])
    log_softmax = scratch.LogSoftmax()
    np.testing.assert_allclose(log_softmax.forward(z), np.log([[0.25, 0.75], [0.5, 0.5]]), rtol=1e-15)
    # dz = dlogp - p sum(dlogp): dlogp = [1, 0] gives [1 - 1/4, -3/4]
    np.testing.assert_allclose(log_softmax.backward(np.array([[1.0, 0.0], [0.0, 0.0]])), [[0.75, -0.75], [0, 0]])


def test_losses_on_hand_computed_examples():
    z = np.array([[0.0, np.log(3.0)], [np.log(3.0), 0.0]])  # p = [1/4, 3/4] and [3/4, 1/4]
    y = np.array([1, 1])
    cross_entropy = scratch.SoftmaxCrossEntropy()
    assert cross_entropy.forward(z, y) == pytest.approx(-(np.log(0.75) + np.log(0.25)) / 2, rel=1e-15)
    np.testing.assert_allclose(cross_entropy.backward(), [[0.125, -0.125], [0.375, -0.375]])  # (p - e_y) / B
    nll = scratch.NLL()
    log_p = np.log([[0.25, 0.75], [0.75, 0.25]])
    assert nll.forward(log_p, y) == pytest.approx(-(np.log(0.75) + np.log(0.25)) / 2, rel=1e-15)
    np.testing.assert_array_equal(nll.backward(), [[0.0, -0.5], [0.0, -0.5]])
    mse = scratch.MSE()
    p = np.array([[0.25, 0.75], [0.75, 0.25]])
    # residuals [0.25, -0.25], [0.75, -0.75]: mean of squares = (2 * 0.0625 + 2 * 0.5625) / 4 = 0.3125
    assert mse.forward(p, y) == pytest.approx(0.3125, rel=1e-15)
    np.testing.assert_allclose(mse.backward(), [[0.125, -0.125], [0.375, -0.375]])  # 2 r / (B C)
    assert mse.forward(p, np.array([[0.25, 0.75], [0.0, 1.0]])) == pytest.approx((2 * 0.5625) / 4)
    quadratic = scratch.Quadratic()
    assert quadratic.forward(p, y) == pytest.approx(0.5 * (0.125 + 1.125) / 2)  # 1/2 mean ||r||^2
    np.testing.assert_allclose(quadratic.backward(), [[0.125, -0.125], [0.375, -0.375]])  # r / B
    ccql = scratch.Quadratic(beta=2.0)
    # adds beta/2 (p_y - 1)^2 per sample: (0.0625 + 0.5625) / 2 more on average
    assert ccql.forward(p, y) == pytest.approx(0.3125 + (0.0625 + 0.5625) / 2)
    np.testing.assert_allclose(ccql.backward(), [[0.125, -0.375], [0.375, -1.125]])  # correct class x (1 + beta)


def test_softmax_losses_are_stable_for_huge_logits():
    """Logits of +-10^4 overflow a naive exp(z) / sum(exp(z)): no overflow, no inf, no nan here."""
    z, y = np.array([[1e4, 0.0], [-1e4, 0.0]]), np.array([0, 0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is harmless
        loss = scratch.SoftmaxCrossEntropy()
        assert loss.forward(z, y) == pytest.approx(1e4 / 2)  # -log p_0 is 0 for row 1, 10^4 for row 2
        np.testing.assert_allclose(loss.backward(), [[0.0, 0.0], [-0.5, 0.5]])
        composed = scratch.OnSoftmax(scratch.Quadratic(1.0))
        assert composed.forward(z, y) == pytest.approx(0.5 * (0 + 2 + 1) / 2)  # row 2: r = [-1, 1], p_y - 1 = -1
        assert np.isfinite(composed.backward()).all()


def test_every_layer_and_loss_passes_gradcheck():
    x = RNG.standard_normal((5, 4))
    x[0, 0] = 0.5  # keep every input clear of the ReLU kinks at 0
    layers = [scratch.Linear(RNG.standard_normal((3, 4)), RNG.standard_normal(3)), scratch.Softmax(),
              scratch.LogSoftmax(), *(kind() for kind in scratch.ACTIVATION_LAYERS.values())]
    for layer in layers:
        result = scratch.gradcheck(layer, x)
        assert result.ok, f"{layer!r}\n{result}"
        assert max(result.relative.values()) < 1e-7, layer
    labels = np.array([0, 3, 1, 2, 3])
    for loss in (scratch.SoftmaxCrossEntropy(), scratch.MSE(), scratch.OnSoftmax(scratch.Quadratic(0.5)),
                 scratch.OnSoftmax(scratch.MSE())):
        assert scratch.gradcheck(loss, x, labels).ok, loss
    assert scratch.gradcheck(scratch.NLL(), scratch.log_softmax(x), labels).ok


def test_gradcheck_catches_a_wrong_backward_rule():
    """The lab skeleton's classic slip, a layer whose backward forgets a factor, is caught."""

    class BadTanh(scratch.Tanh):
        def backward(self, grad_out):
            return grad_out * (1.0 - self.h)  # should be 1 - h^2

    result = scratch.gradcheck(BadTanh(), RNG.standard_normal((4, 3)))
    assert not result.ok and "FAILED" in str(result)
    with pytest.raises(ValueError, match="float64"):
        scratch.gradcheck(scratch.Tanh(), np.zeros((2, 2), dtype=np.float32))


@pytest.mark.parametrize("activation", sorted(scratch.ACTIVATION_LAYERS))
@pytest.mark.parametrize("output", ["logits", "log_softmax"])
def test_whole_networks_pass_gradcheck(activation, output):
    network = scratch.mlp((6, 5, 4, 3), activation, output, dtype=np.float64, seed=1)
    result = scratch.gradcheck(network, RNG.standard_normal((4, 6)))
    assert result.ok, str(result)
    assert set(result.errors) == {"input", "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
                                  "layers.2.weight", "layers.2.bias"}
    assert result.entries["layers.0.weight"] == 30


def test_gradcheck_can_sample_entries_of_large_arrays():
    network = scratch.mlp((784, 16, 10), dtype=np.float64, seed=0)
    result = scratch.gradcheck(network, RNG.standard_normal((3, 784)), entries=50)
    assert result.ok and result.entries == {"input": 50, "layers.0.weight": 50, "layers.0.bias": 16,
                                            "layers.1.weight": 50, "layers.1.bias": 10}


def test_sgd_updates_on_hand_computed_examples():
    w, g = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    parameter = scratch.Parameter("W", w, g)
    optimizer = scratch.SGD([parameter], lr=0.1, momentum=0.9, weight_decay=0.1)
    optimizer.step()  # g' = g + 0.1 w = [0.6, 0.3]; v = g'; w -= 0.1 v
    np.testing.assert_allclose(w, [0.94, -2.03])
    optimizer.step()  # g' = [0.594, 0.297]; v = 0.9 [0.6, 0.3] + g' = [1.134, 0.567]
    np.testing.assert_allclose(w, [0.94 - 0.1134, -2.03 - 0.0567])
    np.testing.assert_allclose(optimizer.state[0]["momentum_buffer"], [1.134, 0.567])


def test_adam_first_step_moves_each_weight_by_lr():
    """After bias correction Adam's first step is lr * g / (|g| + eps): lr times the sign of g."""
    w, g = np.array([1.0, -2.0, 3.0]), np.array([0.5, -1e-3, 20.0])
    optimizer = scratch.Adam([scratch.Parameter("W", w, g)], lr=0.01, eps=1e-12)
    optimizer.step()
    np.testing.assert_allclose(w, [0.99, -1.99, 2.99], rtol=1e-9)
    assert float(optimizer.state[0]["step"]) == 1


def test_training_loop_learns_a_separable_problem():
    x = RNG.standard_normal((512, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    network = scratch.mlp((2, 8, 2), "tanh", dtype=np.float64, seed=0)
    loss_fn = scratch.SoftmaxCrossEntropy()
    optimizer = scratch.SGD(network.parameters(), lr=0.5)
    rng = np.random.default_rng(0)
    before = scratch.evaluate(network, loss_fn, x, y)
    for _ in range(10):
        scratch.train_epoch(network, loss_fn, optimizer, scratch.batches(x, y, 32, rng))
    after = scratch.evaluate(network, loss_fn, x, y)
    assert after["loss"] < before["loss"] / 4 and after["accuracy"] >= 0.97


def test_layers_refuse_bad_shapes_and_networks_unknown_settings():
    with pytest.raises(ValueError, match="n_out"):
        scratch.Linear(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="activation 'gelu'"):
        scratch.mlp((4, 3, 2), "gelu")
    with pytest.raises(ValueError, match="float32 or float64"):
        scratch.mlp((4, 3, 2), dtype=np.float16)
    network = scratch.mlp((4, 3, 2))
    with pytest.raises(ValueError, match="shape"):
        network.load_state_dict({**network.state_dict(), "layers.0.weight": np.zeros((2, 2))})


@pytest.mark.parametrize("init", ["default", "uniform", "xavier", "kaiming"])
def test_initialisations_have_their_scales(init):
    network = scratch.mlp((400, 300, 10), init=init, init_range=0.05, seed=0)
    W, b = network.linears()[0].W, network.linears()[0].b
    expected_std = {"default": 1 / np.sqrt(400) / np.sqrt(3), "uniform": 0.05 / np.sqrt(3),
                    "xavier": np.sqrt(6 / 700) / np.sqrt(3), "kaiming": np.sqrt(2 / 400)}[init]
    assert W.dtype == np.float32 and W.std() == pytest.approx(expected_std, rel=0.02)
    assert (b == 0).all() == (init in ("xavier", "kaiming"))


def test_the_scratch_package_does_not_import_torch():
    code = "import sys, mlplab.scratch; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)"
    subprocess.run([sys.executable, "-c", code], check=True)
