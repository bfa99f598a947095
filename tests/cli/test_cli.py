"""CLI smoke runs and user mistakes: exit status 2, one line, no traceback."""

import json
import os
import subprocess
import sys

import pytest

from mlplab.cli.main import main


def _cli(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "mlplab", *args], capture_output=True, text=True, env=env, timeout=300)


def test_train_eval_export_smoke(mnist_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    status = main(["train", "--preset", "lab", "--epochs", "1", "--data-dir", str(mnist_dir),
                   "--out", str(run_dir), "--device", "cpu", "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0
    assert "784-16-32-24-10" in out and "epoch 1/1" in out and "test loss" in out
    assert (run_dir / "best.pt").exists()

    assert main(["eval", str(run_dir), "--json", "--data-dir", str(mnist_dir)]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert result["count"] == 10_000
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"])  # one epoch: best == last

    assert main(["export", str(run_dir), "--out", str(tmp_path / "w.safetensors")]) == 0
    from mlplab.export import load_safetensors
    from mlplab.runs.reader import load_model

    exported, saved = load_safetensors(tmp_path / "w.safetensors"), load_model(run_dir / "best.pt")
    for (name, a), (_, b) in zip(exported.state_dict().items(), saved.state_dict().items()):
        assert (a == b).all(), name


def test_resume_from_the_command_line(mnist_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    common = ["--data-dir", str(mnist_dir), "--device", "cpu", "--no-progress"]
    assert main(["train", "--hidden", "8", "--scheduler", "none", "--epochs", "1", "--out", str(run_dir), *common]) == 0
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", *common]) == 0
    out = capsys.readouterr().out
    assert "epoch 2/2" in out
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 2


def test_print_config_applies_preset_then_file_then_flags(tmp_path, capsys):
    config_file = tmp_path / "c.toml"
    config_file.write_text("[optim]\nlr = 0.3\nmomentum = 0.5\n")
    assert main(["train", "--preset", "lab", "--config", str(config_file), "--momentum", "0.7", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "lr = 0.3" in out and "momentum = 0.7" in out and 'output = "log_softmax"' in out


@pytest.mark.parametrize("args, fragment", [
    (["train", "--preset", "nope"], "invalid choice: 'nope'"),
    (["train", "--lr", "fast"], "invalid float value"),
    (["train", "--hidden", "16,x", "--print-config"], "hidden must be a list"),
    (["train", "--data-dir", "/nonexistent/mnist", "--no-download", "--epochs", "1"], "/nonexistent/mnist"),
    (["eval", "/nonexistent/run"], "no checkpoint"),
    (["train", "--resume", "/nonexistent/run"], "no checkpoint"),
    (["train", "--engine", "manual", "--dropout", "0.2", "--epochs", "1"], "does not implement dropout"),
    (["train", "--engine", "fastest"], "invalid choice: 'fastest'"),
])
def test_user_mistakes_exit_2_with_one_line(args, fragment):
    result = _cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_wrong_checkpoint_file_exits_2(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"this is not a checkpoint")
    result = _cli("eval", str(path))
    assert result.returncode == 2 and "not a readable checkpoint" in result.stderr


def test_nll_on_logits_is_refused_with_advice(mnist_dir, tmp_path):
    result = _cli("train", "--loss", "nll", "--output", "logits", "--epochs", "1", "--data-dir", str(mnist_dir),
                  "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert "log_softmax" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_train_help_states_each_range(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "sgd and rmsprop momentum (in [0, 1); default: 0.9)" in text
    assert "(in [0, 2**63 - 1]; default: 0)" in text and "training batch size (in [1, 1000000]; default: 256)" in text


def test_presets_command_lists_recipes(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # The default recipe first, then every preset with the settings its lab chose (switched-off ones left out).
    assert lines[0].split() == ["(default)", "hidden=512", "optimizer=sgd", "lr=0.2", "momentum=0.9", "nesterov=true",
                                "scheduler=onecycle", "batch_size=256", "epochs=4", "output=logits",
                                "loss=cross_entropy", "normalize=standard"]
    assert [line.split()[0] for line in lines[1:]] == ["best", "digits", "fast", "fast99", "lab", "logistic", "seq",
                                                       "tutorial", "twolayer"]
    best = next(line for line in lines if line.startswith("best "))
    assert "augment=both" in best and "ema=0.999" in best and "epochs=150" in best
    assert "val_split=none" in best and "val_size" not in best  # nothing held out, so no size to say
    assert "rotate" not in best  # the distortions' default sizes go unsaid, a recipe's own are said
    fast99 = next(line for line in lines if line.startswith("fast99 "))
    assert "rotate=8.0" in fast99 and "precision=bf16-mixed" in fast99 and "elastic_sigma" not in fast99
    assert "val_size=5000" in fast99 and "val_split" not in fast99  # the usual split, of a size of its own
    lab = next(line for line in lines if line.startswith("lab "))
    assert "hidden=16,32,24" in lab and "momentum=0.9" in lab and "loss=nll" in lab and "scheduler" not in lab


def test_the_test_line_names_the_epoch_it_scored_when_not_the_last(mnist_dir, tmp_path, capsys):
    """One validation image, right from epoch 1: epoch 1 stays the best, and the test line says its weights
    were scored; a run whose last epoch is its best says nothing more."""
    flags = ["train", "--hidden", "8", "--epochs", "2", "--batch-size", "1000", "--val-size", "1", "--scheduler",
             "none", "--data-dir", str(mnist_dir), "--threads", "1", "--no-progress"]
    assert main([*flags, "--out", str(tmp_path / "kept")]) == 0
    test_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("test loss"))
    metrics = json.loads((tmp_path / "kept" / "metrics.json").read_text())
    assert metrics["tested_epoch"] == 1, "the setup needs epoch 1 to be the best"
    assert test_line.endswith("(10000 images; epoch 1's weights, the best validation accuracy)"), test_line
    assert main([*flags, "--val-split", "none", "--epochs", "1", "--out", str(tmp_path / "last")]) == 0
    test_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("test loss"))
    assert test_line.endswith("(10000 images)"), test_line


def test_closed_output_pipe_stops_quietly_and_keeps_finished_epochs(mnist_dir, tmp_path):
    """`mlplab train | head -2`: no BrokenPipeError traceback; what finished is on disk."""
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "mlplab", "train", "--hidden", "8", "--epochs", "3", "--data-dir", str(mnist_dir),
         "--out", str(run_dir), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    while "epoch 1/3" not in first:  # read up to the first epoch's line, then hang up
        first = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 141
    assert "Traceback" not in stderr, stderr
    assert (run_dir / "last.pt").exists()


def test_the_command_line_starts_without_importing_torch():
    """Every command's flags are built at start; torch (about 1.5 s) is imported only by what runs."""
    code = "import sys, mlplab.cli.main; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_ctrl_c_after_the_command_returned_ends_the_process_without_a_traceback():
    # What `mlplab train` met in 4 of 8 tries: Ctrl-C just after "saved:", while Python shut down.
    import signal

    code = ("import os, signal, time; from mlplab.cli.main import console; status = console(['presets']); "
            "os.kill(os.getpid(), signal.SIGINT); time.sleep(10); raise SystemExit(status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGINT and "Traceback" not in done.stderr, (done.returncode, done.stderr)
    assert "fast" in done.stdout  # the command itself ran to its end
