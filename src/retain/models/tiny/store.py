"""Where the embedded base model lives inside the package, and the manifest of hashes that guards it."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from retain.errors import RetainError

WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST = "MANIFEST.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(model_dir: Path, extra: dict) -> dict:
    """Record the SHA-256 of every file of a built model, plus how it was built."""
    files = {p.name: sha256_file(p) for p in sorted(model_dir.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {"files": files, **extra}
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def verify_manifest(model_dir: Path) -> dict:
    path = model_dir / MANIFEST
    if not path.exists():
        raise RetainError("the embedded model is missing its manifest; rebuild it with `retain build-base`",
                          file=str(path))
    manifest = json.loads(path.read_text())
    for name, expected in manifest["files"].items():
        f = model_dir / name
        if not f.exists():
            raise RetainError("listed in the manifest but missing", file=str(f))
        if sha256_file(f) != expected:
            raise RetainError(f"hash does not match the manifest ({MANIFEST})", file=str(f))
    return manifest


@lru_cache(maxsize=1)
def embedded_dir() -> Path:
    """The embedded model's folder, after checking every file against the manifest."""
    verify_manifest(WEIGHTS_DIR)
    return WEIGHTS_DIR
