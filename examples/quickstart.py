"""Build one separable layer, check it against the reference, time it, export it, load it back."""

import time

import numpy as np

import sepconv_codegen as sc

layer = sc.SeparableConv2D(name="block3", input_shape=(1, 56, 56, 128), kernel_size=3,
                           out_channels=128, bias=True, activation="relu6")
print(f"{layer.name}: {layer.input_shape} -> {layer.output_shape}, pads {layer.pads}, "
      f"{layer.macs / 1e6:.1f} M MACs ({layer.conv2d_macs / layer.macs:.1f}x fewer than conv2d)")

kernel = sc.build(layer, target="llvm")
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, layer.input_shape).astype(np.float32)
dw = rng.uniform(-1, 1, layer.depthwise_filter_shape).astype(np.float32) / 3
pw = rng.uniform(-1, 1, layer.pointwise_filter_shape).astype(np.float32) / 11
b = rng.uniform(-1, 1, layer.bias_shape).astype(np.float32)

y = kernel(x, dw, pw, bias=b)
error = np.abs(y - sc.reference(layer, x, dw, pw, b)).max()
print(f"max error against the float64 reference: {error:.2e}")

run = kernel.bind(x, dw, pw, bias=b)
samples = []
for _ in range(20):
    start = time.perf_counter()
    run()
    samples.append(time.perf_counter() - start)
median = float(np.median(samples))
print(f"median {median * 1e3:.3f} ms per call, {layer.flops / median / 1e9:.1f} GFLOP/s")

path = kernel.export("block3.so")
loaded = sc.load(path)
same = np.array_equal(loaded(x, dw, pw, bias=b), y)
print(f"exported {path}; sc.load('{path}') gives {loaded}, same output: {same}")
