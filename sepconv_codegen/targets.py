"""Targets: short names a user types, resolved to what the schedules and the compiler need.

A target here is data: the TVM target JSON, the schedule family that serves it, the vector width
and register file the default knobs are derived from, and how its modules are linked. Target
differences live in these attributes, not in `if target == ...` branches elsewhere.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field, replace
from typing import Any

from .spec import SpecError

__all__ = ["Target", "list_targets", "resolve_target"]


@dataclass(frozen=True)
class Target:
    """A compilation target: what `--target` and `target=` resolve to."""

    name: str  # the short name, or "custom" for raw JSON
    description: str
    tvm: dict[str, Any]  # the TVM target JSON
    family: str  # schedule family: "cpu" or "cuda"
    vector_bits: int = 256  # SIMD register width
    vector_registers: int = 16  # architectural SIMD registers (register-tile budget)
    cross_compiler: str | None = None  # None: the host compiler links the module
    runs_here: bool = True  # whether this machine can run the compiled module
    aliases: tuple[str, ...] = field(default=(), compare=False)

    def lanes(self, dtype: str) -> int:
        """Vector lanes for ``dtype`` (float16 is computed in float32 lanes on CPUs)."""
        bits = {"float64": 64}.get(dtype, 32)
        return max(1, self.vector_bits // bits)

    @property
    def schedule_file(self) -> str:
        """The shipped-schedules file for this target, e.g. 'llvm-znver3.jsonl'."""
        tag = self.tvm.get("mcpu") or self.tvm.get("arch") or self.tvm.get("mtriple") or "generic"
        return f"{self.tvm.get('kind', 'unknown')}-{tag}.jsonl"

    @property
    def key(self) -> str:
        """A stable string for the tuning database: the TVM target JSON, sorted."""
        return json.dumps(self.tvm, sort_keys=True, separators=(",", ":"))


def _host() -> Target:
    from .tvm_backend._tvm import host_cpu_name, tvm

    cpu = host_cpu_name()
    target = tvm.target.Target({"kind": "llvm", "mcpu": cpu})
    with target:
        features = tvm.target.codegen.llvm_get_cpu_features()
    bits = 512 if "avx512f" in features else 256 if "avx" in features else 128
    registers = 32 if bits == 512 or platform.machine() == "aarch64" else 16
    return Target(
        name="llvm",
        description=f"this machine's CPU ({cpu}, {bits}-bit SIMD, all cores)",
        tvm={"kind": "llvm", "mcpu": cpu},
        family="cpu",
        vector_bits=bits,
        vector_registers=registers,
        aliases=("host", "x86", "native"),
    )


_PRESETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    for name in (target.name, *target.aliases):
        _PRESETS[name] = target
    return target


def list_targets() -> list[Target]:
    """Every named target, host first."""
    seen: dict[str, Target] = {"llvm": resolve_target("llvm")}
    for target in _PRESETS.values():
        seen.setdefault(target.name, target)
    return list(seen.values())


def resolve_target(target: str | dict | Target) -> Target:
    """A Target from a short name ('llvm', ...), a TVM target JSON string or dict, or a Target."""
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        text = target.strip()
        if text in ("llvm", "host", "x86", "native"):
            return _host()
        if text in _PRESETS:
            return _PRESETS[text]
        if text.startswith("{"):
            try:
                target = json.loads(text)
            except json.JSONDecodeError as err:
                raise SpecError(f"target {target!r} is not valid JSON: {err}") from None
        else:
            known = ", ".join(sorted({"llvm", *_PRESETS}))
            raise SpecError(f"target {target!r} is unknown (known: {known}; or a TVM target JSON)")
    if isinstance(target, dict):
        return _from_json(target)
    raise SpecError(f"target must be a name, a TVM target JSON or a Target, got {target!r}")


def _from_json(data: dict[str, Any]) -> Target:
    kind = data.get("kind")
    if kind == "llvm":
        host = _host()
        if "mtriple" in data and "aarch64" in str(data["mtriple"]) and platform.machine() != "aarch64":
            base = _PRESETS.get("aarch64")
            if base is None:
                raise SpecError(f"target {data!r}: AArch64 is not available in this build")
            return replace(base, name="custom", description=f"custom: {json.dumps(data)}", tvm=dict(data))
        return replace(host, name="custom", description=f"custom: {json.dumps(data)}", tvm=dict(data),
                       aliases=())
    if kind == "cuda" and "cuda" in _PRESETS:
        return replace(_PRESETS["cuda"], name="custom", description=f"custom: {json.dumps(data)}",
                       tvm=dict(data), aliases=())
    raise SpecError(f"target {data!r}: kind {kind!r} is not supported (llvm, cuda)")
