"""How the rate search's tolerance was calibrated (retain.home.rate, docs/results.md): for each skill of a stream,
from a fresh default home's v1, the search's pilots at several factors of the home's rate, with each suite
entry's rise in loss (nats per token) over the champion's. Only the tuning streams (demo, strings2) were used.

    python benchmarks/rate_search_calibration.py demo [--seed 0] [--factors 1,1.6667,2.3333]

prints one JSON line per skill and factor (about 1 minute per pilot on one core).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stream", choices=("demo", "strings2", "long"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--factors", default="1,1.6667,2.3333")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from retain.bench.retention import stream_of
    from retain.data.jsonl import write_examples
    from retain.data.streams import StreamChoice
    from retain.domains.language import Budget
    from retain.home import init_home_from_model
    from retain.home import workflows
    from retain.home.rate import RateSearch, search

    work = Path(tempfile.mkdtemp(prefix="rate-calibration-"))
    home = init_home_from_model(work / "home", "embedded")
    factors = tuple(float(f) for f in args.factors.split(","))
    for skill in stream_of(StreamChoice(args.stream), Budget(), args.seed):
        path = work / f"{skill.name}.jsonl"
        write_examples(path, skill.train + skill.test)
        # the plan and the champion exactly as `retain learn HOME FILE` makes them; every pilot starts from v1
        plan = workflows._plan(home, path, None, None, seed=args.seed, lora=False, force=None, lr=None, epochs=2,
                               batch_size=16, scorer=None, test_fraction=0.2, name=None, accept_flagged=None)
        with home.work_dir("calibration") as folder:
            champion = workflows._open_champion(plan, folder)
            suite = [s for s, _ in champion.suite]
            found = search(RateSearch(factors=factors), plan.recipe.train.lr, plan.skill, suite,
                           workflows._pilot(home, champion.name, champion.folder, plan.recipe, suite), champion.model)
        for p in found.evidence["pilots"]:
            rises = {k: round(v - found.evidence["champion_prior"][k], 3) for k, v in p["priors"].items()}
            print(json.dumps({"stream": args.stream, "skill": skill.name, "factor": p["factor"],
                              "new": round(p["new"], 3), "worst": round(p["prior"], 3), "rises": rises}), flush=True)


if __name__ == "__main__":
    main()
