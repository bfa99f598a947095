"""`ServedModel`: a run's best model loaded once, its description, and the runs it refuses."""

from __future__ import annotations

import numpy as np
import pytest
from serve_helpers import user_defined_run, user_png

from mlplab.errors import MlplabError
from mlplab.serve.model import ServedModel


def test_it_describes_and_reads_the_runs_best_model(trained_run, mnist_test):
    served = ServedModel(trained_run)
    assert served.info["architecture"] == "784-256-10" and served.info["run"] == trained_run.name
    answer = served.predict(user_png(mnist_test[0][0]), "seven.png")
    assert answer["label"] == 7 and answer["name"] == "7 - seven"
    assert set(answer) == {"label", "name", "top", "probabilities", "image"}
    assert [entry["probability"] for entry in answer["top"]] == sorted(answer["probabilities"], reverse=True)[:3]


def test_threads_share_the_model_and_get_what_one_thread_gets(trained_run, mnist_test):
    from concurrent.futures import ThreadPoolExecutor

    served = ServedModel(trained_run)
    images = [user_png(image) for image in mnist_test[0][:16]]
    alone = [served.predict(image, "digit") for image in images]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda image: served.predict(image, "digit"), images))
    assert [a["label"] for a in together] == [a["label"] for a in alone]
    assert np.allclose([a["probabilities"] for a in together], [a["probabilities"] for a in alone], atol=1e-12)


def _one_line(call, *fragments):
    with pytest.raises(MlplabError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_what_it_cannot_serve_is_one_line(tmp_path, trained_run):
    _one_line(lambda: ServedModel(tmp_path / "nothing"), "is not a run directory (does not exist)")
    _one_line(lambda: ServedModel(trained_run / "best.pt"), "is a file, not a run directory")
    _one_line(lambda: ServedModel(user_defined_run(tmp_path / "user")), "a run of a user-defined model",
              "mlplab train")

