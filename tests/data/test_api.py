"""The public API of mlplab.data: every advertised name resolves, and importing the package stays cheap."""

from __future__ import annotations

import subprocess
import sys

import mlplab.data


def test_every_exported_name_resolves():
    for name in mlplab.data.__all__:
        assert getattr(mlplab.data, name) is not None, name
    assert set(mlplab.data.__all__) == set(mlplab.data._EXPORTS)


def test_import_does_not_load_torch():
    code = "import sys, mlplab.data; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
