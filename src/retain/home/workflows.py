"""The user-facing operations on a home that need a model to run: ``init`` (score the base model on its
suite, estimate the protection state), ``learn`` into a home (train a candidate from the champion with the
champion's protection state, score both on the regression suite, gate, record), ``reproduce`` (train again
from the recorded recipe and compare weight hashes) and suite edits.

These workflows sit above the public API: training goes through :func:`retain.api.learn_skill` (and so
:func:`retain.run.run`), scoring through :func:`retain.api.evaluate`; storage is the ledger's
(:mod:`retain.ledger`), which knows nothing of training.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


from retain import api
from retain.console import console
from retain.data.jsonl import read_skill
from retain.data.skills import Example, Skill
from retain.domains.language import load_model as load_for_recipe
from retain.errors import RetainError
from retain.evaluate.evaluation import mean_score
from retain.guard.home import canaries, quarantine, without_lines
from retain.home import defaults, lmeval, protection
from retain.home.rate import RateSearch, Searched, replay
from retain.home.rate import search as search_rate
from retain.home.suite_files import read_suite
from retain.ledger import mlflow_sync, store, suite
from retain.ledger.core import Home, check_new_home
from retain.ledger.core import is_home as _is_home
from retain.ledger.gate import GatePolicy, Items, Scores, render, unpack_items
from retain.ledger.operations import Candidate, Outcome, change_suite, init_home, record_candidate
from retain.ledger.tensors import hash_only, materialize, snapshot, weights_sha256
from retain.methods.registry import typed_options
from retain.models.merge import merge_adapter, quiet_hf
from retain.recipe import Recipe, with_defaults
from retain.seeding import seed_everything


def is_home(path: str | Path) -> bool:
    """Whether ``path`` is a home (what ``retain learn`` checks to choose between a model and a home)."""
    return _is_home(path)


def score_suite(model: Path | Any, skills: list[tuple[Skill, str]]) -> Scores:
    """Every suite entry's score for ``model`` (a loaded causal LM, or a folder loaded once), split into probes
    and skills; an lm-eval task's is its metric as lm-eval computes it (:mod:`retain.home.lmeval`)."""
    return score_items(model, skills)[0]


def score_items(model: Path | Any, skills: list[tuple[Skill, str]]) -> tuple[Scores, Items]:
    """:func:`score_suite` and the per-item scores behind it (the gate pairs them with the champion's); an
    lm-eval task reports only its metric, so it has none."""
    if isinstance(model, Path):
        with quiet_hf():
            model = api.load_model(str(model))
    scores: Scores = {"probes": {}, "skills": {}}
    items: Items = {"probes": {}, "skills": {}}
    for skill, kind in skills:
        suite = "probes" if kind == "probe" else "skills"
        if isinstance(skill, lmeval.LmEvalTask):
            scores[suite][skill.name] = float(lmeval.score(model, skill))
            continue
        items[suite][skill.name] = api.evaluate_items(model, skill)
        scores[suite][skill.name] = mean_score(items[suite][skill.name])
    return scores, items


def _base_suite(model: str, suite: list[str | Path] | None, no_suite: bool,
                skills: list[Skill] | None = None, per_item: int = protection.PER_ENTRY) -> list[Skill]:
    """The suite a new home starts with: the user's (files, then skills given as objects), else the embedded
    probes for the embedded model (``per_item`` training words each, what protection draws on)."""
    from retain.data.synthetic import probe_skills

    if (suite or skills) and no_suite:
        raise RetainError("--suite and --no-suite contradict each other", field="--no-suite")
    if suite or skills:
        return [*(read_suite(suite) if suite else []), *(skills or [])]
    if no_suite:
        return []
    if model == "embedded":
        return probe_skills(n_train=per_item)
    raise RetainError("a home for this model needs a regression suite: pass --suite FILE_OR_DIR (skill files of "
                      "what it must keep doing), or --no-suite for a home whose gate measures only new skills",
                      field="--suite")


def init_home_from_model(path: str | Path, model: str = "embedded", policy: GatePolicy | None = None,
                         mlflow_uri: str | None = None, *, suite: list[str | Path] | None = None,
                         no_suite: bool = False, protect: tuple[str, ...] = defaults.PROTECTION,
                         quiet: bool = True, skills: list[Skill] | None = None,
                         per_item: int = protection.PER_ENTRY,
                         options: dict[str, dict[str, Any]] | None = None, home_defaults: bool = True) -> Home:
    """``retain init``: v1 is ``model`` (``embedded`` or a save_pretrained folder), scored on its suite (the
    user's ``suite`` files and ``skills``, or the embedded probes for the embedded model), with the protection
    state of ``protect`` (with ``options`` over :data:`defaults.PROTECTION_SETTINGS`, e.g. a rehearsal
    buffer's ``size``) estimated on up to ``per_item`` training prompts of each suite item (the number every
    later learn of the home draws too; ``home_defaults=False``: the methods' own defaults under ``options``, as
    homes were made before the defaults existed). v1 records what a learn of the home uses unless it says otherwise
    (:func:`defaults.learn_settings`: SDFT with this protection, the model's SDFT settings, scorer and rate)."""
    from retain.models.loading import resolve_model_path

    if mlflow_uri:
        mlflow_sync.require()
    policy = policy or GatePolicy()
    policy.validate()
    if isinstance(per_item, bool) or not isinstance(per_item, int) or per_item < 1:
        raise RetainError(f"must be a whole number of prompts, 1 or more, not {per_item!r}",
                          field="--protection-prompts")
    check_new_home(Path(path))
    folder = resolve_model_path(model)
    if not (folder / "config.json").exists():
        raise RetainError("init needs a full model folder (config.json), not a LoRA adapter", file=str(folder))
    if not list(folder.glob("*.safetensors")):
        raise RetainError("holds no *.safetensors weights (save it with safe_serialization=True)",
                          file=str(folder))
    probes = _base_suite(model, suite, no_suite, skills, per_item)
    source = model if model == "embedded" else str(folder.resolve())
    # only the consolidation methods' configs matter here: the state is estimated, nothing is trained
    for name in options or {}:
        if name not in protect:
            raise RetainError(f"options given for {name!r}, which --protection does not name "
                              f"({'+'.join(protect) or 'nothing'})", field="--set")
    given = options or {}
    base = defaults.PROTECTION_SETTINGS if home_defaults else {}
    options = {name: {**base.get(name, {}), **given.get(name, {})} for name in protect}
    try:  # a bad option is refused before anything is loaded or written
        recipe = _home_recipe(source, "+".join(("sft", *protect)), options, seed=0, lora=False, lr=None,
                              epochs=1, batch_size=16) if protect else None
        if recipe is not None:
            recipe.methods()
    except RetainError as err:
        raise RetainError(f"{err.field + ': ' if err.field else ''}{err.message}", field="--set") from None
    settings = typed_options(recipe.method, recipe.options, options) if recipe is not None else {}
    start = time.perf_counter()
    with quiet_hf():
        base = api.load_model(str(folder))
    scores, items = score_items(base, [(p, "probe") for p in probes])
    blob, notes = None, []
    if recipe is not None and any(p.train for p in probes):
        _, plugins = recipe.methods()
        notes = protection.start(plugins, base, None, probes, lora=False, per_entry=per_item) + lmeval.skipped(probes)
        blob = protection.encode(plugins)
    config = {"protection": {"methods": list(protect) if blob else [], "notes": notes, "prompts_per_item": per_item,
                             "recipe": recipe.to_dict()["options"] if blob and recipe else {},
                             "settings": settings},
              "learn": defaults.learn_settings(source, tuple(protect))}
    home = init_home(path, folder, source, policy, probes, scores, time.perf_counter() - start, protection=blob,
                     config=config, items=items)
    if not quiet:
        for note in notes:
            console(stderr=True).print(f"  protection {note}")
    if mlflow_uri:
        with home.writing("mlflow"):
            mlflow_sync.sync(home, mlflow_uri, "v1", champion=True, merge=merge_adapter)
    return home


def _home_recipe(base_source: str, method: str, options: dict[str, dict[str, Any]] | None, *, seed: int,
                 lora: bool, lr: float | None, epochs: int, batch_size: int,
                 settings: dict[str, dict[str, Any]] | None = None) -> Recipe:
    """A learn's recipe in a home: the user's options over the home's protection settings (``retain init
    --set``, ``settings``) over the home's method defaults (:data:`protection.HOME_OPTIONS`), the base model's
    learning rate unless given."""
    defaults = {name: {**protection.HOME_OPTIONS.get(name, {}), **(settings or {}).get(name, {})}
                for name in {*protection.HOME_OPTIONS, *(settings or {})}}
    return Recipe.for_model(base_source, method, lora=lora, seed=seed,
                            options=with_defaults(method, options, defaults),
                            lr=lr, epochs=epochs, batch_size=batch_size)


def _state(home: Home, version: str) -> dict[str, Any] | None:
    sha = home.version(version)["record"]["artifacts"].get("protection_sha256")
    return protection.decode(home.objects.get(sha)) if sha else None


def _fit(home: Home, parent: str, parent_dir: Path, recipe: Recipe, skill: Skill, suite: list[Skill], *,
         quiet: bool, before: Any = None, start: Any = None, rehearse: list[Example] | None = None,
         keep_state: bool = True) -> tuple[Any, list[Any], list[str]]:
    """Train ``skill`` from the version ``parent`` (materialised in ``parent_dir``; or from ``start``, a loaded
    model trained from it, such as a rate search's winning pilot) with ``recipe``, its consolidation plugins
    continuing ``parent``'s protection state (or protecting ``suite``'s training splits). ``before(notes)`` is
    called with what each protection held before training starts. ``rehearse``: answers the champion gave that
    users rated good, added to the rehearsal buffer (with those answers as its stored targets) before training,
    so what already works is kept as it is. Returns the run's :class:`retain.api.LearnResult`, the plugins and
    those notes."""
    recipe = replace(recipe, model=replace(recipe.model, path=str(parent_dir)))
    seed_everything(recipe.seed)
    adapter = load_for_recipe(recipe) if start is None else start
    objective, plugins = recipe.methods()
    # a home created before the number was recorded drew the default
    per_item = home.version("v1")["record"]["config"].get("protection", {}).get("prompts_per_item",
                                                                                 protection.PER_ENTRY)
    notes = protection.start(plugins, adapter, _state(home, parent), suite, lora=recipe.model.lora,
                             seed=recipe.seed, per_entry=per_item)
    notes += lmeval.skipped(suite) if plugins else []
    if rehearse:
        keeping = [p for p in plugins if p.name == "rehearsal"]
        for plugin in keeping:
            plugin.protect(adapter, rehearse)
        notes.append(f"rehearsal: + {len(rehearse)} answers users rated good" if keeping else
                     f"{len(rehearse)} answers users rated good not kept (the learn has no rehearsal)")
    if before is not None:
        before(notes)
    if not keep_state:  # a rate search's pilot: its protection state is dropped, only its weights go on
        for plugin in plugins:
            if not plugin.first_after_task:
                plugin.after_task = lambda adapter, examples: None
    result = api.learn_skill(recipe, skill, quiet=quiet, adapter=adapter, methods=(objective, plugins))
    return result, plugins, notes


def _train(home: Home, parent: str, parent_dir: Path, recipe: Recipe, skill: Skill, suite: list[Skill], out: Path,
           *, quiet: bool, rate: str = "", searched: "Searched | None" = None,
           rehearse: dict[str, Example] | None = None) -> tuple[dict[str, Any], bytes | None]:
    """Train a candidate from the version ``parent`` (materialised in ``parent_dir``) with ``recipe``
    (:func:`_fit`) and save it into ``out`` (the adapter only under LoRA). ``searched``: the rate search that
    chose ``recipe``'s rate; the candidate continues its winning pilot on the examples the pilot did not train
    on. ``rehearse``: well-rated answers by feedback id (:func:`_fit`); the record says which were kept.
    Returns the run's record and the new protection state."""
    warm = searched is not None and not searched.skipped
    source = "searched" if warm else rate or "given"
    if searched is not None:
        rate = searched.line() if warm else f"{rate}; {searched.line()}" if rate else searched.line()
    say = console(stderr=True, quiet=quiet, soft_wrap=True)
    result, plugins, notes = _fit(home, parent, parent_dir, recipe, searched.remainder(skill) if warm else skill,
                                  suite, quiet=quiet, start=searched.model if warm else None,
                                  rehearse=list((rehearse or {}).values()),
                                  before=lambda notes: say.print(defaults.describe(recipe.method, notes,
                                                                                   recipe.train.lr, rate)))
    result.adapter.save(out)
    config = dict(result.config)
    config["protection"] = {"notes": notes}
    if rehearse and any(p.name == "rehearsal" for p in plugins):
        config["protection"]["rehearsed_feedback"] = list(rehearse)
    # the rate this learn trained at, where it came from, and the evidence of any plugin or search that chose it
    config["rate"] = {"lr": recipe.train.lr, "source": source,
                      **({"search": searched.evidence} if searched is not None else {}),
                      **{p.name: p.trace() for p in plugins if hasattr(p, "trace")}}
    return config, protection.encode(plugins) if plugins else None


def _pilot(home: Home, parent: str, parent_dir: Path, recipe: Recipe, suite: list[Skill]) -> Any:
    """A rate search's pilot trainer: ``pilot(lr, skill)`` trains ``skill`` from ``parent`` at ``lr`` with the
    learn's recipe and protection, quietly, and returns the model. A pilot's protection state is dropped (the
    candidate starts its own from the champion's), so the plugins skip recording it after the task (rehearsal
    would answer every pilot prompt for a buffer nobody keeps); one whose ``after_task`` changes the weights
    (``first_after_task``, e.g. ``merge``) still runs it, as the pilot's weights go on."""
    def pilot(lr: float, skill: Skill) -> Any:
        at = replace(recipe, train=replace(recipe.train, lr=lr))
        return _fit(home, parent, parent_dir, at, skill, suite, quiet=True, keep_state=False)[0].adapter
    return pilot


def _search_rate(plan: "_Plan", champion: "_Champion", skill: Skill, *, quiet: bool) -> "Searched | None":
    """The learn's rate chosen by the home's search (:mod:`retain.home.rate`) on pilots trained from the
    champion, or ``None`` when the learn does not search (``--lr`` given, a home that records no search)."""
    if plan.search is None:
        return None
    suite = [s for s, _ in champion.suite]
    if not quiet:
        console(stderr=True).print(
            f"searching the rate: {len(set(plan.search.factors))} pilots of {plan.search.fraction:.0%} of the learn "
            f"at x{', x'.join(f'{f:g}' for f in sorted(set(plan.search.factors)))} the home's rate; the best goes on",
            highlight=False)
    return search_rate(plan.search, plan.recipe.train.lr, skill, suite,
                       _pilot(plan.home, champion.name, champion.folder, plan.recipe, suite), champion.model)


@dataclass
class _Plan:
    """Everything a learn decided before it takes the lock: nothing in it has touched the home."""

    home: Home
    data: Path
    skill: Skill
    recipe: Recipe
    scorer: str
    test_fraction: float
    rate: str  # where the learning rate came from, for the learn's one line
    search: RateSearch | None = None  # how the learn searches its rate (None: it trains at recipe's)
    augment: dict[str, Any] | None = None  # surface variants of the training prompts: copies, avoid

    def trained(self, skill: Skill) -> Skill:
        """``skill`` as the learn trains on it: with the surface variants of its training prompts, if any."""
        return _augmented(skill, self.augment, self.recipe.seed)


def _augmented(skill: Skill, augment: dict[str, Any] | None, seed: int) -> Skill:
    from retain.data.augment import augmented
    return augmented(skill, augment["copies"], seed, augment.get("avoid", ())) if augment else skill


@dataclass
class _Champion:
    """The champion a learn starts from: its name, its folder, the model loaded once (for the screen, its
    scores and the canaries) and the suite as it stands (every item but the skill being learned)."""

    name: str
    folder: Path
    model: Any
    specs: list[dict[str, Any]]
    suite: list[tuple[Skill, str]]


def learn_in_home(home: str | Path, data: str | Path, method: str | None = None,
                  options: dict[str, dict[str, Any]] | None = None, seed: int = 0, lora: bool = False,
                  force: str | None = None, quiet: bool = False, *, epochs: int = 2, lr: float | None = None,
                  batch_size: int = 16, scorer: str | None = None, test_fraction: float = 0.2,
                  lock_timeout: float = 0.0, mlflow_uri: str | None = None, name: str | None = None,
                  accept_flagged: str | None = None, record: dict[str, Any] | None = None,
                  rate_search: bool = True, rehearse: dict[str, Example] | None = None, augment: int = 0,
                  augment_avoid: Collection[str] = ()) -> Outcome:
    """``retain learn HOME data.jsonl``: train a candidate from the champion, gate it, record it.

    ``method``, ``scorer`` and ``lr`` default to what the home recorded at init (:mod:`retain.home.defaults`:
    SDFT with the home's protection, the model's SDFT settings under ``options``); the line the learn prints
    says which protection and rate it used. The candidate's consolidation methods continue the champion's
    protection state, so a learn protects what every earlier version knew. It is scored with the champion on
    the whole regression suite (every suite item, every skill learned so far, and the new skill's held-out set,
    split exactly as :func:`retain.api.learn` splits it); it becomes champion only if the gate passes or
    ``force`` gives a reason. ``name`` names the skill (default: the file's stem). Every input and option is
    checked before the lock is taken, and nothing is written to the home before training and scoring have
    succeeded. With ``mlflow_uri`` the version is mirrored to MLflow afterwards. ``record`` adds keys to the
    version's recorded config (learning from feedback records the feedback ids it consumed there);
    ``rehearse`` (feedback id -> example) joins the rehearsal buffer before training (answers users rated good).
    ``augment``: surface variants of each training prompt trained on as well (:mod:`retain.data.augment`; the
    screen reads the file's own lines, the held-out split is not augmented), none of them one of
    ``augment_avoid`` (a benchmark's closed-book questions); the version records both, and ``reproduce`` uses them.

    The steps: plan (check everything, build the recipe), then under the lock: open the champion, screen the
    data with it (the guard), train the candidate, score both and gate (with the guard's canaries), record.
    """
    if mlflow_uri:
        mlflow_sync.require()
    plan = _plan(Home.open(home), Path(data), method, options, seed=seed, lora=lora, force=force, lr=lr,
                 epochs=epochs, batch_size=batch_size, scorer=scorer, test_fraction=test_fraction, name=name,
                 accept_flagged=accept_flagged, rate_search=rate_search, augment=augment, augment_avoid=augment_avoid)
    with plan.home.writing("learn", lock_timeout), plan.home.work_dir("learn") as work:
        champion = _open_champion(plan, work)
        found = quarantine(champion.model, plan.data, plan.skill, [s for s, _ in champion.suite], accept_flagged)
        console(stderr=True, quiet=quiet, soft_wrap=True).print(found.summary(), markup=False, highlight=False)
        start = time.perf_counter()
        trained = plan.trained(found.skill)
        if plan.augment:
            made = len(trained.train) - len(found.skill.train)
            console(stderr=True, quiet=quiet).print(
                f"training on {len(found.skill.train)} prompts and {made} surface variants of them "
                f"(--augment {plan.augment['copies']})", highlight=False)
        searched = _search_rate(plan, champion, trained, quiet=quiet)
        if searched is not None:  # the version records (and `reproduce` trains) the rate the search chose
            plan = replace(plan, recipe=replace(plan.recipe, train=replace(plan.recipe.train, lr=searched.lr)))
        config, state = _train(plan.home, champion.name, champion.folder, plan.recipe, trained,
                               [s for s, _ in champion.suite], work / "candidate", quiet=quiet, rate=plan.rate,
                               searched=searched, rehearse=rehearse)
        config.update(model=champion.name, data=str(plan.data.resolve()),
                      held_out={**config["held_out"], "fraction": plan.test_fraction})
        config["protection"]["specs"] = champion.specs
        config.update(record or {})  # what the caller adds to the version's record (the feedback it consumed)
        candidate = _gated_candidate(plan, champion, found, work, config, state, time.perf_counter() - start)
        outcome = record_candidate(plan.home, candidate, force)
        if mlflow_uri:
            mlflow_sync.sync(plan.home, mlflow_uri, outcome.version, outcome.promoted, merge=merge_adapter)
    if not quiet:
        console().print(render(outcome.decision, outcome.version, outcome.parent))
    return outcome


def _plan(opened: Home, data: Path, method: str | None, options: dict[str, dict[str, Any]] | None, *, seed: int,
          lora: bool, force: str | None, lr: float | None, epochs: int, batch_size: int, scorer: str | None,
          test_fraction: float, name: str | None, accept_flagged: str | None, rate_search: bool = True,
          augment: int = 0, augment_avoid: Collection[str] = ()) -> _Plan:
    """Check every input and build the learn's recipe over the home's recorded settings; writes nothing. The
    learn searches its rate when the home records a search, no ``lr`` is given and ``rate_search`` is on."""
    if force is not None and not force.strip():
        raise RetainError("needs a reason", field="force")
    if accept_flagged is not None and not accept_flagged.strip():
        raise RetainError("needs a reason", field="accept_flagged")
    from retain.data.augment import MAX_COPIES
    if not isinstance(augment, int) or isinstance(augment, bool) or not 0 <= augment <= MAX_COPIES:
        raise RetainError(f"must be a whole number from 0 to {MAX_COPIES}, got {augment!r}", field="augment")
    variants = {"copies": augment, "avoid": sorted(set(augment_avoid))} if augment else None
    v1 = opened.version("v1")["record"]["config"]
    settings = defaults.home_settings(v1)
    method = method or settings["method"]
    scorer = scorer or settings["scorer"]
    rate = "--lr" if lr is not None else "the home's rate" if settings["lr"] is not None else "the model's rate"
    lr = settings["lr"] if lr is None else lr
    skill = read_skill(data, name=name, seed=seed, test_fraction=test_fraction, scorer=scorer)
    if not skill.test:
        raise RetainError("needs at least two distinct prompts (one is held out for the regression suite)",
                          file=str(data))
    specs = store.suite_specs(opened.conn)
    if skill.name in [spec["name"] for spec in specs if spec["kind"] == "probe"]:
        raise RetainError(f"the skill is named {skill.name!r}, which is an item of this home's suite; "
                          "pass --name NEW_NAME to learn it under another name", file=str(data))
    for spec in specs:  # scoring them needs lm-eval: say so before training
        if "lmeval" in spec:
            lmeval.require(f"{opened.root} (suite item {spec['name']})")
    recipe = _home_recipe(v1["source"], method, with_defaults(method, options, settings["options"]), seed=seed,
                          lora=lora, lr=lr, epochs=epochs, batch_size=batch_size,
                          settings=v1.get("protection", {}).get("settings"))
    _check_before_lock(opened, recipe, _augmented(skill, variants, recipe.seed))
    search = None
    if rate != "--lr" and rate_search and settings.get("rate_search") is not None:
        search = RateSearch.from_dict(settings["rate_search"], f"{opened.root} (v1's learn settings)")
    return _Plan(opened, data, skill, recipe, scorer, test_fraction, rate, search, variants)


def _open_champion(plan: _Plan, work: Path) -> _Champion:
    """The champion materialised into ``work`` and loaded, with the suite as it stands now."""
    name = plan.home.champion()
    folder = plan.home.materialize(name, work / "champion", merge_adapter)
    specs = [spec for spec in store.suite_specs(plan.home.conn) if spec["name"] != plan.skill.name]
    suite_now = [(suite.load(plan.home.objects, spec), spec["kind"]) for spec in specs]
    return _Champion(name, folder, api.load_model(str(folder)), specs, suite_now)


def _gated_candidate(plan: _Plan, champion: _Champion, found: Any, work: Path, config: dict[str, Any],
                     state: bytes | None, wall: float) -> Candidate:
    """The trained candidate with everything the gate weighs: its and the champion's scores (and per-item
    outcomes) on the suite and the new skill's held-out set, and the guard's canaries on both models."""
    lora = plan.recipe.model.lora
    full_dir = work / "candidate"
    if lora:  # the gate scores the whole model: the champion with the new adapter merged in
        full_dir = work / "candidate-merged"
        full_dir.mkdir()
        merge_adapter(champion.folder, work / "candidate", full_dir)
    skill = found.skill
    regression = champion.suite + [(skill, "skill")]
    candidate_lm = api.load_model(str(full_dir))
    _, canary_checks = canaries(candidate_lm, champion.model, [s for s, _ in regression], found, plan.recipe.seed)
    scores, items = score_items(candidate_lm, regression)
    champion_scores, champion_items = _champion_scores(plan.home, champion.name, champion.model, regression,
                                                       new_skill=skill.name)
    return Candidate(folder=work / "candidate", kind="adapter" if lora else "full", method=plan.recipe.method,
                     skill=skill, scores=scores, champion_scores=champion_scores, items=items,
                     champion_items=champion_items, seed=plan.recipe.seed, lora=lora,
                     options=_stored_recipe(plan.recipe, skill, plan.scorer, plan.test_fraction, plan.augment),
                     config=config,
                     data=[("source", plan.data)], wall_seconds=wall, protection=state, screen=found.record(),
                     canary_checks=canary_checks)


def _check_before_lock(home: Home, recipe: Recipe, skill: Skill) -> None:
    """The checks that need the model's tokenizer (every prompt fits the positions; SDFT's skipped tokens leave
    something to train on), run on the base's tokenizer and config before the lock is taken, so such bad input
    changes nothing in the home. Learning does not change a tokenizer, so the base's is the champion's."""
    from retain.models.loading import load_shape

    spec = recipe.model
    with tempfile.TemporaryDirectory(prefix="retain-check-") as tmp:
        materialize(home.objects, {**home.manifest("v1"), "safetensors": {}}, Path(tmp))
        with quiet_hf():
            shape = load_shape(tmp, trust_remote_code=spec.trust_remote_code,
                               max_prompt_tokens=spec.max_prompt_tokens, max_new_tokens=spec.max_new_tokens)
    api.check_skill(shape, recipe, skill)


def _stored_recipe(recipe: Recipe, skill: Skill, scorer: str, test_fraction: float,
                   augment: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a version records to be trained again: the recipe as it writes itself, the skill's name, how the
    data was split and scored, and the surface variants trained on as well (when there were any). The model is
    always the version's parent, so the recipe's path is not kept."""
    written = recipe.to_dict()
    written["model"]["path"] = "parent"
    return {"recipe": written, "skill": skill.name, "scorer": scorer, "test_fraction": test_fraction,
            **({"augment": augment} if augment else {})}


def _champion_scores(home: Home, champion: str, model: Any, regression: list[tuple[Skill, str]], *,
                     new_skill: str) -> tuple[Scores, Items]:
    """The champion's scores on the suite and the per-item scores behind them, measured now only where its own
    record cannot answer.

    A version's record holds its scores (and, since the paired gate, its per-item scores) on every suite entry
    that existed when it was made; an entry added no later than the champion and not replaced since is the same
    held-out set (pinned by hash), and greedy scoring is deterministic, so that record stands. Newer entries,
    the new skill, and entries whose per-item scores the record lacks (versions recorded before the paired
    gate) are measured; an lm-eval task has no per-item scores, so its recorded score stands alone.
    """
    record = home.version(champion)["record"]
    own, own_items = record["scores"], unpack_items(record.get("outcomes"))
    # versions in the order they were made (their names are labels, never parsed)
    made = {r["name"]: r["created_seq"] for r in home.conn.execute("SELECT name, created_seq FROM versions")}
    added_by = {r["name"]: made[r["added_by"]] for r in home.conn.execute("SELECT name, added_by FROM suite")
                if r["added_by"] in made}
    born = made[champion]
    scores: Scores = {"probes": {}, "skills": {}}
    items: Items = {"probes": {}, "skills": {}}
    missing = []
    for skill, kind in regression:
        suite = "probes" if kind == "probe" else "skills"
        recorded = skill.name in own[suite] and added_by.get(skill.name, born + 1) <= born \
            and not (kind == "skill" and skill.name == new_skill)
        kept = own_items.get(suite, {}).get(skill.name)
        if recorded and (kept is not None or isinstance(skill, lmeval.LmEvalTask)):
            scores[suite][skill.name] = own[suite][skill.name]
            if kept is not None:
                items[suite][skill.name] = kept
        else:
            missing.append((skill, kind))
    measured, measured_items = score_items(model, missing) if missing else ({"probes": {}, "skills": {}}, {})
    return ({suite: {**scores[suite], **measured[suite]} for suite in scores},
            {suite: {**items[suite], **measured_items.get(suite, {})} for suite in items})


def reproduce(home: str | Path, ref: str, lock_timeout: float = 0.0) -> dict[str, Any]:
    """Train the version again from its record (parent and its protection state, stored data, recipe, seed,
    threads, the suite entries it protected) and compare the weights hash; the result is recorded in the
    audit log."""
    import torch

    opened = Home.open(home)
    with opened.writing("reproduce", lock_timeout), opened.work_dir("reproduce") as work:
        row = opened.version(ref)
        record = row["record"]
        if record["parent"] is None:
            raise RetainError(f"{row['name']} is the base model; there is no recipe to re-run", file=str(home))
        stored = record["options"]
        if "recipe" not in stored:
            raise RetainError(f"{row['name']} was recorded by an earlier retain without a recipe; this "
                              "version cannot train it again", file=str(home))
        recipe = Recipe.from_dict(stored["recipe"], source=f"{row['name']}.options.recipe")
        threads = torch.get_num_threads()
        try:
            parent_dir = opened.materialize(record["parent"], work / "parent", merge_adapter)
            source = next(d for d in record["data"] if d["role"] == "source")
            data = work / "data" / source["name"]
            data.parent.mkdir()
            data.write_bytes(opened.objects.get(source["sha256"]))
            if record["environment"].get("torch_threads"):
                torch.set_num_threads(record["environment"]["torch_threads"])
            skill = read_skill(data, name=stored.get("skill"), seed=recipe.seed,
                               test_fraction=stored["test_fraction"], scorer=stored["scorer"])
            screen = record.get("screen")
            if screen and screen["quarantined"]:
                skill = without_lines(skill, data, screen["flagged"])
            skill = _augmented(skill, stored.get("augment"), recipe.seed)
            protected = _protected_suite(opened, record)
            search = record["config"].get("rate", {}).get("search")
            searched = None
            if search and "skipped" not in search:  # the winning pilot again, then its continuation
                searched = replay(search, skill, _pilot(opened, record["parent"], parent_dir, recipe, protected))
            kept = record["config"].get("protection", {}).get("rehearsed_feedback")
            rehearse = None
            if kept:
                from retain.home.feedback import rated_examples
                rehearse = rated_examples(opened, kept)
            _train(opened, record["parent"], parent_dir, recipe, skill, protected, work / "candidate", quiet=True,
                   searched=searched, rehearse=rehearse)
            got = weights_sha256(snapshot(work / "candidate", hash_only))
        finally:
            torch.set_num_threads(threads)
        expected = record["artifacts"]["weights_sha256"]
        opened.commit([{"type": "reproduced", "version": row["name"], "expected": expected, "got": got,
                        "match": got == expected}])
    return {"version": row["name"], "expected": expected, "got": got, "match": got == expected}


def _protected_suite(home: Home, record: dict[str, Any]) -> list[Skill]:
    """The suite entries a version's learn protected, as they were then (the specs recorded with it)."""
    specs = record["config"].get("protection", {}).get("specs", [])
    return [suite.load(home.objects, spec) for spec in specs]


def list_suite(home: str | Path) -> list[dict[str, Any]]:
    """The regression suite's entries (name, kind, scorer, sizes, who added them), as stored."""
    opened = Home.open(home)
    added = {r["name"]: r["added_by"] for r in opened.conn.execute("SELECT name, added_by FROM suite")}
    return [{**spec, "added_by": added.get(spec["name"])} for spec in store.suite_specs(opened.conn)]


def add_to_suite(home: str | Path, paths: list[str | Path], reason: str = "added by retain suite add",
                 lock_timeout: float = 0.0) -> list[dict[str, Any]]:
    """Add suite items (files, folders or manifests, :mod:`retain.home.suite_files`) as one recorded event;
    a name already in the suite is an error that says how to rename."""
    opened = Home.open(home)
    items = read_suite(paths)
    existing = {spec["name"] for spec in store.suite_specs(opened.conn)}
    for item in items:
        if item.name in existing:
            raise RetainError(f"the suite already has an item named {item.name!r}; give this one another name "
                              "(a \"name\" setting in suite.json or a manifest, or rename the file), or remove "
                              f"the old one first with `retain suite remove HOME {item.name}`", field="name")
    with opened.writing("suite", lock_timeout):
        return change_suite(opened, items, [], reason)


def remove_from_suite(home: str | Path, names: list[str], reason: str = "removed by retain suite remove",
                      lock_timeout: float = 0.0) -> None:
    """Remove suite items by name as one recorded event (past versions keep their scores on them)."""
    opened = Home.open(home)
    existing = {spec["name"] for spec in store.suite_specs(opened.conn)}
    for name in names:
        if name not in existing:
            raise RetainError(f"no suite item is named {name!r} (see `retain suite list HOME`)", field="name")
    with opened.writing("suite", lock_timeout):
        change_suite(opened, [], names, reason)
