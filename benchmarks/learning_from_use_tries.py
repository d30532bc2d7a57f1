"""The tries behind docs/results.md's "Learning from use" section: one default home learn with one setting changed.

    python benchmarks/learning_from_use_tries.py knowledge [--seed 0] [--epochs 20] [--batch-size 4] [--lr 1e-3]
        [--ratio 2] [--augment 0] [--alt-phrasings]
    python benchmarks/learning_from_use_tries.py sort ends [--n 128] [--ratio 16 --draw 4] [--per-item 512]
        [--lr 1e-4] [--epochs 2] [--lora] [--reference-targets]
    python benchmarks/learning_from_use_tries.py knowledge --per-question   # each held-out answer, by phrasing
    python benchmarks/learning_from_use_tries.py first rotr|swap|ends|null [--seed 0] [--method sdft+rehearsal+merge
        --alpha 0.5] [--adam-eps 1e-5] [--lr X] [--epochs 2] [--lora] [--ratio 16 --draw 4]
        [--sgd 0.9 --lr 0.03 [--gpm 0.97]] [--base DIR] [--sort-sets]
    python benchmarks/learning_from_use_tries.py continue-base DIR [--steps 2000] [--peak 1e-3]

``knowledge``: a fresh default home (``retain init``) learns seed's fact world (retain.bench.knowledge) from its
documents (at batch 4 unless told, as ``retain bench knowledge`` does), with the rate and rehearsal weight given
(default: the home's); prints closed-book and trained-phrasing accuracy and prior kept; ``--augment N``: surface
variants per training question (the documents learn's default, 4; 0 for none; none of them a held-out
question); ``--alt-phrasings`` asks every fact in five other phrasings (a family the library was not tuned on).
``sort``: a fresh default home
(``--per-item``: protected prompts per suite entry, the rehearsal buffer sized to hold them) learns one demo
skill of ``n`` examples (``--ratio``/``--draw``: rehearsal options); prints the skill's held-out score, every
probe and the gate's decision. ``first``: the first learn of a fresh default home as a user makes it: the
retention benchmark's file of a demo skill (512 training and 57 test examples of the seed's stream), learned
with ``retain learn``'s own split, or ``null``: 600 ``upper`` prompts with their right answers under the name
``caps`` (a skill the model has: a learn with nothing new to learn); ``--method``/``--alpha`` name another
method (WiSE-FT merge) and ``--adam-eps`` AdamW's epsilon (a try, patched in); ``--sgd M`` trains with SGD at
momentum M instead of AdamW (at ``--lr``), with ``--gpm T`` projecting every linear layer's gradient off the
subspace of its inputs on the suite (Gradient Projection Memory); ``--base DIR`` starts from another build of the
embedded model (``continue-base`` makes one: the shipped model pretrained ``--steps`` more on its own recipe, a
warm restart at ``--peak``, about 17 min on 2 cores, into DIR); ``--sort-sets`` also scores
``sort`` before and after on the 128 prompts the home rehearses and on 200 words neither rehearsed nor probed.
One JSON line each, about 30-200 s on one core.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch


def _rehearsal(ratio: float | None, draw: float | None) -> dict[str, dict[str, float]] | None:
    options = {k: v for k, v in (("ratio", ratio), ("draw", draw)) if v is not None}
    return {"rehearsal": options} if options else None


def knowledge(args: argparse.Namespace, work: Path) -> dict:
    from retain import api
    from retain.bench.knowledge import PHRASINGS, TEST_FRACTION, fact_world, held_out_skill, write_world
    from retain.evaluate import metrics
    from retain.evaluate.evaluation import accuracy
    from retain.home import init_home_from_model
    from retain.home.documents import learn_from_documents
    from retain.home.versions import materialize
    from retain.ledger.core import Home

    if args.alt_phrasings:  # a held-out family of phrasings, not the benchmark's
        import retain.bench.knowledge as knowledge_bench
        knowledge_bench.PHRASINGS = PHRASINGS = ALT_PHRASINGS
    world = fact_world(args.seed, 6)
    docs, questions, _ = write_world(world, work / "data")
    init_home_from_model(work / "home", "embedded")
    given = {"lr": args.lr} if args.lr is not None else {}
    options = _rehearsal(args.ratio, None)
    outcome = learn_from_documents(work / "home", [docs], questions, name="facts", seed=args.seed,
                                   epochs=args.epochs, batch_size=args.batch_size, test_fraction=TEST_FRACTION,
                                   force="a try", quiet=True, options=options, augment=args.augment,
                                   augment_avoid=[q["question"] for q in world.held_out], **given)
    home = Home.open(work / "home")
    champion = api.load_model(str(materialize(home, outcome.version, work / "m")), device="cpu")
    v1, new = home.version("v1")["record"]["scores"]["probes"], outcome.record["scores"]["probes"]
    probes = sorted(v1)
    per_question = None
    if args.per_question:  # each held-out question: its phrasing (index into PHRASINGS), the answer, right?
        skill = held_out_skill(world)
        answers = champion.answer(skill.test, with_demonstration=False)
        phrasing = {}
        for q in world.held_out:  # a passage is named entity-attribute
            entity, attribute = q["passage"].split("-")
            phrasing[q["question"]] = next(k for k, form in enumerate(PHRASINGS)
                                           if form.format(attribute=attribute, entity=entity) == q["question"])
        per_question = [[e.prompt, phrasing[e.prompt], e.reference, a.strip(), a.strip() == e.reference]
                        for e, a in zip(skill.test, answers)]
    return {"seed": args.seed, "epochs": args.epochs, "lr": outcome.record["config"]["recipe"]["train"]["lr"],
            "per_question": per_question, "ratio": args.ratio, "alt": args.alt_phrasings,
            "augment": outcome.record["options"].get("augment", {}).get("copies", 0),
            "gate": outcome.decision.decision, "probes_after": new,
            "closed_book": accuracy(champion, held_out_skill(world), with_demonstration=False),
            "trained_phrasings": accuracy(champion, held_out_skill(world, part="train"), with_demonstration=False),
            "prior_kept": metrics.prior_retention([v1[p] for p in probes], [new[p] for p in probes])}


ALT_PHRASINGS = ("{attribute} {entity}!", "{attribute} - {entity}", "{attribute}, {entity}?", "{attribute} in {entity}",
                 "{attribute} {entity} ?")


def _reference_targets() -> None:
    """A try, not a library option: the home's protection (made at init) rehearses each suite prompt with its
    reference answer instead of the base model's own (the in-context probe, which has none, keeps the model's)."""
    import random
    from dataclasses import replace

    from retain.data.skills import Example
    from retain.home import protection

    own = protection.prior_examples

    def with_references(adapter, skills, seed=0, per_entry=protection.PER_ENTRY):
        rng, out = random.Random(seed), []
        for skill in skills:
            chosen = rng.sample(skill.train, min(per_entry, len(skill.train)))
            out += (own(adapter, [replace(skill, train=chosen)], seed, per_entry) if skill.with_demonstration else
                    [Example(prompt=e.prompt, demonstration=e.answer) for e in chosen])
        return out

    protection.prior_examples = with_references


def sort(args: argparse.Namespace, work: Path) -> dict:
    from retain.data.jsonl import write_examples
    from retain.domains import language
    from retain.domains.language import Budget
    from retain.home import init_home_from_model, learn_in_home
    from retain.ledger.core import Home

    stream, _ = language.demo_skills(Budget(n_train=args.n), args.seed)
    skill = next(s for s in stream if s.name == args.skill)
    if args.reference_targets:
        _reference_targets()
    init_home_from_model(work / "home", "embedded", per_item=args.per_item,
                         options={"rehearsal": {"size": max(1024, 8 * args.per_item)}})
    data = work / f"{skill.name}.jsonl"
    write_examples(data, skill.train + skill.test)
    given = {"lr": args.lr} if args.lr is not None else {}
    outcome = learn_in_home(work / "home", data, seed=args.seed, force="a try", quiet=True, epochs=args.epochs,
                            options=_rehearsal(args.ratio, args.draw), lora=args.lora, **given,
                            test_fraction=len(skill.test) / (args.n + len(skill.test)))
    v1 = Home.open(work / "home").version("v1")["record"]["scores"]["probes"]
    return {"skill": skill.name, "n": args.n, "ratio": args.ratio, "draw": args.draw, "per_item": args.per_item,
            "new_skill": outcome.record["scores"]["skills"][skill.name], "sort": [v1["sort"],
            outcome.record["scores"]["probes"]["sort"]], "probes": outcome.record["scores"]["probes"],
            "lr": outcome.record["config"]["recipe"]["train"]["lr"], "gate": outcome.decision.decision,
            "reasons": outcome.decision.reasons}


def _gpm_projections(threshold: float) -> list[torch.Tensor | None]:
    """A try of Gradient Projection Memory (Saha, Garg and Roy, ICLR 2021): for every linear layer of the
    embedded model, the basis of its inputs on the suite's training prompts (answers teacher-forced) that holds
    ``threshold`` of their energy; returned as one projector per parameter in ``named_parameters`` order (None:
    a parameter that is frozen under the try, embeddings and norms)."""
    from retain.data.synthetic import probe_skills
    from retain.models.loading import load_adapter

    adapter = load_adapter("embedded")
    model = adapter.model.eval()
    inputs: dict[str, list[torch.Tensor]] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, a, name=name: inputs.setdefault(name, []).append(
        a[0].detach().reshape(-1, a[0].shape[-1]))) for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head")]
    with torch.no_grad():
        for skill in probe_skills(n_train=128):
            for e in skill.train:
                ids = (adapter.teacher_ids(e) if skill.name == "in-context" else adapter.student_ids(e))
                ids = ids + adapter.completion_ids(e.answer or "")
                model(torch.tensor([ids]))
    for h in hooks:
        h.remove()
    projectors = []
    for name, _ in model.named_parameters():
        module = name.rsplit(".", 1)[0]
        if module not in inputs or not name.endswith("weight"):
            projectors.append(None)
            continue
        x = torch.cat(inputs[module])
        energy, vectors = torch.linalg.eigh(x.T @ x)
        energy, vectors = energy.flip(0), vectors.flip(1)
        k = int((energy.cumsum(0) / energy.sum() < threshold).sum()) + 1
        projectors.append(vectors[:, :k] @ vectors[:, :k].T)
    return projectors


def _sort_sets(home_dir: Path, version: str, work: Path) -> dict[str, list[float]]:
    """``sort`` before and after a learn on three sets of words: the suite's training prompts the home rehearses,
    the probe's, and 200 words in neither (so a rehearsal that kept only what it trains on would show)."""
    import random

    from retain import api
    from retain.data.synthetic import PRIOR_RULES, _distinct_words, held_out_words, make_example, probe_skills
    from retain.home.versions import materialize
    from retain.ledger.core import Home

    sort = next(s for s in probe_skills(n_train=128) if s.name == "sort")
    used = set(held_out_words()) | {e.prompt.split()[-1] for e in sort.train}
    fresh = [make_example("sort", PRIOR_RULES["sort"], w, "plain")
             for w in _distinct_words(random.Random(777), 200, used)]
    models = [api.load_model("embedded", device="cpu"),
              api.load_model(str(materialize(Home.open(home_dir), version, work / "sorted")), device="cpu")]
    out = {}
    for label, examples in (("rehearsed", sort.train), ("probe", sort.test), ("fresh", fresh)):
        out[label] = [sum(a.strip() == e.answer for a, e in zip(m.answer(examples, with_demonstration=False),
                                                                  examples)) / len(examples) for m in models]
    return out


def continue_base(args: argparse.Namespace, work: Path) -> dict:
    """The shipped embedded model pretrained ``steps`` more on its own recipe (:func:`retain.models.tiny.build.
    pretrain` from it): a warm restart, ``peak`` after 100 steps of warm-up, then the recipe's cosine down to 5%
    of it; a snapshot every 500 steps, the last model in ``out`` itself."""
    from retain.models.tiny.build import BuildConfig, pretrain

    torch.set_num_threads(2)
    cfg = BuildConfig(steps=args.steps, lr=args.peak, warmup_steps=100, seed=1)
    return pretrain(args.out, cfg, snapshot_every=500, start="embedded")


def first(args: argparse.Namespace, work: Path) -> dict:
    from retain.data.jsonl import write_examples
    from retain.data.streams import stream_skills
    from retain.data.synthetic import probe_skills
    from retain.home import init_home_from_model, learn_in_home
    from retain.ledger.core import Home

    if args.skill == "null":
        upper = next(s for s in probe_skills(n_train=600, seed=1) if s.name == "upper")
        name, rows = "caps", upper.train
    else:
        skill = next(s for s in stream_skills("demo", n_train=512, n_test=57, seed=args.seed) if s.name == args.skill)
        name, rows = skill.name, skill.train + skill.test
    if args.adam_eps is not None:  # a try: the training loop's AdamW with another epsilon
        import functools
        torch.optim.AdamW = functools.partial(torch.optim.AdamW, eps=args.adam_eps)
    if args.base is not None:  # a try: another build of the embedded model (``retain build-base --out DIR``)
        from retain.models.tiny import store

        if not (args.base / store.MANIFEST).exists():  # a build's step-N snapshot
            store.write_manifest(args.base, {})
        store.WEIGHTS_DIR = args.base
        store.embedded_dir.cache_clear()
    if args.sgd is not None:  # a try: SGD with this momentum in place of the training loop's AdamW (at --lr)
        sgd = torch.optim.SGD
        projectors = _gpm_projections(args.gpm) if args.gpm is not None else None

        def optimizer(params, lr, weight_decay=0.0):
            params = list(params)
            opt = sgd(params, lr=lr, momentum=args.sgd, weight_decay=weight_decay)
            if projectors is not None:
                assert len(projectors) == len(params)

                def project(*_):
                    for p, proj in zip(params, projectors):
                        if p.grad is not None:
                            p.grad = p.grad - p.grad @ proj if proj is not None else torch.zeros_like(p.grad)
                opt.register_step_pre_hook(project)
            return opt
        torch.optim.AdamW = optimizer
    init_home_from_model(work / "home", "embedded")
    data = work / f"{name}.jsonl"
    write_examples(data, rows)
    given = {"lr": args.lr} if args.lr is not None else {}
    options = _rehearsal(args.ratio, args.draw) or {}
    if args.alpha is not None:
        options["merge"] = {"alpha": args.alpha}
    if options:
        given["options"] = options
    outcome = learn_in_home(work / "home", data, seed=args.seed, quiet=True, epochs=args.epochs, method=args.method,
                            lora=args.lora, **given)
    sets = _sort_sets(work / "home", outcome.version, work) if args.sort_sets else None
    return {"skill": name, "lines": len(rows), "seed": args.seed, "sort_sets": sets,
            "method": outcome.record["method"], "alpha": args.alpha, "adam_eps": args.adam_eps, "sgd": args.sgd,
            "gpm": args.gpm, "ratio": args.ratio, "draw": args.draw, "base": str(args.base or ""),
            "v1": Home.open(work / "home").version("v1")["record"]["scores"]["probes"],
            "new_skill": outcome.record["scores"]["skills"][name],
            "probes": outcome.record["scores"]["probes"], "lr": outcome.record["config"]["recipe"]["train"]["lr"],
            "gate": outcome.decision.decision, "reasons": outcome.decision.reasons}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    k = sub.add_parser("knowledge")
    k.add_argument("--epochs", type=int, default=20)
    k.add_argument("--batch-size", type=int, default=4)
    k.add_argument("--per-question", action="store_true", help="each held-out question's answer and phrasing")
    k.add_argument("--alt-phrasings", action="store_true", help="ask in another five phrasings (held out)")
    k.add_argument("--augment", type=int, help="surface variants of each training question (default: the "
                   "documents learn's, 4; 0: none)")
    f = sub.add_parser("first")
    f.add_argument("skill", choices=["rotr", "swap", "ends", "null"])
    f.add_argument("--method", help="default: the home's (sdft+rehearsal)")
    f.add_argument("--alpha", type=float, help="merge's alpha (with --method sdft+rehearsal+merge)")
    f.add_argument("--adam-eps", type=float)
    f.add_argument("--sort-sets", action="store_true", help="sort on rehearsed, probed and fresh words")
    f.add_argument("--gpm", type=float, help="with --sgd: project gradients off the suite's input subspace "
                   "holding this share of its energy (a try)")
    f.add_argument("--base", type=Path, help="another build of the embedded model to start from (a try)")
    f.add_argument("--sgd", type=float, help="train with SGD at this momentum instead of AdamW (give --lr)")
    f.add_argument("--epochs", type=int, default=2)
    f.add_argument("--lora", action="store_true")
    f.add_argument("--lr", type=float)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--ratio", type=float, help="rehearsal's weight against the new skill (default: the home's)")
    f.add_argument("--draw", type=float, help="rehearsed examples drawn per new example (default: the home's)")
    c = sub.add_parser("continue-base")
    c.add_argument("out", type=Path)
    c.add_argument("--steps", type=int, default=2000)
    c.add_argument("--peak", type=float, default=1e-3)
    s = sub.add_parser("sort")
    s.add_argument("skill", choices=["rotr", "swap", "ends"])
    s.add_argument("--n", type=int, default=128)
    s.add_argument("--draw", type=float)
    s.add_argument("--per-item", type=int, default=128)
    s.add_argument("--epochs", type=int, default=2)
    s.add_argument("--lora", action="store_true", help="train a LoRA adapter (rank 8) instead of every weight")
    s.add_argument("--reference-targets", action="store_true",
                   help="rehearse the suite's reference answers instead of the base model's own")
    for p in (k, s):
        p.add_argument("--lr", type=float)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--ratio", type=float)
    args = parser.parse_args()
    if args.what == "first" and args.gpm is not None and args.sgd is None:
        parser.error("--gpm projects SGD's gradients: give --sgd too")
    if args.what == "first" and args.sgd is not None and args.lr is None:
        parser.error("--sgd needs its rate (--lr): the home's rate search is set for AdamW")
    if args.what == "continue-base" and args.steps <= 100:
        parser.error("--steps must be more than the 100 steps of warm-up")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="retain-tries-") as tmp:
        run = {"knowledge": knowledge, "sort": sort, "first": first, "continue-base": continue_base}[args.what]
        print(json.dumps(run(args, Path(tmp))))


if __name__ == "__main__":
    main()
