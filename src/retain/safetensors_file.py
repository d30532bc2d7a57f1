"""A ``*.safetensors`` file read by its header alone: what the ledger (which stores each tensor of a model
folder apart, :mod:`retain.ledger.tensors`) and the model loader (which names a truncated file before a
framework fails on it, :mod:`retain.models.loading`) share. It sits below both: it reads bytes, nothing else.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, BinaryIO

from retain.errors import RetainError


def read_header(handle: BinaryIO, where: str) -> tuple[dict[str, Any], int]:
    """The header of a safetensors file and the offset where its data begins."""
    raw = handle.read(8)
    if len(raw) != 8:
        raise RetainError("not a safetensors file (too short)", file=where)
    (size,) = struct.unpack("<Q", raw)
    if size > 100_000_000:
        raise RetainError("not a safetensors file (header size is implausible)", file=where)
    try:
        header = json.loads(handle.read(size))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RetainError("not a safetensors file (header is not JSON)", file=where) from None
    if not isinstance(header, dict):
        raise RetainError("not a safetensors file (header is not an object)", file=where)
    return header, 8 + size


def check_complete(folder: Path) -> None:
    """Raise a one-line error if a ``*.safetensors`` file in ``folder`` is cut short or its header is broken.

    Reads only headers and sizes, so a truncated download or a copy onto a full disk is named before a
    framework fails on it with a traceback.
    """
    for path in sorted(Path(folder).glob("*.safetensors")):
        with open(path, "rb") as handle:
            header, data_start = read_header(handle, str(path))
        ends = [spec["data_offsets"][1] for name, spec in header.items()
                if name != "__metadata__" and isinstance(spec, dict) and "data_offsets" in spec]
        need, have = data_start + max(ends, default=0), path.stat().st_size
        if have < need:
            raise RetainError(f"truncated: {have} bytes where its header needs {need} (copy or download it again)",
                              file=str(path))
