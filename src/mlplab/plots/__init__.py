"""Pictures of data and runs: sample grids, training curves, weights, confusion matrices, mistakes.

The only part of mlplab that imports matplotlib (on first use, Agg backend). Figure
functions take plain arrays and return Figures (`images`, `charts`); `plot_run` draws
every figure of a run directory from its files; `sample_figure` shows a dataset, `augment_figure`
one image's random distortions.
"""

from mlplab.plots.backend import save
from mlplab.plots.run import FIGURES, RunFigures, plot_run
from mlplab.plots.samples import augment_figure, sample_figure

__all__ = ["FIGURES", "RunFigures", "augment_figure", "plot_run", "sample_figure", "save"]
