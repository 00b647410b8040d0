#!/usr/bin/env python3
"""Check and time sepconv_codegen's CUDA kernels for MobileNetV1 on an NVIDIA GPU, against PyTorch.

Two steps, on two machines:

1. Where sepconv_codegen and TVM are installed, write the CUDA sources and launch configurations
   (the 13 separable blocks of MobileNetV1 at batch 1 and 32, for an H100 by default):

       python examples/gpu_check.py generate [--target cuda-sm90] [--dir out/gpu_kernels]

2. On the GPU machine (Python, NumPy, PyTorch, CuPy and nvcc; no TVM, no sepconv_codegen needed):

       python examples/gpu_check.py run [--dir out/gpu_kernels] [--tf32]

   Exit status: 0 when every kernel is correct and each batch's total is at most 0.7x PyTorch's,
   1 when a kernel is wrong, 2 when only the speed target is missed.

   Each kernel is compiled with nvcc for the GPU's architecture, loaded with CuPy, checked against a
   float64 PyTorch evaluation of tf.nn.separable_conv2d (TF padding), and timed against PyTorch's
   cuDNN in channels_last (a depthwise conv2d with groups=C, then a 1x1 conv2d). Times are CUDA
   events around CUDA-graph replays when capture works (else around back-to-back launches).

   The timed PyTorch path pads inside conv2d, symmetrically, as a PyTorch MobileNet does: the same
   cost as TF's padding without an extra pad kernel. TF32 is off unless --tf32 (float32 against
   float32).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "out" / "gpu_kernels"
TOLERANCE = 1e-5  # max |ours - float64| / max(1, max |float64|), float32 (SEMANTICS.md)
TARGET_RATIO = 0.7

# ---- step 1: generate (sepconv_codegen + TVM) ---------------------------------------------------


def generate(out_dir: Path, target: str = "cuda-sm90", batches=(1, 32), layers=None) -> Path:
    """Write <stem>.cu and <stem>.json per layer, and manifest.json, into ``out_dir``.

    layers: SeparableConv2D layers (default: MobileNetV1's 13 blocks at each batch size).
    """
    sys.path.insert(0, str(ROOT))
    import sepconv_codegen as sc

    if layers is None:
        layers = [layer for batch in batches for layer in sc.mobilenet_v1(batch)]
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for layer in layers:
        stem = f"b{layer.input_shape[0]}_{layer.name}"
        kernel = sc.build(layer, target=target)
        kernel.export(out_dir / f"{stem}.cu")
        entries.append({"name": stem, "source": f"{stem}.cu", "config": f"{stem}.json"})
        print(
            f"{stem:<14} {kernel.knobs.tag:<28} grid {kernel.launch_config()['grid']} "
            f"block {kernel.launch_config()['block']}",
            flush=True,
        )
    manifest = {"format": "sepconv_codegen.gpu_check/1", "target": target, "kernels": entries}
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


# ---- the operation, in NumPy and PyTorch (TF layouts in, TF semantics) -------------------------


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def pads(spec: dict) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) of a layer spec; TF's SAME puts the odd pixel bottom/right."""
    padding = spec["padding"]
    if not isinstance(padding, str):
        return tuple(tuple(int(v) for v in p) for p in padding)
    if padding.upper() == "VALID":
        return ((0, 0), (0, 0))
    result = []
    for size, k, s, d in zip(
        spec["input_shape"][1:3],
        _pair(spec["kernel_size"]),
        _pair(spec["strides"]),
        _pair(spec["dilation"]),
    ):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        result.append((total // 2, total - total // 2))
    return tuple(result)


def output_shape(spec: dict) -> tuple[int, int, int, int]:
    n, h, w, _ = spec["input_shape"]
    sizes = []
    for size, k, s, d, (lo, hi) in zip(
        (h, w),
        _pair(spec["kernel_size"]),
        _pair(spec["strides"]),
        _pair(spec["dilation"]),
        pads(spec),
    ):
        sizes.append((size + lo + hi - (k - 1) * d - 1) // s + 1)
    return (n, sizes[0], sizes[1], spec["out_channels"])


def _activate(y, activation, clip):
    if activation == "relu":
        return clip(y, 0, None)
    if activation == "relu6":
        return clip(y, 0, 6)
    return y


def reference(spec: dict, x, dw, pw, bias=None) -> np.ndarray:
    """tf.nn.separable_conv2d (+ bias, activation) in float64 NumPy. x [N,H,W,C], dw [KH,KW,C,M],
    pw [1,1,C*M,O], bias [O]; returns [N,OH,OW,O]."""
    (pt, pb), (pl, pr) = pads(spec)
    (sh, sw), (dh, dw_) = _pair(spec["strides"]), _pair(spec["dilation"])
    n, oh, ow, _ = output_shape(spec)
    kh, kw, c, m = dw.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    inter = np.zeros((n, oh, ow, c, m))
    for i in range(kh):
        for j in range(kw):
            patch = xp[
                :,
                i * dh : i * dh + (oh - 1) * sh + 1 : sh,
                j * dw_ : j * dw_ + (ow - 1) * sw + 1 : sw,
            ]
            inter += patch[..., None] * dw[i, j].astype(np.float64)
    y = inter.reshape(n, oh, ow, c * m) @ pw[0, 0].astype(np.float64)
    if bias is not None:
        y = y + bias.astype(np.float64)
    return _activate(y, spec.get("activation"), np.clip)


def torch_weights(dw: np.ndarray, pw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TF filters -> PyTorch's: dw [KH,KW,C,M] -> [C*M,1,KH,KW] (out channel q*M + r, as TF);
    pw [1,1,C*M,O] -> [O,C*M,1,1]."""
    kh, kw, c, m = dw.shape
    dw_t = np.ascontiguousarray(dw.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw))
    pw_t = np.ascontiguousarray(pw[0, 0].T[:, :, None, None])
    return dw_t, pw_t


def torch_forward(torch, spec: dict, x, dw_t, pw_t, bias=None, exact_padding: bool = True):
    """The layer in PyTorch on an NCHW tensor (channels_last or not). exact_padding pads as TF
    (asymmetric, with F.pad); otherwise conv2d pads symmetrically by the larger side when that
    gives the same output shape (TF SAME with stride 2: same cost, what a PyTorch model does)."""
    functional = torch.nn.functional
    (pt, pb), (pl, pr) = pads(spec)
    padding = (max(pt, pb), max(pl, pr))
    symmetric = {**spec, "padding": [[padding[0]] * 2, [padding[1]] * 2]}
    same_shape = output_shape(symmetric) == output_shape(spec)
    if (pt, pl) != (pb, pr) and (exact_padding or not same_shape):
        x = functional.pad(x, (pl, pr, pt, pb))
        padding = (0, 0)
    y = functional.conv2d(
        x,
        dw_t,
        stride=_pair(spec["strides"]),
        padding=padding,
        dilation=_pair(spec["dilation"]),
        groups=spec["input_shape"][3],
    )
    y = functional.conv2d(y, pw_t, bias)
    return _activate(y, spec.get("activation"), torch.clamp)


def make_inputs(spec: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 arrays in TF layouts, keyed by the kernel's buffer names (X, DW, PW[, B])."""
    rng = np.random.default_rng(seed)
    c = spec["input_shape"][3]
    kh, kw = _pair(spec["kernel_size"])
    m, o = spec["channel_multiplier"], spec["out_channels"]
    shapes = {"X": spec["input_shape"], "DW": (kh, kw, c, m), "PW": (1, 1, c * m, o)}
    if spec.get("bias"):
        shapes["B"] = (o,)
    return {k: rng.uniform(-1, 1, size=s).astype(np.float32) for k, s in shapes.items()}


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got - want| over max(1, |want|); inf where got is NaN and want is not (the output
    is filled with NaN before the kernel runs, so an element it never wrote shows up here)."""
    got = got.astype(np.float64)
    if np.any(np.isnan(got) & ~np.isnan(want)):
        return float("inf")
    scale = max(1.0, float(np.abs(want).max()))
    return float(np.nanmax(np.abs(got - want))) / scale


# ---- step 2: run (GPU, PyTorch, CuPy, nvcc) -----------------------------------------------------


def load_manifest(folder: Path) -> list[dict]:
    """[{name, spec, cuda (launch config), source (text)}] in manifest order."""
    manifest = json.loads((folder / "manifest.json").read_text())
    entries = []
    for item in manifest["kernels"]:
        config = json.loads((folder / item["config"]).read_text())
        entries.append(
            {
                "name": item["name"],
                "spec": config["layer"],
                "cuda": config["cuda"],
                "source": (folder / item["source"]).read_text(),
            }
        )
    return entries


def launch_args(config: dict, buffers: dict) -> list:
    """The kernel's arguments in its parameter order, from buffers keyed X, DW, PW, B and out."""
    return [buffers[arg["name"]] for arg in config["args"]]


class CupyLauncher:
    """Compiles CUDA C with nvcc for this GPU and launches it with CuPy on PyTorch's stream."""

    def __init__(self, cupy, torch):
        self.cupy, self.torch = cupy, torch
        self.arch = f"sm_{cupy.cuda.Device().compute_capability}"
        self.tmp = tempfile.TemporaryDirectory()

    def compile(self, source: str, name: str) -> str:
        """nvcc: CUDA C -> a cubin for this GPU; returns its path (thread-safe: no CUDA calls)."""
        src = Path(self.tmp.name) / f"{name}.cu"
        cubin = src.with_suffix(".cubin")
        src.write_text(source)
        subprocess.run(
            ["nvcc", "-cubin", f"-arch={self.arch}", "-O3", "-o", str(cubin), str(src)], check=True
        )
        return str(cubin)

    def load(self, cubin: str):
        return self.cupy.RawModule(path=cubin)

    def launcher(self, module, config: dict, buffers: dict):
        function = module.get_function(config["kernel"])
        args = tuple(launch_args(config, buffers))
        grid, block = tuple(config["grid"]), tuple(config["block"])
        shared = int(config.get("dynamic_shared_bytes", 0))
        cupy, torch = self.cupy, self.torch

        def launch():
            handle = torch.cuda.current_stream().cuda_stream
            stream = cupy.cuda.ExternalStream(handle) if handle else cupy.cuda.Stream.null
            with stream:
                function(grid, block, args, shared_mem=shared)

        return launch


def time_ms(torch, fn, repeats: int = 20, rounds: int = 5, graph: bool = True) -> tuple[float, str]:
    """Median ms per call over ``rounds``; CUDA-graph replay of ``repeats`` calls when possible
    (no Python or launch overhead between kernels), else back-to-back eager calls."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up (cuDNN's algorithm search) off the capture path
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()

    def run():
        for _ in range(repeats):
            fn()

    mode = "eager"
    if graph:
        try:
            captured = torch.cuda.CUDAGraph()
            with torch.cuda.graph(captured):
                run()
            run, mode = captured.replay, "graph"
        except Exception:  # noqa: BLE001 - capture unsupported here: time eager calls
            torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / repeats)
    return float(np.median(times)), mode


def check_and_time(torch, launcher_factory, entry: dict, repeats: int, graph: bool = True) -> dict:
    """One layer: our kernel against float64 PyTorch with TF padding, then both timed."""
    spec = entry["spec"]
    device = torch.device("cuda")
    arrays = make_inputs(spec)
    buffers = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
    buffers["out"] = torch.full(output_shape(spec), float("nan"), device=device)
    launch = launcher_factory(entry, buffers)
    launch()
    torch.cuda.synchronize()
    got = buffers["out"].cpu().numpy()

    x64 = buffers["X"].double().permute(0, 3, 1, 2)
    dw_t, pw_t = (torch.from_numpy(w).to(device) for w in torch_weights(arrays["DW"], arrays["PW"]))
    bias = buffers.get("B")
    want = torch_forward(
        torch,
        spec,
        x64,
        dw_t.double(),
        pw_t.double(),
        None if bias is None else bias.double(),
        exact_padding=True,
    )
    error = relative_error(got, want.permute(0, 2, 3, 1).cpu().numpy())

    x = buffers["X"].permute(0, 3, 1, 2)  # NHWC memory viewed as NCHW: channels_last
    dw_cl = dw_t.contiguous(memory_format=torch.channels_last)
    pw_cl = pw_t.contiguous(memory_format=torch.channels_last)

    def peer():
        return torch_forward(torch, spec, x, dw_cl, pw_cl, bias, exact_padding=False)

    ours_ms, ours_mode = time_ms(torch, launch, repeats, graph=graph)
    torch_ms, torch_mode = time_ms(torch, peer, repeats, graph=graph)
    return {
        "name": entry["name"],
        "error": error,
        "ours_ms": ours_ms,
        "torch_ms": torch_ms,
        "mode": ours_mode if ours_mode == torch_mode else f"{ours_mode}/{torch_mode}",
    }


def report(results: list[dict], entries: list[dict]) -> tuple[bool, bool]:
    """Print per-layer times and per-batch totals; returns (every layer correct, every batch's
    total within TARGET_RATIO of PyTorch's)."""
    ok, met = True, True
    print(
        f"{'kernel':<14} {'output':<18} {'GFLOP':>7} {'ours ms':>9} {'torch ms':>9} {'ratio':>6} "
        f"{'max err':>9}  timing"
    )
    totals: dict[int, list[float]] = {}
    for result, entry in zip(results, entries):
        spec = entry["spec"]
        shape = output_shape(spec)
        n, oh, ow, o = shape
        c, m = spec["input_shape"][3], spec["channel_multiplier"]
        kh, kw = _pair(spec["kernel_size"])
        gflop = 2 * n * oh * ow * c * m * (kh * kw + o) / 1e9
        ratio = result["ours_ms"] / result["torch_ms"]
        bad = result["error"] > TOLERANCE
        ok &= not bad
        print(
            f"{result['name']:<14} {'x'.join(map(str, shape)):<18} {gflop:>7.3f} "
            f"{result['ours_ms']:>9.4f} {result['torch_ms']:>9.4f} {ratio:>6.2f} "
            f"{result['error']:>9.2e}  {result['mode']}{'  WRONG' if bad else ''}"
        )
        total = totals.setdefault(n, [0.0, 0.0])
        total[0] += result["ours_ms"]
        total[1] += result["torch_ms"]
    for batch, (ours, peer) in totals.items():
        ratio = ours / peer
        met &= ratio <= TARGET_RATIO
        verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
        print(
            f"batch {batch:>3}: ours {ours:.4f} ms, PyTorch {peer:.4f} ms, ratio {ratio:.2f} "
            f"(target <= {TARGET_RATIO}: {verdict})"
        )
    return ok, met


def run(folder: Path, repeats: int, tf32: bool, graph: bool = True) -> int:
    import cupy
    import torch

    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    entries = load_manifest(folder)
    launcher = CupyLauncher(cupy, torch)
    print(
        f"{torch.cuda.get_device_name()} ({launcher.arch}), PyTorch {torch.__version__}, "
        f"CuPy {cupy.__version__}, TF32 {'on' if tf32 else 'off'}"
    )
    with ThreadPoolExecutor(max_workers=8) as pool:  # nvcc takes a few seconds per kernel
        cubins = list(pool.map(lambda e: launcher.compile(e["source"], e["name"]), entries))
    modules = {e["name"]: launcher.load(cubin) for e, cubin in zip(entries, cubins)}

    def factory(entry, buffers):
        views = {k: cupy.asarray(v) for k, v in buffers.items()}  # zero-copy
        return launcher.launcher(modules[entry["name"]], entry["cuda"], views)

    results = [check_and_time(torch, factory, entry, repeats, graph) for entry in entries]
    correct, met = report(results, entries)
    return 0 if correct and met else 1 if not correct else 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write CUDA sources and launch configs (needs TVM)")
    gen.add_argument("--target", default="cuda-sm90")
    gen.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    gen.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    go = sub.add_parser("run", help="check and time them on this machine's GPU (no TVM)")
    go.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    go.add_argument("--repeats", type=int, default=20)
    go.add_argument("--tf32", action="store_true", help="let cuDNN use TF32 tensor cores")
    go.add_argument("--no-graph", action="store_true", help="time eager launches, not CUDA graphs")
    args = parser.parse_args(argv)
    if args.command == "generate":
        print(f"wrote {generate(args.dir, args.target, tuple(args.batches))}")
        return 0
    return run(args.dir, args.repeats, args.tf32, graph=not args.no_graph)


if __name__ == "__main__":
    sys.exit(main())
