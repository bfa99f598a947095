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
    from mlplab.runs.checkpoint import load_checkpoint as load_checkpoint
    from mlplab.runs.checkpoint import save_checkpoint as save_checkpoint
    from mlplab.runs.history import History as History
    from mlplab.runs.history import epoch_record as epoch_record
    from mlplab.runs.history import new_best as new_best
    from mlplab.runs.history import test_metrics as test_metrics
    from mlplab.runs.reader import Run as Run
    from mlplab.runs.reader import SavedModel as SavedModel
    from mlplab.runs.reader import load_model as load_model
    from mlplab.runs.reader import open_run as open_run
    from mlplab.runs.state import Callback as Callback
    from mlplab.runs.state import FitState as FitState
    from mlplab.runs.writer import RunWriter as RunWriter
    from mlplab.runs.writer import write_trained_run as write_trained_run


__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals(), __all__)
