"""What a home learns with when a learn names nothing: its protection, its objective's settings, its scorer and
its learning rate, fixed by ``retain init`` and recorded in v1, so that ``retain init HOME`` then ``retain learn
HOME skill.jsonl`` trains exactly what the retention benchmark measures.

The protection is rehearsal (Self-Synthesized Rehearsal, Huang et al., ACL 2024, with Learning without
Forgetting's targets, Li and Hoiem, ECCV 2016): the suite's training prompts, answered by the base when the home
is made, are trained on with cross-entropy beside SDFT's loss (``target=ce``), each prompt keeping the answer it
had when it was stored (``refresh=False``), weighted 8 to 1 against the new skill (``ratio``), with all of the
embedded suite's 768 prompts kept (``size``). ``draw`` sets how many rehearsed examples a step trains on per new
example, apart from their weight: the cost of a learn is mostly these examples' forwards and backwards.

Each learn then searches its own rate around the home's (:mod:`retain.home.rate`: two short pilots, at the
home's rate and 5/3 of it, the winner continued), recorded here as ``rate_search`` for every new home.

Every value here was chosen on the demo stream and the ``strings2`` tuning stream (:mod:`retain.data.streams`);
the ``long`` stream is held out. The measurements are in ``docs/results.md``.
"""

from __future__ import annotations

from typing import Any

# The consolidation methods ``retain init`` estimates on the suite, and their options (under ``--set``).
PROTECTION: tuple[str, ...] = ("rehearsal",)
PROTECTION_SETTINGS: dict[str, dict[str, Any]] = {
    "rehearsal": {"target": "ce", "refresh": False, "ratio": 8.0, "size": 1024, "draw": 2.0},
}
# The learning rate of a home on the embedded model, as a multiple of the model's own fine-tuning rate: the
# rehearsal above holds the priors at 3x, where plain SDFT at 3x keeps under 20% of them.
EMBEDDED_LR_SCALE = 3.0
# Homes recorded before a home kept its learn settings learned plain SDFT, scored exactly, at the model's rate;
# homes recorded before a learn searched its rate train at the recorded one.
LEGACY = {"method": "sdft", "options": {}, "scorer": "exact", "lr": None, "rate_search": None}


def learn_settings(source: str, protection: tuple[str, ...]) -> dict[str, Any]:
    """What every learn of a new home over ``source`` (``embedded`` or a folder) uses unless it says otherwise:
    the method (SDFT plus the home's ``protection``), the objective's options, the scorer and the rate (None:
    the model's default, :func:`retain.recipe.default_lr`)."""
    from retain.domains.language import embedded_sdft_options
    from retain.home.rate import RateSearch
    from retain.models.tiny.build import EMBEDDED_FINETUNE_LR

    method = "+".join(("sdft", *protection))
    search = RateSearch().to_dict()
    if source == "embedded":
        # short answers: no skipped tokens, 24 new tokens; scored on content (alnum), as the benchmarks are
        return {"method": method, "options": {"sdft": embedded_sdft_options()}, "scorer": "alnum",
                "lr": EMBEDDED_FINETUNE_LR * EMBEDDED_LR_SCALE, "rate_search": search}
    return {"method": method, "options": {}, "scorer": "exact", "lr": None, "rate_search": search}


def document_budget(source: str | None) -> tuple[int, int, int]:
    """Passes, batch size and surface variants per question of a documents learn (``retain learn --documents``)
    that names none of them, for a home over ``source``. The SDFT paper trained knowledge 4 epochs (7B), batch 16
    as a skill learn; the embedded model needs 20 passes in batches of 4 (``retain bench knowledge``'s world,
    seed 0: at a skill learn's 2 passes of 16 it answered none of its 48 training questions, at 20 of 4, 88%),
    and 4 surface variants of each question (:mod:`retain.data.augment`): without them it answered 42% of the
    held-out phrasings closed-book (seed 0; 67% with 100 passes), with them 92%. Variants are measured on the
    embedded model only, and multiply a learn's cost, so other models make none unless ``--augment`` asks."""
    return (20, 4, 4) if source == "embedded" else (4, 16, 0)


def home_settings(v1_config: dict[str, Any]) -> dict[str, Any]:
    """The learn settings a home recorded at init (:data:`LEGACY` for a home made before they were)."""
    return {**LEGACY, **v1_config.get("learn", {})}


def describe(method: str, notes: list[str], lr: float, rate: str = "") -> str:
    """The one line a learn prints about how it protects the home: the method, each protection method's state,
    and the learning rate (with ``rate``: where it came from)."""
    return (f"learning with {method} ({'; '.join(notes) if notes else 'no protection'}), "
            f"lr {lr:g}{f' ({rate})' if rate else ''}")
