"""The sweep's accuracy-by-field chart: a categorical axis, lines only along one ordered series."""

from __future__ import annotations

import pytest

from mlplab.plots.backend import pyplot
from mlplab.plots.sweep import accuracy_by_field, axis_order

pytest.importorskip("matplotlib")

HIDDEN = [[128], [64, 64], [64], [32, 32], [256]]  # grid order, as a user might write it


def _settings(hidden_values, lrs=(None,)):
    """One settings.json row per (hidden, lr), accuracies made up but distinct, three seeds each."""
    rows = []
    for number, (hidden, lr) in enumerate((h, lr) for h in hidden_values for lr in lrs):
        row = {"hidden": hidden, "seeds": 3, "val_accuracy_mean": 0.80 + 0.01 * number, "val_accuracy_std": 0.004,
               "test_accuracy_mean": 0.81 + 0.01 * number, "test_accuracy_std": 0.005}
        if lr is not None:
            row["lr"] = lr
        rows.append(row)
    return rows


def _joined(axis):
    """The tick labels each drawn line passes through (a line: a Line2D with a line style and two or more points)."""
    ticks = [label.get_text() for label in axis.get_xticklabels()]
    joined = []
    for line in axis.get_lines():
        xs = line.get_xdata()
        if line.get_linestyle() not in ("None", "none", "") and len(set(xs)) > 1:
            joined.append([ticks[round(x)] for x in xs])  # markers sit within 0.25 of their tick
    return joined


@pytest.mark.parametrize("lrs", [(None,), (0.05, 0.2)], ids=["hidden alone", "hidden and lr"])
def test_no_line_joins_nets_of_different_depths(lrs):
    others = [] if lrs == (None,) else ["lr"]
    figure = accuracy_by_field(_settings(HIDDEN, lrs), "hidden", HIDDEN, others)
    for axis in figure.axes:  # validation, test
        ticks = [label.get_text() for label in axis.get_xticklabels()]
        assert ticks == ["64", "128", "256", "32,32", "64,64"]  # one-layer nets by width, then two-layer ones
        joined = _joined(axis)
        assert joined, "the widths of one-layer nets are one ordered series: a line should join them"
        for labels in joined:
            assert len({label.count(",") for label in labels}) == 1, f"a line joins different depths: {labels}"
        markers = sum(len(line.get_xdata()) for line in axis.get_lines() if line.get_marker() == "o")
        assert markers == len(HIDDEN) * len(lrs)  # every setting drawn, once
    pyplot().close(figure)


def test_axis_order_sorts_numbers_groups_depths_and_leaves_choices_alone():
    assert axis_order([0.2, 0.01, 0.05]) == ([0.01, 0.05, 0.2], [[0, 1, 2]])
    assert axis_order(HIDDEN) == ([[64], [128], [256], [32, 32], [64, 64]], [[0, 1, 2], [3, 4]])
    # 32,64 and 64,32 are not two points of one scale: neither is wider in every layer.
    assert axis_order([[64, 32], [32, 64]]) == ([[32, 64], [64, 32]], [[0], [1]])
    assert axis_order([[], [16]]) == ([[], [16]], [[0], [1]])  # logistic regression stands alone
    assert axis_order(["tanh", "relu"]) == (["tanh", "relu"], [[0], [1]])
    assert axis_order([True, False]) == ([True, False], [[0], [1]])  # booleans are choices, not 0 and 1
    assert axis_order([None, 3]) == ([None, 3], [[0], [1]])  # patience: off, or a number


def test_depths_are_named_above_the_axis():
    figure = accuracy_by_field(_settings(HIDDEN), "hidden", HIDDEN, [])
    names = [label.get_text() for axis in figure.axes for top in axis.child_axes for label in top.get_xticklabels()]
    assert names == ["1 layer", "2 layers"] * 2  # once over each of the two panels
    pyplot().close(figure)
