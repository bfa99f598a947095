"""Checkpoint archives that declare more than torch.save writes are refused before torch reads them.

torch.load allocates each record at the size the zip archive declares (inflating a DEFLATE one)
and compares it with the tensor's only afterwards. The bombs here are built as the finding's
was, from a real checkpoint: one record swapped for 512 MiB of zeros, the archive rewritten
DEFLATE-compressed (3 MB on disk); and a stored archive whose central directory
lists one 1 MiB record under 300 names. Peak memory is measured in a fresh process.
"""

from __future__ import annotations

import collections
import io
import pickle
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mlplab.cli.main import main
from mlplab.errors import MlplabError
from mlplab.config import from_dict, to_dict
from mlplab.models import build_model
from mlplab.runs import archive
from mlplab.runs.archive import is_tensor_record
from mlplab.runs.checkpoint import DIGEST_KEY, load_checkpoint, save_checkpoint

BOMB_BYTES = 512 * 2**20  # what the DEFLATE bomb's one record inflates to


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as source:
        return {name: source.read(name) for name in source.namelist()}


def deflate_bomb(real: Path, out: Path) -> Path:
    """``real`` rewritten DEFLATE-compressed, its first tensor record replaced by `BOMB_BYTES` zeros."""
    members = _members(real)
    target = next(name for name in members if is_tensor_record(name))
    zeros = bytes(2**20)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as bomb:
        for name, content in members.items():
            if name != target:
                bomb.writestr(name, content)
                continue
            with bomb.open(name, "w", force_zip64=True) as record:  # streamed: the zeros are never held whole
                for _ in range(BOMB_BYTES // len(zeros)):
                    record.write(zeros)
    return out


class _Storage:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _Tensor:
    """Pickles as torch.save pickles a float32 tensor of storage ``key``."""

    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (_Storage(self.key, self.numel), 0, (self.numel,), (1,), False, collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel) if isinstance(obj, _Storage) else None


def overlapping_bomb(out: Path, names: int = 300, size: int = 2**20) -> Path:
    """A stored archive of one ``size``-byte record listed under ``names`` names, and a pickle of one
    tensor per name: torch.load reads the same bytes ``names`` times (300 MiB from a 1 MB file)."""
    pickled = io.BytesIO()
    _Pickler(pickled, protocol=2).dump([_Tensor(str(key), size // 4) for key in range(names)])
    written = io.BytesIO()
    with zipfile.ZipFile(written, "w") as stored:
        for name, content in (("archive/data.pkl", pickled.getvalue()), ("archive/byteorder", b"little"),
                              ("archive/data/0", bytes(size)), ("archive/version", b"3\n")):
            stored.writestr(name, content)
    data = written.getvalue()
    end = data.rfind(b"PK\x05\x06")
    count, directory_size, directory_at = struct.unpack("<HII", data[end + 10:end + 20])
    entries, at = [], directory_at
    for _ in range(count):  # central directory entries: 46 fixed bytes, then name, extra field, comment
        lengths = struct.unpack("<HHH", data[at + 28:at + 34])
        entries.append(data[at:at + 46 + sum(lengths)])
        at += 46 + sum(lengths)
    record = next(entry for entry in entries if entry[46:46 + struct.unpack("<H", entry[28:30])[0]] == b"archive/data/0")
    for key in range(1, names):  # the same local header offset, sizes and CRC under another name
        name = f"archive/data/{key}".encode()
        entries.append(record[:28] + struct.pack("<H", len(name)) + record[30:46] + name)
    directory = b"".join(entries)
    out.write_bytes(data[:directory_at] + directory + struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory), directory_at, 0))
    return out


@pytest.fixture(scope="module")
def bombs(trained_run, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    return {"deflate": deflate_bomb(trained_run / "best.pt", folder / "deflate.pt"),
            "overlap": overlapping_bomb(folder / "overlap.pt")}


# Loads a real checkpoint (so torch's and mlplab's own allocations are made), then the bomb;
# prints the error and how far the peak resident memory rose during the second load, in MiB.
MEASURE = """
import resource, sys
from mlplab.errors import MlplabError
from mlplab.runs.checkpoint import load_checkpoint
load_checkpoint(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_checkpoint(sys.argv[2])
    print("loaded")
except MlplabError as error:
    print(error)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in kB on Linux only")
@pytest.mark.parametrize("kind, message", [
    ("deflate", r"is compressed \(deflate, .* bytes declared to hold 536,870,912\), which torch.save never writes"),
    ("overlap", "its members declare .* more than the file's .* as in a zip bomb"),
])
def test_a_zip_bomb_is_refused_before_it_takes_memory(trained_run, bombs, kind, message):
    assert bombs[kind].stat().st_size < 4 * 2**20  # a few MB on disk, as the finding's 2.5 MB
    done = subprocess.run([sys.executable, "-c", MEASURE, str(trained_run / "best.pt"), str(bombs[kind])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    error, risen = done.stdout.strip().splitlines()
    assert re.search(message, error), error
    # Before the archive was checked: 512 MiB (deflate) and 300 MiB (overlap).
    assert int(risen) < 32, f"peak memory rose {risen} MiB"


def test_eval_predict_and_serve_refuse_a_deflate_bomb_in_one_line(trained_run, bombs, tmp_path, capsys):
    image = tmp_path / "digit.png"
    from PIL import Image

    Image.new("L", (64, 64), 255).save(image)
    for command in (["eval", str(bombs["deflate"])], ["predict", str(bombs["deflate"]), str(image)]):
        assert main(command) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and "is compressed (deflate" in error[0], error
    from mlplab.serve.model import ServedModel

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    shutil.copy(bombs["deflate"], run / "best.pt")
    with pytest.raises(MlplabError, match="is compressed"):
        ServedModel(run)


def test_tensor_data_beyond_what_the_config_can_need_is_refused_before_it_is_read(trained_run, tmp_path):
    """A stored file is read into at most its own size; one far larger than its network is refused
    once data.pkl alone is read (784-256-10: 0.8 MB of weights, 42 MB of tensor data)."""
    record = load_checkpoint(trained_run / "last.pt")
    record["padding"] = torch.zeros(10_000_000)
    path = tmp_path / "padded.pt"
    save_checkpoint(path, {key: value for key, value in record.items() if key != DIGEST_KEY})
    with pytest.raises(MlplabError, match=r"declares 41\.[0-9] MB of tensor data, but the network its config "
                                          r"describes \(0\.8 MB of weights\) needs at most 23\.[0-9] MB") as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)


def test_a_large_network_still_loads(trained_run, tmp_path):
    """Over the margin the config is read first (a 784-8192-10 network: 26 MB of weights); it fits."""
    record = load_checkpoint(trained_run / "last.pt")
    config = from_dict(record["config"])
    config = replace(config, model=replace(config.model, hidden=(8192,)))
    record.update(config=to_dict(config), model=build_model(config.model, in_features=784, num_classes=10).state_dict())
    path = tmp_path / "large.pt"
    save_checkpoint(path, {key: value for key, value in record.items() if key != DIGEST_KEY})
    assert load_checkpoint(path)["model"]["layers.0.weight"].shape == (8192, 784)


@pytest.mark.parametrize("change, message", [
    (lambda members: zipfile.ZIP_STORED, None),
    (lambda members: zipfile.ZIP_BZIP2, "is compressed (bzip2"),
])
def test_only_stored_members_are_read(trained_run, tmp_path, change, message):
    path = tmp_path / "rewritten.pt"
    members = _members(trained_run / "best.pt")
    with zipfile.ZipFile(path, "w", change(members)) as out:
        for name, content in members.items():
            out.writestr(name, content)
    if message is None:
        assert load_checkpoint(path)["epoch"] == 3
    else:
        with pytest.raises(MlplabError, match=message.replace("(", r"\(")):
            load_checkpoint(path)


def test_a_pickle_larger_than_any_checkpoint_holds_is_refused(trained_run, monkeypatch):
    monkeypatch.setattr(archive, "PICKLE_LIMIT", 1000)  # the real data.pkl holds ~10 kB
    with pytest.raises(MlplabError, match=r"its member '.*data.pkl' declares .* MB, more than any checkpoint's record"):
        load_checkpoint(trained_run / "best.pt")
