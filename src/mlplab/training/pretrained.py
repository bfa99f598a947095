"""`pretrained`: the model of a preset, trained once on first use and kept in the user's cache.

``mlplab predict`` and ``mlplab serve`` use it when no run is given. The cache holds one run
directory per preset and recipe, beside what is being made::

    <cache>/models/<preset>-<fingerprint>/                    a finished run, written by `mlplab.train`
    <cache>/models/.<preset>-<fingerprint>.<random>.tmp/      a run in training (or a killed one's)
    <cache>/models/.<preset>.lock                             held while a process checks or trains the preset

``<cache>`` is ``cache_dir``, else `mlplab.data.download.default_cache_dir` ($MLPLAB_CACHE_DIR,
$XDG_CACHE_HOME/mlplab, ~/.cache/mlplab). The fingerprint (`fingerprint`) covers what makes the
model: the preset's resolved config, less the fields that only say where and how visibly it
runs (`mlplab.config.PLACE_FIELDS`), and mlplab's version. A changed recipe or version is a new folder.

The protocol, all of it under the preset's lock (a second process waits, then uses the result):

1. remove the temporary folders of trainings that were killed (only a lock holder trains);
2. open the current fingerprint's folder and check it (`open_verified`): finished, its best
   and last checkpoints read back with their checksums and contents checked, its config and
   mlplab version the fingerprint's. A folder that fails is reported (a `Notice`) and deleted;
3. with none usable (or ``retrain``), train into a temporary folder beside it, rename that into
   place (one atomic step: the folder is whole or absent), check it as in 2, and remove the
   preset's folders of other fingerprints.

A model that failed a check is never returned: the `Run` given back has read and checked both
checkpoints, and answers from them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from mlplab._version import __version__
from mlplab.config import PLACE_FIELDS, Config, from_preset, to_dict
from mlplab.errors import MlplabError, describe_os_error, one_line
from mlplab.files import waiting_lock
from mlplab.runs.reader import Run, open_run

FINGERPRINT_DIGITS = 10  # hex digits: 40 bits, for the few recipes one cache ever sees


@dataclass(frozen=True)
class Notice:
    """What `pretrained` reports as it goes, for its caller to show (the CLI prints it on stderr).

    Attributes:
        kind: ``"loaded"`` (the cached model at ``path`` is used), ``"training"`` (none is usable:
            training one, to be kept at ``path``), ``"waiting"`` (another process holds the
            preset's lock, training it), ``"discarded"`` (the folder ``path`` failed a check,
            ``detail`` says which, and is deleted) or ``"removed"`` (``path``, a stale model of
            the preset, an older recipe or mlplab version, is deleted).
        path: the folder it is about.
        detail: why, for ``"discarded"``.
    """

    kind: str
    path: Path
    detail: str = ""

    def __str__(self) -> str:
        return {
            "loaded": f"using the cached model {self.path}",
            "training": f"training the model kept in {self.path}",
            "waiting": f"another mlplab process is training or checking the model kept in {self.path}; waiting for it",
            "discarded": f"the cached model {self.path} is unusable ({self.detail}): deleted, training it again",
            "removed": f"removed {self.path}, a cached model of an older recipe or mlplab version",
        }[self.kind]


class Unusable(MlplabError):
    """A cached run that may not be used: unfinished, damaged, or not the recipe its name says."""


def pretrained(
    preset: str = "digits",
    *,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    retrain: bool = False,
    notify: Callable[[Notice], None] | None = None,
) -> Run:
    """The finished run of ``preset`` kept in the cache, trained first when none is usable.

    The first call trains the preset's recipe (`mlplab.config.PRESETS`) with `mlplab.train` on
    its data (MNIST is bundled: no network), seconds to a minute; later calls open the cached run.
    A cached run that is unfinished, damaged or of another recipe or mlplab version is deleted
    and trained again, never loaded (the module docstring gives the protocol). Two processes
    asking at once: one trains, the other waits for it.

    Args:
        preset: the recipe's name, e.g. ``"digits"`` (the one ``mlplab predict`` and ``serve`` use).
        cache_dir: the cache folder (models go in its ``models/``); default
            `mlplab.data.download.default_cache_dir`. The data is looked for there first, too.
        progress: show a bar while training (only on a terminal or in a notebook).
        retrain: train again even if a usable model is cached (it is replaced once the new one is in place).
        notify: called with a `Notice` at each step (``print`` shows them); by default a discarded
            model is reported as a warning and the rest is silent.

    Returns:
        The `mlplab.Run`: ``run.predict(images)``, ``run.model()``, ``run.metrics["test_accuracy"]``.

    Example::

        run = mlplab.pretrained()        # about half a minute the first time, then instant
        print(run.predict("photo.jpg")[0].top(3))
    """
    notify = _warn_discarded if notify is None else notify
    config = from_preset(preset)  # refuses an unknown name, listing the presets
    if cache_dir is not None:
        config = replace(config, data=replace(config.data, cache_dir=str(cache_dir)))
    models = _models_folder(cache_dir)
    models.mkdir(parents=True, exist_ok=True)
    expected = fingerprint(config)
    final = models / f"{preset}-{expected}"
    with waiting_lock(models / f".{preset}.lock", waiting=lambda: notify(Notice("waiting", final))):
        _remove_leftovers(models, preset)
        run = None if retrain else _cached(final, expected, notify)
        if run is None:
            notify(Notice("training", final))
            run = _train(config, final, expected, progress)
        else:
            notify(Notice("loaded", final))
        _remove_stale(models, preset, keep=final, notify=notify)
    return run


def model_dir(preset: str = "digits", cache_dir: str | Path | None = None) -> Path:
    """The folder `pretrained` keeps ``preset``'s model in for the recipe and mlplab version of now
    (it may not exist yet): delete it to have the model trained again."""
    return _models_folder(cache_dir) / f"{preset}-{fingerprint(from_preset(preset))}"


def _models_folder(cache_dir: str | Path | None) -> Path:
    """``<cache>/models``: ``cache_dir``, else the user's cache (`mlplab.data.download.default_cache_dir`)."""
    from mlplab.data.download import default_cache_dir

    return Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / "models"


def fingerprint(config: Config, version: str | None = None) -> str:
    """Short hex SHA-256 of what makes a model: ``config`` with its `mlplab.config.PLACE_FIELDS` at their
    defaults, and the mlplab ``version`` that trains it (default: this one)."""
    version = version or __version__
    data, defaults = to_dict(config), to_dict(Config())
    for section in ("data", "model", "optim", "train"):
        for name in PLACE_FIELDS:
            if name in data[section]:
                data[section][name] = defaults[section][name]
    text = json.dumps({"config": data, "mlplab": version}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_DIGITS]


def open_verified(run_dir: Path, expected: str) -> Run:
    """The run in ``run_dir`` with both its checkpoints read and checked (checksums, contents), if it
    is finished and holds the model of fingerprint ``expected``; else `Unusable`, saying why."""
    try:
        run = open_run(run_dir)  # first mends what a killed writer left, as every reader does
        missing = [name for name in ("last.pt", "best.pt") if not (run_dir / name).is_file()]
        if missing:
            raise Unusable(f"it has no {' and no '.join(missing)}")
        config = run.config
        if config is None:
            raise Unusable("it holds a user-defined model")
        if not run.finished:
            raise Unusable(f"its training stopped after {run.epochs} of {config.train.epochs} epochs")
        run.saved("best")  # read once and checked; the Run answers from this copy
        version = (run.checkpoint("last").get("versions") or {}).get("mlplab", "unknown")
        if fingerprint(config, version) != expected:
            raise Unusable(f"it holds another recipe (trained by mlplab {version})")
    except Unusable:
        raise
    except MlplabError as error:  # what is wrong, not the advice for a run of one's own after the "; "
        raise Unusable(one_line(error, limit=None).replace(f"{run_dir}{os.sep}", "").split("; ")[0]) from None
    except OSError as error:
        raise Unusable(describe_os_error(error)) from None
    return run


def _cached(final: Path, expected: str, notify: Callable[[Notice], None]) -> Run | None:
    """The usable run in ``final``, or None; a folder that fails a check is reported and deleted."""
    if not os.path.lexists(final):
        return None
    try:
        return open_verified(final, expected)
    except Unusable as error:
        notify(Notice("discarded", final, str(error)))
        _remove(final)
        return None


def _train(config: Config, final: Path, expected: str, progress: bool) -> Run:
    """Train ``config`` into a temporary folder beside ``final``, rename it into place and open it checked."""
    from mlplab.training.progress import TrainingBar
    from mlplab.training.runner import train

    temporary = _temporary_beside(final)
    config = replace(config, train=replace(config.train, out=str(temporary), progress=progress))
    callbacks = [TrainingBar(f"{config.preset} model")] if progress else []
    try:
        train(config, callbacks=callbacks)
        _put_in_place(temporary, final)
    finally:
        if temporary.exists():  # a failed or interrupted training: nothing of it is kept
            _remove(temporary)
    try:
        return open_verified(final, expected)
    except Unusable as error:  # just trained and already failing: a disk or a bug, not the cache
        raise MlplabError(f"the model just trained in {final} does not read back: {error}") from None


def _put_in_place(temporary: Path, final: Path) -> None:
    """Rename ``temporary`` to ``final``; one already there (``retrain``) goes only once the new one is in."""
    old = None
    if os.path.lexists(final):
        old = _temporary_beside(final)
        os.rename(final, old)
    os.rename(temporary, final)
    if old is not None:
        _remove(old)


def _temporary_beside(final: Path) -> Path:
    """A name for a folder in the making, ``.<name>.<random>.tmp`` beside ``final`` (not created)."""
    return final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")


def _remove_leftovers(models: Path, preset: str) -> None:
    """Delete the temporary folders of ``preset`` that killed processes left (only the lock holder makes them)."""
    pattern = re.compile(rf"^\.{re.escape(preset)}-[0-9a-f]+\.[0-9a-f]{{8}}\.tmp$")
    for path in models.iterdir():
        if pattern.match(path.name):
            _remove(path)


def _remove_stale(models: Path, preset: str, keep: Path, notify: Callable[[Notice], None]) -> None:
    """Delete ``preset``'s models of other fingerprints (older recipes or mlplab versions)."""
    pattern = re.compile(rf"^{re.escape(preset)}-[0-9a-f]{{{FINGERPRINT_DIGITS}}}$")
    for path in sorted(models.iterdir()):
        if pattern.match(path.name) and path.name != keep.name:
            _remove(path)
            notify(Notice("removed", path))


def _remove(path: Path) -> None:
    """Delete a folder with everything in it, or a file or link in its place."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _warn_discarded(notice: Notice) -> None:
    """The default `Notice` handler: a model deleted for failing a check is worth a warning; the rest is routine."""
    if notice.kind == "discarded":
        warnings.warn(str(notice), stacklevel=4)
