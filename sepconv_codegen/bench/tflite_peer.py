"""TFLite (ai-edge-litert): DEPTHWISE_CONV_2D then CONV_2D, run by the Interpreter with XNNPACK.

The model is written by :mod:`.tflite_model`. The Interpreter's default op resolver applies the
XNNPACK delegate with the interpreter's ``num_threads``; build() checks that it did (a DELEGATE
node produces the model's output) and says so in the notes, since an undelegated TFLite is 3-4x
slower and would flatter us. The input is set once; the timed call is ``invoke()`` alone, and the
output tensor is copied out only for checking.
"""

from __future__ import annotations

import numpy as np

from ..spec import SeparableConv2D
from .peers import Bound, Peer
from .tflite_model import separable_tflite_model


def delegated_outputs(interpreter) -> bool:
    """Whether a DELEGATE node (XNNPACK: the only default delegate on CPU) writes the output."""
    outputs = {d["index"] for d in interpreter.get_output_details()}
    for op in interpreter._get_ops_details():  # the only public-ish view of the node list
        if op["op_name"] == "DELEGATE" and outputs <= {int(t) for t in op["outputs"]}:
            return True
    return False


class TFLitePeer(Peer):
    name = "tflite"
    modules = ("ai_edge_litert", "flatbuffers")
    distribution = "ai-edge-litert"

    def build(self, layer: SeparableConv2D, arrays: list[np.ndarray], threads: int) -> Bound:
        from ai_edge_litert.interpreter import Interpreter

        bias = arrays[3] if layer.bias else None
        model = separable_tflite_model(layer, arrays[1], arrays[2], bias)
        interpreter = Interpreter(model_content=model, num_threads=threads)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], arrays[0])
        output_index = interpreter.get_output_details()[0]["index"]
        xnnpack = delegated_outputs(interpreter)
        invoke = interpreter.invoke

        def output() -> np.ndarray:
            return np.array(interpreter.get_tensor(output_index))

        notes = "XNNPACK delegate" if xnnpack else "NOT delegated to XNNPACK (built-in kernels)"
        return Bound(invoke, output, notes, {"xnnpack": xnnpack, "model_bytes": len(model)})
