"""Schedule families by target: the one table that maps a target to its TVM schedule."""

from __future__ import annotations

from ..targets import Target
from .schedule_cpu import schedule_cpu

_FAMILIES = {"cpu": schedule_cpu}


def register_family(name: str, apply) -> None:
    _FAMILIES[name] = apply


def schedule_for(target: Target):
    try:
        return _FAMILIES[target.family]
    except KeyError:
        raise ValueError(f"no TVM schedule for target family {target.family!r}") from None


from . import schedule_cuda  # noqa: E402,F401 - registers the "cuda" family (it imports this module)
