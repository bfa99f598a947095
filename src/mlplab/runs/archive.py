"""What a checkpoint's zip archive declares, checked before torch reads any of it.

``torch.load`` reads each record of a checkpoint into memory at the size the archive's
central directory declares, inflating a DEFLATE-compressed record on the way, and only then
compares that size with what the record's tensor needs: a 2.5 MB file of compressed zeros
took 2.3 GB of memory before it was refused. ``torch.save`` writes every record stored
(uncompressed), so `check_archive` holds an archive to that, reading only its central
directory with Python's zipfile:

- every member is stored, never compressed: no record takes more memory than its bytes on disk;
- the members' declared sizes add up to at most the file's size: entries that overlap (one
  stretch of bytes listed as many members, a zip bomb's trick) or sizes that lie add up to more;
- a member other than tensor data (``data.pkl``: the config, the history; the version records)
  is at most `PICKLE_LIMIT` bytes, as it is read whole before anything else is known.

Reading a checkpoint then takes no more memory than about its size on disk. How much tensor
data its network can need is known once its config is read (`mlplab.runs.checkpoint`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from mlplab.errors import MlplabError

# bytes; data.pkl holds the config, ~100 bytes of history an epoch and the RNG states: a few
# kB for the lab's runs, a few MB after 10,000s of epochs
PICKLE_LIMIT = 64 * 2**20
_ADVICE = "use a last.pt or best.pt written by `mlplab train`"
# The compression methods zipfile names (its table of names, `zipfile.compressor_names`, is undocumented)
_METHODS = {zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}


def check_archive(path: Path) -> int:
    """Refuse an archive that declares more than `torch.save` writes (see the module docstring);
    return the bytes its tensor records declare."""
    members = _members(path)
    compressed = [member for member in members if member.compress_type != zipfile.ZIP_STORED]
    if compressed:  # named by the largest: the record that would have taken the memory
        largest = max(compressed, key=lambda member: member.file_size)
        method = _METHODS.get(largest.compress_type, f"method {largest.compress_type}")
        raise MlplabError(
            f"refusing to load {path}: its member {largest.filename!r} is compressed ({method}, "
            f"{largest.compress_size:,} bytes declared to hold {largest.file_size:,}), which torch.save "
            f"never writes; {_ADVICE}"
        )
    for member in members:
        _check_sizes(path, member)
    declared, size = sum(member.file_size for member in members), path.stat().st_size
    if declared > size:
        raise MlplabError(
            f"refusing to load {path}: its members declare {declared:,} bytes in all, more than the "
            f"file's {size:,} (entries that overlap or lie about their size, as in a zip bomb); {_ADVICE}"
        )
    return sum(member.file_size for member in members if is_tensor_record(member.filename))


def is_tensor_record(name: str) -> bool:
    """Whether a member holds tensor data: torch names them ``<archive>/data/<key>``."""
    return name.partition("/")[2].startswith("data/")


def _members(path: Path) -> list[zipfile.ZipInfo]:
    """The archive's central directory; nothing in it is read or decompressed."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.infolist()
    # Broad on purpose: zipfile's parser lets a damaged directory raise BadZipFile, struct.error,
    # ValueError, UnicodeDecodeError, EOFError or OSError; reading a directory runs no code.
    except Exception:
        raise MlplabError(
            f"{path} is not a readable checkpoint (not a torch.save archive); it may be truncated or "
            "another kind of file"
        ) from None


def _check_sizes(path: Path, member: zipfile.ZipInfo) -> None:
    """Refuse a stored member whose two sizes disagree, and a non-tensor member over `PICKLE_LIMIT`."""
    name = member.filename
    if member.file_size != member.compress_size:  # stored bytes are the bytes: one of the sizes lies
        raise MlplabError(
            f"{path} is damaged: its member {name!r} declares {member.file_size:,} bytes stored in "
            f"{member.compress_size:,}; {_ADVICE}"
        )
    if not is_tensor_record(name) and member.file_size > PICKLE_LIMIT:
        raise MlplabError(
            f"refusing to load {path}: its member {name!r} declares {member.file_size / 1e6:,.1f} MB, "
            f"more than any checkpoint's record holds ({PICKLE_LIMIT / 1e6:.0f} MB); {_ADVICE}"
        )
