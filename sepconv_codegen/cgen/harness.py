"""A check program for an emitted kernel, runnable wherever its compiler's programs run.

The program embeds the test input (and the weights, for a kernel without baked weights), calls
the kernel once and prints its output bit-exactly in hex, so a run on an emulator or a board can
be compared with the reference in Python.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..spec import SpecError
from .emit import EmittedKernel, comment_safe_json, render, write_if_changed
from .weights import bake, weight_shapes

__all__ = ["emit_harness", "parse_harness_output"]

HARNESS_TEMPLATE = "harness.c.j2"


def emit_harness(
    emitted: EmittedKernel, arrays: list[np.ndarray], path: Path | None = None
) -> Path:
    """Write the check program for ``emitted`` (default: NAME_harness.c beside the kernel).

    arrays: input, depthwise_filter, pointwise_filter[, bias] as for a Kernel call; the weights are
    ignored when the kernel has them baked in.
    """
    layer = emitted.plan.layer
    shapes = {"input": layer.input_shape, **weight_shapes(layer)}
    if len(arrays) != len(shapes):
        raise SpecError(
            f"the harness needs {len(shapes)} arrays ({', '.join(shapes)}), got {len(arrays)}"
        )
    for (name, shape), array in zip(shapes.items(), arrays):
        if array.dtype != np.float32 or array.shape != shape:
            raise SpecError(
                f"{name} must be float32 of shape {shape}, got {array.dtype} {array.shape}"
            )
    if emitted.baked_weights:
        embedded, arguments = ["input"], ["input"]
    else:
        embedded = list(shapes)
        arguments = [
            "input",
            "depthwise_filter",
            "pointwise_filter",
            "bias" if layer.bias else "NULL",
        ]
    tensors = bake({name: array for name, array in zip(shapes, arrays) if name in embedded})
    text = render(
        HARNESS_TEMPLATE,
        fn=emitted.function,
        arrays=tensors,
        arguments=", ".join(arguments),
        layer_json=comment_safe_json(layer.to_dict()),
        knobs_json=comment_safe_json(emitted.knobs.to_dict()),
    )
    path = path or emitted.source.with_name(f"{emitted.function}_harness.c")
    write_if_changed(path, text)
    return path


_OUTPUT_RE = re.compile(r"status (-?\d+)\s+begin\s+(.*?)\s*end", re.DOTALL)


def parse_harness_output(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """The output array a harness printed; raises ValueError if the run failed or was cut short."""
    match = _OUTPUT_RE.search(text)
    if match is None:
        raise ValueError(f"no complete harness output in:\n{text[-2000:]}")
    if int(match.group(1)) != 0:
        raise ValueError(f"the kernel returned status {match.group(1)}")
    words = match.group(2).split()
    values = np.array([int(word, 16) for word in words], dtype=np.uint32).view(np.float32)
    if values.size != int(np.prod(shape)):
        raise ValueError(
            f"the harness printed {values.size} values, expected {int(np.prod(shape))}"
        )
    return values.reshape(shape)
