"""`mlplab.serve.pool.WorkPool`: never more jobs computing than threads, abandoned jobs dropped
unstarted, light jobs served while heavy ones hold their lane, and waiting bounded."""

from __future__ import annotations

import threading
import time

import pytest

from mlplab.serve.pool import PoolFull, WorkPool


class Jobs:
    """Jobs that block until released, recording how many ran at once and on which threads."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.threads: set[int] = set()
        self.running = self.most = 0

    def job(self, label: str) -> str:
        with self.lock:
            self.started.append(label)
            self.threads.add(threading.get_ident())
            self.running += 1
            self.most = max(self.most, self.running)
        self.release.wait(10)
        with self.lock:
            self.running -= 1
        return label

    def quick(self, label: str) -> str:
        with self.lock:
            self.started.append(label)
        return label


@pytest.fixture
def pool():
    pool = WorkPool(workers=2, heavy_workers=1, queue=4, heavy_queue=2, name="test-pool")
    yield pool
    pool.close()


def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_no_more_jobs_compute_than_threads_and_abandoned_ones_never_start(pool):
    jobs = Jobs()
    running = [pool.submit(jobs.job, f"run {index}") for index in range(2)]
    _until(lambda: jobs.running == 2)
    waiting = [pool.submit(jobs.job, f"wait {index}") for index in range(3)]
    time.sleep(0.1)
    assert jobs.started == ["run 0", "run 1"] and len(pool.threads) == 2
    assert all(future.cancel() for future in waiting)  # their requests gave up while they waited
    assert not any(future.cancel() for future in running)  # a running job cannot be stopped: it holds its thread
    later = pool.submit(jobs.job, "later")
    time.sleep(0.1)
    assert jobs.started == ["run 0", "run 1"]  # no third job beside the two abandoned ones
    jobs.release.set()
    assert later.result(timeout=5) == "later" and [future.result(timeout=5) for future in running] == ["run 0", "run 1"]
    assert jobs.most == 2 and len(jobs.threads) == 2 and jobs.started == ["run 0", "run 1", "later"]


def test_light_jobs_pass_heavy_ones_and_heavy_ones_run_one_at_a_time(pool):
    jobs = Jobs()
    heavy = [pool.submit(jobs.job, "heavy 0", heavy=True)]
    _until(lambda: jobs.running == 1)
    heavy += [pool.submit(jobs.job, f"heavy {index}", heavy=True) for index in (1, 2)]
    light = [pool.submit(jobs.quick, f"light {index}") for index in range(4)]
    assert [future.result(timeout=5) for future in light] == [f"light {index}" for index in range(4)]
    assert jobs.started[0] == "heavy 0" and "heavy 1" not in jobs.started  # the second heavy job still waits
    jobs.release.set()
    assert [future.result(timeout=5) for future in heavy] == ["heavy 0", "heavy 1", "heavy 2"]
    assert jobs.most == 1


def test_a_full_lane_is_refused_at_once_and_a_cancelled_job_frees_its_place(pool):
    jobs = Jobs()
    pool.submit(jobs.job, "heavy running", heavy=True)
    _until(lambda: jobs.running == 1)
    waiting = [pool.submit(jobs.job, f"heavy {index}", heavy=True) for index in range(2)]
    with pytest.raises(PoolFull) as caught:
        pool.submit(jobs.job, "one too many", heavy=True)
    assert caught.value.heavy and caught.value.waiting == 2
    assert pool.submit(jobs.quick, "light").result(timeout=5) == "light"  # the light lane is another queue
    waiting[0].cancel()
    pool.submit(jobs.job, "in its place", heavy=True)
    jobs.release.set()


def test_an_exception_reaches_the_caller_and_the_thread_goes_on(pool):
    def broken() -> None:
        raise ValueError("bad image")

    with pytest.raises(ValueError, match="bad image"):
        pool.submit(broken).result(timeout=5)
    assert pool.submit(len, "abc").result(timeout=5) == 3 and len(pool.threads) == 2


def test_close_cancels_waiting_jobs_and_ends_the_threads(pool):
    jobs = Jobs()
    running = [pool.submit(jobs.job, f"running {index}") for index in range(2)]
    _until(lambda: jobs.running == 2)
    waiting = [pool.submit(jobs.job, f"wait {index}") for index in range(2)]
    threads = pool.threads
    pool.close()
    assert all(future.cancelled() for future in waiting)
    jobs.release.set()
    assert [future.result(timeout=5) for future in running] == ["running 0", "running 1"]
    for thread in threads:
        thread.join(timeout=5)
        assert not thread.is_alive()
    assert pool.submit(len, "ab").result(timeout=5) == 2  # used again: new threads
