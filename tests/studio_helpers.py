"""Helpers shared by the tests of `mlplab studio` (tests/studio/)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

# A run quick enough for a test and long enough to steer: 784-32-10, batches of 50, 1,200 steps an epoch.
SMALL = {"hidden": [32], "epochs": 3, "batch_size": 50, "lr": 0.05, "momentum": 0.9, "scheduler": "none",
         "threads": 1}
JSON = {"Content-Type": "application/json"}


def wait_for(client: Any, condition, timeout: float = 60.0, what: str = "the studio") -> dict[str, Any]:
    """Poll ``GET /api/state`` (a test may; the page never does) until ``condition(state)``; returns the state."""
    deadline = time.monotonic() + timeout
    while True:
        state = client.get("/api/state").json()
        if condition(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not get there in {timeout:g} s: {state['status']} "
                                 f"({state['message']}), {len(state['points'])} points, {len(state['epochs'])} epochs")
        time.sleep(0.05)


def finished(state: dict[str, Any]) -> bool:
    return state["status"] in ("finished", "failed", "interrupted")


class EventLog:
    """The Server-Sent Events of ``GET /api/events`` as one browser receives them, read on a thread:
    ``events`` is a list of ``(kind, data)``; `close` hangs up, as a closed tab does."""

    def __init__(self, base_url: str) -> None:
        import httpx

        self.events: list[tuple[str, Any]] = []
        self.comments = 0
        self._client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(30, read=None))
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/api/events") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                kind = None
                for line in response.iter_lines():
                    if self._closed.is_set():
                        return
                    if line.startswith(":"):
                        self.comments += 1
                    elif line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        self.events.append((kind, json.loads(line[5:])))
        except Exception:  # the server went away or the test hung up
            pass

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def wait(self, kind: str, timeout: float = 60.0) -> Any:
        """The data of the first event of ``kind`` (waiting for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for seen, data in list(self.events):
                if seen == kind:
                    return data
            time.sleep(0.02)
        raise AssertionError(f"no {kind} event in {timeout:g} s; got {self.kinds()[:20]}")

    def wait_until(self, condition, timeout: float = 60.0) -> None:
        """Wait until ``condition(events)`` holds for the events received so far."""
        deadline = time.monotonic() + timeout
        while not condition(list(self.events)):
            if time.monotonic() > deadline:
                raise AssertionError(f"the events never got there in {timeout:g} s; got {self.kinds()[:20]}")
            time.sleep(0.02)

    def close(self) -> None:
        self._closed.set()
        self._client.close()
