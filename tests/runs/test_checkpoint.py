"""Checkpoints are self-describing, written atomically and loaded without running code."""

import os

import pytest
import torch

from mlplab.errors import MlplabError
from mlplab.training import train, load_checkpoint, save_checkpoint
from mlplab.files import atomic_write


def test_checkpoint_is_self_describing(make_config):
    history = train(make_config(epochs=1, hidden="8", batch_size=64))
    checkpoint = load_checkpoint(history.run_dir / "last.pt")
    for key in ("format", "schema_version", "config", "model", "optimizer", "schedule", "epoch", "step",
                "history", "rng", "data_order", "versions", "model_info", "best"):
        assert key in checkpoint, key
    assert checkpoint["versions"]["torch"] == torch.__version__
    assert checkpoint["config"]["model"]["hidden"] == [8]
    assert checkpoint["epoch"] == 1 and checkpoint["step"] == 782


class Exploit:
    """Unpickling this object would run a shell command that creates a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "mlplab.checkpoint", "model": Exploit(marker)}, path)
    with pytest.raises(MlplabError, match="refusing to load"):
        load_checkpoint(path)
    assert not marker.exists()
    # The same file would have run the command under an unsafe load: the test is a real one.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(MlplabError, match="not an mlplab checkpoint"):
        load_checkpoint(path)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(MlplabError, match="not a readable checkpoint"):
        load_checkpoint(garbage)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.randn(100, 100)}})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MlplabError, match="truncated"):
        load_checkpoint(path)


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})

    def explode(handle):
        handle.write(b"half a checkpoint")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, explode)
    assert torch.load(path, weights_only=True)["epoch"] == 1  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.fixture
def trained(make_config):
    """A finished tiny run: its directory."""
    return train(make_config(epochs=1, hidden="8", batch_size=1000)).run_dir


def _flip_tensor_bytes(path, tensor, count=32):
    """Flip ``count`` bytes of ``tensor``'s data where torch.save stored them inside ``path``."""
    data = bytearray(path.read_bytes())
    raw = tensor.contiguous().view(torch.uint8).numpy().tobytes()
    start = data.find(raw[:256])
    assert start > 0, "tensor data not found in the archive"
    for offset in range(start + 100, start + 100 + count):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_a_tensor_are_caught_by_the_checksum(trained, tmp_path, capsys):
    from mlplab.cli.main import main

    path = trained / "best.pt"
    _flip_tensor_bytes(path, load_checkpoint(path)["model"]["layers.0.weight"])
    with pytest.raises(MlplabError, match="is damaged: its contents do not match the checksum"):
        load_checkpoint(path)
    for command in (["eval", str(path)], ["export", str(path), "--out", str(tmp_path / "w.safetensors")]):
        assert main(command) == 2
        assert "is damaged" in capsys.readouterr().err
    assert not (tmp_path / "w.safetensors").exists()  # export refuses what eval refuses


@pytest.mark.parametrize("damage, message", [
    (lambda c: c.pop("model_info"), "is incomplete: it has no model_info"),
    (lambda c: c["model"].pop("layers.1.bias"), "holds weights .* but its config describes"),
    (lambda c: c["model"].__setitem__("layers.0.weight", torch.zeros(8, 700)),
     r"holds layers.0.weight of \(8, 700\) torch.float32 where its config describes \(8, 784\)"),
    (lambda c: c["model"].__setitem__("layers.0.bias", torch.zeros(8, dtype=torch.float64)),
     "holds layers.0.bias of .* torch.float64 where its config describes .* torch.float32"),
    (lambda c: c["config"]["model"].__setitem__("hidden", [16]), "holds layers.0.weight of"),
])
def test_a_checkpoint_that_does_not_fit_its_config_is_refused_in_one_line(trained, damage, message):
    checkpoint = load_checkpoint(trained / "last.pt")
    damage(checkpoint)
    save_checkpoint(trained / "last.pt", {k: v for k, v in checkpoint.items() if k not in ("tensor_sha256",)})
    with pytest.raises(MlplabError, match=message) as error:
        load_checkpoint(trained / "last.pt")
    assert "\n" not in str(error.value)


def test_loading_draws_nothing_from_the_random_generator(trained):
    state = torch.get_rng_state()
    load_checkpoint(trained / "last.pt")
    assert torch.equal(torch.get_rng_state(), state)  # resume restores the RNG after loading: keep it untouched


def test_resume_from_a_checkpoint_with_foreign_optimizer_state_is_one_line(make_config):
    config = make_config(epochs=1, hidden="8", batch_size=1000, scheduler="none")
    run_dir = train(config).run_dir
    checkpoint = load_checkpoint(run_dir / "last.pt")
    checkpoint["optimizer"]["param_groups"][0]["params"] = [0]  # one parameter where the net has four
    save_checkpoint(run_dir / "last.pt", {k: v for k, v in checkpoint.items() if k != "tensor_sha256"})
    with pytest.raises(MlplabError, match="optimizer, schedule or random state does not fit this run") as error:
        train(make_config(epochs=2, hidden="8", batch_size=1000, scheduler="none"), resume=True)
    assert "\n" not in str(error.value)


def _saved_as_torch_would(path, checkpoint):
    """The record written with plain torch.save: its recorded checksum kept as it was (a flip on disk)."""
    torch.save(checkpoint, path)


def test_a_changed_number_anywhere_in_the_record_is_caught_by_the_checksum(trained):
    # The flip the checksum of tensors alone let through: a resume would have trained with another lr.
    path = trained / "last.pt"
    for change in (lambda c: c["optimizer"]["param_groups"][0].__setitem__("lr", 0.5),
                   lambda c: c.__setitem__("step", c["step"] + 1),
                   lambda c: c["history"]["epochs"][0].__setitem__("val_accuracy", 0.99),
                   lambda c: c["model_info"]["classes"].__setitem__(0, "0 - zerO")):
        checkpoint = load_checkpoint(trained / "best.pt")
        change(checkpoint)
        _saved_as_torch_would(path, checkpoint)
        with pytest.raises(MlplabError, match="is damaged: its contents do not match the checksum"):
            load_checkpoint(path)


def test_weights_that_are_not_finite_are_refused_even_with_a_valid_checksum(trained, tmp_path, capsys):
    from mlplab.cli.main import main

    path = tmp_path / "nan.pt"
    checkpoint = load_checkpoint(trained / "best.pt")
    checkpoint["model"]["layers.1.bias"][3] = float("nan")
    save_checkpoint(path, checkpoint)  # a crafted file: the checksum is computed over the nan
    with pytest.raises(MlplabError, match=r"not finite numbers \(layers.1.bias hold inf or nan\)"):
        load_checkpoint(path)
    for command in (["eval", str(path)], ["export", str(path), "--out", str(tmp_path / "w.safetensors")]):
        assert main(command) == 2 and "not finite numbers" in capsys.readouterr().err
    assert not (tmp_path / "w.safetensors").exists()


def test_a_checkpoint_of_schema_3_with_its_tensor_checksum_still_loads_and_is_still_checked(trained, tmp_path):
    from mlplab.runs.checkpoint import DIGEST_KEY, TENSOR_DIGEST_KEY, tensor_digest

    old = {key: value for key, value in load_checkpoint(trained / "best.pt").items() if key != DIGEST_KEY}
    old["schema_version"] = 3
    old[TENSOR_DIGEST_KEY] = tensor_digest(old)
    torch.save(old, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt")["epoch"] == old["epoch"]
    old["model"]["layers.0.bias"][0] += 1
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(MlplabError, match="is damaged: its tensors do not match"):
        load_checkpoint(tmp_path / "old.pt")

