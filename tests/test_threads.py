"""The thread policy (mlplab.threads): the choice for a given load, quota and work; the readings it
rests on; and how fit, train_epoch, evaluate, sweeps and the estimator apply it (a count you set is
left alone, yours is restored, every choice is recorded). No busy machine needed: loads are injected."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import mlplab.threads as threads
from mlplab.errors import MlplabError
from mlplab.threads import (WORK_PER_THREAD, CpuMonitor, CpuReading, ThreadGovernor, choose_threads, cpu_quota,
                            using_threads, work_threads)
from mlplab.training.callbacks import Callback

BIG = 100 * WORK_PER_THREAD  # the fast recipe's step is 26 x WORK_PER_THREAD
LAB_NET_BATCH_64 = 64 * 15_910  # 784-16-32-24-10: about 1 M multiply-adds a step


# --- the choice ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("reading, work, expected", [
    (CpuReading(cpus=2), BIG, 2),  # idle: every core
    (CpuReading(cpus=2, others=1.0), BIG, 1),  # one busy neighbour: the other core only
    (CpuReading(cpus=2, others=2.0), BIG, 1),  # both busy: still one thread, never zero
    (CpuReading(cpus=2, others=0.25), BIG, 2),  # a light neighbour (a quarter core): 2 threads still win
    (CpuReading(cpus=2, others=0.75), BIG, 1),  # a heavy one: one thread wins
    (CpuReading(cpus=8, others=3.0), BIG, 5),
    (CpuReading(cpus=8, quota=1.0), BIG, 1),  # a container's quota of one CPU on an 8-CPU host
    (CpuReading(cpus=64, quota=4.0, others=1.0), BIG, 3),  # the quota's other tenants take one of its four
    (CpuReading(cpus=8, quota=2.5), BIG, 2),
    (CpuReading(cpus=2), LAB_NET_BATCH_64, 1),  # too little work to split, even idle
    (CpuReading(cpus=8), 3 * WORK_PER_THREAD, 3),  # work for three threads
    (CpuReading(cpus=4), None, 4),  # work unknown: the load decides
])
def test_the_choice_for_a_load_a_quota_and_a_work(reading, work, expected):
    count, reason = choose_threads(reading, work)
    assert count == expected
    assert f"{reading.others:.1f} of {reading.cpus} CPUs" in reason


@pytest.mark.parametrize("current, others, expected", [
    (2, 0.3, 2),  # noise while training on 2: stay
    (2, 0.6, 1),  # a neighbour appeared (our own spinning threads hide part of it): go down
    (1, 0.5, 1),  # half a core busy: not enough to go back up
    (1, 0.1, 2),  # the neighbour left: go back up
])
def test_a_recheck_needs_a_margin_to_change_the_count(current, others, expected):
    assert choose_threads(CpuReading(cpus=2, others=others), BIG, current=current)[0] == expected


def test_work_keeps_one_thread_per_work_per_thread():
    assert work_threads(None) is None
    assert work_threads(0) == 1
    assert work_threads(2 * WORK_PER_THREAD - 1) == 1
    assert work_threads(2 * WORK_PER_THREAD) == 2


def test_a_bad_fixed_count_is_a_user_error():
    with pytest.raises(MlplabError, match="threads must be at least 1"):
        threads.check_threads(0)
    with pytest.raises(MlplabError, match="per CPU"):
        threads.check_threads(10**6)


# --- the readings -------------------------------------------------------------------------------------

def _cgroup_tree(tmp_path: Path, proc_line: str, files: dict[str, str]) -> tuple[Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "cgroup"
    proc.write_text(proc_line + "\n")
    root = tmp_path / "sys"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return proc, root


def test_a_cgroup_v2_quota_is_the_tightest_of_the_cgroup_and_its_parents(tmp_path):
    proc, root = _cgroup_tree(tmp_path, "0::/user.slice/job", {
        "cpu.max": "max 100000\n", "user.slice/cpu.max": "250000 100000\n", "user.slice/job/cpu.max": "max 100000\n",
        "user.slice/job/cpu.stat": "usage_usec 5000000\n"})
    quota, where = cpu_quota(proc, root)
    assert quota == 2.5 and where == ("v2", root / "user.slice")


def test_a_cgroup_v1_quota_and_none(tmp_path):
    proc, root = _cgroup_tree(tmp_path / "a", "4:cpu,cpuacct:/docker/abc", {
        "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "150000\n", "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"})
    assert cpu_quota(proc, root)[0] == 1.5
    proc, root = _cgroup_tree(tmp_path / "b", "4:cpu,cpuacct:/", {
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert cpu_quota(proc, root) == (None, None)
    assert cpu_quota(tmp_path / "missing", root) == (None, None)


def test_the_monitor_sees_another_process_and_not_this_one():
    monitor = CpuMonitor()
    background = monitor.read(min_window=0.4).others  # whatever else this machine runs
    spin_until = time.monotonic() + 0.4
    while time.monotonic() < spin_until:  # this process's own work is not "others"
        pass
    assert monitor.read().others < background + 0.4
    hog = subprocess.Popen([sys.executable, "-c", "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 3: pass"])
    try:
        time.sleep(0.3)
        monitor.read()
        reading = monitor.read(min_window=0.8)
    finally:
        hog.kill()
        hog.wait()
    # a whole core's worth more, give or take the clock ticks (less if the background already held both cores)
    assert reading.others > min(background + 0.6, reading.cpus - 0.4), (background, reading)


# --- applying it --------------------------------------------------------------------------------------

class FakeLoad:
    """Injected readings: ``others`` CPUs of ``cpus`` busy, changed by assigning ``others``."""

    def __init__(self, cpus: int = 2, others: float = 0.0) -> None:
        self.cpus, self.others = cpus, others

    def read(self, min_window: float = 0.0) -> CpuReading:
        return CpuReading(cpus=self.cpus, others=self.others)


@pytest.fixture
def load(monkeypatch):
    """A fake load for the governors, PyTorch at its own default count, and a re-check at every step."""
    fake = FakeLoad()
    monkeypatch.setattr(threads, "_MONITOR", fake)
    monkeypatch.setattr(threads, "RECHECK_SECONDS", 0.0)
    monkeypatch.setattr(threads, "user_threads", lambda: None)
    monkeypatch.setattr(threads, "affinity_cpus", lambda: [0, 1])
    before = torch.get_num_threads()
    yield fake
    torch.set_num_threads(before)


class SeenThreads(Callback):
    """Records PyTorch's thread count at every batch."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def on_batch_end(self, loss) -> None:
        self.counts.append(torch.get_num_threads())


class BusyAfter(Callback):
    """Makes the fake load busy after ``batches`` batches."""

    def __init__(self, load: FakeLoad, batches: int) -> None:
        self.load, self.batches, self.seen = load, batches, 0

    def on_batch_end(self, loss) -> None:
        self.seen += 1
        if self.seen == self.batches:
            self.load.others = 1.0


def _data(batch_size: int = 200, rows: int = 2000):
    from mlplab.data import Batches
    from mlplab.data.loading import TensorSplit

    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn(rows, 1, 28, 28, generator=generator), torch.randint(0, 10, (rows,), generator=generator)
    return Batches(TensorSplit(images, labels, "train"), batch_size, shuffle=True, seed=0)


def _model():
    from mlplab.models import MLP

    torch.manual_seed(0)
    return MLP(784, (512,), 10)  # 200 x 407,050 = 81 M multiply-adds a step: work for 20 threads


def test_fit_chooses_by_the_load_rechecks_records_and_restores(load, tmp_path):
    from mlplab import fit

    torch.set_num_threads(2)
    seen = SeenThreads()
    history = fit(_model(), _data(), test_data=_data(), epochs=2, callbacks=[seen, BusyAfter(load, 3)], run_dir=tmp_path / "run",
                  progress=False)
    assert seen.counts[:3] == [2, 2, 2] and set(seen.counts[3:]) == {1}  # down to one once a neighbour appeared
    assert [(entry["threads"], entry["set_by"]) for entry in history.threads] == [(2, "auto"), (1, "auto")]
    # the step count when it changed: steps 0-3 ran on 2 threads (the fourth saw the neighbour after it)
    assert history.threads[0]["step"] == 0 and history.threads[1]["step"] == 4
    assert "1.0 of 2 CPUs busy" in history.threads[1]["reason"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["threads"] == history.threads
    assert json.loads((tmp_path / "run" / "history.json").read_text())["threads"] == history.threads
    assert torch.get_num_threads() == 2  # what was set before fit


def test_a_count_you_set_is_left_alone(load, monkeypatch):
    from mlplab import fit

    torch.set_num_threads(1)
    monkeypatch.setattr(threads, "user_threads", lambda: torch.get_num_threads())
    seen = SeenThreads()
    history = fit(_model(), _data(), epochs=1, callbacks=[seen], progress=False)
    assert set(seen.counts) == {1} and history.threads[0]["set_by"] == "torch.set_num_threads"
    assert torch.get_num_threads() == 1


def test_the_real_user_threads_rule(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_torch_defaults", lambda: {4, 8})
    monkeypatch.setattr(threads, "_STARTUP_THREADS", 4)
    try:
        torch.set_num_threads(4)
        assert threads.user_threads() is None  # PyTorch's own default
        torch.set_num_threads(3)
        assert threads.user_threads() == 3  # a count PyTorch never picks
        torch.set_num_threads(8)
        assert threads.user_threads() == 8  # changed from the default found at first look
        monkeypatch.setenv("OMP_NUM_THREADS", "4")
        torch.set_num_threads(4)
        assert threads.user_threads() == 4
    finally:
        torch.set_num_threads(before)


def test_a_fixed_count_wins_over_the_load(load):
    from mlplab import fit

    load.others = 2.0
    seen = SeenThreads()
    history = fit(_model(), _data(), epochs=1, callbacks=[seen], threads=2, progress=False)
    assert set(seen.counts) == {2}
    assert history.threads == [{"step": 0, "threads": 2, "set_by": "threads=", "reason": "fixed by threads= or --threads; "
                                "2.0 of 2 CPUs busy with other work: 1 thread would be faster now"}]


def test_train_epoch_and_evaluate_on_their_own_choose_and_restore(load):
    from mlplab import evaluate, train_epoch

    torch.set_num_threads(2)
    load.others = 1.0
    model, data = _model(), _data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    counts = []
    train_epoch(model, data, torch.nn.functional.cross_entropy, optimizer,
                on_batch_end=[lambda loss: counts.append(torch.get_num_threads())])
    assert set(counts) == {1} and torch.get_num_threads() == 2
    with using_threads(1):  # an enclosing choice holds inside
        evaluate(model, data)
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_a_tiny_net_trains_on_one_thread_on_an_idle_machine(load):
    from mlplab import fit
    from mlplab.models import MLP

    seen = SeenThreads()
    history = fit(MLP(784, (16, 32, 24), 10), _data(batch_size=64), epochs=1, callbacks=[seen], progress=False)
    assert set(seen.counts) == {1}
    assert "work for 1 thread" in history.threads[0]["reason"]


def test_the_scratch_engines_threads_go_to_numpys_blas():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    before, blas_before = torch.get_num_threads(), blas_threads()
    with using_threads(1, numpy_blas=True):
        assert torch.get_num_threads() == 1 and blas_threads() == {1}
    with using_threads(3, numpy_blas=True):
        assert torch.get_num_threads() == 1 and blas_threads() == {3}
    assert torch.get_num_threads() == before and blas_threads() == blas_before


def test_a_governor_inside_another_records_the_outer_choice_and_forwards_its_rechecks(load):
    torch.set_num_threads(2)
    with ThreadGovernor(work=BIG) as outer:
        with ThreadGovernor(work=BIG) as inner:
            assert not inner.active and inner.count == 2
            load.others = 1.0
            inner()  # a step inside: the outer one re-checks
            assert torch.get_num_threads() == 1 and outer.count == 1
        assert inner.log[0]["set_by"] == "auto" and inner.log[0]["threads"] == 2
    assert torch.get_num_threads() == 2


# --- the entry points ---------------------------------------------------------------------------------

def test_mlplab_train_says_what_it_chose_and_why(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mlplab", "train", "--hidden", "8", "--epochs", "1",
                             "--val-size", "50000", "--device", "cpu", "--no-progress", "--threads", "1",
                             "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "threads: 1 (fixed by threads= or --threads)" in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["threads"][0]["threads"] == 1 and metrics["threads"][0]["set_by"] == "threads="


def test_the_estimator_takes_threads_and_records_the_choice(load):
    pytest.importorskip("sklearn")
    import numpy as np

    from mlplab import MLPClassifier

    generator = np.random.default_rng(0)
    X, y = generator.normal(size=(300, 20)).astype(np.float32), generator.integers(0, 3, 300)
    model = MLPClassifier((8,), max_iter=2, random_state=0, threads=1).fit(X, y)
    assert model.get_params()["threads"] == 1 and model.history_.threads[0]["set_by"] == "threads="
    load.others = 1.0
    model = MLPClassifier((512,), max_iter=1, random_state=0).fit(X.repeat(40, axis=1), y)
    assert model.history_.threads[0]["set_by"] == "auto" and model.history_.threads[0]["threads"] == 1


def test_a_sweep_records_its_threads_and_times_its_plan_on_them(load, tmp_path):
    from mlplab.config import Config, apply_overrides
    from mlplab.sweep.directory import run_sweep

    base = apply_overrides(Config(), dict(hidden=(16,), epochs=1, val_size=50_000, device="cpu", progress=False,
                                          download=False, batch_size=500))
    counts = []
    outcome = run_sweep(base, [{"lr": 0.01}, {"lr": 0.1}], tmp_path / "sweep",
                        on_plan=lambda plan: counts.append(torch.get_num_threads()))
    members = json.loads((tmp_path / "sweep" / "members.json").read_text())
    assert members["threads"] == counts[0] == members["threads_log"][0]["threads"]
    assert members["threads_log"][0]["set_by"] == "auto"
    assert outcome.best.train.threads is None  # best.toml leaves the choice to the machine it reruns on


def test_fit_shows_progress_by_default_only_where_someone_watches(load, monkeypatch, capsys):
    from mlplab import fit
    from mlplab.training import loop

    fit(_model(), _data(), epochs=1)
    assert capsys.readouterr().out == ""  # a script or a test: quiet
    monkeypatch.setattr(loop, "interactive", lambda: True)
    fit(_model(), _data(), epochs=1)
    assert "epoch 1/1  train loss" in capsys.readouterr().out  # a notebook: a line per epoch, and a bar
    fit(_model(), _data(), epochs=1, progress=False)
    assert capsys.readouterr().out == ""


def test_a_resumed_run_keeps_its_count_unless_the_load_moved_past_the_margin(load, tmp_path):
    from mlplab import fit

    torch.set_num_threads(2)
    load.others = 1.0
    fit(_model(), _data(), epochs=1, run_dir=tmp_path / "run", progress=False)
    load.others = 0.4  # 1.6 CPUs free: a fresh run would take 2, the resumed one stays on its 1 (inside the margin)
    history = fit(_model(), _data(), epochs=2, run_dir=tmp_path / "run", resume=True, progress=False)
    assert [(entry["step"], entry["threads"]) for entry in history.threads] == [(0, 1), (10, 1)]
    load.others = 0.0  # past the margin: up to 2
    history = fit(_model(), _data(), epochs=3, run_dir=tmp_path / "run", resume=True, progress=False)
    assert [(entry["step"], entry["threads"]) for entry in history.threads] == [(0, 1), (10, 1), (20, 2)]


def test_unreadable_cpu_counters_leave_the_choice_to_the_work(monkeypatch):
    import psutil

    def refuse(percpu=False):
        raise PermissionError("/proc/stat: permission denied")

    monkeypatch.setattr(psutil, "cpu_times", refuse)
    reading = CpuMonitor().read(min_window=0.0)
    assert not reading.known and reading.others == 0.0
    count, reason = choose_threads(reading, BIG)
    assert count == reading.cpus and "their load unknown" in reason


def test_a_fixed_count_above_what_the_load_leaves_says_so(load):
    load.others = 2.0
    with ThreadGovernor(threads=2, work=BIG) as governor:
        assert torch.get_num_threads() == 2
    assert governor.log[0]["reason"] == ("fixed by threads= or --threads; 2.0 of 2 CPUs busy with other work: "
                                         "1 thread would be faster now")
    load.others = 0.0
    with ThreadGovernor(threads=2, work=BIG) as governor:
        pass
    assert governor.log[0]["reason"] == "fixed by threads= or --threads"
