"""50 clients at once against a real uvicorn on 127.0.0.1: every one answered, each with the
reading of its own digit (no answer crossed to another client), within a bounded time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from serve_helpers import user_png

pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')
httpx = pytest.importorskip("httpx", reason='httpx is not installed: pip install -e ".[dev]"')

CLIENTS = 50
TIME_LIMIT_S = 60  # the whole burst, on a busy 2-core machine; it takes about 2 s alone


def test_fifty_concurrent_clients_are_all_answered_correctly(app, server, mnist_test):
    images, labels = mnist_test
    bodies = [user_png(images[index]) for index in range(CLIENTS)]
    expected = [app.state.served.predict(body, "digit") for body in bodies]  # one at a time, in this thread
    answers: list = [None] * CLIENTS
    start_together = threading.Barrier(CLIENTS + 1)

    def client(index: int) -> None:
        with httpx.Client(base_url=server, timeout=TIME_LIMIT_S) as http:  # a connection of its own
            start_together.wait(timeout=30)
            try:
                answers[index] = http.post("/api/predict", content=bodies[index], headers={"Content-Type": "image/png"})
            except httpx.HTTPError as error:
                answers[index] = error

    threads = [threading.Thread(target=client, args=(index,), daemon=True) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    start_together.wait(timeout=30)
    started = time.monotonic()
    with httpx.Client(base_url=server, timeout=10) as probe:
        health = probe.get("/health")  # the event loop answers in the middle of the burst
    for thread in threads:
        thread.join(timeout=max(0.0, TIME_LIMIT_S - (time.monotonic() - started)))
    elapsed = time.monotonic() - started
    print(f"{CLIENTS} concurrent predictions answered in {elapsed:.2f} s")

    assert health.json() == {"status": "ok"}
    assert not any(thread.is_alive() for thread in threads), f"not all answered within {TIME_LIMIT_S} s"
    failed = [(index, answer) for index, answer in enumerate(answers)
              if not isinstance(answer, httpx.Response) or answer.status_code != 200]
    assert not failed, failed[:3]
    for index, (answer, alone) in enumerate(zip(answers, expected)):
        reading = answer.json()
        assert reading["label"] == alone["label"] and reading["image"] == alone["image"], index
        assert np.allclose(reading["probabilities"], alone["probabilities"], atol=1e-12), index
    right = sum(answer.json()["label"] == int(labels[index]) for index, answer in enumerate(answers))
    assert right >= CLIENTS - 3, f"only {right}/{CLIENTS} read correctly"
