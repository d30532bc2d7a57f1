"""What a version was made with: package versions, Python, threads and the git commit of a checkout."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGES = ("retain", "torch", "transformers", "peft", "accelerate", "safetensors")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(source: Path) -> dict[str, Any] | None:
    """The commit (and whether the tree had local changes) when retain runs from a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=source,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def capture() -> dict[str, Any]:
    """The environment record stored with every version.

    ``torch_threads`` matters for bit-exact reproduction on CPU; it is None when this process never loaded
    torch (then no tensor was computed, only stored).
    """
    import retain

    torch = sys.modules.get("torch")
    return {
        "packages": {name: _version(name) for name in PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads() if torch else None,
        "git": _git(Path(retain.__file__).resolve().parent),
    }
