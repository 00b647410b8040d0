"""A .tflite flatbuffer for one separable layer, written without TensorFlow.

The model is DEPTHWISE_CONV_2D then CONV_2D (1x1), preceded by a PAD op when the layer's padding is
explicit (TFLite's own SAME padding is TF's, so SAME and VALID layers need none). It is built with
the object API of the TFLite schema bindings that ship with ai-edge-litert
(``ai_edge_litert.schema_py_generated``) and serialized with the ``flatbuffers`` package.

Tensor layouts, TFLite's:

    input               [N, H, W, C]          float32
    depthwise filter    [1, KH, KW, C*M]      channel q*M + r, as TF's [KH, KW, C, M] flattened
    depthwise bias      [C*M]                 zeros (the layer's bias belongs to the pointwise step)
    pointwise filter    [O, 1, 1, C*M]        OHWI
    pointwise bias      [O]                   the layer's bias, or zeros
    output              [N, OH, OW, O]
"""

from __future__ import annotations

import numpy as np

from ..spec import SeparableConv2D, SpecError

__all__ = ["separable_tflite_model"]

_FILE_IDENTIFIER = b"TFL3"
_SCHEMA_VERSION = 3


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


class _GraphBuilder:
    """Collects tensors, buffers and operators of a single-subgraph model."""

    def __init__(self, schema) -> None:
        self.s = schema
        # Buffer 0 is the empty sentinel every tensor without data points at, by convention.
        self.buffers = [schema.BufferT()]
        self.tensors: list = []
        self.operators: list = []
        self.opcodes: list[int] = []

    def tensor(
        self, name: str, shape, data: np.ndarray | None = None, kind: int | None = None
    ) -> int:
        s = self.s
        buffer = 0
        if data is not None:
            raw = np.ascontiguousarray(data)
            self.buffers.append(s.BufferT(data=raw.view(np.uint8).reshape(-1)))
            buffer = len(self.buffers) - 1
        kind = s.TensorType.FLOAT32 if kind is None else kind
        self.tensors.append(
            s.TensorT(shape=[int(v) for v in shape], type=kind, buffer=buffer, name=name)
        )
        return len(self.tensors) - 1

    def operator(self, code: int, inputs, outputs, options_type: int, options) -> None:
        if code not in self.opcodes:
            self.opcodes.append(code)
        self.operators.append(
            self.s.OperatorT(
                opcodeIndex=self.opcodes.index(code),
                inputs=list(inputs),
                outputs=list(outputs),
                builtinOptionsType=options_type,
                builtinOptions=options,
            )
        )

    def serialize(self, inputs, outputs) -> bytes:
        import flatbuffers

        s = self.s
        codes = [
            # deprecated_builtin_code: int8 for old readers; codes past 127 live in builtin_code.
            s.OperatorCodeT(deprecatedBuiltinCode=min(code, 127), builtinCode=code, version=1)
            for code in self.opcodes
        ]
        graph = s.SubGraphT(
            tensors=self.tensors,
            inputs=list(inputs),
            outputs=list(outputs),
            operators=self.operators,
            name="main",
        )
        model = s.ModelT(
            version=_SCHEMA_VERSION,
            operatorCodes=codes,
            subgraphs=[graph],
            description="sepconv_codegen separable layer",
            buffers=self.buffers,
        )
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
        return bytes(builder.Output())


def _activation(schema, layer: SeparableConv2D) -> int:
    kinds = schema.ActivationFunctionType
    return {None: kinds.NONE, "relu": kinds.RELU, "relu6": kinds.RELU6}[layer.activation]


def separable_tflite_model(
    layer: SeparableConv2D,
    depthwise_filter: np.ndarray,
    pointwise_filter: np.ndarray,
    bias: np.ndarray | None = None,
) -> bytes:
    """The .tflite bytes computing ``layer`` with these weights baked in (TF layouts in)."""
    if layer.dtype != "float32":
        raise SpecError(f"the TFLite model supports float32 layers only, got {layer.dtype}")
    s = _schema()
    g = _GraphBuilder(s)
    n, h, w, c = layer.input_shape
    _, oh, ow, o = layer.output_shape
    kh, kw = layer.kernel_size
    cm = layer.depthwise_channels
    x = g.tensor("input", layer.input_shape)
    inputs = [x]
    padding = s.Padding.VALID if layer.padding == "VALID" else s.Padding.SAME
    if layer.padding not in ("SAME", "VALID"):
        # Explicit pads: a PAD op in front of a VALID depthwise convolution.
        (pt, pb), (pl, pr) = layer.pads
        paddings = np.array([[0, 0], [pt, pb], [pl, pr], [0, 0]], dtype=np.int32)
        pads = g.tensor("paddings", (4, 2), paddings, kind=s.TensorType.INT32)
        padded = g.tensor("padded", (n, h + pt + pb, w + pl + pr, c))
        g.operator(
            s.BuiltinOperator.PAD, [x, pads], [padded], s.BuiltinOptions.PadOptions, s.PadOptionsT()
        )
        x, padding = padded, s.Padding.VALID

    dw = g.tensor(
        "depthwise_filter",
        (1, kh, kw, cm),
        np.asarray(depthwise_filter, np.float32).reshape(1, kh, kw, cm),
    )
    dw_bias = g.tensor("depthwise_bias", (cm,), np.zeros(cm, np.float32))
    mid = g.tensor("depthwise", (n, oh, ow, cm))
    dw_options = s.DepthwiseConv2DOptionsT()
    dw_options.padding = padding
    dw_options.strideH, dw_options.strideW = layer.strides
    dw_options.dilationHFactor, dw_options.dilationWFactor = layer.dilation
    dw_options.depthMultiplier = layer.channel_multiplier
    dw_options.fusedActivationFunction = s.ActivationFunctionType.NONE
    g.operator(
        s.BuiltinOperator.DEPTHWISE_CONV_2D,
        [x, dw, dw_bias],
        [mid],
        s.BuiltinOptions.DepthwiseConv2DOptions,
        dw_options,
    )

    pw_ohwi = np.ascontiguousarray(np.asarray(pointwise_filter, np.float32)[0, 0].T).reshape(
        o, 1, 1, cm
    )
    pw = g.tensor("pointwise_filter", (o, 1, 1, cm), pw_ohwi)
    pw_bias_data = np.zeros(o, np.float32) if bias is None else np.asarray(bias, np.float32)
    pw_bias = g.tensor("pointwise_bias", (o,), pw_bias_data)
    y = g.tensor("output", layer.output_shape)
    pw_options = s.Conv2DOptionsT()
    pw_options.padding = s.Padding.VALID
    pw_options.strideH = pw_options.strideW = 1
    pw_options.dilationHFactor = pw_options.dilationWFactor = 1
    pw_options.fusedActivationFunction = _activation(s, layer)
    g.operator(
        s.BuiltinOperator.CONV_2D,
        [mid, pw, pw_bias],
        [y],
        s.BuiltinOptions.Conv2DOptions,
        pw_options,
    )
    return g.serialize(inputs, [y])
