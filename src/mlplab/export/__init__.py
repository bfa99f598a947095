"""A trained run made portable: its weights as safetensors, or the whole model as an ONNX graph.

    export_safetensors   the weights (no pickle), the config in the file's metadata (`safetensors_file`)
    load_safetensors     an exported file back to mlplab's MLP
    export_onnx          the model, with its input scaling and class names, as ONNX (`onnx_file`; the
                         ``onnx`` extra), checked in onnxruntime before it is written

``mlplab export RUN_DIR --format {safetensors,onnx}`` calls these; ONNX's packages are imported
only when an ONNX export is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplab.lazy import lazy_names

_EXPORTS = {
    "export_safetensors": "safetensors_file",
    "load_safetensors": "safetensors_file",
    "export_onnx": "onnx_file",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from mlplab.export.onnx_file import export_onnx as export_onnx
    from mlplab.export.safetensors_file import export_safetensors as export_safetensors
    from mlplab.export.safetensors_file import load_safetensors as load_safetensors

__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals(), __all__)
