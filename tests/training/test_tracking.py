"""Trackers: TensorBoard and wandb logs read back with the tools' own formats match the run's files."""

import json
import struct
import sys
from pathlib import Path

import pytest

from mlplab.errors import MlplabError
from mlplab.training import Callback, train

SMALL = dict(epochs=2, hidden=(8,), batch_size=256, scheduler="none")  # ~1 s on a CPU; resumable to more epochs


def _history(run_dir):
    return json.loads((run_dir / "history.json").read_text())["epochs"]


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def _tensorboard_events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # size_guidance 0 keeps every event; the default samples scalars and histograms down.
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events


def _scalars(events, tag):
    """``{step: value}`` of one scalar tag."""
    return {event.step: event.value for event in events.Scalars(tag)}


class FailAtEpoch(Callback):
    """A callback that makes training fail when ``epoch`` starts, after the earlier epochs are logged."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_start(self, state, epoch):
        if epoch == self.epoch:
            raise RuntimeError("training failed")


def test_tensorboard_logs_match_history_and_metrics(make_config):
    run_dir = train(make_config(tensorboard=True, **SMALL)).run_dir
    events = _tensorboard_events(run_dir)
    history, metrics = _history(run_dir), _metrics(run_dir)
    for tag, key in [("loss/train", "train_loss"), ("accuracy/train", "train_accuracy"),
                     ("loss/val", "val_loss"), ("accuracy/val", "val_accuracy"), ("lr", "lr")]:
        expected = {record["epoch"]: record[key] for record in history}
        # Event files store float32: equal to the history's float64 within rel 1e-6.
        assert _scalars(events, tag) == pytest.approx(expected, rel=1e-6), tag
    assert _scalars(events, "test/accuracy") == pytest.approx({2: metrics["test_accuracy"]}, rel=1e-6)
    assert _scalars(events, "test/loss") == pytest.approx({2: metrics["test_loss"]}, rel=1e-6)
    per_class = {tag for tag in events.Tags()["scalars"] if tag.startswith("test_per_class/")}
    assert per_class == {f"test_per_class/{name}" for name in metrics["per_class_accuracy"]}
    assert _scalars(events, "test_per_class/3 - three") == pytest.approx(
        {2: metrics["per_class_accuracy"]["3 - three"]}, rel=1e-6)
    # hidden=(8,): two Linear layers, each with a weight and a bias histogram per epoch.
    histograms = {f"weights/layers.{i}.{name}" for i in (0, 1) for name in ("weight", "bias")}
    assert set(events.Tags()["histograms"]) == histograms
    for tag in histograms:
        assert [event.step for event in events.Histograms(tag)] == [1, 2], tag
    assert events.Histograms("weights/layers.0.weight")[0].histogram_value.num == 8 * 784


def test_tensorboard_skips_val_without_a_split(make_config):
    run_dir = train(make_config(tensorboard=True, val_split="none", **SMALL)).run_dir
    tags = set(_tensorboard_events(run_dir).Tags()["scalars"])
    assert {"loss/train", "accuracy/train", "lr"} <= tags
    assert not tags & {"loss/val", "accuracy/val"}


def test_tensorboard_writer_is_closed_when_training_fails(make_config, monkeypatch):
    from torch.utils.tensorboard import SummaryWriter

    closed = []
    close = SummaryWriter.close

    def counting_close(writer):
        closed.append(writer.log_dir)
        close(writer)

    monkeypatch.setattr(SummaryWriter, "close", counting_close)
    config = make_config(tensorboard=True, **SMALL)
    with pytest.raises(RuntimeError, match="training failed"):
        train(config, callbacks=[FailAtEpoch(2)])
    run_dir = Path(config.train.out)
    assert closed == [str(run_dir / "tensorboard")]
    events = _tensorboard_events(run_dir)
    assert _scalars(events, "loss/train") == pytest.approx({1: _history(run_dir)[0]["train_loss"]}, rel=1e-6)
    assert "test/accuracy" not in events.Tags()["scalars"]


def test_tensorboard_turned_on_when_resuming_logs_the_new_epochs(make_config):
    train(make_config(**{**SMALL, "epochs": 1}))
    run_dir = train(make_config(tensorboard=True, **SMALL), resume=True).run_dir
    events = _tensorboard_events(run_dir)
    assert set(_scalars(events, "loss/train")) == {2}  # global step = epoch, so epoch 1 is not re-logged
    assert _scalars(events, "loss/train")[2] == pytest.approx(_history(run_dir)[1]["train_loss"], rel=1e-6)
    assert set(_scalars(events, "test/accuracy")) == {2}


@pytest.mark.parametrize("flag, modules", [
    ("tensorboard", ("tensorboard", "torch.utils.tensorboard")),
    ("wandb", ("wandb",)),
])
def test_missing_extra_is_a_one_line_error_before_training(make_config, monkeypatch, flag, modules):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError

    def no_data(*args):
        raise AssertionError("the data was loaded before the missing extra was reported")

    monkeypatch.setattr("mlplab.training.runner.prepare", no_data)
    config = make_config(**{flag: True}, **SMALL)
    with pytest.raises(MlplabError) as error:
        train(config)
    assert str(error.value) == f'--{flag} needs the {flag} package: pip install "mlplab[{flag}]"'
    assert not Path(config.train.out).exists()


# --- wandb, offline: the run is read back from its .wandb transaction log ---

@pytest.fixture
def wandb_offline(monkeypatch, tmp_path):
    """wandb in offline mode, quiet, with every file it writes kept under tmp_path."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("DIR", "CACHE_DIR", "CONFIG_DIR", "DATA_DIR", "ARTIFACT_DIR"):
        folder = tmp_path / "wandb-home" / name.lower()
        folder.mkdir(parents=True)
        monkeypatch.setenv(f"WANDB_{name}", str(folder))


def _wandb_records(run_dir):
    """The protobuf records of the one offline run in ``run_dir``.

    wandb 0.31 ships no Python reader for its .wandb files, so this decodes their
    LevelDB-log framing: a 7-byte file header (":W&B", magic 0xBEE1, version), then
    32 KiB blocks of chunks, each a 7-byte header (crc32, length, type) and its bytes;
    a record is one FULL chunk, or FIRST, MIDDLE..., LAST.
    """
    from wandb.proto import wandb_internal_pb2

    (run_folder,) = (run_dir / "wandb").glob("offline-run-*")
    (path,) = run_folder.glob("run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, position, pending, records = 32 * 1024, 7, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:  # a chunk header never straddles blocks: skip the padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _key(item):
    return item.key or ".".join(item.nested_key)


def _wandb_history(records):
    """``{step: {key: value}}`` from the history records."""
    rows = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            row = {_key(item): json.loads(item.value_json) for item in record.history.item}
            rows[row["_step"]] = row
    return rows


def _wandb_summary(records):
    summary = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            summary.update({_key(item): json.loads(item.value_json) for item in record.summary.update})
    return summary


def _wandb_exit_code(records):
    (exit_record,) = [record.exit for record in records if record.WhichOneof("record_type") == "exit"]
    return exit_record.exit_code


def test_wandb_offline_run_holds_history_and_test_metrics(make_config, wandb_offline):
    run_dir = train(make_config(wandb=True, wandb_project="mlplab-tests", **SMALL)).run_dir
    records = _wandb_records(run_dir)
    (run,) = [record.run for record in records if record.WhichOneof("record_type") == "run"]
    assert (run.project, run.display_name) == ("mlplab-tests", run_dir.name)
    config = {_key(item): json.loads(item.value_json) for item in run.config.update}
    assert config["model"]["hidden"] == [8] and config["train"]["wandb"] is True
    logged = _wandb_history(records)
    history = _history(run_dir)
    assert sorted(logged) == [1, 2]  # step = epoch
    for record in history:
        row = logged[record["epoch"]]
        for key, field in [("loss/train", "train_loss"), ("accuracy/train", "train_accuracy"),
                           ("loss/val", "val_loss"), ("accuracy/val", "val_accuracy"), ("lr", "lr")]:
            assert row[key] == pytest.approx(record[field], rel=1e-12), key
    metrics = _metrics(run_dir)
    summary = _wandb_summary(records)
    assert summary["test/accuracy"] == metrics["test_accuracy"]
    assert summary["test/loss"] == pytest.approx(metrics["test_loss"], rel=1e-12)
    assert summary["test_per_class/0 - zero"] == metrics["per_class_accuracy"]["0 - zero"]
    assert _wandb_exit_code(records) == 0


def test_wandb_run_is_marked_failed_when_training_fails(make_config, wandb_offline):
    config = make_config(wandb=True, **SMALL)
    with pytest.raises(RuntimeError, match="training failed"):
        train(config, callbacks=[FailAtEpoch(2)])
    records = _wandb_records(Path(config.train.out))
    assert sorted(_wandb_history(records)) == [1]
    assert _wandb_exit_code(records) == 1


def test_wandb_that_cannot_start_is_a_one_line_error(make_config, wandb_offline, monkeypatch):
    import wandb

    def no_login(**settings):
        raise wandb.errors.UsageError("No API key configured. Use `wandb login` to log in.")

    monkeypatch.setattr(wandb, "init", no_login)
    with pytest.raises(MlplabError, match=r"^--wandb could not start a run \(No API key configured.*WANDB_MODE=offline"):
        train(make_config(wandb=True, **SMALL))
