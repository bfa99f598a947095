"""Fuzzing the checkpoint loader: any file gives a checkpoint or a one-line MlplabError, never a crash or code run.

One small real checkpoint is trained per module (784-8-10, one epoch), and the examples are:
arbitrary bytes, bare or as a zip; random pickle programs in a torch archive; the real file
with bit flips, byte and word changes, truncation, appended and inserted bytes at positions
spread over its zip headers, its pickle, its tensor data and its central directory (also
inside one zip member, re-zipped with valid CRCs); the real pickle with calls to os.system,
eval, open and others spliced in (none may ever run); and the real contents changed through
Python (keys deleted, replaced or added at any depth; tensors of other shapes, dtypes and
layouts; values of the wrong type or range), saved both with plain `torch.save` (stale
checksum) and with `save_checkpoint` (valid checksum: the content checks must catch it).

A checkpoint that loads must also rebuild with `load_model` and export with `export_safetensors`,
or be refused in one line.
Runs are derandomized and keep no example database.
"""

from __future__ import annotations

import copy
import io
import math
import pickle
import pickletools
import struct
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mlplab.config import Config, apply_overrides
from mlplab.errors import MlplabError
from mlplab.export import export_safetensors
from mlplab.models import MLP
from mlplab.training import train, load_checkpoint, save_checkpoint
from mlplab.runs.reader import load_model
from mlplab.runs.checkpoint import DIGEST_KEY

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None)

# Crafted files may hold tensors torch warns about (sparse CSR, quantized, nested, TypedStorage).
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

EDGE_U32 = st.one_of(st.sampled_from([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]), st.integers(0, 2**32 - 1))

# One byte-level mutation: (kind, region, offset, value). A region is a part of the file (a zip
# header, a member's data, the central directory); offsets wrap around its length.
MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 99), st.integers(0, 2**20), st.integers(0, 7)),
    st.tuples(st.just("byte"), st.integers(0, 99), st.integers(0, 2**20), st.integers(0, 255)),
    st.tuples(st.just("word"), st.integers(0, 99), st.integers(0, 2**20), EDGE_U32),
    st.tuples(st.just("truncate"), st.integers(0, 99), st.integers(0, 2**20), st.none()),
    st.tuples(st.just("insert"), st.integers(0, 99), st.integers(0, 2**20), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.integers(0, 99), st.integers(0, 2**20), st.integers(1, 64)),
    st.tuples(st.just("append"), st.none(), st.none(), st.binary(min_size=1, max_size=64)),
)


@dataclass(frozen=True, repr=False)
class Real:
    """A checkpoint written by `mlplab train`: its bytes, its zip members and the dict it holds."""

    data: bytes
    regions: tuple[tuple[str, int, int], ...]  # (what, start, end) byte ranges of ``data``
    members: dict[str, bytes]  # zip member name -> content, in archive order
    pickle_boundaries: tuple[int, ...]  # offsets in data.pkl where an opcode starts
    checkpoint: dict[str, Any]

    def __repr__(self) -> str:  # Hypothesis prints the fixture with every failing example
        return f"Real({len(self.data)} bytes, members {list(self.members)})"


def zip_regions(data: bytes) -> tuple[tuple[str, int, int], ...]:
    """Every member's local header and data, the central directory and its end record."""
    regions = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
            start = info.header_offset + 30 + name_length + extra_length
            regions += [(f"header of {info.filename}", info.header_offset, start),
                        (info.filename, start, start + info.compress_size)]
    end = data.rfind(b"PK\x05\x06")
    directory = struct.unpack("<I", data[end + 16:end + 20])[0]
    regions += [("central directory", directory, end), ("end of central directory", end, len(data)),
                ("whole file", 0, len(data))]  # also the data descriptors between members
    return tuple((what, start, stop) for what, start, stop in regions if stop > start)


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Real:
    """A real last.pt, trained once for the module (~4 s on 2 cores)."""
    folder = tmp_path_factory.mktemp("trained")
    fields = {"device": "cpu", "progress": False, "download": False, "out": str(folder / "run"),
              "epochs": 1, "hidden": "8", "batch_size": 1000}
    with pytest.MonkeyPatch.context() as patch:  # as conftest's _isolated_data, which is per test
        patch.setenv("MLPLAB_CACHE_DIR", str(folder / "cache"))
        patch.delenv("MLPLAB_DATA_DIR", raising=False)
        path = train(apply_overrides(Config(), fields)).run_dir / "last.pt"
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    pickled = next(content for name, content in members.items() if name.endswith("/data.pkl"))
    boundaries = tuple(position for _, _, position in pickletools.genops(pickled))
    return Real(data, zip_regions(data), members, boundaries, load_checkpoint(path))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Where examples are written (a module-scoped fixture: Hypothesis reruns the test body)."""
    return tmp_path_factory.mktemp("fuzz")


def outcome(path: Path) -> dict[str, Any] | None:
    """What loading ``path`` gives: the checkpoint, or None when it is refused with a one-line MlplabError.

    A checkpoint that loads must also rebuild its network with `load_model` and export with
    `export_safetensors`, or be refused in one line. Any other exception propagates and fails the test.
    """
    try:
        checkpoint = load_checkpoint(path)
    except MlplabError as error:
        assert str(error) and "\n" not in str(error), repr(str(error))
        return None
    assert isinstance(checkpoint, dict)
    for use, check in ((lambda: load_model(path), lambda model: isinstance(model, MLP)),
                       (lambda: export_safetensors(path, path.with_suffix(".safetensors")), Path.is_file)):
        try:
            result = use()
        except MlplabError as error:
            assert str(error) and "\n" not in str(error), repr(str(error))
        else:
            assert check(result)
    return checkpoint


def archive(members: dict[str, bytes]) -> bytes:
    """A zip (stored, valid CRCs) of ``members``, as Python's zipfile writes it (torch reads it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as out:
        for name, content in members.items():
            out.writestr(name, content)
    return buffer.getvalue()


def mutate(data: bytes, mutation: tuple, regions: tuple[tuple[str, int, int], ...]) -> bytes:
    """``data`` with one mutation applied at a position inside one of ``regions`` (the whole file if none)."""
    kind, region, offset, value = mutation
    if kind == "append":
        return data + value
    _, start, stop = regions[region % len(regions)] if regions else ("file", 0, len(data))
    stop = min(stop, len(data))
    if stop <= start:
        return data
    index = start + offset % (stop - start)
    if kind == "flip":
        return data[:index] + bytes([data[index] ^ (1 << value)]) + data[index + 1:]
    if kind == "byte":
        return data[:index] + bytes([value]) + data[index + 1:]
    if kind == "word":
        return data[:index] + value.to_bytes(4, "little") + data[index + 4:]
    if kind == "truncate":
        return data[:index]
    if kind == "insert":
        return data[:index] + value + data[index:]
    return data[:index] + data[index + value:]  # delete


# ----------------------------------------------------------------------------------------------
# Arbitrary bytes and random pickle programs


@FUZZ
@given(data=st.binary(max_size=2048), zipped=st.booleans())
def test_arbitrary_bytes(folder, data, zipped):
    path = folder / "arbitrary.pt"
    path.write_bytes(archive({"archive/data.pkl": data, "archive/version": b"3\n"}) if zipped else data)
    outcome(path)


def _unicode(text: str) -> bytes:
    encoded = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(encoded)) + encoded


def _integer(value: int) -> bytes:
    if -2**31 <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    encoded = pickle.encode_long(value)
    return b"\x8a" + bytes([len(encoded)]) + encoded


GLOBALS = [b"collections\nOrderedDict", b"torch._utils\n_rebuild_tensor_v2", b"torch._utils\n_rebuild_parameter",
           b"torch._utils\n_rebuild_sparse_tensor", b"torch\nFloatStorage", b"torch\nLongStorage",
           b"torch\nBoolStorage", b"torch\nSize", b"torch\nfloat32", b"builtins\nset", b"torch\nTensor",
           b"torch.serialization\n_get_layout", b"torch\nsparse_coo", b"builtins\nsetattr", b"os\nsystem"]
# Opcodes (protocol 2 to 5) with and without arguments, strings the loader looks for, and noise.
OPCODES = st.one_of(
    st.sampled_from([b"}", b"]", b"(", b")", b"t", b"s", b"u", b"a", b"e", b"N", b"\x88", b"\x89", b"0",
                     b"2", b"1", b"R", b"b", b"Q", b"\x85", b"\x86", b"\x87", b"l", b"d", b"\x94", b"\x93",
                     b"\x81", b"\x92", b"\x8f", b"\x90", b"\x91", b"."]),
    st.sampled_from(GLOBALS).map(lambda name: b"c" + name + b"\n"),
    st.sampled_from(["storage", "0", "1", "8", "cpu", "format", "mlplab.checkpoint", "schema_version",
                     "config", "model", "os", "system"]).map(_unicode),
    st.text(max_size=6).map(_unicode),
    st.one_of(st.integers(-2**70, 2**70), st.sampled_from([0, 1, 4, 6272, 2**31 - 1, -1])).map(_integer),
    st.floats().map(lambda number: b"G" + struct.pack(">d", number)),
    st.integers(0, 255).map(lambda index: b"q" + bytes([index])),  # BINPUT
    st.integers(0, 255).map(lambda index: b"h" + bytes([index])),  # BINGET
    st.binary(min_size=1, max_size=6),
)


@FUZZ
@given(opcodes=st.lists(OPCODES, max_size=48), stop=st.booleans())
def test_random_pickle_programs(folder, real, opcodes, stop):
    # The real tensor data stays in the archive, so storage references (BINPERSID) can resolve.
    program = b"\x80\x02" + b"".join(opcodes) + (b"." if stop else b"")
    members = {name: program if name.endswith("/data.pkl") else content for name, content in real.members.items()}
    path = folder / "program.pt"
    path.write_bytes(archive(members))
    outcome(path)


# ----------------------------------------------------------------------------------------------
# The real file, mutated byte by byte


def test_the_real_checkpoint_loads_in_every_form(folder, real):
    """The fuzz below is a real one: the unmutated file, re-zipped or re-saved, loads and rebuilds."""
    path = folder / "whole.pt"
    for data in (real.data, archive(real.members)):
        path.write_bytes(data)
        assert outcome(path)["model_info"]["in_features"] == 784
        assert load_model(path).widths == (784, 8, 10)
    save_checkpoint(path, {key: value for key, value in real.checkpoint.items() if key != DIGEST_KEY})
    assert outcome(path)["epoch"] == 1


@FUZZ
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_file(folder, real, mutations):
    data = real.data
    for mutation in mutations:
        data = mutate(data, mutation, real.regions)
    path = folder / "mutated.pt"
    path.write_bytes(data)
    outcome(path)


@FUZZ
@given(member=st.integers(0, 99), pickled=st.booleans(), mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_member(folder, real, member, pickled, mutations):
    # Inside one member, re-zipped with valid CRCs: torch reads the changed pickle or tensor bytes.
    names = list(real.members)
    name = next(n for n in names if n.endswith("/data.pkl")) if pickled else names[member % len(names)]
    content = real.members[name]
    for mutation in mutations:
        content = mutate(content, mutation, ())
    path = folder / "member.pt"
    path.write_bytes(archive({**real.members, name: content}))
    outcome(path)


# ----------------------------------------------------------------------------------------------
# Crafted pickles: calls that would run code, spliced into the real pickle


def _fragment(module: str, name: str, args: tuple, form: str) -> bytes:
    """Pickle opcodes that call ``module.name(*args)`` and push the result (net one stack item)."""
    if form == "inst":  # MARK args INST: calls at once, as the class's constructor
        items = b"".join(pickletools.optimize(pickle.dumps(arg, protocol=2))[2:-1] for arg in args)
        return b"(" + items + b"i" + module.encode() + b"\n" + name.encode() + b"\n"
    if form == "stack_global":
        function = _unicode(module) + _unicode(name) + b"\x93"
    else:
        function = b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    arguments = pickletools.optimize(pickle.dumps(args, protocol=2))[2:-1]  # strip PROTO and STOP
    return function + arguments + b"R"


FORMS = ("global", "stack_global", "inst")


def crafted_calls(marker: Path) -> list[tuple[str, str, tuple]]:
    """Calls that each create ``marker``: if it exists after a load, the loader ran code."""
    command = f"touch {marker}"
    return [("os", "system", (command,)), ("posix", "system", (command,)),
            ("builtins", "eval", (f"open({str(marker)!r}, 'w')",)),
            ("builtins", "exec", (f"open({str(marker)!r}, 'w').close()",)),
            ("subprocess", "call", (["touch", str(marker)],)), ("builtins", "open", (str(marker), "w")),
            ("torch.serialization", "os.system", (command,))]  # a dotted name reaching another module


def test_the_crafted_calls_run_code_under_plain_pickle(tmp_path):
    """The fragments spliced in below are real exploits: an unsafe unpickler runs each of them."""
    for index, call in enumerate(crafted_calls(tmp_path / "marker")):
        for form in FORMS:
            marker = tmp_path / f"ran-{index}-{form}"
            module, name, args = crafted_calls(marker)[index]
            pickle.loads(b"\x80\x04" + _fragment(module, name, args, form) + b".")
            assert marker.exists(), (module, name, form)


@FUZZ
@given(call=st.integers(0, 99), form=st.sampled_from(FORMS), position=st.integers(0, 2**16),
       copies=st.integers(1, 2))
def test_crafted_calls_never_run(folder, real, call, form, position, copies):
    marker = folder / "pwned"
    calls = crafted_calls(marker)
    fragment = _fragment(*calls[call % len(calls)], form) + b"0"  # POP: the stack is as before
    name = next(n for n in real.members if n.endswith("/data.pkl"))
    # At an opcode boundary, so the loader reaches the fragment (it ends with STOP).
    at = real.pickle_boundaries[position % len(real.pickle_boundaries)]
    pickled = real.members[name][:at] + fragment * copies + real.members[name][at:]
    path = folder / "crafted.pt"
    path.write_bytes(archive({**real.members, name: pickled}))
    assert outcome(path) is None
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------
# The real contents changed through Python, saved with and without a valid checksum

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8,
          torch.bool, torch.complex64)
LAYOUTS = ("dense", "dense", "view", "parameter", "sparse_coo", "sparse_csr", "meta", "quantized", "nested", "conj")
SHAPES = st.sampled_from([(), (0,), (1,), (8,), (10,), (784,), (8, 784), (784, 8), (10, 8), (8, 10), (0, 784),
                          (2, 2, 2), (1, 8, 784)])  # the net's shapes, transposed, empty, or with more dimensions


def make_tensor(layout: str, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    """A tensor of ``shape`` and ``dtype`` stored as ``layout`` (dense where that layout cannot hold it)."""
    try:
        dense = torch.ones(shape, dtype=dtype)
        if layout == "view":  # same shape, but strided inside a larger storage at an offset
            return torch.ones((*shape, 2), dtype=dtype)[..., 1]
        if layout == "parameter":
            return torch.nn.Parameter(dense, requires_grad=dense.is_floating_point())
        if layout == "sparse_coo":
            return dense.to_sparse()
        if layout == "sparse_csr":
            return dense.to_sparse_csr()
        if layout == "meta":
            return torch.ones(shape, dtype=dtype, device="meta")
        if layout == "quantized":
            return torch.quantize_per_tensor(dense.float(), 0.1, 0, torch.qint8)
        if layout == "nested":
            return torch.nested.nested_tensor([dense, dense])
        if layout == "conj":
            return dense.to(torch.complex64).conj()
        return dense
    except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError):
        return torch.ones(shape)


TENSORS = st.builds(make_tensor, st.sampled_from(LAYOUTS), st.sampled_from(DTYPES), SHAPES)


def nested(depth: int, kind: type = list) -> Any:
    """``[[[...]]]`` (or tuples): at depth 2000, deeper than Python's recursion limit lets a recursive walk go."""
    value = kind()
    for _ in range(depth):
        value = kind([value])
    return value


# Any value a checkpoint may hold after weights_only loading.
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, 2**63, 2**64, 10**400]),
    st.floats(), st.text(max_size=6),
    st.sampled_from(["", "relu", "mnist", "sgd", "onecycle", "lab", "8", "1e9", "a\nb", "mlplab.checkpoint"]),
    st.lists(st.integers(-2, 2**10), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from([(), (8,), b"bytes", torch.Size([8, 784]), torch.float32]),
    TENSORS, st.builds(nested, st.sampled_from([3, 2000])),
)
KEYS = st.one_of(st.sampled_from(["hidden", "lr", "preset", "model", "data", "format", "in_features",
                                  "layers.2.weight", "layers.0.weight", "0"]),
                 st.integers(-1, 3), st.text(max_size=4), st.none(), st.builds(nested, st.sampled_from([1, 2000]),
                                                                              st.just(tuple)))


def near(value: Any) -> st.SearchStrategy:
    """Values close to ``value``: the same kind of thing, one step wrong (type, shape, dtype, range)."""
    if isinstance(value, torch.Tensor) and not value.is_nested:  # a nested tensor has no shape
        shape = tuple(value.shape)
        shapes = st.one_of(st.just(shape), st.just(shape[1:]), st.just((*shape, 1)), st.just(shape[::-1]),
                           st.integers(0, 3).map(lambda d: tuple(s + d if i == 0 else s for i, s in enumerate(shape))))
        dtypes = st.sampled_from(sorted({value.dtype, *DTYPES}, key=str))
        return st.builds(make_tensor, st.sampled_from(LAYOUTS), dtypes, shapes)
    if isinstance(value, bool):
        return st.sampled_from([not value, int(value), str(value).lower(), None, 1.0])
    if isinstance(value, int):
        others = [-value, 0, -1, value * 2**40, 2**63, 2**64, 10**400, str(value), True, [value]]
        if abs(value) < 2**63:  # as a float or a tensor
            others += [float(value), value + 0.5, torch.tensor(value), torch.tensor([value, value])]
        return st.one_of(st.integers(-3, 3).map(lambda step: value + step), st.sampled_from(others))
    if isinstance(value, float):
        others = [-value, 0.0, math.nan, math.inf, -math.inf, 1e308, 5e-324, str(value), True,
                  torch.tensor(value), torch.tensor([[value], [-value]])]
        return st.sampled_from(others + ([int(value)] if math.isfinite(value) else []))
    if isinstance(value, str):
        return st.sampled_from(["", value.upper(), value + "x", value + "\n", " " + value, value.encode(), [value]])
    if isinstance(value, list):
        return st.sampled_from([[], value + value[-1:], value[:1], tuple(value),
                                [str(item) for item in value if not isinstance(item, (list, dict))],
                                [[item] for item in value], {str(i): item for i, item in enumerate(value)},
                                torch.tensor([[8], [-8]]), torch.tensor([8])])
    if isinstance(value, dict):
        return st.sampled_from([{}, list(value.values()), {str(i): item for i, item in enumerate(value.values())},
                                {**value, **{i: item for i, item in enumerate(value.values())}}])
    return VALUES


def places(data: Any, place: tuple = ()) -> list[tuple]:
    """Every key path in nested dicts and lists (of a list only its first, second and last items).

    Lists of lists are not entered: the real checkpoint has none, and `nested` values are deep.
    """
    if isinstance(data, dict):
        children = list(data)
    elif isinstance(data, list) and not any(isinstance(item, list) for item in data):
        children = sorted({0, 1, len(data) - 1} & set(range(len(data))))
    else:
        return []
    return [path for key in children for path in [(*place, key), *places(data[key], (*place, key))]]


# Where the content checks must look hardest: the network and what describes it.
FOCUS = ("config", "model", "model_info", "epoch", "step", "schema_version", "format")


def change(checkpoint: dict[str, Any], data: st.DataObject) -> None:
    """Delete, replace (with anything, or something near the old value) or add one entry at any depth."""
    every = places(checkpoint)
    focus = [place for place in every if place[0] in FOCUS]
    if not every:
        checkpoint[data.draw(KEYS, label="new key")] = data.draw(VALUES, label="value")
        return
    place = data.draw(st.sampled_from(focus) | st.sampled_from(every) if focus else st.sampled_from(every),
                      label="place")
    parent = checkpoint
    for key in place[:-1]:
        parent = parent[key]
    key = place[-1]
    action = data.draw(st.sampled_from(["delete", "replace", "near", "near", "add"]), label="action")
    if action == "delete":
        del parent[key]
    elif action == "replace":
        parent[key] = data.draw(VALUES, label="value")
    elif action == "near":
        parent[key] = data.draw(near(parent[key]), label="value")
    else:
        target = parent[key] if isinstance(parent[key], dict) else parent
        if isinstance(target, dict):
            target[data.draw(KEYS, label="new key")] = data.draw(VALUES, label="value")


def save(path: Path, checkpoint: dict[str, Any], sealed: bool) -> None:
    """torch.save as it is (stale checksum), or `save_checkpoint` (a checksum of what it holds now)."""
    try:
        if sealed:
            save_checkpoint(path, {key: value for key, value in checkpoint.items() if key != DIGEST_KEY})
        else:
            torch.save(checkpoint, path)
    except (RuntimeError, NotImplementedError, TypeError, ValueError, pickle.PicklingError):
        assume(False)  # e.g. the checksum of a meta tensor: nothing the training loop could write


@contextmanager
def deep_recursion() -> Iterator[None]:
    """Let `nested` values be built, compared (as keys) and pickled; loading runs at the normal limit."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


@FUZZ
@given(data=st.data(), changes=st.integers(1, 3), sealed=st.booleans())
def test_changed_contents(folder, real, data, changes, sealed):
    checkpoint = copy.deepcopy(real.checkpoint)
    path = folder / "changed.pt"
    with deep_recursion():
        for _ in range(changes):
            change(checkpoint, data)
        save(path, checkpoint, sealed)
    outcome(path)


# ----------------------------------------------------------------------------------------------
# Every byte of the pickle: the whole record is covered by the checksum


def test_a_flipped_bit_in_any_byte_of_the_pickle_loads_the_same_record_or_is_refused(folder, real):
    """Each byte of data.pkl with one bit flipped (bit = offset mod 8), re-zipped with valid CRCs: what loads
    means exactly what was written (the same canonical record), or it is refused in one line. Before the
    whole record had a checksum, 69 of 400 such flips changed the config, optimizer or history and loaded."""
    from mlplab.runs.checkpoint import record_digest

    name = next(n for n in real.members if n.endswith("/data.pkl"))
    pickled = real.members[name]
    meaning = record_digest({key: value for key, value in real.checkpoint.items() if key != DIGEST_KEY})
    path = folder / "flipped.pt"
    loaded = refused = 0
    for index in range(len(pickled)):
        flipped = pickled[:index] + bytes([pickled[index] ^ (1 << index % 8)]) + pickled[index + 1:]
        path.write_bytes(archive({**real.members, name: flipped}))
        try:
            checkpoint = load_checkpoint(path)
        except MlplabError as error:
            assert "\n" not in str(error), repr(str(error))
            refused += 1
            continue
        assert record_digest({key: value for key, value in checkpoint.items() if key != DIGEST_KEY}) == meaning, index
        loaded += 1
    assert refused > 0.9 * len(pickled), (loaded, refused)  # nearly every flip changes something: refused
