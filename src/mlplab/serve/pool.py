"""`WorkPool`: the threads that decode and classify, a fixed number of them, in two lanes.

Why not ``anyio.to_thread`` or a plain ThreadPoolExecutor:

- A request that times out must not free its thread before the work stops: Python cannot
  stop a thread, so abandoned work runs to its end, and a limit released at the timeout
  lets new work start beside it (the finding: 21 threads computing under a limit of 4).
  Here a thread is the limit: ``workers`` threads exist, so at most ``workers`` jobs compute,
  abandoned or not. Work still waiting when its request gives up is dropped unstarted.
- A few costly requests (a large image takes 0.3 s where a drawing takes 0.02 s) must not
  make everyone wait behind them. Jobs come in two lanes: light ones are always taken first,
  and heavy ones run at most ``heavy_workers`` at a time, so ``workers - heavy_workers``
  threads are always left to light work.
- Waiting is bounded: each lane holds at most its ``queue`` jobs; beyond that `submit`
  raises `PoolFull` at once (the server answers 503 with Retry-After), rather than letting
  a crowd of requests hold memory while they wait to time out.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class PoolFull(Exception):
    """A lane's queue is full: ``heavy`` says which lane, ``waiting`` how many jobs wait in it."""

    def __init__(self, heavy: bool, waiting: int) -> None:
        super().__init__(f"{'heavy' if heavy else 'light'} lane full: {waiting} waiting")
        self.heavy, self.waiting = heavy, waiting


@dataclass
class _Lane:
    """One lane: the jobs waiting (``(future, function, args)``), how many may wait and run."""

    queue_size: int
    running_limit: int
    waiting: deque = field(default_factory=deque)
    running: int = 0

    def ready(self) -> bool:
        return bool(self.waiting) and self.running < self.running_limit


class WorkPool:
    """``workers`` threads running submitted jobs, light ones first, heavy ones at most
    ``heavy_workers`` at a time; at most ``queue`` light and ``heavy_queue`` heavy jobs wait.

    Threads start at the first `submit` and end at `close` (the server's shutdown); a pool
    closed and used again starts new ones (the old ones end with the job they were running, if
    any). Example::

        pool = WorkPool(workers=4, heavy_workers=1, queue=32, heavy_queue=4)
        future = pool.submit(model.predict, image, "seven.png", heavy=False)   # or PoolFull
        answer = await asyncio.wrap_future(future)   # cancelling it drops the job if unstarted
    """

    def __init__(
        self, workers: int, heavy_workers: int, queue: int, heavy_queue: int, *, name: str = "mlplab-serve-worker"
    ) -> None:
        self.workers, self.name = workers, name
        self._lanes = {False: _Lane(queue, workers), True: _Lane(heavy_queue, heavy_workers)}
        self._condition = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._generation = 0  # bumped by close: threads of an older generation end

    @property
    def threads(self) -> list[threading.Thread]:
        """The pool's threads now alive (never more than ``workers``)."""
        return [thread for thread in self._threads if thread.is_alive()]

    def submit(self, function: Callable[..., Any], *args: Any, heavy: bool = False) -> Future:
        """A future of ``function(*args)``, run on one of the pool's threads when its lane's turn
        comes. Raises `PoolFull` when the lane already holds its ``queue`` waiting jobs.
        Cancelling the future before the job starts drops it and frees its place."""
        future: Future = Future()
        with self._condition:
            lane = self._lanes[heavy]
            if len(lane.waiting) >= lane.queue_size:
                raise PoolFull(heavy, len(lane.waiting))
            self._start_threads()
            lane.waiting.append((future, function, args))
            self._condition.notify()
        future.add_done_callback(lambda done: self._forget(done, heavy))
        return future

    def close(self) -> None:
        """Let the threads end once their current job is done; jobs still waiting are cancelled."""
        with self._condition:
            self._generation += 1
            waiting = [job for lane in self._lanes.values() for job in lane.waiting]
            for lane in self._lanes.values():
                lane.waiting.clear()
            self._threads = []
            self._condition.notify_all()
        for future, _, _ in waiting:
            future.cancel()

    def _start_threads(self) -> None:
        """Start the ``workers`` threads if none run (first use, or use after `close`); under the lock."""
        if self._threads:
            return
        self._threads = [
            threading.Thread(target=self._work, args=(self._generation,), name=f"{self.name}-{index}", daemon=True)
            for index in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def _forget(self, future: Future, heavy: bool) -> None:
        """A job cancelled while it waited leaves its lane at once, so its place is free again."""
        if future.cancelled():
            with self._condition:
                waiting = self._lanes[heavy].waiting
                for job in list(waiting):
                    if job[0] is future:
                        waiting.remove(job)

    def _work(self, generation: int) -> None:
        """One thread: take the next job (light lane first), run it, repeat until `close`."""
        while True:
            with self._condition:
                while generation == self._generation and not any(lane.ready() for lane in self._lanes.values()):
                    self._condition.wait()
                if generation != self._generation:
                    return
                lane = self._lanes[False] if self._lanes[False].ready() else self._lanes[True]
                future, function, args = lane.waiting.popleft()
                lane.running += 1
            try:
                if future.set_running_or_notify_cancel():  # False: cancelled while it waited
                    _run(future, function, args)
            finally:
                with self._condition:
                    lane.running -= 1
                    self._condition.notify_all()  # a heavy job may be able to start now


def _run(future: Future, function: Callable[..., Any], args: tuple) -> None:
    """``function(*args)`` into ``future``: its result, or the exception it raised."""
    try:
        result = function(*args)
    except BaseException as error:  # noqa: BLE001 - handed to the request that waits for it
        future.set_exception(error)
    else:
        future.set_result(result)
