"""Every random source seeded from the run's seed, so CPU runs repeat bit for bit."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator for sampling that the caller owns."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Tiny models drift into denormal floats late in training, which is many times slower on CPU.
    torch.set_flush_denormal(True)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def derived_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th part of a run seeded with ``seed`` (a task of a stream, an episode)."""
    return (seed * 1000 + index) % 2**63
