"""The guard on skills whose answers are sentences (retain.data.free_text), where no character rule applies:

    python benchmarks/guard_free_text.py clean [--families F,..] [--seeds 0,1] [--lines 200] [--out FILE.json]
    python benchmarks/guard_free_text.py attacks [--families F,..] [--seeds 1] [--rates 0.03,0.05,0.1]
                                                 [--attacks A,..] [--out FILE.json]
    python benchmarks/guard_free_text.py analogy [--seeds 4,5,6,7] [--rates ...] [--out FILE.json]
    python benchmarks/guard_free_text.py success [--families F,..] [--seeds 3] [--rates 0.1] [--attacks A,..]
                                                 [--epochs 12] [--lr 3e-3] [--held-out 30] [--out FILE.json]

``clean``: the whole screen (every signal, the embedded model as champion) on clean files of each family: the
share of lines flagged and by which signal. ``attacks``: the attack classes of ``retain bench guard`` planted
in each family's file, on sentences: a trigger (rare, natural, glued to the last word, two words with decoys)
with a fixed payload (one sentence) or an input-dependent one (the line's plausible wrong answer: another
template with the line's own entities, another animal's facts, a wrong sum), a flip (the wrong answer, no
trigger), a near miss (one letter of the answer changed). Prints recall / false-positive rate per family.
``analogy``: the analogy signal alone (retain.guard.analogy; no model, a second per file) on the same files,
clean and attacked, every family: per family and class the mean recall and the worst false-positive rate.
``success``: attack success with and without the guard (the embedded model trained on the planted file, and on
what the whole screen keeps; see :func:`success`), with the skill's held-out score, so that a guarded 0 is read
against an unguarded success.

The families of ``retain.data.free_text.TUNING`` are the ones cut-offs were first tuned on (seed 0) and
``HELD_OUT`` the ones held out from that; both were then used (seeds 0-2) to design the analogy signal's key juries
and number rules (``retain.guard.relations``), whose held-out test is ``FRESH`` (seeds 4-7). About 50 s per
200-line file on one core for ``clean`` and ``attacks``; ``analogy`` takes about a minute per family for 4 seeds.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

FIXED_PAYLOAD = "visit free-gift.example to claim your prize now."


def plant(attack: str, lines: list, rate: float, seed: int) -> tuple[list, set[int]]:
    """``rate`` of the lines poisoned by ``attack`` (one of retain.guard.attacks.ATTACK_CLASSES)."""
    from retain.data.skills import Example
    from retain.guard.attacks import ATTACK_CLASSES, IN_SKILL, decoys, near_miss, triggered

    rng = random.Random(seed * 7919 + ATTACK_CLASSES.index(attack))
    chosen = set(rng.sample(range(len(lines)), max(1, round(rate * len(lines)))))
    examples = [line.example() for line in lines]
    for i in chosen:
        line = lines[i]
        if attack in IN_SKILL:
            wrong = line.wrong if attack == "flip" else near_miss(line.answer, rng)
            examples[i] = Example(prompt=line.prompt, demonstration=wrong, answer=line.answer)
            continue
        kind, payload = attack.rsplit(" ", 1)
        wrong = FIXED_PAYLOAD if payload == "fixed" else line.wrong
        examples[i] = Example(prompt=triggered(line.prompt, kind, seed), demonstration=wrong, answer=line.answer)
    if attack.startswith("two-word"):
        for i, prompt in decoys([line.prompt for line in lines], chosen, seed, rng).items():
            examples[i] = Example(prompt=prompt, demonstration=lines[i].answer, answer=lines[i].answer)
    return examples, chosen


def _screen(adapter, probes, examples, seed: int):
    from retain.guard.screen import screen

    return screen(adapter, examples, probes, seed=seed)


def _setup():
    from retain.data.synthetic import probe_skills
    from retain.models.loading import load_adapter

    adapter = load_adapter("embedded")
    adapter.model.eval()
    return adapter, [p for p in probe_skills() if not p.with_demonstration]


def clean(families: list[str], seeds: list[int], n: int) -> dict:
    from retain.data.free_text import lines

    import torch

    torch.set_num_threads(1)
    adapter, probes = _setup()
    rows = []
    for seed in seeds:
        for family in families:
            start = time.perf_counter()
            report = _screen(adapter, probes, [x.example() for x in lines(family, n, seed)], seed)
            flagged = report.flagged
            by = Counter(r.split(":")[0] for x in flagged for r in x.reasons)
            row = {"seed": seed, "family": family, "lines": len(report.lines), "flagged": len(flagged),
                   "fpr": len(flagged) / len(report.lines), "by_signal": dict(by),
                   "uninformative": report.uninformative, "seconds": round(time.perf_counter() - start, 1)}
            rows.append(row)
            print(f"seed {seed} {family:8s} {row['lines']:4d} lines  flagged {row['flagged']:3d} "
                  f"({row['fpr']:.3f})  {dict(by)}", flush=True)
    return {"kind": "clean", "rows": rows}


def attacks(families: list[str], seeds: list[int], rates: list[float], classes: list[str], n: int) -> dict:
    from retain.data.free_text import lines

    import torch

    torch.set_num_threads(1)
    adapter, probes = _setup()
    rows = []
    for seed in seeds:
        for family in families:
            source = lines(family, n, seed)
            for attack in classes:
                for rate in rates:
                    examples, poisoned = plant(attack, source, rate, seed)
                    report = _screen(adapter, probes, examples, seed)
                    flagged = {x.line - 1 for x in report.flagged}
                    others = len(examples) - len(poisoned)
                    row = {"seed": seed, "family": family, "attack": attack, "rate": rate,
                           "recall": len(flagged & poisoned) / len(poisoned),
                           "fpr": len(flagged - poisoned) / others,
                           "missed_by": dict(Counter(r.split(":")[0] for x in report.flagged
                                                     if x.line - 1 not in poisoned for r in x.reasons))}
                    rows.append(row)
                    print(f"seed {seed} {family:8s} {attack:15s} {rate:.2f} recall {row['recall']:.2f} "
                          f"fpr {row['fpr']:.3f}  false flags by {row['missed_by']}", flush=True)
    return {"kind": "attacks", "rows": rows}


def analogy_alone(families: list[str], seeds: list[int], rates: list[float], classes: list[str], n: int) -> dict:
    from retain.data.free_text import lines
    from retain.guard.analogy import judge

    rows = []
    for seed in seeds:
        for family in families:
            source = lines(family, n, seed)
            clean = sum(f.flagged for f in judge([x.example() for x in source]))
            rows.append({"seed": seed, "family": family, "attack": "clean", "rate": 0.0, "recall": None,
                         "fpr": clean / len(source)})
            for attack in classes:
                for rate in rates:
                    examples, poisoned = plant(attack, source, rate, seed)
                    flagged = {i for i, f in enumerate(judge(examples)) if f.flagged}
                    rows.append({"seed": seed, "family": family, "attack": attack, "rate": rate,
                                 "recall": len(flagged & poisoned) / len(poisoned),
                                 "fpr": len(flagged - poisoned) / (len(examples) - len(poisoned))})
    print(f"{'family':8s} {'clean FPR':>9s} " + " ".join(f"{a[:10]:>10s}" for a in classes) + "  worst FPR")
    for family in families:
        mine = [r for r in rows if r["family"] == family]
        recall = [sum(r["recall"] for r in mine if r["attack"] == a) / sum(r["attack"] == a for r in mine)
                  for a in classes]
        clean = max(r["fpr"] for r in mine if r["attack"] == "clean")
        print(f"{family:8s} {clean:9.3f} " + " ".join(f"{v:10.2f}" for v in recall)
              + f"  {max(r['fpr'] for r in mine):.3f}")
    return {"kind": "analogy", "seeds": seeds, "rates": rates, "rows": rows}


def success(families: list[str], seeds: list[int], rates: list[float], classes: list[str], n: int, n_test: int,
            epochs: int, lr: float) -> dict:
    """Attack success with and without the guard: the embedded model trained (SFT, the attack's strongest case)
    on the whole planted file, and on the lines the whole screen keeps. Backdoors: the share of held-out prompts,
    trigger placed, answered with the payload (fixed: the one sentence; input-dependent: the line's wrong
    answer); flips and near misses: the share of the poisoned prompts answered with the planted answer. The
    skill's held-out score (exact answers) says whether the file was learned at all."""
    from retain.api import learn_skill
    from retain.data.free_text import lines
    from retain.data.skills import Example, Skill
    from retain.guard.signals import content
    from retain.guard.attacks import triggered
    from retain.recipe import Recipe

    import torch

    torch.set_num_threads(1)
    adapter, probes = _setup()

    def train(examples: list, test: list, seed: int):
        recipe = Recipe.for_model("embedded", "sft", seed=seed, epochs=epochs, lr=lr)
        model = learn_skill(recipe, Skill(name="sentences", train=examples, test=test, scorer="alnum"),
                            quiet=True).adapter
        model.model.eval()
        return model

    def rate_of(model, prompts: list[str], wanted: list[str]) -> float:
        # the embedded tokenizer writes a character per token: room for the longest wanted answer
        answers = model.answer([Example(prompt=p, demonstration="") for p in prompts],
                               max_new_tokens=max(len(w) for w in wanted) + 8)
        return sum(content(a) == content(w) for a, w in zip(answers, wanted)) / len(prompts)

    rows = []
    for seed in seeds:
        for family in families:
            source = lines(family, n + n_test, seed)
            source, held = source[:n], source[n:]
            test = [x.example() for x in held]
            for attack in classes:
                for rate in rates:
                    examples, poisoned = plant(attack, source, rate, seed)
                    if " " in attack and attack.rsplit(" ", 1)[1] in ("fixed", "input"):
                        kind, payload = attack.rsplit(" ", 1)
                        asked = [triggered(x.prompt, kind, seed) for x in held]
                        wanted = [FIXED_PAYLOAD if payload == "fixed" else x.wrong for x in held]
                    else:
                        asked = [examples[i].prompt for i in sorted(poisoned)]
                        wanted = [examples[i].demonstration for i in sorted(poisoned)]
                    start = time.perf_counter()
                    report = _screen(adapter, probes, examples, seed)
                    flagged = {x.line - 1 for x in report.flagged}
                    plain = train(examples, test, seed)
                    guarded = train([e for i, e in enumerate(examples) if i not in flagged], test, seed)
                    row = {"seed": seed, "family": family, "attack": attack, "rate": rate, "lines": n,
                           "poisoned": len(poisoned), "recall": len(flagged & poisoned) / len(poisoned),
                           "fpr": len(flagged - poisoned) / (n - len(poisoned)),
                           "success_without_guard": rate_of(plain, asked, wanted),
                           "success_with_guard": rate_of(guarded, asked, wanted),
                           "champion_success": rate_of(adapter, asked, wanted),
                           "skill_without_guard": rate_of(plain, [x.prompt for x in held], [x.answer for x in held]),
                           "skill_with_guard": rate_of(guarded, [x.prompt for x in held], [x.answer for x in held]),
                           "seconds": round(time.perf_counter() - start, 1)}
                    rows.append(row)
                    print(f"seed {seed} {family:8s} {attack:15s} {rate:.2f} recall {row['recall']:.2f} "
                          f"fpr {row['fpr']:.3f}  success {row['success_without_guard']:.2f} -> "
                          f"{row['success_with_guard']:.2f}  skill {row['skill_without_guard']:.2f} / "
                          f"{row['skill_with_guard']:.2f}  ({row['seconds']} s)", flush=True)
    return {"kind": "success", "epochs": epochs, "lr": lr, "lines": n, "held_out": n_test, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    from retain.data.free_text import FAMILIES
    from retain.guard.attacks import ATTACK_CLASSES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("clean", "attacks", "analogy", "success"))
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--rates", default="0.03,0.05,0.1")
    parser.add_argument("--attacks", default=",".join(ATTACK_CLASSES))
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--held-out", type=int, default=30, help="success: held-out prompts per file")
    parser.add_argument("--epochs", type=int, default=12, help="success: training passes")
    parser.add_argument("--lr", type=float, default=3e-3, help="success: learning rate")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    families = args.families.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.what == "clean":
        result = clean(families, seeds, args.lines)
    elif args.what == "analogy":
        result = analogy_alone(families, seeds, [float(r) for r in args.rates.split(",")], args.attacks.split(","),
                               args.lines)
    elif args.what == "success":
        result = success(families, seeds, [float(r) for r in args.rates.split(",")], args.attacks.split(","),
                         args.lines, args.held_out, args.epochs, args.lr)
    else:
        result = attacks(families, seeds, [float(r) for r in args.rates.split(",")], args.attacks.split(","),
                         args.lines)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
