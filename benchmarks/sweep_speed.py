"""Throughput of a vectorised sweep against the same runs one after another: members x epochs per second.

K members of the lab net (784-16-32-24-10, ReLU, log-softmax + NLL, SGD, batch 64, one epoch
on the 50,000 training images), the learning rate (0.005 to 0.1) and the momentum (0 to 0.95)
varied over the members:

  sequential   for each member: `prepare(config)` (untimed: setup), then one epoch of mlplab's own
               `train_epoch` with the engine `mlplab train` picks (manual), on the CPU threads it
               picks (1 at batch 64)
  vectorised   `VectorisedGroup` (building it is setup), then one epoch of `train_epoch` for all K
               members as one program, on --threads threads (default 1, as the sequential runs)

Only the training epochs are compared (validation and test are left out of both); setup is
printed apart. --seeds distinct (the default) gives member k seed k: its own initial weights
and its own data order, so every member gathers its own batches. --seeds one gives every
member seed 0 (a grid over lr and momentum): they share their batches, and the first layer is
one matrix product for all of them.

Where the vectorised seconds go is measured with PyTorch's profiler on --profile-steps steps
per K, each top-level operation with everything it calls: the gather of the batches
(index_select), the matrix products (bmm, baddbmm), the SGD update, the other operations, and
Python (the wall time of as many steps without the profiler, less the operations' time).

Target (the brief): >= 10x the sequential throughput at K = 64 on 2 cores.

    pip install -e ".[bench]" matplotlib
    python benchmarks/sweep_speed.py --figure sweep_speed.png
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from mlplab.config import Config, apply_overrides, from_preset
from mlplab.sweep import VectorisedGroup, load_sweep_data
from mlplab.training import prepare, train_epoch
from mlplab.threads import ThreadGovernor, model_work, using_threads

PHASES = {"gather": ("aten::index_select",), "matrix products": ("aten::bmm", "aten::baddbmm", "aten::mm"),
          "update": ("aten::addcmul", "aten::addcmul_", "aten::mul_", "aten::add_", "aten::where", "aten::index_copy_")}


def member_configs(count: int, seeds: str) -> list[Config]:
    """``count`` lab-net configs, lr and momentum spread over the members (one epoch, CPU, no downloads)."""
    configs = []
    for k in range(count):
        lr = 0.005 * (20 ** ((k % 16) / 15))  # 0.005 .. 0.1, log-spaced, cycling
        momentum = 0.95 * ((k * 7) % 20) / 19  # 0 .. 0.95
        configs.append(apply_overrides(from_preset("lab"), {
            "lr": lr, "momentum": momentum, "epochs": 1, "seed": k if seeds == "distinct" else 0,
            "device": "cpu", "progress": False, "download": False}))
    return configs


def sequential(configs: list[Config]) -> tuple[float, float]:
    """Seconds of setup and of training, summed over the members, each trained alone as `mlplab train` would."""
    setup_seconds = train_seconds = 0.0
    for config in configs:
        started = time.perf_counter()
        setup = prepare(config)
        setup.train_batches.set_epoch(1)
        setup_seconds += time.perf_counter() - started
        with ThreadGovernor(config.train.threads, work=model_work(setup.model, config.train.batch_size)):
            started = time.perf_counter()
            train_epoch(setup.model, setup.train_batches, setup.loss_fn, setup.optimizer, setup.schedule,
                        engine=setup.engine)
            train_seconds += time.perf_counter() - started
    return setup_seconds, train_seconds


def vectorised(configs: list[Config], data, threads: int) -> tuple[float, float]:
    """Seconds of building the group and of its one training epoch."""
    with using_threads(threads):
        started = time.perf_counter()
        group = VectorisedGroup(configs, range(len(configs)), data)
        setup_seconds = time.perf_counter() - started
        started = time.perf_counter()
        group.train_epoch(1)
        return setup_seconds, time.perf_counter() - started


def phases(configs: list[Config], data, threads: int, steps: int) -> dict[str, float]:
    """Where a vectorised step's wall time goes: seconds per step by phase, from PyTorch's profiler."""
    with using_threads(threads):
        group = VectorisedGroup(configs, range(len(configs)), data)
        group.train_epoch(1, max_steps=3)  # warm
        rates, batches = group.epoch_rates(), group.epoch_batches(2)
        started = time.perf_counter()  # the wall time without the profiler's own overhead
        group.train_steps(batches, rates, epoch=2, max_steps=steps)
        wall = time.perf_counter() - started
        rates, batches = group.epoch_rates(), group.epoch_batches(3)
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            group.train_steps(batches, rates, epoch=3, max_steps=steps)
    spent = {name: 0.0 for name in (*PHASES, "other operations")}
    for event in profiler.events():
        if event.cpu_parent is not None:  # counted in its top-level operation (a bmm's per-matrix selects)
            continue
        phase = next((name for name, ops in PHASES.items() if event.name in ops), "other operations")
        spent[phase] += event.cpu_time_total / 1e6
    spent["python"] = max(0.0, wall - sum(spent.values()))
    return {name: seconds / steps for name, seconds in spent.items()}


def save_figure(path: str, rows: list[dict], seeds: str, threads: int) -> None:
    """Throughput (members x epochs per second) against K, both ways, on log axes."""
    from mlplab.plots.backend import pyplot, save

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    counts = [row["members"] for row in rows]
    for key, label in (("vectorised", f"vectorised ({threads} thread{'s' if threads > 1 else ''})"),
                       ("sequential", "one after another (mlplab train's loop, 1 thread)")):
        axes.plot(counts, [row["members"] / row[key] for row in rows], marker="o", label=label)
    for row in rows:
        point = (row["members"], row["members"] / row["vectorised"])
        axes.annotate(f"{row['sequential'] / row['vectorised']:.1f}x", point, textcoords="offset points",
                      xytext=(0, 8), ha="center")
    axes.set_ylim(0, 1.15 * max(row["members"] / row["vectorised"] for row in rows))
    axes.set_xscale("log", base=2)
    axes.set_xticks(counts, [str(count) for count in counts])
    axes.set_xlabel("members K")
    axes.set_ylabel("members x epochs per second")
    axes.set_title(f"784-16-32-24-10, batch 64, one epoch; seeds: {seeds}")
    axes.grid(alpha=0.3)
    axes.legend()
    save(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="16,64,256", help="values of K, comma-separated (default: 16,64,256)")
    parser.add_argument("--seeds", choices=("distinct", "one"), default="distinct",
                        help="distinct: member k has seed k (default); one: all seed 0, sharing their batches")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of the vectorised program (default: 1)")
    parser.add_argument("--profile-steps", type=int, default=30, help="steps profiled per K (default: 30; 0: none)")
    parser.add_argument("--figure", help="write the throughput figure here (.png or .svg)")
    args = parser.parse_args()
    counts = [int(count) for count in args.members.split(",")]

    data = load_sweep_data(member_configs(1, args.seeds)[0])
    # Untimed warm-up of both ways: the data read from disk, one-time kernel checks, first allocations.
    sequential(member_configs(1, args.seeds))
    vectorised(member_configs(2, args.seeds), data, args.threads)
    rows = []
    print(f"lab net, batch 64, one epoch of 50,000 images; seeds {args.seeds}; vectorised on {args.threads} "
          f"thread(s); torch {torch.__version__}")
    header = (f"{'K':>5} {'sequential s':>13} {'vectorised s':>13} {'seq members/s':>14} {'vec members/s':>14} "
              f"{'ratio':>7} {'setup seq s':>12} {'setup vec s':>12}")
    print(header)
    for count in counts:
        configs = member_configs(count, args.seeds)
        vector_setup, vector_seconds = vectorised(configs, data, args.threads)
        sequential_setup, sequential_seconds = sequential(configs)
        row = {"members": count, "sequential": sequential_seconds, "vectorised": vector_seconds,
               "sequential_setup": sequential_setup, "vectorised_setup": vector_setup}
        rows.append(row)
        print(f"{count:>5} {sequential_seconds:>13.2f} {vector_seconds:>13.2f} {count / sequential_seconds:>14.2f} "
              f"{count / vector_seconds:>14.2f} {sequential_seconds / vector_seconds:>6.1f}x "
              f"{sequential_setup:>12.2f} {vector_setup:>12.2f}", flush=True)
    if args.profile_steps:
        print(f"\nwhere a vectorised step goes (ms a step, profiled over {args.profile_steps} steps):")
        print(f"{'K':>5} " + " ".join(f"{name:>16}" for name in (*PHASES, "other operations", "python")))
        for count in counts:
            spent = phases(member_configs(count, args.seeds), data, args.threads, args.profile_steps)
            print(f"{count:>5} " + " ".join(f"{seconds * 1e3:>16.2f}" for seconds in spent.values()), flush=True)
    if args.figure:
        save_figure(args.figure, rows, args.seeds, args.threads)
        print(f"\nfigure: {args.figure}")


if __name__ == "__main__":
    main()
