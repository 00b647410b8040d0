"""build(): a layer spec in, a callable compiled kernel out."""

from __future__ import annotations

from .kernel import Kernel
from .naming import kernel_name, target_detail
from .schedule.knobs import Knobs
from .spec import SeparableConv2D, SpecError
from .targets import Target, is_c_backend, resolve_target

__all__ = ["build", "choose_knobs"]


def choose_knobs(layer: SeparableConv2D, target: Target, database=None) -> tuple[Knobs, str]:
    """The knobs to build with and where they came from: a tuning record, else the default."""
    from .tuning.records import best_record

    record, why = best_record(layer, target, database)
    if record is not None:
        return record.knobs, record.source
    default = target.schedule_space().default_knobs(layer, target)
    return default, "default" + (f" ({why})" if why else "")


def build(
    layer: SeparableConv2D,
    target: str | dict | Target = "llvm",
    *,
    knobs: Knobs | None = None,
    database=None,
) -> Kernel:
    """Compile ``layer`` for ``target``; returns a callable :class:`~sepconv_codegen.kernel.Kernel`.

    knobs: the schedule to use; when None, the best tuning record for this layer and target from
    ``database`` (a path or Database) or the schedules shipped with the package, else the default.
    """
    if not isinstance(layer, SeparableConv2D):
        raise SpecError(f"layer must be a SeparableConv2D, got {type(layer).__name__}")
    if is_c_backend(target):
        from .cgen.build import build_c

        if database is not None:  # never read: say so rather than build without it
            raise SpecError(f"database={database!r} holds TVM schedules: target 'c' builds the C "
                            "kernel with its own default knobs (or knobs=)")
        return build_c(layer, knobs=knobs)
    resolved = resolve_target(target)
    if knobs is not None and not isinstance(knobs, Knobs):
        raise SpecError(f"knobs must be a Knobs, got {type(knobs).__name__}")
    source = "given"
    if knobs is None:
        knobs, source = choose_knobs(layer, resolved, database)
    return compile_kernel(layer, resolved, knobs, source)


# TVM indexes a tensor with 32-bit integers when its shape fits them; past that, lowering fails
# deep inside TVM (a literal "exceeds range of int32").
INT32_ELEMENTS = 2**31 - 1


def check_indexable(layer: SeparableConv2D) -> None:
    """Refuse a layer whose tensors (input with its padding, intermediate, output, pointwise
    filter; flat runs add up to one run of pixels, packing rounds the output channels up to 64)
    hold more elements than 32-bit indices reach."""
    n, h, w, c = layer.input_shape
    (top, bottom), (left, right) = layer.pads
    _, oh, ow, o = layer.output_shape
    pixels = n * (oh * ow + 64)
    panels = -(-o // 64) * 64  # packed filter panels round the output channels up
    padding = f" with padding {layer.pads}" if top or bottom or left or right else ""
    for elements, what in (
        (n * (h + top + bottom) * (w + left + right) * c, f"input_shape {layer.input_shape}{padding}"),
        (pixels * layer.depthwise_channels,
         f"its intermediate {(n, oh, ow, layer.depthwise_channels)}"),
        (pixels * panels, f"its output {layer.output_shape}"),
        (layer.depthwise_channels * panels, f"its pointwise filter {layer.pointwise_filter_shape}"),
    ):
        if elements > INT32_ELEMENTS:
            raise SpecError(
                f"layer {layer.name!r}: {what} needs {elements} elements of index range, more "
                f"than the {INT32_ELEMENTS} that TVM kernels address; split the batch or the "
                f"image, or emit C (target 'c', whose indices are size_t)"
            )


def compile_kernel(layer: SeparableConv2D, target: Target, knobs: Knobs, source: str) -> Kernel:
    """Schedule and compile with exactly these knobs (the tuner's entry point too)."""
    from .tvm_backend.cross import kernel_class
    from .tvm_backend.module import compile_schedule
    from .tvm_backend.schedules import schedule_for

    check_indexable(layer)

    sch = schedule_for(target)(layer, knobs)
    module = compile_schedule(sch, target)
    name = kernel_name(layer, target.name, knobs, target_detail(target))
    return kernel_class(target)(layer, name, target, knobs, source, module)
