"""`python -m mlplab` is the same as the `mlplab` command."""

from mlplab.cli.main import console

raise SystemExit(console())
