"""Surface variants of training prompts: the same question asked with its punctuation and spacing changed.

A fact learned from a few wordings of a question is often not recalled when it is asked in another wording:
Allen-Zhu and Li ("Physics of Language Models: Part 3.1, Knowledge Storage and Extraction", ICML 2024) show that
knowledge becomes extractable from unseen phrasings only when training sees each fact in varied forms
("knowledge augmentation"). The variants here are AEDA's edits (Karimi, Rossi and Prati, "AEDA: An Easier Data
Augmentation Technique for Text Classification", Findings of EMNLP 2021: random punctuation marks inserted
between words), extended to removing or changing a mark: one or two edits at the boundaries between words and
marks, never inside a word, so each variant asks the same thing and keeps its demonstration and answer.

Only the training split is augmented, and no variant is a prompt of the held-out split (or one of ``avoid``: a
benchmark's closed-book questions), so a score on held-out prompts never counts a prompt trained on.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import replace

from retain.data.skills import Skill

MARKS = ",.:;?!-'"
MAX_COPIES = 16


def surface_variant(prompt: str, rng: random.Random) -> str:
    """``prompt`` with one or two edits between or around its words: a mark (or a space) inserted at a boundary
    between a word and what is not a word, or one mark removed or changed; runs of spaces are collapsed."""
    out = prompt
    for _ in range(rng.randint(1, 2)):
        marks = [i for i, c in enumerate(out) if not c.isalnum() and c != "\n"]
        edit = rng.choice(("insert", "remove", "change") if marks else ("insert",))
        if edit == "insert":
            bounds = [0, len(out)] + [i for i in range(1, len(out)) if out[i - 1].isalnum() != out[i].isalnum()]
            at = rng.choice(bounds)
            out = out[:at] + rng.choice(MARKS + " ") + out[at:]
        else:
            at = rng.choice(marks)
            out = out[:at] + (rng.choice(MARKS + " ") if edit == "change" else "") + out[at + 1:]
        out = "\n".join(" ".join(line.split()) for line in out.split("\n"))
    return out


def augmented(skill: Skill, copies: int, seed: int, avoid: Collection[str] = ()) -> Skill:
    """``skill`` with up to ``copies`` distinct surface variants of each training example's prompt added to its
    training split (same demonstration and answer); the held-out split is unchanged. Seeded: the same skill,
    copies and seed give the same examples. ``copies`` 0 returns ``skill`` itself."""
    if copies <= 0:
        return skill
    rng = random.Random(f"augment-{seed}")
    taken = {e.prompt for e in skill.train} | {e.prompt for e in skill.test} | set(avoid)
    extra = []
    for example in skill.train:
        made = 0
        for _ in range(copies * 4):  # a short prompt has few variants: stop trying after a while
            variant = surface_variant(example.prompt, rng)
            if variant in taken or not any(c.isalnum() for c in variant):
                continue
            taken.add(variant)
            extra.append(replace(example, prompt=variant))
            made += 1
            if made == copies:
                break
    return replace(skill, train=skill.train + extra)
