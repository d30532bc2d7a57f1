"""The guard's ``rule`` signal alone (retain.guard.rule; no model, so every file screens in about a second):

    python benchmarks/guard_rule.py attacks [--seeds 1,2] [--families F,..] [--out FILE.json]
    python benchmarks/guard_rule.py clean [--out FILE.json]
    python benchmarks/guard_rule.py whole [--out FILE.json]
    python benchmarks/guard_rule.py cost [--before OLD_RULE.py] [--out FILE.json]

``attacks``: ``retain bench guard``'s files (200 lines of each shipped family, every attack class of
retain.guard.attacks at 1, 3, 5 and 10%, and the clean file) for each seed; prints recall / false-positive rate
per family, one row per class and rate. Seed 0 is the one the cut-offs were set on; 1 and 2 are held out.
About 4 min per seed on one core.

``clean``: the false-positive rate on clean files of every rule the synthetic world has (the probes, the
background skills, the new skills, the streams' skills and fifteen made-up rules of the in-context probe's
kinds), at 32, 64, 200 and 640 lines and three answer styles; prints each rule's worst rate and the worst
files' reasons. About 14 min.

``whole``: the whole screen (every signal, the embedded model as champion) on clean 640-line files of rotr,
swap, ends and mirror (seed 0), the size a home learns: lines flagged per signal, and how many lines the rule
signal certified and cleared of other signals' flags. About 2 min.

``cost``: the rule signal's CPU seconds on 640-line files of rotr, mirror and dblsort; ``--before FILE`` times
another version's ``rule.py`` beside it. Under a minute.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from pathlib import Path

def attacks(seeds: list[int], families: tuple[str, ...] | None = None) -> dict:
    from retain.bench.guard import FAMILIES, GuardBudget
    from retain.data.synthetic import new_skills
    from retain.guard.attacks import ATTACK_CLASSES, plant
    from retain.guard.rule import rule

    names = families or FAMILIES  # the shipped families unless named
    rows = []
    for seed in seeds:
        skills = {s.name: s for s in new_skills(n_train=200, n_test=30, seed=seed, names=list(names))}
        clean = {f: sum(x.flagged for x in rule(skills[f].train)) / len(skills[f].train) for f in names}
        rows.append({"seed": seed, "attack": "clean", "rate": 0.0, "fpr": clean})
        print(f"seed {seed} clean FPR " + " ".join(f"{f} {v:.3f}" for f, v in clean.items()), flush=True)
        for attack in ATTACK_CLASSES:
            for rate in GuardBudget().rates:
                recall, fpr = {}, {}
                for family in names:
                    planted = plant(attack, family, skills[family].train, rate, seed)
                    found = rule(planted.examples)
                    others = [i for i in range(len(found)) if i not in planted.poisoned]
                    recall[family] = sum(found[i].flagged for i in planted.poisoned) / len(planted.poisoned)
                    fpr[family] = sum(found[i].flagged for i in others) / len(others)
                rows.append({"seed": seed, "attack": attack, "rate": rate, "recall": recall, "fpr": fpr})
                print(f"seed {seed} {attack:15s} {rate:.2f} "
                      + " ".join(f"{recall[f]:.2f}/{fpr[f]:.3f}" for f in names), flush=True)
    return {"families": list(names), "rows": rows}


def clean() -> dict:
    from retain.data.synthetic import (BACKGROUND_RULES, NEW_RULES, PRIOR_RULES, STREAM_RULES, make_example,
                                       random_rule, random_word)
    from retain.guard.rule import rule

    rules = {**{f"prior:{k}": v for k, v in PRIOR_RULES.items()}, **{f"bg:{k}": v for k, v in BACKGROUND_RULES.items()},
             **{f"new:{k}": v for k, v in NEW_RULES.items()}, **{f"stream:{k}": v for k, v in STREAM_RULES.items()}}
    rng = random.Random(99)
    for k in range(15):
        rules[f"made-up {k}"] = random_rule(rng)
    out, worst = {}, []
    for name, fn in rules.items():
        rates = []
        for n in (32, 64, 200, 640):
            for style in ("plain", "dash", "comma"):
                rng = random.Random(zlib.crc32(f"{name}{n}{style}".encode()))
                words: set[str] = set()
                while len(words) < n:
                    words.add(random_word(rng))
                examples = [make_example(name.split(":")[-1].replace(" ", ""), fn, w, style) for w in sorted(words)]
                found = rule(examples)
                rate = sum(f.flagged for f in found) / n
                rates.append(rate)
                if rate:
                    worst.append({"rule": name, "lines": n, "style": style, "fpr": rate,
                                  "reasons": [f.reason for f in found if f.flagged][:2]})
        out[name] = max(rates)
        print(f"{name:15s} worst clean FPR {max(rates):.3f}", flush=True)
    worst.sort(key=lambda w: -w["fpr"])
    for w in worst[:10]:
        print(w)
    return {"worst_fpr": out, "worst_files": worst[:20]}


def whole() -> dict:
    from retain.data.synthetic import new_skills, probe_skills
    from retain.guard.screen import screen
    from retain.models.loading import load_adapter

    adapter, suite, out = load_adapter("embedded"), probe_skills(), {}
    for skill in new_skills(n_train=640, n_test=10, seed=0, names=["rotr", "swap", "ends", "mirror"]):
        start = time.perf_counter()
        report = screen(adapter, skill.train, suite)
        summary = report.summary()
        out[skill.name] = {"lines": len(skill.train), "flagged": summary["flagged"],
                           "by_signal": {k: v for k, v in summary["by_signal"].items() if v},
                           "certified": report.details.get("rule_certified"),
                           "seconds": round(time.perf_counter() - start, 1)}
        print(skill.name, out[skill.name], flush=True)
    return {"files": out}


def cost(before: Path | None = None) -> dict:
    """CPU seconds of the rule signal on 640-line files of rotr, mirror and dblsort (seed 0); with ``before``
    (another version's ``rule.py``, e.g. ``git show 7b4def8:src/retain/guard/rule.py > /tmp/rule_before.py``)
    the same for it, side by side."""
    import importlib.util

    from retain.data.synthetic import new_skills
    from retain.guard.rule import rule

    versions = {"now": rule}
    if before is not None:
        spec = importlib.util.spec_from_file_location("rule_before", before)
        module = importlib.util.module_from_spec(spec)
        sys.modules["rule_before"] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
        versions = {"before": module.rule, **versions}
    out: dict = {}
    for skill in new_skills(n_train=640, n_test=10, seed=0, names=["rotr", "mirror", "dblsort"]):
        for label, judge in versions.items():
            start = time.process_time()
            judge(skill.train)
            out.setdefault(skill.name, {})[label] = round(time.process_time() - start, 1)
        print(skill.name, out[skill.name], flush=True)
    return {"cpu_seconds": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("attacks", "clean", "whole", "cost"))
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--families", help="attacks: comma-separated skills (default: retain bench guard's "
                        "families); the other streams' skills (outin, novow, flip, stutter, bookend, dblsort) too")
    parser.add_argument("--before", type=Path, help="cost: another version's rule.py to time beside this one")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    start = time.perf_counter()
    result = (attacks([int(s) for s in args.seeds.split(",")],
                      tuple(args.families.split(",")) if args.families else None) if args.what == "attacks"
              else clean() if args.what == "clean" else cost(args.before) if args.what == "cost" else whole())
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(f"{result['seconds']} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
