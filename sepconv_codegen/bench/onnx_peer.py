"""ONNX Runtime: an ONNX graph of Conv (group=C) then a 1x1 Conv, run by the CPU execution provider.

ONNX's Conv is NCHW, so the input is transposed once when binding, not in the timed call; the output
stays NCHW (ORT's native layout) and is transposed to NHWC only for checking. Pads are explicit and
may be asymmetric: ONNX Conv's ``pads`` are [top, left, bottom, right]. The session runs through an
IOBinding over pre-allocated input and output buffers, so a call allocates nothing.

Weights (TF layout in):

    depthwise W [C*M, 1, KH, KW]   group=C: output channel q*M + r reads input channel q
    pointwise W [O, C*M, 1, 1], B [O]
"""

from __future__ import annotations

import numpy as np

from ..spec import SeparableConv2D
from .peers import IDLE_SPIN_US, Bound, Peer

# Opset 17 / IR 8: old enough for any onnxruntime of the last few years, new enough for Clip's
# min/max inputs.
OPSET = 17
IR_VERSION = 8


def separable_onnx_model(layer: SeparableConv2D, arrays: list[np.ndarray]) -> bytes:
    """The serialized ONNX model of ``layer``, weights as initializers (input X, output Y)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    _, dw, pw = arrays[:3]
    kh, kw = layer.kernel_size
    cm, out = layer.depthwise_channels, layer.out_channels
    n, h, w, c = layer.input_shape
    (pt, pb), (pl, pr) = layer.pads
    init = [
        numpy_helper.from_array(
            np.ascontiguousarray(dw.transpose(2, 3, 0, 1).reshape(cm, 1, kh, kw)), "W_dw"
        ),
        numpy_helper.from_array(np.ascontiguousarray(pw[0, 0].T).reshape(out, cm, 1, 1), "W_pw"),
    ]
    pw_inputs = ["D", "W_pw"]
    if layer.bias:
        init.append(numpy_helper.from_array(np.ascontiguousarray(arrays[3]), "B_pw"))
        pw_inputs.append("B_pw")
    last = "Y" if layer.activation is None else "Z"
    nodes = [
        helper.make_node(
            "Conv",
            ["X", "W_dw"],
            ["D"],
            group=c,
            kernel_shape=[kh, kw],
            strides=list(layer.strides),
            dilations=list(layer.dilation),
            pads=[pt, pl, pb, pr],
        ),
        helper.make_node("Conv", pw_inputs, [last], kernel_shape=[1, 1]),
    ]
    if layer.activation == "relu":
        nodes.append(helper.make_node("Relu", ["Z"], ["Y"]))
    elif layer.activation == "relu6":
        init += [
            numpy_helper.from_array(np.array(v, np.float32), name)
            for name, v in (("lo", 0.0), ("hi", 6.0))
        ]
        nodes.append(helper.make_node("Clip", ["Z", "lo", "hi"], ["Y"]))
    _, oh, ow, _ = layer.output_shape
    graph = helper.make_graph(
        nodes,
        "separable",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [n, c, h, w])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, out, oh, ow])],
        initializer=init,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sepconv_codegen"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()


class OnnxRuntimePeer(Peer):
    name = "onnxruntime"
    modules = ("onnx", "onnxruntime")
    distribution = "onnxruntime"

    def version(self) -> str:
        import onnxruntime

        return str(onnxruntime.__version__)

    def build(self, layer: SeparableConv2D, arrays: list[np.ndarray], threads: int) -> Bound:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initializers are noise here
        # Idle workers spin this long before sleeping (ORT >= 1.26; older versions ignore the key):
        # the same short budget the benchmark gives TVM's pool, so neither steals cores from the
        # implementation timed after it.
        options.add_session_config_entry("session.intra_op.spin_duration_us", str(IDLE_SPIN_US))
        session = ort.InferenceSession(
            separable_onnx_model(layer, arrays), options, providers=["CPUExecutionProvider"]
        )
        x = np.ascontiguousarray(arrays[0].transpose(0, 3, 1, 2))
        n, oh, ow, o = layer.output_shape
        y = np.empty((n, o, oh, ow), np.float32)
        binding = session.io_binding()
        binding.bind_ortvalue_input("X", ort.OrtValue.ortvalue_from_numpy(x))
        binding.bind_ortvalue_output("Y", ort.OrtValue.ortvalue_from_numpy(y))
        run_with_binding = session.run_with_iobinding
        buffers = (x, y)  # the OrtValues borrow these arrays: keep them alive with the call

        def run():
            run_with_binding(binding)
            return buffers[1]

        def output() -> np.ndarray:
            return y.transpose(0, 2, 3, 1).copy()

        return Bound(run, output, "NCHW in and out (ONNX Conv's layout), IOBinding")
