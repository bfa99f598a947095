"""The studio's API, against a real uvicorn: a run started, watched through Server-Sent Events, paused,
retuned, stopped; every control's refusals as JSON 4xx; the token; looking inside the model."""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest
from serve_helpers import blank_png, live_server, user_png
from studio_helpers import JSON, SMALL, EventLog, finished, wait_for

import mlplab


def start(client, **fields):
    response = client.post("/api/runs", json={**SMALL, **fields})
    assert response.status_code == 202, response.text
    return response.json()["run"]


def test_the_options_are_the_presets_and_choices_of_mlplab_train(client):
    options = client.get("/api/options").json()
    assert set(options["presets"]) == set(mlplab.config.PRESETS)
    assert options["presets"]["fast"]["hidden"] == [384]
    assert options["choices"]["optimizer"] == list(mlplab.choices.OPTIMIZERS)
    assert options["defaults"]["dataset"] == "mnist" and options["token_required"] is False
    assert client.get("/api/state").json() == {"status": "idle", "message": None, "run": None, "points": [],
                                               "epochs": [], "changes": [], "latest": None, "metrics": None}


def test_a_run_started_from_the_page_is_pushed_to_watchers_and_is_an_ordinary_run(studio_server, client):
    url, _ = studio_server
    watcher = EventLog(url)
    hello = watcher.wait("hello")
    assert hello["status"] == "idle"
    run = start(client)
    assert run["architecture"] == "784-32-10" and run["momentum_steerable"] is True
    done = watcher.wait("done")
    state = wait_for(client, finished)
    assert state["status"] == "finished", state["message"]
    assert done["test_accuracy"] > 0.9 and done["tested_epoch"] in (1, 2, 3)
    kinds = watcher.kinds()
    assert kinds[0] == "hello" and kinds.count("epoch") == 3 and kinds.count("point") >= 10
    points = [data for kind, data in watcher.events if kind == "point"]
    steps = [point["step"] for point in points]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 3 * 1000  # every few dozen steps, to the end
    assert all(point["lr"] == 0.05 and point["momentum"] == 0.9 for point in points)
    assert points[-1]["probe_accuracy"] > 0.85 > points[0]["probe_accuracy"]  # it learned, as watched
    assert all(point["images_per_second"] > 0 for point in points[1:] if point["train_loss"] is not None)
    snapshot = [data for kind, data in watcher.events if kind == "snapshot"][-1]
    pixels = np.frombuffer(base64.b64decode(snapshot["weights"]["data"]), np.uint8)
    assert snapshot["weights"]["units"] == 32 and pixels.size == 32 * 784 and pixels.min() >= 1
    assert sum(map(sum, snapshot["confusion"])) == snapshot["probe_size"] == 1000
    assert snapshot["pairs"] and snapshot["pairs"][0]["count"] >= snapshot["pairs"][-1]["count"]
    # A browser that comes late is given the whole picture at once.
    late = EventLog(url)
    assert late.wait("hello")["points"] == state["points"] and len(state["epochs"]) == 3
    watcher.close(), late.close()
    # The run directory is an ordinary one: the library opens it, its config is what the page asked for.
    opened = mlplab.open_run(state["run"]["dir"])
    assert opened.config.model.hidden == (32,) and opened.config.train.batch_size == 50
    assert opened.metrics["test_accuracy"] == done["test_accuracy"] and len(opened.history) == 3


def test_pause_holds_a_run_and_settings_change_it_from_the_next_step(studio_server, client):
    url, _ = studio_server
    start(client, epochs=2)
    assert client.post("/api/pause", json={}).json()["status"] in ("preparing", "paused")
    state = wait_for(client, lambda s: s["status"] == "paused" and s["points"])  # the untrained model's point first
    held = len(state["points"])
    time.sleep(0.6)
    assert len(client.get("/api/state").json()["points"]) == held  # not one step while paused
    assert client.post("/api/settings", json={"lr": 0.02, "momentum": 0.5}).json() == {
        "pending": {"lr": 0.02, "momentum": 0.5}}
    watcher = EventLog(url)
    assert watcher.wait("hello")["status"] == "paused"
    assert client.post("/api/resume", json={}).json() == {"status": "training"}
    change = watcher.wait("change")
    assert change["step"] == state["points"][-1]["step"] and change["lr"] == 0.02
    assert client.post("/api/stop", json={}).json() == {"status": "stopping"}
    state = wait_for(client, finished)
    assert state["status"] == "finished" and state["message"] == "stopped from the studio"
    assert [c.get("lr", c.get("momentum")) for c in state["changes"]] == [0.02, 0.5]
    history = mlplab.open_run(state["run"]["dir"]).history
    assert history.changes == state["changes"] and history.stopped["reason"] == "stopped from the studio"
    assert len(history.epochs) == 1 < 2  # stopped after the epoch in progress, then tested
    assert state["metrics"]["stopped"] == "stopped from the studio"
    watcher.close()


def test_one_run_at_a_time(client):
    start(client, epochs=2)
    client.post("/api/pause", json={})
    second = client.post("/api/runs", json=SMALL)
    assert second.status_code == 409 and "a run is already" in second.json()["error"]
    client.post("/api/stop", json={})
    wait_for(client, finished)
    start(client, epochs=1)  # once it is over, the next may start
    assert wait_for(client, finished)["status"] == "finished"


@pytest.mark.parametrize("fields, message", [
    ({"hidden": "abc"}, "hidden"),
    ({"lr": -1}, "lr"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 1.5}, "batch_size"),
    ({"optimizer": "lbfgs"}, "optimizer"),
    ({"preset": "nope"}, "preset"),
    ({"colour": "red"}, "unknown field colour"),
])
def test_bad_settings_of_a_run_are_refused_with_one_line(client, fields, message):
    response = client.post("/api/runs", json={**SMALL, **fields})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert message in error and "\n" not in error
    assert client.get("/api/state").json()["status"] == "idle"  # nothing started


def test_control_requests_must_be_json(client):
    as_form = client.post("/api/pause", content=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert as_form.status_code == 415 and "application/json" in as_form.json()["error"]
    assert client.post("/api/pause").status_code == 415  # no body, no type: what a form on another site sends
    broken = client.post("/api/runs", content=b"{hidden:", headers=JSON)
    assert broken.status_code == 400 and broken.json()["error"] == "the body is not valid JSON"
    listed = client.post("/api/runs", json=[1, 2])
    assert listed.status_code == 422 and "JSON object" in listed.json()["error"]


def test_controls_with_nothing_to_control_are_409(client):
    for route in ("/api/pause", "/api/resume", "/api/stop"):
        response = client.post(route, json={})
        assert response.status_code == 409 and "the studio is idle" in response.json()["error"], route
    response = client.post("/api/settings", json={"lr": 0.1})
    assert response.status_code == 409
    response = client.post("/api/inspect", content=user_png(np.zeros((28, 28), np.uint8)),
                           headers={"Content-Type": "image/png"})
    assert response.status_code == 409 and response.json()["error"] == "no model yet: start a run first"
    assert client.get("/api/test-image").status_code == 409


def test_bad_settings_while_training_are_422(client):
    start(client, epochs=2)
    client.post("/api/pause", json={})
    for body, message in [({"lr": 0}, "lr must be a number > 0"), ({"momentum": 1}, "momentum must be a number in"),
                          ({"lr": "fast"}, "lr must be a number > 0"), ({"weight_decay": 1}, "unknown setting"),
                          ({}, 'send {"lr": 0.05}')]:
        response = client.post("/api/settings", json=body)
        assert response.status_code == 422 and message in response.json()["error"], body
    client.post("/api/stop", json={})
    wait_for(client, finished)
    start(client, epochs=2, optimizer="adam", lr=0.001)
    client.post("/api/pause", json={})
    response = client.post("/api/settings", json={"momentum": 0.5})
    assert response.status_code == 422 and "adam has no momentum" in response.json()["error"]
    assert client.post("/api/settings", json={"lr": 0.002}).status_code == 200
    client.post("/api/stop", json={})
    wait_for(client, finished)


def test_the_model_being_trained_reads_a_drawing_layer_by_layer(client, mnist_dir):
    test = mlplab.MNIST(mnist_dir, train=False)
    start(client, epochs=1)
    wait_for(client, finished)
    right = 0
    for index in range(5):
        answer = client.post("/api/inspect", content=user_png(test.data[index].numpy()),
                             headers={"Content-Type": "image/png"})
        assert answer.status_code == 200, answer.text
        reading = answer.json()
        right += reading["label"] == int(test.targets[index])
        assert [layer["width"] for layer in reading["layers"]] == [32, 10]
        assert [layer["name"] for layer in reading["layers"]] == ["hidden 1", "output"]
        assert min(reading["layers"][0]["values"]) >= 0  # ReLU activations
        assert abs(sum(reading["probabilities"]) - 1) < 1e-9 and len(reading["image"]) == 784
        assert reading["step"] == 1000
    assert right >= 4
    blank = client.post("/api/inspect", content=blank_png(), headers={"Content-Type": "image/png"})
    assert blank.status_code == 422


def test_test_images_are_read_by_index_or_at_random(client, mnist_dir):
    start(client, epochs=1)
    wait_for(client, finished)
    first = client.get("/api/test-image", params={"index": 0}).json()
    assert first["index"] == 0 and first["true_label"] == 7 and first["true_name"] == "7 - seven"
    test = mlplab.MNIST(mnist_dir, train=False)
    assert first["image"] == test.data[0].numpy().ravel().tolist()  # the test image itself, as pixels
    assert 0 <= client.get("/api/test-image").json()["index"] < 10_000
    for index in ("-1", "10000", "seven"):
        response = client.get("/api/test-image", params={"index": index})
        assert response.status_code == 422 and "index must be" in response.json()["error"], index


def test_with_a_token_anyone_watches_and_only_its_holder_steers(tmp_path):
    httpx = pytest.importorskip("httpx")
    from mlplab.studio import create_studio_app

    app = create_studio_app(tmp_path / "runs", token="classroom-secret")
    with live_server(app, on_stop=app.state.studio.close_streams) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/api/options").json()["token_required"] is True
        refused = client.post("/api/runs", json=SMALL)
        assert refused.status_code == 401 and "token" in refused.json()["error"]
        wrong = client.post("/api/runs", json=SMALL, headers={"X-Mlplab-Token": "guess"})
        assert wrong.status_code == 403
        assert client.get("/api/state").json()["status"] == "idle"
        holder = {"X-Mlplab-Token": "classroom-secret"}
        assert client.post("/api/runs", json={**SMALL, "epochs": 1}, headers=holder).status_code == 202
        for route in ("/api/pause", "/api/stop"):
            assert client.post(route, json={}).status_code == 401, route
        assert client.post("/api/settings", json={"lr": 0.01}).status_code == 401
        state = wait_for(client, finished)  # watching needs no token
        assert state["status"] == "finished" and not state["changes"]
        drawn = client.post("/api/inspect", content=user_png(np.eye(28, dtype=np.uint8) * 255),
                            headers={"Content-Type": "image/png"})
        assert drawn.status_code == 200  # nor does drawing
    with pytest.raises(mlplab.MlplabError, match="at least 8"):
        create_studio_app(tmp_path / "runs", token="short")


def test_requests_naming_another_host_are_refused(client):
    response = client.get("/api/state", headers={"Host": "evil.example"})
    assert response.status_code == 400 and "mlplab studio with --allow-host" in response.json()["error"]


def test_a_closed_browser_never_stops_the_run_and_the_server_answers_while_it_trains(studio_server, client):
    url, app = studio_server
    watcher = EventLog(url)
    start(client, epochs=2)
    watcher.wait("point")
    watcher.close()  # the tab is closed mid-run
    slowest = 0.0
    while client.get("/api/state").json()["status"] in ("preparing", "training"):
        started = time.perf_counter()
        assert client.get("/health").status_code == 200
        slowest = max(slowest, time.perf_counter() - started)
        time.sleep(0.05)
    state = wait_for(client, finished)
    assert state["status"] == "finished" and len(state["epochs"]) == 2
    assert slowest < 1.0, f"/health took {slowest:.2f} s while training"
    assert app.state.studio.hub.watchers == 0  # the closed tab was let go


def test_a_server_that_stops_aborts_its_run_and_leaves_it_resumable(tmp_path):
    httpx = pytest.importorskip("httpx")
    from mlplab.studio import create_studio_app

    app = create_studio_app(tmp_path / "runs")
    with live_server(app, on_stop=app.state.studio.close_streams) as url, httpx.Client(base_url=url, timeout=30) as client:
        start(client, epochs=3)
        wait_for(client, lambda state: len(state["epochs"]) >= 1)
        client.post("/api/pause", json={})
        run_dir = wait_for(client, lambda state: state["status"] == "paused")["run"]["dir"]
    studio = app.state.studio
    assert studio.status == "interrupted" and f"mlplab train --resume {run_dir}" in studio.message
    assert not studio.thread.is_alive()
    history = mlplab.open_run(run_dir).history
    assert 1 <= len(history) < 3 and history.metrics is None  # saved epochs only, unfinished
    config = mlplab.open_run(run_dir).config
    resumed = mlplab.train(config, resume=True)
    assert len(resumed) == 3 and resumed.metrics["test_accuracy"] > 0.9


def test_the_page_loads_nothing_from_elsewhere(client):
    import re

    page = client.get("/")
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE)  # no CDN, no font
    assert re.findall(r' src="[^"]*"', html) == [' src="/static/pad.js"']  # mlplab serve's drawing pad
    assert client.get("/static/pad.js").status_code == 200
    assert "EventSource" in html and "/api/events" in html


def test_a_run_that_cannot_start_says_why_on_the_page(studio_server, client, monkeypatch):
    import mlplab.training.runner as runner

    def no_data(config, loss_fn=None):
        raise mlplab.MlplabError("could not download fashion-mnist: no network; set MLPLAB_DATA_DIR to a copy")

    monkeypatch.setattr(runner, "prepare", no_data)
    watcher = EventLog(studio_server[0])
    watcher.wait("hello")  # connected: every event from here on reaches it
    start(client, dataset="fashion-mnist")
    state = wait_for(client, finished)
    assert state["status"] == "failed" and state["message"].startswith("could not download fashion-mnist")
    watcher.wait_until(lambda events: any(kind == "state" and data["status"] == "failed" for kind, data in events))
    assert [data["status"] for kind, data in watcher.events if kind == "state"] == ["preparing", "failed"]
    watcher.close()
    monkeypatch.undo()
    start(client, epochs=1)  # the studio is free for the next run
    assert wait_for(client, finished)["status"] == "finished"
