"""How many CPU threads mlplab computes with: chosen for the machine as it is, in every entry point.

Why it matters. PyTorch splits each CPU operation over a team of OpenMP threads that meet at
its end. On an idle 2-core machine the ``fast`` recipe trains 1.8 times faster on 2 threads than
on 1; beside one busy process the same 2 threads are 2-3 times *slower* than 1, because every
operation waits for the thread that shares a core with the other process. And a tiny net (the
lab's 784-16-32-24-10 at batch 64) is slower on 2 threads even on an idle machine: its
operations are too small to split.

The policy, one for `fit`, `train_epoch`, `evaluate`, ``mlplab train``, `MLPClassifier`,
sweeps, tune trials, ``mlplab serve`` and the scratch engine (`choose_threads`)::

    usable   CPUs this process may run on (its affinity), capped by a cgroup CPU quota
    free     usable minus the CPU time other processes took over the last window (steal included)
    work     multiply-adds per step // WORK_PER_THREAD: what pays for one more thread
    threads  round(free), at most ``work``, at least 1

`ThreadGovernor` applies it: it sets PyTorch's threads as training starts, reads the load again
every `RECHECK_SECONDS` at a step boundary (with a margin, so that noise does not flip it), records
every choice with its reason, and puts the previous setting back when training ends. A count you
chose is left alone: ``threads=``/``--threads``, or a ``torch.set_num_threads`` /
``OMP_NUM_THREADS`` of yours (`user_threads`).

Reproducibility. PyTorch's sums come out different in the last bits on another number of
threads, so a run is bit-for-bit repeatable (and resumable) for the same thread counts. Every
count a run used is recorded (``history.threads``, metrics.json); with ``--threads N`` a run and
its resume use N throughout.
"""

from __future__ import annotations

import contextvars
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplab.config import THREADS_PER_CPU
from mlplab.errors import MlplabError

# Multiply-adds a step (batch x weights) that pay for one more thread: on the 2-core test machine a
# second thread made a step 1.2x faster at 5-6.5 M, 1.5x at 26 M, 1.8x at 104 M, and 0.6x (slower)
# at 0.9 M (the lab net at batch 64). Below 2 x this, one thread.
WORK_PER_THREAD = 4_000_000
RECHECK_SECONDS = 1.0  # how often a governor reads the load again during training
WINDOW_SECONDS = 0.1  # the shortest window a first reading waits for (10 clock ticks of each CPU)
STALE_SECONDS = 5.0  # a reading over a longer window than this says little about now: start a new one
DOWN_MARGIN = 0.5  # go down a thread when free CPUs fall this far under the count
UP_MARGIN = 0.75  # go up when they rise this far above it (wider: a busy neighbour is costlier than a spare core)


def check_threads(requested: int) -> int:
    """``requested`` if it is at least 1 and at most `THREADS_PER_CPU` per CPU of this machine."""
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise MlplabError(f"threads must be a whole number; got {requested!r}")
    if requested < 1:
        raise MlplabError(f"threads must be at least 1; got {requested}")
    cpus = os.cpu_count() or 1
    if requested > THREADS_PER_CPU * cpus:
        raise MlplabError(
            f"threads must be at most {THREADS_PER_CPU * cpus} on this machine "
            f"({THREADS_PER_CPU} per CPU, {cpus} CPUs); got {requested}"
        )
    return requested


# --- What the machine offers -------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuReading:
    """The CPUs this process may use and how busy other processes keep them."""

    cpus: int  # CPUs in the process's affinity
    quota: float | None = None  # a cgroup's CPU quota in CPUs (None: no quota)
    others: float = 0.0  # CPUs' worth of time other processes took over the window (steal included)
    known: bool = True  # False where the CPU counters could not be read (``others`` is then 0)

    @property
    def usable(self) -> float:
        """CPUs this process may run on: its affinity, capped by the quota."""
        return min(float(self.cpus), self.quota) if self.quota is not None else float(self.cpus)

    @property
    def free(self) -> float:
        """Usable CPUs that other processes leave free."""
        return max(0.0, self.usable - self.others)

    def describe(self) -> str:
        """``1.0 of 2 CPUs busy with other work`` (and the quota, if any)."""
        quota = f", a quota of {self.quota:g}" if self.quota is not None and self.quota < self.cpus else ""
        if not self.known:
            return f"{self.cpus} CPUs{quota}, their load unknown"
        return f"{self.others:.1f} of {self.cpus} CPUs{quota} busy with other work"


def affinity_cpus() -> list[int]:
    """The CPUs this process may run on (every CPU where the OS cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    try:  # Windows (macOS has no affinity: every CPU)
        import psutil

        return sorted(psutil.Process().cpu_affinity())
    except (AttributeError, OSError, ImportError):
        return list(range(os.cpu_count() or 1))


def _cgroup_dirs(proc_cgroup: Path, root: Path) -> list[tuple[str, Path]]:
    """(version, folder) of each cgroup this process is in that limits the CPU, innermost first, with its parents."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    found: list[tuple[str, Path]] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: one hierarchy
            version, base = "v2", root
        elif "cpu" in controllers.split(","):  # cgroup v1: the cpu controller's hierarchy
            version, base = (
                "v1",
                next(
                    (root / name for name in ("cpu,cpuacct", "cpu", "cpuacct,cpu") if (root / name).is_dir()),
                    root / "cpu",
                ),
            )
        else:
            continue
        folder = base / path.lstrip("/")
        while True:
            found.append((version, folder))
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    return found


def _quota_of(version: str, folder: Path) -> float | None:
    """A cgroup folder's CPU quota in CPUs, None when it sets none or cannot be read."""
    try:
        if version == "v2":
            quota, period = (folder / "cpu.max").read_text().split()
            return None if quota == "max" else int(quota) / int(period)
        limit = int((folder / "cpu.cfs_quota_us").read_text())
        return None if limit <= 0 else limit / int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None


def _usage_of(version: str, folder: Path) -> float | None:
    """Seconds of CPU a cgroup's processes have used, None when it cannot be read."""
    try:
        if version == "v2":
            for line in (folder / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
            return None
        return int((folder / "cpuacct.usage").read_text()) / 1e9  # cpu and cpuacct mounted together
    except (OSError, ValueError):
        return None


def cpu_quota(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> tuple[float | None, tuple[str, Path] | None]:
    """The tightest cgroup CPU quota on this process (in CPUs) and the cgroup that sets it; (None, None) if none."""
    tightest: tuple[float | None, tuple[str, Path] | None] = (None, None)
    for version, folder in _cgroup_dirs(proc_cgroup, root):
        quota = _quota_of(version, folder)
        if quota is not None and (tightest[0] is None or quota < tightest[0]):
            tightest = (quota, (version, folder))
    return tightest


@dataclass
class _Snapshot:
    wall: float  # time.monotonic()
    busy: float | None  # seconds the process's CPUs have been busy (all processes), steal included; None: unknown
    own: float  # this process's CPU seconds, all its threads
    cgroup: float | None  # the quota-setting cgroup's CPU seconds


class CpuMonitor:
    """Reads how busy other processes keep this process's CPUs, between one reading and the next.

    Busy time comes from the operating system's per-CPU counters (psutil: /proc/stat on Linux),
    summed over the CPUs of the process's affinity; the process's own CPU time, its spinning
    OpenMP threads included, is taken off, so what is left is the others' (and the hypervisor's
    steal). Under a cgroup quota the cgroup's own usage counter tells what the other processes
    of the cgroup take of the quota.
    """

    def __init__(self) -> None:
        self.cpus = affinity_cpus()
        self.quota, self._cgroup = cpu_quota()
        self._last = self._snapshot()

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(
            time.monotonic(),
            _busy_seconds(self.cpus),
            time.process_time(),
            _usage_of(*self._cgroup) if self._cgroup is not None else None,
        )

    def read(self, min_window: float = WINDOW_SECONDS) -> CpuReading:
        """The load since the last reading (waiting until ``min_window`` seconds have passed); starts the next window.

        A window older than `STALE_SECONDS` is dropped and a fresh one of ``min_window`` seconds is read.
        """
        if time.monotonic() - self._last.wall > STALE_SECONDS:
            self._last = self._snapshot()
        wait = self._last.wall + min_window - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        now = self._snapshot()
        seconds = max(now.wall - self._last.wall, 1e-9)
        own = now.own - self._last.own
        if now.busy is None or self._last.busy is None:  # unknown: as if idle, the work alone decides
            self._last = now
            return CpuReading(cpus=len(self.cpus), quota=self.quota, others=0.0, known=False)
        others = max(0.0, (now.busy - self._last.busy - own) / seconds)
        if now.cgroup is not None and self._last.cgroup is not None:  # the quota's other tenants
            others = max(others, (now.cgroup - self._last.cgroup - own) / seconds)
        self._last = now
        return CpuReading(cpus=len(self.cpus), quota=self.quota, others=min(others, float(len(self.cpus))))


def _busy_seconds(cpus: list[int]) -> float | None:
    """Seconds the CPUs ``cpus`` have been busy since boot (everything but idle and I/O wait); None if unreadable."""
    try:
        import psutil

        per_cpu = psutil.cpu_times(percpu=True)
    except Exception:  # noqa: BLE001 - a sandbox without /proc, a platform psutil lacks: the load is unknown
        return None
    total = 0.0
    for index in cpus:
        if index < len(per_cpu):
            times = per_cpu[index]
            # guest time is counted in user time already (Linux); idle and iowait are free time
            spent = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
            total += spent - times.idle - getattr(times, "iowait", 0.0)
    return total


_MONITOR: CpuMonitor | None = None


def monitor() -> CpuMonitor:
    """The process's `CpuMonitor`, made on first use (call early to have a window ready when training starts)."""
    global _MONITOR  # one per process: a window is the time between two readings, whoever asks
    if _MONITOR is None:
        _MONITOR = CpuMonitor()
    return _MONITOR


# --- The policy ----------------------------------------------------------------------------------------


def work_threads(work: int | None) -> int | None:
    """The most threads ``work`` multiply-adds a step keep busy (None: no limit, the work is unknown)."""
    return None if work is None else max(1, int(work // WORK_PER_THREAD))


def model_work(model: Any, batch_size: int | None) -> int | None:
    """Multiply-adds of one step's forward pass, estimated as batch x weights (exact for a stack of Linear layers;
    a convolution's, which reuse their weights, are underestimated); None when the batch size is unknown."""
    if batch_size is None:
        return None
    return int(batch_size) * sum(parameter.numel() for parameter in model.parameters())


def _work_words(work: int | None) -> str:
    return "work unknown" if work is None else f"{work / 1e6:.3g} M multiply-adds a step"


def choose_threads(reading: CpuReading, work: int | None, current: int | None = None) -> tuple[int, str]:
    """The threads to compute with, and why, given the machine's ``reading`` and the step's ``work``.

    ``current``: the count in use during training. A change then needs the free CPUs to move past
    it by a margin (`DOWN_MARGIN`, `UP_MARGIN`), so that a noisy reading does not flip the count.
    """
    free = reading.free
    if current is None:
        by_load = max(1, math.floor(free + 0.5))
    elif free < current - DOWN_MARGIN:
        by_load = max(1, math.floor(free + 0.5))
    elif free >= current + UP_MARGIN:
        by_load = max(1, math.floor(free + 1 - UP_MARGIN))
    else:
        by_load = current
    by_load = min(by_load, max(1, math.floor(reading.usable)))  # past a quota, every thread stalls when it is spent
    by_work = work_threads(work)
    count = by_load if by_work is None else min(by_load, by_work)
    load = f"{reading.describe()}, {free:.1f} free"
    if by_work is not None and by_work < by_load:
        return count, f"{_work_words(work)}: work for {by_work} thread{'s' * (by_work > 1)} ({load})"
    return count, f"{load}; {_work_words(work)}"


def user_threads() -> int | None:
    """The PyTorch thread count you set (``torch.set_num_threads``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``), or None.

    Yours: one set through those variables, one PyTorch never picks by itself (`_torch_defaults`), or one
    changed from the default PyTorch had when mlplab first looked.
    """
    import torch

    now = torch.get_num_threads()
    if any(os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return now
    defaults = _torch_defaults()
    if now not in defaults or (_STARTUP_THREADS in defaults and now != _STARTUP_THREADS):
        return now
    return None


def _torch_defaults() -> set[int]:
    """Counts PyTorch picks by itself: the CPUs it may use, or their physical cores."""
    counts = {len(affinity_cpus()), os.cpu_count() or 1}
    try:
        import psutil

        counts.add(psutil.cpu_count(logical=False) or 1)
    except ImportError:
        pass
    return counts


def _startup_threads() -> int:
    import torch

    return torch.get_num_threads()


_STARTUP_THREADS = _startup_threads()  # PyTorch's count when mlplab first looked, before mlplab set any


# --- Applying it ---------------------------------------------------------------------------------------

_ACTIVE: contextvars.ContextVar[ThreadGovernor | None] = contextvars.ContextVar("mlplab_threads", default=None)


@dataclass
class ThreadGovernor:
    """Sets PyTorch's CPU threads for a block of training by `choose_threads`, re-checks them, then restores them.

    Use it as a context manager and call it after every optimizer step (it is an ``after_step``
    hook of `mlplab.train_epoch`; the call costs a clock read until a re-check is due). Inside
    another governor's block it does nothing: the outer one governs.

    Args:
        threads: a fixed count (``--threads``, ``threads=``); None chooses by `choose_threads`,
            unless you set PyTorch's count yourself (`user_threads`), which is then kept.
        work: multiply-adds of one step (`model_work`); None if unknown.
        numpy_blas: the scratch engine's arithmetic is NumPy's: the count goes to NumPy's BLAS and
            PyTorch, which then only gathers batches, gets one thread (two pools spinning two
            threads each on two cores made an epoch six times slower).
        device: where the model computes; off the CPU, threads only feed the device, and the
            count follows the load alone.
        recheck: re-read the load during training (off for a single evaluation pass).

    ``log`` holds each choice: ``{"step", "threads", "set_by", "reason"}``, ``set_by`` one of
    ``auto``, ``threads=`` or ``torch.set_num_threads``.
    """

    threads: int | None = None
    work: int | None = None
    numpy_blas: bool = False
    device: str = "cpu"
    recheck: bool = True
    log: list[dict[str, Any]] = field(default_factory=list, init=False)
    count: int = field(default=0, init=False)  # the count in force
    set_by: str = field(default="auto", init=False)
    _active: bool = field(default=False, init=False, repr=False)
    _previous: int = field(default=0, init=False, repr=False)  # PyTorch's count before, put back at the end
    _due: float = field(default=math.inf, init=False, repr=False)  # when the next re-check is due (perf_counter)
    _step: int = field(default=0, init=False, repr=False)
    _token: Any = field(default=None, init=False, repr=False)
    _blas: Any = field(default=None, init=False, repr=False)
    _reading: CpuReading | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> ThreadGovernor:
        import torch

        outer = _ACTIVE.get()
        if outer is not None:  # an outer governor (fit's, around train_epoch's; a using_threads block) decides
            self.count, self.set_by = outer.count, outer.set_by
            self.log.append(
                {
                    "step": self._step,
                    "threads": outer.count,
                    "set_by": outer.set_by,
                    "reason": f"chosen around this call: {outer.log[-1]['reason'] if outer.log else ''}",
                }
            )
            return self
        self._active, self._previous = True, torch.get_num_threads()
        self._token = _ACTIVE.set(self)
        if self.threads is not None:
            self.set_by, count, reason = "threads=", check_threads(self.threads), "fixed by threads= or --threads"
        elif (yours := user_threads()) is not None:
            self.set_by, count, reason = (
                "torch.set_num_threads",
                yours,
                "set by you (torch.set_num_threads or OMP_NUM_THREADS), kept",
            )
        else:
            count, reason = self._choose(None)
        if self.set_by != "auto" and self.recheck:
            reason += self._advice(count)
        self._apply(count, reason)
        if self.set_by == "auto" and self.recheck:
            self._due = time.perf_counter() + RECHECK_SECONDS
        return self

    def __exit__(self, *exc_info: Any) -> None:
        import torch

        if not self._active:
            return
        self._set_blas(None)
        torch.set_num_threads(self._previous)
        _ACTIVE.reset(self._token)
        self._active, self._due = False, math.inf

    def __call__(self) -> None:
        """After an optimizer step: count it, and re-check the load when one is due (the outer governor's, if
        nested)."""
        if not self._active:
            if (outer := self._outer()) is not None:
                outer()
            return
        self._step += 1
        if time.perf_counter() >= self._due:
            self.check_now()

    def check_now(self) -> None:
        """Read the load and change the count if it calls for it, now (a planner does before it times steps)."""
        if not self._active:
            if (outer := self._outer()) is not None:
                outer.check_now()
            return
        if self.set_by != "auto":
            return
        self._due = time.perf_counter() + RECHECK_SECONDS
        count, reason = self._choose(self.count)
        if count != self.count:
            self._apply(count, reason)

    def _outer(self) -> ThreadGovernor | None:
        """The governor whose block this inactive one runs in, if any."""
        outer = _ACTIVE.get()
        return outer if outer is not self else None

    @property
    def active(self) -> bool:
        """Whether this governor sets the threads (False inside another governor's block)."""
        return self._active

    def continue_log(self, earlier: list[dict[str, Any]], step: int) -> list[dict[str, Any]]:
        """The run's whole log: ``earlier`` (a resumed run's choices) then this one's, whose first choice is at
        ``step``."""
        for entry in self.log:
            entry["step"] = step
        self._step = step
        if earlier and self.keep_count(earlier[-1]["threads"]):
            del self.log[:-1]  # the choice made at the start gave way to the count the run last ran on
        self.log[:0] = earlier
        return self.log

    def keep_count(self, count: int) -> bool:
        """Go on with ``count`` threads, the count a resumed run (or a sweep's saved group) last ran on, unless
        the load has moved past the margin since; returns whether the count in force changed.

        Only a count this governor chose (``auto``) is changed: on an unchanged machine the resume
        then computes as the uninterrupted run did, bit for bit.
        """
        if not self._active or self.set_by != "auto" or self._reading is None:
            return False
        chosen, reason = choose_threads(self._reading, self._work(), current=count)
        if chosen == self.count:
            return False
        self._apply(chosen, reason)
        return True

    def at_step(self, step: int) -> None:
        """Say which optimizer step of the run comes next (a resumed run starts past 0), for the log."""
        self._step = step

    def describe(self) -> str:
        """``2 (auto: 0.0 of 2 CPUs busy with other work, 2.0 free; 104 M multiply-adds a step)``: the first choice."""
        if not self.log:
            return str(self.count)
        reason = self.log[0]["reason"]
        return f"{self.count} (auto: {reason})" if self.log[0]["set_by"] == "auto" else f"{self.count} ({reason})"

    def _advice(self, count: int) -> str:
        """For a count you fixed: a word when the machine as it is would be faster on fewer threads."""
        if count <= 1:
            return ""
        fewer, _ = self._choose(None)
        if fewer >= count:
            return ""
        assert self._reading is not None  # _choose has just read the load
        return f"; {self._reading.describe()}: {fewer} thread{'s' * (fewer > 1)} would be faster now"

    def _work(self) -> int | None:
        return self.work if self.device == "cpu" else None  # off the CPU, threads only feed the device

    def _choose(self, current: int | None) -> tuple[int, str]:
        self._reading = monitor().read()
        return choose_threads(self._reading, self._work(), current)

    def _apply(self, count: int, reason: str) -> None:
        import torch

        self.count = count
        if self.numpy_blas:
            torch.set_num_threads(1)
            self._set_blas(count)
        else:
            torch.set_num_threads(count)
        self.log.append({"step": self._step, "threads": count, "set_by": self.set_by, "reason": reason})

    def _set_blas(self, count: int | None) -> None:
        if self._blas is not None:
            self._blas.restore_original_limits()
            self._blas = None
        if count is not None:
            from threadpoolctl import threadpool_limits  # only the scratch engine needs it

            self._blas = threadpool_limits(limits=count, user_api="blas")


def using_threads(count: int, numpy_blas: bool = False) -> ThreadGovernor:
    """A block run on ``count`` threads (NumPy's BLAS threads with ``numpy_blas``), then the previous setting.

    ``with using_threads(1): mlplab.fit(...)``: fit's own choice yields to it, as to any outer governor.
    """
    return ThreadGovernor(threads=count, numpy_blas=numpy_blas, recheck=False)


def active_governor() -> ThreadGovernor | None:
    """The governor of the training that is running in this context, if any."""
    return _ACTIVE.get()
