"""``retain bench knowledge``: facts the embedded model cannot know, learned from documents into a home.

The fact world (:func:`fact_world`, seeded): made-up entities (random names) with made-up attributes' values
(random four-letter words): nothing in pretraining could answer them. Each fact has one document, its passage:
the value written out letter by letter (``k-e-l-m``), a record's style rather than the model's own (it answers
in plain words). That is the only kind of passage the embedded model can read: a 0.87M-parameter character
model copies the content of a demonstration in its own style (answering from a passage held in its prompt is
exactly that), but it cannot pick a fact out of prose. With a real model the passage is an article and nothing
else changes. Each fact is asked in five phrasings (``capital zorbia``, ``capital zorbia?``, ``capital: zorbia``,
``capital zorbia.``, ``capital of zorbia``); one per fact is held out from learning and asked closed-book
afterwards. The phrasings differ only on the surface because the embedded model generalises no further: with
three phrasings as different as ``what is the capital of zorbia?``, SFT answered 94% of the trained questions and
none of the held-out ones (8 facts, 20 epochs). Every recipe's learn trains on the documents learn's surface
variants of each training question as well (:mod:`retain.data.augment`), none of which is a held-out question.

For each recipe and seed: a fresh home over the embedded model, ``retain learn HOME --documents D --questions Q``
(:func:`retain.home.documents.learn_from_documents`) with the recipe, the candidate promoted whatever the gate
says (its decision is reported); then

- closed-book accuracy: the new champion's answers to the held-out questions alone (``alnum``: content);
- the teacher's accuracy: the base model's answers to the same questions with the passage in its prompt (what
  SDFT's teacher answers; the target is closed-book >= 80% of it);
- prior kept: the probes' scores after the learn over their scores at init (mean of ratios).

Recipes: ``sft`` (SFT on the documents: the passage is the target), ``sdft`` (the teacher sees the passage)
and ``default`` (the home's own protected learn, as ``retain init`` sets it).
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import string
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from retain.bench.recipes import HOME_DEFAULT, BenchRecipe

ATTRIBUTES = ("capital", "river")
PHRASINGS = ("{attribute} {entity}", "{attribute} {entity}?", "{attribute}: {entity}", "{attribute} {entity}.", "{attribute} of {entity}")
RECIPES: dict[str, BenchRecipe] = {"sft": BenchRecipe("sft", {}), "sdft": BenchRecipe("sdft", {}),
                                   "default": HOME_DEFAULT}
TEST_FRACTION = 0.1  # of the training questions, the home's own held-out split for its gate


@dataclass
class FactWorld:
    """Passages by id, the questions learned from (two phrasings per fact) and the held-out ones (one)."""

    passages: dict[str, str]
    train: list[dict[str, str]] = field(default_factory=list)
    held_out: list[dict[str, str]] = field(default_factory=list)


def fact_world(seed: int, n_entities: int = 6, attributes: tuple[str, ...] = ATTRIBUTES) -> FactWorld:
    """A seeded world of ``n_entities`` x ``attributes`` facts (see the module's docstring)."""
    from retain.data.synthetic import RESERVED_NAMES

    rng = random.Random(f"knowledge-{seed}")
    letters = string.ascii_lowercase
    names: list[str] = []
    while len(names) < n_entities:
        name = "".join(rng.choice(letters) for _ in range(rng.randint(5, 7)))
        if name not in names and name not in RESERVED_NAMES:
            names.append(name)
    values: set[str] = set()
    world = FactWorld({})
    for i, (entity, attribute) in enumerate((e, a) for e in names for a in attributes):
        value = "".join(rng.choice(letters) for _ in range(4))
        while value in values:
            value = "".join(rng.choice(letters) for _ in range(4))
        values.add(value)
        passage = f"{entity}-{attribute}"
        world.passages[passage] = "-".join(value)
        held = i % len(PHRASINGS)
        for k, phrasing in enumerate(PHRASINGS):
            row = {"question": phrasing.format(attribute=attribute, entity=entity), "answer": value,
                   "passage": passage}
            (world.held_out if k == held else world.train).append(row)
    return world


def write_world(world: FactWorld, folder: Path) -> tuple[Path, Path, Path]:
    """The documents folder, the training questions and the held-out questions, as a user would have them."""
    docs = folder / "documents"
    docs.mkdir(parents=True)
    for name, text in world.passages.items():
        (docs / f"{name}.txt").write_text(text + "\n")
    paths = []
    for part, rows in (("questions", world.train), ("held-out", world.held_out)):
        path = folder / f"{part}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(path)
    return docs, paths[0], paths[1]


def held_out_skill(world: FactWorld, part: str = "held_out") -> Any:
    """The held-out questions (or the training ones, ``part="train"``) as a skill scored on content, each with
    its passage as the demonstration (shown only when the teacher's view is asked for)."""
    from retain.data.skills import Example, Skill

    return Skill(part, test=[Example(q["question"], world.passages[q["passage"]], q["answer"])
                             for q in getattr(world, part)], scorer="alnum")


def run_one(label: str, seed: int, work: Path, *, n_entities: int, epochs: int, batch_size: int = 4,
            lr_scale: float = 3.0, quiet: bool = True) -> dict[str, Any]:
    """One home, one recipe, one seed of the fact world: ``epochs`` passes in batches of ``batch_size``, at
    ``lr_scale`` times the recipe's rate (the home's default learn keeps the rate the home recorded)."""
    from retain import api
    from retain.domains.language import embedded_sdft_options
    from retain.evaluate import metrics
    from retain.evaluate.evaluation import accuracy
    from retain.home import init_home_from_model
    from retain.home.documents import learn_from_documents
    from retain.home.versions import materialize
    from retain.ledger.core import Home
    from retain.models.tiny.build import EMBEDDED_FINETUNE_LR
    from retain.recipe import with_defaults

    recipe = RECIPES[label]
    world = fact_world(seed, n_entities)
    docs, questions, _ = write_world(world, work / f"{label}-{seed}-data")
    root = work / f"{label}-{seed}"
    if recipe.home_default:
        init_home_from_model(root, "embedded")
        given: dict[str, Any] = {}
    else:
        init_home_from_model(root, "embedded", protect=(), home_defaults=False)
        given = {"method": recipe.method, "scorer": "alnum", "lr": recipe.rate(EMBEDDED_FINETUNE_LR) * lr_scale,
                 "options": with_defaults(recipe.method, recipe.options, {"sdft": embedded_sdft_options()})}
    start = time.perf_counter()
    outcome = learn_from_documents(root, [docs], questions, name="facts", seed=seed, epochs=epochs,
                                   batch_size=batch_size,
                                   test_fraction=TEST_FRACTION, force="knowledge benchmark: measured either way",
                                   augment_avoid=[q["question"] for q in world.held_out], quiet=quiet, **given)
    seconds = time.perf_counter() - start
    home = Home.open(root)
    with tempfile.TemporaryDirectory(prefix="retain-knowledge-") as tmp:
        champion = api.load_model(str(materialize(home, outcome.version, Path(tmp) / "m")), device="cpu")
    skill = held_out_skill(world)
    closed = accuracy(champion, skill, with_demonstration=False)
    trained = accuracy(champion, held_out_skill(world, part="train"), with_demonstration=False)
    seen = {"v1": home.version("v1")["record"], "new": outcome.record}
    probes = sorted(seen["v1"]["scores"]["probes"])
    before = [seen["v1"]["scores"]["probes"][p] for p in probes]
    after = [seen["new"]["scores"]["probes"][p] for p in probes]
    return {"label": label, "method": outcome.record["method"], "seed": seed, "facts": len(world.held_out),
            "closed_book": closed, "trained_questions": trained, "gate_split_score": outcome.record["scores"]["skills"]["facts"],
            "prior_retention": metrics.prior_retention(before, after), "probes_before": dict(zip(probes, before)),
            "probes_after": dict(zip(probes, after)), "decision": outcome.decision.decision,
            "lr": outcome.record["config"]["recipe"]["train"]["lr"], "seconds": seconds,
            "variants": outcome.record["options"].get("augment", {}).get("copies", 0)}


def teacher_accuracy(seed: int, n_entities: int) -> dict[str, float]:
    """The base model on one seed's held-out questions: with the passage in its prompt (the teacher) and without."""
    from retain import api
    from retain.evaluate.evaluation import accuracy

    base = api.load_model("embedded", device="cpu")
    skill = held_out_skill(fact_world(seed, n_entities))
    return {"teacher": accuracy(base, skill, with_demonstration=True),
            "student": accuracy(base, skill, with_demonstration=False)}


def run_benchmark(labels: list[str] | None = None, seeds: int = 3, quick: bool = False, epochs: int | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every recipe of ``labels`` (default: all) on ``seeds`` seeds; the results document. The named recipes
    learn at 3x the embedded model's rate, the rate the home's default learn records (:mod:`retain.home.defaults`)."""
    import torch

    n_entities = 2 if quick else 6
    epochs = epochs or (2 if quick else 20)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="retain-knowledge-"))
    runs: list[dict[str, Any]] = []
    labels = labels or list(RECIPES)
    try:
        base = {seed: teacher_accuracy(seed, n_entities) for seed in range(seeds)}
        for seed in range(seeds):
            for label in labels:
                if progress:
                    progress(f"{label} seed {seed}")
                runs.append(run_one(label, seed, work, n_entities=n_entities, epochs=epochs))
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(work, ignore_errors=True)
    teacher = statistics.fmean(b["teacher"] for b in base.values())
    summary = {}
    for label in labels:
        mine = [r for r in runs if r["label"] == label]
        closed = [r["closed_book"] for r in mine]
        summary[label] = {"closed_book": _mean_std(closed),
                          "trained_questions": _mean_std([r["trained_questions"] for r in mine]),
                          "prior_retention": _mean_std([r["prior_retention"] for r in mine]),
                          "of_teacher": statistics.fmean(closed) / teacher if teacher else float("nan"),
                          "gate_passed": sum(r["decision"] == "accepted" for r in mine), "runs": len(mine)}
    return {"benchmark": "knowledge", "seeds": seeds, "quick": quick, "entities": n_entities,
            "attributes": list(ATTRIBUTES), "phrasings": list(PHRASINGS), "epochs": epochs, "batch_size": 4,
            "base": base, "teacher_mean": teacher, "summary": summary, "runs": runs,
            "targets": {"of_teacher": 0.8, "prior_retention": 0.9}}


def write_results(results: dict[str, Any], out: Path) -> list[Path]:
    """``knowledge.json`` and ``knowledge.png`` (closed-book accuracy and prior kept per recipe) under ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    data = out / "knowledge.json"
    data.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    labels = list(results["summary"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, (key, name) in enumerate((("closed_book", "closed-book (held-out questions)"),
                                     ("prior_retention", "prior skills kept"))):
        means = [results["summary"][l][key]["mean"] for l in labels]
        errs = [results["summary"][l][key]["std"] for l in labels]
        ax.bar([i + 0.38 * k for i in range(len(labels))], means, 0.38, yerr=errs, label=name)
    ax.axhline(results["teacher_mean"], color="gray", linestyle="--", label="teacher with the passage")
    ax.set_xticks([i + 0.19 for i in range(len(labels))], labels)
    ax.set_ylim(0, 1.3)
    ax.set_title(f"Facts from documents, embedded model, {results['seeds']} seed(s)")
    ax.legend(fontsize=7, loc="upper center", ncol=3)
    fig.tight_layout()
    png = out / "knowledge.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return [data, png]


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def table(results: dict[str, Any]) -> str:
    """The published table: one row per recipe."""
    base = results["base"].values()
    lines = [f"teacher (base model, passage in its prompt): {results['teacher_mean']:.1%}; "
             f"closed-book before learning: {statistics.fmean(b['student'] for b in base):.1%}",
             f"{'recipe':<10} {'closed-book':>16} {'of teacher':>11} {'trained qs':>16} {'prior kept':>16} "
             f"{'gate passed':>12}"]
    for label, row in results["summary"].items():
        cb, tq, kept = row["closed_book"], row["trained_questions"], row["prior_retention"]
        lines.append(f"{label:<10} {cb['mean']:>9.1%} ± {cb['std']:.1%} {row['of_teacher']:>11.1%} "
                     f"{tq['mean']:>9.1%} ± {tq['std']:.1%} {kept['mean']:>9.1%} ± {kept['std']:.1%} "
                     f"{row['gate_passed']:>7}/{row['runs']}")
    return "\n".join(lines)
