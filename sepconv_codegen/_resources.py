"""Files installed with the package (templates/, schedules/), found in a wheel or a source tree."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _folder(package: str, folder: str) -> Path | None:
    try:
        path = Path(str(resources.files(package)))
        if path.is_dir():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    candidate = _SOURCE_ROOT / folder
    return candidate if candidate.is_dir() else None


def templates_dir() -> Path:
    path = _folder("sepconv_codegen._templates", "templates")
    if path is None:
        raise FileNotFoundError("sepconv_codegen's templates/ folder is missing from this install")
    return path


def shipped_schedules(filename: str) -> Path | None:
    folder = _folder("sepconv_codegen._schedules", "schedules")
    if folder is None:
        return None
    if not filename:
        return folder
    path = folder / filename
    return path if path.is_file() else None
