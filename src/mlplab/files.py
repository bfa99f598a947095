"""Atomic file writes: a reader sees the old file or the new one, never half of one; and the
lock that makes processes take turns (`waiting_lock`).

Every file mlplab writes (run files, checkpoints, figures, reports, exports, downloads)
goes through `atomic_write`, and gets the mode ``open(path, "w")`` would leave: a new
file 0666 less the process's umask (applied by the kernel when the temporary file is
created; 0644 under the usual umask 022), an existing file the mode it had. Results are
as readable as any other file the user writes. `tempfile.mkstemp` is not used: it makes
files private (0600).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Container, Iterator
from pathlib import Path
from typing import BinaryIO

_CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_ATTEMPTS = 100  # names are random (32 bits); a clash means a stale file with the same name


def temporary_beside(path: Path) -> tuple[BinaryIO, Path]:
    """A new, empty file ``.<name>.<random>.tmp`` in ``path``'s folder, opened for reading and writing.

    Created with ``O_EXCL`` (never someone else's file) and mode 0666 less the umask.
    """
    for _ in range(_ATTEMPTS):
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            descriptor = os.open(temporary, _CREATE_FLAGS, 0o666)
        except FileExistsError:
            continue
        return os.fdopen(descriptor, "w+b"), temporary
    raise FileExistsError(f"could not create a temporary file beside {path}")


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.tmp$")  # the names `temporary_beside` gives


def leftover_temporaries(folder: Path, names: Container[str] | None) -> list[Path]:
    """The temporary files `atomic_write` left in ``folder`` for the files ``names`` (None: for any file):
    its writer died between creating one and renaming it. Only the folder's one writer may delete them."""
    found = (_TEMPORARY.match(path.name) for path in Path(folder).iterdir())
    return [
        Path(folder) / match.group(0) for match in found if match and (names is None or match.group("name") in names)
    ]


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    ``file`` is opened ``w+b``: ``write`` may read back what it wrote (to verify it) and
    may raise to abandon the write, in which case ``path`` is left as it was and the
    temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = temporary_beside(path)
    watched = _Watched(handle, path)
    try:
        with handle:
            _keep_mode(path, handle)
            try:
                write(watched)  # type: ignore[arg-type]
            except OSError:
                raise
            except Exception as error:
                # A writer that catches the OS error and raises its own (PyTorch's zip writer turns a
                # full disk into "RuntimeError: ... unexpected pos"): the OS error is what happened.
                if watched.error is None:
                    raise
                raise watched.error from error
            handle.flush()
            os.fsync(handle.fileno())
        fault_point(f"{path.name}:before-rename")
        os.replace(temporary, path)
        fault_point(f"{path.name}:after-rename")
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.filename is None and error.strerror is not None:  # a write or flush: say which file failed
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class _Watched:
    """A file as `atomic_write`'s writer sees it: every call passes through, and the first OS error a
    ``write`` raises is kept (a writer may replace it with its own exception)."""

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self._handle, self._path = handle, path
        self.error: OSError | None = None
        self._writes = 0

    def write(self, data: bytes) -> int:
        try:
            if self._writes == 0:
                fault_point(f"{self._path.name}:write", self._path)  # a full disk, injected (see FAULT_ENV)
            self._writes += 1
            return self._handle.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self._handle, name)


# Fault injection, for the crash-consistency tests only: MLPLAB_FAULT="POINT@N:HOW" makes the
# Nth arrival at POINT send the process SIGNAL (HOW: KILL or INT), or fail as a full disk does
# (HOW: ENOSPC, an OSError from the write), e.g. "last.pt:before-rename@2:KILL". Points:
# "<file name>:write" (its first write), ":before-rename" and ":after-rename" for every atomic
# write, and "best.pt:before-rename" when a new best is published.
FAULT_ENV = "MLPLAB_FAULT"
_fault_counts: dict[str, int] = {}  # how often each point was reached in this process


def fault_point(name: str, path: Path | None = None) -> None:
    """A named moment a test may kill the process at, or fail a write of ``path`` at (see `FAULT_ENV`);
    a no-op otherwise."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, rest = spec.partition("@")
    if point != name:
        return
    count, _, signal_name = rest.partition(":")
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] == int(count or 1):
        if signal_name == "ENOSPC":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), None if path is None else str(path))
        import signal

        os.kill(os.getpid(), signal.SIGKILL if signal_name == "KILL" else signal.SIGINT)


def _keep_mode(path: Path, handle: BinaryIO) -> None:
    """Give the temporary file the mode of the file it will replace, if there is one (as ``open`` keeps it)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    os.chmod(handle.fileno(), mode)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_copy(source: Path, path: Path) -> None:
    """Copy the file ``source`` to ``path`` atomically (the copy gets the umask's mode, like a new file)."""
    with open(source, "rb") as original:
        atomic_write(path, lambda handle: shutil.copyfileobj(original, handle))


SETTINGS_FILE_LIMIT = 1_000_000  # bytes: a config, grid or search space file is a few hundred


def read_settings_text(path: str | Path, what: str, limit: int = SETTINGS_FILE_LIMIT) -> str:
    """The UTF-8 text of a small settings file (a config, a grid, a search space), or a one-line
    `MlplabError` naming it as ``what``: missing, not a regular file (a folder, /dev/zero, a named
    pipe: refused without being opened, as reading them never ends), over ``limit`` bytes, not UTF-8."""
    from mlplab.errors import MlplabError

    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise MlplabError(f"{what} {path} does not exist") from None
    except (OSError, ValueError) as error:
        raise MlplabError(f"{what} {path} cannot be read: {getattr(error, 'strerror', None) or error}") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device or a pipe?)"
        raise MlplabError(f"{what} {path} is {kind}; give a TOML file")
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)  # never more, even if the file grows while it is read
    if len(data) > limit:
        raise MlplabError(f"{what} {path} is over {limit:,} bytes: not a settings file; give a TOML file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MlplabError(f"{what} {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None


@contextlib.contextmanager
def waiting_lock(lock_file: Path, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the lock on ``lock_file`` (made if missing) while the body runs; if another process
    holds it, call ``waiting`` (if given) and wait for it.

    For processes that take turns: a second process that must build a pretrained model waits
    for the first and uses its model; a second worker of a study waits while the first changes
    a trial's state. Not `mlplab.runs.directory.locked`, which refuses a second writer of a run.
    The kernel releases the lock when its holder dies, however it dies. Where the OS has no
    ``fcntl`` (Windows) there is no lock, nor in a folder this process may read but not write
    (a shared cache): it can only use what is there.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        handle = open(lock_file, "a+b")
    except OSError as error:
        if not isinstance(error, PermissionError) and error.errno != errno.EROFS:
            raise
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock
