"""The ``serve`` extra: what `mlplab serve` needs beyond mlplab, checked in one place."""

from __future__ import annotations

from mlplab.errors import MlplabError

# import name -> the package that provides it
PACKAGES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart"}


def require_serve_extra(command: str = "mlplab serve") -> None:
    """Return quietly when FastAPI, uvicorn and python-multipart import; else one line saying
    how to install them (`MlplabError`), naming ``command`` as what needs them."""
    import importlib

    for module, package in PACKAGES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            raise MlplabError(
                f"{command} needs {package}, which is not installed; "
                f'install the serve extra: pip install "mlplab[serve]"'
            ) from None
