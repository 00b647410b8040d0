"""`build`: compile every layer of a spec, check each against the reference, write a manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..builder import build, check_indexable
from ..check import check_kernel, time_kernel
from ..kernel import output_folder
from ..spec import SpecError
from ..targets import can_emulate, check_cross_compiler, is_c_backend, resolve_target
from ..tuning.records import check_database
from .common import add_spec_argument, add_target_argument, name_width, network_from_args


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "build", help="compile kernels for every layer of a spec (default: MobileNetV1's blocks)",
        description="Compile every layer, check it against the numpy reference on random data, time "
                    "it, and write the libraries and a manifest.json into the output folder. "
                    "--target c compiles the standalone C (what `emit` writes) with gcc for this "
                    "machine instead; its libraries load with sepconv_codegen.load too.",
    )
    add_spec_argument(parser)
    add_target_argument(parser, extra="; 'c': the standalone C, compiled for this machine")
    parser.add_argument("-o", "--output", default="build", help="output folder (default: ./build)")
    parser.add_argument("--database", default=None,
                        help="a tuning database (JSON lines) to take schedules from")
    parser.add_argument("--no-c", action="store_true", help="do not write standalone C sources")
    parser.set_defaults(func=run)


def _write_c(layer, out_dir: Path) -> dict | None:
    """The standalone C for firmware, with the C path's own default knobs: fused tiles sized to
    keep RAM below the unfused layer's. (A schedule tuned for this CPU may be unfused or favour
    a larger scratch; `emit --knobs` applies such knobs on purpose.)"""
    try:
        from ..cgen.emit import c_manifest_entry
    except ImportError:
        return None
    return c_manifest_entry(layer, out_dir)


def _c_backend(network) -> str:
    """Checks for --target c before any work; returns the description `build` prints."""
    from ..cgen.build import DEFAULT_CFLAGS, check_compiler
    from ..cgen.plan import make_plan

    check_compiler("gcc")
    for layer in network:  # float32 only, and arrays the C addresses
        make_plan(layer)
    return f"standalone C, compiled for this machine (gcc {' '.join(DEFAULT_CFLAGS)})"


def run(args: argparse.Namespace) -> int:
    network = network_from_args(args)
    c_backend = is_c_backend(args.target)
    if c_backend:
        if args.database is not None:
            raise SpecError("--database holds TVM schedules: --target c builds the C kernels with "
                            "their own default knobs")
        target, description = None, _c_backend(network)
        runs_here, manifest_target = True, "c"
    else:
        target = resolve_target(args.target)
        check_cross_compiler(target)  # every library is linked: say so before any work
        if args.database is not None:
            check_database(args.database, "--database")
        for layer in network:
            check_indexable(layer)  # before any output: a layer TVM cannot index is refused whole
        description, runs_here, manifest_target = target.description, target.runs_here, target.tvm
    out_dir = output_folder(args.output, "-o")
    emulated = not runs_here and target.family == "cpu" and can_emulate(target)
    if emulated:
        description += f"; checked under {target.emulator}, not timed"
    print(f"target: {description}")
    width = name_width(network, 10)
    header = f"{'layer':<{width}} {'output shape':<20} {'MFLOP':>8} {'ms/call':>9} {'GFLOP/s':>8} {'max err':>9}  schedule"
    print(header)
    print("-" * len(header))
    entries, total_ms, failed, no_c = [], 0.0, [], []
    for layer in network:
        kernel = build(layer, "c") if c_backend else build(layer, target, database=args.database)
        library = kernel.export(out_dir / f"{kernel.name}.so")
        entry = {
            "layer": layer.name,
            "spec": layer.to_dict(),
            "kernel": kernel.name,
            "shapes": {
                "input": list(layer.input_shape),
                "depthwise_filter": list(layer.depthwise_filter_shape),
                "pointwise_filter": list(layer.pointwise_filter_shape),
                "bias": list(layer.bias_shape) if layer.bias else None,
                "output": list(layer.output_shape),
            },
            "macs": layer.macs,
            "schedule": kernel.schedule_source,
            "knobs": kernel.knobs.to_dict() if kernel.knobs else None,
            "files": {"library": library.name},
        }
        if emulated:  # checked, not timed: an emulator's times mean nothing
            from ..tvm_backend.cross import check_emulated

            result = check_emulated(kernel)
            entry.update(max_abs_error=result.max_abs_error, max_rel_error=result.max_rel_error,
                         checked_under=target.emulator)
            if not result.ok:
                failed.append(layer.name)
            timing = f"{'-':>9} {'-':>8} {result.max_abs_error:>9.2e}"
        elif runs_here:
            result = check_kernel(kernel)
            seconds = time_kernel(kernel)
            total_ms += seconds * 1e3
            entry.update(max_abs_error=result.max_abs_error, max_rel_error=result.max_rel_error,
                         ms_per_call=seconds * 1e3)
            if not result.ok:
                failed.append(layer.name)
            timing = f"{seconds * 1e3:>9.3f} {layer.flops / seconds / 1e9:>8.1f} {result.max_abs_error:>9.2e}"
        else:
            timing = f"{'-':>9} {'-':>8} {'-':>9}"
        # The C sources: beside a CPU library for firmware; with --target c, the library's own
        # source and header (the same knobs, so the same NAME.c and NAME.h).
        if not args.no_c and (c_backend or target.family == "cpu"):
            if layer.dtype != "float32":
                no_c.append(f"{layer.name} ({layer.dtype})")
            else:
                c_entry = _write_c(layer, out_dir)
                if c_entry is not None:
                    entry["c"] = c_entry
        entry["files"]["all"] = sorted(p.name for p in out_dir.glob(f"{kernel.name}.*"))
        shape = "x".join(map(str, layer.output_shape))
        schedule = kernel.schedule_source
        if schedule.startswith("tuned") and kernel.knobs is not None:  # the tag tune printed
            schedule += f" {kernel.knobs.tag}"
        print(f"{layer.name:<{width}} {shape:<20} {layer.flops / 1e6:>8.1f} {timing}  {schedule}",
              flush=True)
        entries.append(entry)
    manifest = {"network": network.name, "target": manifest_target, "layers": entries}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if runs_here:
        mflop = network.macs * 2 / 1e6
        print(f"{'total':<{width}} {'':<20} {mflop:>8.1f} {total_ms:>9.3f} {mflop / total_ms:>8.1f}")
    print(f"wrote {len(entries)} kernels and manifest.json to {out_dir}/")
    if not runs_here and not emulated:
        how = (f"install {target.emulator} to check them here, or " if target.emulator else "")
        print(f"not checked against the reference: this machine cannot run {target.name} "
              f"kernels ({how}check them on the device)")
    if no_c:
        print(f"no standalone C for {', '.join(no_c)}: the C emitter takes float32 layers only")
    if failed:
        print(f"error: {', '.join(failed)} differ from the reference beyond tolerance")
        return 1
    return 0
