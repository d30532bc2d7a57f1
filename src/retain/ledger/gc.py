"""``retain gc HOME``: remove blobs no version references (left by a crash or a full disk before a commit).

References come from the versions' records (manifests, their tensors and files, data files, held-out sets),
the same set ``retain verify`` counts. Collection runs under the write lock on a home whose log and database
agree, and refuses when a manifest cannot be read: its tensors would look unreferenced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retain.errors import RetainError
from retain.ledger import store
from retain.ledger.core import Home
from retain.ledger.verify import Report, references


@dataclass(frozen=True)
class Collected:
    """What ``gc`` removed (or, with ``dry_run``, would remove)."""

    objects: int
    bytes: int
    kept: int


def collect(path: str | Path, dry_run: bool = False, timeout: float = 0.0) -> Collected:
    """Delete every blob of ``path`` that no recorded version uses."""
    home = Home.open(path)
    with home.writing("gc", timeout):
        records = [store.version_row(home.conn, name)["record"] for name in store.version_names(home.conn)]
        for record in records:
            sha = record["artifacts"]["manifest_sha256"]
            if not home.objects.check(sha):
                raise RetainError(f"the manifest of {record['version']} is missing or damaged, so its tensors "
                                  "cannot be told from unreferenced ones; run retain verify",
                                  file=home.objects.relpath(sha))
        refs = references(home.objects, records, Report(), store.suite_event_specs(home.conn))
        loose = [sha for sha in home.objects if sha not in refs]
        freed = sum(home.objects.size(sha) if dry_run else home.objects.remove(sha) for sha in loose)
        if not dry_run:
            for folder in home.objects.root.iterdir():
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
    return Collected(len(loose), freed, len(refs))
