"""`MLPClassifier`: scikit-learn's estimator interface over `mlplab.fit` (the ``sklearn`` extra).

classifier   the estimator: parameters, fit, partial_fit, predict (`mlplab.estimator.classifier`)
weights      sample and class weights: their checks, the weighted loss and the batches that carry them
data         the arrays of a fit: the validation split and ``eval_set``
convergence  the per-epoch bookkeeping scikit-learn's attributes report (loss curve, early stopping)
"""

from mlplab.estimator.classifier import MLPClassifier

__all__ = ["MLPClassifier"]
