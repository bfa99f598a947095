"""A studio killed mid-run (SIGKILL: no chance to clean up) leaves a run directory that
``mlplab train --resume`` finishes exactly as the run would have finished uninterrupted, the
learning-rate change made from the page included (replayed from the run's own history)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from helpers import mlplab_process
from serve_helpers import SRC
from studio_helpers import SMALL, wait_for

import mlplab
from mlplab.training.steering import Steering


def test_a_killed_studio_leaves_a_run_that_resumes_bit_for_bit(tmp_path):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    server = subprocess.Popen([sys.executable, "-m", "mlplab", "studio", "--port", "0", "--runs", str(tmp_path / "runs")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": SRC})
    try:
        line = server.stdout.readline()
        assert line.startswith("mlplab studio: http://127.0.0.1:"), line + server.stderr.read()
        with httpx.Client(base_url=line.split()[2].rstrip("/"), timeout=30) as client:
            assert client.post("/api/runs", json={**SMALL, "epochs": 4}).status_code == 202
            wait_for(client, lambda state: len(state["points"]) >= 2)
            assert client.post("/api/settings", json={"lr": 0.02}).status_code == 200
            wait_for(client, lambda state: len(state["epochs"]) >= 2)
            client.post("/api/pause", json={})
            state = wait_for(client, lambda state: state["status"] in ("paused", "finished"))
            assert state["status"] == "paused" and len(state["epochs"]) < 4
            changes = state["changes"]
        server.kill()  # SIGKILL, mid-epoch: no handler runs
        server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate(timeout=30)
    run_dir = state["run"]["dir"]
    assert len(changes) == 1 and changes[0]["lr"] == 0.02 and changes[0]["epoch"] == 1
    assert mlplab.open_run(run_dir).history.metrics is None  # killed before it finished

    resumed = mlplab_process("train", "--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    finished = mlplab.open_run(run_dir)
    assert len(finished.history) == 4 and finished.history.changes == changes

    # The same config trained without interruption, the page's change replayed at its step.
    config = mlplab.config.apply_overrides(finished.config, {"out": str(tmp_path / "whole")})
    whole = mlplab.train(config, callbacks=[Steering(replay=changes)])
    assert [dict(r, seconds=0) for r in whole.epochs] == [dict(r, seconds=0) for r in finished.history.epochs]
    assert whole.metrics["tested_epoch"] == finished.metrics["tested_epoch"]  # the best epoch's weights, both
    assert whole.metrics["test_accuracy"] == finished.metrics["test_accuracy"]
    theirs = mlplab.load_checkpoint(tmp_path / "whole" / "last.pt")["model"]
    ours = mlplab.load_checkpoint(os.path.join(run_dir, "last.pt"))["model"]
    assert all(torch.equal(theirs[name], ours[name]) for name in theirs)
