"""Workflows over one evolving model's home: init, learn into it, reproduce a version, edit its suite.

They sit above the public API (:mod:`retain.api`, :func:`retain.run.run`) and below the CLI; the storage they
write through is :mod:`retain.ledger`, which knows nothing of training. The protection state a home versions
with each champion is :mod:`retain.home.protection`; the user's suite files, :mod:`retain.home.suite_files`;
a version as a model (materialised, compared, handed to the guard), :mod:`retain.home.versions`.

The workflows are exported lazily (as :mod:`retain` exports its API), so importing a submodule such as
:mod:`retain.home.lmeval` never runs :mod:`retain.home.workflows` first: no import cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["add_to_suite", "init_home_from_model", "is_home", "learn_in_home", "list_suite", "remove_from_suite",
           "reproduce", "score_suite"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("retain.home.workflows"), name)
    raise AttributeError(f"module 'retain.home' has no attribute {name!r}")
