"""Checkpoints are self-describing, written atomically and loaded without running code."""

import os

import pytest
import torch

from mlplab.errors import MlplabError
from mlplab.training import fit, load_checkpoint, save_checkpoint
from mlplab.files import atomic_write


def test_checkpoint_is_self_describing(make_config):
    history = fit(make_config(epochs=1, hidden="8", batch_size=64))
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
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
