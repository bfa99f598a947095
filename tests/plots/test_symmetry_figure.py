"""The symmetry experiment's network figure: every weight and bias written where no other label covers it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mlplab.plots import symmetry
from mlplab.plots.backend import pyplot

pytest.importorskip("matplotlib")

# The 1986 paper's Figure 1 (Rumelhart, Hinton & Williams), as `mlplab.experiments.symmetry.PAPER` holds it.
PAPER = {"W1": [[14.2, 7.2, 3.6, -3.6, -7.2, -14.2], [-14.2, -7.2, -3.6, 3.6, 7.2, 14.2]],
         "b1": [-1.1, -1.1], "W2": [-8.8, -8.8], "b2": 6.4}
WIDEST = {"W1": np.full((2, 6), -8888.8), "b1": [-88.8, -88.8], "W2": [-88.8, -88.8], "b2": -88.8}  # "-8889": 5 glyphs


def _random(seed):
    generator = np.random.default_rng(seed)
    return {"W1": generator.normal(0, 12, (2, 6)), "b1": generator.normal(0, 3, 2), "W2": generator.normal(0, 12, 2),
            "b2": generator.normal(0, 3)}


def _overlapping_labels(figure, margin=0.0):
    """Pairs of texts within one panel whose drawn boxes (a weight's white box, else the text itself),
    each grown by ``margin`` pixels on every side, overlap; measured after a draw."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    pairs = []
    for axis in figure.axes:
        boxes = [((text.get_bbox_patch() or text).get_window_extent(renderer).padded(margin),
                  text.get_text()) for text in axis.texts]
        assert len(boxes) == 12 + 2 + 6 + 2 + 1  # weights into the hidden units and the output, then the units
        pairs += [(a, b) for (box_a, a), (box_b, b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]
    return pairs


@pytest.mark.parametrize("weights", [PAPER, WIDEST, _random(0), _random(1)], ids=["paper", "widest", "random0", "random1"])
def test_no_two_labels_overlap(weights):
    figure = symmetry.networks([("The paper's Figure 1", PAPER), ("another", weights)])
    assert _overlapping_labels(figure) == []
    # Apart by more than touching: at least 6 px (4 pt at 100 dpi) between any two, so each reads on its own.
    assert _overlapping_labels(figure, margin=3) == []
    pyplot().close(figure)


def test_the_check_sees_the_crowding_of_labels_all_at_one_height(monkeypatch):
    """The old layout wrote every input weight 0.38 of the way up its line: twelve labels in one row,
    a few pixels apart with the paper's weights and overlapping with wide ones."""
    monkeypatch.setattr(symmetry, "INPUT_LABEL_ROWS", (0.38, 0.38))
    figure = symmetry.networks([("The paper's Figure 1", PAPER), ("another", WIDEST)])
    crowded = _overlapping_labels(figure, margin=3)
    assert len(crowded) >= 5
    assert _overlapping_labels(figure)  # the wide labels overlap outright
    pyplot().close(figure)


def test_every_weight_is_written_on_its_line():
    figure = symmetry.networks([("The paper's Figure 1", PAPER)])
    texts = [text.get_text() for text in figure.axes[0].texts]
    weights = [f"{value:.1f}" for value in np.ravel(PAPER["W1"])] + [f"{value:.1f}" for value in PAPER["W2"]]
    assert sorted(texts[:14]) == sorted(weights)
    assert texts[14:] == [f"in {i}" for i in range(1, 7)] + ["-1.1", "-1.1", "+6.4"]
    pyplot().close(figure)
