"""Many clients at once against a real uvicorn on 127.0.0.1: 50 drawing clients all answered,
each with the reading of its own digit (no answer crossed to another client), within a bounded
time; heavy clients limited while normal ones are answered fast beside them; abandoned work
kept inside the worker limit."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from serve_helpers import live_server, user_png

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


# --- heavy clients beside normal ones ---------------------------------------------------------

HEAVY_CLIENTS = 24  # the finding: 24 at once, each a small PNG of many blank pixels
NORMAL_CLIENTS = 4  # each sends NORMAL_REQUESTS drawings one after another, as the page does
NORMAL_REQUESTS = 5
NORMAL_LATENCY_S = 2.0  # the most a normal request may take meanwhile, on a busy 2-core machine (alone: 0.05 s)


def _blank_png(size: tuple[int, int], mode: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, size, (255,) * len(mode)).save(buffer, "PNG")
    return buffer.getvalue()


class Watch:
    """Wraps the served model's predict: how many compute at once (all, and heavy ones), on
    which threads, and the process's memory (RSS) at its highest, sampled every 10 ms."""

    def __init__(self, predict, heavy_size: int) -> None:
        import psutil

        self.predict, self.heavy_size = predict, heavy_size
        self.lock = threading.Lock()
        self.running = self.heavy_running = self.most = self.most_heavy = self.calls = 0
        self.threads: set[int] = set()
        self.process = psutil.Process()
        self.rss_before = self.rss_most = self.process.memory_info().rss
        self.done = threading.Event()
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()

    def __call__(self, source, name):
        heavy = isinstance(source, bytes) and len(source) == self.heavy_size
        with self.lock:
            self.calls += 1
            self.running += 1
            self.heavy_running += heavy
            self.most, self.most_heavy = max(self.most, self.running), max(self.most_heavy, self.heavy_running)
            self.threads.add(threading.get_ident())
        try:
            return self.predict(source, name)
        finally:
            with self.lock:
                self.running -= 1
                self.heavy_running -= heavy

    def _sample(self) -> None:
        while not self.done.wait(0.01):
            self.rss_most = max(self.rss_most, self.process.memory_info().rss)


def test_normal_clients_are_served_fairly_while_heavy_ones_are_limited(trained_run, mnist_test):
    """24 heavy clients at once (half 4000x4000 blank PNGs, refused from their header; half
    4000x3000 RGBA ones, the heaviest accepted) and 4 normal clients drawing meanwhile: every
    normal request answered correctly within NORMAL_LATENCY_S; the heavy ones answered 413, 422
    (blank, once decoded) or 503 with Retry-After at once when their lane is full; never more
    than the 4 workers computing, nor more than 1 on heavy images."""
    from mlplab.serve import create_app

    app = create_app(trained_run)  # the defaults: 4 workers, 1 of them for heavy images, 4 may wait
    refused, accepted = _blank_png((4000, 4000), "L"), _blank_png((4000, 3000), "RGBA")
    assert len(refused) < 30_000 and len(accepted) < 60_000
    watch = app.state.served.predict = Watch(app.state.served.predict, len(accepted))
    images, labels = mnist_test
    drawings = [(user_png(images[index]), int(labels[index])) for index in range(NORMAL_CLIENTS * NORMAL_REQUESTS)]
    heavy_answers: list = [None] * HEAVY_CLIENTS
    normal_answers: list = []  # (latency in s, status, label read, label drawn)
    heavy_started = threading.Barrier(HEAVY_CLIENTS + 1)

    with live_server(app) as url:
        def heavy(index: int) -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                heavy_started.wait(timeout=30)
                body = refused if index % 2 else accepted
                heavy_answers[index] = http.post("/api/predict", content=body, headers={"Content-Type": "image/png"})

        def normal(client: int) -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                for body, label in drawings[client::NORMAL_CLIENTS]:
                    start = time.monotonic()
                    answer = http.post("/api/predict", content=body, headers={"Content-Type": "image/png"})
                    reading = answer.json().get("label") if answer.status_code == 200 else None
                    normal_answers.append((time.monotonic() - start, answer.status_code, reading, label))

        heavies = [threading.Thread(target=heavy, args=(index,), daemon=True) for index in range(HEAVY_CLIENTS)]
        normals = [threading.Thread(target=normal, args=(client,), daemon=True) for client in range(NORMAL_CLIENTS)]
        for thread in heavies:
            thread.start()
        heavy_started.wait(timeout=30)
        time.sleep(0.2)  # the heavy requests are in: the normal clients arrive behind them
        for thread in normals:
            thread.start()
        for thread in heavies + normals:
            thread.join(timeout=60)
        watch.done.set()
        pool_threads = len(app.state.pool.threads)

    latencies = sorted(latency for latency, *_ in normal_answers)
    heavy_statuses = [answer.status_code for answer in heavy_answers]
    print(f"normal: {len(latencies)} requests, latency median {latencies[len(latencies) // 2]:.3f} s, "
          f"max {latencies[-1]:.3f} s; heavy: {sorted(heavy_statuses)}; computing at once: {watch.most} "
          f"(heavy {watch.most_heavy}) on {len(watch.threads)} threads; RSS {watch.rss_before / 1e6:.0f} MB, "
          f"highest {watch.rss_most / 1e6:.0f} MB")
    assert len(normal_answers) == NORMAL_CLIENTS * NORMAL_REQUESTS
    assert all(status == 200 for _, status, _, _ in normal_answers), normal_answers
    assert latencies[-1] < NORMAL_LATENCY_S, latencies
    assert sum(read == drawn for _, _, read, drawn in normal_answers) >= len(normal_answers) - 2
    assert heavy_statuses[1::2] == [413] * (HEAVY_CLIENTS // 2)  # 16 million pixels: refused from the header
    assert set(heavy_statuses[0::2]) <= {422, 503} and 503 in heavy_statuses and 422 in heavy_statuses
    for answer in heavy_answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        if answer.status_code == 503:
            assert answer.headers["retry-after"] == "2" and "busy with large images" in answer.json()["error"]
    assert watch.most <= 4 and watch.most_heavy == 1 and len(watch.threads) <= 4 and pool_threads <= 4
    assert watch.rss_most - watch.rss_before < 1_000_000_000  # before the bound: 3.5 GB


def test_abandoned_work_never_makes_more_workers_compute(trained_run, mnist_test):
    """A prediction that outlives its request's time limit keeps its worker until it ends, so
    requests arriving meanwhile wait (and time out) instead of computing beside it; those that
    gave up while waiting never start."""
    from mlplab.serve import create_app

    app = create_app(trained_run, timeout_s=0.5, workers=2)
    slow = app.state.served.predict

    def stuck(source, name):  # each prediction takes 2 s: far past the 0.5 s limit
        time.sleep(2.0)
        return slow(source, name)

    watch = app.state.served.predict = Watch(stuck, -1)
    body = user_png(mnist_test[0][0])
    answers: list = []

    def wave(count: int) -> list[threading.Thread]:
        def client() -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                answers.append(http.post("/api/predict", content=body, headers={"Content-Type": "image/png"}))
        threads = [threading.Thread(target=client, daemon=True) for _ in range(count)]
        for thread in threads:
            thread.start()
        return threads

    with live_server(app) as url:
        first = wave(2)  # computing until 2 s; abandoned at 0.5 s
        time.sleep(0.8)
        second = wave(2)  # both workers still busy: they wait, and give up at 1.3 s
        time.sleep(1.6)
        third = wave(2)  # the workers are free again
        for thread in first + second + third:
            thread.join(timeout=30)
        time.sleep(2.2)  # the third wave's work ends
        watch.done.set()
        pool_threads = len(app.state.pool.threads)
    print(f"calls {watch.calls}, computing at once {watch.most}, threads {len(watch.threads)}")
    assert [answer.status_code for answer in answers] == [503] * 6
    assert all(answer.headers["retry-after"] == "2" for answer in answers)
    assert watch.most == 2 and len(watch.threads) == 2 and pool_threads == 2
    assert watch.calls == 4  # the first and third waves; the second gave up before a worker was free
