"""Named recipes the benchmarks share: a method spec, its options and its learning rate as a multiple of the
benchmark's. ``retain bench retention`` (through a home) and the language rows of ``retain bench consolidation``
(one run per stream) both read the protected recipe from here, so a label means the same training in both."""

from __future__ import annotations

from typing import Any, NamedTuple


class BenchRecipe(NamedTuple):
    """A recipe of a benchmark: the method spec, its options, and its learning rate as a multiple of the
    benchmark's (the embedded model's unless the benchmark is told otherwise): a recipe whose protection holds
    at a higher rate says so here, and the results record the rate every run used."""

    method: str
    options: dict[str, dict[str, Any]]
    lr_scale: float = 1.0
    # through a home: create it with the options of the recipe's protection methods (``retain init --set``), so
    # that, for one, the rehearsal buffer the suite's prompts are kept in has the recipe's size from the start
    at_init: bool = False
    # the plain commands: `retain init HOME` with no options, then `retain learn HOME FILE` naming nothing but the
    # benchmark's budget (the home's method, options, scorer and rate; ``method`` and ``options`` are unused)
    home_default: bool = False
    # options of each learn beyond the recipe (``learn_in_home``'s keywords), e.g. ``rate_search=False``: the
    # plain commands with ``--no-rate-search``
    learn: dict[str, Any] = {}

    def rate(self, lr: float) -> float:
        """The learning rate this recipe trains at when the benchmark's is ``lr``."""
        return lr * self.lr_scale


# Rehearsal as cross-entropy on answers kept from when each prompt was stored, 8 rehearsed per new example: it
# holds the priors at 3x the embedded learning rate, where plain SDFT keeps under 20% of them
# (``retain.bench.retention`` has the seed-0 sweep).
REHEARSAL_CE = {"rehearsal": {"target": "ce", "refresh": False, "ratio": 8.0, "size": 1024}}
SDFT_REHEARSAL_CE_3X = BenchRecipe("sdft+rehearsal", REHEARSAL_CE, 3.0)
SDFT_REHEARSAL_CE_3X_AT_INIT = SDFT_REHEARSAL_CE_3X._replace(at_init=True)
# What `retain init HOME` and `retain learn HOME FILE` train with no options (retain.home.defaults).
HOME_DEFAULT = BenchRecipe("default", {}, home_default=True)
# The same at the home's recorded rate, without the search of retain.home.rate (`retain learn --no-rate-search`).
HOME_FIXED_RATE = HOME_DEFAULT._replace(learn={"rate_search": False})
