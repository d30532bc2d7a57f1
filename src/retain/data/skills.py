"""Skills and streams: the unit a model learns and the order it learns them in.

A language skill is a named list of examples, each a ``prompt``, an expert ``demonstration`` and an optional
``answer`` (the reference the scorer compares with; the demonstration is used when it is missing), plus the
name of the scorer that decides whether an answer is right. A conversational example (TRL's conversational
format) keeps the messages before its last user turn, a system message for instance, in ``context``; its
``prompt`` is the text of that last user turn, so everything that reads prompts as text still can.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# One chat message as (role, content): hashable, so examples stay usable as keys and in sets.
Message = tuple[str, str]


@dataclass(frozen=True)
class Example:
    """``source`` (``file:line``) names where the example was read, so a later problem with it, such as a
    prompt longer than the model's positions, can name the line; it takes no part in equality."""

    prompt: str
    demonstration: str
    answer: str | None = None
    context: tuple[Message, ...] = ()
    source: str | None = field(default=None, compare=False)

    @property
    def reference(self) -> str:
        return self.answer if self.answer is not None else self.demonstration


@dataclass
class Skill:
    """A named skill: training examples, held-out test examples, and how answers are scored.

    ``with_demonstration`` marks a probe of the general ability to use a demonstration: its test prompts are
    shown with the demonstration for the same query (as the SDFT teacher sees them).
    """

    name: str
    train: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)
    scorer: str = "exact"
    with_demonstration: bool = False


def split_held_out(examples: list[Example], test_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded split into (train, test) whose prompts do not overlap."""
    prompts = sorted({e.prompt for e in examples})
    random.Random(seed).shuffle(prompts)
    n_test = max(1, round(len(prompts) * test_fraction)) if len(prompts) > 1 else 0
    test_prompts = set(prompts[:n_test])
    return ([e for e in examples if e.prompt not in test_prompts], [e for e in examples if e.prompt in test_prompts])
