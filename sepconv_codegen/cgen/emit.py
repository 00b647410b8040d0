"""emit_c: a layer as standalone C99 (NAME.h, NAME.c), rendered from the Jinja templates.

The templates live in templates/ (installed as sepconv_codegen._templates). One strict Environment
renders all of them: an undefined variable is an error, never an empty string. Every number the
templates print comes from :mod:`sepconv_codegen.cgen.plan`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2

from .._resources import templates_dir
from ..kernel import output_folder
from ..schedule.knobs import Knobs
from ..spec import SeparableConv2D, SpecError
from .measure import describe
from .plan import KernelPlan, make_plan
from .weights import bake, load_weights

__all__ = ["EmittedKernel", "c_manifest_entry", "emit_c", "environment", "render"]

HEADER_TEMPLATE = "sepconv.h.j2"
SOURCE_TEMPLATE = "sepconv.c.j2"


@dataclass(frozen=True)
class EmittedKernel:
    """The files emit_c wrote and what a caller needs to use them.

    function       the C function (and file stem): :func:`sepconv_codegen.naming.kernel_name`,
                   plus ``_w`` and a digest of the weights when they are baked in (so that two
                   layers of the same shape in one firmware image do not clash)
    header/source  NAME.h and NAME.c
    scratch_bytes  NAME_SCRATCH_BYTES: the caller-owned scratch buffer the function needs
    knobs          the knobs the kernel was generated with
    baked_weights  True when the weights are compiled in (the function takes input, output, scratch)
    """

    function: str
    header: Path
    source: Path
    scratch_bytes: int
    knobs: Knobs
    baked_weights: bool
    plan: KernelPlan


def _require(condition: Any, message: str) -> str:
    """A template's contract: ``{% do require(cond, "why") %}`` fails the render unless cond."""
    if not condition:
        raise jinja2.TemplateRuntimeError(f"template contract violated: {message}")
    return ""


@functools.cache
def environment() -> jinja2.Environment:
    """The one Jinja environment for the C templates (strict, created on first use)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        extensions=["jinja2.ext.do"],
    )
    env.globals["require"] = _require
    return env


def render(template_name: str, **context: Any) -> str:
    """Render one template; ``template_name`` is also passed in, for the do-not-edit preamble."""
    return environment().get_template(template_name).render(template_name=template_name, **context)


def comment_safe_json(data: Any) -> str:
    """JSON that cannot end a C comment or form a trigraph: '*/' and '?' escaped (still JSON)."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=True)
    return text.replace("*/", "*\\/").replace("?", "\\u003f")


def weights_digest(arrays: dict[str, Any]) -> str:
    """8 hex digits identifying weight values (names, shapes and bytes)."""
    digest = hashlib.sha1()
    for name, array in arrays.items():
        digest.update(f"{name}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:8]


def _formula(layer: SeparableConv2D) -> str:
    value = "pointwise(depthwise(input))" + (" + bias" if layer.bias else "")
    return f"{layer.activation}({value})" if layer.activation else value


def _sizes(layer: SeparableConv2D) -> dict[str, int]:
    return {
        "input": math.prod(layer.input_shape),
        "depthwise_filter": math.prod(layer.depthwise_filter_shape),
        "pointwise_filter": math.prod(layer.pointwise_filter_shape),
        "bias": layer.out_channels if layer.bias else 0,
        "output": math.prod(layer.output_shape),
    }


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file holds exactly it already (keeps mtimes: builds stay warm)."""
    try:
        if path.read_text() == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    except OSError as err:  # a folder by that name, or a file we may not read
        raise SpecError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise SpecError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
    return True


def emit_c(
    layer: SeparableConv2D,
    out_dir: str | os.PathLike,
    knobs: Knobs | None = None,
    weights: Any = None,
) -> EmittedKernel:
    """Write ``NAME.h`` and ``NAME.c`` for ``layer`` into ``out_dir``; returns what was written.

    knobs: how to tile (None: :func:`~sepconv_codegen.cgen.plan.default_c_knobs`).
    weights: None for a kernel that takes its filters as arguments, or the weights to compile in
    as static const arrays: a .npz path (keys depthwise_filter, pointwise_filter[, bias]), a
    mapping with those keys, or a tuple (depthwise_filter, pointwise_filter[, bias]), float32.
    Files whose content is unchanged are not rewritten.
    """
    plan = make_plan(layer, knobs)
    baked = []
    if weights is not None:
        arrays = load_weights(layer, weights)
        plan = replace(plan, function=f"{plan.function}_w{weights_digest(arrays)}")
        baked = bake(arrays)
    out = output_folder(out_dir, "out_dir")
    context = {
        "fn": plan.function,
        "layer": layer,
        "plan": plan,
        "baked": weights is not None,
        "weights": baked,
        "sizes": _sizes(layer),
        "formula": _formula(layer),
        "layer_json": comment_safe_json(layer.to_dict()),
        "knobs_json": comment_safe_json(plan.knobs.to_dict()),
    }
    header = out / f"{plan.function}.h"
    source = out / f"{plan.function}.c"
    write_if_changed(header, render(HEADER_TEMPLATE, **context))
    write_if_changed(source, render(SOURCE_TEMPLATE, **context))
    return EmittedKernel(
        function=plan.function,
        header=header,
        source=source,
        scratch_bytes=plan.scratch_bytes,
        knobs=plan.knobs,
        baked_weights=weights is not None,
        plan=plan,
    )


def c_manifest_entry(
    layer: SeparableConv2D, out_dir: str | os.PathLike, knobs: Knobs | None = None
) -> dict[str, Any]:
    """Emit the layer's C kernel into ``out_dir`` and describe it for a build manifest.

    Returns the file names, function, knobs, scratch bytes, peak RAM (this kernel vs the layer
    computed unfused) and, per toolchain present on this machine, code size and stack use.
    """
    return describe(emit_c(layer, out_dir, knobs=knobs))
