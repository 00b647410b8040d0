"""Targets: short names a user types, resolved to what the schedules and the compiler need.

A target here is data: the TVM target JSON, the schedule family that applies a schedule, the
schedule space that proposes knobs, the vector width and register file the default knobs are
derived from, and how its modules are linked and run. Target differences live in these
attributes, not in `if target == ...` branches elsewhere.

Names: "llvm" (this machine's CPU; aliases host, x86, native), "aarch64" (generic AArch64 with
NEON), "cortex-a53", "cortex-a72", "cortex-a76", "cuda" (sm_80) and "cuda-sm70" ... "cuda-sm90";
or a raw TVM target JSON (a string starting with "{", or a dict).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import json
import platform
from dataclasses import dataclass, field, replace
from typing import Any

from .spec import SpecError

__all__ = ["GpuInfo", "Target", "host_features", "list_targets", "missing_here", "register_target",
           "resolve_target"]

_HOST_NAMES = ("llvm", "host", "x86", "native")
_ON_AARCH64 = platform.machine().lower() in ("aarch64", "arm64")


@dataclass(frozen=True)
class GpuInfo:
    """What a CUDA schedule space needs to know about the GPU it fills.

    multiprocessors is that of a representative part of the architecture (A100 for sm_80, H100 SXM
    for sm_90): the default knobs size the grid to keep every SM busy.
    """

    sm: int  # compute capability, e.g. 90
    multiprocessors: int
    max_threads_per_block: int = 1024
    # TVM declares fixed-size shared buffers statically, and static shared memory is capped at
    # 48 KB per block on every architecture (more needs dynamic shared memory and an opt-in).
    shared_bytes_per_block: int = 48 * 1024
    warp_size: int = 32


@dataclass(frozen=True)
class Target:
    """A compilation target: what `--target` and `target=` resolve to."""

    name: str  # the short name, or "custom" for raw JSON
    description: str
    tvm: dict[str, Any]  # the TVM target JSON
    family: str  # TVM schedule family (tvm_backend.schedules): "cpu" or "cuda"
    vector_bits: int = 256  # SIMD register width (CUDA: the widest vector load, float4)
    vector_registers: int = 16  # architectural SIMD registers (register-tile budget)
    cross_compiler: str | None = None  # None: the host compiler links the module
    runs_here: bool = True  # whether this machine can run the compiled module
    space: str = "cpu"  # schedule space: the module sepconv_codegen.schedule.<space>
    emulator: str | None = None  # a command that runs this target's Linux programs here
    gpu: GpuInfo | None = None
    aliases: tuple[str, ...] = field(default=(), compare=False)

    def lanes(self, dtype: str) -> int:
        """Vector lanes for ``dtype`` (float16 is computed in float32 lanes on CPUs)."""
        bits = {"float64": 64}.get(dtype, 32)
        return max(1, self.vector_bits // bits)

    def schedule_space(self):
        """The module holding this target's ``default_knobs`` and ``search_space``."""
        return importlib.import_module(f"{__package__}.schedule.{self.space}")

    @property
    def schedule_file(self) -> str:
        """The shipped-schedules file for this target's CPU or GPU, e.g. 'llvm-znver3.jsonl'."""
        tag = self.tvm.get("mcpu") or self.tvm.get("arch") or self.tvm.get("mtriple") or "generic"
        return f"{self.tvm.get('kind', 'unknown')}-{tag}.jsonl"

    @property
    def key(self) -> str:
        """A stable string for the tuning database: the TVM target JSON, sorted."""
        return json.dumps(self.tvm, sort_keys=True, separators=(",", ":"))


def _llvm_features(tvm_json: dict[str, Any]) -> frozenset[str]:
    """The features LLVM enables for a target JSON (its mcpu and mattr), ISA and tuning alike."""
    from .tvm_backend._tvm import tvm

    with tvm.target.Target(tvm_json):
        return frozenset(str(f) for f in tvm.target.codegen.llvm_get_cpu_features())


def _simd_bits(features: frozenset[str]) -> int:
    return 512 if "avx512f" in features else 256 if "avx" in features else 128


# LLVM x86 features that tune code generation and add no instruction: a target that differs from
# this CPU only in these runs here. Anything else LLVM may emit, so it counts as missing.
_TUNING_PREFIXES = ("slow-", "fast-", "false-deps-", "prefer-", "no-bypass-delay", "use-", "idivl-",
                    "idivq-", "lea-", "pad-", "allow-light-", "sbb-dep-", "harden-", "lvi-",
                    "retpoline", "tuning-")
_TUNING_FEATURES = frozenset({"ermsb", "fsrm", "macrofusion", "branchfusion", "vzeroupper",
                              "soft-float", "seses", "tagged-globals"})


@functools.lru_cache(maxsize=1)
def host_features() -> frozenset[str]:
    """The LLVM feature names (avx2, fma, ...) of this machine's CPU."""
    from .tvm_backend._tvm import host_cpu_name

    return _llvm_features({"kind": "llvm", "mcpu": host_cpu_name()})


def missing_here(features: frozenset[str]) -> list[str]:
    """The instruction-set features of a target that this (x86) CPU lacks."""
    extra = features - host_features()
    return sorted(f for f in extra if not f.startswith(_TUNING_PREFIXES) and f not in _TUNING_FEATURES)


@functools.lru_cache(maxsize=1)
def _host() -> Target:
    from .tvm_backend._tvm import host_cpu_name

    cpu = host_cpu_name()
    bits = _simd_bits(host_features())
    registers = 32 if bits == 512 or _ON_AARCH64 else 16
    return Target(
        name="llvm",
        description=f"this machine's CPU ({cpu}, {bits}-bit SIMD, all cores)",
        tvm={"kind": "llvm", "mcpu": cpu},
        family="cpu",
        vector_bits=bits,
        vector_registers=registers,
        space="aarch64" if _ON_AARCH64 else "cpu",
        aliases=_HOST_NAMES[1:],
    )


_PRESETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    """Make ``target`` (and its aliases) resolvable by name, in any case."""
    for name in (target.name, *target.aliases):
        _PRESETS[name.lower()] = target
    return target


def _aarch64(name: str, mcpu: str | None, what: str) -> Target:
    tvm_json: dict[str, Any] = {"kind": "llvm", "mtriple": "aarch64-linux-gnu"}
    if mcpu:
        tvm_json["mcpu"] = mcpu
    tvm_json["mattr"] = ["+neon"]
    return Target(
        name=name,
        description=f"{what}, NEON 128-bit",
        tvm=tvm_json,
        family="cpu",
        vector_bits=128,
        vector_registers=32,  # v0-v31
        cross_compiler=None if _ON_AARCH64 else "aarch64-linux-gnu-gcc",
        runs_here=_ON_AARCH64,
        space="aarch64",
        emulator=None if _ON_AARCH64 else "qemu-aarch64",
    )


# Representative part per architecture: (sm, SMs, part name).
_CUDA_ARCHS = (
    (70, 80, "V100"),
    (75, 40, "T4"),
    (80, 108, "A100"),
    (86, 84, "A40 / RTX 3090"),
    (89, 58, "L4"),
    (90, 132, "H100 SXM"),
)
_CUDA_DEFAULT_SM = 80  # Ampere: the oldest architecture of today's data-centre GPUs


def _cuda(name: str, sm: int, sms: int, part: str) -> Target:
    return Target(
        name=name,
        description=f"NVIDIA sm_{sm} ({part}), CUDA C compiled when loaded on the GPU",
        tvm={"kind": "cuda", "arch": f"sm_{sm}"},
        family="cuda",
        vector_bits=128,  # float4 loads
        vector_registers=255,  # per thread; the CUDA space does not tile by it
        runs_here=False,  # the module needs a CUDA driver and a GPU
        space="cuda",
        gpu=GpuInfo(sm=sm, multiprocessors=sms),
    )


def _register_presets() -> None:
    register_target(_aarch64("aarch64", None, "generic AArch64 (ARMv8-A)"))
    for core in ("a53", "a72", "a76"):
        register_target(_aarch64(f"cortex-{core}", f"cortex-{core}", f"Arm Cortex-{core.upper()}"))
    default = next(arch for arch in _CUDA_ARCHS if arch[0] == _CUDA_DEFAULT_SM)
    register_target(_cuda("cuda", *default))
    for sm, sms, part in _CUDA_ARCHS:
        register_target(_cuda(f"cuda-sm{sm}", sm, sms, part))


_register_presets()


def target_names() -> list[str]:
    """Every name ``resolve_target`` accepts (aliases included), sorted."""
    return sorted({*_HOST_NAMES, *_PRESETS})


def list_targets() -> list[Target]:
    """Every named target, host first (aliases not repeated)."""
    seen: dict[str, Target] = {"llvm": _host()}
    for target in _PRESETS.values():
        seen.setdefault(target.name, target)
    return list(seen.values())


def _unknown(target: Any, why: str) -> SpecError:
    known = ", ".join(target_names())
    return SpecError(
        f"target {target!r} {why} (known: {known}; or a TVM target JSON starting with '{{'; "
        "build also takes 'c', the standalone C backend)"
    )


def is_c_backend(target: Any) -> bool:
    """Whether ``target`` names the standalone C backend ('c', any case), which build() takes
    besides the TVM targets."""
    return isinstance(target, str) and target.strip().lower() == "c"


def resolve_target(target: str | dict | Target) -> Target:
    """A Target from a short name ('llvm', 'aarch64', 'cuda-sm90', ...), a TVM target JSON string or
    dict, or a Target. Raises SpecError naming the target and listing the known names."""
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        text = target.strip()
        if text.lower() in _HOST_NAMES:  # names in any case: 'LLVM', 'Cortex-A72'
            return _host()
        if text.lower() in _PRESETS:
            return _PRESETS[text.lower()]
        if not text.startswith("{"):
            raise _unknown(target, "is unknown")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise _unknown(target, f"is not valid JSON ({err})") from None
        return _from_json(data, target)
    if isinstance(target, dict):
        return _from_json(target, target)
    raise _unknown(
        target, f"is a {type(target).__name__}, not a name, a TVM target JSON or a Target"
    )


def _from_json(data: Any, given: Any) -> Target:
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise _unknown(given, 'is not a TVM target JSON object with a "kind"')
    base = _base_for(data, given)
    if data["kind"] == "llvm":
        _check_mcpu(data, given)  # first: parsing a target, TVM logs a bad mcpu and goes on
    _check_with_tvm(data, given)
    custom = replace(
        base, name="custom", description=f"custom: {json.dumps(data)}", tvm=dict(data), aliases=()
    )
    triple = str(data.get("mtriple", ""))
    if data["kind"] == "llvm" and (triple.startswith("x86_64") or not (triple or _ON_AARCH64)):
        return _x86(custom)
    return custom


def _x86(target: Target) -> Target:
    """An x86 JSON gets the vector width and registers of its own mcpu and mattr, not this CPU's;
    it runs here only if this CPU has every instruction set it enables (a skylake-avx512 module
    on an AVX2 machine would die of an illegal instruction)."""
    features = _llvm_features(target.tvm)
    bits = _simd_bits(features)
    missing = missing_here(features) if not _ON_AARCH64 else ["x86"]
    description = f"{target.description}, {bits}-bit SIMD"
    if missing:
        description += f"; this machine cannot run it (it lacks {', '.join(missing[:4])}" + (
            ", ...)" if len(missing) > 4 else ")")
    return replace(target, description=description, vector_bits=bits,
                   vector_registers=32 if bits == 512 else 16, runs_here=not missing, space="cpu",
                   cross_compiler="x86_64-linux-gnu-gcc" if _ON_AARCH64 else None, emulator=None)


def _base_for(data: dict[str, Any], given: Any) -> Target:
    """The named target whose attributes (vector width, linker, space) a custom JSON inherits."""
    kind = data["kind"]
    if kind == "llvm":
        triple = str(data.get("mtriple", ""))
        _check_triple(triple, given)
        if triple.startswith(("aarch64", "arm64")):
            return _PRESETS["aarch64"]
        return _host()
    if kind == "cuda":
        host = data.get("host")
        if host is not None:  # the .so's host code is linked here, by this machine's g++
            triple = str(host.get("mtriple", "")) if isinstance(host, dict) else ""
            if not isinstance(host, dict) or host.get("kind") != "llvm" or (
                    triple and not triple.startswith(platform.machine().lower())):
                raise _unknown(given, f"has host {host!r}: the CUDA library's host code is linked "
                                      "on this machine, so its host must be this machine's "
                                      "(leave it out); for another host take the .cu and .json "
                                      "build writes")
        arch = str(data.get("arch", f"sm_{_CUDA_DEFAULT_SM}"))
        sm = arch.removeprefix("sm_")
        return _PRESETS.get(f"cuda-sm{sm}", _PRESETS["cuda"])
    raise _unknown(given, f"has kind {kind!r}: supported kinds are llvm and cuda")


def _check_triple(triple: str, given: Any) -> None:
    """Linux on little-endian x86_64 or AArch64: what the kernels are linked for (a Darwin,
    Windows or big-endian object would fail in the linker, or worse)."""
    if not triple:
        return
    parts = triple.lower().split("-")
    if parts[0] not in ("x86_64", "aarch64", "arm64") or "linux" not in parts:
        raise _unknown(given, f"has mtriple {triple!r}: only x86_64 and aarch64 Linux "
                              "(e.g. 'aarch64-linux-gnu') are supported")


def _check_with_tvm(data: dict[str, Any], given: Any) -> None:
    """TVM's own check of the JSON's options, turned into a SpecError."""
    from .tvm_backend._tvm import tvm

    try:
        tvm.target.Target(data)
    except (ValueError, RuntimeError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _unknown(given, f"is rejected by TVM: {first}") from None


@functools.cache
def _llvm_cpus(triple: str) -> frozenset[str]:
    """The CPU names LLVM knows for a triple ('' for this machine's); a few ms, once per triple."""
    from .tvm_backend._tvm import tvm

    tvm_json = {"kind": "llvm", **({"mtriple": triple} if triple else {})}
    try:
        names = tvm.target.codegen.llvm_get_cpu_archlist(tvm.target.Target(tvm_json))
    except (ValueError, RuntimeError, TypeError):  # an LLVM built without this architecture
        return frozenset()
    return frozenset(str(name) for name in names)


def _check_mcpu(data: dict[str, Any], given: Any) -> None:
    """An mcpu LLVM does not know for the triple is refused: LLVM would only log a line and build
    generic code (128-bit SSE on x86), which runs, and slowly."""
    mcpu = data.get("mcpu")
    if not isinstance(mcpu, str):
        return  # absent, or a type TVM's own check refuses
    triple = str(data.get("mtriple", ""))
    known = _llvm_cpus(triple)
    if not known or mcpu in known:  # an LLVM that lists no CPUs for the triple cannot tell
        return
    where = f"mtriple {triple!r}" if triple else "this machine's triple (the JSON has no mtriple)"
    if mcpu == "native":
        hint = "; for this machine's CPU use target 'llvm'"
    elif not triple and not _ON_AARCH64 and mcpu in _llvm_cpus("aarch64-linux-gnu"):
        hint = '; it is an AArch64 CPU: add "mtriple": "aarch64-linux-gnu"' + (
            f" (or use target {mcpu!r})" if mcpu in _PRESETS else "")
    elif triple.startswith(("aarch64", "arm64")) and mcpu in _llvm_cpus("x86_64-linux-gnu"):
        hint = '; it is an x86 CPU: drop the aarch64 "mtriple"'
    else:
        close = difflib.get_close_matches(mcpu, sorted(known), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise SpecError(f"target {given!r} has mcpu {mcpu!r}, which LLVM does not know for "
                    f"{where}{hint}")


def check_cross_compiler(target: Target) -> None:
    """A SpecError naming the package when the compiler that links ``target``'s libraries is
    missing (found when linking, it would be a FileNotFoundError from deep inside TVM)."""
    import shutil

    compiler = target.cross_compiler
    if compiler and shutil.which(compiler) is None:
        package = "gcc-" + compiler.removesuffix("-gcc").replace("_", "-")
        raise SpecError(f"target {target.name} is linked with {compiler}, which is not "
                        f"installed (Debian: apt-get install {package})")


def can_emulate(target: Target) -> bool:
    """Whether this machine can run ``target``'s kernels under its emulator (qemu-user)."""
    import shutil

    return bool(target.emulator and shutil.which(target.emulator)
                and (not target.cross_compiler or shutil.which(target.cross_compiler)))
