"""`mlplab report SWEEP_DIR`: one self-contained page with every setting ranked and the sweep's figures."""

from __future__ import annotations

import json
import re

import pytest

from mlplab.cli.main import main
from mlplab.config import Config, apply_overrides
from mlplab.sweep.directory import run_sweep
from mlplab.sweep.grid import expand, parse_grid

pytest.importorskip("matplotlib")
pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(hidden=(16,), epochs=1, val_size=50_000, device="cpu", progress=False, download=False, threads=1)
GRID = ["lr=0.01,0.05", "seed=0-1"]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps") / "tiny"
    run_sweep(apply_overrides(Config(), TINY), expand(parse_grid(GRID)), out, grid=parse_grid(GRID), calibrate=False)
    return out


def test_the_page_ranks_every_setting_and_embeds_the_figures(sweep_dir, capsys):
    assert main(["report", str(sweep_dir)]) == 0
    assert f"wrote {sweep_dir / 'report.html'}" in capsys.readouterr().out
    page = (sweep_dir / "report.html").read_text()
    settings = json.loads((sweep_dir / "settings.json").read_text())
    rows = re.findall(r"<tr><td class=k>([^<]*)</td>", page)
    assert rows == [str(s["lr"]) for s in settings]  # one row per setting, in the ranked order
    assert f"{100 * settings[0]['test_accuracy_mean']:.2f}%" in page
    assert page.count("data:image/png;base64,") == 2  # accuracy by lr, and the curves
    assert page.count("<figcaption>Each marker is a setting's mean over its seeds") == 1  # what the markers mean
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing to fetch: it opens offline
    assert "mlplab train --config" in page and "best.toml" in page


def test_an_unfinished_sweep_is_one_line(sweep_dir, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "sweep.toml").write_text((sweep_dir / "sweep.toml").read_text())
    assert main(["report", str(unfinished)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "did not finish" in error[0]
