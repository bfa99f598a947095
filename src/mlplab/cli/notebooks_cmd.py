"""`mlplab notebooks`: list the labs' notebooks, or write the teacher's or the students' copies into a folder."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `notebooks` command."""
    parser = subparsers.add_parser(
        "notebooks",
        help="write the labs as Jupyter notebooks (the teacher's copy, or --student without solutions)",
        description="The course's labs as Jupyter notebooks, shipped inside mlplab. Without a folder, list them; "
        "with one, write them there as .ipynb files (JupyterLab, Notebook and VS Code open them). "
        "Existing files are never replaced unless --force is given.",
    )
    parser.add_argument("folder", nargs="?", help="where to write the notebooks (created if missing)")
    parser.add_argument(
        "--student",
        action="store_true",
        help="the students' copies: each solution replaced by its starter cell (default: the "
        "teacher's copies, with solutions)",
    )
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=("ipynb", "py"),
        default="ipynb",
        help="ipynb notebooks, or Jupytext percent scripts as stored (default: ipynb)",
    )
    parser.add_argument("--only", nargs="+", metavar="LAB", help="only these labs, by name or number (default: all)")
    parser.add_argument("--force", action="store_true", help="replace notebooks that already exist in the folder")
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """List the labs, or write them and print one line per file."""
    from mlplab import notebooks

    if args.folder is None:
        for lab in notebooks.labs():
            print(f"{lab.name:<38} {lab.title}")
        print("write them with: mlplab notebooks FOLDER  (--student: without the solutions)")
        return 0
    written = notebooks.write(args.folder, student=args.student, fmt=args.fmt, force=args.force, names=args.only)
    copy = "students' copy, without solutions" if args.student else "teacher's copy, with solutions"
    for path in written:
        print(f"wrote {path}")
    print(f"{len(written)} notebooks ({copy}); open them with: jupyter lab {args.folder}")
    return 0
