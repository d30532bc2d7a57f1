"""The protection state a home versions with each champion, and how a learn starts from it.

A version's state is what its consolidation plugins remembered when it was made: EWC's accumulated Fisher and
anchor, MAS/SI importances, L2's anchor, replay and rehearsal buffers (each plugin's ``state_dict`` and
``extra_state``, :mod:`retain.methods.base`). It is one content-addressed blob per version (safetensors: the
tensors under ``<method>/<key>``, the rest as JSON in the header's metadata), recorded in the version's
``artifacts.protection_sha256``, so ``verify`` checks it and ``rollback`` brings back the matching state with
the champion.

A learn with ``--method sdft+ewc+rehearsal`` continues each plugin from the champion's state. A plugin the
champion has no state for starts by protecting what the champion knows: the training splits of every suite
entry (the user's suite or the embedded probes, and every skill learned so far), never a held-out test
prompt. ``init`` does this for :data:`INIT_METHODS` on the base model, so the very first learn protects the
base's competences. Under LoRA every learn trains a new adapter, whose parameters did not exist before: tensor
state (importances, anchors) is estimated afresh on the suite for it, while buffers carry over.
"""

from __future__ import annotations

import json
import random
import struct
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from retain.api import answered
from retain.data.prompts import teacher_message
from retain.data.skills import Example, Skill
from retain.errors import RetainError
from retain.methods.rehearsal import Rehearsed

FORMAT = "retain-protection/1"
# Estimated at init on the base model so that the first learn with them protects the base's competences.
INIT_METHODS = ("ewc", "kfac", "rehearsal")
# Options a home gives consolidation methods unless the user sets them: one accumulated EWC importance and
# anchor however many skills the home learns (online EWC, Schwarz et al. 2018), not one per learn.
# kfac's curvature from one sampled label per prediction: the exact Fisher would take one backward pass per
# vocabulary entry.
HOME_OPTIONS: dict[str, dict[str, Any]] = {"ewc": {"mode": "online"}, "kfac": {"fisher": "sampled"}}
# Training prompts per suite entry that protection draws on (a seeded sample). Rehearsal needs variety: on the
# demo stream (seed 0, rehearsal as cross-entropy at 8 per new example, 3x the rate) 32 per probe kept 84% of
# the priors, 128 kept 90%, 256 88%: with few words the model learns the rehearsed words more than the rule
# (at 128, sort 0.73 on the rehearsed words, 0.46 on held-out ones). Those homes were made with rehearsal's
# default size 256, so the buffer kept all 192 prompts at 32 but a seeded sample of 256 at 128 and 256.
# EWC's Fisher is bounded by its own ``fisher_samples``.
PER_ENTRY = 128


def encode(plugins: list[Any]) -> bytes:
    """One blob holding every plugin's state."""
    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, Any] = {}
    for plugin in plugins:
        for key, value in plugin.state_dict().items():
            tensors[f"{plugin.name}/{key}"] = value.detach().cpu().contiguous()
        extra[plugin.name] = plugin.extra_state()
    return save_tensors(tensors, metadata={"format": FORMAT, "extra": json.dumps(extra, sort_keys=True)})


def decode(blob: bytes) -> dict[str, tuple[dict[str, torch.Tensor], dict[str, Any]]]:
    """``{method: (tensors, extra)}`` of a blob made by :func:`encode`."""
    (size,) = struct.unpack("<Q", blob[:8])
    metadata = json.loads(blob[8:8 + size]).get("__metadata__", {})
    if metadata.get("format") != FORMAT:
        raise RetainError(f"protection state in an unknown format {metadata.get('format')!r}", field="protection")
    tensors = load_tensors(blob)
    extra = json.loads(metadata["extra"])
    return {name: ({key.split("/", 1)[1]: t for key, t in tensors.items() if key.startswith(f"{name}/")}, state)
            for name, state in extra.items()}


def prior_examples(adapter: Any, skills: list[Skill], seed: int = 0, per_entry: int = PER_ENTRY) -> list[Example]:
    """What the model knows, as examples to protect: up to ``per_entry`` training prompts of each suite entry,
    answered by the model itself (what is protected is what it does now). An entry shown with a demonstration
    (demonstration use) is given as the full text the model sees."""
    rng = random.Random(seed)
    examples: list[Example] = []
    for skill in skills:
        chosen = rng.sample(skill.train, min(per_entry, len(skill.train)))
        examples += [Rehearsed(prompt=teacher_message(e, adapter.teacher_template), demonstration="", shown=True)
                     if skill.with_demonstration else Example(prompt=e.prompt, demonstration="") for e in chosen]
    return answered(adapter, examples)


def start(plugins: list[Any], adapter: Any, state: dict[str, tuple[dict, dict]] | None, suite: list[Skill], *,
          lora: bool, seed: int = 0, per_entry: int = PER_ENTRY) -> list[str]:
    """Bring each plugin to where the champion left it, or protect up to ``per_entry`` training prompts of each
    suite entry with it.

    Returns one line per plugin saying which it did (the learn prints them)."""
    notes: list[str] = []
    prior: list[Example] | None = None
    for plugin in plugins:
        saved = (state or {}).get(plugin.name)
        if saved is not None and not (lora and saved[0]):
            try:
                plugin.load_state(*saved)
            except (ValueError, KeyError) as err:
                raise RetainError(f"the champion's {plugin.name} state does not fit these {plugin.name} options "
                                  f"({err})", field="method") from None
            held = plugin.held()
            notes.append(f"{plugin.name}: continues the champion's state" + (f" ({held})" if held else ""))
            continue
        if prior is None:
            prior = prior_examples(adapter, suite, seed, per_entry)
        if not prior:
            raise RetainError(f"{plugin.name} has nothing to protect: the home's suite has no training prompts "
                              "(add suite items with `retain suite add`)", field="method")
        try:
            plugin.protect(adapter, prior)
        except RetainError as err:
            notes.append(f"{plugin.name}: starts empty ({err.message})")
            continue
        held = plugin.held()
        notes.append(f"{plugin.name}: protects the suite's training prompts ({len(prior)}"
                     + (f"; {held})" if held else ")"))
    return notes
