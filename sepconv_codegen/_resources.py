"""Files installed with the package (templates/, schedules/), found in a wheel or a source tree.

Installed, the top-level templates/ and schedules/ folders live inside the package as _templates/
and _schedules/ (pyproject.toml maps them); in a source checkout they sit beside the package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _folder(installed: str, source: str) -> Path | None:
    for candidate in (_PACKAGE / installed, _PACKAGE.parent / source):
        if candidate.is_dir():
            return candidate
    return None


def templates_dir() -> Path:
    path = _folder("_templates", "templates")
    if path is None:
        raise FileNotFoundError("sepconv_codegen's templates/ folder is missing from this install")
    return path


def shipped_schedules(filename: str) -> Path | None:
    """The shipped schedules folder (filename ""), or one file in it; None when absent."""
    folder = _folder("_schedules", "schedules")
    if folder is None:
        return None
    if not filename:
        return folder
    path = folder / filename
    return path if path.is_file() else None
