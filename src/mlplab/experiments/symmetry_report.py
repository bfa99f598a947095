"""The one-page report on the symmetry experiment, as Markdown and self-contained HTML, with figures.

`run_suite` trains the chosen configuration and the workarounds (each changes one setting
of it); `write_report` writes DIR/report.md (figures beside it as PNG files),
DIR/report.html (the same page, figures embedded) and DIR/results.json (every number).
"""

from __future__ import annotations

import html
import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlplab.experiments.symmetry import PAPER, SymmetryConfig, Training, train
from mlplab.experiments.symmetry_analysis import structure, summarize
from mlplab.files import atomic_write_text

# Each changes one thing of the base configuration; the report measures whether it helps.
WORKAROUNDS: list[tuple[str, dict[str, Any]]] = [
    ("smaller steps (eps 0.05)", {"eps": 0.05}),
    ("smaller initial weights (±0.1)", {"init_range": 0.1}),
    ("larger initial weights (±1)", {"init_range": 1.0}),
    ("tanh hidden units", {"activation": "tanh"}),
    ("Adam (lr 0.01)", {"optimizer": "adam", "eps": 0.01}),
    ("Adam (lr 0.001)", {"optimizer": "adam", "eps": 0.001}),
    ("cosine schedule (eps 0.1 to 0)", {"scheduler": "cosine"}),
]

Block = tuple[Any, ...]  # ("h1" | "h2" | "p", text), ("table", header, rows), ("figure", name, caption)


def run_suite(base: SymmetryConfig, workarounds: bool = True) -> list[tuple[str, Training]]:
    """Train the base configuration, then (if asked) each workaround, all seeds at once each."""
    runs = [("base configuration", train(base))]
    if workarounds:
        runs += [(name, train(replace(base, **changes))) for name, changes in WORKAROUNDS]
    return runs


def write_report(directory: str | Path, runs: list[tuple[str, Training]]) -> dict[str, Path]:
    """Write the figures, report.md, report.html and results.json into ``directory``; returns their paths."""
    from mlplab.plots import save
    from mlplab.plots import symmetry as figures

    directory = Path(directory)
    base = runs[0][1]
    summaries = [(name, summarize(training)) for name, training in runs]
    summary = summaries[0][1]
    learned = _example_solution(base)
    images = {
        "weights": figures.networks(
            [("The paper's Figure 1", _weights_dict(PAPER, 0))]
            + (
                [(f"Learned here: seed {base.config.first_seed + learned}", _weights_dict(base.weights, learned))]
                if learned is not None
                else []
            )
        ),
        "sweeps": figures.sweeps_histogram(
            summary["sweeps_to_solve"],
            summary["sweeps_to_solve_strict"],
            summary["seeds"],
            base.config.sweeps,
            base.config.long_sweeps,
        ),
        "errors": figures.error_curves(base.errors.numpy(), (base.solved_at >= 0).numpy(), base.config.sweeps),
    }
    if len(runs) > 1:
        images["workarounds"] = figures.workaround_bars(
            [name for name, _ in summaries],
            [s["within"]["paper_budget"]["solved"] for _, s in summaries],
            [s["within"]["long_budget"]["solved"] for _, s in summaries],
            (base.config.sweeps, base.config.long_sweeps),
        )
    paths = {name: save(figure, directory / f"symmetry_{name}.png")[0] for name, figure in images.items()}
    blocks = _blocks(summaries, learned, base)
    atomic_write_text(directory / "report.md", _markdown(blocks, paths))
    atomic_write_text(directory / "report.html", _html(blocks, paths))
    atomic_write_text(directory / "results.json", json.dumps(dict(summaries), indent=1) + "\n")
    return {
        "markdown": directory / "report.md",
        "html": directory / "report.html",
        "results": directory / "results.json",
        **paths,
    }


def _example_solution(training: Training) -> int | None:
    """A solved seed with the paper's structure if there is one, else any solved seed, else None."""
    solved = (training.solved_at >= 0).nonzero().squeeze(1)
    if len(solved) == 0:
        return None
    matching = solved[structure(training.weights.W1[solved]).matches]
    return int(matching[0] if len(matching) else solved[0])


def _weights_dict(weights: Any, index: int) -> dict[str, Any]:
    return {
        "W1": weights.W1[index].numpy(),
        "b1": weights.b1[index].numpy(),
        "W2": weights.W2[index].numpy(),
        "b2": weights.b2[index].numpy(),
    }


def _blocks(summaries: list[tuple[str, dict[str, Any]]], learned: int | None, base: Training) -> list[Block]:
    """The report's content, independent of the output format."""
    summary = summaries[0][1]
    config = base.config
    within, long = summary["within"]["paper_budget"], summary["within"]["long_budget"]
    found = summary["structure"]
    steps = summary["sweeps_to_solve"]
    blocks: list[Block] = [
        ("h1", "Learning symmetry by back-propagation: experiment 1 of Rumelhart, Hinton & Williams (1986)"),
        (
            "p",
            'Rumelhart, Hinton and Williams, "Learning representations by back-propagating errors", Nature 323 '
            "(1986), trained a network with 6 inputs, 2 hidden units and 1 output unit to tell whether a 6-bit "
            "input is mirror-symmetric about its centre. They report that it learned in 1,425 sweeps and that "
            "the solution is elegant: each hidden unit weighs mirror-image inputs equally and with opposite "
            "signs, so symmetric inputs cancel, and the three pairs' weights stand in the ratio 1:2:4, so no "
            "asymmetric input cancels. This report repeats the experiment on many seeds.",
        ),
        ("h2", "Setup"),
        (
            "table",
            ("setting", "value"),
            [
                (
                    "network",
                    f"6-2-1, {config.activation} hidden units, logistic output, every unit with a trainable bias",
                ),
                ("data", "all 64 binary input vectors; target 1 for the 8 symmetric ones, else 0"),
                ("error", "E = 1/2 sum over the 64 cases of (y - d)^2 (summed, not averaged)"),
                (
                    "learning",
                    f"{config.optimizer}: gradient accumulated over all 64 cases, one weight change per sweep"
                    + (
                        f"; dw(t) = -eps dE/dw + alpha dw(t-1), eps {config.eps:g}, alpha {config.alpha:g}"
                        if config.optimizer == "sgd"
                        else f", lr {config.eps:g}"
                    )
                    + (f"; {config.scheduler} schedule" if config.scheduler != "none" else ""),
                ),
                (
                    "initial weights",
                    f"uniform in [-{config.init_range:g}, {config.init_range:g}], one generator per seed",
                ),
                (
                    "seeds",
                    f"{summary['seeds']} (seeds {config.first_seed} to {config.first_seed + summary['seeds'] - 1})",
                ),
                ("budgets", f"{config.sweeps:,} sweeps (the paper's) and {config.long_sweeps:,} sweeps"),
                ("solved", "every output on the right side of 0.5; strict: every output within 0.2 of its target"),
            ],
        ),
        ("h2", "Results against the paper"),
        (
            "table",
            ("measure", "paper", "here"),
            [
                (
                    f"solved within {config.sweeps:,} sweeps",
                    "yes (one network reported)",
                    f"{100 * within['solved']:.0f}% of seeds (strict: {100 * within['strict']:.0f}%)",
                ),
                (
                    f"solved within {config.long_sweeps:,} sweeps",
                    "-",
                    f"{100 * long['solved']:.0f}% of seeds (strict: {100 * long['strict']:.0f}%)",
                ),
                (
                    "sweeps to solve",
                    "1,425",
                    f"median {statistics.median(steps):,.0f}, range {min(steps):,}-{max(steps):,}"
                    if steps
                    else "never solved",
                ),
                (
                    "mirror weights opposite and ratio 1:2:4",
                    "yes",
                    f"{found['matching']} of {found['checked']} solved seeds" if found["checked"] else "-",
                ),
                (
                    "measured pair-size ratios (median)",
                    "1 : 2 : 4",
                    "1 : {:.2f} : {:.2f}".format(*found["median_ratios"]) if found["median_ratios"] else "-",
                ),
            ],
        ),
        (
            "p",
            "Ratio patterns of the solved networks' hidden units (pair sizes over the smallest, rounded to halves): "
            + (", ".join(f"{pattern} in {count}" for pattern, count in found["patterns"].items()) or "none")
            + ". Any pattern whose signed sums never cancel solves the task; 1:2:4 is the one the paper found.",
        ),
        (
            "figure",
            "weights",
            "Left: the weights of the paper's Figure 1. Right: a network learned here"
            + (f" (seed {config.first_seed + learned})" if learned is not None else "")
            + ".",
        ),
        (
            "figure",
            "sweeps",
            "How many sweeps each seed needed before every output was on the right side of 0.5 "
            "(green) and within 0.2 of its target (brown).",
        ),
        ("figure", "errors", "The error E of every seed during training; the dotted line at E = 4 is the trap."),
        ("h2", "Failures"),
        _failures(summary),
    ]
    if len(summaries) > 1:
        blocks += _workarounds(summaries, config)
    blocks.append(
        (
            "p",
            f"Training {summary['seeds']} seeds for {config.total_sweeps():,} sweeps took "
            f"{summary['seconds']:.1f} s on one CPU thread (all seeds at once, as batched tensors).",
        )
    )
    return blocks


def _failures(summary: dict[str, Any]) -> Block:
    unsolved = summary["unsolved"]
    if not unsolved["count"]:
        return ("p", "Every seed solved the task within the long budget.")
    kinds = "; ".join(f"{count} {kind}" for kind, count in unsolved["kinds"].items())
    errors = unsolved["final_error"]
    text = (
        f"{unsolved['count']} of {summary['seeds']} seeds had not solved the task after the long budget: "
        f"{kinds}. Their final E runs from {min(errors):.3f} to {max(errors):.3f} (solved seeds: median "
        f"{summary['solved_final_error_median']:.2g}); E = 4 is a network that answers 0 for every input. "
        f"In the unsolved seeds (medians) the output bias is {unsolved['output_bias_median']:.1f}, the largest "
        f"of the 64 outputs is {unsolved['largest_output_median']:.1g} and the largest input weight is "
        f"{unsolved['largest_input_weight_median']:.2f}."
    )
    if unsolved["largest_output_median"] < 0.01:
        text += (
            " The output unit is saturated near 0, where its slope y(1 - y), and with it every gradient, all "
            "but vanishes: the input weights stay too small to encode the mirror pairs."
        )
    return ("p", text)


def _workarounds(summaries: list[tuple[str, dict[str, Any]]], config: SymmetryConfig) -> list[Block]:
    rows, base_paper = [], summaries[0][1]["within"]["paper_budget"]["solved"]
    base_long = summaries[0][1]["within"]["long_budget"]["solved"]
    helped = []
    for name, summary in summaries:
        paper, long = summary["within"]["paper_budget"]["solved"], summary["within"]["long_budget"]["solved"]
        steps = summary["sweeps_to_solve"]
        rows.append(
            (
                name,
                f"{100 * paper:.0f}%",
                f"{100 * long:.0f}%",
                f"{statistics.median(steps):,.0f}" if steps else "-",
                f"{summary['structure']['matching']}/{summary['structure']['checked']}",
            )
        )
        if name != summaries[0][0] and (paper > base_paper or long > base_long):
            helped.append(name)
    verdict = (
        f"Measured against the base configuration, these helped: {', '.join(helped)}."
        if helped
        else "None of the workarounds beat the base configuration."
    )
    return [
        ("h2", "Workarounds"),
        ("p", "Each row changes one setting of the base configuration and trains the same seeds again."),
        (
            "table",
            (
                "configuration",
                f"solved ≤ {config.sweeps:,}",
                f"solved ≤ {config.long_sweeps:,}",
                "median sweeps to solve",
                "1:2:4 structure",
            ),
            rows,
        ),
        ("figure", "workarounds", "Seeds solved per configuration, within both budgets."),
        ("p", verdict),
    ]


def _markdown(blocks: list[Block], figures: dict[str, Path]) -> str:
    lines = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            lines += [("# " if kind == "h1" else "## ") + block[1], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "table":
            header, rows = block[1], block[2]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows] + [""]
        elif kind == "figure" and block[1] in figures:
            lines += [f"![{block[2]}]({figures[block[1]].name})", "", f"*{block[2]}*", ""]
    return "\n".join(lines)


def _html(blocks: list[Block], figures: dict[str, Path]) -> str:
    from mlplab.plots.report import html_page, png_data

    parts = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "p"):
            parts.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "table":
            # class k: the report style's left-aligned cells (these tables hold words, not columns of numbers)
            header = "".join(f"<th class=k>{html.escape(str(cell))}</th>" for cell in block[1])
            rows = "".join(
                "<tr>" + "".join(f"<td class=k>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
                for row in block[2]
            )
            parts.append(f"<table><tr>{header}</tr>{rows}</table>")
        elif kind == "figure" and block[1] in figures:
            data = png_data(figures[block[1]])
            parts.append(
                f'<figure><img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(block[2])}</figcaption></figure>"
            )
    return html_page("Symmetry experiment", "\n".join(parts))
