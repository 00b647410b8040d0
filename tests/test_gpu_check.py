"""examples/gpu_check.py without a GPU: its NumPy reference, padding and PyTorch weight layout
against the project's, the files it generates, and those files' kernels run on the CPU."""

import importlib.util
import json
import shutil
import types
from pathlib import Path

import numpy as np
import pytest

import sepconv_codegen as sc
from sepconv_codegen import SeparableConv2D as L
from tests import cuda_emulator
from tests.conftest import random_arrays

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "gpu_check.py"
_spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)

LAYERS = {
    "same_stride2_even": L(input_shape=(1, 12, 12, 8), strides=2, out_channels=16),
    "same_stride2_odd_mult2": L(
        input_shape=(2, 11, 9, 3),
        strides=2,
        channel_multiplier=2,
        out_channels=5,
        bias=True,
        activation="relu6",
    ),
    "valid_k5_dilation2": L(
        input_shape=(1, 13, 13, 4),
        kernel_size=5,
        dilation=2,
        padding="VALID",
        out_channels=6,
        activation="relu",
    ),
    "explicit_pads_stride_1x2": L(
        input_shape=(1, 8, 9, 4), padding=((2, 0), (1, 3)), strides=(1, 2), out_channels=8
    ),
    "k2x4_even_same": L(input_shape=(1, 7, 7, 3), kernel_size=(2, 4), out_channels=5),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_pads_shape_and_reference_agree_with_the_project(name):
    layer = LAYERS[name]
    spec = layer.to_dict()
    assert gpu_check.pads(spec) == layer.pads
    assert gpu_check.output_shape(spec) == layer.output_shape
    arrays = random_arrays(layer, seed=2)
    bias = arrays[3] if layer.bias else None
    np.testing.assert_allclose(
        gpu_check.reference(spec, *arrays[:3], bias),
        sc.reference(layer, *arrays[:3], bias),
        rtol=1e-12,
        atol=1e-12,
    )


def _conv2d_nchw(x, weight, stride, dilation, groups):
    """PyTorch's conv2d (NCHW input, OIHW weight, groups, no padding) in plain NumPy."""
    n, _, h, w = x.shape
    o, cg, kh, kw = weight.shape
    oh = (h - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    ow = (w - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    per_group = o // groups
    for k in range(o):
        g = k // per_group
        for i in range(kh):
            for j in range(kw):
                patch = x[
                    :,
                    g * cg : (g + 1) * cg,
                    i * dilation[0] : i * dilation[0] + (oh - 1) * stride[0] + 1 : stride[0],
                    j * dilation[1] : j * dilation[1] + (ow - 1) * stride[1] + 1 : stride[1],
                ]
                out[:, k] += np.einsum("nchw,c->nhw", patch, weight[k, :, i, j])
    return out


@pytest.mark.parametrize("name", list(LAYERS))
def test_torch_weight_layout_with_pytorch_conv_semantics_in_numpy(name):
    layer = LAYERS[name]
    spec = layer.to_dict()
    x, dw, pw = (a.astype(np.float64) for a in random_arrays(layer, seed=3)[:3])
    dw_t, pw_t = gpu_check.torch_weights(dw, pw)
    assert dw_t.shape == (layer.depthwise_channels, 1, *layer.kernel_size)
    assert pw_t.shape == (layer.out_channels, layer.depthwise_channels, 1, 1)
    (pt, pb), (pl, pr) = layer.pads
    xp = np.pad(x.transpose(0, 3, 1, 2), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    y = _conv2d_nchw(xp, dw_t, layer.strides, layer.dilation, groups=layer.in_channels)
    y = _conv2d_nchw(y, pw_t, (1, 1), (1, 1), groups=1).transpose(0, 2, 3, 1)
    want = sc.reference(layer.replace(bias=False, activation=None), x, dw, pw)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)
    assert gpu_check.output_shape(spec) == y.shape


@pytest.mark.parametrize("name", list(LAYERS))
def test_torch_forward_on_the_cpu(name):
    torch = pytest.importorskip("torch", reason="pip install torch==2.13.0 (the 'torch' extra)")
    layer = LAYERS[name]
    spec = layer.to_dict()
    arrays = random_arrays(layer, seed=4)
    x = torch.from_numpy(arrays[0]).double().permute(0, 3, 1, 2)  # NHWC memory: channels_last
    dw_t, pw_t = (torch.from_numpy(w).double() for w in gpu_check.torch_weights(*arrays[1:3]))
    bias = torch.from_numpy(arrays[3]).double() if layer.bias else None
    got = gpu_check.torch_forward(torch, spec, x, dw_t, pw_t, bias, exact_padding=True)
    want = sc.reference(layer, *arrays[:3], arrays[3] if layer.bias else None)
    np.testing.assert_allclose(got.permute(0, 2, 3, 1).numpy(), want, rtol=1e-10, atol=1e-10)
    timed = gpu_check.torch_forward(torch, spec, x, dw_t, pw_t, bias, exact_padding=False)
    assert tuple(timed.shape) == tuple(got.shape)  # the timed path: same shape and cost


def test_make_inputs_and_relative_error():
    spec = LAYERS["same_stride2_odd_mult2"].to_dict()
    arrays = gpu_check.make_inputs(spec)
    assert {k: v.shape for k, v in arrays.items()} == {
        "X": (2, 11, 9, 3),
        "DW": (3, 3, 3, 2),
        "PW": (1, 1, 6, 5),
        "B": (5,),
    }
    assert all(v.dtype == np.float32 for v in arrays.values())
    want = np.array([[0.5, 4.0]])
    assert gpu_check.relative_error(want + np.array([[1e-6, -8e-6]]), want) == pytest.approx(2e-6)
    unwritten = np.array([[0.5, np.nan]])  # the NaN the output is filled with before the launch
    assert gpu_check.relative_error(unwritten, want) == float("inf")
    nan_in_both = np.array([[0.5, np.nan]])  # NaN in the reference too: compared elsewhere
    assert gpu_check.relative_error(nan_in_both, nan_in_both) == 0.0


def test_report_totals_and_target(capsys):
    entries = [{"spec": LAYERS["same_stride2_even"].to_dict()}] * 2
    fast = [{"name": "a", "error": 1e-7, "ours_ms": 0.01, "torch_ms": 0.02, "mode": "graph"}] * 2
    assert gpu_check.report(fast, entries) == (True, True)
    assert (
        "ours 0.0200 ms, PyTorch 0.0400 ms, ratio 0.50 (target <= 0.7: met)"
        in capsys.readouterr().out
    )
    unwritten = [dict(fast[0], error=float("inf")), fast[1]]
    assert gpu_check.report(unwritten, entries) == (False, True)
    assert "WRONG" in capsys.readouterr().out
    wrong = [dict(fast[0], error=1e-3), fast[1]]
    assert gpu_check.report(wrong, entries) == (False, True)
    assert "WRONG" in capsys.readouterr().out
    slow = [dict(fast[0], ours_ms=0.02)] * 2
    assert gpu_check.report(slow, entries) == (True, False)
    assert "MISSED" in capsys.readouterr().out


@pytest.mark.skipif(not cuda_emulator.available(), reason="apt-get install g++")
def test_generated_files_drive_a_correct_launch(tmp_path):
    """generate() -> files -> load_manifest/launch_args, as `run` reads them; the kernels run on
    the CPU emulator and match the script's own reference."""
    layers = [
        LAYERS["same_stride2_odd_mult2"],
        L(input_shape=(1, 8, 8, 32), out_channels=64, name="block_like"),
    ]
    manifest = gpu_check.generate(tmp_path, target="cuda-sm90", layers=layers)
    assert json.loads(manifest.read_text())["target"] == "cuda-sm90"
    entries = gpu_check.load_manifest(tmp_path)
    assert [e["name"] for e in entries] == ["b2_sepconv", "b1_block_like"]
    for entry in entries:
        inputs = gpu_check.make_inputs(entry["spec"])
        order = gpu_check.launch_args(entry["cuda"], {k: k for k in (*inputs, "out")})
        assert sorted(order) == sorted((*inputs, "out"))
        got = cuda_emulator.emulate(entry["source"], entry["cuda"], inputs)
        want = gpu_check.reference(
            entry["spec"], inputs["X"], inputs["DW"], inputs["PW"], inputs.get("B")
        )
        assert gpu_check.relative_error(got, want) <= gpu_check.TOLERANCE


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="install the CUDA toolkit (nvcc)")
def test_the_nvcc_command_run_uses_builds_a_cubin(tmp_path):
    """The GPU run compiles each source as below; nvcc needs no GPU for it."""
    layer = L(input_shape=(1, 8, 8, 16), out_channels=32, name="tiny")
    gpu_check.generate(tmp_path, target="cuda-sm90", layers=[layer])
    entry = gpu_check.load_manifest(tmp_path)[0]
    fake_cupy = types.SimpleNamespace(
        cuda=types.SimpleNamespace(Device=lambda: types.SimpleNamespace(compute_capability="90"))
    )
    launcher = gpu_check.CupyLauncher(fake_cupy, torch=None)
    cubin = Path(launcher.compile(entry["source"], entry["name"])).read_bytes()
    assert launcher.arch == "sm_90" and cubin[:4] == b"\x7fELF"
    assert entry["cuda"]["kernel"].encode() in cubin
