"""Model folders stored per tensor: a folder becomes a manifest, and a manifest becomes a folder again.

Every ``*.safetensors`` file is split into one small safetensors blob per tensor (a single tensor named
``tensor``), so a tensor that did not change between versions is stored once. Other files (config, tokenizer)
are stored whole. Headers are parsed here rather than through a framework so every dtype (bf16, fp8, ...)
passes through byte for byte and only one tensor is in memory at a time.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retain.errors import RetainError
from retain.ledger.atomic import fsync_dir
from retain.ledger.hashing import sha256_bytes, sha256_json
from retain.ledger.objects import ObjectStore
from retain.safetensors_file import read_header

BLOB_KEY = "tensor"
Manifest = dict[str, Any]


def _encode(entries: list[tuple[str, str, list[int], int]], metadata: dict[str, str] | None) -> bytes:
    """A safetensors header for tensors laid out back to back in the given order, padded to 8 bytes."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, nbytes in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def tensor_blob(dtype: str, shape: list[int], data: bytes) -> bytes:
    """One tensor as a self-describing safetensors file: what the object store keeps per tensor."""
    return _encode([(BLOB_KEY, dtype, list(shape), len(data))], None) + data


def parse_blob(blob: bytes, where: str) -> tuple[str, list[int], bytes]:
    """The dtype, shape and raw bytes of a per-tensor blob."""
    (size,) = struct.unpack("<Q", blob[:8])
    spec = json.loads(blob[8:8 + size])[BLOB_KEY]
    start, end = spec["data_offsets"]
    data = blob[8 + size + start:8 + size + end]
    if len(data) != end - start:
        raise RetainError("truncated tensor object", file=where)
    return spec["dtype"], spec["shape"], data


def _split_safetensors(path: Path, put: Callable[[bytes], str]) -> dict[str, Any]:
    """Store each tensor of one safetensors file; return its metadata and (name, blob sha) in file order."""
    with open(path, "rb") as handle:
        header, data_start = read_header(handle, str(path))
        metadata = header.pop("__metadata__", None)
        tensors = []
        for name, spec in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            start, end = spec["data_offsets"]
            handle.seek(data_start + start)
            data = handle.read(end - start)
            if len(data) != end - start:
                raise RetainError(f"truncated tensor {name}", file=str(path))
            tensors.append([name, put(tensor_blob(spec["dtype"], spec["shape"], data))])
    return {"metadata": metadata, "tensors": tensors}


def _files(folder: Path) -> list[Path]:
    """Every regular file under ``folder`` in a stable order; hidden files (editor, OS debris) are skipped."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / n for n in sorted(names) if not n.startswith(".")]
    return found


def snapshot(folder: Path, put: Callable[[bytes], str]) -> Manifest:
    """Store a model folder through ``put`` (the object store, or a hash-only function) and describe it."""
    files: dict[str, str] = {}
    shards: dict[str, Any] = {}
    for path in _files(folder):
        rel = path.relative_to(folder).as_posix()
        if rel.endswith(".safetensors"):
            shards[rel] = _split_safetensors(path, put)
        else:
            files[rel] = put(path.read_bytes())
    if not shards:
        raise RetainError("holds no *.safetensors weights", file=str(folder))
    return {"files": files, "safetensors": shards}


def hash_only(data: bytes) -> str:
    """A ``put`` that stores nothing: the hash a blob would have, for comparing without writing."""
    return sha256_bytes(data)


def weights_sha256(manifest: Manifest) -> str:
    """The hash of a version's weights: every tensor name with its content hash, whatever the sharding."""
    tensors = {name: sha for shard in manifest["safetensors"].values() for name, sha in shard["tensors"]}
    return sha256_json(tensors)


def referenced(manifest: Manifest) -> dict[str, str]:
    """Every blob a manifest uses, with a note of what it is (for verify's messages)."""
    refs = {sha: f"file {rel}" for rel, sha in manifest["files"].items()}
    for rel, shard in manifest["safetensors"].items():
        refs.update({sha: f"tensor {name} of {rel}" for name, sha in shard["tensors"]})
    return refs


def materialize(store: ObjectStore, manifest: Manifest, out: Path) -> None:
    """Write the folder a manifest describes into ``out`` (which must exist), checking every blob's hash."""
    for rel, sha in manifest["files"].items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get(sha))
    for rel, shard in manifest["safetensors"].items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        entries = []
        for name, sha in shard["tensors"]:
            if not store.has(sha):
                store.get(sha)
            with open(store.path(sha), "rb") as handle:
                header, _ = read_header(handle, store.relpath(sha))
            spec = header[BLOB_KEY]
            entries.append((name, spec["dtype"], spec["shape"], spec["data_offsets"][1] - spec["data_offsets"][0]))
        with open(target, "wb") as handle:
            handle.write(_encode(entries, shard["metadata"]))
            for name, sha in shard["tensors"]:
                handle.write(parse_blob(store.get(sha), store.relpath(sha))[2])
            handle.flush()
            os.fsync(handle.fileno())
    fsync_dir(out)


def manifest_bytes(store: ObjectStore, manifest: Manifest) -> int:
    """Bytes of every distinct blob a manifest uses (what the version would cost without sharing)."""
    return sum(store.size(sha) for sha in referenced(manifest))
