"""Run generated CUDA C on the CPU, to check kernels and launch configurations with no GPU.

The CUDA source is compiled as C++ with a small header that supplies what TVM's kernels use
(threadIdx/blockIdx, __syncthreads, float2/float4, min/max): each thread of a block
is a pthread, __syncthreads is a barrier, __shared__ arrays are function statics (one block runs
at a time, and every thread waits at a barrier before the next block starts). Slow, exact enough
to compare with the reference, and faithful to the launch configuration: a grid or block that
misses part of the output leaves it unwritten (NaN here), and one that overlaps races.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

COMPILER = "g++"

HEADER = r"""
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <pthread.h>
using std::max;
using std::min;
// CUDA's max/min on floats are fmaxf/fminf, which return the other operand when one is NaN.
inline float max(float a, float b) { return std::fmax(a, b); }
inline float min(float a, float b) { return std::fmin(a, b); }
struct dim3 { unsigned x, y, z; };
extern thread_local dim3 threadIdx;
extern thread_local dim3 blockIdx;
extern pthread_barrier_t emu_barrier;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __syncthreads() pthread_barrier_wait(&emu_barrier)
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
// Vectorized compares (the NaN-preserving relu/relu6 selects) keep their lane masks in these.
struct ushort2 { unsigned short x, y; };
struct ushort4 { unsigned short x, y, z, w; };
"""

DRIVER = r"""
#include <cstdio>
#include <cstdlib>
#include <vector>
thread_local dim3 threadIdx;
thread_local dim3 blockIdx;
pthread_barrier_t emu_barrier;
static const unsigned GRID[3] = {GX, GY, GZ};
static const unsigned THREADS = TX;
static float* args[NARGS];
static long sizes[NARGS];
static void* worker(void* arg) {
  threadIdx = {(unsigned)(uintptr_t)arg, 0, 0};
  for (unsigned z = 0; z < GRID[2]; ++z)
    for (unsigned y = 0; y < GRID[1]; ++y)
      for (unsigned x = 0; x < GRID[0]; ++x) {
        blockIdx = {x, y, z};
        KERNEL(CALL_ARGS);
        pthread_barrier_wait(&emu_barrier);  // the next block reuses the shared arrays
      }
  return nullptr;
}
int main(int argc, char** argv) {
  if (argc != NARGS + 1) return 2;
  for (int i = 0; i < NARGS; ++i) {
    FILE* f = fopen(argv[1 + i], "rb");
    if (!f) return 2;
    fseek(f, 0, SEEK_END);
    sizes[i] = ftell(f);
    fseek(f, 0, SEEK_SET);
    args[i] = (float*)malloc(sizes[i] + 64);
    if (fread(args[i], 1, sizes[i], f) != (size_t)sizes[i]) return 2;
    fclose(f);
  }
  pthread_barrier_init(&emu_barrier, nullptr, THREADS);
  std::vector<pthread_t> threads(THREADS);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 1 << 18);
  for (unsigned t = 0; t < THREADS; ++t) {
    if (pthread_create(&threads[t], &attr, worker, (void*)(uintptr_t)t) != 0) return 3;
  }
  for (unsigned t = 0; t < THREADS; ++t) pthread_join(threads[t], nullptr);
  FILE* f = fopen(argv[1 + OUT_INDEX], "wb");
  if (!f || fwrite(args[OUT_INDEX], 1, sizes[OUT_INDEX], f) != (size_t)sizes[OUT_INDEX]) return 4;
  fclose(f);
  return 0;
}
"""


def available() -> bool:
    return shutil.which(COMPILER) is not None


def emulate(
    source: str, config: dict, arrays: dict[str, np.ndarray], timeout: float = 300
) -> np.ndarray:
    """Run ``source`` with ``config`` (CudaKernel.launch_config()) on float32 ``arrays`` keyed by
    buffer name (X, DW, PW, B); returns the "out" buffer."""
    names = [a["name"] for a in config["args"]]
    out_index = names.index("out")
    shapes = {a["name"]: a["shape"] for a in config["args"]}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "include").mkdir()
        (tmp / "include" / "cuda.h").write_text("")  # TVM's source includes it outside NVRTC
        (tmp / "emu.h").write_text(HEADER)
        # "__shared__ alignas(64) float x[n]" -> "alignas(64) static float x[n]": one per process.
        (tmp / "kernel.cu.cc").write_text(
            re.sub(r"__shared__ (alignas\(\d+\) )?", r"\1static ", source)
        )
        defines = {
            "GX": config["grid"][0],
            "GY": config["grid"][1],
            "GZ": config["grid"][2],
            "TX": config["block"][0] * config["block"][1] * config["block"][2],
            "NARGS": len(names),
            "OUT_INDEX": out_index,
            "KERNEL": config["kernel"],
            "CALL_ARGS": ", ".join(f"args[{i}]" for i in range(len(names))),
        }
        driver = "".join(f"#define {k} {v}\n" for k, v in defines.items())
        driver += '#include "kernel.cu.cc"\n' + DRIVER
        (tmp / "driver.cc").write_text(driver)
        command = [
            COMPILER,
            "-O1",
            "-std=c++17",
            "-w",
            "-pthread",
            f"-I{tmp / 'include'}",
            "-include",
            str(tmp / "emu.h"),
            str(tmp / "driver.cc"),
            "-o",
            str(tmp / "run"),
        ]
        built = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
        if built.returncode != 0:
            raise RuntimeError(f"{COMPILER} failed on the CUDA source:\n{built.stderr[-3000:]}")
        files = []
        for name in names:
            path = tmp / f"{name}.bin"
            data = arrays.get(name)
            if name == "out":
                data = np.full(shapes[name], np.nan, dtype=np.float32)
            np.ascontiguousarray(data, dtype=np.float32).tofile(path)
            files.append(str(path))
        subprocess.run([str(tmp / "run"), *files], check=True, timeout=timeout)
        return np.fromfile(files[out_index], dtype=np.float32).reshape(shapes["out"])
