"""A run: its state while it trains, its files on disk, and the run as you open it afterwards.

Modules, from the record up to the reader:
    history     `History`, one record per epoch, and the builders of every record a run keeps
                (`epoch_record`, `new_best`, `test_metrics`), used by `fit` and the vectorised trainer alike
    state       `FitState`, a run in training as its watchers see it, and `Callback`, the hooks `fit` calls
    checkpoint  self-describing, checksummed checkpoints (`save_checkpoint`, `load_checkpoint`)
    directory   the run directory's files, lock and crash-consistency protocol
    writer      `RunWriter`, the callback that writes a run directory and resumes it; `write_trained_run`
    reader      `Run` and `open_run`: a run directory's config, history, metrics, model, loss and evaluation;
                `SavedModel`: one checkpoint (a file, or the one a run directory means) read the same way
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplab.lazy import lazy_names

# Names imported on first use: the CLI reads runs, and starts without torch.
_EXPORTS = {
    "History": "history",
    "epoch_record": "history",
    "new_best": "history",
    "test_metrics": "history",
    "Callback": "state",
    "FitState": "state",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "RunWriter": "writer",
    "write_trained_run": "writer",
    "Run": "reader",
    "open_run": "reader",
    "load_model": "reader",
    "SavedModel": "reader",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from mlplab.runs.checkpoint import load_checkpoint, save_checkpoint
    from mlplab.runs.history import History, epoch_record, new_best, test_metrics
    from mlplab.runs.reader import Run, SavedModel, load_model, open_run
    from mlplab.runs.state import Callback, FitState
    from mlplab.runs.writer import RunWriter, write_trained_run


__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals(), __all__)
