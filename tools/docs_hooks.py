"""MkDocs hooks for mlplab's documentation site (``mkdocs.yml``: ``hooks: [tools/docs_hooks.py]``).

The reference pages are generated from the code, so they cannot drift from it: a page holding
``<!-- mlplab:cli -->`` gets every command's ``--help`` (from the argparse parsers themselves),
``<!-- mlplab:config -->`` every config key with its section, default and help,
``<!-- mlplab:api -->`` a mkdocstrings entry for every name ``import mlplab`` exports.

The lab notebooks become the Tutorials: before each build, the teacher's copy of every lab is
written as ``docs/tutorials/labs/NN_slug.ipynb`` (ignored by git), which mkdocs-jupyter renders.
Set ``MLPLAB_DOCS_NOTEBOOKS`` to a folder of executed notebooks (``NN_slug.ipynb``, as
``MLPLAB_NOTEBOOKS_OUT`` keeps them from the notebook tests, or ``tools/render_notebooks.py``
writes them) and the pages show their outputs and figures; without it they show the code only.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

_MARKER = re.compile(r"<!-- mlplab:(\w+) -->")

# The exports of `import mlplab`, grouped as a user looks for them (every export must be in one group).
API_GROUPS = {
    "Data": ["MNIST", "FashionMNIST", "KMNIST", "load_data", "Batches"],
    "Models": ["MLP"],
    "Training your own module": ["fit", "train_epoch", "evaluate", "Callback", "FitState", "EarlyStopping",
                                 "Steering", "WeightAverage", "MaxNorm", "Augmentation", "ProgressBar", "LivePlot",
                                 "Schedule", "History"],
    "Metrics": ["AverageMeter", "accuracy", "confusion_matrix", "per_class_accuracy"],
    "Configs and runs": ["Config", "from_preset", "load_config", "train", "Run", "open_run", "load_model",
                         "pretrained", "save_checkpoint", "load_checkpoint"],
    "scikit-learn": ["MLPClassifier"],
    "Errors": ["MlplabError"],
}


def on_config(config: Any) -> Any:
    """Write the lab notebooks where mkdocs-jupyter finds them (only files that changed, so `mkdocs serve`
    does not rebuild forever)."""
    write_lab_notebooks(Path(config["docs_dir"]) / "tutorials" / "labs", os.environ.get("MLPLAB_DOCS_NOTEBOOKS"))
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each ``<!-- mlplab:NAME -->`` marker by its generated reference."""
    generators = {"cli": cli_reference, "config": config_reference, "api": api_reference}

    def generate(match: re.Match) -> str:
        name = match.group(1)
        if name not in generators:
            raise ValueError(f"{page.file.src_path}: unknown marker mlplab:{name}")
        return generators[name]()

    return _MARKER.sub(generate, markdown)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """A notebook page's title and table of contents with the code in its headings: mkdocs-jupyter builds them from the
    headings with their code dropped ("Two recipes: and", linking to ``#1-two-recipes-and``, for "Two recipes:
    `fast` and `best`", whose anchor is ``#1-two-recipes-fast-and-best``). Each entry takes the text and the
    anchor of its heading on the page, in order."""
    if page.file.src_path.endswith(".ipynb"):
        headings = _HEADING.findall(html)
        if headings:  # the page's title too, which the nav shows ("Lab 5: From tensors to `nn.Module`")
            page.title = _plain(headings[0][1])
        links = _in_order(page.toc)
        if len(headings) == len(links):
            for link, (anchor, inner) in zip(links, headings):
                link.id, link.title = anchor, _plain(inner)
    return html


def _in_order(toc: Any) -> list[Any]:
    """The entries of a table of contents in page order (each before its children)."""
    found = []
    for link in toc:
        found += [link, *_in_order(link.children)]
    return found


_HEADING = re.compile(r'<h[1-6] id="([^"]+)"[^>]*>(.*?)</h[1-6]>', flags=re.DOTALL)


def _plain(inner: str) -> str:
    """A heading's HTML as plain text: tags and the permalink sign dropped, entities kept (the toc escapes none)."""
    text = re.sub(r"<a [^>]*anchor-link[^>]*>.*?</a>", "", inner, flags=re.DOTALL)
    return " ".join(re.sub(r"<[^>]+>", "", text).split()).rstrip("¶").strip()


def write_lab_notebooks(folder: Path, executed: str | None) -> list[Path]:
    """Each lab as ``folder/NN_slug.ipynb``: the executed copy from ``executed`` if it holds one, else the
    teacher's copy unexecuted. Returns the files."""
    import nbformat

    from mlplab import notebooks

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for lab in notebooks.labs():
        source = Path(executed) / f"{lab.name}.ipynb" if executed else None
        if source is not None and source.is_file():
            text = source.read_text(encoding="utf-8")
        else:
            text = nbformat.writes(notebooks.teacher_copy(notebooks.read(lab)))
        path = folder / f"{lab.name}.ipynb"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def cli_reference() -> str:
    """Every command's ``--help``, as argparse prints it, under a heading per command."""
    from mlplab.cli.main import build_parser

    sections = []
    for name, parser in _commands(build_parser(), "mlplab"):
        level = "#" * min(2 + name.count(" ") - 1, 4)
        help_text = parser.format_help().replace("```", "'''")
        sections.append(f"{level} `{name}`\n\n```text\n{help_text.rstrip()}\n```\n")
    return "\n".join(sections)


def _commands(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, argparse.ArgumentParser]]:
    """``(name, parser)`` for ``parser`` and every subcommand under it, depth first, as registered."""
    found = [(name, parser)]
    for action in parser._actions:  # argparse keeps subcommands only here; stable since Python 3.2
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub_parser in action.choices.items():
                found += _commands(sub_parser, f"{name} {sub_name}")
    return found


def config_reference() -> str:
    """Every config key: the TOML section it lives in, its default, and its help (bounds and choices included)."""
    from mlplab.config import SECTION_TYPES
    from dataclasses import MISSING, fields

    rows = ["| key | section | default | meaning |", "|---|---|---|---|"]
    for section, kind in SECTION_TYPES.items():
        for field in fields(kind):
            default = field.default if field.default is not MISSING else field.default_factory()  # type: ignore[misc]
            meaning = field.metadata.get("help", "")
            bounds = field.metadata.get("bounds")
            if bounds is not None:
                meaning += f" ({bounds})"
            meaning = meaning.replace("|", "\\|")
            rows.append(f"| `{field.name}` | `[{section}]` | `{_shown(default)}` | {meaning} |")
    return "\n".join(rows) + "\n"


def _shown(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "()"
    return str(value)


def api_reference() -> str:
    """A mkdocstrings entry for every export of ``import mlplab``, grouped; an export left out of the groups fails."""
    import mlplab

    exports = dict(mlplab._EXPORTS)
    grouped = [name for names in API_GROUPS.values() for name in names]
    missing = sorted(set(exports) - set(grouped))
    unknown = sorted(set(grouped) - set(exports))
    if missing or unknown:
        raise ValueError(f"tools/docs_hooks.py API_GROUPS: add {missing}, drop {unknown}")
    parts = []
    for group, names in API_GROUPS.items():
        parts.append(f"## {group}\n")
        for name in names:
            parts.append(f"::: {exports[name]}.{name}\n    options:\n      heading_level: 3\n      show_root_full_path: false\n")
    return "\n".join(parts)
