"""The user-facing operations on a home that need a model to run: ``init`` (score the base model on the
probes), ``learn`` into a home (train a candidate from the champion, score both on the regression suite,
gate, record) and ``reproduce`` (train again from the recorded recipe and compare weight hashes).

These workflows sit above the public API: training goes through :func:`retain.api.learn_skill` (and so
:func:`retain.run.run`), scoring through :func:`retain.api.evaluate`; storage is the ledger's
(:mod:`retain.ledger`), which knows nothing of training.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from dataclasses import replace
from typing import Any

from rich.console import Console

from retain import api
from retain.data.jsonl import read_skill
from retain.data.skills import Skill
from retain.errors import RetainError
from retain.ledger import mlflow_sync, store, suite
from retain.ledger.core import Home, check_new_home
from retain.ledger.core import is_home as _is_home
from retain.ledger.gate import GatePolicy, Scores, render
from retain.ledger.merge import merge_adapter
from retain.ledger.operations import Candidate, Outcome, init_home, record_candidate
from retain.ledger.tensors import hash_only, snapshot, weights_sha256
from retain.recipe import Recipe, default_lr


def is_home(path: str | Path) -> bool:
    """Whether ``path`` is a home (what ``retain learn`` checks to choose between a model and a home)."""
    return _is_home(path)


def score_suite(model_dir: Path, skills: list[tuple[Skill, str]]) -> Scores:
    """Every suite entry's score for the model in ``model_dir`` (loaded once), split into probes and skills."""
    from retain.ledger.merge import quiet_hf

    with quiet_hf():
        model = api.load_model(str(model_dir))
    scores: Scores = {"probes": {}, "skills": {}}
    for skill, kind in skills:
        scores["probes" if kind == "probe" else "skills"][skill.name] = float(api.evaluate(model, skill))
    return scores


def _train(parent_dir: Path, recipe: Recipe, skill: Skill, out: Path, *, quiet: bool) -> dict[str, Any]:
    """Train a candidate from ``parent_dir`` with ``recipe`` and save it into ``out`` (the adapter only under
    LoRA); return the run's record (the recipe as it writes itself, held-out size and scorer)."""
    result = api.learn_skill(replace(recipe, model=replace(recipe.model, path=str(parent_dir))), skill, quiet=quiet)
    result.adapter.save(out)
    return dict(result.config)


def init_home_from_model(path: str | Path, model: str = "embedded", policy: GatePolicy | None = None,
                         mlflow_uri: str | None = None) -> Home:
    """``retain init``: v1 is ``model`` (``embedded`` or a save_pretrained folder), scored on the probe set."""
    from retain.data.synthetic import probe_skills
    from retain.models.causal_lm import resolve_model_path

    if mlflow_uri:
        mlflow_sync.require()
    policy = policy or GatePolicy()
    policy.validate()
    check_new_home(Path(path))
    folder = resolve_model_path(model)
    if not (folder / "config.json").exists():
        raise RetainError("init needs a full model folder (config.json), not a LoRA adapter", file=str(folder))
    if not list(folder.glob("*.safetensors")):
        raise RetainError("holds no *.safetensors weights (save it with safe_serialization=True)",
                          file=str(folder))
    probes = probe_skills()
    start = time.perf_counter()
    scores = score_suite(folder, [(p, "probe") for p in probes])
    source = model if model == "embedded" else str(folder.resolve())
    home = init_home(path, folder, source, policy, probes, scores, time.perf_counter() - start)
    if mlflow_uri:
        with home.writing("mlflow"):
            mlflow_sync.sync(home, mlflow_uri, "v1", champion=True)
    return home


def learn_in_home(home: str | Path, data: str | Path, method: str = "sdft",
                  options: dict[str, dict[str, Any]] | None = None, seed: int = 0, lora: bool = False,
                  force: str | None = None, quiet: bool = False, *, epochs: int = 2, lr: float | None = None,
                  batch_size: int = 16, scorer: str = "exact", test_fraction: float = 0.2,
                  lock_timeout: float = 0.0, mlflow_uri: str | None = None) -> Outcome:
    """``retain learn HOME data.jsonl``: train a candidate from the champion, gate it, record it.

    The candidate is scored with the champion on the whole regression suite (every probe, every skill learned
    so far, and the new skill's held-out set, split exactly as :func:`retain.api.learn` splits it); it becomes
    champion only if the gate passes or ``force`` gives a reason. Every input and option is checked before the
    lock is taken, and nothing is written to the home before training and scoring have succeeded. With
    ``mlflow_uri`` the version is mirrored to MLflow afterwards.
    """
    if mlflow_uri:
        mlflow_sync.require()
    opened = Home.open(home)
    if force is not None and not force.strip():
        raise RetainError("needs a reason", field="force")
    data = Path(data)
    skill = read_skill(data, seed=seed, test_fraction=test_fraction, scorer=scorer)
    if not skill.test:
        raise RetainError("needs at least two distinct prompts (one is held out for the regression suite)",
                          file=str(data))
    if skill.name in [spec["name"] for spec in store.suite_specs(opened.conn) if spec["kind"] == "probe"]:
        raise RetainError(f"the skill is named {skill.name!r} after its file, which is a probe of this home; "
                          "rename the file", file=str(data))
    base_source = opened.version("v1")["record"]["config"]["source"]
    recipe = Recipe.for_model(base_source, method, lora=lora, seed=seed, options=options,
                              lr=lr if lr is not None else default_lr(base_source, lora), epochs=epochs,
                              batch_size=batch_size)
    with opened.writing("learn", lock_timeout):
        work = Path(tempfile.mkdtemp(prefix="retain-learn-"))
        try:
            parent = opened.champion()
            parent_dir = opened.materialize(parent, work / "champion")
            start = time.perf_counter()
            config = _train(parent_dir, recipe, skill, work / "candidate", quiet=quiet)
            wall = time.perf_counter() - start
            config.update(model=parent, data=str(data.resolve()),
                          held_out={**config["held_out"], "fraction": test_fraction})
            full_dir = work / "candidate"
            if lora:
                full_dir = work / "candidate-merged"
                full_dir.mkdir()
                merge_adapter(parent_dir, work / "candidate", full_dir)
            regression = [(s, kind) for s, kind in _suite(opened) if s.name != skill.name] + [(skill, "skill")]
            candidate = Candidate(folder=work / "candidate", kind="adapter" if lora else "full", method=method,
                                  skill=skill, scores=score_suite(full_dir, regression),
                                  champion_scores=_champion_scores(opened, parent, parent_dir, regression),
                                  seed=seed, lora=lora, options=_stored_recipe(recipe, scorer, test_fraction),
                                  config=config, data=[("source", data)], wall_seconds=wall)
            outcome = record_candidate(opened, candidate, force)
            if mlflow_uri:
                mlflow_sync.sync(opened, mlflow_uri, outcome.version, outcome.promoted)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if not quiet:
        Console().print(render(outcome.decision, outcome.version, outcome.parent))
    return outcome


def _stored_recipe(recipe: Recipe, scorer: str, test_fraction: float) -> dict[str, Any]:
    """What a version records to be trained again: the recipe as it writes itself, and how the data was split
    and scored. The model is always the version's parent, so the recipe's path is not kept."""
    written = recipe.to_dict()
    written["model"]["path"] = "parent"
    return {"recipe": written, "scorer": scorer, "test_fraction": test_fraction}


def _champion_scores(home: Home, champion: str, folder: Path, regression: list[tuple[Skill, str]]) -> Scores:
    """The champion's scores on the suite, measured now only where its own record cannot answer.

    A version's record holds its scores on every suite entry that existed when it was made; an entry added no
    later than the champion and not replaced since is the same held-out set (pinned by hash), and greedy
    scoring is deterministic, so that score stands. Newer entries and the new skill are measured.
    """
    own = home.version(champion)["record"]["scores"]
    added_by = {r["name"]: int(r["added_by"][1:]) for r in home.conn.execute("SELECT name, added_by FROM suite")}
    born = int(champion[1:])
    scores: Scores = {"probes": {}, "skills": {}}
    missing = []
    for skill, kind in regression:
        suite = "probes" if kind == "probe" else "skills"
        if skill.name in own[suite] and added_by.get(skill.name, born + 1) <= born and skill is not regression[-1][0]:
            scores[suite][skill.name] = own[suite][skill.name]
        else:
            missing.append((skill, kind))
    measured = score_suite(folder, missing) if missing else {"probes": {}, "skills": {}}
    return {suite: {**scores[suite], **measured[suite]} for suite in scores}


def _suite(home: Home) -> list[tuple[Skill, str]]:
    return [(suite.load(home.objects, spec), spec["kind"]) for spec in store.suite_specs(home.conn)]


def reproduce(home: str | Path, ref: str, lock_timeout: float = 0.0) -> dict[str, Any]:
    """Train the version again from its record (parent, stored data, method, options, seed, threads) and
    compare the weights hash; the result is recorded in the audit log."""
    import torch

    opened = Home.open(home)
    with opened.writing("reproduce", lock_timeout):
        row = opened.version(ref)
        record = row["record"]
        if record["parent"] is None:
            raise RetainError(f"{row['name']} is the base model; there is no recipe to re-run", file=str(home))
        work = Path(tempfile.mkdtemp(prefix="retain-reproduce-"))
        threads = torch.get_num_threads()
        try:
            parent_dir = opened.materialize(record["parent"], work / "parent")
            source = next(d for d in record["data"] if d["role"] == "source")
            data = work / "data" / source["name"]
            data.parent.mkdir()
            data.write_bytes(opened.objects.get(source["sha256"]))
            if record["environment"].get("torch_threads"):
                torch.set_num_threads(record["environment"]["torch_threads"])
            stored = record["options"]
            if "recipe" not in stored:
                raise RetainError(f"{row['name']} was recorded by an earlier retain without a recipe; this "
                                  "version cannot train it again", file=str(home))
            recipe = Recipe.from_dict(stored["recipe"], source=f"{row['name']}.options.recipe")
            skill = read_skill(data, seed=recipe.seed, test_fraction=stored["test_fraction"], scorer=stored["scorer"])
            _train(parent_dir, recipe, skill, work / "candidate", quiet=True)
            got = weights_sha256(snapshot(work / "candidate", hash_only))
        finally:
            torch.set_num_threads(threads)
            shutil.rmtree(work, ignore_errors=True)
        expected = record["artifacts"]["weights_sha256"]
        opened.commit([{"type": "reproduced", "version": row["name"], "expected": expected, "got": got,
                        "match": got == expected}])
    return {"version": row["name"], "expected": expected, "got": got, "match": got == expected}
